"""Training the PET/CT segmenters — the diffusion model and the SegResNet baseline — on the same data and budget.

Data: a HECKTOR 2022 layout, ``imagesTr/<case>__CT.nii.gz``, ``imagesTr/<case>__PT.nii.gz`` and
``labelsTr/<case>.nii.gz`` (what ``medfusion phantoms --kind headneck`` writes).  Each case is read, checked and
resampled once onto the model's working grid (:func:`~.pipeline.prepare_case`; labels by nearest neighbour) and
cached; every access then draws a patch centred on tumour two times in three (MONAI ``RandCropByPosNegLabeld``)
and flips left–right half the time (GTVp/GTVn do not depend on the side).

Validation (both models): the HECKTOR 2022 aggregated Dice, mean of GTVp and GTVn
(:class:`medfusion.metrics.segmentation.AggregatedDice`), of whole-grid predictions of the first validation
cases on the working grid — one diffusion sample with few DDIM steps, or the baseline's prediction
(:func:`~.segmentation.run_segmenter`).
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np
from monai.transforms import MapTransform

from ...core.training import Trainer, TransformDataset
from ...errors import InputError
from ...io import load_volume
from .baseline import segresnet_loss
from .geometry import to_working_grid
from .model import PetCtSegModel, normalise_pet_ct, segmentation_loss
from .pipeline import list_hecktor_cases, prepare_case

__all__ = ["hecktor_datalist", "working_case", "WorkingGridd", "training_preprocessing", "PetCtTrainingSet", "PetCtValidation",
           "PetCtTrainer"]


def hecktor_datalist(dataset_dir: str | os.PathLike) -> list[dict]:
    """``{"name", "pet", "ct", "label"}`` for every case with all three files in a HECKTOR-layout folder."""
    root = os.fspath(dataset_dir)
    images, labels = os.path.join(root, "imagesTr"), os.path.join(root, "labelsTr")
    if not os.path.isdir(images) or not os.path.isdir(labels):
        raise InputError(f"expected a HECKTOR layout with imagesTr/ and labelsTr/ in {root}")
    items = []
    for case, pet, ct in list_hecktor_cases(images):
        label = next((os.path.join(labels, case + e) for e in (".nii.gz", ".nii")
                      if os.path.isfile(os.path.join(labels, case + e))), None)
        if label is None:
            raise InputError(f"case {case} has no label file labelsTr/{case}.nii.gz")
        items.append({"name": case, "pet": pet, "ct": ct, "label": label})
    return items


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
    """A case ``{"pet", "ct", "label"}`` on the working grid: its :class:`~.pipeline.WorkingCase` and the label
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


class PetCtTrainingSet(TransformDataset):
    """HECKTOR-layout cases through :func:`training_preprocessing` (working grid cached per case)."""

    def __init__(self, dataset_dir, *, preprocessing: dict, divisor: int, patch_size=None, seed: int = 0,
                 cache: bool = True, augment: bool = False) -> None:
        items = hecktor_datalist(dataset_dir)
        super().__init__(items, training_preprocessing(preprocessing, divisor, patch_size, seed, augment), cache=cache)

    @classmethod
    def for_model(cls, model, dataset_dir, *, patch_size=None, seed: int = 0, cache: bool = True,
                  augment: bool = False):
        """The training set on ``model``'s working grid (either segmenter)."""
        return cls(dataset_dir, preprocessing=model.preprocessing, divisor=model.divisor, patch_size=patch_size,
                   seed=seed, cache=cache, augment=augment)

    def __getitem__(self, i):
        item = super().__getitem__(i)
        return item[0] if isinstance(item, list) else item  # a positive/negative crop returns a list of one


class PetCtValidation:
    """HECKTOR aggregated Dice (mean of GTVp and GTVn) on the first ``cases`` cases of ``val_dir``, working grid."""

    def __init__(self, val_dir, cases: int = 2, steps: int = 5) -> None:
        self.val_dir, self.cases, self.steps = val_dir, int(cases), int(steps)
        self._data: list[dict] | None = None

    def __call__(self, model, device) -> dict:
        from ...metrics.segmentation import AggregatedDice
        from .segmentation import run_segmenter

        if self._data is None:
            self._data = [working_case(it, model.preprocessing, model.divisor)
                          for it in hecktor_datalist(self.val_dir)[: self.cases]]
        agg = AggregatedDice((1, 2))
        for i, (case, label) in enumerate(self._data):
            seg = run_segmenter(model, case.pet_suv, case.ct_hu, samples=1, steps=self.steps, seed=i, device=device)
            agg.update(seg.labels, label)
        return {"val_dice_agg": agg.mean(ignore_nan=True), "val_cases": len(self._data)}


class PetCtTrainer(Trainer):
    """The core trainer with the PET/CT loss (the diffusion model's, or the baseline's for a
    :class:`~.baseline.SegResNetBaseline`) and :class:`PetCtValidation`; the bundle's ``train.json`` builds this.
    Other arguments: :class:`~medfusion.core.training.Trainer`."""

    def __init__(self, model, train_data, output_dir, *, val_dir=None, val_cases: int = 2,
                 val_sampling_steps: int = 5, **kwargs) -> None:
        validate = PetCtValidation(val_dir, val_cases, val_sampling_steps) if val_dir is not None else None
        loss = segmentation_loss if isinstance(model, PetCtSegModel) else segresnet_loss
        super().__init__(model, train_data, output_dir, loss_fn=loss, validate_fn=validate,
                         val_metric="val_dice_agg", **kwargs)
