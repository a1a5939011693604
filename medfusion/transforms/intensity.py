"""Intensity transforms used around the diffusion models (array classes; dict wrappers only map keys)."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform, ScaleIntensityRangePercentiles, Transform

from ._dictionary import KeyWise

__all__ = ["PercentileNormalize", "PercentileNormalized", "ZeroBackground", "ZeroBackgroundd"]


class PercentileNormalize(ScaleIntensityRangePercentiles):
    """Clip each channel at its ``lower``/``upper`` percentiles (whole volume, background included) and
    min-max scale to [0, 1] — the cWDM/BraTS pre-processing (0.1 and 99.9 percentiles).

    Input ``(C, *S)``, any intensity unit; output float32 in [0, 1].
    """

    def __init__(self, lower: float = 0.1, upper: float = 99.9) -> None:
        super().__init__(lower, upper, b_min=0.0, b_max=1.0, clip=True, relative=False, channel_wise=True)


class PercentileNormalized(KeyWise):
    """Dictionary wrapper of :class:`PercentileNormalize`."""

    def __init__(self, keys: KeysCollection, lower: float = 0.1, upper: float = 99.9, allow_missing_keys=False):
        super().__init__(keys, PercentileNormalize(lower, upper), allow_missing_keys)


class ZeroBackground(Transform):
    """Set background voxels of a synthesized image to exactly 0.

    A voxel is background when it lies outside ``foreground`` (e.g. the union of the non-zero voxels of the
    available input contrasts; BraTS volumes are skull-stripped with a zero background) or when its value is
    ``<= threshold`` (cWDM zeroes voxels ≤ 0.04 of its [0, 1] output).  Input and output ``(C, *S)``.
    """

    def __init__(self, threshold: float | None = 0.04) -> None:
        self.threshold = threshold

    def __call__(self, img, foreground=None):
        out = img.clone() if isinstance(img, torch.Tensor) else np.array(img, copy=True)
        if self.threshold is not None:
            out[out <= self.threshold] = 0
        if foreground is not None:
            fg = np.asarray(foreground, dtype=bool)
            if isinstance(out, torch.Tensor):
                fg = torch.as_tensor(fg, device=out.device)
            out[..., ~fg] = 0  # foreground is spatial (*S); broadcast over channels
        return out


class ZeroBackgroundd(MapTransform):
    """Dictionary form of :class:`ZeroBackground`: each of ``keys`` ``(C, *S)`` zeroed where it is ``<= threshold``
    and, given a ``foreground_key``, outside the union of the non-zero voxels of that entry's channels (e.g. the raw
    input contrasts ``(C_in, *S)``: cWDM's postprocessing, ``keys="pred", foreground_key="inputs"``)."""

    def __init__(self, keys: KeysCollection, threshold: float | None = 0.04, foreground_key: str | None = None,
                 allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.zero, self.foreground_key = ZeroBackground(threshold), foreground_key

    @property
    def threshold(self) -> float | None:
        return self.zero.threshold

    def __call__(self, data):
        d = dict(data)
        fg = None if self.foreground_key is None else foreground_of(list(d[self.foreground_key]))
        for key in self.key_iterator(d):
            d[key] = self.zero(d[key], fg)
        return d


def foreground_of(images: Sequence[np.ndarray]) -> np.ndarray:
    """Union of the non-zero voxels of several images of one shape (bool array)."""
    fg = np.zeros(np.shape(images[0]), dtype=bool)
    for im in images:
        fg |= np.asarray(im) != 0
    return fg
