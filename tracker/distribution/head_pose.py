"""Head pose (yaw, pitch, roll) of 68-point shapes, of every pose class, and of a face's
class distribution.

A generic 3D 68-point face (``assets/face3d.txt``, millimetres, built from the 2D training
annotations by affine structure from motion: ``docs/headpose/build_face3d.py``) is fitted
to a 2D shape by a scaled-orthographic projection (least squares over rotation and scale,
Gauss-Newton from the affine solution; ``method="pnp"``: ``cv2.solvePnP`` with a pinhole
camera, refined from the orthographic fit). The 2D shape may be in any frame with x right
and y down (pixels or the canonical box frame).

Convention (as OpenFace's pose_Rx, pose_Ry, pose_Rz): camera coordinates x right, y down,
z away from the camera (into the scene). The head's rotation is
R = Rx(pitch) @ Ry(yaw) @ Rz(roll), with the standard right-handed rotation matrices
Rx(a) = [[1, 0, 0], [0, cos a, -sin a], [0, sin a, cos a]],
Ry(a) = [[cos a, 0, sin a], [0, 1, 0], [-sin a, 0, cos a]],
Rz(a) = [[cos a, -sin a, 0], [sin a, cos a, 0], [0, 0, 1]],
and angles are reported in degrees. In the 3D model's rest pose (all angles 0) the face
points toward the camera (-z). Positive yaw turns the nose toward the image's left (the
subject turns to their own right); positive pitch moves the nose down in the image (the
subject looks down); positive roll is Rz's positive rotation, which turns +x toward +y:
clockwise in the image as seen (y down), the subject tilting the head toward their own
left shoulder. Zero pitch: the plane through the eye and mouth corners faces the camera.
Yaw lies in [-90, 90], pitch and roll in (-180, 180].

A face's pose distribution is that of its top-k classes: :func:`pose_moments` gives the
probability-weighted mean and standard deviation of each angle over the class poses
(:func:`class_poses`; the spread within a class is not counted).
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np

from tracker.cache import keep, user_cache

FACE3D_PATH = Path(__file__).resolve().parents[1] / "assets" / "face3d.txt"
POSES_DIR = Path(__file__).resolve().parents[1] / "assets" / "class_poses"   # precomputed class poses, by template digest
POSE_CHUNK = 8192          # templates fitted at once (bounds the fit's arrays: 3.4 GB peak at K = 140,000 unchunked)
GN_ITERATIONS = 10          # Gauss-Newton steps of the orthographic fit (converged in ~5)
PNP_FOCAL = 4.0             # method="pnp": focal length in face sizes (a camera ~4 face sizes away)

_FACE3D: np.ndarray | None = None
_CLASS_POSES: dict[tuple[str, str], np.ndarray] = {}


def load_face3d() -> np.ndarray:
    """The generic 3D face (68, 3) in millimetres, centred: x right, y down, nose toward -z."""
    global _FACE3D
    if _FACE3D is None:
        face = np.loadtxt(FACE3D_PATH, dtype=np.float64)
        if face.shape != (68, 3):
            raise ValueError(f"{FACE3D_PATH}: expected 68 rows of x y z, got {face.shape}")
        face = face - face.mean(axis=0)
        face.setflags(write=False)
        _FACE3D = face
    return _FACE3D


def rotation_matrix(yaw, pitch, roll) -> np.ndarray:
    """R = Rx(pitch) @ Ry(yaw) @ Rz(roll) from angles in degrees; broadcasts to (..., 3, 3)."""
    y, p, r = np.broadcast_arrays(*(np.radians(np.asarray(a, dtype=np.float64)) for a in (yaw, pitch, roll)))
    one, zero = np.ones_like(y), np.zeros_like(y)
    shape = y.shape + (3, 3)
    rx = np.stack([one, zero, zero, zero, np.cos(p), -np.sin(p), zero, np.sin(p), np.cos(p)], -1).reshape(shape)
    ry = np.stack([np.cos(y), zero, np.sin(y), zero, one, zero, -np.sin(y), zero, np.cos(y)], -1).reshape(shape)
    rz = np.stack([np.cos(r), -np.sin(r), zero, np.sin(r), np.cos(r), zero, zero, zero, one], -1).reshape(shape)
    return rx @ ry @ rz


def angles_of_rotation(R: np.ndarray) -> np.ndarray:
    """(..., 3) degrees (yaw, pitch, roll) of rotations R (..., 3, 3) = Rx(pitch) Ry(yaw) Rz(roll)."""
    R = np.asarray(R, dtype=np.float64)
    yaw = np.arcsin(np.clip(R[..., 0, 2], -1.0, 1.0))
    pitch = np.arctan2(-R[..., 1, 2], R[..., 2, 2])
    roll = np.arctan2(-R[..., 0, 1], R[..., 0, 0])
    return np.degrees(np.stack([yaw, pitch, roll], axis=-1))


def project(face3d: np.ndarray, yaw, pitch, roll) -> np.ndarray:
    """Orthographic image (68, 2) of a 3D face (68, 3) rotated by the given angles (degrees)."""
    return (np.asarray(face3d) @ rotation_matrix(yaw, pitch, roll).T)[:, :2]


def _rodrigues(v: np.ndarray) -> np.ndarray:
    """Rotation matrices (N, 3, 3) of rotation vectors (N, 3)."""
    theta = np.linalg.norm(v, axis=1)
    k = v / np.maximum(theta, 1e-12)[:, None]
    K = np.zeros(v.shape[:1] + (3, 3))
    K[:, 0, 1], K[:, 0, 2], K[:, 1, 2] = -k[:, 2], k[:, 1], -k[:, 0]
    K = K - K.transpose(0, 2, 1)
    s, c = np.sin(theta)[:, None, None], np.cos(theta)[:, None, None]
    return np.eye(3) + s * K + (1 - c) * (K @ K)


def _orthographic_fit(shapes: np.ndarray, face3d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rotations (N, 3, 3) and scales (N,) minimising ||x - s P R X||^2 (P drops z, both centred)."""
    x = shapes - shapes.mean(axis=1, keepdims=True)
    X = face3d - face3d.mean(axis=0)
    A = np.einsum("npd,pe->nde", x, X) @ np.linalg.inv(X.T @ X)      # affine camera (N, 2, 3)
    U, S, Vt = np.linalg.svd(A, full_matrices=False)
    rows = U @ Vt                                                     # nearest orthonormal rows
    R = np.concatenate([rows, np.cross(rows[:, 0], rows[:, 1])[:, None]], axis=1)
    s = S.mean(axis=1)
    for _ in range(GN_ITERATIONS):
        Y = X @ R.transpose(0, 2, 1)                                  # (N, 68, 3) rotated model
        a, b, c = Y[..., 0], Y[..., 1], Y[..., 2]
        zero = np.zeros_like(a)
        sc = s[:, None]
        # derivatives of s P exp([d]x) Y by (d1, d2, d3, s), for the x and the y row of every point
        jx = np.stack([zero, sc * c, -sc * b, a], axis=-1)
        jy = np.stack([-sc * c, zero, sc * a, b], axis=-1)
        J = np.concatenate([jx, jy], axis=1)                          # (N, 136, 4)
        r = np.concatenate([x[..., 0] - sc * a, x[..., 1] - sc * b], axis=1)
        Jt = J.transpose(0, 2, 1)
        step = np.linalg.solve(Jt @ J, Jt @ r[..., None])[..., 0]
        R = _rodrigues(step[:, :3]) @ R
        s = s + step[:, 3]
    return R, s


