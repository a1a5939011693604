"""PET/CT geometry for head-and-neck tumour segmentation (HECKTOR-style data).

HECKTOR cases hold a CT (≈ 512×512×200 at 0.98×0.98×3 mm, Hounsfield units) and a PET (≈ 200³ at 4 mm, SUV)
that share one world space (their affines) but not one voxel grid. Labels (0 background, 1 GTVp, 2 GTVn) live
on the CT grid, and predictions are evaluated there. This module

* reads and checks a PET/CT pair (:func:`load_pet_ct`): world overlap, SUV range, Hounsfield units;
* defines the working grid both are resampled onto (:func:`working_grid`): an axis-aligned RAS+ grid over the
  CT∩PET overlap (HECKTOR 2022 rule) or over a box around the head and neck found from the PET (earlier
  editions; :mod:`.headneck_box`), its size rounded up to a multiple of what the network needs;
* moves images onto it (:func:`to_working_grid`; a read pair at once: :func:`prepare_case`) and predictions back
  onto the CT grid (:func:`to_ct_grid`).

Resampling onto the working grid happens before the preprocessing (:mod:`.transforms`): it needs the files' affines,
and the network's input size depends on it.

All positions are world RAS+ millimetres: voxel ``[i, j, k]`` of a volume is at ``affine @ [i, j, k, 1]``.
Resampling is :func:`medfusion.io.resample_array` (nibabel's ``resample_from_to``); a sample
counts as inside its source when it lies within the source's outer voxel corners (half a voxel beyond the edge
voxel centres), where edge values are extended; further out it takes the fill value.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Union

import numpy as np

from medfusion.errors import InputError
from medfusion.io import Volume, load_volume, refuse_constant, resample_array

from .headneck_box import BODY_SUV, BRAIN_MIN_ML, BRAIN_SMOOTH_SIGMA_MM, BRAIN_SUV, Bounds, head_neck_box

__all__ = [
    "WorkingGrid",
    "WorkingCase",
    "prepare_case",
    "load_pet_ct",
    "world_bounds",
    "overlap_bounds",
    "working_grid",
    "to_working_grid",
    "to_ct_grid",
    "SUV_MAX",
    "SUV_MIN",
    "CT_HU_MAX_AT_LEAST",
    "CT_HU_MIN_AT_MOST",
    "CT_CHECK_MIN_EXTENT_MM",
    "BRAIN_SMOOTH_SIGMA_MM",
    "BRAIN_SUV",
    "BRAIN_MIN_ML",
    "BODY_SUV",
]

PathLike = Union[str, "os.PathLike[str]"]

#: A PET whose maximum exceeds this is taken to be in activity concentration (Bq/ml), not SUV.
SUV_MAX = 100.0
#: A PET with values below this (SUV) is refused; reconstruction leaves only small negative values.
SUV_MIN = -1.0
#: A CT must reach at least this value somewhere (bone, soft tissue edges: HU above 100).
CT_HU_MAX_AT_LEAST = 100.0
#: A CT must go down to this value somewhere (air around the head or in the airway: ≈ −1000 HU).
CT_HU_MIN_AT_MOST = -500.0
#: The two CT checks apply only when the CT spans at least this many mm along every axis (tiny crops may
#: legitimately hold neither bone nor air).
CT_CHECK_MIN_EXTENT_MM = 50.0


@dataclass(frozen=True, eq=False)
class WorkingGrid:
    """An axis-aligned RAS+ voxel grid that PET and CT are resampled onto.

    Attributes:
        shape: number of voxels ``(X, Y, Z)`` along R, A, S.
        affine: ``(4, 4)`` voxel → world (RAS+ mm) matrix, diagonal 3×3 part (the spacing, positive), read-only.
    """

    shape: tuple[int, int, int]
    affine: np.ndarray

    def __post_init__(self) -> None:
        shape = tuple(int(n) for n in self.shape)
        affine = np.array(self.affine, dtype=np.float64)
        if len(shape) != 3 or min(shape) < 1:
            raise ValueError(f"a working grid needs 3 positive sizes, got {self.shape}")
        if affine.shape != (4, 4) or not np.all(np.isfinite(affine)):
            raise ValueError(f"a working grid needs a finite 4x4 affine, got shape {affine.shape}")
        linear = affine[:3, :3]
        if np.any(linear != np.diag(np.diag(linear))) or np.any(np.diag(linear) <= 0):
            raise ValueError("a working grid's affine must be diagonal with positive spacing (axis-aligned RAS+)")
        affine.setflags(write=False)
        object.__setattr__(self, "shape", shape)
        object.__setattr__(self, "affine", affine)

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size (mm) along R, A, S."""
        return tuple(float(s) for s in np.diag(self.affine)[:3])  # type: ignore[return-value]


