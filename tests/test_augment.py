"""Training augmentation: flips, one-warp geometry, photometric changes, occluders."""
import dataclasses

import numpy as np
import pytest

from tracker.config import AugmentConfig
from tracker.geometry.boxes import landmark_box, shift_boxes
from tracker.geometry.crop import crop_matrix, transform_points, warp_crop
from tracker.geometry.shapes import MIRROR
from tracker.training.augment import (
    augment_sample,
    crop_sample,
    flip_box,
    flip_sample,
    random_similarity,
    rescale_sample,
)

H, W, S = 200, 240, 96
GEOMETRY_ONLY = dataclasses.replace(AugmentConfig.off(), rotate_deg=15.0, scale=0.1,
                                    shift=0.08)


def _landmarks(seed=0) -> np.ndarray:
    """68 points scattered over a face-sized region of an H x W image."""
    return np.random.default_rng(seed).uniform([80, 60], [160, 140], size=(68, 2))


def _texture(seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (H, W, 3), dtype=np.uint8)


def _blob_image(point, sigma=2.0) -> np.ndarray:
    """A Gaussian dot centred at a sub-pixel (x, y)."""
    yy, xx = np.mgrid[0:H, 0:W]
    dot = np.exp(-((xx - point[0]) ** 2 + (yy - point[1]) ** 2) / (2 * sigma ** 2))
    return np.repeat((255 * dot).astype(np.uint8)[..., None], 3, axis=2)


def _centroid(crop: np.ndarray) -> np.ndarray:
    weight = crop[..., 0].astype(np.float64)
    yy, xx = np.mgrid[0:crop.shape[0], 0:crop.shape[1]]
    return np.array([(weight * xx).sum(), (weight * yy).sum()]) / weight.sum()


def test_flip_twice_is_identity():
    image, pts = _texture(), _landmarks()
    image2, pts2 = flip_sample(*flip_sample(image, pts))
    np.testing.assert_array_equal(image2, image)
    np.testing.assert_allclose(pts2, pts)
    box = np.array([10.0, 20.0, 90.0, 100.0])
    np.testing.assert_allclose(flip_box(flip_box(box, W), W), box)


def test_flipped_landmarks_land_on_mirrored_pixels():
    pts = np.round(_landmarks())
    image = np.zeros((H, W), np.uint8)
    x, y = pts[36].astype(int)
    image[y, x] = 255
    flipped, new_pts = flip_sample(image, pts)
    fy, fx = np.unravel_index(np.argmax(flipped), flipped.shape)
    assert np.hypot(fx - new_pts[45, 0], fy - new_pts[45, 1]) <= 1.0
    np.testing.assert_allclose(flip_box(landmark_box(pts), W), landmark_box(new_pts))


def test_no_augmentation_equals_plain_crop():
    image, pts = _texture(), _landmarks()
    box = landmark_box(pts) + [3, -2, 5, 4]
    crop, out = augment_sample(image, pts, box, S, 1.3, np.random.default_rng(5),
                               AugmentConfig.off())
    m = crop_matrix(box, S, 1.3)
    np.testing.assert_array_equal(crop, warp_crop(image, m, S))
    np.testing.assert_allclose(out, transform_points(pts, m), atol=1e-4)
    plain, plain_pts = crop_sample(image, pts, box, S, 1.3)
    np.testing.assert_array_equal(crop, plain)
    np.testing.assert_array_equal(out, plain_pts)


@pytest.mark.parametrize("flip_p", [0.0, 1.0])
def test_geometry_moves_pixels_and_landmarks_together(flip_p):
    pts = _landmarks(3)
    cfg = dataclasses.replace(GEOMETRY_ONLY, flip_p=flip_p)
    index = MIRROR if flip_p else np.arange(68)
    for seed in range(3):
        for i in (0, 8, 30, 36, 48, 62):
            crop, out = augment_sample(_blob_image(pts[i]), pts, None, S, 1.3,
                                       np.random.default_rng(seed), cfg)
            # the dot drawn at point i is returned as point MIRROR[i] after a flip
            assert np.linalg.norm(_centroid(crop) - out[index[i]]) < 1.5


