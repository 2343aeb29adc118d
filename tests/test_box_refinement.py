"""Detection refinement: the ridge fit, the box arithmetic, and a real refiner on real faces."""
import numpy as np
import pytest
import torch

from tracker.detection.box_refinement import BoxRefiner, fit_ridge
from tracker.detection.calibration import BoxCalibration
from tracker.geometry.boxes import iou, landmark_box, shift_boxes
from tracker.training.box_refinement import embed_crops, fit_box_refiner, offset_iou


def _boxes(rng, n):
    centre = rng.uniform(50, 400, (n, 2))
    half = rng.uniform(20, 100, (n, 1))
    return np.concatenate([centre - half, centre + half], axis=1)


def test_fit_ridge_recovers_a_known_linear_map():
    rng = np.random.default_rng(0)
    X = rng.normal(3.0, rng.uniform(0.5, 4.0, 20), (2000, 20))      # uneven scales and offsets
    W_true, b_true = rng.normal(0, 1, (20, 3)), np.array([0.5, -2.0, 7.0])
    Y = X @ W_true + b_true + rng.normal(0, 0.01, (2000, 3))
    W, b = fit_ridge(X, Y, lam=1e-3)
    np.testing.assert_allclose(W, W_true, atol=2e-3)
    np.testing.assert_allclose(b, b_true, atol=2e-2)
    np.testing.assert_allclose(X @ W + b, Y, atol=0.05)
    # A strong penalty shrinks the map towards predicting the mean.
    W_big, b_big = fit_ridge(X, Y, lam=1e9)
    assert np.abs(W_big).max() < 1e-3
    np.testing.assert_allclose(b_big + X.mean(0) @ W_big, Y.mean(0), atol=1e-6)


def test_refiner_with_a_known_map_undoes_a_shift():
    rng = np.random.default_rng(1)
    truth = _boxes(rng, 50)
    offsets = rng.normal(0, 0.1, (50, 3))
    shifted = shift_boxes(truth, -offsets)         # move away, then ask for the way back
    wanted = BoxCalibration.offsets(shifted, truth)
    # Features carry the wanted offsets in three coordinates plus noise the map ignores.
    features = np.concatenate([wanted, rng.normal(0, 1, (50, 5))], axis=1)
    weights = np.zeros((8, 3))
    weights[:3] = np.eye(3)
    refiner = BoxRefiner(weights, np.zeros(3))
    np.testing.assert_allclose(refiner.apply(features, shifted), truth, atol=1e-3)
    np.testing.assert_allclose(offset_iou(refiner.offsets(features), wanted), 1.0, atol=1e-5)
    np.testing.assert_allclose(BoxRefiner.identity(8).apply(features, truth), truth)
    assert (iou(shifted, truth) < 0.999).all()


def test_refiner_dict_round_trip(tmp_path):
    rng = np.random.default_rng(2)
    refiner = BoxRefiner(rng.normal(0, 1, (256, 3)), rng.normal(0, 1, 3), lam=12.5, n_fit=99)
    path = tmp_path / "refiner.pt"
    torch.save(refiner.to_dict(), path)
    back = BoxRefiner.from_dict(torch.load(path, weights_only=True))
    assert back.weights.dtype == np.float32 and back.weights.shape == (256, 3)
    np.testing.assert_array_equal(back.weights, refiner.weights)
    np.testing.assert_array_equal(back.bias, refiner.bias)
    assert (back.lam, back.n_fit) == (12.5, 99)


def test_embed_gives_forward_scores_bit_identical():
    from tracker.classifier.model import load_model
    net = load_model().network
    crops = torch.from_numpy(np.random.default_rng(3).integers(0, 256, (3, 96, 96, 3), dtype=np.uint8))
    with torch.inference_mode():
        embedding, scores = net.embed(crops)
        assert embedding.shape == (3, net.classifier.in_features)
        assert torch.equal(scores, net(crops))


@pytest.mark.slow
def test_refiner_fitted_on_real_faces_moves_a_shifted_box_back(shared_data):
    from tracker.classifier.model import load_model
    from tracker.detection.detectors import default_detector
    from tracker.inference.landmarker import Landmarker
    from tracker.training.data import load_faces, split_by_photo
    torch.set_num_threads(1)
    train, val = split_by_photo(load_faces(shared_data / "300w-subset", ["afw"]), 0.1, 0)
    landmarker = Landmarker(load_model(), [default_detector("auto", upsample=0)])
    refiner, stats = fit_box_refiner(landmarker, train[:40], val[:4], lams=(30.0, 300.0),
                                     rescales=1, jitters=4)
    assert stats["n_train_samples"] > 100
    face = val[0]
    truth = landmark_box(face.landmarks)
    shifted = shift_boxes(truth[None], [[0.1, 0.0, 0.0]])    # 10 % of the side to the right
    features = embed_crops(landmarker, landmarker.crops(face.image, shifted))
    refined = refiner.apply(features, shifted)
    before, after = float(iou(shifted[0], truth)), float(iou(refined[0], truth))
    assert after > before + 0.03, (before, after)
