"""Volume reading (NIfTI, DICOM series, NRRD, MetaImage) and NIfTI writing that keep the geometry (shape,
affine, orientation, spacing).

Every application reads its inputs with :func:`load_volume` and writes its outputs with :func:`save_like`,
so "where does the output get its affine back?" has one answer: from the :class:`Volume` it was computed
from. Whatever the input format, a :class:`Volume` means the same thing: ``data[i, j, k]`` is the voxel at
world position ``affine @ [i, j, k, 1]`` in RAS+ mm (DICOM, NRRD and MetaImage are read through SimpleITK,
see :mod:`.sitk`), and outputs are NIfTI on the input's grid. Outputs are written atomically
(temporary file in the target folder, then :func:`os.replace`), so a failed or interrupted run never leaves a
partial file behind, and an existing output is only replaced when the caller asks for it.

Bad user input (missing, unreadable or non-3D files, RGB images, folders without exactly one DICOM series,
non-finite voxels, inconsistent geometry, existing outputs) raises :class:`~medfusion.errors.InputError`
with a one-line message that names the file.
"""

from __future__ import annotations

import gzip
import os
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import nibabel as nib
import numpy as np

from ..errors import InputError
from .files import PathLike, ensure_absent, write_atomic

__all__ = ["Volume", "load_volume", "check_same_geometry", "refuse_constant", "save_like", "volume_from_array",
           "NIFTI_EXTENSIONS", "SITK_EXTENSIONS", "VOLUME_EXTENSIONS"]

#: File name endings this module reads and writes (single-file NIfTI, optionally gzip-compressed).
NIFTI_EXTENSIONS = (".nii.gz", ".nii")

#: File name endings :func:`load_volume` reads through SimpleITK: NRRD (``.nrrd``, detached header ``.nhdr``)
#: and MetaImage (``.mha``, detached header ``.mhd``). Outputs are always NIfTI.
SITK_EXTENSIONS = (".nrrd", ".nhdr", ".mha", ".mhd")

#: Every file name ending :func:`load_volume` accepts (it also accepts a folder holding one DICOM series).
VOLUME_EXTENSIONS = NIFTI_EXTENSIONS + SITK_EXTENSIONS

_ACCEPTED = f"accepted: {', '.join(VOLUME_EXTENSIONS)} files or a folder holding one DICOM series"

#: NIfTI ``xform`` code "scanner anatomical" (used for headers created from scratch).
_XFORM_SCANNER = 1


@dataclass(frozen=True)
class Volume:
    """A 3D image with its geometry.

    Attributes:
        data: voxel values, ``float32``, shape ``(X, Y, Z)`` in the file's voxel order, C-contiguous copy
            (never a view of the file).
        affine: ``(4, 4)`` ``float64`` voxel-index → world (RAS+ mm) matrix: for NIfTI as nibabel reads it
            (sform if its code is set, else qform); for DICOM/NRRD/MetaImage converted from SimpleITK's LPS+
            direction, spacing and origin.
        header: the NIfTI header :func:`save_like` writes outputs with: the file's own (a copy) for NIfTI, a
            fresh one built from the affine for other formats (as :func:`volume_from_array` makes).
        path: the file (or DICOM folder) it was read from, or ``None`` for volumes made in memory.
    """

    data: np.ndarray
    affine: np.ndarray
    header: nib.Nifti1Header
    path: str | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        """Voxel grid size ``(X, Y, Z)``."""
        return tuple(int(n) for n in self.data.shape)

    @property
    def spacing(self) -> tuple[float, ...]:
        """Voxel size in mm along each voxel axis, as the challenges' scripts and SimpleITK read it: a NIfTI file's
        header ``pixdim`` (its float32 value: the column norms of a float32 oblique affine differ from it by ~1e-8,
        which flips threshold metrics such as NSD), the exact spacing SimpleITK read for NRRD, MetaImage and DICOM
        (the affine's column norms).  A ``pixdim`` that disagrees with the affine by more than 1e-4 mm (a stale
        header) gives way to the affine."""
        norms = np.sqrt((self.affine[:3, :3] ** 2).sum(axis=0))
        if self.path is not None and _nifti_extension(self.path):
            zooms = np.asarray(self.header.get_zooms()[:3], dtype=np.float64)
            if zooms.shape == (3,) and np.all(zooms > 0) and np.allclose(zooms, norms, rtol=0.0, atol=1e-4):
                return tuple(float(z) for z in zooms)
        return tuple(float(s) for s in norms)


