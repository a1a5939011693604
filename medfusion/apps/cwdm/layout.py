"""BraTS case folders: which contrasts a case has, which one is missing, and where its output goes.

A BraTS case folder ``BraTS-GLI-00001-000/`` holds co-registered 3D MR contrasts and, for training data,
a tumour label map::

    BraTS-GLI-00001-000-t1n.nii.gz   T1-weighted, native (pre-contrast)
    BraTS-GLI-00001-000-t1c.nii.gz   T1-weighted, contrast-enhanced (post-gadolinium)
    BraTS-GLI-00001-000-t2w.nii.gz   T2-weighted
    BraTS-GLI-00001-000-t2f.nii.gz   T2-FLAIR (fluid-attenuated inversion recovery)
    BraTS-GLI-00001-000-seg.nii.gz   labels: 1 necrotic core, 2 oedema, 3 enhancing tumour

In the missing-modality task (BraSyn) one contrast file is absent; it is recognised by its absence, and the
synthesised image is written as ``<case>-<missing>.nii.gz`` in the geometry of the inputs. Uncompressed
``.nii`` files are accepted too. Files whose names start with ``.`` are ignored.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Union

from medfusion.errors import InputError
from medfusion.io import Volume, check_same_geometry, load_volume, refuse_constant

from .constants import CONTRASTS

__all__ = [
    "CONTRASTS",
    "CONTRAST_NAMES",
    "SEG",
    "BraTSCase",
    "find_case",
    "case_from_files",
    "case_folders",
    "is_dataset",
    "list_cases",
    "check_case",
    "load_case",
]

PathLike = Union[str, "os.PathLike[str]"]

#: The four BraTS MR contrasts in canonical order (the order conditions are stacked in).

#: Full names of the contrasts.
CONTRAST_NAMES: dict[str, str] = {
    "t1n": "T1-weighted, native (pre-contrast)",
    "t1c": "T1-weighted, contrast-enhanced (post-gadolinium)",
    "t2w": "T2-weighted",
    "t2f": "T2-FLAIR (fluid-attenuated inversion recovery)",
}

#: Suffix of the tumour label map.
SEG = "seg"

_EXTENSIONS = (".nii.gz", ".nii")


@dataclass
class BraTSCase:
    """One case: its contrast files, the missing contrast and the label map.

    Attributes:
        name: case identifier, e.g. ``"BraTS-GLI-00001-000"`` (the prefix of its file names).
        paths: contrast → file for the contrasts that are present, in canonical order.
        missing: the contrast to synthesise (absent from ``paths``), or ``None`` if all four are present.
        seg: the label map file, if there is one.
        folder: the case folder, if the case was found in one.
    """

    name: str
    paths: dict[str, str] = field(default_factory=dict)
    missing: str | None = None
    seg: str | None = None
    folder: str | None = None

    def output_path(self, out_dir: PathLike) -> str:
        """Where the synthesised contrast goes: ``<out_dir>/<name>-<missing>.nii.gz``."""
        if self.missing is None:
            raise ValueError(f"case {self.name} has no missing contrast, so it has no output")
        return os.path.join(os.fspath(out_dir), f"{self.name}-{self.missing}.nii.gz")

    def inputs(self) -> list[str]:
        """Every file of the case (contrasts and label map): no output may replace one of them."""
        return list(self.paths.values()) + ([self.seg] if self.seg else [])


def _split_name(filename: str) -> tuple[str, str] | None:
    """``"X-t1n.nii.gz"`` → ``("X", "t1n")`` for a contrast or ``seg`` file; ``None`` for anything else."""
    lower = filename.lower()
    for ext in _EXTENSIONS:
        if lower.endswith(ext):
            stem = filename[: -len(ext)]
            break
    else:
        return None
    prefix, sep, kind = stem.rpartition("-")
    kind = kind.lower()
    if not sep or not prefix or kind not in (*CONTRASTS, SEG):
        return None
    return prefix, kind


def _scan_folder(folder: str) -> dict[str, list[tuple[str, str]]]:
    """kind → [(prefix, path), ...] for the contrast and seg files in ``folder`` (not recursive)."""
    found: dict[str, list[tuple[str, str]]] = {}
    for entry in sorted(os.listdir(folder)):
        if entry.startswith("."):
            continue
        path = os.path.join(folder, entry)
        parsed = _split_name(entry)
        if parsed is None:
            continue
        if not os.path.isfile(path):
            if os.path.isdir(path):
                continue
            # a dangling or self-looping link must not pass for a missing contrast
            raise InputError(f"{path} is not a readable file (a broken or looping link?)")
        prefix, kind = parsed
        found.setdefault(kind, []).append((prefix, path))
    return found


def _check_distinct(paths: dict[str, str], where: str) -> None:
    """Two contrasts given as the same file are an error (e.g. one file passed as --t1n and --t2w)."""
    seen: dict[str, str] = {}
    for contrast, path in paths.items():
        real = os.path.realpath(path)
        if real in seen:
            raise InputError(f"{where}: {seen[real]} and {contrast} are the same file ({path})")
        seen[real] = contrast


def _one_missing(present: list[str], where: str, require_missing: bool) -> str | None:
    missing = [c for c in CONTRASTS if c not in present]
    if len(missing) >= 2:
        raise InputError(
            f"{where}: {len(missing)} contrasts are missing ({', '.join(missing)}); "
            "exactly one may be missing"
        )
    if not missing:
        if require_missing:
            raise InputError(
                f"{where}: all four contrasts are present, so there is nothing to synthesise "
                "(exactly one of t1n, t1c, t2w, t2f must be missing)"
            )
        return None
    return missing[0]


def find_case(folder: PathLike, *, require_missing: bool = True) -> BraTSCase:
    """Read a case folder and recognise the missing contrast by its absent file.

    Args:
        folder: a folder holding ``<case>-{t1n,t1c,t2w,t2f}[.nii.gz|.nii]`` and optionally ``<case>-seg``.
        require_missing: if true (inference), exactly one contrast must be missing; if false (training,
            evaluation), a complete case is accepted too (``missing`` is then ``None``).

    Raises:
        InputError: the folder does not exist, holds no contrast file, holds two files for one contrast,
            files of different cases, two or more missing contrasts, or (with ``require_missing``) none.
    """
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        raise InputError(f"case folder not found: {folder}")
    found = _scan_folder(folder)
    contrasts = {k: v for k, v in found.items() if k != SEG}
    if not contrasts:
        raise InputError(
            f"no BraTS contrast files in {folder} (expected <case>-t1n.nii.gz, -t1c, -t2w, -t2f)"
        )
    for kind, files in found.items():
        if len(files) > 1:
            names = ", ".join(os.path.basename(p) for _, p in files)
            raise InputError(f"{folder}: more than one file for {kind}: {names}")
    prefixes = sorted({files[0][0] for files in found.values()})
    if len(prefixes) > 1:
        raise InputError(f"{folder} mixes files of different cases: {', '.join(prefixes)}")

    paths = {c: contrasts[c][0][1] for c in CONTRASTS if c in contrasts}
    _check_distinct(paths, folder)
    missing = _one_missing(list(paths), folder, require_missing)
    seg = found[SEG][0][1] if SEG in found else None
    return BraTSCase(name=prefixes[0], paths=paths, missing=missing, seg=seg, folder=folder)


def _common_case_name(paths: dict[str, str]) -> str:
    """The shared ``<case>`` prefix of ``<case>-<contrast>`` file names, else the first file's stem."""
    prefixes = set()
    for contrast, path in paths.items():
        parsed = _split_name(os.path.basename(path))
        if parsed is None or parsed[1] != contrast:
            prefixes = set()
            break
        prefixes.add(parsed[0])
    if len(prefixes) == 1:
        return prefixes.pop()
    first = os.path.basename(next(iter(paths.values())))
    for ext in _EXTENSIONS:
        if first.lower().endswith(ext):
            return first[: -len(ext)]
    return os.path.splitext(first)[0]


