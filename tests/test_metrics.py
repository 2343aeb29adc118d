import numpy as np
import pytest

from tracker.evaluation import metrics


def _face_with_diagonal_100():
    # Box 60 x 80 -> diagonal 100; outer eye corners 40 px apart.
    pts = np.zeros((68, 2))
    pts[:, 0] = np.linspace(0, 60, 68)
    pts[:, 1] = np.linspace(0, 80, 68)
    pts[36], pts[45] = (10, 40), (50, 40)
    return pts


def test_one_pixel_shift_on_a_100px_diagonal_is_001():
    gt = _face_with_diagonal_100()
    pred = gt + np.array([1.0, 0.0])
    assert metrics.nme(pred, gt, "diag") == pytest.approx(0.01)
    assert metrics.nme(pred, gt, "io") == pytest.approx(1 / 40)
    pred = gt + np.array([3.0, 4.0])   # every point 5 px away
    assert metrics.nme(pred, gt, "diag") == pytest.approx(0.05)


def test_ced_auc_and_failure_rate_worked_by_hand():
    errors = np.array([0.0, 0.02, 0.04, 0.10])
    # CED steps: 1/4 from 0, 2/4 from 0.02, 3/4 from 0.04 on, capped at 0.08.
    # Area = 0.25*0.02 + 0.5*0.02 + 0.75*0.04 = 0.045; / 0.08 = 0.5625.
    assert metrics.auc(errors) == pytest.approx(0.5625)
    assert metrics.failure_rate(errors) == pytest.approx(0.25)
    np.testing.assert_allclose(metrics.ced(errors, np.array([0.0, 0.01, 0.02, 0.08])), [0.25, 0.25, 0.5, 0.75])


def test_auc_matches_numeric_integration_of_the_ced():
    errors = np.random.default_rng(1).exponential(0.03, size=500)
    t = np.linspace(0, 0.08, 80001)
    numeric = np.trapezoid(metrics.ced(errors, t), t) / 0.08
    assert metrics.auc(errors) == pytest.approx(numeric, abs=1e-4)


def test_missing_predictions_are_failures():
    row = metrics.summarize(np.array([0.01, np.inf]), np.array([0.02, np.inf]))
    assert row.failure_rate == 0.5 and row.missing == 1 and row.n == 2
    assert row.nme_diag == pytest.approx(0.01)
    assert row.auc == pytest.approx(0.5 * 0.07 / 0.08)


def test_perfect_predictions():
    assert metrics.auc(np.zeros(3)) == 1.0 and metrics.failure_rate(np.zeros(3)) == 0.0


def test_hard_subset_picks_the_shapes_far_from_the_mean(face):
    rng = np.random.default_rng(0)
    shapes = []
    for i in range(40):
        a = rng.uniform(-0.5, 0.5)
        rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
        s = rng.uniform(0.5, 2) * face @ rot.T + rng.uniform(-50, 50, 2)   # similarity: not "hard"
        shapes.append(s + rng.normal(0, 0.2, s.shape))
    odd = [7, 23, 31, 38]
    for i in odd:   # open the mouth widely: a real deviation from the mean shape
        shapes[i][48:68, 1] += np.linspace(0, 30, 20)
    hard = metrics.hard_subset(np.stack(shapes), fraction=0.1)
    assert sorted(hard) == odd
