"""Reading DICOM series, NRRD and MetaImage volumes through SimpleITK, in NIfTI's (RAS+) conventions.

:func:`medfusion.io.load_volume` calls these readers for a folder (one DICOM series) and for ``.nrrd``,
``.nhdr``, ``.mha`` and ``.mhd`` files; it then applies the same shape and finiteness checks as for NIfTI and
builds the :class:`~medfusion.io.Volume`. Each reader returns ``(data, affine)`` with the semantics of the
NIfTI path: ``data[i, j, k]`` is the voxel at world position ``affine @ [i, j, k, 1]`` in RAS+ mm.

SimpleITK works in LPS+ world coordinates with ``(Z, Y, X)`` numpy order, so the affine is built from the
image's direction, spacing and origin with its first two rows negated (LPS → RAS), and the pixel array is
transposed to ``(X, Y, Z)``. Pixels are read as ``float32``; for DICOM the rescale slope and intercept
(e.g. CT Hounsfield units) are applied by the reader. SimpleITK's multi-line error messages are reduced to
one line; ITK's warnings, and what its file-format libraries print on the process's stderr while reading (MetaIO
prints its reasons there rather than in the exception), are kept off the terminal: a failed read puts them in
the :class:`~medfusion.errors.InputError`, a successful one passes them on to stderr.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import numpy as np
import SimpleITK as sitk

from ..errors import InputError

__all__ = ["read_image_file", "read_dicom_series", "affine_from_sitk"]

T = TypeVar("T")

#: SimpleITK ImageIO used for each accepted file ending (forced, so a damaged file gets that format's reason).
_IMAGE_IOS = {
    ".nrrd": ("NrrdImageIO", "NRRD"),
    ".nhdr": ("NrrdImageIO", "NRRD"),
    ".mha": ("MetaImageIO", "MetaImage"),
    ".mhd": ("MetaImageIO", "MetaImage"),
}

#: LPS+ → RAS+ for homogeneous world coordinates: negate x and y.
_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])

#: Largest distance of a DICOM slice from where the regular grid puts it, as a fraction of the slice spacing.
_SLICE_POSITION_TOLERANCE = 0.1

#: Prefixes of SimpleITK/ITK/teem message lines that carry no information for the user.
_NOISE = re.compile(
    r"^(?:(?:sitk|itk|ITK)::?\s*(?:ERROR|WARNING):\s*|ITK (?:ERROR|WARNING):\s*)?"
    r"(?:\w+\(0x[0-9a-fA-F]+\):\s*)?(?:\[\w+\]\s*\w+:\s*)?"
)

#: Leading "Class: Method: " of the lines MetaIO and GDCM print.
_PRINTED_NOISE = re.compile(r"^(?:\w+:\s+)+")

#: Longest reason quoted in an error message (characters).
_MAX_REASON = 300


def _one_line(exc: BaseException, printed: str = "") -> str:
    """A one-line reason for a failed SimpleITK read.

    Args:
        exc: SimpleITK's ``RuntimeError``; its last informative line is the reason, without the "Exception thrown
            in SimpleITK ...: <source file>:<line>:" header or ITK's ``itk::ERROR: Class(0x...):`` prefix.
        printed: what the libraries printed on stderr meanwhile; if anything, its first two lines are the reason
            instead (MetaIO's exceptions only say "File cannot be read" with a stale ``errno`` text).
    """
    lines = [_NOISE.sub("", line.strip()).strip() for line in str(exc).splitlines()]
    lines = [line for line in lines if line and not line.startswith("Exception thrown in SimpleITK")]
    extra = [_PRINTED_NOISE.sub("", line.strip()) for line in printed.splitlines() if line.strip()][:2]
    reason = "; ".join(extra) if extra else lines[-1] if lines else type(exc).__name__
    reason = "".join(c if c.isprintable() else "?" for c in reason)
    return reason if len(reason) <= _MAX_REASON else reason[: _MAX_REASON - 3] + "..."


@contextmanager
def _quiet(printed: list[str]) -> Iterator[None]:
    """Run SimpleITK quietly: ITK's warnings off, and the process's stderr (file descriptor 2, where MetaIO and
    GDCM print) sent to a temporary file whose text is appended to ``printed`` on exit; both restored after."""
    previous = sitk.ProcessObject.GetGlobalWarningDisplay()
    sitk.ProcessObject.SetGlobalWarningDisplay(False)
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no stderr to redirect
        saved = None
    with tempfile.TemporaryFile() as sink:
        try:
            if saved is not None:
                os.dup2(sink.fileno(), 2)
            yield
        finally:
            if saved is not None:
                os.dup2(saved, 2)
                os.close(saved)
            sitk.ProcessObject.SetGlobalWarningDisplay(previous)
            sink.seek(0)
            printed.append(sink.read().decode("utf-8", "replace"))


def _sitk_call(action: Callable[[], T], failure: str) -> T:
    """``action()`` (SimpleITK reading) run :func:`_quiet`; a ``RuntimeError`` becomes an :class:`InputError`
    ``"<failure>: <one-line reason>"``. On success, whatever was printed is passed on to stderr."""
    printed: list[str] = []
    error = None
    with _quiet(printed):
        try:
            result = action()
        except RuntimeError as exc:
            error = exc
    if error is not None:
        raise InputError(f"{failure}: {_one_line(error, ''.join(printed))}") from None
    if any(printed):
        sys.stderr.write("".join(printed))
    return result


def affine_from_sitk(image: sitk.Image) -> np.ndarray:
    """The ``(4, 4)`` ``float64`` voxel-index → world (RAS+ mm) matrix of a SimpleITK image.

    SimpleITK maps index ``(i, j, k)`` to the LPS+ point ``origin + direction @ diag(spacing) @ (i, j, k)``
    (mm); negating the first two rows turns that into RAS+. Only the first three axes are used (a 4D image's
    fourth axis is not spatial); a 2D image gets a unit third axis along z.
    """
    dim = image.GetDimension()
    n = min(dim, 3)
    direction = np.array(image.GetDirection(), dtype=np.float64).reshape(dim, dim)[:n, :n]
    spacing = np.array(image.GetSpacing(), dtype=np.float64)[:n]
    lps = np.eye(4)
    lps[:n, :n] = direction * spacing  # scale column c by the spacing of voxel axis c
    lps[:n, 3] = np.array(image.GetOrigin(), dtype=np.float64)[:n]
    return _LPS_TO_RAS @ lps


def _array_xyz(image: sitk.Image) -> np.ndarray:
    """The voxels of a scalar SimpleITK image as a C-contiguous ``float32`` copy in ``(X, Y, Z, ...)`` order
    (SimpleITK's numpy view is ``(..., Z, Y, X)``)."""
    view = sitk.GetArrayViewFromImage(image)
    return np.array(view.transpose(), dtype=np.float32, order="C", copy=True)


def _refuse_vector(where: str, size: tuple[int, ...], components: int) -> None:
    """Refuse RGB/vector images: reading them as ``float32`` would silently turn them into grey levels."""
    if components != 1:
        raise InputError(
            f"{where} has shape {tuple(size)} with {components} components per voxel: expected a scalar 3D image "
            "(RGB and vector images are not supported)"
        )


def read_image_file(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray]:
    """Read a ``.nrrd``/``.nhdr`` (NRRD) or ``.mha``/``.mhd`` (MetaImage) file; the file is never modified.

    Args:
        path: the file (a detached header ``.nhdr``/``.mhd`` reads its data file as the header names it).

    Returns:
        ``(data, affine)``: ``float32`` voxels of shape ``(X, Y, Z)`` (``(X, Y)`` for a 2D image, ``(X, Y, Z, T)``
        for a 4D one; the caller checks the shape) and the ``(4, 4)`` RAS+ mm affine (:func:`affine_from_sitk`).

    Raises:
        InputError: the file cannot be read (one-line reason) or has more than one component per voxel.
    """
    where = os.fspath(path)
    image_io, kind = _IMAGE_IOS[os.path.splitext(where)[1].lower()]

    def read() -> sitk.Image:
        reader = sitk.ImageFileReader()
        reader.SetFileName(where)
        reader.SetImageIO(image_io)
        reader.ReadImageInformation()
        _refuse_vector(where, reader.GetSize(), reader.GetNumberOfComponents())
        reader.SetOutputPixelType(sitk.sitkFloat32)
        return reader.Execute()

    image = _sitk_call(read, f"cannot read {where} as a {kind} image")
    return _array_xyz(image), affine_from_sitk(image)


def _series_files(folder: str) -> list[str]:
    """The files of the only DICOM series in ``folder`` (not its sub-folders), sorted along the slice normal."""
    series = sitk.ImageSeriesReader.GetGDCMSeriesIDs(folder)
    if not series:
        raise InputError(f"no DICOM series in {folder} (sub-folders are not searched)")
    files = {uid: sitk.ImageSeriesReader.GetGDCMSeriesFileNames(folder, uid) for uid in series}
    if len(files) > 1:
        listed = ", ".join(f"{uid} ({len(names)} files)" for uid, names in files.items())
        raise InputError(f"{folder} holds {len(files)} DICOM series, expected one (give each its own folder): {listed}")
    return list(files[series[0]])


def _check_slice_positions(reader: sitk.ImageSeriesReader, image: sitk.Image, where: str) -> None:
    """Check that every slice's ImagePositionPatient (0020|0032) lies where the image's geometry puts it.

    ITK builds the geometry from the slice positions as if they were evenly spaced along the slice normal; with
    missing or duplicate slices, uneven spacing or a gantry tilt the affine would be wrong, so refuse those.
    Series without positions on every slice are not checked.
    """
    if image.GetDimension() != 3:
        return
    n = image.GetSize()[2]
    key = "0020|0032"
    if n < 2 or len(reader.GetFileNames()) != n or not all(reader.HasMetaDataKey(k, key) for k in range(n)):
        return
    try:
        found = np.array([[float(v) for v in reader.GetMetaData(k, key).split("\\")] for k in range(n)])
    except ValueError:
        return
    if found.shape != (n, 3):
        return
    direction = np.array(image.GetDirection(), dtype=np.float64).reshape(3, 3)
    step = image.GetSpacing()[2] * direction[:, 2]
    expected = np.array(image.GetOrigin(), dtype=np.float64) + np.arange(n)[:, None] * step
    deviation = float(np.max(np.linalg.norm(found - expected, axis=1)))
    if not deviation <= _SLICE_POSITION_TOLERANCE * image.GetSpacing()[2]:
        raise InputError(
            f"the slices of the DICOM series in {where} are not evenly spaced along the slice normal (missing or "
            f"duplicate slices, uneven spacing or gantry tilt): a slice is {deviation:.3g} mm off the regular grid"
        )


def read_dicom_series(folder: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray]:
    """Read the one DICOM series in ``folder``; no file is modified.

    Slices are ordered along the slice normal (GDCM's sorting by ImagePositionPatient), the rescale slope and
    intercept are applied (CT: Hounsfield units) and the voxels are read as ``float32``.

    Args:
        folder: a folder whose DICOM files (sub-folders are not searched) form exactly one series; other files
            in it are ignored.

    Returns:
        ``(data, affine)``: ``float32`` voxels of shape ``(X, Y, Z)`` (columns, rows, slices) and the ``(4, 4)``
        RAS+ mm affine (:func:`affine_from_sitk`).

    Raises:
        InputError: no DICOM series in the folder, several series (the message lists each series UID and its
            number of files), unreadable files (one-line reason), RGB/multi-component pixels, or slices that are
            not evenly spaced along the slice normal.
    """
    where = os.fspath(folder)
    reader = sitk.ImageSeriesReader()

    def read() -> sitk.Image:
        names = _series_files(where)
        first = sitk.ImageFileReader()
        first.SetFileName(names[0])
        first.ReadImageInformation()
        _refuse_vector(where, (*first.GetSize()[:2], len(names)), first.GetNumberOfComponents())
        reader.SetFileNames(names)
        reader.SetOutputPixelType(sitk.sitkFloat32)
        reader.MetaDataDictionaryArrayUpdateOn()
        return reader.Execute()

    image = _sitk_call(read, f"cannot read the DICOM series in {where}")
    _check_slice_positions(reader, image, where)
    return _array_xyz(image), affine_from_sitk(image)
