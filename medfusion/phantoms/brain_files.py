"""BraTS-like phantom cases on disk: one case folder (``<name>-<contrast>.nii.gz`` and ``<name>-seg.nii.gz``, the
BraTS 2023 layout; optionally one contrast left out) or a dataset of them, from :func:`.brain.make_brats_phantom`."""

from __future__ import annotations

import os

import numpy as np

from ..apps.cwdm.layout import CONTRASTS, SEG, BraTSCase
from ..errors import InputError
from ..io import PathLike, ensure_absent, save_like, volume_from_array
from ..outputs import writing
from .brain import make_brats_phantom

__all__ = ["write_brats_case", "write_brats_dataset"]


def _case_paths(out_dir: PathLike, name: str, drop: str | None) -> dict[str, str]:
    folder = os.path.join(os.fspath(out_dir), name)
    kinds = [c for c in CONTRASTS if c != drop] + [SEG]
    return {k: os.path.join(folder, f"{name}-{k}.nii.gz") for k in kinds}


def _check_drop(drop: str | None) -> None:
    if drop is not None and drop not in CONTRASTS:
        raise InputError(f"drop must be one of {', '.join(CONTRASTS)} (or None), got {drop!r}")


def write_brats_case(
    out_dir: PathLike,
    name: str,
    *,
    shape: tuple[int, int, int],
    seed: int,
    spacing: tuple[float, float, float] | None = None,
    drop: str | None = None,
    overwrite: bool = False,
) -> BraTSCase:
    """Write one phantom as a BraTS case folder ``<out_dir>/<name>/<name>-{t1n,t1c,t2w,t2f,seg}.nii.gz``.

    Contrasts are float32, the label map uint8, all with the phantom's RAS+ affine.

    Args:
        out_dir: dataset folder (created if needed).
        name: case name, e.g. ``"BraTS-PHANTOM-00000-000"``.
        shape, spacing, seed: see :func:`make_brats_phantom`.
        drop: a contrast not to write (a missing-modality case), or ``None`` to write all four.
        overwrite: replace existing files; otherwise any existing output is an error raised before writing.

    Returns:
        The written case (``missing`` = ``drop``).
    """
    _check_drop(drop)
    paths = _case_paths(out_dir, name, drop)
    ensure_absent(paths.values(), overwrite)
    phantom = make_brats_phantom(shape, spacing=spacing, seed=seed)
    reference = volume_from_array(phantom["t1n"], phantom["affine"])
    reference.header["descrip"] = f"medfusion BraTS phantom, seed {seed}".encode()[:80]
    for kind, path in paths.items():
        dtype = np.uint8 if kind == SEG else np.float32
        save_like(phantom[kind], reference, path, overwrite=overwrite, dtype=dtype)
    return BraTSCase(
        name=name,
        paths={c: paths[c] for c in CONTRASTS if c in paths},
        missing=drop,
        seg=paths[SEG],
        folder=os.path.join(os.fspath(out_dir), name),
    )


def write_brats_dataset(
    out_dir: PathLike,
    n: int,
    *,
    shape: tuple[int, int, int],
    seed0: int = 0,
    prefix: str = "BraTS-PHANTOM",
    drop: str | None = None,
    spacing: tuple[float, float, float] | None = None,
    overwrite: bool = False,
) -> list[BraTSCase]:
    """Write ``n`` phantom cases ``<prefix>-00000-000``, ``<prefix>-00001-000``, ... with seeds
    ``seed0``, ``seed0 + 1``, ...

    Args:
        drop: a contrast left out of every case, ``"random"`` for one left out per case (chosen
            reproducibly from ``seed0``, as in BraSyn), or ``None`` for complete cases.
        Others: see :func:`write_brats_case`.

    Raises:
        OutputExistsError: some output exists and ``overwrite`` is false (checked before writing anything).
    """
    if n < 0:
        raise InputError(f"number of cases must be ≥ 0, got {n}")
    if drop == "random":
        picks = np.random.default_rng(seed0).integers(len(CONTRASTS), size=n)
        drops = [CONTRASTS[int(i)] for i in picks]
    else:
        _check_drop(drop)
        drops = [drop] * n
    names = [f"{prefix}-{i:05d}-000" for i in range(n)]
    with writing([p for nm, d in zip(names, drops) for p in _case_paths(out_dir, nm, d).values()],
                 overwrite=overwrite):
        return [
            write_brats_case(out_dir, nm, shape=shape, seed=seed0 + i, spacing=spacing, drop=d, overwrite=overwrite)
            for i, (nm, d) in enumerate(zip(names, drops))
        ]