def _pnp_fit(shapes: np.ndarray, face3d: np.ndarray, focal: float) -> np.ndarray:
    """Rotations (N, 3, 3) by cv2.solvePnP (iterative): a pinhole camera of ``focal`` face
    sizes, principal point at each shape's centre, started from the orthographic fit."""
    R0, s0 = _orthographic_fit(shapes, face3d)
    out = R0.copy()
    X = np.ascontiguousarray(face3d - face3d.mean(axis=0))
    for i, pts in enumerate(shapes):
        center = pts.mean(axis=0)
        f = focal * float(np.ptp(pts, axis=0).max())
        K = np.array([[f, 0, center[0]], [0, f, center[1]], [0, 0, 1.0]])
        rvec = cv2.Rodrigues(R0[i])[0]
        tvec = np.array([[0.0], [0.0], [f / s0[i]]])
        ok, rvec, _ = cv2.solvePnP(X, np.ascontiguousarray(pts, dtype=np.float64), K, None,
                                   rvec, tvec, useExtrinsicGuess=True, flags=cv2.SOLVEPNP_ITERATIVE)
        if ok:
            out[i] = cv2.Rodrigues(rvec)[0]
    return out


def pose_of_shapes(shapes2d: np.ndarray, method: str = "orthographic", focal: float = PNP_FOCAL) -> np.ndarray:
    """(N, 3) degrees (yaw, pitch, roll) of 2D 68-point shapes (N, 68, 2); (3,) for one (68, 2).

    ``method``: "orthographic" (scaled-orthographic least squares, vectorised) or "pnp"
    (cv2.solvePnP, a pinhole camera ``focal`` face sizes from the face)."""
    shapes = np.asarray(shapes2d, dtype=np.float64)
    single = shapes.ndim == 2
    if single:
        shapes = shapes[None]
    if shapes.ndim != 3 or shapes.shape[1:] != (68, 2):
        raise ValueError(f"expected (N, 68, 2) shapes, got {shapes.shape}")
    if len(shapes) == 0:
        return np.zeros((0, 3))
    face3d = load_face3d()
    if method == "orthographic":
        R = _orthographic_fit(shapes, face3d)[0]
    elif method == "pnp":
        R = _pnp_fit(shapes, face3d, focal)
    else:
        raise ValueError(f"unknown head pose method {method!r} (orthographic or pnp)")
    angles = angles_of_rotation(R)
    return angles[0] if single else angles


