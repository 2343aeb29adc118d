"""Rebuild tracker/assets/face3d.txt: a generic 3D 68-point face from 2D annotations.

Run: .venv/bin/python docs/headpose/build_face3d.py

Training annotations only (AFW + HELEN-train + LFPW-train of /work/shared/data/300w-subset,
each also mirrored left-right); HELEN-test is never read. Method: affine structure from
motion (Tomasi-Kanade factorisation) with a scaled-orthographic metric upgrade:

1. centre every 2D shape, scale it to unit RMS radius, stack the 51 inner points (brows,
   nose, eyes, mouth: fixed on the face) into W (2F x 51), centred on their mean;
2. rank-3 SVD, W ~ M S (M: 2F x 3 cameras, S: 3 x 51 shape), affine up to a 3x3 matrix Q;
3. metric upgrade: L = Q Q^T (symmetric, 6 unknowns) from every view's two camera rows
   m1, m2: m1 L m1^T = m2 L m2^T and m1 L m2^T = 0 (homogeneous least squares), then the
   nearest positive semi-definite L; shape Q^{-1} S, cameras M Q; the 17 jaw-outline points
   (a silhouette that slides over the face with yaw, so left out of steps 1-3, where they
   inflate the depth: nose tip 53 mm in front of the outer eye corners instead of 32) are
   then triangulated from these cameras by least squares;
4. frame: x along the left-right direction of the mirror pairs (point 45 at +x), y the
   eyes-to-mouth direction in the plane of the eye and mouth corners (chin down),
   z = x cross y (away from the camera); the reflection left by step 3 is resolved by
   putting the nose tip (30) in front of that plane, at negative z;
5. symmetrise with the mirror permutation, and scale to millimetres: outer eye corners
   (36-45) 90 mm apart.

Prints the depth profile as a sanity check, and the fit residual of the factorisation.
"""
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
from tracker.geometry.shapes import MIRROR  # noqa: E402
from tracker.training.data import load_faces  # noqa: E402

SETS = ["afw", "helen-train", "lfpw-train"]
OUT = REPO / "tracker" / "assets" / "face3d.txt"
EYE_SPAN_MM = 90.0
PLANE_POINTS = [36, 39, 42, 45, 48, 54]      # eye corners and mouth corners: the face plane
INNER = np.arange(17, 68)                    # brows, nose, eyes, mouth: points fixed on the face


def normalised_shapes(points: np.ndarray) -> np.ndarray:
    """(F, 68, 2) centred, unit-RMS shapes, with their left-right mirrors appended."""
    mirrored = points[:, MIRROR].copy()
    mirrored[..., 0] *= -1
    shapes = np.concatenate([points, mirrored])
    shapes = shapes - shapes.mean(axis=1, keepdims=True)
    return shapes / np.sqrt((shapes ** 2).sum(axis=(1, 2)) / shapes.shape[1])[:, None, None]