def case_from_files(
    t1n: PathLike | None = None,
    t1c: PathLike | None = None,
    t2w: PathLike | None = None,
    t2f: PathLike | None = None,
    name: str | None = None,
    *,
    seg: PathLike | None = None,
) -> BraTSCase:
    """Make a case from explicit files, leaving out exactly one contrast (the one to synthesise).

    Args:
        t1n, t1c, t2w, t2f: the contrast files; exactly one must be ``None``.
        name: case name for the output file; defaults to the common ``<case>`` prefix of file names of the
            form ``<case>-t1n.nii.gz`` etc., else the stem of the first given file.
        seg: optional label map.

    Raises:
        InputError: not exactly one contrast left out, or a given file does not exist.
    """
    given = {c: p for c, p in zip(CONTRASTS, (t1n, t1c, t2w, t2f)) if p is not None}
    if len(given) != len(CONTRASTS) - 1:
        left_out = [c for c in CONTRASTS if c not in given]
        raise InputError(
            f"give exactly three of the four contrasts (t1n, t1c, t2w, t2f) and leave out the one to "
            f"synthesise; left out: {', '.join(left_out) or 'none'}"
        )
    paths = {c: os.fspath(p) for c, p in given.items()}
    for contrast, path in [*paths.items(), *([(SEG, os.fspath(seg))] if seg is not None else [])]:
        if not os.path.exists(path):  # a file, or a DICOM series folder
            raise InputError(f"{contrast} file not found: {path}")
    _check_distinct(paths, "the given contrasts")
    missing = next(c for c in CONTRASTS if c not in paths)
    return BraTSCase(
        name=name if name else _common_case_name(paths),
        paths=paths,
        missing=missing,
        seg=os.fspath(seg) if seg is not None else None,
        folder=None,
    )