def _describe(path: PathLike) -> str:
    return os.fspath(path)


def _extension(path: PathLike, extensions: Iterable[str]) -> str | None:
    name = os.fspath(path).lower()
    for ext in extensions:
        if name.endswith(ext):
            return ext
    return None


def _nifti_extension(path: PathLike) -> str | None:
    return _extension(path, NIFTI_EXTENSIONS)


def load_volume(path: PathLike, *, ndim: int = 3) -> Volume:
    """Read a 3D image into a :class:`Volume`; the input is never modified.

    Accepted inputs: NIfTI files (``.nii``, ``.nii.gz``, read with nibabel), NRRD (``.nrrd``, ``.nhdr``) and
    MetaImage (``.mha``, ``.mhd``) files, and a folder holding one DICOM series (read with SimpleITK; DICOM
    files in sub-folders are not searched). Whatever the format, ``data[i, j, k]`` is the voxel at world
    position ``affine @ [i, j, k, 1]`` in RAS+ mm.

    Args:
        path: the file or DICOM folder to read.
        ndim: the number of spatial dimensions required (3 for MR/CT volumes). Trailing singleton
            dimensions beyond ``ndim`` (e.g. a ``(X, Y, Z, 1)`` image) are squeezed; anything else with a
            different number of dimensions is an error.

    Returns:
        A :class:`Volume` with ``float32`` data of shape ``(X, Y, Z)`` and its ``(4, 4)`` affine (mm). Intensity
        scaling is applied: NIfTI ``scl_slope``/``scl_inter`` (as nibabel applies them), DICOM rescale slope and
        intercept (CT in Hounsfield units). NIfTI inputs keep their header; other formats get a fresh NIfTI
        header built from the affine (qform = sform = affine, code "scanner", units mm).

    Raises:
        InputError: the input is missing, unreadable or corrupt (one-line reason), of an unsupported type, has
            the wrong number of dimensions or several components per voxel (RGB; the message gives the shape)
            or contains NaN/Inf voxels (the message counts them); a folder holds no DICOM series or several
            (the message lists the series UIDs and their numbers of files).
    """
    where = _describe(path)
    if not os.path.exists(path):
        raise InputError(f"input file not found: {where}")
    header = None
    if os.path.isdir(path):
        from . import sitk

        data, affine = sitk.read_dicom_series(where)
    elif _extension(where, SITK_EXTENSIONS):
        from . import sitk

        data, affine = sitk.read_image_file(where)
    else:
        data, affine, header = _read_nifti(where)

    data = _checked_voxels(data, where, ndim)
    if header is None:
        header = _fresh_header(data.shape, affine)
    elif header.get_data_shape() != data.shape:
        header.set_data_shape(data.shape)
    return Volume(data=np.ascontiguousarray(data, dtype=np.float32), affine=affine, header=header, path=where)


def _read_nifti(where: str) -> tuple[np.ndarray, np.ndarray, nib.Nifti1Header]:
    """Read a NIfTI file with nibabel: ``float32`` scaled voxels (a copy, any shape), its affine (``float64``
    ``(4, 4)``, RAS+ mm) and a copy of its header; other file types are an :class:`InputError`."""
    hint = "" if _nifti_extension(where) else f" ({_ACCEPTED})"
    try:
        # mmap=False: read the bytes and close the file; nothing keeps a handle on the user's file.
        img = nib.load(where, mmap=False)
    except (nib.filebasedimages.ImageFileError, OSError, EOFError, zlib.error, ValueError) as exc:
        raise InputError(f"cannot read {where} as a NIfTI image: {exc}{hint}") from None
    if not isinstance(img, nib.Nifti1Image):  # Nifti2Image is a subclass
        raise InputError(f"{where} is a {type(img).__name__}, not a NIfTI (.nii/.nii.gz) image ({_ACCEPTED})")
    try:
        data = np.array(img.get_fdata(dtype=np.float32), dtype=np.float32, order="C", copy=True)
    except (OSError, EOFError, zlib.error, ValueError, TypeError) as exc:
        raise InputError(f"cannot read the voxel data of {where} (truncated or corrupt file?): {exc}") from None
    return data, np.array(img.affine, dtype=np.float64), img.header.copy()


