"""Loading and checking one evaluation case: its files read onto the reference grid (:func:`load_case`), and the
checks and conversions every case gets, read from files or given as arrays (:func:`check_arrays`).

:mod:`medfusion.evaluate` scores the cases these return (and re-exports both functions); nothing here scores.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .errors import InputError
from .io import LABEL_IMAGE_EXTENSIONS, check_same_geometry, load_label_image, load_rgb, load_volume, resample_like
from .pairing import Case

__all__ = ["load_case", "check_arrays"]


def _on_grid(vol, ref, what: str, *, resample: bool, labels: bool, atol: float) -> np.ndarray:
    try:
        check_same_geometry({"reference": ref, what: vol}, atol=atol)
    except InputError as exc:
        if not resample:
            raise InputError(f"{exc} (use --resample to resample the {what} onto the reference grid)") from None
        return resample_like(vol, ref, order=0 if labels else 1)
    return vol.data


def load_case(case: Case, inputs: str, *, labels=None, resample: bool = False, atol: float = 1e-3):
    """Read one case's files, put the prediction and mask on the reference grid, and check the arrays as every
    case is checked (:func:`check_arrays`; ``inputs``: "image", "labels" or "rgb").

    Returns:
        ``(pred, ref, mask, spacing)`` as :func:`check_arrays` returns them; the spacing is the reference's voxel
        spacing in mm from its affine (``None`` for RGB images).
    Raises:
        InputError: unreadable files, NaN voxels, different sizes or grids (without ``resample``), unexpected
            labels.
    """
    if inputs == "rgb":
        return check_arrays(load_rgb(case.pred), load_rgb(case.ref), inputs="rgb", names=(case.pred, case.ref, None))
    if inputs == "labels" and _label_image(case.ref):
        if not _label_image(case.pred) or case.mask is not None:
            raise InputError(f"{case.ref} is a 2D label image: its prediction must be one too ({case.pred}), "
                             "with no mask")
        return check_arrays(load_label_image(case.pred), load_label_image(case.ref), inputs="labels",
                            labels=labels, names=(case.pred, case.ref, None))
    ref_vol = load_volume(case.ref)
    is_labels = inputs == "labels"
    pred = _on_grid(load_volume(case.pred), ref_vol, "prediction", resample=resample, labels=is_labels, atol=atol)
    mask = None
    if case.mask is not None:
        mask = _on_grid(load_volume(case.mask), ref_vol, "mask", resample=resample, labels=True, atol=atol)
    return check_arrays(pred, ref_vol.data, mask, ref_vol.spacing, inputs=inputs, labels=labels,
                        names=(case.pred, case.ref, case.mask))


def _label_image(path: str) -> bool:
    """A 2D label image file (PNG/TIFF), read by :func:`medfusion.io.load_label_image`, not a volume."""
    return str(path).lower().endswith(LABEL_IMAGE_EXTENSIONS)


def check_arrays(pred, ref, mask=None, spacing=None, *, inputs: str = "image", labels=None,
                 names: Sequence[str | None] = ("prediction", "reference", "mask")):
    """Check one case's arrays and convert them as the protocols expect them.  Every case goes through here,
    read from files (:func:`load_case`) or given in memory (:func:`medfusion.evaluate.evaluate_arrays`), so the same volume scores
    the same either way.

    Args:
        pred, ref: ``inputs="image"``: 3D arrays of any real dtype, converted to ``float32`` as
            :func:`~medfusion.io.load_volume` reads NIfTI files; ``"labels"``: 3D label maps (see
            :func:`~medfusion.metrics.label_maps.check_label_map`); ``"rgb"``: ``(H, W, 3)`` ``uint8`` images.
        mask: ``None`` or an array of the reference's shape; voxels > 0 are the mask (not for RGB).
        spacing: voxel size in mm per axis; ``None`` → 1.0 per axis (HD95 is then in voxels).  Unused for RGB.
        labels: the expected positive labels of label maps; any other value is an error.
        names: what to call prediction, reference and mask in error messages (file or case names).

    Returns:
        ``(pred, ref, mask, spacing)``: the converted arrays, the mask as a boolean array (or ``None``), the
        spacing as a tuple of floats (``None`` for RGB).
    Raises:
        InputError: different shapes, wrong dimensions or dtypes, NaN/Inf voxels, unexpected labels, a
            non-positive spacing.
    """
    names = [n or what for n, what in zip(names, ("prediction", "reference", "mask"))]
    if inputs == "rgb":
        pred, ref = np.asarray(pred), np.asarray(ref)
        for a, name in ((pred, names[0]), (ref, names[1])):
            if a.dtype != np.uint8 or a.ndim != 3 or a.shape[-1] != 3:
                raise InputError(f"{name}: expected an (H, W, 3) uint8 RGB image, got {a.dtype} {a.shape}")
        if mask is not None:
            raise InputError("RGB images take no mask")
        if pred.shape != ref.shape:
            raise InputError(f"{names[0]} and {names[1]} have different sizes: {pred.shape} vs {ref.shape}")
        return pred, ref, None, None
    pred, ref = (_volume(a, name, inputs, labels) for a, name in ((pred, names[0]), (ref, names[1])))
    if pred.shape != ref.shape:
        raise InputError(f"{names[0]} and {names[1]} have different shapes: {pred.shape} vs {ref.shape}")
    if mask is not None:
        mask = np.asarray(mask)
        if mask.shape != ref.shape or (mask.dtype.kind == "f" and not np.isfinite(mask).all()):
            raise InputError(f"{names[2]}: expected finite values in the reference's shape {ref.shape}, got "
                             f"{mask.dtype} {mask.shape}")
        mask = mask > 0
    spacing = (1.0,) * ref.ndim if spacing is None else tuple(float(s) for s in spacing)
    if len(spacing) != ref.ndim or not all(np.isfinite(s) and s > 0 for s in spacing):
        raise InputError(f"{names[1]}: spacing must be {ref.ndim} positive numbers (mm), got {spacing}")
    return pred, ref, mask, spacing


def _volume(a, name: str, inputs: str, labels) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim != 3 and not (inputs == "labels" and a.ndim == 2):
        raise InputError(f"{name} has shape {a.shape}: expected a 3D image" + (" (or a 2D label image)" if
                                                                               inputs == "labels" else ""))
    if inputs == "labels":
        from .metrics.label_maps import check_label_map

        return check_label_map(a, labels=tuple(labels) if labels else None, name=name)
    if a.dtype.kind not in "biuf":
        raise InputError(f"{name}: voxel values must be real numbers, got {a.dtype}")
    a = a.astype(np.float32, copy=False)
    bad = a.size - int(np.count_nonzero(np.isfinite(a)))
    if bad:
        raise InputError(f"{name} contains non-finite voxels: {bad} NaN/Inf of {a.size}")
    return a
