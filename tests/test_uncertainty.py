"""Head pose and landmark spread read from a face's class distribution, and their outputs."""
import json

import av
import numpy as np
import pytest

from tracker.distribution.head_pose import class_poses, pose_of_shapes
from tracker.distribution.uncertainty import POSE_COLUMNS, Uncertainty, UncertaintyReader, spread_columns
from tracker.io.draw import render
from tracker.io.landmark_csv import read_landmark_csv
from tracker.io.sinks import CsvSink, JsonlSink
from tracker.io.sources import Frame
from tracker.results import FaceResult, FrameResult


def _templates(face, k=4, seed=0):
    """k jittered copies of a real face in a unit box frame."""
    rng = np.random.default_rng(seed)
    unit = (face - face.min(0)) / np.ptp(face, axis=0).max()
    return (unit[None] + rng.normal(0, 0.02, (k, 68, 2))).astype(np.float32)


def test_one_class_gives_its_own_pose_and_its_width_as_spread(face):
    templates, widths = _templates(face), np.array([0.01, 0.02, 0.03, 0.04], np.float32)
    reader = UncertaintyReader(templates, widths)
    u = reader(np.array([2, 0]), np.array([1.0, 0.0]), np.array([10, 20, 210, 220.0]))
    assert np.allclose(u.pose, reader.poses[2], atol=1e-4) and np.allclose(u.pose_std, 0, atol=1e-3)
    assert np.allclose(u.spread, 0.03 * 200, rtol=1e-5)               # class width times the box side


def test_two_classes_give_the_weighted_mean_and_spread_of_their_poses(face):
    templates, widths = _templates(face), np.full(4, 0.01, np.float32)
    reader = UncertaintyReader(templates, widths)
    p = np.array([0.25, 0.75])
    u = reader(np.array([1, 3]), p, np.array([0, 0, 100, 100.0]))
    poses = reader.poses[[1, 3]].astype(np.float64)
    mean = p @ poses
    assert np.allclose(u.pose, mean, atol=1e-4)
    assert np.allclose(u.pose_std, np.sqrt(p @ (poses - mean) ** 2), atol=1e-4)
    shapes = templates[[1, 3]].astype(np.float64)
    centre = np.einsum("k,kpd->pd", p, shapes)
    var = np.einsum("k,kp->p", p, ((shapes - centre) ** 2).sum(-1) + 2 * 0.01 ** 2) / 2
    assert np.allclose(u.spread, 100 * np.sqrt(var), rtol=1e-4)
    assert list(u.pose_values()) == list(POSE_COLUMNS) and list(u.spread_values()) == list(spread_columns())


def test_the_packaged_class_poses_match_a_fresh_fit():
    from tracker.classifier.model import load_model
    model = load_model()
    stored = class_poses(model.templates)
    fresh = pose_of_shapes(model.templates[::97])
    assert stored.shape == (len(model.templates), 3)
    assert np.abs(stored[::97] - fresh).max() < 1e-3


def _result(face_points, uncertainty=None, name=""):
    image = np.zeros((360, 640, 3), np.uint8)
    face = FaceResult(3, face_points, 0.9, np.array([200, 40, 480, 320.0]), np.array([0]), np.array([1.0]),
                      uncertainty=uncertainty)
    return FrameResult(Frame(1, 0.0, image, name), (face,))


def _uncertainty():
    return Uncertainty(np.array([12.5, -3.0, 4.0]), np.array([2.0, 1.5, 0.5]), np.linspace(1, 8, 68))


def test_csv_and_json_carry_pose_and_spread_when_asked(tmp_path, face):
    result, empty = _result(face, _uncertainty()), FrameResult(Frame(2, 0.04, np.zeros((4, 4, 3), np.uint8)), ())
    for spread in (False, True):
        path = tmp_path / f"o{spread}.csv"
        with CsvSink(path, spread=spread) as sink:
            sink.write(result)
            sink.write(empty)
        rows = read_landmark_csv(path)
        assert list(rows[0].extras)[:6] == list(POSE_COLUMNS)
        assert [float(rows[0].extras[c]) for c in POSE_COLUMNS] == [12.5, 2.0, -3.0, 1.5, 4.0, 0.5]
        assert ("s_67" in rows[0].extras) is spread
        if spread:
            assert float(rows[0].extras["s_0"]) == 1.0 and float(rows[0].extras["s_67"]) == 8.0
        assert not rows[1].success and rows[1].extras["yaw"] == ""
    with open(tmp_path / "o.jsonl", "w") as stream, JsonlSink(stream, spread=True) as sink:
        sink.write(result)
    line = json.loads((tmp_path / "o.jsonl").read_text())
    f = line["faces"][0]
    assert (f["yaw"], f["yaw_std"], f["roll_std"]) == (12.5, 2.0, 0.5) and len(f["spread"]) == 68


