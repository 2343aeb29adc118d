"""Conditioning the pose distribution on a user's clicks (paper eq. 10), and which click helps most.

Evidence E is one or more landmarks placed by the user, each with a tolerance in pixels.
The consistent classes Omega(E) are those whose template, placed in the face's box, puts
every clicked landmark within its tolerance of the click; the posterior restricted to them
and renormalised is the conditional distribution, and its mean the conditional prediction
(with the clicked points kept where the user put them). The best next click is the
landmark whose click most lowers the expected error under the current distribution:
for each candidate, every kept class in turn is taken as the truth, its point there as the
click, and the error of the resulting conditional mean against that class's template is
averaged with the classes' probabilities.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from tracker.geometry.shapes import from_canonical


@dataclass(frozen=True)
class Click:
    landmark: int              # 0..67
    x: float
    y: float
    tolerance: float = 5.0     # pixels


@dataclass(frozen=True)
class Conditioned:
    classes: np.ndarray        # (k,) the consistent classes kept, most probable first
    probs: np.ndarray          # (k,) their renormalised probabilities
    landmarks: np.ndarray      # (68, 2) pixels: the conditional mean, clicked points as clicked
    consistent: int            # |Omega(E)| among all K classes (0: none was, the nearest were used)
    box: np.ndarray | None = None         # the crop box the classes are placed in (conditioned_face)
    log_probs: np.ndarray | None = None   # (K,) the classifier's log-softmax for that crop (conditioned_face)


def click_distances(templates: np.ndarray, box: np.ndarray, clicks) -> np.ndarray:
    """(n_clicks, K) pixel distance from each click to its landmark in every class's
    canonical template (K, 68, 2) placed in ``box`` (only the clicked landmarks are placed)."""
    center = (np.asarray(box[:2], np.float64) + box[2:]) / 2
    size = float(box[2] - box[0])
    out = np.empty((len(clicks), len(templates)))
    for i, c in enumerate(clicks):
        points = templates[:, c.landmark].astype(np.float64) * size + center
        out[i] = np.hypot(points[:, 0] - c.x, points[:, 1] - c.y)
    return out


def consistent_mask(distances: np.ndarray, clicks, spread_px=0.0) -> np.ndarray:
    """(K,) bool: the classes Omega(E) that put every click within its tolerance, widened by
    each class's own spread ``spread_px`` (K,) or scalar (pixels); ``distances`` from
    :func:`click_distances`."""
    mask = np.ones(distances.shape[1], bool)
    for d, c in zip(distances, clicks):
        mask &= d <= np.hypot(c.tolerance, spread_px)
    return mask


def _spread_px(widths, box) -> np.ndarray | float:
    return 0.0 if widths is None else np.asarray(widths, np.float64) * float(box[2] - box[0])


def restricted_log_probs(log_probs: np.ndarray, templates: np.ndarray, box: np.ndarray, clicks, widths=None,
                         penalty: float = -1e4) -> np.ndarray:
    """``log_probs`` (K,) with the classes outside Omega(E) set to ``penalty`` (as in
    :func:`condition`; unchanged when no class is consistent): the evidence of a clicked
    frame for the HMM, so that a decoded path passes through the consistent classes."""
    clicks = list(clicks)
    mask = consistent_mask(click_distances(templates, box, clicks), clicks, _spread_px(widths, box))
    if not mask.any():
        return log_probs
    return np.where(mask, log_probs, np.float32(penalty)).astype(np.float32)


HMM_PENALTY = -1e4            # log-obs of the classes a click rules out, on the clicked frame


def hmm_evidence(landmarker, image: np.ndarray, face, clicks, penalty: float = HMM_PENALTY):
    """A tracked face (:class:`tracker.results.FaceResult` with its full ``log_probs``) as
    the HMM should see it on a frame with ``clicks``: its top classes and landmarks those
    of :func:`conditioned_face` in its own crop (not cropped again: the HMM's states are
    shapes in the crops the tracker cut, which the neighbouring frames share); its log-observations those of the click likelihood: with
    "omega", every class outside Omega(E) gets ``penalty``, so that every decoded path goes
    through Omega(E) on this frame; with "gaussian", each class adds
    :func:`click_log_likelihood`. Either way the correction reaches the frames around it."""
    clicks = list(clicks or ())
    if not clicks:
        return face
    model = landmarker.model
    cond = conditioned_face(landmarker, image, face.box, face.log_probs, clicks, recrop=False)
    if CLICK_LIKELIHOOD == "gaussian":
        distances = click_distances(model.templates, face.box, clicks)
        scores = face.log_probs + click_log_likelihood(distances, clicks, _spread_px(model.widths, face.box))
        log_probs = (scores - np.logaddexp.reduce(scores)).astype(np.float32)
    else:
        log_probs = restricted_log_probs(face.log_probs, model.templates, face.box, clicks, model.widths, penalty)
    return dataclasses.replace(face, classes=cond.classes, probs=cond.probs, log_probs=log_probs,
                               landmarks=cond.landmarks)


def click_log_likelihood(distances: np.ndarray, clicks, spread_px=0.0) -> np.ndarray:
    """(K,) log p(E | k) when each click is a noisy observation of its landmark: under
    eq. 3 a class is a spherical Gaussian of width ``spread_px`` around its template, and a
    click adds its own noise (its tolerance), so each click is 2D-Gaussian with variance
    tolerance^2 + spread^2 around the class's point."""
    out = np.zeros(distances.shape[1])
    spread2 = np.asarray(spread_px, np.float64) ** 2
    for d, c in zip(distances, clicks):
        var = c.tolerance ** 2 + spread2
        out -= d ** 2 / (2 * var) + np.log(2 * np.pi * var)
    return out


