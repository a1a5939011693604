"""seg2med prior images: a TotalSegmentator label map turned into a grey-level image of the target modality.

The condition of the seg2med diffusion model is not a one-hot map but a "prior image": every label replaced by
its class's value in a prior table (:mod:`.prior_tables`; by default the authors' own) — Hounsfield units for CT,
the sequence signal for MR — with fat and muscle from a second, optional tissue map (TotalSegmentator's
``tissue_types``), inside a body contour that gets the body value (0 HU), with air (−1000 HU, MR 0) outside. The
body contour comes from

* a body mask given by the user (e.g. TotalSegmentator's ``body`` task), or
* a CT (:func:`body_from_ct`, the published rule: CT > −500 HU, largest connected component, holes filled), or
* the label map alone (:func:`body_from_labels`, an approximation: each axial slice's convex hull of the
  labelled voxels, widened by :data:`BODY_MARGIN_MM` for the subcutaneous layer the ``total`` task does not
  label; callers that take files warn when they fall back on it).
"""

from __future__ import annotations

import warnings
from typing import Sequence

import numpy as np

from ...errors import InputError
from .prior_tables import DEFAULT_PRIOR_TABLE, prior_lookup
from .tissues import MODALITIES, TASKS, class_names

__all__ = ["check_label_map", "check_tissue_map", "body_from_ct", "body_from_mr", "body_from_labels", "resolve_body",
           "make_prior"]

BODY_HU_THRESHOLD = -500.0
#: widening of the labels' hull for a body contour from labels alone: 15 mm for organs only (the subcutaneous
#: layer is not labelled), 2 mm with a tissue map (its subcutaneous fat reaches the skin)
BODY_MARGIN_MM = {False: 15.0, True: 2.0}


def check_label_map(labels: np.ndarray, task: str = "total", *, what: str = "mask") -> np.ndarray:
    """``labels`` as an int array after checking it is a 3D map of ``task``'s label values.

    Raises:
        InputError: not 3D, non-integer or negative values, values that are not classes of ``task`` (listed), or
            no labelled voxel.
    """
    if task not in TASKS:
        raise InputError(f"unknown TotalSegmentator task {task!r}; choose one of {', '.join(TASKS)}")
    a = np.asarray(labels)
    if a.ndim != 3:
        raise InputError(f"{what} must be a 3D label map, got shape {tuple(a.shape)}")
    if not np.issubdtype(a.dtype, np.integer):
        if not np.all(np.isfinite(a)):
            raise InputError(f"{what} has {int(np.sum(~np.isfinite(a)))} NaN/Inf voxels")
        if np.any(a != np.round(a)):
            raise InputError(f"{what} has non-integer values (e.g. {float(a[a != np.round(a)].flat[0])}); "
                             "a label map holds whole numbers")
    values = np.unique(a).astype(np.int64)
    if values[0] < 0:
        raise InputError(f"{what} has negative label values (e.g. {int(values[0])})")
    known = class_names(task)
    unknown = [int(v) for v in values if v != 0 and int(v) not in known]
    if unknown:
        shown = ", ".join(map(str, unknown[:10])) + (", …" if len(unknown) > 10 else "")
        raise InputError(f"{what} has label values that are not TotalSegmentator {task!r} classes "
                         f"(1–{max(known)}): {shown}")
    if values.max() == 0:
        raise InputError(f"{what} is empty: no labelled voxel")
    return a.astype(np.int64, copy=False)


def _largest_component(mask: np.ndarray) -> np.ndarray:
    from scipy import ndimage

    lab, n = ndimage.label(mask)
    if n <= 1:
        return mask.astype(bool)
    sizes = np.bincount(lab.ravel())
    sizes[0] = 0
    return lab == int(np.argmax(sizes))


def _fill_slices(mask: np.ndarray) -> np.ndarray:
    """Holes filled in 3D and then in every axial slice (air in the lungs and bowel is inside the body)."""
    from scipy import ndimage

    out = ndimage.binary_fill_holes(mask)
    for k in range(out.shape[2]):
        out[:, :, k] = ndimage.binary_fill_holes(out[:, :, k])
    return out


def body_from_ct(ct: np.ndarray, threshold: float = BODY_HU_THRESHOLD) -> np.ndarray:
    """The body contour of a CT in HU: voxels above ``threshold``, largest connected component, holes filled."""
    return _fill_slices(_largest_component(np.asarray(ct) > threshold))


def body_from_mr(image: np.ndarray, fraction: float = 0.1) -> np.ndarray:
    """The body contour of an MR (any units): voxels above ``fraction`` of the image's 99th percentile, largest
    connected component, holes filled (the authors threshold each of their sequences at a fixed value in their
    scanner's units; a fraction of the bright tissue works in any)."""
    a = np.asarray(image, dtype=np.float32)
    return _fill_slices(_largest_component(a > fraction * float(np.percentile(a, 99))))