Gridded = Union[Volume, WorkingGrid]


def world_bounds(volume: Gridded) -> Bounds:
    """The world box a grid covers: the RAS+ extremes (mm) of its outer voxel corners.

    Works for any orientation (flipped, permuted or oblique axes): the 8 corners at voxel coordinates −0.5 and
    ``n − 0.5`` are mapped through the affine and their minimum and maximum taken per world axis.

    Args:
        volume: a :class:`~medfusion.io.Volume` or :class:`WorkingGrid` (anything with ``shape`` and ``affine``).

    Returns:
        ``(lo, hi)``, two ``float64`` arrays of shape ``(3,)``: the lowest and highest R, A, S coordinates (mm).
    """
    shape = np.asarray(volume.shape[:3], dtype=np.float64)
    corners = np.array([[a, b, c] for a in (0, 1) for b in (0, 1) for c in (0, 1)], dtype=np.float64)
    voxels = corners * shape - 0.5
    world = voxels @ np.asarray(volume.affine)[:3, :3].T + np.asarray(volume.affine)[:3, 3]
    return world.min(axis=0), world.max(axis=0)


def overlap_bounds(a: Gridded, b: Gridded) -> Bounds | None:
    """The intersection of the world boxes of two grids (see :func:`world_bounds`).

    Returns:
        ``(lo, hi)`` (RAS+ mm, ``(3,)`` arrays), or ``None`` when the boxes do not overlap with a positive
        volume (touching faces do not count).
    """
    (lo_a, hi_a), (lo_b, hi_b) = world_bounds(a), world_bounds(b)
    lo, hi = np.maximum(lo_a, lo_b), np.minimum(hi_a, hi_b)
    return (lo, hi) if bool(np.all(hi > lo)) else None


def _box_text(bounds: Bounds) -> str:
    """``x [lo, hi] y [lo, hi] z [lo, hi] mm`` on one line."""
    lo, hi = bounds
    return " ".join(f"{axis} [{a:.1f}, {b:.1f}]" for axis, a, b in zip("xyz", lo, hi)) + " mm"


def _named(kind: str, volume: Volume) -> str:
    """``"PET /path/pet.nii.gz"``, or just the kind for a volume made in memory."""
    return f"{kind} {volume.path}" if volume.path else kind


def _no_overlap(pet: Volume, ct: Volume) -> InputError:
    """The error for a PET and a CT whose world boxes do not overlap, giving both boxes."""
    return InputError(
        f"{_named('PET', pet)} and {_named('CT', ct)} do not overlap in world space: PET spans "
        f"{_box_text(world_bounds(pet))}, CT spans {_box_text(world_bounds(ct))} (RAS); use the PET and CT of one "
        "study with their original headers"
    )


