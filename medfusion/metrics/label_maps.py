"""Segmentation label maps: the check every label map gets before it is scored (:func:`check_label_map`), and the
checks of label lists and label arrays that :mod:`.segmentation` counts with.

A label map holds non-negative whole numbers, 0 the background; float maps of whole numbers are converted to the
smallest unsigned type that holds them.  Errors are :class:`~medfusion.errors.InputError` with one line naming the
array.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from ..errors import InputError

__all__ = ["check_label_map"]

#: Above this largest label value, one-pass label counting maps values with a sorted search instead of a table.
_MAX_TABLE = 1 << 24


def _labels_tuple(labels: Iterable[int]) -> tuple[int, ...]:
    out: list[int] = []
    for lab in labels:
        if isinstance(lab, (bool, np.bool_)) or int(lab) != lab or int(lab) <= 0:
            raise ValueError(f"labels must be positive integers (0 is the background), got {lab!r}")
        if int(lab) not in out:
            out.append(int(lab))
    if not out:
        raise ValueError("at least one label is needed")
    return tuple(out)


def _label_array(x, what: str) -> np.ndarray:
    arr = np.asarray(x)
    if arr.dtype == bool:
        return arr.view(np.uint8)
    if arr.dtype.kind not in "iu":
        raise InputError(f"{what}: expected an integer label map, got dtype {arr.dtype} (see check_label_map)")
    if arr.dtype.kind == "i" and arr.size and int(arr.min()) < 0:
        raise InputError(f"{what}: negative label values")
    return arr


def _listing(values: np.ndarray, limit: int = 8) -> str:
    vals = [format(v, "g") if isinstance(v, float) else str(v) for v in values[:limit].tolist()]
    more = f" and {values.size - limit} more" if values.size > limit else ""
    return ", ".join(vals) + more


def _present_values(arr: np.ndarray) -> np.ndarray:
    """Sorted distinct values of a non-negative integer array (a histogram when the values are small)."""
    if arr.size == 0:
        return np.zeros(0, dtype=np.int64)
    top = int(arr.max())
    if top < _MAX_TABLE and top < 64 * arr.size + 1024:
        return np.flatnonzero(np.bincount(arr.ravel(), minlength=top + 1))
    return np.unique(arr)


def check_label_map(arr, *, labels=None, name: str = "label map") -> np.ndarray:
    """Validate a segmentation label map and return it as an integer array.

    Float maps holding whole numbers are converted (to the smallest unsigned type that holds them); integer and
    boolean maps are returned without copying where possible (booleans as ``uint8``).

    Args:
        arr: the label map (any dimension).
        labels: the expected positive labels, e.g. ``(1, 2)``; when given, any value outside ``{0} ∪ labels`` is
            an error.  ``None`` accepts every non-negative integer.
        name: what to call the array in error messages (e.g. the file name).

    Raises:
        InputError: (a ``ValueError``) with a one-line message naming ``name`` for non-numeric data, non-finite
            values, non-integer values (e.g. a probability map), negative labels, or unexpected labels.
    """
    a = np.asarray(arr)
    if a.dtype == bool:
        a = a.view(np.uint8)
    elif a.dtype.kind == "f":
        finite = np.isfinite(a)
        if not finite.all():
            n_bad = int(a.size - np.count_nonzero(finite))
            raise InputError(f"{name}: {n_bad} non-finite voxel value(s) (NaN/inf) in a label map")
        fractional = a != np.floor(a)
        if fractional.any():
            bad = np.unique(a[fractional])
            raise InputError(
                f"{name}: non-integer label value(s) {_listing(bad)} — a label map must hold whole numbers "
                "(is this a probability map?)"
            )
        if a.size and float(a.min()) < 0:
            bad = np.unique(a[a < 0])
            raise InputError(f"{name}: negative label value(s) {_listing(bad.astype(np.int64))}")
        top = float(a.max()) if a.size else 0.0
        if top >= 2.0**53:
            raise InputError(f"{name}: label value {top:g} is too large for an integer label map")
        for dt in (np.uint8, np.uint16, np.uint32, np.uint64):
            if top <= np.iinfo(dt).max:
                a = a.astype(dt)
                break
    elif a.dtype.kind in "iu":
        if a.dtype.kind == "i" and a.size and int(a.min()) < 0:
            bad = np.unique(a[a < 0])
            raise InputError(f"{name}: negative label value(s) {_listing(bad)}")
    else:
        raise InputError(f"{name}: expected a numeric label map, got dtype {a.dtype}")

    if labels is not None:
        expected = _labels_tuple(labels)
        present = _present_values(a)
        unexpected = np.setdiff1d(present, np.asarray((0, *expected)))
        if unexpected.size:
            raise InputError(
                f"{name}: unexpected label value(s) {_listing(unexpected)}; "
                f"expected 0 (background) and {', '.join(str(v) for v in sorted(expected))}"
            )
    return a
