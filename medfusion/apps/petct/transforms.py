"""PET/CT pre-processing as MONAI transforms: a case's PET, CT and label files onto the model's working grid
(:func:`~.files.prepare_case`, the same step inference takes), normalised as the network sees them
(:func:`~.model.normalise_pet_ct`), and the training ``Compose`` (patches centred on tumour two times in three,
left–right flips, optional augmentations).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from monai.transforms import MapTransform

from ...errors import InputError
from ...io import load_volume
from .files import prepare_case
from .geometry import to_working_grid
from .model import normalise_pet_ct

__all__ = ["WorkingGridd", "working_case", "training_preprocessing"]


class WorkingGridd(MapTransform):
    """``{"pet", "ct", "label"}`` file paths → ``{"image": (2, X, Y, Z)`` normalised PET/CT (see
    :func:`~.model.normalise_pet_ct`), ``"label": (1, X, Y, Z)`` uint8} on the working grid of ``preprocessing``
    (sizes a multiple of ``divisor``)."""

    def __init__(self, preprocessing: dict, divisor: int) -> None:
        super().__init__(keys=["pet", "ct", "label"])
        self.preprocessing, self.divisor = dict(preprocessing), int(divisor)

    def __call__(self, data):
        case, label = working_case(data, self.preprocessing, self.divisor)
        return {"image": normalise_pet_ct(case.pet_suv, case.ct_hu, self.preprocessing), "label": label[None]}


def working_case(item: dict, preprocessing: dict, divisor: int):
    """A case ``{"pet", "ct", "label"}`` on the working grid: its :class:`~.files.WorkingCase` and the label
    map (uint8, nearest neighbour, 0 outside the labelled CT)."""
    case = prepare_case(item["pet"], item["ct"], preprocessing, divisor)
    label = to_working_grid(load_volume(item["label"]), case.grid, order=0, fill=0.0)
    return case, np.rint(label).astype(np.uint8)


def _augmentations():
    """What the HECKTOR 2022 winners' MONAI SegResNet training adds (scaled to the phantoms): a random rotation about
    the head's long axis (±15°) and scaling (±10 %), intensity scaling and shift (±10 % of the normalised range) and
    a little Gaussian noise."""
    from monai.transforms import RandAffined, RandGaussianNoised, RandScaleIntensityd, RandShiftIntensityd

    return [RandAffined(keys=["image", "label"], prob=0.5, rotate_range=(0.0, 0.0, 0.26), scale_range=0.1,
                        mode=("bilinear", "nearest"), padding_mode="border"),
            RandScaleIntensityd(keys="image", factors=0.1, prob=0.5),
            RandShiftIntensityd(keys="image", offsets=0.1, prob=0.5),
            RandGaussianNoised(keys="image", prob=0.2, std=0.05)]


def training_preprocessing(preprocessing: dict, divisor: int, patch_size: Sequence[int] | None = None,
                           seed: int | None = None, augment: bool = False):
    """The MONAI ``Compose``: :class:`WorkingGridd` → (``patch_size``: ``RandCropByPosNegLabeld``, 2 tumour : 1
    background) → ``RandFlipd`` left–right → (``augment``: :func:`_augmentations`) → ``EnsureTyped`` float32."""
    from monai.transforms import Compose, EnsureTyped, RandCropByPosNegLabeld, RandFlipd

    steps = [WorkingGridd(preprocessing, divisor)]
    if patch_size is not None:
        if any(int(p) % divisor for p in patch_size):
            raise InputError(f"patch_size {list(patch_size)} must be multiples of the network's divisor {divisor}")
        steps.append(RandCropByPosNegLabeld(keys=["image", "label"], label_key="label",
                                            spatial_size=[int(p) for p in patch_size], pos=2, neg=1,
                                            num_samples=1, allow_smaller=False))
    steps += [RandFlipd(keys=["image", "label"], prob=0.5, spatial_axis=0), *(_augmentations() if augment else []),
              EnsureTyped(keys=["image", "label"], dtype=np.float32, track_meta=False)]
    compose = Compose(steps)
    if seed is not None:
        compose.set_random_state(seed=seed)
    return compose