def body_from_labels(labels: np.ndarray, spacing: Sequence[float] = (1.0, 1.0, 1.0), *,
                     margin_mm: float = 15.0) -> np.ndarray:
    """An approximate body contour from a label map alone: per axial slice the convex hull of the labelled
    voxels, widened by ``margin_mm`` in-plane (the ``total`` task does not label subcutaneous tissue)."""
    from scipy import ndimage
    from skimage.morphology import convex_hull_image

    a = np.asarray(labels) > 0
    body = np.zeros(a.shape, dtype=bool)
    for k in range(a.shape[2]):
        if a[:, :, k].any():
            body[:, :, k] = convex_hull_image(a[:, :, k])
    radius = [max(0, int(round(margin_mm / float(s)))) for s in spacing[:2]]
    if max(radius) > 0:
        yy, xx = np.ogrid[-radius[0]:radius[0] + 1, -radius[1]:radius[1] + 1]
        disk = (yy / max(radius[0], 1)) ** 2 + (xx / max(radius[1], 1)) ** 2 <= 1.0
        body = ndimage.binary_dilation(body, structure=disk[:, :, None])
    return body


def check_tissue_map(tissues: np.ndarray, shape, *, what: str = "tissue map") -> np.ndarray:
    """``tissues`` as an int array after checking it is a TotalSegmentator ``tissue_types`` map (0–3) of ``shape``."""
    a = np.asarray(tissues)
    if a.shape != tuple(shape):
        raise InputError(f"{what} shape {tuple(a.shape)} differs from the label map's {tuple(shape)}")
    if not np.all(np.isfinite(a)) or np.any(a != np.round(a)) or a.min() < 0 or a.max() > 3:
        raise InputError(f"{what} must hold TotalSegmentator tissue_types labels 0–3 (1 subcutaneous fat, 2 torso "
                         f"fat, 3 skeletal muscle); it has values from {float(np.nanmin(a))} to {float(np.nanmax(a))}")
    return a.astype(np.int64, copy=False)


def resolve_body(labels: np.ndarray, tissues: np.ndarray | None, body: np.ndarray | None,
                 spacing: Sequence[float], *, warn: bool = False) -> np.ndarray:
    """``body`` as a bool array of the labels' shape, or — when ``None`` — :func:`body_from_labels` of the organs and
    the tissues, with a warning that says so if ``warn``."""
    if body is None:
        margin = BODY_MARGIN_MM[tissues is not None]
        body = body_from_labels(labels if tissues is None else np.maximum(labels, tissues > 0), spacing,
                                margin_mm=margin)
        if warn:
            warnings.warn("no body mask given: the body contour is each axial slice's convex hull of the labels, "
                          f"widened by {margin:g} mm (give one, e.g. TotalSegmentator's body task)", stacklevel=3)
    body = np.asarray(body, dtype=bool)
    if body.shape != np.shape(labels):
        raise InputError(f"body mask shape {tuple(body.shape)} differs from the label map's {tuple(np.shape(labels))}")
    return body


def make_prior(labels: np.ndarray, modality: str, *, task: str = "total", body: np.ndarray | None = None,
               tissues: np.ndarray | None = None, spacing: Sequence[float] = (1.0, 1.0, 1.0),
               table: str = DEFAULT_PRIOR_TABLE, warn_body: bool = False) -> np.ndarray:
    """The prior image (float32, same shape) of a label map for ``modality`` (``ct`` in HU, or an MR sequence).

    Painted from the bottom up, as the authors do: air outside the body, the body value (0 HU) inside it, the
    tissue map's fat and muscle over that, the organs (``labels``) over everything.

    Args:
        labels: 3D TotalSegmentator label map of ``task``.
        modality: one of :data:`~.tissues.MODALITIES`.
        body: the body contour (bool, same shape); ``None`` → :func:`body_from_labels` (of the organs and the
            tissues).
        tissues: TotalSegmentator ``tissue_types`` map (1 subcutaneous fat, 2 torso fat, 3 skeletal muscle) or
            ``None`` (the body outside the organs keeps the body value).
        spacing: voxel size in mm (for the margin of :func:`body_from_labels`).
        table: :data:`~.prior_tables.PRIOR_TABLES` (``seg2med``: the authors' values).
        warn_body: warn when the body contour comes from the labels (:func:`resolve_body`).
    """
    if modality not in MODALITIES:
        raise InputError(f"unknown modality {modality!r}; choose one of {', '.join(MODALITIES)}")
    lab = check_label_map(labels, task)
    tis = None if tissues is None else check_tissue_map(tissues, lab.shape)
    body = resolve_body(lab, tis, body, spacing, warn=warn_body)
    look = prior_lookup(modality, task, table)
    prior = np.where(body > 0, np.float32(look.body), np.float32(look.background)).astype(np.float32)
    if tis is not None:
        prior = np.where(tis > 0, look.tissues[tis], prior)
    prior = np.where(lab > 0, look.labels[lab], prior)
    return prior.astype(np.float32, copy=False)