LIKELIHOODS = ("omega", "gaussian", "auto")
CLICK_LIKELIHOOD = "omega"
RECROP = True                # conditioned_face: classify again around the conditional prediction
AUTO_MASS = 0.01             # "auto": Omega(E) when it holds this much of the prior mass, else "gaussian"


def condition(log_probs: np.ndarray, templates: np.ndarray, box: np.ndarray, clicks, widths=None,
              top_k: int = 50, nearest: int = 50, likelihood: str = "omega") -> Conditioned:
    """The distribution over K classes (``log_probs`` (K,), canonical ``templates`` (K, 68, 2),
    the face's crop ``box``) conditioned on ``clicks``. ``widths`` (K,), the classes' own
    spread (eq. 3's sigma, canonical units), widens each click's tolerance: a class stands for
    shapes around its template, not for the template alone.

    ``likelihood="omega"`` (eq. 10): the consistent classes Omega(E) alone, renormalised;
    where none is, the ``nearest`` classes by their worst click distance (relative to its
    tolerance) stand in. ``"gaussian"``: every class weighted by
    :func:`click_log_likelihood`, the exact posterior of eq. 3's mixture given noisy clicks
    (a click far from every probable class then moves the face less than Omega(E)'s few
    improbable classes would)."""
    clicks = list(clicks)
    log_probs = np.asarray(log_probs, np.float64)
    distances = click_distances(templates, box, clicks)
    spread = _spread_px(widths, box)
    mask = consistent_mask(distances, clicks, spread) if clicks else np.ones(len(log_probs), bool)
    n_consistent = int(mask.sum())
    if likelihood not in LIKELIHOODS:
        raise ValueError(f"unknown click likelihood {likelihood!r} (choose from {', '.join(LIKELIHOODS)})")
    if likelihood == "auto":
        mass = np.exp(log_probs[mask] - log_probs.max()).sum() / np.exp(log_probs - log_probs.max()).sum()
        likelihood = "omega" if mass >= AUTO_MASS else "gaussian"
    if likelihood == "gaussian" and clicks:
        scores = log_probs + click_log_likelihood(distances, clicks, spread)
        order = np.argsort(-scores, kind="stable")[:top_k]
    else:
        scores = log_probs
        if n_consistent == 0:
            tolerances = np.array([max(c.tolerance, 1e-6) for c in clicks])[:, None]
            mask = np.zeros(len(log_probs), bool)
            mask[np.argsort((distances / tolerances).max(0), kind="stable")[:nearest]] = True
        candidates = np.flatnonzero(mask)
        order = candidates[np.argsort(-log_probs[candidates], kind="stable")[:top_k]]
    weights = np.exp(scores[order] - scores[order].max())
    probs = weights / weights.sum()
    landmarks = np.einsum("k,kpd->pd", probs, from_canonical(templates[order].astype(np.float64), box))
    for c in clicks:
        landmarks[c.landmark] = (c.x, c.y)
    return Conditioned(order, probs.astype(np.float32), landmarks, n_consistent)


