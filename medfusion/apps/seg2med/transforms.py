"""seg2med's MONAI transforms: one ``Compose`` from a case's files to the training channels.

Training reads every case through :func:`training_preprocessing`; inference builds the same channels in memory
(:mod:`.generation`) with the same :func:`~.prior.make_prior` and the model's windows.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from monai.transforms import MapTransform

from .prior import body_from_ct, make_prior

__all__ = ["CHANNELS", "CASE_FILES", "PriorImaged", "training_preprocessing"]

#: the channels of a training item, in order: the prior images of the three targets, then the three images
CHANNELS = ("prior_ct", "prior_t1", "prior_t2", "ct", "t1", "t2")
#: the files of a training case (``body`` optional: without it the CT's body contour is used)
CASE_FILES = ("mask", "body", "ct", "t1", "t2")


class PriorImaged(MapTransform):
    """``mask`` (+ ``body``) → ``prior_ct``, ``prior_t1``, ``prior_t2`` (channel-first, like ``mask``): the prior
    images of :func:`~.prior.make_prior`; without a ``body`` the CT's body contour (published rule) is used."""

    def __init__(self, task: str = "total", mask_key: str = "mask", body_key: str = "body", ct_key: str = "ct"):
        super().__init__(keys=[mask_key])
        self.task, self.mask_key, self.body_key, self.ct_key = task, mask_key, body_key, ct_key

    def __call__(self, data):
        d = dict(data)
        mask = d[self.mask_key]
        labels = np.rint(np.asarray(mask)[0]).astype(np.int64)
        if self.body_key in d:
            body = np.asarray(d[self.body_key])[0] > 0
        else:
            body = body_from_ct(np.asarray(d[self.ct_key])[0])
        for target in ("ct", "t1", "t2"):
            out = torch.as_tensor(mask).clone().float()  # keeps a MetaTensor's affine
            out[0] = torch.from_numpy(make_prior(labels, target, task=self.task, body=body))
            d[f"prior_{target}"] = out
        return d


def training_preprocessing(windows: dict, *, dims: int, divisor: int, task: str = "total",
                           patch_size: Sequence[int] | None = None, has_body: bool = True, seed: int | None = None):
    """The MONAI ``Compose`` from a case's files to ``{"image": (6, X, Y, Z')}`` in [0, 1], :data:`CHANNELS` order.

    LoadVolumed → Orientationd RAS → PriorImaged → each channel windowed (``ScaleIntensityRanged``, clipped) →
    ConcatItemsd → random crop (2D: one whole axial slice, ``Z' = 1``; 3D: ``patch_size`` or the whole volume) →
    DivisiblePadd (2D: in-plane only).
    """
    from monai.transforms import (
        Compose, ConcatItemsd, DivisiblePadd, EnsureTyped, Orientationd, RandSpatialCropd, ScaleIntensityRanged,
        SelectItemsd,
    )

    from ...transforms import LoadVolumed

    files = [k for k in CASE_FILES if has_body or k != "body"]
    steps = [LoadVolumed(files), Orientationd(keys=files, axcodes="RAS", labels=(("L", "R"), ("P", "A"), ("I", "S"))),
             PriorImaged(task)]
    for key in CHANNELS:
        lo, hi = windows[key.replace("prior_", "")]
        steps.append(ScaleIntensityRanged(keys=[key], a_min=lo, a_max=hi, b_min=0.0, b_max=1.0, clip=True))
    steps += [ConcatItemsd(keys=list(CHANNELS), name="image", dim=0), SelectItemsd(keys=["image"])]
    if dims == 2:
        steps.append(RandSpatialCropd(keys=["image"], roi_size=[-1, -1, 1], random_size=False))
        steps.append(DivisiblePadd(keys=["image"], k=[int(divisor), int(divisor), 1], method="symmetric"))
    else:
        if patch_size is not None:
            steps.append(RandSpatialCropd(keys=["image"], roi_size=list(patch_size), random_size=False))
        steps.append(DivisiblePadd(keys=["image"], k=int(divisor), method="symmetric"))
    steps.append(EnsureTyped(keys=["image"], dtype=np.float32, track_meta=False))
    compose = Compose(steps)
    if seed is not None:
        compose.set_random_state(seed=seed)
    return compose
