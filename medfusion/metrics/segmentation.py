"""Segmentation overlap and surface metrics: Dice, HD95, one-pass label counts and HECKTOR's aggregated Dice.

Conventions (see the evaluation protocols in the project docs, section "Segmentation"):

* **Dice** ``2|P∩G| / (|P|+|G|)`` of two boolean masks.  When both masks are empty the ratio is 0/0; it is
  reported as ``empty`` — 1.0 by default (nothing to find, nothing found), or pass ``empty=float("nan")`` to
  leave such cases undefined.
* **Surface** of a mask: its voxels minus its binary erosion by the cross-shaped (face-connected, 6-neighbour in
  3D, 4-neighbour in 2D) structuring element, with everything outside the array counted as background — so a
  mask that touches the array border has a surface there.  This is the definition of MONAI 1.6.1
  (``monai.metrics.utils.get_mask_edges`` without sub-voxel spacing).  DeepMind's ``surface-distance`` package
  (used by HECKTOR 2021) places surface elements between voxels and weights them by area, so its values can
  differ slightly; its robust Hausdorff distance is built the same way (max of the directed percentiles).
* **Surface distances** in millimetres: from every surface voxel of one mask to the nearest surface voxel of the
  other, Euclidean, with voxel coordinates scaled by the spacing (mm per axis, 1.0 if not given).
* **HD95** (as MONAI ``compute_hausdorff_distance(percentile=95)``, DeepMind-style robust Hausdorff): the
  maximum of the two *directed* 95th percentiles (``np.percentile``, linear interpolation) of the surface
  distances pred→ref and ref→pred, in mm.  Both masks empty → ``0.0``; exactly one empty → ``inf`` (the
  distance is undefined; callers report it as such and say how it is counted).  MONAI 1.6.1 returns NaN in
  both cases (a 95th percentile interpolated between infinite distances).
* **Aggregated Dice** (HECKTOR 2022 ranking, ``DSCagg``): per class, over all cases of a test set,
  ``2·Σᵢ|Pᵢ∩Gᵢ| / Σᵢ(|Pᵢ|+|Gᵢ|)``; the leaderboard value is the mean over the classes (1 GTVp, 2 GTVn).
  Cases without a class in either mask simply add nothing.

Speed: the surface computation crops both masks to the bounding box of their union plus one voxel (clipped to
the array) before the erosion and the distance transform.  This is exact: every voxel of either mask — hence
every surface voxel — lies inside the box, each mask voxel's face neighbours lie either inside the box or
outside the original array (where both the cropped and the uncropped erosion see background), and the distance
transform of the cropped reference surface sees all of that surface.

All functions take numpy arrays, never modify them, and return Python floats / numpy arrays.  Label maps are
checked in :mod:`.label_maps` (:func:`check_label_map`, re-exported here).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from scipy import ndimage

from ..errors import InputError
from .label_maps import _MAX_TABLE, _label_array, _labels_tuple, check_label_map

__all__ = [
    "dice",
    "surface_distances",
    "hd95",
    "label_counts",
    "AggregatedDice",
    "check_label_map",
]


# --------------------------------------------------------------------------------------------- helpers


def _mask(x, what: str) -> np.ndarray:
    """A boolean array; non-boolean input must hold only 0 and 1."""
    arr = np.asarray(x)
    if arr.ndim == 0:
        raise InputError(f"{what}: expected an array with at least one axis, got a scalar")
    if arr.dtype == bool:
        return arr
    if arr.dtype.kind not in "biuf":
        raise InputError(f"{what}: expected a boolean mask, got dtype {arr.dtype}")
    if not np.all((arr == 0) | (arr == 1)):
        raise InputError(f"{what}: a mask must be boolean or hold only 0 and 1 (got other values)")
    return arr.astype(bool)


def _mask_pair(pred_mask, ref_mask) -> tuple[np.ndarray, np.ndarray]:
    p = _mask(pred_mask, "prediction mask")
    g = _mask(ref_mask, "reference mask")
    if p.shape != g.shape:
        raise InputError(f"prediction and reference masks differ in shape: {p.shape} vs {g.shape}")
    return p, g


def _spacing(spacing, ndim: int) -> tuple[float, ...]:
    if spacing is None:
        return (1.0,) * ndim
    sp = np.atleast_1d(np.asarray(spacing, dtype=float)).ravel()
    if sp.size == 1:
        sp = np.repeat(sp, ndim)
    if sp.size != ndim:
        raise InputError(f"spacing has {sp.size} values for a {ndim}D mask: {tuple(sp.tolist())}")
    if not np.all(np.isfinite(sp)) or np.any(sp <= 0):
        raise InputError(f"spacing must be positive and finite (mm per axis), got {tuple(sp.tolist())}")
    return tuple(float(s) for s in sp)


def _union_box(p: np.ndarray, g: np.ndarray) -> tuple[slice, ...] | None:
    """Bounding box of ``p | g`` grown by one voxel and clipped to the array; ``None`` when both are empty."""
    union = p | g
    box: list[slice] = []
    sub = union
    for ax in range(union.ndim):
        # Reduce over the other axes of the part already cropped on the previous axes (cheaper each step).
        proj = np.any(sub, axis=tuple(a for a in range(union.ndim) if a != ax))
        hits = np.flatnonzero(proj)
        if hits.size == 0:
            return None
        lo = max(int(hits[0]) - 1, 0)
        hi = min(int(hits[-1]) + 2, union.shape[ax])
        box.append(slice(lo, hi))
        sub = sub[(slice(None),) * ax + (slice(lo, hi),)]
    return tuple(box)


def _surface(m: np.ndarray) -> np.ndarray:
    """Voxels of ``m`` with a face neighbour in the background or outside the array (``m`` minus its erosion)."""
    structure = ndimage.generate_binary_structure(m.ndim, 1)
    return m & ~ndimage.binary_erosion(m, structure=structure, border_value=0)


def _directed(from_surface: np.ndarray, to_surface: np.ndarray, spacing: tuple[float, ...]) -> np.ndarray:
    """Distance (mm) from every voxel of ``from_surface`` to the nearest voxel of the non-empty ``to_surface``."""
    edt = ndimage.distance_transform_edt(~to_surface, sampling=spacing)
    return edt[from_surface]


# --------------------------------------------------------------------------------------------- Dice


def dice(pred_mask, ref_mask, *, empty: float = 1.0) -> float:
    """Dice similarity coefficient ``2|P∩G| / (|P|+|G|)`` of two boolean masks of equal shape.

    Args:
        pred_mask, ref_mask: boolean masks (or 0/1 arrays) of any dimension.
        empty: the value when both masks are empty (0/0): 1.0 by default, ``float("nan")`` to leave it undefined.

    Returns:
        the Dice coefficient in [0, 1] (or ``empty``).
    """
    p, g = _mask_pair(pred_mask, ref_mask)
    return dice_from_counts(int(np.count_nonzero(p & g)), int(np.count_nonzero(p)), int(np.count_nonzero(g)),
                            empty=empty)


def dice_from_counts(intersection: int, n_pred: int, n_ref: int, *, empty: float = 1.0) -> float:
    """Dice ``2·intersection / (n_pred + n_ref)`` from voxel counts (e.g. :func:`label_counts`, or sums over
    cases for the aggregated Dice); ``empty`` when both counts are 0."""
    total = n_pred + n_ref
    return float(empty) if total == 0 else 2.0 * intersection / total


# --------------------------------------------------------------------------------------------- surfaces


def surface_distances(pred_mask, ref_mask, spacing=None) -> tuple[np.ndarray, np.ndarray]:
    """Directed surface distances in mm between two boolean masks (surface as in the module docstring).

    Args:
        pred_mask, ref_mask: boolean masks (or 0/1 arrays) of equal shape, 2D or 3D (any dimension works).
        spacing: voxel size in mm per axis (a sequence of ``ndim`` values or one number); ``None`` → 1.0.

    Returns:
        ``(pred_to_ref, ref_to_pred)``: float64 arrays with, for every surface voxel of the prediction (in C order
        of the voxels), the distance to the nearest surface voxel of the reference, and vice versa.  A mask with
        no surface gives an empty array for its own direction, and the other direction is all ``inf`` (nothing
        to reach); two empty masks give two empty arrays.
    """
    p, g = _mask_pair(pred_mask, ref_mask)
    sp = _spacing(spacing, p.ndim)
    box = _union_box(p, g)
    if box is None:
        return np.zeros(0), np.zeros(0)
    sp_surface = _surface(p[box])
    sg_surface = _surface(g[box])
    has_p = bool(sp_surface.any())
    has_g = bool(sg_surface.any())
    if not (has_p and has_g):
        n_p = int(np.count_nonzero(sp_surface))
        n_g = int(np.count_nonzero(sg_surface))
        return np.full(n_p, np.inf), np.full(n_g, np.inf)
    return _directed(sp_surface, sg_surface, sp), _directed(sg_surface, sp_surface, sp)


def hd95(pred_mask, ref_mask, spacing=None, *, percentile: float = 95.0) -> float:
    """Robust (percentile) Hausdorff distance in mm: max of the two directed ``percentile``-th percentiles.

    Equals MONAI 1.6.1 ``compute_hausdorff_distance(..., percentile=95, spacing=spacing)`` for non-empty masks
    (up to MONAI's float32 rounding); for empty masks MONAI 1.6.1 returns NaN (a percentile interpolated between
    infinite distances), this function the conventions below.

    Args:
        pred_mask, ref_mask: boolean masks (or 0/1 arrays) of equal shape, 2D or 3D.
        spacing: voxel size in mm per axis (or one number); ``None`` → 1.0.
        percentile: in [0, 100]; 100 gives the classical Hausdorff distance.  ``np.percentile`` with linear
            interpolation (as ``torch.quantile`` in MONAI).

    Returns:
        the distance in mm; ``0.0`` when both masks are empty; ``inf`` when exactly one is empty (undefined —
        the caller reports it as such).
    """
    if not 0.0 <= float(percentile) <= 100.0:
        raise ValueError(f"percentile must lie in [0, 100], got {percentile}")
    d_pg, d_gp = surface_distances(pred_mask, ref_mask, spacing)
    if d_pg.size == 0 and d_gp.size == 0:
        return 0.0
    if d_pg.size == 0 or d_gp.size == 0:
        return float("inf")
    return float(max(np.percentile(d_pg, percentile), np.percentile(d_gp, percentile)))


# --------------------------------------------------------------------------------------------- label counts


def label_counts(pred, ref, labels) -> dict[int, tuple[int, int, int]]:
    """Voxel counts ``(|P∩G|, |P|, |G|)`` for every label, from one joint histogram of the two label maps.

    Args:
        pred, ref: non-negative integer label maps of equal shape (see :func:`check_label_map`).
        labels: the positive labels to count, e.g. ``(1, 2)``; values not listed count as background.

    Returns:
        ``{label: (intersection, prediction voxels, reference voxels)}`` as Python ints.
    """
    labs = _labels_tuple(labels)
    p = _label_array(pred, "prediction label map")
    g = _label_array(ref, "reference label map")
    if p.shape != g.shape:
        raise InputError(f"prediction and reference label maps differ in shape: {p.shape} vs {g.shape}")
    k = len(labs) + 1  # index 0: background / any value not in labels
    if p.size == 0:
        return {lab: (0, 0, 0) for lab in labs}
    top = max(int(p.max()), int(g.max()))
    idx_dtype = np.uint8 if k * k <= 256 else np.intp
    if top < _MAX_TABLE:
        table = np.zeros(max(top, max(labs)) + 1, dtype=idx_dtype)
        table[list(labs)] = np.arange(1, k, dtype=idx_dtype)
        ip, ig = table[p], table[g]
    else:  # huge label values: map through a sorted search instead of a lookup table
        order = np.argsort(labs)
        sorted_labs = np.asarray(labs, dtype=np.int64)[order]

        def lookup(a: np.ndarray) -> np.ndarray:
            a = a.astype(np.int64, copy=False)
            pos = np.clip(np.searchsorted(sorted_labs, a), 0, len(labs) - 1)
            return np.where(sorted_labs[pos] == a, order[pos] + 1, 0).astype(idx_dtype)

        ip, ig = lookup(p), lookup(g)
    if idx_dtype == np.uint8:
        joint = ig * np.uint8(k)  # k*k <= 256 → fits
        joint += ip
    else:
        joint = ig.astype(np.intp) * k + ip
    hist = np.bincount(joint.ravel(), minlength=k * k).reshape(k, k)  # rows: reference, columns: prediction
    out: dict[int, tuple[int, int, int]] = {}
    for i, lab in enumerate(labs, start=1):
        out[lab] = (int(hist[i, i]), int(hist[:, i].sum()), int(hist[i, :].sum()))
    return out


class AggregatedDice:
    """HECKTOR 2022 aggregated Dice (``DSCagg``) per class, accumulated case by case.

    For each class ``c``: ``DSCagg(c) = 2·Σᵢ vᵢ|Pᵢ,c ∩ Gᵢ,c| / Σᵢ vᵢ(|Pᵢ,c| + |Gᵢ,c|)`` over all cases ``i`` seen,
    ``vᵢ`` the case's voxel volume in mm³ (the organisers' notebook sums physical volumes, so cases scanned at
    different spacings weigh by volume; 1 when none is given); the HECKTOR 2022 ranking value is the mean over the
    classes (1 GTVp, 2 GTVn).

    Example::

        agg = AggregatedDice(labels=(1, 2))
        for pred, ref in cases:
            agg.update(pred, ref)
        per_class = agg.aggregate()  # {1: ..., 2: ...}
        score = agg.mean()
    """

    def __init__(self, labels: Sequence[int] = (1, 2)) -> None:
        self.labels = _labels_tuple(labels)
        self.reset()

    def reset(self) -> None:
        """Forget all cases."""
        self._inter = dict.fromkeys(self.labels, 0.0)  # Σ v|P∩G| (mm³)
        self._size = dict.fromkeys(self.labels, 0.0)  # Σ v(|P| + |G|)
        self.n_cases = 0

    def update(self, pred_labels, ref_labels, voxel_volume: float = 1.0) -> dict[int, tuple[int, int, int]]:
        """Add one case from its two label maps (``voxel_volume``: mm³ per voxel); returns its :func:`label_counts`."""
        counts = label_counts(pred_labels, ref_labels, self.labels)
        self.update_counts(counts, voxel_volume)
        return counts

    def update_counts(self, counts: Mapping[int, Sequence[int]], voxel_volume: float = 1.0) -> None:
        """Add one case from precomputed ``{label: (|P∩G|, |P|, |G|)}`` (as :func:`label_counts` returns), each
        voxel weighing ``voxel_volume`` mm³.

        Every label of this aggregator must be present (a class absent from a case has ``(0, |P|, 0)`` etc.);
        extra labels are ignored.
        """
        if not (np.isfinite(voxel_volume) and voxel_volume > 0):
            raise ValueError(f"voxel_volume must be a positive number of mm³, got {voxel_volume}")
        rows: dict[int, tuple[int, int, int]] = {}
        for lab in self.labels:
            if lab not in counts:
                raise ValueError(f"counts lack label {lab} (have {sorted(counts)})")
            inter, n_p, n_g = (int(v) for v in counts[lab])
            if min(inter, n_p, n_g) < 0 or inter > min(n_p, n_g):
                raise ValueError(f"inconsistent counts for label {lab}: (|P∩G|, |P|, |G|) = {(inter, n_p, n_g)}")
            rows[lab] = (inter, n_p, n_g)
        for lab, (inter, n_p, n_g) in rows.items():
            self._inter[lab] += inter * float(voxel_volume)
            self._size[lab] += (n_p + n_g) * float(voxel_volume)
        self.n_cases += 1

    def aggregate(self) -> dict[int, float]:
        """``{label: DSCagg}``; ``nan`` for a label absent from every prediction and every reference so far."""
        return {lab: dice_from_counts(self._inter[lab], self._size[lab], 0, empty=float("nan")) for lab in self.labels}

    def mean(self, *, ignore_nan: bool = False) -> float:
        """Mean of :meth:`aggregate` over the classes (the HECKTOR 2022 leaderboard value).

        A class that is undefined (``nan``) makes the mean ``nan`` unless ``ignore_nan`` is set, in which case the
        mean runs over the defined classes (``nan`` if none is defined).
        """
        values = list(self.aggregate().values())
        if ignore_nan:
            values = [v for v in values if not np.isnan(v)]
            if not values:
                return float("nan")
        return float(sum(values) / len(values))