def load_pet_ct(pet_path: PathLike, ct_path: PathLike) -> tuple[Volume, Volume]:
    """Read a PET (SUV) and a CT (HU) of one study and check that they fit together; the files are never modified.

    Checks, after :func:`~medfusion.io.load_volume` (missing, unreadable, non-3D or non-finite inputs):

    * both affines are invertible, and the two volumes overlap in world space (positive volume);
    * neither is constant (an all-zero PET or CT is an empty export, not a scan);
    * the PET is in SUV: no value below −500 (that is a CT: inputs swapped), none below :data:`SUV_MIN` (−1),
      maximum at most :data:`SUV_MAX` (100; activity concentrations in Bq/ml run to thousands);
    * the CT is in Hounsfield units, when it spans at least :data:`CT_CHECK_MIN_EXTENT_MM` (50 mm) along every
      axis: its maximum reaches :data:`CT_HU_MAX_AT_LEAST` (100 HU: bone) and its minimum goes down to
      :data:`CT_HU_MIN_AT_MOST` (−500 HU: air around the head or in the airway). A normalised CT fails the first
      rule, stored values without the rescale intercept (air at 0 instead of −1024) fail the second.

    Args:
        pet_path: PET file or DICOM folder, SUV (body-weight), any grid.
        ct_path: CT file or DICOM folder, HU, any grid.

    Returns:
        ``(pet, ct)`` as read, each on its own grid.

    Raises:
        InputError: one line saying what is wrong and what to do.
    """
    pet, ct = load_volume(pet_path), load_volume(ct_path)
    for name, vol in (("PET", pet), ("CT", ct)):
        if abs(np.linalg.det(vol.affine[:3, :3])) < 1e-9:
            raise InputError(f"{_named(name, vol)} has a degenerate affine (zero voxel size): fix its header")
    if overlap_bounds(pet, ct) is None:
        raise _no_overlap(pet, ct)
    refuse_constant(pet.data, _named("PET", pet), "a PET without uptake has no tumour to segment")
    refuse_constant(ct.data, _named("CT", ct), "expected a CT in Hounsfield units")
    _check_suv(pet)
    _check_hu(ct)
    return pet, ct


def _check_suv(pet: Volume) -> None:
    """Refuse a PET that is not in SUV (see :func:`load_pet_ct`)."""
    lo, hi = float(pet.data.min()), float(pet.data.max())
    if lo <= CT_HU_MIN_AT_MOST:
        raise InputError(
            f"{_named('PET', pet)} has values down to {lo:.4g}, like a CT in HU: are the PET and CT inputs swapped?"
        )
    if lo < SUV_MIN:
        raise InputError(
            f"{_named('PET', pet)} has values down to {lo:.4g} (below {SUV_MIN:g}): expected SUV ≥ 0; "
            "give the attenuation-corrected PET in SUV"
        )
    if hi > SUV_MAX:
        raise InputError(
            f"{_named('PET', pet)} has a maximum of {hi:.4g} (above {SUV_MAX:g}): it looks like activity "
            "concentration (Bq/ml), not SUV; convert to SUV = activity concentration (Bq/ml) × body weight (g) / "
            "decay-corrected injected dose (Bq)"
        )


def _check_hu(ct: Volume) -> None:
    """Refuse a CT that does not look like Hounsfield units (see :func:`load_pet_ct`)."""
    lo, hi = world_bounds(ct)
    if np.any(hi - lo < CT_CHECK_MIN_EXTENT_MM):
        return
    vmin, vmax = float(ct.data.min()), float(ct.data.max())
    if vmax < CT_HU_MAX_AT_LEAST:
        swapped = " (or are the PET and CT inputs swapped?)" if vmin >= SUV_MIN else ""
        raise InputError(
            f"{_named('CT', ct)} does not look like Hounsfield units: its maximum is {vmax:.4g} (a head-and-neck CT "
            f"has bone above {CT_HU_MAX_AT_LEAST:g} HU); give the CT in HU, not normalised{swapped}"
        )
    if vmin > CT_HU_MIN_AT_MOST:
        raise InputError(
            f"{_named('CT', ct)} does not look like Hounsfield units: its minimum is {vmin:.4g} (air is about "
            "−1000 HU); give the CT in HU = stored value × rescale slope + rescale intercept (often −1024)"
        )


