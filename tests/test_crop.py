"""Crop matrices, warps and their inverses."""
import cv2
import numpy as np
import pytest

from tracker.geometry.crop import compose, crop_batch, crop_matrix, invert, transform_points, warp_crop


def test_box_centre_maps_to_crop_centre_and_region_to_edges():
    box = (40.0, 60.0, 140.0, 160.0)
    m = crop_matrix(box, 64, margin=1.3)
    half = 1.3 * 100 / 2
    pts = np.array([[90.0, 110.0], [90 - half, 110 - half], [90 + half, 110 + half]])
    out = transform_points(pts, m)
    np.testing.assert_allclose(out, [[31.5, 31.5], [-0.5, -0.5], [63.5, 63.5]], atol=1e-9)


def test_non_square_box_uses_mean_side():
    m = crop_matrix((0, 0, 80, 120), 50, margin=1.0)
    np.testing.assert_allclose(m[:, :2], np.eye(2) * 0.5)


def test_rotation_follows_opencv_convention():
    box = (10.0, 20.0, 110.0, 120.0)
    m = crop_matrix(box, 100, margin=1.0, angle_deg=30.0)
    expected = cv2.getRotationMatrix2D((60.0, 70.0), 30.0, 1.0)
    expected[:, 2] += 49.5 - 60.0, 49.5 - 70.0
    np.testing.assert_allclose(m, expected, atol=1e-9)
    # A point right of the centre ends up above it after a 90 degree rotation.
    right = transform_points(np.array([[70.0, 70.0]]), crop_matrix(box, 100, 1.0, 90.0))
    np.testing.assert_allclose(right, [[49.5, 39.5]], atol=1e-9)


@pytest.mark.parametrize("angle", [0.0, 17.0, -45.0])
def test_points_round_trip(angle):
    rng = np.random.default_rng(0)
    pts = rng.uniform(0, 300, size=(68, 2))
    m = crop_matrix((50, 70, 210, 230), 224, 1.3, angle)
    back = transform_points(transform_points(pts, m), invert(m))
    np.testing.assert_allclose(back, pts, atol=1e-6)
    np.testing.assert_allclose(compose(invert(m), m), [[1, 0, 0], [0, 1, 0]], atol=1e-9)


def test_batched_transform_and_invert_broadcast():
    rng = np.random.default_rng(1)
    mats = np.stack([crop_matrix((0, 0, 100 + i, 100 + i), 32, 1.3, 10 * i) for i in range(3)])
    pts = rng.uniform(0, 100, size=(3, 5, 2))
    out = transform_points(pts, mats)
    for i in range(3):
        np.testing.assert_allclose(out[i], transform_points(pts[i], mats[i]))
    np.testing.assert_allclose(transform_points(out, invert(mats)), pts, atol=1e-6)


def test_warp_puts_pixel_where_points_go():
    image = np.zeros((200, 240, 3), np.uint8)
    image[87, 123] = 255
    m = crop_matrix((60.5, 40.5, 160.5, 140.5), 130, margin=1.3)  # scale 1, integer shift
    crop = warp_crop(image, m, 130)
    assert crop.shape == (130, 130, 3) and crop.dtype == np.uint8
    y, x = np.unravel_index(np.argmax(crop[..., 0]), crop.shape[:2])
    np.testing.assert_allclose(transform_points(np.array([[123.0, 87.0]]), m), [[x, y]])


def test_warp_pads_black_outside_image():
    image = np.full((50, 50), 200, np.uint8)
    crop = warp_crop(image, crop_matrix((30, 30, 70, 70), 40, 1.0), 40)
    assert crop.shape == (40, 40)
    assert crop[:15, :15].min() == 200 and crop[30:, 30:].max() == 0


def test_crop_batch_shapes_and_matrices():
    image = np.random.default_rng(2).integers(0, 255, (120, 160, 3), dtype=np.uint8)
    boxes = np.array([[10, 10, 60, 60, 0.9], [50, 40, 130, 120, 0.5]])
    crops, mats = crop_batch(image, boxes, 48, margin=1.2)
    assert crops.shape == (2, 48, 48, 3) and mats.shape == (2, 2, 3)
    np.testing.assert_array_equal(crops[1], warp_crop(image, crop_matrix(boxes[1], 48, 1.2), 48))
    gray_crops, _ = crop_batch(image[..., 0], boxes[:, :4], 48)
    assert gray_crops.shape == (2, 48, 48)
    empty, empty_mats = crop_batch(image, np.zeros((0, 4)), 48)
    assert empty.shape == (0, 48, 48, 3) and empty_mats.shape == (0, 2, 3)


def test_degenerate_box_rejected():
    with pytest.raises(ValueError):
        crop_matrix((5, 5, 5, 5), 32)
