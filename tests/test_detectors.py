"""Detectors, box matching and calibration."""
import json
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import shared

from tracker.detection.blazeface import available as blazeface_available
from tracker.detection.calibration import BoxCalibration
from tracker.detection.detectors import (
    Detector,
    DetectorUnavailable,
    DlibCnnDetector,
    DlibHogDetector,
    HaarDetector,
    default_detector,
    detector_chain,
    dlib_available,
    fallback_detectors,
)
from tracker.geometry.boxes import iou, landmark_box, match_detections
from tracker.training.calibration import fit_calibration

IMAGES = shared.SHARED_DATA / "images"
AFW = shared.SHARED_DATA / "300w-subset" / "afw"

needs_shared = shared.needs_shared(IMAGES)
needs_afw = shared.needs_shared(AFW)
needs_dlib = pytest.mark.skipif(not dlib_available(), reason="dlib (dlib-bin) not importable")


def _read_pts(path: Path) -> np.ndarray:
    """A 300-W .pts file as 0-based (68, 2) landmarks."""
    lines = [line.strip() for line in path.read_text().splitlines()]
    start = lines.index("{") + 1
    return np.array([[float(v) for v in line.split()] for line in lines[start:start + 68]]) - 1


def _image(name: str) -> np.ndarray:
    image = cv2.imread(str(IMAGES / name))
    assert image is not None
    return image


# ----------------------------------------------------------------------------- boxes

def test_iou_hand_values():
    assert iou((0, 0, 2, 2), (0, 0, 2, 2)) == pytest.approx(1.0)
    assert iou((0, 0, 2, 2), (3, 3, 5, 5)) == 0.0
    assert iou((0, 0, 2, 2), (1, 0, 3, 2)) == pytest.approx(1 / 3)
    assert iou((0, 0, 4, 4), (1, 1, 3, 3)) == pytest.approx(0.25)
    assert iou((0, 0, 2, 2), (2, 0, 4, 2)) == 0.0          # touching edges
    assert iou((1, 1, 1, 1), (1, 1, 1, 1)) == 0.0          # empty boxes
    np.testing.assert_allclose(iou([[0, 0, 2, 2, 0.9], [1, 0, 3, 2, 0.1]], (0, 0, 2, 2)),
                               [1.0, 1 / 3])


def test_match_detections():
    dets = np.array([[0, 0, 10, 10, 0.9], [20, 20, 40, 40, 0.8], [22, 22, 41, 41, 0.1]])
    assert match_detections(dets, (21, 21, 41, 41)) == 2
    assert match_detections(dets, (100, 100, 120, 120)) == -1
    assert match_detections(dets, (0, 0, 10, 30), min_iou=0.3) == 0
    assert match_detections(dets, (0, 0, 10, 30), min_iou=0.5) == -1
    assert match_detections(np.zeros((0, 5)), (0, 0, 1, 1)) == -1


# ----------------------------------------------------------------------------- calibration

def _synthetic_pairs(rng, n, ax, ay, b, noise=0.01):
    centre = rng.uniform(100, 500, size=(n, 2))
    side = rng.uniform(40, 200, size=n)
    det = np.concatenate([centre - side[:, None] / 2, centre + side[:, None] / 2], axis=1)
    true_c = centre + side[:, None] * (np.array([ax, ay]) + rng.normal(0, noise, (n, 2)))
    true_s = side * np.exp(b + rng.normal(0, noise, n))
    gt = np.concatenate([true_c - true_s[:, None] / 2, true_c + true_s[:, None] / 2], axis=1)
    return det, gt


