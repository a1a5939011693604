"""Instance segmentation (cell nuclei numbered 1..N in prediction and reference, numbers unrelated): how well each
object is found and outlined.

* :func:`panoptic_quality` — PQ = SQ · RQ (Kirillov et al. 2019), through MONAI's ``compute_panoptic_quality``:
  objects match when their IoU exceeds 0.5 (then the match is unique); SQ, the segmentation part, is the mean IoU
  of the matches; RQ, the detection part, is TP / (TP + ½FP + ½FN).
* :func:`aji` — the Aggregated Jaccard Index of Kumar et al. (2017, the MoNuSeg measure): every reference object is
  paired with the predicted object of highest IoU, ``Σ|G ∩ P| / (Σ|G ∪ P| + Σ|unpaired P|)``; a reference object
  that touches no prediction adds its area to the denominator.

Both are undefined (``nan``) when neither image holds an object.
"""

from __future__ import annotations

import numpy as np

__all__ = ["aji", "panoptic_quality"]


def _instances(a, name: str) -> np.ndarray:
    a = np.asarray(a)
    if a.dtype.kind not in "biu" or (a.size and a.min() < 0):
        raise ValueError(f"{name}: expected a non-negative integer instance map, got {a.dtype}")
    return a.astype(np.int64, copy=False)


def _overlaps(pred: np.ndarray, ref: np.ndarray):
    """Per reference object i and predicted object j: the intersection table and both areas (objects numbered 0..)."""
    g_ids, g = np.unique(ref, return_inverse=True)
    p_ids, p = np.unique(pred, return_inverse=True)
    g, p = g.reshape(ref.shape) - (g_ids[0] == 0), p.reshape(pred.shape) - (p_ids[0] == 0)  # background → −1
    n_g, n_p = int((g_ids > 0).sum()), int((p_ids > 0).sum())
    both = (g >= 0) & (p >= 0)
    inter = np.bincount(g[both] * n_p + p[both], minlength=n_g * n_p).reshape(n_g, n_p)
    return inter, np.bincount(g[g >= 0], minlength=n_g), np.bincount(p[p >= 0], minlength=n_p)


def aji(pred, ref) -> float:
    """Aggregated Jaccard Index of two instance maps of equal shape (see the module docstring)."""
    pred, ref = _instances(pred, "prediction"), _instances(ref, "reference")
    if pred.shape != ref.shape:
        raise ValueError(f"shapes differ: {pred.shape} vs {ref.shape}")
    inter, area_g, area_p = _overlaps(pred, ref)
    if not inter.size and not area_g.size and not area_p.size:
        return float("nan")
    union = area_g[:, None] + area_p[None, :] - inter
    common = total = 0
    used = np.zeros(len(area_p), bool)
    for i in range(len(area_g)):
        if not inter.shape[1] or not inter[i].any():
            total += area_g[i]
            continue
        j = int(np.argmax(inter[i] / union[i]))
        common, total = common + inter[i, j], total + union[i, j]
        used[j] = True
    total += area_p[~used].sum()
    return float(common / total) if total else float("nan")


def panoptic_quality(pred, ref, *, iou_threshold: float = 0.5) -> dict[str, float]:
    """``{"pq", "sq", "rq", "tp", "fp", "fn"}`` of two instance maps of equal shape, by MONAI (see the module
    docstring); ``pq``, ``sq``, ``rq`` are ``nan`` when neither map holds an object, ``sq`` also without a match."""
    import torch
    from monai.metrics import compute_panoptic_quality

    pred, ref = _instances(pred, "prediction"), _instances(ref, "reference")
    tp, fp, fn, iou_sum = (float(v) for v in compute_panoptic_quality(
        torch.from_numpy(pred), torch.from_numpy(ref), match_iou_threshold=iou_threshold, output_confusion_matrix=True))
    counted = tp + 0.5 * fp + 0.5 * fn
    nan = float("nan")
    return {"pq": iou_sum / counted if counted else nan, "sq": iou_sum / tp if tp else nan,
            "rq": tp / counted if counted else nan, "tp": tp, "fp": fp, "fn": fn}
