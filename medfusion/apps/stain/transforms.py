"""Stain pre-processing as MONAI transforms: a case's images read and scaled as the network sees them
(:class:`LoadStainCased`: RGB to [−1, 1], the same scaling inference uses, :func:`~.model.rgb_to_unit`) and the
training ``Compose`` (random tiles with flips and 90° rotations).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from monai.transforms import MapTransform

from ...errors import InputError
from .images import CASE_FILES
from .model import rgb_to_unit

__all__ = ["LoadStainCased", "training_preprocessing"]


class LoadStainCased(MapTransform):
    """File paths → ``he``/``ihc``: ``(3, H, W)`` float32 in [−1, 1]; ``cells``: ``(1, H, W)`` float32 labels;
    every image of a case must have one size."""

    def __init__(self, keys: Sequence[str] = CASE_FILES) -> None:
        super().__init__(keys=list(keys), allow_missing_keys=True)

    def __call__(self, data):
        from ...io import load_rgb
        from .images import load_labels

        d = dict(data)
        for key in self.key_iterator(d):
            if key == "cells":
                d[key] = torch.from_numpy(np.asarray(load_labels(d[key]), dtype=np.float32)[None])
            else:
                d[key] = torch.from_numpy(rgb_to_unit(load_rgb(d[key])))
        sizes = {k: tuple(d[k].shape[1:]) for k in self.key_iterator(d)}
        if len(set(sizes.values())) > 1:
            raise InputError(f"case {d.get('name', '?')}: images of different sizes {sizes}")
        return d


def training_preprocessing(tile: int, keys: Sequence[str] = CASE_FILES):
    """The MONAI ``Compose``: :class:`LoadStainCased` → mirror-pad to at least ``tile`` → random ``tile``² crop →
    random flips (both axes) and 90° rotations → only the image keys."""
    from monai.transforms import (
        Compose, EnsureTyped, RandFlipd, RandRotate90d, RandSpatialCropd, SelectItemsd, SpatialPadd,
    )

    keys = list(keys)
    return Compose([
        LoadStainCased(keys),
        SpatialPadd(keys, spatial_size=(tile, tile), mode="reflect"),
        RandSpatialCropd(keys, roi_size=(tile, tile), random_size=False),
        RandFlipd(keys, prob=0.5, spatial_axis=0),
        RandFlipd(keys, prob=0.5, spatial_axis=1),
        RandRotate90d(keys, prob=0.5, max_k=3),
        EnsureTyped(keys, data_type="tensor", track_meta=False),
        SelectItemsd(keys),
    ])