def test_fit_recovers_known_offset_and_scale_despite_outliers():
    rng = np.random.default_rng(0)
    det, gt = _synthetic_pairs(rng, 300, ax=-0.03, ay=0.12, b=np.log(1.15))
    gt[:30] = gt[:30][:, [1, 0, 3, 2]] * 0.5 + 7            # 10 % gross outliers
    cal = BoxCalibration.fit(det, gt, detector="synthetic")
    assert cal.ax == pytest.approx(-0.03, abs=0.005)
    assert cal.ay == pytest.approx(0.12, abs=0.005)
    assert cal.b == pytest.approx(np.log(1.15), abs=0.005)
    assert cal.n_fit == 300 and cal.detector == "synthetic"
    assert iou(cal.apply(det[30:]), gt[30:]).mean() > 0.93
    assert iou(det[30:], gt[30:]).mean() < 0.8


def test_fit_spread_reflects_noise():
    det, gt = _synthetic_pairs(np.random.default_rng(1), 2000, 0, 0, 0, noise=0.05)
    spread = BoxCalibration.fit(det, gt).spread
    np.testing.assert_allclose(spread, 0.05, rtol=0.15)


def test_identity_and_apply_shapes():
    cal = BoxCalibration.identity("dlib")
    np.testing.assert_allclose(cal.apply((0, 0, 80, 120)), (-10, 10, 90, 110))  # mean side
    rows = np.array([[0, 0, 10, 10, 0.5], [5, 5, 25, 25, 0.7]], np.float32)
    assert cal.apply(rows).shape == (2, 4)
    np.testing.assert_allclose(cal.apply(rows), rows[:, :4])
    shifted = BoxCalibration(ax=0.1, ay=-0.2, b=np.log(2.0)).apply((0, 0, 10, 10))
    np.testing.assert_allclose(shifted, (-4, -7, 16, 13))


def test_to_dict_round_trip_is_json():
    cal = BoxCalibration(detector="haar", ax=0.01, ay=0.14, b=-0.15, spread=(0.1, 0.04, 0.08),
                         n_fit=12)
    data = json.loads(json.dumps(cal.to_dict()))
    assert BoxCalibration.from_dict(data) == cal
    assert BoxCalibration.from_dict({"ax": 0, "ay": 0, "b": 0}) == BoxCalibration(
        detector="unknown")


def test_fit_needs_pairs():
    with pytest.raises(ValueError):
        BoxCalibration.fit(np.zeros((0, 4)), np.zeros((0, 4)))


# ----------------------------------------------------------------------------- detectors

def test_unknown_name_and_missing_dlib(monkeypatch):
    with pytest.raises(ValueError):
        default_detector("retinaface")
    monkeypatch.setitem(sys.modules, "dlib", None)          # makes `import dlib` fail
    assert not dlib_available()
    with pytest.raises(DetectorUnavailable) as err:
        default_detector("dlib")
    assert isinstance(err.value, RuntimeError)
    assert isinstance(default_detector("auto"), HaarDetector)


def _check_rows(rows):
    assert rows.dtype == np.float32 and rows.ndim == 2 and rows.shape[1] == 5
    assert np.all(np.diff(rows[:, 4]) <= 0)
    assert np.all(rows[:, 2] > rows[:, 0]) and np.all(rows[:, 3] > rows[:, 1])


@needs_shared
def test_haar_finds_the_single_face_in_colour_and_gray():
    detector = HaarDetector()
    image = _image("single_face.jpg")
    for img in (image, cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)):
        rows = detector.detect(img)
        _check_rows(rows)
        assert len(rows) >= 1
    assert len(detector.detect(np.zeros((100, 100, 3), np.uint8))) == 0


@needs_shared
@needs_dlib
def test_dlib_finds_one_and_four_faces():
    detector = default_detector("dlib")
    assert isinstance(detector, DlibHogDetector) and isinstance(detector, Detector)
    single = detector.detect(_image("single_face.jpg"))
    multi = detector.detect(_image("multi_face.jpg"))
    for rows in (single, multi):
        _check_rows(rows)
    assert len(single) == 1 and len(multi) == 4
    gray = detector.detect(cv2.cvtColor(_image("single_face.jpg"), cv2.COLOR_BGR2GRAY))
    assert len(gray) == 1 and iou(gray[0], single[0]) > 0.5
    haar = HaarDetector().detect(_image("single_face.jpg"))
    assert match_detections(haar, single[0], min_iou=0.3) >= 0


