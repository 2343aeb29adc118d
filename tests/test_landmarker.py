import numpy as np
import torch

from tracker.distribution.posterior import expected_shape, landmark_spread, top_k_posterior
from tracker.geometry.boxes import landmark_box
from tracker.geometry.shapes import flip_horizontal, to_canonical
from tracker.inference.landmarker import mirror_canonical, posterior_confidence
from tracker.training.data import canonical_to_crop, crop_to_canonical


def test_mirror_canonical_matches_flipping_the_crop(face):
    canon = to_canonical(face, landmark_box(face))
    in_crop = canonical_to_crop(canon, 96, 1.3)
    flipped = crop_to_canonical(flip_horizontal(in_crop, 96), 96, 1.3)
    np.testing.assert_allclose(mirror_canonical(flipped), canon, atol=1e-9)


def test_posterior_reading_on_a_hand_made_distribution():
    templates = np.zeros((4, 68, 2))
    templates[1] += 0.1
    templates[2] -= 0.1
    templates[3] += 1.0
    scores = torch.log(torch.tensor([[0.5, 0.25, 0.25, 0.0 + 1e-12]]))
    post = top_k_posterior(scores, 3)
    assert sorted(post.classes[0].tolist()) == [0, 1, 2] and abs(post.mass[0] - 1) < 1e-6
    np.testing.assert_allclose(expected_shape(post, templates), np.zeros((1, 68, 2)), atol=1e-6)
    # Within tau = 0.05 of the estimate only class 0 lies (classes 1, 2 are 0.1*sqrt(2) away).
    conf = posterior_confidence(post, templates, expected_shape(post, templates), tau=0.05)
    assert abs(conf[0] - 0.5) < 1e-6
    # Mixture spread: per-coordinate variance 0.5*0.01 (templates) + sigma^2 (widths).
    spread = landmark_spread(post, templates, np.full(4, 0.02))
    np.testing.assert_allclose(spread, np.sqrt(0.005 + 0.02 ** 2), rtol=1e-5)


def test_test_time_mirroring_makes_the_regressors_mirror_symmetric(sample_clip):
    """With flip_average the regressors average the face and its mirror image, so the
    mirrored image with the mirrored start gives exactly the mirrored result (the cascade
    alone does not)."""
    from tracker.classifier.model import load_model
    from tracker.inference.landmarker import Landmarker
    from tracker.io.annotations import read_pts
    from tracker.io.sources import VideoSource
    model = load_model(None, "cpu", "opencv")
    image = next(iter(VideoSource(sample_clip / "vid.mp4"))).image
    start = read_pts(sample_clip / "annot" / "000001.pts")[None] + np.random.default_rng(0).normal(0, 2, (1, 68, 2))
    width, classes = image.shape[1], np.zeros(1, np.int64)
    mirrored_image = np.ascontiguousarray(image[:, ::-1])
    outputs = {}
    for flip in (False, True):
        landmarker = Landmarker(model, flip_average=flip)
        a = landmarker.regress(image, start, classes)
        b = landmarker.regress(mirrored_image, flip_horizontal(start, width), classes)
        outputs[flip] = np.abs(flip_horizontal(b, width) - a).max()
        assert np.abs(a - start).mean() > 0.3                      # the regressors moved the points
    assert outputs[True] < 1e-3 < outputs[False]


def test_a_hopeless_first_pass_gets_no_second_pass():
    """``hopeless``: a face whose first pass is less sure than it is classified once; the
    others get every pass, the same as without the setting."""
    from clips import sample_face

    from tracker.classifier.model import load_model
    from tracker.inference.landmarker import Landmarker
    image, points = sample_face(scale=1.0)
    face = landmark_box(points)
    blank = np.array([5.0, 5.0, 60.0, 60.0])                  # the frame's corner: no face
    landmarker = Landmarker(load_model(), passes=2)
    plain = landmarker.from_boxes(image, np.stack([face, blank]), regress=False)
    before = landmarker.crops_classified
    kept = landmarker.from_boxes(image, np.stack([face, blank]), regress=False, hopeless=0.05)
    assert plain[1].confidence < 0.05 < plain[0].confidence
    assert landmarker.crops_classified - before == 3          # 2 passes for the face, 1 for the corner
    np.testing.assert_allclose(kept[0].landmarks, plain[0].landmarks, atol=0.01)   # batch of 1, not 2