def test_same_seed_same_output_and_seeds_differ():
    image, pts = _texture(), _landmarks()
    cfg = dataclasses.replace(AugmentConfig(), occlude_p=0.5, blur_p=0.5, noise_std=3.0)
    runs = [augment_sample(image, pts, None, S, 1.3, np.random.default_rng(s), cfg)
            for s in (7, 7, 8)]
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    np.testing.assert_array_equal(runs[0][1], runs[1][1])
    assert not np.array_equal(runs[0][1], runs[2][1])


def test_output_types_and_gray_input():
    pts = _landmarks()
    for image in (_texture(), _texture()[..., 0]):
        crop, out = augment_sample(image, pts, landmark_box(pts), S, 1.3,
                                   np.random.default_rng(0))
        assert crop.shape == (S, S, 3) and crop.dtype == np.uint8
        assert out.shape == (68, 2) and out.dtype == np.float32


def test_occluder_covers_pixels_but_keeps_landmarks():
    image, pts = _texture(), _landmarks()
    clear = dataclasses.replace(AugmentConfig.off(), occlude_max_frac=0.4)
    occluded = dataclasses.replace(clear, occlude_p=1.0)
    changed = 0
    for seed in range(5):
        a, pa = augment_sample(image, pts, None, S, 1.3, np.random.default_rng(seed), clear)
        b, pb = augment_sample(image, pts, None, S, 1.3, np.random.default_rng(seed), occluded)
        np.testing.assert_array_equal(pa, pb)
        covered = np.any(a != b, axis=2).mean()
        assert covered <= 0.4 + 0.02
        changed += covered > 0.01
    assert changed >= 4


def test_photometric_changes_colour_not_geometry():
    image, pts = _texture(), _landmarks()
    colour = dataclasses.replace(AugmentConfig.off(), brightness=0.3, contrast=0.3,
                                 saturation=0.3, grayscale_p=1.0, blur_p=1.0)
    a, pa = augment_sample(image, pts, None, S, 1.3, np.random.default_rng(1), colour)
    b, pb = crop_sample(image, pts, None, S, 1.3)
    np.testing.assert_array_equal(pa, pb)
    assert not np.array_equal(a, b)
    assert np.array_equal(a[..., 0], a[..., 1]) and np.array_equal(a[..., 1], a[..., 2])


def test_random_similarity_ranges_and_the_box_it_moves():
    rng = np.random.default_rng(0)
    cfg = AugmentConfig()
    draws = [random_similarity(rng, cfg) for _ in range(500)]
    angles = np.array([d[0] for d in draws])
    scales = np.array([d[1] for d in draws])
    shifts = np.array([d[2] for d in draws])
    assert np.abs(angles).max() <= 15 and np.abs(angles).max() > 12
    assert np.abs(scales).max() <= np.log(1.1) + 1e-12
    assert shifts.shape == (500, 2) and np.abs(shifts).max() <= 0.08
    assert random_similarity(rng, AugmentConfig.off())[:2] == (0.0, 0.0)
    np.testing.assert_allclose(shift_boxes((0, 0, 100, 100), (0.1, -0.2, np.log(2.0))),
                               (-40, -70, 160, 130))


def test_rescale_sample_keeps_landmarks_on_the_same_pixels():
    image = np.zeros((100, 80, 3), np.uint8)
    image[40, 30] = 255
    small, points = rescale_sample(image, np.array([[30.0, 40.0]]), np.random.default_rng(0), (0.5, 0.5))
    assert small.shape == (50, 40, 3)
    np.testing.assert_allclose(points, [[14.75, 19.75]])       # pixel centres: (x + 0.5) / 2 - 0.5


def test_config_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        AugmentConfig().flip_p = 1.0
