"""Pairing predictions with references by case name, and finding each case's mask.

``pred`` and ``ref`` are files, or folders searched recursively; a case is a file's name without its
extension (``BraTS-001-t2f.nii.gz`` → ``BraTS-001-t2f``), and predictions and references with the same case name
are paired.  A reference label map named like a mask (``X-seg``, ``X_label``, ... as below) pairs with the
prediction ``X`` when no reference is named ``X`` (BraTS: ``BraTS-GLI-00001-000-seg.nii.gz`` is the truth of the
submitted ``BraTS-GLI-00001-000.nii.gz``).  Files only on one side are listed as unpaired (an error only if
nothing pairs).
Masks (``mask``): one file for every case, or a folder (it may be the reference folder itself); a mask belongs
to a case when its name ends in ``-seg``/``_seg``/``-mask``/``_mask``/``-label(s)`` and the part before equals the
case name or the case name without its last ``-``/``_`` part (so ``BraTS-001-seg`` is the mask of
``BraTS-001-t2f``); failing that, a mask file with exactly the case's name.

Holds :class:`Case` and :func:`pair_cases` (used by :func:`medfusion.evaluate.evaluate`, which re-exports both) and
:data:`IMAGE_EXTENSIONS`, the file kinds of RGB images.  Nothing here reads an image.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass

from .errors import InputError
from .io import VOLUME_EXTENSIONS

__all__ = ["Case", "pair_cases", "IMAGE_EXTENSIONS"]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
_MASK_SUFFIX = re.compile(r"[-_](seg|mask|label|labels)$", re.IGNORECASE)
_LAST_PART = re.compile(r"[-_][^-_]+$")


@dataclass(frozen=True)
class Case:
    """One prediction/reference pair (and its mask, if any)."""

    name: str
    pred: str
    ref: str
    mask: str | None = None


def _stem(path: str, extensions: Sequence[str]) -> str | None:
    base = os.path.basename(path)
    low = base.lower()
    for ext in extensions:
        if low.endswith(ext):
            return base[: -len(ext)]
    return None


def _collect(path: str, extensions: Sequence[str], what: str, pattern: str | None) -> dict[str, str]:
    """Case name → file, for a file or (recursively) a folder."""
    import fnmatch

    if not os.path.exists(path):
        raise InputError(f"{what} not found: {path}")
    if os.path.isfile(path):
        stem = _stem(path, extensions)
        if stem is None:
            raise InputError(f"{what} {path} is not a {'/'.join(extensions)} file")
        return {stem: path}
    found: dict[str, str] = {}
    for root, dirs, files in os.walk(path):
        dirs.sort()
        for f in sorted(files):
            stem = _stem(f, extensions)
            if stem is None or (pattern and not fnmatch.fnmatch(f, pattern)):
                continue
            full = os.path.join(root, f)
            if stem in found:
                raise InputError(f"two {what} files are both called {stem!r}: {found[stem]} and {full}")
            found[stem] = full
    if not found:
        only = f" matching {pattern!r}" if pattern else ""
        raise InputError(f"{what} folder {path} holds no {'/'.join(extensions)} files{only}")
    return found


def _mask_for(case: str, masks: dict[str, str], suffixed: dict[str, str]) -> str | None:
    for candidate in (case, _LAST_PART.sub("", case)):
        if candidate in suffixed:
            return suffixed[candidate]
    return masks.get(case)


def _unsuffixed(refs: dict[str, str], preds: dict[str, str]) -> dict[str, str]:
    """``refs`` with ``X-seg`` renamed ``X`` where a prediction ``X`` has no reference of its own name."""
    out = dict(refs)
    for name, path in refs.items():
        base = _MASK_SUFFIX.sub("", name)
        if base != name and base in preds and base not in refs:
            del out[name]
            out[base] = path
    return out


def pair_cases(pred: str, ref: str, mask: str | None = None, *, extensions: Sequence[str] = VOLUME_EXTENSIONS,
               pattern: str | None = None) -> tuple[list[Case], dict[str, list[str]]]:
    """Pair predictions with references by case name (see the module docstring).

    Returns:
        the cases (sorted by name) and ``{"pred_only": [...], "ref_only": [...]}`` (case names).
    Raises:
        InputError: missing paths, empty folders, duplicate case names, no pair at all, a case without a mask
            when a mask folder is given.
    """
    single = os.path.isfile(pred) and os.path.isfile(ref)
    preds = _collect(pred, extensions, "prediction", None if single else pattern)
    refs = _collect(ref, extensions, "reference", None if single else pattern)
    if single:  # two files: one case, whatever their names
        name = next(iter(preds))
        preds, refs = {name: pred}, {name: ref}
    elif os.path.isfile(pred) != os.path.isfile(ref):
        raise InputError("give --pred and --ref both as files or both as folders")
    refs = _unsuffixed(refs, preds)
    names = sorted(set(preds) & set(refs))
    unpaired = {"pred_only": sorted(set(preds) - set(refs)), "ref_only": sorted(set(refs) - set(preds))}
    if not names:
        raise InputError(f"no prediction in {pred} has a reference of the same name in {ref} "
                         f"(e.g. {unpaired['pred_only'][:1] or '-'} vs {unpaired['ref_only'][:1] or '-'})")
    masks: dict[str, str | None] = {n: None for n in names}
    if mask is not None:
        if os.path.isfile(mask):
            masks = {n: mask for n in names}
        else:
            found = _collect(mask, VOLUME_EXTENSIONS, "mask", None)
            suffixed = {_MASK_SUFFIX.sub("", k): v for k, v in found.items() if _MASK_SUFFIX.search(k)}
            masks = {n: _mask_for(n, found, suffixed) for n in names}
            lacking = [n for n, m in masks.items() if m is None]
            if lacking:
                raise InputError(f"no mask in {mask} for {len(lacking)} case(s), e.g. {lacking[0]}")
    return [Case(n, preds[n], refs[n], masks[n]) for n in names], unpaired
