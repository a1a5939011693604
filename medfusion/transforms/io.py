"""Reading volumes as MONAI transforms, through :func:`medfusion.io.load_volume`.

Training, inference and bundles read files with this one loader, so every path gets the same checks (3D only,
no NaN/Inf, readable) and the same orientation: the voxel order of the file, with its affine in the
``MetaTensor``'s meta data (no reorientation, so an output written on an input's grid lines up voxel for voxel).
"""

from __future__ import annotations

import numpy as np
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import Transform

from ._dictionary import KeyWise

__all__ = ["LoadVolume", "LoadVolumed"]


class LoadVolume(Transform):
    """File path → channel-first ``MetaTensor`` ``(1, X, Y, Z)`` float32 with the file's affine (RAS+ mm) and
    ``filename_or_obj`` in its meta data.  Bad files raise :class:`~medfusion.errors.InputError`."""

    def __call__(self, path) -> MetaTensor:
        from ..io import load_volume

        vol = load_volume(path)
        return MetaTensor(np.ascontiguousarray(vol.data[None]), affine=vol.affine,
                          meta={"filename_or_obj": vol.path, "spatial_shape": np.asarray(vol.shape)})


class LoadVolumed(KeyWise):
    """Dictionary wrapper of :class:`LoadVolume`."""

    def __init__(self, keys: KeysCollection, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, LoadVolume(), allow_missing_keys)