def test_overlay_draws_the_uncertainty_only_when_asked(face):
    plain = render(_result(face, _uncertainty()))
    assert np.array_equal(plain, render(_result(face)))                      # nothing extra by default
    drawn = render(_result(face, _uncertainty()), uncertainty=True)
    changed = (drawn != plain).any(axis=2)
    below = changed[int(face[:, 1].max()) + 2:]                              # the gauge, under the face
    assert changed.sum() > 300 and below.sum() > 100


def test_a_face_and_its_mirror_have_opposite_yaw_and_the_truth_agrees(sample_clip, face):
    from tracker.api import Tracker
    tracker = Tracker(device="cpu", threads=2, upsample=0)
    with av.open(str(sample_clip / "vid.mp4")) as container:
        image = next(container.decode(video=0)).to_ndarray(format="bgr24")
    found = tracker.predict(image)
    mirrored = tracker.predict(np.ascontiguousarray(image[:, ::-1]))
    assert found and mirrored
    yaw, yaw_mirror = found[0].uncertainty.pose[0], mirrored[0].uncertainty.pose[0]
    truth = pose_of_shapes(face)[0]
    assert abs(yaw - truth) < 8.0, (yaw, truth)
    assert abs(yaw + yaw_mirror) < 6.0 and abs(yaw) > 5.0, (yaw, yaw_mirror)
    assert np.all(found[0].uncertainty.spread > 0) and found[0].uncertainty.pose_std[0] > 0


@pytest.mark.parametrize("spread", [False, True])
def test_track_writes_the_columns(tmp_path, spread):
    from clips import moving_face_frames, write_clip

    from tracker.cli.track import main
    frames, _ = moving_face_frames(6, step=2.0)
    clip = write_clip(tmp_path / "m.mkv", frames)
    args = [str(clip), "--csv", str(tmp_path / "o.csv"), "--jsonl", str(tmp_path / "o.jsonl"), "--no-progress",
            "--set", "tracking.upsample=0", "--device", "cpu", "-o", str(tmp_path / "o.mp4"), "--draw-uncertainty"]
    args += ["heatmap", "--spread"] if spread else []
    assert main(args) == 0
    with av.open(str(tmp_path / "o.mp4")) as container:
        assert sum(1 for _ in container.decode(video=0)) == 6
    rows = read_landmark_csv(tmp_path / "o.csv")
    lines = [json.loads(t) for t in (tmp_path / "o.jsonl").read_text().splitlines()]
    assert len(rows) == len(lines) == 6
    for row, line in zip(rows, lines):
        f = line["faces"][0]
        assert [float(row.extras[c]) for c in POSE_COLUMNS] == pytest.approx([f[c] for c in POSE_COLUMNS], abs=0.011)
        assert ("spread" in f) is spread and ("s_0" in row.extras) is spread


def test_the_heat_map_peaks_at_each_landmark_and_falls_as_its_gaussian(face):
    from tracker.distribution.uncertainty import landmark_heatmap
    templates = _templates(face, k=2)
    widths = np.array([0.02, 0.02], np.float32)
    box = np.array([100, 50, 300, 250.0])
    heat = landmark_heatmap(np.array([0]), np.array([1.0]), templates, widths, box, (360, 640))
    points = 200 * templates[0].astype(np.float64) + np.array([200.0, 150.0])
    x, y = np.round(points[33]).astype(int)
    assert heat.shape == (360, 640) and heat.max() <= 1.0 and heat[y, x] > 0.9
    sigma = 0.02 * 200
    off = int(round(points[33, 0] + 2 * sigma)), int(round(points[33, 1]))
    assert heat[off[1], off[0]] < 0.25                                # exp(-2) = 0.14 two sigmas out
    assert heat[5, 5] == 0.0                                           # far from the face
    edge = landmark_heatmap(np.array([0, 1]), np.array([0.5, 0.5]), templates, widths,
                            box - np.array([250, 0, 250, 0.0]), (360, 640))   # half out of the frame: clipped
    assert edge.shape == (360, 640) and edge.max() > 0.9
