"""Stain pre- and post-processing as MONAI transforms: one definition for training, inference and the bundle.

Inference (:func:`~.inference.translate`; :func:`~.stream.translate_rows` for images read band by band)::

    preprocessing   {"image": the H&E image (3, H, W) float32, 0 … 255}
      ScaleIntensityRanged  0 … 255 → −1 … 1 (MONAI's, a_min 0, a_max 255, b_min −1, b_max 1)
    postprocessing  {"pred": the model's output (C, H, W) in [−1, 1], its tasks' channels in order (IHC RGB, the
                     cell mask), "inputs": the H&E image (3, H, W), 0 … 255}
      (none: the model's own postprocessing is empty)

:func:`inference_preprocessing` and :func:`inference_postprocessing` build the model's own (a stain model saves no
settings for them); the bundle's ``preprocessing`` and ``postprocessing`` are these lists, so a user changes a
setting (``--preprocessing#transforms#0#a_max 240``) or adds a transform to either. The same scaling reads the
training images (:class:`LoadStainCased`: H&E and IHC; :func:`scaled`).

A streamed image (:mod:`.stream`: slides and TIFFs band by band) runs both lists on each band of rows, so
transforms that look only at each pixel give the whole-image result; one that looks at neighbouring pixels or at the
whole image (a filter, a percentile) sees one band at a time there. The background test of streaming (tiles that are
mostly glass are not run) reads the preprocessed tiles in the default scaling's units.

Not transforms, for a reason: the output's conversion to 8-bit RGB (:func:`~.model.unit_to_rgb`, the file format)
and the cell labels (probability (x + 1) / 2 > 0.5, touching nuclei split by a watershed:
:func:`~.inference.cell_labels`), which a streamed image computes band by band with rows of context on either side
(:class:`~.stream.BandLabels`) so that no nucleus is cut at a band's edge.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from monai.transforms import MapTransform

from ...core.processing import preprocessed
from ...errors import InputError
from .images import CASE_FILES

__all__ = ["inference_preprocessing", "inference_postprocessing", "channels_first", "scaled", "LoadStainCased",
           "training_preprocessing"]


def inference_preprocessing():
    """The ``Compose`` from ``{"image": H&E (3, H, W), 0 … 255}`` to the network's input in [−1, 1]."""
    from monai.transforms import Compose, ScaleIntensityRanged

    return Compose([ScaleIntensityRanged(keys="image", a_min=0.0, a_max=255.0, b_min=-1.0, b_max=1.0)])


def inference_postprocessing():
    """The model's own postprocessing of ``{"pred": (C, H, W) in [−1, 1], "inputs": H&E}``: an empty ``Compose``
    (the outputs as sampled)."""
    from monai.transforms import Compose

    return Compose([])


def channels_first(rgb: np.ndarray) -> np.ndarray:
    """8-bit RGB ``(H, W, 3)`` → float32 ``(3, H, W)``, 0 … 255: the preprocessing's ``"image"``."""
    return np.ascontiguousarray(np.moveaxis(np.asarray(rgb, dtype=np.float32), -1, 0))


def scaled(rgb: np.ndarray, preprocessing=None) -> np.ndarray:
    """8-bit RGB ``(H, W, 3)`` through ``preprocessing`` (default :func:`inference_preprocessing`: float32
    ``(3, H, W)`` in [−1, 1])."""
    image = channels_first(rgb)
    pre = inference_preprocessing() if preprocessing is None else preprocessing
    return preprocessed(pre, image)


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
                d[key] = torch.from_numpy(scaled(load_rgb(d[key])))
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