def _triple(value: float | Sequence[float], name: str) -> np.ndarray:
    """Three positive finite floats from a number or a sequence of three (:class:`InputError` otherwise)."""
    arr = np.atleast_1d(np.asarray(value, dtype=np.float64))
    if arr.size == 1:
        arr = np.repeat(arr, 3)
    if arr.shape != (3,) or not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise InputError(f"{name} must be one positive number of mm or three, got {value!r}")
    return arr


def working_grid(
    pet: Volume,
    ct: Volume,
    *,
    spacing: float | Sequence[float] = (2.0, 2.0, 2.0),
    box_mm: float | Sequence[float] | None = None,
    divisor: int = 1,
) -> WorkingGrid:
    """The axis-aligned RAS+ grid PET and CT are resampled onto for the network.

    The region is the CT∩PET overlap (HECKTOR 2022 rule) or, with ``box_mm``, a box of that size around the
    head and neck found from the PET (see :func:`.headneck_box.head_neck_box`), clipped to the overlap. The grid covers the
    region with voxels of ``spacing``: its size along each axis is the region's extent divided by the spacing,
    rounded up, then rounded up to a multiple of ``divisor``; the extra extent is added equally on both sides,
    so the grid is centred on the region and covers it (it may reach beyond it by less than ``divisor`` voxels
    in all, half on each side; there resampled images take their fill value). A box clipped by the overlap is
    smaller than ``box_mm``.

    Args:
        pet: the PET (SUV), as from :func:`load_pet_ct`.
        ct: the CT, as from :func:`load_pet_ct`.
        spacing: voxel size in mm, one number or ``(R, A, S)``.
        box_mm: edge length(s) of the head-and-neck box in mm (e.g. 144), or ``None`` for the whole overlap.
        divisor: every grid size is a multiple of this (e.g. 8 for a network with three down-samplings).

    Returns:
        A :class:`WorkingGrid` with diagonal affine ``diag(spacing)``.

    Raises:
        InputError: the volumes do not overlap, the box misses the overlap, or an option is not positive.
    """
    step = _triple(spacing, "spacing")
    if isinstance(divisor, bool) or not isinstance(divisor, (int, np.integer)) or divisor < 1:
        raise InputError(f"divisor must be a positive whole number, got {divisor!r}")
    overlap = overlap_bounds(pet, ct)
    if overlap is None:
        raise _no_overlap(pet, ct)
    lo, hi = overlap
    if box_mm is not None:
        box_lo, box_hi = head_neck_box(pet, _triple(box_mm, "box_mm"), overlap)
        lo, hi = np.maximum(box_lo, lo), np.minimum(box_hi, hi)
        if np.any(hi <= lo):
            raise InputError(
                f"the head-and-neck box {_box_text((box_lo, box_hi))} lies outside the CT∩PET overlap "
                f"{_box_text(overlap)}: give a PET/CT that covers the head and neck, or leave out the box"
            )
    return _grid_over(lo, hi, step, int(divisor))


def _grid_over(lo: np.ndarray, hi: np.ndarray, step: np.ndarray, divisor: int) -> WorkingGrid:
    """The RAS+ grid of voxel size ``step`` (mm) centred on the box ``[lo, hi]`` (mm) that covers it, with sizes
    rounded up to multiples of ``divisor``."""
    fit = np.maximum(1, np.ceil((hi - lo) / step - 1e-6)).astype(int)
    shape = (np.ceil(fit / divisor) * divisor).astype(int)
    centre = (lo + hi) / 2.0
    affine = np.diag([*step, 1.0])
    affine[:3, 3] = centre - shape * step / 2.0 + step / 2.0  # centre of voxel 0
    return WorkingGrid(shape=tuple(int(n) for n in shape), affine=affine)  # type: ignore[arg-type]


def _check_order(order: int) -> None:
    if isinstance(order, bool) or not isinstance(order, (int, np.integer)) or not 0 <= order <= 5:
        raise ValueError(f"interpolation order must be 0 to 5, got {order!r}")


