"""Conditioning the pose distribution on clicks (eq. 10) and the suggested next click."""
import itertools

import numpy as np
import pytest
import torch

from tracker.distribution.clicks import Click, condition, expected_errors, next_click
from tracker.geometry.shapes import from_canonical

BOX = np.array([0.0, 0.0, 100.0, 100.0])        # canonical (u, v) -> pixels 50 + 100 (u, v)


def three_classes():
    """Three templates, equal except landmark 10 at x = 30, 50, 70 px; class 0 most probable."""
    base = np.random.default_rng(0).uniform(-0.4, 0.4, (68, 2))
    templates = np.stack([base.copy() for _ in range(3)])
    templates[:, 10, 0] = [-0.2, 0.0, 0.2]
    return templates, np.log(np.array([0.5, 0.3, 0.2]))


def test_a_click_keeps_only_the_consistent_classes_and_the_clicked_point():
    templates, log_probs = three_classes()
    y = 50 + 100 * templates[0, 10, 1]
    out = condition(log_probs, templates, BOX, [Click(10, 69.0, y, tolerance=5)])
    assert out.consistent == 1 and list(out.classes) == [2]
    expected = from_canonical(templates[2], BOX)
    expected[10] = (69.0, y)
    np.testing.assert_allclose(out.landmarks, expected)
    plain = condition(log_probs, templates, BOX, [])
    np.testing.assert_allclose(plain.probs, [0.5, 0.3, 0.2], rtol=1e-6)
    np.testing.assert_allclose(plain.landmarks[10, 0], 0.5 * 30 + 0.3 * 50 + 0.2 * 70)


def test_no_consistent_class_falls_back_to_the_nearest_and_widths_widen_the_tolerance():
    templates, log_probs = three_classes()
    y = 50 + 100 * templates[0, 10, 1]
    far = condition(log_probs, templates, BOX, [Click(10, 95.0, y, tolerance=5)], nearest=1)
    assert far.consistent == 0 and list(far.classes) == [2]
    wide = condition(log_probs, templates, BOX, [Click(10, 60.0, y, tolerance=5)], widths=np.full(3, 0.1))
    assert wide.consistent == 2 and set(wide.classes) == {1, 2}          # 10 px of spread reaches both


def test_the_suggested_click_is_the_landmark_the_classes_disagree_on():
    templates, log_probs = three_classes()
    shapes = from_canonical(templates, BOX)
    errors = expected_errors(np.exp(log_probs), shapes, tolerance=5)
    assert next_click(np.exp(log_probs), shapes, tolerance=5) == 10
    assert errors[10] == pytest.approx(0.0) and np.all(np.delete(errors, 10) > 0)
    assert next_click(np.exp(log_probs), shapes, tolerance=5, exclude=[10]) != 10


@pytest.mark.slow
def test_clicks_lower_the_error_on_sample_frames(sample_clip):
    """Classification alone on 15 frames of the bundled clip (its dlib pseudo-labels): a click
    on the true nose tip, and one on the suggested landmark, both lower the mean NME."""
    from tracker.classifier.model import load_model
    from tracker.detection.detectors import detector_chain
    from tracker.evaluation.metrics import nme
    from tracker.inference.landmarker import Landmarker
    from tracker.io.annotations import read_300vw
    from tracker.io.sources import VideoSource
    torch.set_num_threads(1)
    model = load_model()
    labels = read_300vw(sample_clip).landmarks
    landmarker = Landmarker(model, detector_chain("auto", upsample=0), keep_log_probs=True, regressors="off", box_refinement=False)
    errors = []
    for frame in itertools.islice(VideoSource(sample_clip / "vid.mp4"), 0, 472, 32):
        est, truth = landmarker(frame.image)[0], labels[frame.index]
        side = est.box[2] - est.box[0]
        base = condition(est.log_probs, model.templates, est.box, [], widths=model.widths)
        j = next_click(base.probs, from_canonical(model.templates[base.classes], est.box), 5.0,
                       spread_px=model.widths[base.classes] * side)
        nose = condition(est.log_probs, model.templates, est.box, [Click(30, *truth[30])], widths=model.widths)
        best = condition(est.log_probs, model.templates, est.box, [Click(j, *truth[j])], widths=model.widths)
        errors.append([nme(x.landmarks, truth) for x in (base, nose, best)])
    base_err, nose_err, best_err = np.mean(errors, axis=0)
    assert nose_err < base_err and best_err < base_err


def test_the_gaussian_likelihood_is_the_mixtures_exact_posterior():
    templates, log_probs = three_classes()
    y = 50 + 100 * templates[0, 10, 1]
    widths = np.array([0.02, 0.05, 0.1])
    click = Click(10, 58.0, y, tolerance=4)
    out = condition(log_probs, templates, BOX, [click], widths=widths, likelihood="gaussian")
    var = 4.0 ** 2 + (100 * widths) ** 2                             # click noise + the class's own width
    d = np.array([28.0, 8.0, 12.0])                                  # the click from x = 30, 50, 70
    post = np.exp(log_probs) * np.exp(-d ** 2 / (2 * var)) / (2 * np.pi * var)
    post /= post.sum()
    order = np.argsort(-post)
    assert list(out.classes) == list(order)
    np.testing.assert_allclose(out.probs, post[order], rtol=1e-5)
    expected_x = (post * np.array([30.0, 50.0, 70.0])).sum()
    np.testing.assert_allclose(out.landmarks[11], (post[:, None] * from_canonical(templates[:, 11], BOX)).sum(0))
    assert out.landmarks[10, 0] == 58.0 and 30.0 < expected_x < 70.0
    # far from every class: all three keep some weight, the nearest the most (omega would keep one)
    far = condition(log_probs, templates, BOX, [Click(10, 95.0, y, tolerance=5)], widths=widths,
                    likelihood="gaussian")
    assert far.classes[0] == 2 and len(far.classes) == 3
    with pytest.raises(ValueError, match="unknown click likelihood"):
        condition(log_probs, templates, BOX, [click], likelihood="maybe")