@needs_shared
@needs_dlib
def test_the_cached_frontal_face_detector_is_dlib_s_own(monkeypatch, tmp_path):
    import dlib

    from tracker.detection import detectors as detect
    from tracker.io.sources import VideoSource
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    built = detect.frontal_face_detector(dlib)                  # built, and saved
    assert list((tmp_path / "facetrack").glob("dlib-*-frontal-face.svm"))
    monkeypatch.setattr(dlib, "get_frontal_face_detector", lambda: pytest.fail("built again instead of read"))
    cached = detect.frontal_face_detector(dlib)
    sample = Path(__file__).resolve().parents[1] / "tracker" / "assets" / "sample" / "vid.mp4"
    images = [_image("multi_face.jpg")] + [f.image for _, f in zip(range(3), VideoSource(sample))]
    for image in images:
        rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        for upsample in (0, 1):
            a, b = built.run(rgb, upsample, -0.5), cached.run(rgb, upsample, -0.5)
            assert [str(r) for r in a[0]] == [str(r) for r in b[0]] and list(a[1]) == list(b[1])
            assert list(a[2]) == list(b[2])


def _cnn_available() -> bool:
    try:
        DlibCnnDetector()
    except DetectorUnavailable:
        return False
    return True


@needs_dlib
@needs_afw
@pytest.mark.skipif(not dlib_available() or not _cnn_available(),
                    reason="dlib's CNN detector weights (face-recognition-models) not installed")
def test_cnn_fallback_finds_a_turned_face_the_chain_misses():
    """A training face (AFW, turned away) that HOG and Haar both miss; the CNN finds it (and
    BlazeFace, where installed, which is why it leads the chain)."""
    path = AFW / "1372188757_1.jpg"
    image, truth = cv2.imread(str(path)), landmark_box(_read_pts(path.with_suffix(".pts")))
    for detector in detector_chain("dlib+haar", upsample=1):
        assert match_detections(detector.detect(image), truth) < 0
    if blazeface_available():
        assert match_detections(detector_chain("blazeface")[0].detect(image), truth) >= 0
    assert [d.name for d in fallback_detectors("auto")][-1] == "cnn"
    (cnn,) = fallback_detectors("cnn")
    rows = cnn.detect(image)
    _check_rows(rows)
    assert match_detections(rows, truth) >= 0
    assert len(cnn.detect(np.zeros((120, 120, 3), np.uint8))) == 0


def test_fallback_names(monkeypatch):
    assert fallback_detectors("none") == []
    with pytest.raises(ValueError):
        fallback_detectors("hog")
    monkeypatch.setitem(sys.modules, "dlib", None)
    # without dlib: Haar behind BlazeFace for stills (BlazeFace leads the chain), else nothing
    assert [d.name for d in fallback_detectors("auto")] == (["haar"] if blazeface_available() else [])
    with pytest.raises(DetectorUnavailable):
        fallback_detectors("cnn")


@pytest.mark.slow
@needs_dlib
@needs_afw
def test_fit_calibration_on_afw_improves_overlap():
    paths = sorted(AFW.glob("*.jpg"))[:60]
    landmarks = [_read_pts(p.with_suffix(".pts")) for p in paths]
    cal, stats = fit_calibration(default_detector("dlib"), paths, landmarks)
    assert stats["n_images"] == 60
    assert stats["detection_rate"] > 0.8
    assert stats["mean_iou_after"] > stats["mean_iou_before"]
    assert cal.detector == "dlib" and cal.n_fit == stats["n_detected"]
    json.dumps(stats)


def test_the_fallback_does_not_run_again_what_the_chain_ran():
    if not blazeface_available():
        pytest.skip("without BlazeFace's model file the fallback adds neither HOG nor Haar")
    haar_only = [d.name for d in fallback_detectors("auto", chain=[HaarDetector()])]
    assert "haar" not in haar_only
    assert ("dlib" in haar_only) == dlib_available()
