import json
import subprocess
import sys

import numpy as np
import pytest

from tracker.cli.evaluate import main as evaluate_main
from tracker.geometry.shapes import box_diagonal, interocular
from tracker.io.annotations import read_pts, read_pts_folder, write_pts
from tracker.io.landmark_csv import LandmarkCsvWriter


def _json(capsys, argv):
    code = evaluate_main(argv + ["--json"])
    out = capsys.readouterr()
    return code, (json.loads(out.out) if code == 0 else None), out.err


def test_helen_test_against_itself_is_zero(capsys, helen_test, tmp_path):
    code, res, _ = _json(capsys, ["--pred", str(helen_test), "--gt", str(helen_test), "--plot", str(tmp_path / "ced.png")])
    assert code == 0
    row = res["results"][0]
    assert row["subset"] == "all" and row["n"] == 330 and row["missing"] == 0
    assert row["nme_diag"] == 0 and row["nme_io"] == 0 and row["failure_rate"] == 0 and row["auc"] == 1
    assert res["results"][1]["subset"] == "hard" and res["results"][1]["n"] == 33
    assert (tmp_path / "ced.png").stat().st_size > 1000


def test_helen_test_shifted_by_2px(capsys, helen_test, tmp_path):
    gt = read_pts_folder(helen_test)
    for stem, pts in gt.items():
        write_pts(tmp_path / f"{stem}.pts", pts + np.array([2.0, 0.0]))
    shapes = np.stack(list(gt.values()))
    code, res, _ = _json(capsys, ["--pred", str(tmp_path), "--gt", str(helen_test)])
    row = res["results"][0]
    assert row["nme_diag"] == pytest.approx(np.mean(2 / box_diagonal(shapes)), rel=1e-4)
    assert row["nme_io"] == pytest.approx(np.mean(2 / interocular(shapes)), rel=1e-4)
    assert row["failure_rate"] == 0


def test_csv_against_300vw_with_missing_frames(capsys, sample_clip, tmp_path):
    labels = {n: read_pts(sample_clip / "annot" / f"{n:06d}.pts") for n in range(1, 11)}
    gt = tmp_path / "seq"
    (gt / "annot").mkdir(parents=True)
    for n, pts in labels.items():
        write_pts(gt / "annot" / f"{n:06d}.pts", pts)
    with LandmarkCsvWriter(tmp_path / "pred.csv") as sink:
        for n, pts in labels.items():
            if n == 4:
                sink.write(n, -1, n / 24, 0.0, None)            # no face found
            elif n != 7:                                        # frame 7 has no row at all
                sink.write(n, 0, n / 24, 0.9, pts)
                sink.write(n, 1, n / 24, 0.9, pts + 100)        # a second face: not the labelled one
    code, res, _ = _json(capsys, ["--pred", str(tmp_path / "pred.csv"), "--gt", str(gt)])
    row = res["results"][0]
    assert code == 0 and row["n"] == 10 and row["missing"] == 2
    assert row["failure_rate"] == pytest.approx(0.2) and row["nme_diag"] == pytest.approx(0, abs=1e-4)


def test_csv_with_frames_against_pts_folder_uses_sorted_order(capsys, tmp_path, face):
    (tmp_path / "gt").mkdir()
    for stem, d in (("b", 0), ("a", 1)):
        write_pts(tmp_path / "gt" / f"{stem}.pts", face + d)
    with LandmarkCsvWriter(tmp_path / "p.csv") as sink:
        sink.write(1, 0, 0, 1, face + 1)   # frame 1 = first file in sorted order = a
        sink.write(2, 0, 0, 1, face)       # frame 2 = b
    _, res, _ = _json(capsys, ["--pred", str(tmp_path / "p.csv"), "--gt", str(tmp_path / "gt")])
    assert res["results"][0]["nme_diag"] == pytest.approx(0, abs=1e-4)


def test_table_output_has_the_columns(capsys, sample_clip):
    assert evaluate_main(["--pred", str(sample_clip / "annot"), "--gt", str(sample_clip)]) == 0
    out = capsys.readouterr().out
    for col in ("NME diag", "NME io", "AUC@0.08", "FR %", "n", "missing"):
        assert col in out


@pytest.mark.parametrize("make,code,message", [
    (lambda p: None, 3, "no such file or folder"),
    (lambda p: p.write_text("hello"), 3, "missing column"),
    (lambda p: (p.mkdir(), (p / "x.pts").write_text("1 2\n")), 3, "expected 68 points"),
])
def test_bad_inputs_give_one_line_and_an_exit_code(capsys, sample_clip, tmp_path, make, code, message):
    bad = tmp_path / "bad"
    make(bad)
    assert evaluate_main(["--pred", str(bad), "--gt", str(sample_clip)]) == code
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and err[0].startswith("facetrack evaluate: error:")


def test_unwritable_plot_is_exit_4(capsys, sample_clip, tmp_path):
    code = evaluate_main(["--pred", str(sample_clip / "annot"), "--gt", str(sample_clip),
                          "--plot", str(tmp_path / "missing-dir" / "ced.png")])
    assert code == 4 and "cannot write" in capsys.readouterr().err


def test_as_a_process_no_traceback(tmp_path, sample_clip):
    proc = subprocess.run([sys.executable, "-m", "tracker.cli", "evaluate",
                           "--pred", str(tmp_path / "nothing.csv"), "--gt", str(sample_clip)],
                          capture_output=True, text=True)
    assert proc.returncode == 3 and "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1