def expected_errors(probs: np.ndarray, shapes: np.ndarray, tolerance: float, spread_px=0.0) -> np.ndarray:
    """(68,) the expected mean point error (pixels) after a click on each landmark, under the
    distribution ``probs`` (k,) over the shapes (k, 68, 2, pixels) it keeps (``spread_px``:
    their classes' spread, as in :func:`condition`)."""
    probs = np.asarray(probs, np.float64) / np.sum(probs)
    shapes = np.asarray(shapes, np.float64)
    reach = np.hypot(tolerance, np.broadcast_to(np.asarray(spread_px, np.float64), probs.shape))[None]
    out = np.empty(shapes.shape[1])
    for j in range(shapes.shape[1]):
        points = shapes[:, j]
        near = np.hypot(*(points[:, None] - points[None]).transpose(2, 0, 1)) <= reach   # (k, k): truth c, class c'
        w = near * probs[None]
        w /= w.sum(1, keepdims=True)
        means = np.einsum("ck,kpd->cpd", w, shapes)
        means[:, j] = points                                   # the click itself is exact
        errors = np.linalg.norm(means - shapes, axis=-1).mean(-1)
        out[j] = probs @ errors
    return out


def next_click(probs: np.ndarray, shapes: np.ndarray, tolerance: float = 5.0, exclude=(), spread_px=0.0) -> int:
    """The landmark whose click most lowers the expected error (see :func:`expected_errors`),
    among those not in ``exclude`` (already clicked)."""
    errors = expected_errors(probs, shapes, tolerance, spread_px)
    errors[list(exclude)] = np.inf
    return int(np.argmin(errors))


def conditioned_face(landmarker, image: np.ndarray, box: np.ndarray, log_probs: np.ndarray, clicks,
                     likelihood: str | None = None, recrop: bool | None = None) -> Conditioned:
    """A face re-predicted given ``clicks``: eq. 10 over the classifier's full distribution
    ``log_probs`` (K,) for the crop ``box``, then the later stages as usual, the clicked
    points kept where the user put them. With no click, the face as the landmarker
    predicted it.

    The later stages: with ``recrop`` (default :data:`RECROP`), the face is cropped again
    around the conditional prediction and classified again, and that distribution is
    conditioned on the clicks, as the detector's second pass does for a fresh face (a click
    far from every probable class usually means the crop was off, and no class of the old
    crop can then fit); then the regressors of the conditional top class, when the
    landmarker has them. ``likelihood``: see :func:`condition` (default :data:`CLICK_LIKELIHOOD`).
    The result's ``box`` and ``log_probs`` are those of the last crop."""
    return conditioned_faces(landmarker, image, box, log_probs, [clicks], likelihood, recrop)[0]


def conditioned_faces(landmarker, image: np.ndarray, box: np.ndarray, log_probs: np.ndarray, click_sets,
                      likelihood: str | None = None, recrop: bool | None = None) -> list[Conditioned]:
    """:func:`conditioned_face` for each set of clicks in ``click_sets`` on the same face,
    the second crops classified in one batch."""
    model = landmarker.model
    click_sets = [list(c) for c in click_sets]
    likelihood = likelihood or CLICK_LIKELIHOOD
    recrop = RECROP if recrop is None else recrop

    def conditioned(lp, b, clicks):
        return condition(lp, model.templates, b, clicks, widths=model.widths, top_k=landmarker.top_k,
                         likelihood=likelihood)

    outs = [conditioned(log_probs, box, clicks) for clicks in click_sets]
    boxes = [np.asarray(box, np.float64)] * len(click_sets)
    logs = [log_probs] * len(click_sets)
    again = [i for i, clicks in enumerate(click_sets) if recrop and clicks]
    if again:
        new_boxes = landmarker.box_from_landmarks(np.stack([outs[i].landmarks for i in again]))
        post, _ = landmarker.classify_crops(landmarker.crops(image, new_boxes))
        if post.log_probs is None:
            raise ValueError("re-cropping a clicked face needs the landmarker's full distribution (keep_log_probs)")
        for row, i in enumerate(again):
            boxes[i], logs[i] = new_boxes[row], post.log_probs[row]
            outs[i] = conditioned(logs[i], boxes[i], click_sets[i])
    points = landmarker.regress(image, np.stack([o.landmarks for o in outs]), np.array([o.classes[0] for o in outs]))
    results = []
    for out, clicks, b, lp, landmarks in zip(outs, click_sets, boxes, logs, points):
        landmarks = landmarks.copy()
        for c in clicks:
            landmarks[c.landmark] = (c.x, c.y)
        results.append(Conditioned(out.classes, out.probs, landmarks, out.consistent, b, lp))
    return results


def suggested_click(model, conditioned: Conditioned, tolerance: float, exclude=()) -> int:
    """The landmark to click next on a face (see :func:`next_click`), given its current
    ``conditioned`` distribution (from :func:`conditioned_face`, in its crop ``box``)."""
    box = conditioned.box
    shapes = from_canonical(model.templates[conditioned.classes], box)
    spread = model.widths[conditioned.classes] * float(box[2] - box[0])
    return next_click(conditioned.probs, shapes, tolerance, exclude, spread)
