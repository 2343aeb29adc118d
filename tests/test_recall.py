"""Recall and precision against a reference detector (tracker.evaluation.recall): the scoring,
the suppression of overlapping reference boxes, and bench's one-line errors for a bad reference."""
import numpy as np
import pytest

from tracker.cli.bench import main as bench_main
from tracker.evaluation.recall import MIN_WIDTH, STRONG, WEAK, _suppressed, score_csv
from tracker.io.landmark_csv import LandmarkCsvWriter


def square_face(cx: float, cy: float, side: float = 20.0) -> np.ndarray:
    """68 points spread over a square centred on (cx, cy)."""
    grid = np.random.default_rng(0).uniform(-0.5, 0.5, (68, 2)) * side
    return grid - grid.mean(axis=0) + [cx, cy]


def test_recall_counts_strong_wide_reference_faces_and_precision_any_weak_box(tmp_path):
    reference = {
        1: np.array([[0, 0, 60, 60, 0.9],                # strong and wide: counts, found
                     [100, 0, 160, 60, 0.9],             # strong and wide: counts, missed
                     [200, 0, 200 + MIN_WIDTH - 1, 40, 0.9],   # too small to count; ours inside is right
                     [300, 0, 360, 60, STRONG - 0.01]]),  # too weak to count; ours inside is right
        11: np.zeros((0, 5)),
    }
    with LandmarkCsvWriter(tmp_path / "o.csv") as csv:
        csv.write_frame(1, 0.0, [(0, 0.9, square_face(30, 30)), (1, 0.1, square_face(215, 20)),
                                 (2, 0.5, square_face(330, 30)), (3, 0.5, square_face(500, 300))])
        csv.write_frame(5, 0.1, [(0, 0.9, square_face(130, 30))])     # not a reference frame
        csv.write_frame(11, 0.3, [(0, 0.9, square_face(30, 30))])     # no reference face there: wrong
    score = score_csv(tmp_path / "o.csv", reference)
    assert (score.reference_faces, score.found, score.missed) == (2, 1, [(1, 60)])
    assert (score.our_faces, score.right) == (5, 3)
    assert score.recall == 0.5 and score.precision == 0.6


def test_overlapping_reference_boxes_keep_the_best_and_corners_are_not_sizes():
    boxes = np.array([[0, 0, 100, 100], [5, 5, 105, 105], [300, 300, 340, 340], [90, 90, 130, 130]], float)
    kept = _suppressed(boxes, np.array([0.5, 0.9, WEAK, 0.8]))
    # The two big boxes are one face (the better kept); the small ones overlap neither
    # (read as x, y, width, height the first box would cover all of them).
    assert kept[:, 4].tolist() == [0.9, 0.8, WEAK] and kept[0, :4].tolist() == [5, 5, 105, 105]


@pytest.mark.parametrize("args, message", [
    (["--reference", "/nonexistent/centerface.onnx"], "--reference: /nonexistent/centerface.onnx: no such file"),
    (["--reference-every", "0"], "--reference-every: expected 1 or more, got 0"),
])
def test_bad_reference_arguments(args, message, capsys, tmp_path):
    assert bench_main(["--footage", str(tmp_path), "--peers", str(tmp_path), "--no-baseline", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and message in err and "Traceback" not in err


def test_a_file_that_is_not_a_model(capsys, tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    assert bench_main(["--footage", str(tmp_path), "--peers", str(tmp_path), "--no-baseline",
                       "--reference", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "not a model OpenCV can read" in err


def test_the_reference_finds_the_sample_face_once():
    from pathlib import Path

    from tracker.evaluation.bench import SAMPLE_CLIP
    from tracker.evaluation.recall import CenterFace
    from tracker.io.sources import open_source
    onnx = Path.home() / ".cache" / "facetrack-peers" / "centerface" / "centerface.onnx"
    if not onnx.is_file():
        pytest.skip(f"no reference model at {onnx} (../shared/peers/setup-centerface.sh fetches it)")
    source = open_source(str(SAMPLE_CLIP))
    try:
        image = next(iter(source)).image
    finally:
        source.close()
    reference = CenterFace(onnx)
    found = reference.detect(image, STRONG)
    assert len(found) == 1
    taller = np.zeros((image.shape[0] + 120, image.shape[1], 3), np.uint8)     # another input size, then back
    taller[:image.shape[0]] = image
    np.testing.assert_allclose(reference.detect(taller, STRONG)[:, :4], found[:, :4], atol=8.0)   # resized otherwise
    np.testing.assert_array_equal(reference.detect(image, STRONG), found)
    x0, y0, x1, y1, score = found[0]
    assert 60 < x1 - x0 < 250 and 0 <= x0 < x1 <= image.shape[1] and 0 <= y0 < y1 <= image.shape[0] and score >= STRONG


def test_the_footage_table_shows_each_trackers_recall_and_says_why_one_is_missing():
    from tracker.evaluation.footage import format_footage
    run = {"seconds": 2.0, "faces_on": 9, "first_frame_s": 0.5, "peak_rss_mb": 300}
    score = {"recall": 0.5, "precision": 1.0, "reference_faces": 4, "missed": [(11, 52), (21, 44)]}
    row = {"clip": "c", "frames": 10, "detector_share": 0.1, "crops_per_face": 1.0,
           "ours": {**run, "reference": score}, "dlib": {**run, "reference": {**score, "recall": 0.25}},
           "mediapipe": run}
    lines = format_footage([row], "").splitlines()
    assert "| c | 4 | 0.50 / 0.25 / - | 1.00 / 1.00 / - | 11: 52, 21: 44 |" in lines
    assert format_footage([{**row, "ours": run, "dlib": run}], "", "no reference").endswith(
        "Recall not measured: no reference")
