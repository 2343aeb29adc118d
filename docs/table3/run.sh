#!/usr/bin/env bash
# The experiment of the paper's Table 3 (simulated annotator), on HELEN-test and both shared
# clips; writes docs/table3/{helen-test,wolfganglanger,pyfeat_single_face}.{txt,json}.
# Run from the repository root: bash docs/table3/run.sh  (about 5 minutes on 2 CPU cores)
set -euo pipefail
SHARED=${FACETRACK_SHARED:-../shared}/data
OUT=docs/table3
H=$SHARED/300w-subset/helen-test
bin/facetrack annotate "$H" --simulate "$H" --clicks 2 --json > $OUT/helen-test.json
for clip in wolfganglanger pyfeat_single_face; do
  V=$SHARED/videos/$clip
  bin/facetrack annotate "$V/vid.mp4" --simulate "$V" --clicks 2 --every 10,30 --json > $OUT/$clip.json
done
for name in helen-test wolfganglanger pyfeat_single_face; do
  .venv/bin/python -c "import json, sys; from tracker.simulate import format_table; print(format_table(json.load(open(sys.argv[1]))))" \
    $OUT/$name.json > $OUT/$name.txt
done