def factorise(shapes: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Metric cameras (F, 2, 3), shape (3, P) and the rank-3 relative residual of centred shapes (F, P, 2)."""
    F = len(shapes)
    W = shapes.transpose(0, 2, 1).reshape(2 * F, -1)          # rows x_f, y_f
    U, s, Vt = np.linalg.svd(W, full_matrices=False)
    M = U[:, :3] * np.sqrt(s[:3])
    S = np.sqrt(s[:3])[:, None] * Vt[:3]
    residual = float(np.sqrt((s[3:] ** 2).sum() / (s ** 2).sum()))
    m1, m2 = M[0::2], M[1::2]

    def row(a, b):   # coefficients of a L b^T in the 6 unknowns of symmetric L
        return np.stack([a[:, 0] * b[:, 0], a[:, 1] * b[:, 1], a[:, 2] * b[:, 2],
                         a[:, 0] * b[:, 1] + a[:, 1] * b[:, 0],
                         a[:, 0] * b[:, 2] + a[:, 2] * b[:, 0],
                         a[:, 1] * b[:, 2] + a[:, 2] * b[:, 1]], axis=1)

    A = np.concatenate([row(m1, m1) - row(m2, m2), row(m1, m2)])
    l = np.linalg.svd(A)[2][-1]                               # null vector, up to scale and sign
    L = np.array([[l[0], l[3], l[4]], [l[3], l[1], l[5]], [l[4], l[5], l[2]]])
    if np.trace(L) < 0:
        L = -L
    w, V = np.linalg.eigh(L)
    w = np.clip(w, 1e-9 * w.max(), None)                      # nearest PSD (kept invertible)
    Q = V * np.sqrt(w)
    return (M @ Q).reshape(F, 2, 3), np.linalg.solve(Q, S), residual


def structure(shapes: np.ndarray) -> np.ndarray:
    """(68, 3) metric shape: cameras from the 51 inner points, the jaw triangulated with them."""
    centre = shapes[:, INNER].mean(axis=1, keepdims=True)
    cameras, S, _ = factorise(shapes[:, INNER] - centre)
    F = len(shapes)
    W = (shapes - centre).transpose(0, 2, 1).reshape(2 * F, -1)
    X = np.linalg.lstsq(cameras.reshape(2 * F, 3), W, rcond=None)[0].T    # every point, least squares
    X[INNER] = S.T
    return X


def canonical_frame(X: np.ndarray) -> np.ndarray:
    """(68, 3) shape rotated into the model frame: x right, y down, z away, nose in front."""
    X = X - X.mean(axis=0)
    pairs = np.array([i for i in range(68) if MIRROR[i] > i])
    D = X[MIRROR[pairs]] - X[pairs]
    x = np.linalg.svd(D, full_matrices=False)[2][0]
    if x @ (X[45] - X[36]) < 0:
        x = -x
    P = X[PLANE_POINTS] - X[PLANE_POINTS].mean(axis=0)
    P = P - np.outer(P @ x, x)                                # the plane's extent across x
    y = np.linalg.svd(P, full_matrices=False)[2][0]            # eyes-to-mouth direction
    y = y - (y @ x) * x
    y /= np.linalg.norm(y)
    if y @ (X[8] - (X[36] + X[45]) / 2) < 0:                   # chin below the eyes
        y = -y
    z = np.cross(x, y)
    X = X @ np.stack([x, y, z], axis=1)
    if X[30, 2] > X[PLANE_POINTS, 2].mean():                  # depth reflection: nose behind
        X[:, 2] *= -1
    return X


def symmetrise(X: np.ndarray) -> np.ndarray:
    mirrored = X[MIRROR].copy()
    mirrored[:, 0] *= -1
    return (X + mirrored) / 2


def main():
    faces = load_faces(REPO.parent / "shared" / "data" / "300w-subset", SETS)
    points = np.stack([f.landmarks for f in faces]).astype(np.float64)
    shapes = normalised_shapes(points)
    framed = canonical_frame(structure(shapes))
    X = symmetrise(framed)
    asymmetry = np.abs(framed - X).max() / np.sqrt((X ** 2).sum(axis=1).mean())
    X = X - X.mean(axis=0)
    X *= EYE_SPAN_MM / np.linalg.norm(X[45] - X[36])
    header = ("generic 3D 68-point face (iBUG/300-W order), millimetres; x right, y down, z away "
              "from the camera, nose toward -z; built by docs/headpose/build_face3d.py from "
              f"{len(faces)} training faces ({'+'.join(SETS)}) and their mirrors")
    np.savetxt(OUT, X, fmt="%.3f", header=header)
    residual = factorise(shapes[:, INNER] - shapes[:, INNER].mean(axis=1, keepdims=True))[2]
    print(f"{len(faces)} faces (+ mirrors); rank-3 relative residual of the inner points {residual:.4f}; "
          f"asymmetry before symmetrising {asymmetry:.1e} (relative to the RMS radius)")
    print(f"wrote {OUT.relative_to(REPO)} ({OUT.stat().st_size} bytes)")
    plane = X[PLANE_POINTS, 2].mean()
    print("depth z relative to the eye/mouth-corner plane (mm; negative = toward the camera):")
    for name, idx in [("nose tip 30", [30]), ("nose bridge 27", [27]), ("eye outer corners 36/45", [36, 45]),
                      ("eye inner corners 39/42", [39, 42]), ("mouth corners 48/54", [48, 54]),
                      ("upper lip 51", [51]), ("chin 8", [8]), ("jaw 4/12", [4, 12]),
                      ("jaw at the ears 0/16", [0, 16]), ("brow outer 17/26", [17, 26])]:
        print(f"  {name:26s} {X[idx, 2].mean() - plane:7.1f}")
    print(f"face width at the ears (0-16) {np.linalg.norm(X[16] - X[0]):.1f} mm, "
          f"eyes to chin {X[8, 1] - X[[36, 45], 1].mean():.1f} mm")


if __name__ == "__main__":
    main()