def to_working_grid(volume: Volume, grid: WorkingGrid, *, order: int = 1, fill: float | None = None) -> np.ndarray:
    """A volume's data on the working grid (float32), e.g. the CT in HU or the PET in SUV.

    Args:
        volume: the image on its own grid (any orientation).
        grid: the working grid (from :func:`working_grid`).
        order: spline order: 1 = trilinear for images (default), 0 = nearest neighbour for label maps.
        fill: value of working voxels outside the volume (beyond its outer voxel corners); give it per
            modality: −1000 (air) for CT in HU, 0 for PET in SUV and for labels. ``None`` means 0.

    Returns:
        ``float32`` array of shape ``grid.shape``.
    """
    _check_order(order)
    out = resample_array(volume.data.astype(np.float32, copy=False), volume.affine, grid.shape, grid.affine,
                         order=order, fill=0.0 if fill is None else float(fill))
    return np.asarray(out, dtype=np.float32)


def _exact_float(array: np.ndarray) -> type:
    """A float type that holds every value of ``array`` exactly: float32 for floats up to 32 bits and for
    integers below 2**24 in magnitude, float64 otherwise."""
    if array.dtype.kind == "b" or (array.dtype.kind == "f" and array.dtype.itemsize <= 4):
        return np.float32
    if array.dtype.kind in "iu" and (array.size == 0 or np.abs(array).max() < 2**24):
        return np.float32
    return np.float64


def to_ct_grid(array: np.ndarray, grid: WorkingGrid, ct: Volume, *, order: int = 0) -> np.ndarray:
    """A working-grid result back on the CT grid, where predictions are evaluated.

    Args:
        array: ``grid.shape`` (a label map or one probability map) or ``(C, *grid.shape)`` (channels first, e.g.
            class probabilities).
        grid: the working grid ``array`` lies on.
        ct: the CT whose grid (shape and affine, any orientation) the result takes.
        order: 0 = nearest neighbour for label maps (values and dtype kept), 1 = linear for probabilities
            (``float32``).

    Returns:
        ``ct.shape`` or ``(C, *ct.shape)``; CT voxels outside the working grid (beyond its outer voxel corners)
        are 0 (background, zero probability).

    Raises:
        ValueError: ``array``'s spatial shape is not ``grid.shape``.
    """
    _check_order(order)
    array = np.asarray(array)
    channels = array if array.ndim == 4 else array[None]
    if array.ndim not in (3, 4) or tuple(channels.shape[1:]) != grid.shape:
        raise ValueError(
            f"array of shape {array.shape} is not on the working grid {grid.shape} (3D or channels-first 4D)"
        )
    dtype = array.dtype if order == 0 else np.dtype(np.float32)
    work = _exact_float(array) if order == 0 else np.float32
    out = np.empty((channels.shape[0], *ct.shape), dtype=dtype)
    for c, channel in enumerate(channels):
        out[c] = resample_array(channel.astype(work), grid.affine, ct.shape, ct.affine, order=order).astype(dtype)
    return out if array.ndim == 4 else out[0]


@dataclass
class WorkingCase:
    """A PET/CT pair read, checked and resampled onto the working grid (PET in SUV, CT in HU)."""

    pet: Volume
    ct: Volume
    grid: WorkingGrid
    pet_suv: np.ndarray
    ct_hu: np.ndarray


def prepare_case(pet_path: PathLike, ct_path: PathLike, preprocessing: dict, divisor: int) -> WorkingCase:
    """Read and check a PET/CT pair and resample both onto the working grid of a model's ``preprocessing``
    (``spacing``, ``box_mm``) with sizes a multiple of ``divisor``."""
    pet, ct = load_pet_ct(pet_path, ct_path)
    grid = working_grid(pet, ct, spacing=preprocessing["spacing"], box_mm=preprocessing.get("box_mm"),
                        divisor=divisor)
    return WorkingCase(pet, ct, grid, to_working_grid(pet, grid, order=1, fill=0.0),
                       to_working_grid(ct, grid, order=1, fill=-1000.0))
