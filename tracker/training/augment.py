"""Training augmentation: one geometric warp per sample, then photometric changes.

A sample is (image, landmarks (68, 2), face box). Flips permute the landmarks with
:data:`tracker.geometry.shapes.MIRROR`; rotation, scale and shift jitter (simulating in-plane roll
and detector error) are folded into the single crop warp of :mod:`tracker.geometry.crop`, so the
image is resampled once and the returned landmarks are exact. Occluders cover pixels but
never move landmarks: the labels stay the true positions.
"""
from __future__ import annotations

import cv2
import numpy as np

from tracker.config import AugmentConfig
from tracker.geometry.boxes import landmark_box, shift_boxes
from tracker.geometry.crop import DEFAULT_MARGIN, crop_matrix, transform_points, warp_crop
from tracker.geometry.shapes import flip_horizontal

_GRAY_WEIGHTS_BGR = np.array([0.114, 0.587, 0.299], dtype=np.float32)


# ----------------------------------------------------------------------------- geometry

def flip_box(box, width: int) -> np.ndarray:
    """The box (x0, y0, x1, y1, ...) of the image mirrored left-right."""
    flipped = np.array(box, dtype=np.float64)
    flipped[..., 0], flipped[..., 2] = (width - 1) - flipped[..., 2], (width - 1) - flipped[..., 0]
    return flipped