def class_poses(templates: np.ndarray, method: str = "orthographic") -> np.ndarray:
    """(K, 3) float32 degrees (yaw, pitch, roll) of every class template (K, 68, 2); computed
    once per set of templates (cached by their content), read-only. The packaged model's
    are precomputed (``assets/class_poses/``, written by :func:`save_class_poses`), which
    spares about a second at start-up; those of other models are computed once per machine
    and kept in the user's cache (``~/.cache/facetrack/class_poses/``: 24 s at K = 140,000)."""
    templates = np.ascontiguousarray(templates)
    key = (templates_digest(templates), method)
    if key not in _CLASS_POSES:
        name = f"{key[0]}-{method}.npy"
        cached = user_cache("class_poses", name)
        poses = _stored_poses(POSES_DIR / name, len(templates))
        poses = _stored_poses(cached, len(templates)) if poses is None else poses
        if poses is None:
            poses = np.concatenate([pose_of_shapes(templates[i:i + POSE_CHUNK], method=method)
                                    for i in range(0, len(templates), POSE_CHUNK)]).astype(np.float32)
            keep(cached, lambda part: np.save(part, poses))
        poses.setflags(write=False)
        _CLASS_POSES[key] = poses
    return _CLASS_POSES[key]


def _stored_poses(path: Path, count: int) -> np.ndarray | None:
    """Poses read from ``path`` when it holds ``count`` of them, else None."""
    if not path.is_file():
        return None
    try:
        poses = np.load(path)
    except (OSError, ValueError):
        return None
    return poses if poses.shape == (count, 3) else None


def templates_digest(templates: np.ndarray) -> str:
    """A short digest of a set of class templates (their bytes, dtype and shape)."""
    templates = np.ascontiguousarray(templates)
    text = f"{templates.dtype}{templates.shape}".encode()
    return hashlib.blake2b(templates.tobytes() + text, digest_size=12).hexdigest()


def save_class_poses(templates: np.ndarray, method: str = "orthographic") -> Path:
    """Compute and store the class poses of ``templates`` under ``assets/class_poses/``."""
    poses = pose_of_shapes(templates, method=method).astype(np.float32)
    POSES_DIR.mkdir(exist_ok=True)
    path = POSES_DIR / f"{templates_digest(templates)}-{method}.npy"
    np.save(path, poses)
    return path


def pose_moments(classes: np.ndarray, probs: np.ndarray, class_poses: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation, in degrees, of (yaw, pitch, roll) under a face's class
    distribution: ``classes`` and ``probs`` (N, k) give (N, 3), (N, 3); (k,) give (3,), (3,).
    The probabilities are renormalised over the k classes given; angles are averaged as
    numbers (no wrap-around: face poses stay well inside +-180)."""
    classes = np.asarray(classes)
    probs = np.asarray(probs, dtype=np.float64)
    if classes.shape != probs.shape:
        raise ValueError(f"classes {classes.shape} and probs {probs.shape} differ in shape")
    single = classes.ndim == 1
    if single:
        classes, probs = classes[None], probs[None]
    w = probs / np.maximum(probs.sum(axis=1, keepdims=True), 1e-300)
    poses = np.asarray(class_poses, dtype=np.float64)[classes]        # (N, k, 3)
    mean = np.einsum("nk,nkd->nd", w, poses)
    var = np.einsum("nk,nkd->nd", w, (poses - mean[:, None]) ** 2)
    std = np.sqrt(np.maximum(var, 0.0))
    return (mean[0], std[0]) if single else (mean, std)
