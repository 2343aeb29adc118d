"""The classification chain written once (Landmarker.classify): crops -> posterior -> landmarks
-> their own box -> drift -> confidence -> the next box; against slow references built from
the landmarker's parts, as the engine and from_boxes computed it before it was shared."""
import numpy as np
import pytest
from clips import sample_face

from tracker.config import TrackingConfig
from tracker.geometry.boxes import box_drift, landmark_box
from tracker.geometry.shapes import from_canonical
from tracker.inference.classification import FollowedFaces
from tracker.inference.landmarker import Landmarker
from tracker.timing import StageTimes


@pytest.fixture(scope="module")
def model():
    from tracker.classifier.model import load_model
    return load_model(None, "cpu", "opencv")


@pytest.fixture(scope="module")
def scene():
    """The sample face and six boxes around it: jittered, one badly off (drifts), one elsewhere."""
    image, points = sample_face(1.0)
    face = landmark_box(points)
    side = face[2] - face[0]
    shifts = [(0, 0, 1), (0.05, -0.03, 1), (-0.08, 0.04, 1.1), (0.3, 0.2, 0.8), (0.02, 0.02, 0.95), (-0.6, 0, 1)]
    boxes = []
    for dx, dy, scale in shifts:
        centre = (face[:2] + face[2:]) / 2 + side * np.array([dx, dy])
        half = scale * side / 2
        boxes.append(np.concatenate([centre - half, centre + half]))
    return image, np.array(boxes)


def reference(landmarker, crops, boxes, refine_box):
    """The chain step by step (Engine._classify before it moved to the landmarker)."""
    refiner = landmarker.box_refiner if refine_box else None
    embeddings = [] if refiner is not None else None
    post, canon = landmarker.classify_crops(crops, embeddings)
    points = from_canonical(canon, boxes)
    own = landmarker.box_from_landmarks(points)
    drift = box_drift(boxes, own)
    conf, features = landmarker.confidence(post, canon, drift)
    next_boxes = own if refiner is None else refiner.apply(embeddings[0], boxes)
    return post, points, own, drift, conf, features, next_boxes


@pytest.mark.parametrize("refine_box", [True, False])
def test_classify_reads_a_batch_as_the_parts_do(model, scene, refine_box):
    assert model.box_refiner is not None and model.confidence is not None    # both branches are real
    landmarker = Landmarker(model, keep_log_probs=True)
    image, boxes = scene
    crops = landmarker.crops(image, boxes)
    post, points, own, drift, conf, features, next_boxes = reference(landmarker, crops, boxes, refine_box)
    got = landmarker.classify(crops, boxes, refine_box)
    np.testing.assert_array_equal(got.boxes, boxes)
    np.testing.assert_array_equal(got.post.classes, post.classes)
    np.testing.assert_array_equal(got.post.log_probs, post.log_probs)
    for name, want in [("points", points), ("own_boxes", own), ("drift", drift), ("confidence", conf),
                       ("features", features), ("next_boxes", next_boxes)]:
        np.testing.assert_array_equal(getattr(got, name), want, err_msg=name)
    assert (np.abs(next_boxes - own).max() > 1) == refine_box     # the refinement moved the boxes


def old_from_boxes(landmarker, image, boxes):
    """Landmarker.from_boxes's passes as they were written before the shared chain."""
    for index in range(max(1, landmarker.passes)):
        embeddings = [] if index == 0 and landmarker.box_refiner is not None else None
        post, canon = landmarker.classify_crops(landmarker.crops(image, boxes), embeddings)
        points = from_canonical(canon, boxes)
        last_boxes, own_boxes = boxes, landmarker.box_from_landmarks(points)
        boxes = own_boxes if embeddings is None else landmarker.box_refiner.apply(embeddings[0], boxes)
    conf, feats = landmarker.confidence(post, canon, box_drift(last_boxes, own_boxes))
    return last_boxes, points, conf, feats, post


@pytest.mark.parametrize("passes, refinement", [(1, True), (2, True), (3, True), (2, False)])
def test_from_boxes_gives_what_its_passes_gave(model, scene, passes, refinement):
    landmarker = Landmarker(model, passes=passes, regressors="off", box_refinement=refinement)
    image, boxes = scene
    last_boxes, points, conf, feats, post = old_from_boxes(landmarker, image, boxes)
    faces = landmarker.from_boxes(image, boxes, features=True)
    np.testing.assert_array_equal([f.box for f in faces], last_boxes)
    np.testing.assert_array_equal([f.landmarks for f in faces], points)
    np.testing.assert_array_equal([f.confidence for f in faces], conf)
    np.testing.assert_array_equal([f.features for f in faces], feats)
    np.testing.assert_array_equal([f.probs for f in faces], post.probs)


def test_followed_faces_classify_the_drifted_ones_again(model, scene):
    """Frames x faces in one batch; those whose landmarks drifted are cropped again around the
    box they suggest and classified once more (Engine._follow before the split)."""
    landmarker = Landmarker(model, keep_log_probs=True)
    image, boxes = scene
    images = [image, np.ascontiguousarray(image[:, ::-1])]            # two frames of three faces
    grid = boxes.reshape(2, 3, 4)
    cfg, times = TrackingConfig(reclassify_drift=0.06), StageTimes()
    got = FollowedFaces(landmarker, cfg, times)(images, grid.copy())
    # the reference, step by step
    flat = grid.reshape(-1, 4).copy()
    post, points, _, drift, conf, _, next_boxes = reference(landmarker, landmarker.crops_of(images, list(grid)), flat,
                                                            cfg.follow_box_refinement)
    redo = np.flatnonzero(drift > cfg.reclassify_drift)
    assert 0 < len(redo) < len(flat)
    new_boxes = next_boxes[redo]
    crops = landmarker.crops_of([images[f] for f in redo // 3], list(new_boxes[:, None]))
    p2, pts2, _, _, c2, _, next2 = reference(landmarker, crops, new_boxes, cfg.follow_box_refinement)
    flat[redo], points[redo], conf[redo], next_boxes[redo] = new_boxes, pts2, c2, next2
    post.classes[redo], post.probs[redo], post.log_probs[redo] = p2.classes, p2.probs, p2.log_probs
    np.testing.assert_array_equal(got.boxes, flat)
    np.testing.assert_array_equal(got.points, points)
    np.testing.assert_array_equal(got.confidence, conf)
    np.testing.assert_array_equal(got.next_boxes, next_boxes)
    np.testing.assert_array_equal(got.post.classes, post.classes)
    np.testing.assert_array_equal(got.post.probs, post.probs)
    np.testing.assert_array_equal(got.post.log_probs, post.log_probs)
    assert times.counts == {"crop": 6, "classify": 6 + len(redo)}