def flip_sample(image: np.ndarray, landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Image mirrored left-right and its landmarks mirrored and re-indexed."""
    return cv2.flip(image, 1), flip_horizontal(np.asarray(landmarks), image.shape[1])


def rescale_sample(image: np.ndarray, landmarks: np.ndarray, rng: np.random.Generator,
                   bounds: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """Image resized by a log-uniform random factor within ``bounds`` and its landmarks moved to
    match (pixel centres); one draw."""
    factor = float(np.exp(rng.uniform(np.log(bounds[0]), np.log(bounds[1]))))
    h, w = image.shape[:2]
    size = (max(1, round(w * factor)), max(1, round(h * factor)))
    interpolation = cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR
    resized = cv2.resize(image, size, interpolation=interpolation)
    ratio = np.array([size[0] / w, size[1] / h])
    return resized, (landmarks + 0.5) * ratio - 0.5


def random_similarity(rng: np.random.Generator,
                      cfg: AugmentConfig) -> tuple[float, float, np.ndarray]:
    """Draw (angle_deg, log_scale, shift_xy (2,)) jitter; always consumes 4 draws."""
    angle = rng.uniform(-cfg.rotate_deg, cfg.rotate_deg)
    max_log = np.log1p(cfg.scale)
    log_scale = rng.uniform(-max_log, max_log)
    shift = rng.uniform(-cfg.shift, cfg.shift, size=2)
    return float(angle), float(log_scale), shift


def _as_bgr(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return image


def crop_sample(image: np.ndarray, landmarks: np.ndarray, box=None, out_size: int = 224,
                margin: float = DEFAULT_MARGIN,
                angle_deg: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Un-augmented crop (S, S, 3) uint8 and landmarks in it (68, 2) float32.

    ``box`` defaults to the landmarks' own square box (the ground-truth window).
    """
    landmarks = np.asarray(landmarks, dtype=np.float64)
    box = landmark_box(landmarks) if box is None else box
    matrix = crop_matrix(box, out_size, margin, angle_deg)
    crop = warp_crop(_as_bgr(image), matrix, out_size)
    return crop, transform_points(landmarks, matrix).astype(np.float32)


# ----------------------------------------------------------------------------- photometric

def _gray(pixels: np.ndarray) -> np.ndarray:
    return pixels @ _GRAY_WEIGHTS_BGR


def _photometric(pixels: np.ndarray, rng: np.random.Generator,
                 cfg: AugmentConfig) -> np.ndarray:
    """Brightness, contrast and saturation factors on float BGR pixels."""
    brightness = 1.0 + rng.uniform(-cfg.brightness, cfg.brightness)
    contrast = 1.0 + rng.uniform(-cfg.contrast, cfg.contrast)
    saturation = 1.0 + rng.uniform(-cfg.saturation, cfg.saturation)
    if brightness != 1.0:
        pixels = pixels * brightness
    if contrast != 1.0:
        mean = float(_gray(pixels).mean())
        pixels = (pixels - mean) * contrast + mean
    if saturation != 1.0:
        gray = _gray(pixels)[..., None]
        pixels = gray + (pixels - gray) * saturation
    return pixels


def _maybe_blur(pixels: np.ndarray, rng: np.random.Generator,
                cfg: AugmentConfig) -> np.ndarray:
    apply, sigma = rng.random() < cfg.blur_p, rng.uniform(0.3, max(cfg.blur_max_sigma, 0.3))
    if apply and cfg.blur_max_sigma > 0:
        pixels = cv2.GaussianBlur(pixels, (0, 0), sigmaX=sigma)
    return pixels


def _maybe_grayscale(pixels: np.ndarray, rng: np.random.Generator,
                     cfg: AugmentConfig) -> np.ndarray:
    if rng.random() < cfg.grayscale_p:
        pixels = np.repeat(_gray(pixels)[..., None], 3, axis=2)
    return pixels


# ----------------------------------------------------------------------------- occluders

def _occluder_mask(size: int, rng: np.random.Generator, max_frac: float) -> np.ndarray:
    """A random rotated rectangle or ellipse covering up to ``max_frac`` of the crop."""
    frac = rng.uniform(min(0.05, max_frac), max_frac)
    aspect = np.exp(rng.uniform(-np.log(2.0), np.log(2.0)))
    ellipse = rng.random() < 0.5
    area = frac * size * size * (4 / np.pi if ellipse else 1.0)
    w = min(np.sqrt(area * aspect), 2.0 * size)
    h = min(area / w, 2.0 * size)
    center = rng.uniform(0, size - 1, size=2)
    angle = rng.uniform(0, 180)
    mask = np.zeros((size, size), dtype=np.uint8)
    if ellipse:
        cv2.ellipse(mask, ((float(center[0]), float(center[1])), (float(w), float(h)),
                           float(angle)), 255, thickness=-1)
    else:
        corners = cv2.boxPoints(((float(center[0]), float(center[1])), (float(w), float(h)),
                                 float(angle)))
        cv2.fillPoly(mask, [np.round(corners).astype(np.int32)], 255)
    return mask > 0


def _occluder_fill(size: int, rng: np.random.Generator) -> np.ndarray:
    """A flat random colour or a smooth random-noise texture, (S, S, 3) float32."""
    if rng.random() < 0.5:
        return np.broadcast_to(rng.uniform(0, 255, size=3).astype(np.float32),
                               (size, size, 3))
    cells = int(rng.integers(2, max(3, size // 4) + 1))
    noise = rng.uniform(0, 255, size=(cells, cells, 3)).astype(np.float32)
    return cv2.resize(noise, (size, size), interpolation=cv2.INTER_LINEAR)


def _maybe_occlude(pixels: np.ndarray, rng: np.random.Generator,
                   cfg: AugmentConfig) -> np.ndarray:
    if rng.random() < cfg.occlude_p and cfg.occlude_max_frac > 0:
        size = pixels.shape[0]
        mask = _occluder_mask(size, rng, cfg.occlude_max_frac)
        pixels = np.where(mask[..., None], _occluder_fill(size, rng), pixels)
    return pixels


def _maybe_noise(pixels: np.ndarray, rng: np.random.Generator,
                 cfg: AugmentConfig) -> np.ndarray:
    if cfg.noise_std > 0:
        pixels = pixels + rng.normal(0.0, cfg.noise_std, size=pixels.shape).astype(np.float32)
    return pixels


# ----------------------------------------------------------------------------- sample

def augment_sample(image: np.ndarray, landmarks: np.ndarray, box=None, out_size: int = 224,
                   margin: float = DEFAULT_MARGIN, rng: np.random.Generator | None = None,
                   cfg: AugmentConfig = AugmentConfig()) -> tuple[np.ndarray, np.ndarray]:
    """One augmented training crop (S, S, 3) uint8 and its landmarks (68, 2) float32.

    Order: random flip; one warp of the jittered, rotated box (``box`` defaults to the
    landmarks' square box); brightness/contrast/saturation; blur; grayscale; occluder;
    noise. Deterministic for a given generator state.
    """
    rng = np.random.default_rng() if rng is None else rng
    image = _as_bgr(image)
    landmarks = np.asarray(landmarks, dtype=np.float64)
    box = landmark_box(landmarks) if box is None else np.asarray(box, dtype=np.float64)[:4]
    if rng.random() < cfg.flip_p:
        box = flip_box(box, image.shape[1])
        image, landmarks = flip_sample(image, landmarks)
    angle, log_scale, shift = random_similarity(rng, cfg)
    crop, points = crop_sample(image, landmarks, shift_boxes(box, np.r_[shift, log_scale]),
                               out_size, margin, angle)
    pixels = crop.astype(np.float32)
    for step in (_photometric, _maybe_blur, _maybe_grayscale, _maybe_occlude, _maybe_noise):
        pixels = step(pixels, rng, cfg)
    crop = np.clip(np.rint(pixels), 0, 255).astype(np.uint8)
    return crop, points
