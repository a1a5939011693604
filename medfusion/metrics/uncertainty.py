"""Does a segmenter's uncertainty mark its errors?  Two measures used for ensemble segmentation.

* :func:`error_auroc` — the area under the ROC curve of the per-voxel uncertainty as a detector of misclassified
  voxels (1: every error is more uncertain than every correct voxel; 0.5: no better than chance), computed with
  scikit-learn's ``roc_auc_score`` over the voxels of an evaluation region (by default the voxels where the
  prediction or the reference is foreground, or that are uncertain at all — the rest are confidently correct
  background that would inflate the score).
* :func:`dice_after_removing_uncertain` — Dice of the voxels that remain after the given fractions of the most
  uncertain foreground voxels (prediction ∪ reference) are set aside, as in uncertainty-filtered evaluation
  (QU-BraTS): if uncertainty marks errors, Dice rises as more is removed.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["error_auroc", "dice_after_removing_uncertain"]


def _region(pred: np.ndarray, ref: np.ndarray, uncertainty: np.ndarray, region) -> np.ndarray:
    if region is not None:
        return np.asarray(region, dtype=bool)
    return (pred != 0) | (ref != 0) | (uncertainty > 0)


def error_auroc(uncertainty, pred, ref, *, region=None) -> float:
    """AUROC of ``uncertainty`` for the voxels where the label maps ``pred`` and ``ref`` differ.

    Args:
        uncertainty: per-voxel uncertainty (e.g. predictive entropy or variance), any shape.
        pred, ref: integer label maps of that shape.
        region: boolean mask of the voxels to score (default: see the module docstring).
    Returns:
        the AUROC, or ``nan`` when the region holds only errors or no errors.
    """
    from sklearn.metrics import roc_auc_score

    u, p, r = np.asarray(uncertainty, dtype=np.float64), np.asarray(pred), np.asarray(ref)
    if not u.shape == p.shape == r.shape:
        raise ValueError(f"shapes differ: uncertainty {u.shape}, pred {p.shape}, ref {r.shape}")
    keep = _region(p, r, u, region)
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
