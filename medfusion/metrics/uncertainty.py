"""Does a segmenter's uncertainty mark its errors, and is it calibrated?  Measures for ensemble segmentation.

* :func:`evaluation_region` — where uncertainty is scored: the voxels within a band of a few mm around the
  prediction or the reference foreground.  Scored over the whole image, confidently correct background (most of
  a CT) makes any uncertainty look good.
* :func:`error_auroc` — the area under the ROC curve of the per-voxel uncertainty as a detector of misclassified
  voxels (1: every error is more uncertain than every correct voxel; 0.5: no better than chance), computed with
  scikit-learn's ``roc_auc_score`` over a region (default: prediction ∪ reference).
* :func:`boundary_uncertainty` — a reference that needs no sampling: minus the distance to the predicted
  boundary (errors of a segmenter sit mostly at its boundary).  An ensemble's uncertainty earns its place only if
  it marks errors better than this, and better than one sample's own entropy.
* :func:`calibration` — Brier score and expected calibration error (ECE) of class probabilities over a region.
* :func:`dice_after_removing_uncertain` — Dice of the voxels that remain after the given fractions of the most
  uncertain foreground voxels (prediction ∪ reference) are set aside, as in uncertainty-filtered evaluation
  (QU-BraTS): if uncertainty marks errors, Dice rises as more is removed.
* :func:`generalised_energy_distance` — where a case has several plausible annotations: how far the distribution
  of a model's samples is from the annotations' (Probabilistic U-Net, PHiSeg).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["error_auroc", "dice_after_removing_uncertain", "evaluation_region", "boundary_uncertainty", "calibration",
           "generalised_energy_distance"]


def _region(pred: np.ndarray, ref: np.ndarray, region) -> np.ndarray:
    if region is not None:
        return np.asarray(region, dtype=bool)
    return (pred != 0) | (ref != 0)


def evaluation_region(pred, ref, spacing=None, *, band_mm: float = 5.0) -> np.ndarray:
    """The voxels within ``band_mm`` (Euclidean, in mm from ``spacing``; voxels when ``None``) of the prediction or
    the reference foreground, the foreground included; empty when both are empty."""
    from scipy import ndimage

    fg = (np.asarray(pred) != 0) | (np.asarray(ref) != 0)
    if not fg.any():
        return fg
    return ndimage.distance_transform_edt(~fg, sampling=spacing) <= band_mm


def boundary_uncertainty(pred, spacing=None) -> np.ndarray:
    """Minus the distance (mm) of every voxel to the boundary of the prediction's foreground — the voxels next to
    the boundary, inside or outside, are the most "uncertain"; a reference that needs no sampling."""
    from scipy import ndimage

    fg = np.asarray(pred) != 0
    if not fg.any() or fg.all():
        return np.zeros(fg.shape, dtype=np.float64)
    inside = ndimage.distance_transform_edt(fg, sampling=spacing)
    outside = ndimage.distance_transform_edt(~fg, sampling=spacing)
    return -np.where(fg, inside, outside)


def calibration(probabilities, ref, region=None, *, bins: int = 10) -> dict[str, float]:
    """Brier score (mean over the region of the squared distance between the class probabilities and the one-hot
    truth, summed over the classes) and expected calibration error (``bins`` equal-width bins of the top-class
    probability: Σ |bin|/N · |accuracy − confidence|) of ``probabilities`` ``(C, *S)``, class ``c`` = label ``c``,
    against the label map ``ref``; ``nan`` for an empty region."""
    q = np.asarray(probabilities, dtype=np.float64)
    r = np.asarray(ref)
    if q.shape[1:] != r.shape:
        raise ValueError(f"probabilities {q.shape} do not fit the label map {r.shape}")
    keep = np.ones(r.shape, bool) if region is None else np.asarray(region, dtype=bool)
    if not keep.any():
        return {"brier": float("nan"), "ece": float("nan")}
    qk, rk = q[:, keep], r[keep].astype(np.int64)
    onehot = np.zeros_like(qk)
    onehot[rk, np.arange(rk.size)] = 1.0
    brier = float(np.mean(np.sum((qk - onehot) ** 2, axis=0)))
    confidence, correct = qk.max(axis=0), (qk.argmax(axis=0) == rk)
    which = np.minimum((confidence * bins).astype(np.int64), bins - 1)
    ece = sum(abs(correct[which == b].mean() - confidence[which == b].mean()) * np.count_nonzero(which == b)
              for b in range(bins) if np.any(which == b)) / rk.size
    return {"brier": brier, "ece": float(ece)}


def error_auroc(uncertainty, pred, ref, *, region=None) -> float:
    """AUROC of ``uncertainty`` for the voxels where the label maps ``pred`` and ``ref`` differ.

    Args:
        uncertainty: per-voxel uncertainty (e.g. predictive entropy or variance), any shape.
        pred, ref: integer label maps of that shape.
        region: boolean mask of the voxels to score (default: prediction ∪ reference foreground; see
            :func:`evaluation_region` for a band around them).
    Returns:
        the AUROC, or ``nan`` when the region holds only errors or no errors.
    """
    from sklearn.metrics import roc_auc_score

    u, p, r = np.asarray(uncertainty, dtype=np.float64), np.asarray(pred), np.asarray(ref)
    if not u.shape == p.shape == r.shape:
        raise ValueError(f"shapes differ: uncertainty {u.shape}, pred {p.shape}, ref {r.shape}")
    keep = _region(p, r, region)
    errors = (p != r)[keep]
    if errors.all() or not errors.any():
        return float("nan")
    return float(roc_auc_score(errors, u[keep]))


def dice_after_removing_uncertain(uncertainty, pred_mask, ref_mask,
                                  fractions: Sequence[float] = (0.0, 0.05, 0.1, 0.25, 0.5)) -> dict[float, float]:
    """Dice of ``pred_mask`` against ``ref_mask`` on the voxels left after removing, for each fraction ``f``, the
    ``f`` most uncertain voxels of ``pred ∪ ref`` (ties broken by position); ``nan`` if nothing is left."""
    u = np.asarray(uncertainty, dtype=np.float64).ravel()
    p, r = np.asarray(pred_mask, dtype=bool).ravel(), np.asarray(ref_mask, dtype=bool).ravel()
    if not u.shape == p.shape == r.shape:
        raise ValueError("uncertainty and masks must have one shape")
    union = np.flatnonzero(p | r)
    order = union[np.argsort(-u[union], kind="stable")]  # most uncertain first
    out = {}
    for f in fractions:
        if not 0.0 <= f <= 1.0:
            raise ValueError(f"fractions must be in [0, 1], got {f}")
        kept = order[int(round(f * len(order))):]
        size = p[kept].sum() + r[kept].sum()
        out[float(f)] = float(2.0 * (p[kept] & r[kept]).sum() / size) if size else float("nan")
    return out


def _iou_distance(a: np.ndarray, b: np.ndarray, labels) -> float:
    """1 − the mean IoU over the labels present in either map (0 when none is)."""
    ious = []
    for lab in labels:
        x, y = a == lab, b == lab
        union = np.count_nonzero(x | y)
        if union:
            ious.append(np.count_nonzero(x & y) / union)
    return 1.0 - float(np.mean(ious)) if ious else 0.0


def _mean_distance(xs, ys, labels) -> float:
    return float(np.mean([_iou_distance(x, y, labels) for x in xs for y in ys]))


def generalised_energy_distance(samples, annotations, labels=(1,)) -> dict[str, float]:
    """The squared generalised energy distance between a model's samples and several annotations of one case (Kohl
    et al. 2018, the Probabilistic U-Net; Baumgartner et al. 2019, PHiSeg):
    ``D² = 2·E d(S, Y) − E d(S, S′) − E d(Y, Y′)`` with ``d = 1 − IoU`` (the mean IoU over ``labels`` present in
    either map; 0 when neither holds any), each expectation the mean over every pair, a map with itself included
    (the V-statistic, which keeps ``D² ≥ 0``).  0 when the samples are distributed as the annotations; a model that
    always gives the same map pays for the annotations' spread.

    Returns:
        ``{"ged", "cross": E d(S, Y), "sample_diversity": E d(S, S′), "annotation_diversity": E d(Y, Y′)}``.
    """
    xs, ys = [np.asarray(x) for x in samples], [np.asarray(y) for y in annotations]
    if not xs or not ys:
        raise ValueError("samples and annotations must not be empty")
    if any(a.shape != xs[0].shape for a in xs + ys):
        raise ValueError("every sample and annotation must have one shape")
    cross, among_s, among_y = (_mean_distance(p, q, labels) for p, q in ((xs, ys), (xs, xs), (ys, ys)))
    return {"ged": 2 * cross - among_s - among_y, "cross": cross, "sample_diversity": among_s,
            "annotation_diversity": among_y}