def _checked_voxels(data: np.ndarray, where: str, ndim: int) -> np.ndarray:
    """``data`` with trailing singleton dimensions beyond ``ndim`` squeezed, after checking that it has ``ndim``
    dimensions and only finite values (:class:`InputError` naming ``where`` otherwise)."""
    original_shape = data.shape
    while data.ndim > ndim and data.shape[-1] == 1:
        data = data[..., 0]
    if data.ndim != ndim:
        raise InputError(
            f"{where} has shape {original_shape}: expected a {ndim}D image"
            + (" (4D time series and multi-channel images are not supported)" if data.ndim > ndim else "")
        )

    n_nan = int(np.isnan(data).sum())
    n_inf = int(np.isinf(data).sum())
    if n_nan or n_inf:
        parts = [f"{n} {kind}" for n, kind in ((n_nan, "NaN"), (n_inf, "Inf")) if n]
        raise InputError(f"{where} contains non-finite voxels: {' and '.join(parts)} of {data.size}")
    return data


def refuse_constant(data: np.ndarray, where: str, why: str) -> None:
    """Refuse an image whose voxels all hold one value (all zeros, a blank or an empty export), which no method can
    have been meant for: :class:`InputError` naming ``where``, the value and ``why``."""
    data = np.asarray(data)
    if data.size and float(data.min()) == float(data.max()):
        value = float(data.flat[0])
        what = "all zeros" if value == 0 else f"constant ({value:g} everywhere)"
        raise InputError(f"{where} is {what}: {why}")


def check_same_geometry(volumes: Mapping[str, Volume], *, atol: float = 1e-3) -> None:
    """Check that all volumes share one voxel grid: the same shape and the same affine.

    Args:
        volumes: named volumes, e.g. ``{"t1n": ..., "t1c": ..., "t2w": ...}``.
        atol: largest allowed absolute difference of any affine entry (mm, or mm per voxel).

    Raises:
        InputError: naming the first pair of inputs that disagree and how (shapes, or the largest affine
            difference).
    """
    items = list(volumes.items())
    if len(items) < 2:
        return

    def label(name: str, vol: Volume) -> str:
        return f"{name} ({vol.path})" if vol.path else name

    ref_name, ref = items[0]
    for name, vol in items[1:]:
        if vol.shape != ref.shape:
            raise InputError(
                f"{label(ref_name, ref)} and {label(name, vol)} have different shapes: {ref.shape} vs {vol.shape}"
            )
        diff = float(np.max(np.abs(vol.affine - ref.affine)))
        if not diff <= atol:
            raise InputError(
                f"{label(ref_name, ref)} and {label(name, vol)} have different affines "
                f"(max difference {diff:.4g} > {atol:g}): the images are not co-registered"
            )


def volume_from_array(data: np.ndarray, affine: np.ndarray) -> Volume:
    """Make an in-memory :class:`Volume` with a fresh NIfTI header (qform and sform = ``affine``,
    code "scanner", units mm) — the reference to use with :func:`save_like` for generated images.

    Args:
        data: ``(X, Y, Z)`` array (stored as ``float32``).
        affine: ``(4, 4)`` voxel → world (RAS+ mm) matrix.
    """
    data = np.array(data, dtype=np.float32, order="C", copy=True)
    affine = np.array(affine, dtype=np.float64)
    if affine.shape != (4, 4):
        raise ValueError(f"affine must be 4x4, got {affine.shape}")
    return Volume(data=data, affine=affine, header=_fresh_header(data.shape, affine), path=None)


def _fresh_header(shape: tuple[int, ...], affine: np.ndarray) -> nib.Nifti1Header:
    """A NIfTI header for ``float32`` data of ``shape`` with qform = sform = ``affine`` (code "scanner", mm)."""
    header = nib.Nifti1Header()
    header.set_data_shape(shape)
    header.set_data_dtype(np.float32)
    header.set_xyzt_units("mm", "sec")
    header.set_qform(affine, code=_XFORM_SCANNER)
    header.set_sform(affine, code=_XFORM_SCANNER)
    return header


