"""Crops cut on the network's device (roi_align) against the CPU's (OpenCV warpAffine)."""
import numpy as np
import pytest

from tracker.geometry.crop import crop_batch
from tracker.geometry.device_crop import device_crops

torch = pytest.importorskip("torch")


def textured(height: int, width: int, seed: int, channels: int = 3) -> np.ndarray:
    import cv2
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (height, width, channels), dtype=np.uint8)
    return cv2.GaussianBlur(image, (0, 0), 2.0).reshape((height, width) + ((channels,) if channels > 1 else ()))


def test_device_crops_match_the_cpu_crops_inside_and_across_the_frame_edge():
    image = textured(360, 640, 0)
    boxes = np.array([[100, 80, 220, 200], [300.3, 50.7, 420.9, 171.2],   # inside, fractional
                      [600, 300, 700, 400], [-30, -20, 60, 70]])          # across the right / top-left edges
    cpu, _ = crop_batch(image, boxes, 96, 1.3)
    dev = device_crops([image], [boxes], 96, 1.3).numpy()
    assert dev.shape == cpu.shape and dev.dtype == np.float32
    diff = np.abs(dev - cpu)
    assert np.median(diff) < 0.5 and diff.max() < 5.0, (np.median(diff), diff.max())
    assert (dev[3, :20, :20] == 0).all()                                  # outside the frame: black


def test_device_crops_keep_the_order_across_images_of_several_sizes_and_grey_ones():
    images = [textured(200, 300, 1), textured(120, 160, 2, channels=1), textured(200, 300, 3)]
    boxes = [np.array([[10, 10, 90, 90], [150, 60, 230, 140]]), np.array([[20, 20, 80, 80]]),
             np.zeros((0, 4)), ]
    images.append(textured(200, 300, 4))
    boxes.append(np.array([[40, 30, 120, 110]]))
    dev = device_crops(images, boxes, 48, 1.2).numpy()
    want = []
    for image, rows in zip(images, boxes):
        crops, _ = crop_batch(image, rows, 48, 1.2)
        want.append(np.repeat(crops[..., None], 3, axis=-1) if crops.ndim == 3 else crops)
    want = np.concatenate(want)
    assert dev.shape == want.shape == (4, 48, 48, 3)
    assert np.abs(dev - want).max() < 5.0


def test_tracking_with_device_crops_follows_the_cpu_crops(sample_clip):
    """The torch backend on the CPU, crops from roi_align against OpenCV's: the same faces,
    landmarks within a third of a pixel."""
    import tracker
    from tracker.io.sources import open_source
    frames = [f.image for _, f in zip(range(12), open_source(sample_clip / "vid.mp4"))]
    results = []
    for setting in ("off", "on"):
        with tracker.Tracker(device="cpu", backend="torch", device_crops=setting, temporal=False, threads=1,
                             batch_size=4) as t:
            assert t.landmarker.device_crops == (setting == "on")
            results.append([r.faces for r in t.track(frames)])
    assert [len(f) for f in results[0]] == [len(f) for f in results[1]] and len(results[0][0]) == 1
    moved = [np.abs(a.landmarks - b.landmarks).mean() for fa, fb in zip(*results) for a, b in zip(fa, fb)]
    assert np.mean(moved) < 0.35, moved      # 0.25 px measured; crops half a pixel off gave 0.44


def test_device_crops_on_need_the_torch_backend():
    import tracker
    from tracker.errors import FacetrackError
    with pytest.raises(FacetrackError, match="'on' needs the torch backend"):
        tracker.Tracker(device="cpu", backend="opencv", device_crops="on")
    assert not tracker.Tracker(device="cpu", backend="torch", threads=1).landmarker.device_crops   # auto: GPU only
