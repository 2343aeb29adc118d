"""facetrack accuracy: the README's accuracy table (stages and dlib) measured in one run."""
from __future__ import annotations

import json
from pathlib import Path

from tracker.cli.common import EXIT_OK, command_parser, run_command

SUMMARY = "the accuracy table: classification, + box refinement, + regressors, + temporal, dlib"
DEFAULT_STILLS = "../shared/data/300w-subset/helen-test"
DEFAULT_CLIP = "../shared/data/videos/wolfganglanger"


def parser(prog: str = "facetrack accuracy"):
    p = command_parser(prog, "Measure each stage's accuracy: on an annotated image folder (detection setup, "
                             "misses count as failures) classification alone, + box refinement, + the "
                             "regressors, and dlib beside them; on an annotated 300VW clip the same per frame, "
                             "then with the temporal stage, with jitter.")
    p.add_argument("stills", nargs="?", default=DEFAULT_STILLS, help=f"folder of images + .pts (default {DEFAULT_STILLS})")
    p.add_argument("--clip", default=DEFAULT_CLIP, help=f"300VW clip folder, '' to skip (default {DEFAULT_CLIP})")
    p.add_argument("--model", help="model file (default: the packaged model, with its regressors)")
    p.add_argument("--out", default="out/accuracy", help="folder for the prediction CSVs (default out/accuracy)")
    p.add_argument("--no-dlib", action="store_true", help="leave out the dlib row")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    return p


def main(argv: list[str] | None = None, prog: str = "facetrack accuracy") -> int:
    return run_command(prog, _accuracy, argv)


def _accuracy(argv: list[str], prog: str) -> int:
    from tracker.classifier.model import load_model
    from tracker.errors import FacetrackError
    from tracker.evaluation.accuracy import clip_rows, markdown, still_rows
    args = parser(prog).parse_args(argv)
    for path in [args.stills] + ([args.clip] if args.clip else []):
        if not Path(path).is_dir():
            raise FacetrackError(f"{path}: no such folder")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model = load_model(args.model)
    stills = still_rows(model, args.stills, out, with_dlib=not args.no_dlib)
    clip = clip_rows(model, args.clip, out) if args.clip else []
    if args.json:
        print(json.dumps({"stills": args.stills, "clip": args.clip, "still_rows": stills, "clip_rows": clip}))
        return EXIT_OK
    print(f"{args.stills} (detection setup):\n{markdown(stills)}")
    if clip:
        print(f"\n{args.clip} (pseudo-labels: a teacher's guess, for comparing trackers):\n{markdown(clip, jitter=True)}")
    return EXIT_OK