def case_folders(dataset_dir: PathLike) -> list[str]:
    """The sub-folders of a dataset that hold at least one contrast file, sorted by name (hidden ones skipped).

    Raises:
        InputError: the folder does not exist or holds no such sub-folder.
    """
    dataset_dir = os.fspath(dataset_dir)
    if not os.path.isdir(dataset_dir):
        raise InputError(f"dataset folder not found: {dataset_dir}")
    folders = [os.path.join(dataset_dir, e) for e in sorted(os.listdir(dataset_dir))
               if not e.startswith(".") and os.path.isdir(os.path.join(dataset_dir, e))]
    folders = [f for f in folders if any(k != SEG for k in _scan_folder(f))]
    if not folders:
        raise InputError(f"no BraTS case folders (with <case>-t1n.nii.gz etc.) in {dataset_dir}")
    return folders


def is_dataset(folder: PathLike) -> bool:
    """Whether ``folder`` is a dataset (sub-folders of cases, no contrast file of its own) rather than a case."""
    folder = os.fspath(folder)
    if not os.path.isdir(folder) or any(k != SEG for k in _scan_folder(folder)):
        return False
    try:
        return bool(case_folders(folder))
    except InputError:
        return False


def list_cases(dataset_dir: PathLike, *, require_missing: bool = True) -> list[BraTSCase]:
    """All cases of a dataset: every sub-folder holding at least one contrast file, sorted by folder name.

    Args:
        dataset_dir: folder of case folders.
        require_missing: passed to :func:`find_case` for every case.

    Raises:
        InputError: the folder does not exist or holds no case; or a case is invalid (see :func:`find_case`).
    """
    return [find_case(f, require_missing=require_missing) for f in case_folders(dataset_dir)]


def check_case(case: BraTSCase) -> None:
    """Read a case and check it as synthesis will: readable, one voxel grid, finite voxels, no constant contrast
    (:class:`~medfusion.errors.InputError` otherwise)."""
    for c, vol in load_case(case).items():
        refuse_constant(vol.data, f"contrast {c} ({vol.path})", "there is nothing to synthesize from")


def load_case(case: BraTSCase) -> dict[str, Volume]:
    """Load the available contrasts of a case, checking that they share one voxel grid.

    Returns:
        contrast → :class:`~medfusion.io.Volume`, in canonical order (t1n, t1c, t2w, t2f) without the
        missing one.

    Raises:
        InputError: a file cannot be read (see :func:`~medfusion.io.load_volume`) or the contrasts differ
            in shape or affine.
    """
    volumes = {c: load_volume(case.paths[c]) for c in CONTRASTS if c in case.paths}
    check_same_geometry(volumes)
    return volumes
