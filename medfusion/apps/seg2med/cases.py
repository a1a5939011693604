"""Case folders of seg2med data: which folders are cases (:func:`case_datalist`) and a case's volumes
(:func:`load_case`).

A case is a folder with ``mask.nii.gz`` (TotalSegmentator ``total`` labels), ``ct.nii.gz`` (HU), ``t1.nii.gz``,
``t2.nii.gz`` and optionally ``body.nii.gz`` and ``tissues.nii.gz`` — the layout ``medfusion phantoms --kind
abdomen`` writes.
"""

from __future__ import annotations

import os

import numpy as np

from ...errors import InputError
from ...io import load_volume
from .inference import ras_spacing, to_ras
from .transforms import CASE_FILES

__all__ = ["case_datalist", "load_case"]


_OPTIONAL = ("body", "tissues")


def _case_files(folder: str) -> dict | None:
    files = {}
    for key in CASE_FILES:
        for ext in (".nii.gz", ".nii"):
            path = os.path.join(folder, key + ext)
            if os.path.isfile(path):
                files[key] = path
                break
    return files if all(k in files for k in CASE_FILES if k not in _OPTIONAL) else None


def case_datalist(dataset_dir: str | os.PathLike) -> list[dict]:
    """One dict per case folder under ``dataset_dir`` holding mask, ct, t1, t2 (and body, tissues):
    ``{"name", <key>: path}``. All cases must agree on whether a body mask and a tissue map are given."""
    root = os.fspath(dataset_dir)
    if not os.path.isdir(root):
        raise InputError(f"training data folder not found: {root}")
    items = []
    for name in sorted(os.listdir(root)):
        files = _case_files(os.path.join(root, name)) if os.path.isdir(os.path.join(root, name)) else None
        if files:
            items.append({"name": name, **files})
    if not items:
        raise InputError(f"no case folders with mask, ct, t1 and t2 (.nii.gz) in {root}")
    for key in _OPTIONAL:
        if len({key in it for it in items}) > 1:
            raise InputError(f"some cases in {root} have {key}.nii.gz and some do not; give it for all or none")
    return items


def load_case(item: dict) -> dict:
    """A case's volumes in RAS+ voxel order: ``labels`` (int), ``body`` (bool), ``tissues`` (int or ``None``), ``ct``,
    ``t1``, ``t2``, ``spacing``."""
    from .prior import body_from_ct

    keys = ("mask", "ct", "t1", "t2") + tuple(k for k in ("body", "tissues") if k in item)
    vols = {k: load_volume(item[k]) for k in keys}
    affine = vols["mask"].affine
    out = {k: to_ras(v.data, affine) for k, v in vols.items()}
    out["labels"] = np.rint(out.pop("mask")).astype(np.int64)
    out["body"] = out["body"] > 0 if "body" in out else body_from_ct(out["ct"])
    out["tissues"] = np.rint(out["tissues"]).astype(np.int64) if "tissues" in out else None
    out["spacing"] = ras_spacing(vols["mask"].spacing, affine)
    out["name"] = item["name"]
    return out
