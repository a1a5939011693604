"""Resampling a volume onto another grid (nibabel's ``resample_from_to``), with a defined edge: what lies within
half a voxel of the source's edge interpolates, what lies further out takes the fill value."""

from __future__ import annotations

from collections.abc import Sequence

import nibabel as nib
import numpy as np

from .volumes import Volume

__all__ = ["resample_array", "resample_like"]


def resample_array(data: np.ndarray, source_affine: np.ndarray, shape: Sequence[int], affine: np.ndarray, *,
                   order: int = 1, fill: float = 0.0) -> np.ndarray:
    """``data`` (3D, on the grid of ``source_affine``) on the grid ``(shape, affine)`` by spline interpolation of
    ``order`` (0 = nearest neighbour, for label maps; 1 = linear) with nibabel's ``resample_from_to``.

    A sample inside the source's outer voxel corners (half a voxel beyond its edge voxel centres) interpolates,
    with the edge values extended over that outer half voxel; a sample further out takes ``fill``.  (scipy's
    ``mode="constant"`` would instead zero everything beyond the edge voxel *centres*: the outer half voxel of a
    grid that is not aligned with the source.)  The output has ``data``'s dtype.
    """
    from nibabel.processing import resample_from_to

    target = (tuple(int(n) for n in shape), np.asarray(affine, dtype=np.float64))
    image = nib.Nifti1Image(data, np.asarray(source_affine, dtype=np.float64))
    if order == 0:  # nearest: "grid-constant" counts exactly the samples within the outer corners as inside
        return np.asarray(resample_from_to(image, target, order=0, mode="grid-constant", cval=fill).dataobj)
    out = np.array(resample_from_to(image, target, order=order, mode="nearest").dataobj)
    ones = nib.Nifti1Image(np.ones(data.shape, dtype=np.uint8), np.asarray(source_affine, dtype=np.float64))
    inside = np.asarray(resample_from_to(ones, target, order=0, mode="grid-constant", cval=0).dataobj)
    out[inside == 0] = fill
    return out


def resample_like(volume: Volume, target: Volume, *, order: int = 1) -> np.ndarray:
    """``volume``'s data on ``target``'s voxel grid (shape and affine), float32, by :func:`resample_array` (0 outside
    ``volume``)."""
    out = resample_array(volume.data.astype(np.float32, copy=False), volume.affine, target.shape, target.affine,
                         order=order, fill=0.0)
    return np.asarray(out, dtype=np.float32)