def _as_dtype(data: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Cast to the on-disk dtype; integer outputs are rounded and must fit (no silent wrap-around)."""
    data = np.asarray(data)
    dtype = np.dtype(dtype)
    if np.issubdtype(dtype, np.integer) and not np.issubdtype(data.dtype, np.integer):
        if not np.all(np.isfinite(data)):
            raise ValueError(f"cannot store non-finite values as {dtype}")
        data = np.rint(data)
    if np.issubdtype(dtype, np.integer) and data.size:
        info = np.iinfo(dtype)
        lo, hi = data.min(), data.max()
        if lo < info.min or hi > info.max:
            raise ValueError(f"values [{lo}, {hi}] do not fit in {dtype}")
    return np.ascontiguousarray(data, dtype=dtype)


def _header_like(reference: Volume, shape: tuple[int, ...], dtype: np.dtype) -> nib.Nifti1Header:
    """The reference's header for data of ``shape`` and ``dtype``, unscaled, with the reference's geometry and
    codes kept exactly (nibabel would otherwise reset them whenever the affine and the header's best affine
    differ by rounding), and its voxel spacing (``pixdim``, :attr:`Volume.spacing`) as it was."""
    header = reference.header.copy()
    header.set_data_shape(shape)
    header.set_data_dtype(dtype)
    header.set_slope_inter(None, None)
    header.set_sform(reference.affine, code=int(header["sform_code"]))
    header.set_qform(reference.affine, code=int(header["qform_code"]))
    header.set_zooms(tuple(reference.spacing) + (1.0,) * (len(shape) - 3))  # set_qform rounds them afresh
    return header


def save_like(
    data: np.ndarray,
    reference: Volume,
    path: PathLike,
    *,
    overwrite: bool = False,
    dtype: np.dtype | type = np.float32,
    scaled: bool = False,
) -> str:
    """Write ``data`` as a NIfTI file on the reference's voxel grid (same affine, orientation, spacing).

    The reference header is reused (qform/sform and their codes, units, description), with the data type
    set to ``dtype`` and the intensity scaling (``scl_slope``/``scl_inter``) reset, so the file stores
    ``data`` as given. The file is written to a temporary file in the same folder and then moved into
    place, so there is never a partial output; the parent folder is created if needed.

    Args:
        data: array with exactly ``reference.shape``, or ``reference.shape + (C,)`` for a 4D file of ``C`` volumes
            on the reference grid (e.g. class probabilities).
        reference: the volume whose geometry the output takes (usually an input of the computation).
        path: output file, ending in ``.nii.gz`` (compressed) or ``.nii``.
        overwrite: replace an existing file; otherwise an existing ``path`` is an error and is left as is.
        dtype: on-disk data type, e.g. ``np.float32`` for images or ``np.uint8`` for label maps (float
            data is rounded for integer types; values must fit).
        scaled: with an integer ``dtype``, store ``data`` scaled into its range with NIfTI ``scl_slope``/
            ``scl_inter`` chosen by nibabel (readers such as :func:`load_volume` return ``data`` to within half
            a step, ``(max − min) / 65535`` for int16): compact files for noisy float images.

    Returns:
        ``path`` as a string.

    Raises:
        ValueError: ``data`` does not have the reference's shape or does not fit ``dtype``.
        OutputExistsError: ``path`` exists and ``overwrite`` is false (checked before anything is written).
        InputError: ``path`` does not end in ``.nii``/``.nii.gz`` or is a folder.
    """
    target = os.fspath(path)
    ext = _nifti_extension(target)
    if ext is None:
        raise InputError(f"output file must end in .nii.gz or .nii: {target}")
    if os.path.isdir(target):
        raise InputError(f"output path is a folder: {target}")
    data = np.asarray(data)
    if tuple(data.shape) != reference.shape and (data.ndim != 4 or tuple(data.shape[:3]) != reference.shape):
        raise ValueError(f"data shape {tuple(data.shape)} does not match the reference shape {reference.shape}")
    ensure_absent([target], overwrite)
    if scaled and not np.issubdtype(np.dtype(dtype), np.integer):
        raise ValueError(f"scaled storage needs an integer dtype, got {dtype}")
    data = np.ascontiguousarray(data, dtype=np.float32) if scaled else _as_dtype(data, dtype)

    header = _header_like(reference, data.shape, np.dtype(dtype) if scaled else data.dtype)
    image = nib.Nifti1Image(data, reference.affine, header=header)
    image.header.set_slope_inter(None, None)  # unscaled, or (``scaled``) nibabel picks the scaling when writing
    payload = image.to_bytes()

    if ext == ".nii.gz":
        payload = gzip.compress(payload, compresslevel=1, mtime=0)
    write_atomic(target, payload)
    return target


