"""facetrack accuracy: the stage table on a small annotated folder, and its errors."""
import re

import cv2
import pytest
from clips import sample_face, shifted

from tracker.cli import main
from tracker.io.annotations import write_pts


@pytest.mark.slow
def test_accuracy_table_on_a_small_folder(tmp_path, capsys):
    image, points = sample_face(1.0)
    folder = tmp_path / "faces"
    folder.mkdir()
    for i, dx in enumerate((0, 12)):
        cv2.imwrite(str(folder / f"face{i}.jpg"), shifted(image, dx))
        write_pts(folder / f"face{i}.pts", points + [dx, 0])
    assert main(["accuracy", str(folder), "--clip", "", "--no-dlib", "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| classification") or line.startswith("| +")]
    assert [r.split("|")[1].strip() for r in rows] == [
        "classification", "+ box refinement", "+ regressors (trees: track's cascade)",
        "+ the stills regressors (network stage + trees)", "+ test-time mirroring (facetrack predict's default)"]
    for row in rows:
        auc = float(row.split("|")[4])
        assert 0.3 < auc <= 1.0, row                  # the face is found and roughly right on every row
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [f"stills-{i}.csv" for i in range(5)]


def test_accuracy_on_a_missing_folder_is_one_line(tmp_path, capsys):
    assert main(["accuracy", str(tmp_path / "nope"), "--clip", ""]) == 3        # bad input
    err = capsys.readouterr().err.strip()
    assert re.fullmatch(r"facetrack accuracy: error: .*nope: no such folder", err), err
