"""Training the PET/CT segmenters — the diffusion model and the SegResNet baseline — on the same data and budget.

Data: a HECKTOR 2022 layout, ``imagesTr/<case>__CT.nii.gz``, ``imagesTr/<case>__PT.nii.gz`` and
``labelsTr/<case>.nii.gz`` (what ``medfusion phantoms --kind headneck`` writes).  Each case is read, checked and
resampled once onto the model's working grid (:func:`~.files.prepare_case`; labels by nearest neighbour) and
cached; every access then draws a patch centred on tumour two times in three (MONAI ``RandCropByPosNegLabeld``)
and flips left–right half the time (GTVp/GTVn do not depend on the side).

Validation (both models): the HECKTOR 2022 aggregated Dice, mean of GTVp and GTVn
(:class:`medfusion.metrics.segmentation.AggregatedDice`), of whole-grid predictions of the first validation
cases on the working grid — one diffusion sample with few DDIM steps, or the baseline's prediction
(:func:`~.inference.run_segmenter`).
"""

from __future__ import annotations

import os

from ...core.data import TransformDataset
from ...core.training import Trainer
from ...errors import InputError
from .baseline import segresnet_loss
from .files import list_hecktor_cases
from .model import PetCtSegModel, segmentation_loss
from .transforms import training_preprocessing, working_case

__all__ = ["hecktor_datalist", "PetCtTrainingSet", "PetCtValidation", "PetCtTrainer"]


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
        from .inference import run_segmenter

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
    :class:`~.baseline.SegResNetBaseline`; ``loss_fn``, the bundle's ``loss`` component, replaces it) and
    :class:`PetCtValidation`; the bundle's ``train.json`` builds this. Other arguments: :class:`~medfusion.core.training.Trainer`."""

    def __init__(self, model, train_data, output_dir, *, val_dir=None, val_cases: int = 2,
                 val_sampling_steps: int = 5, loss_fn=None, **kwargs) -> None:
        validate = PetCtValidation(val_dir, val_cases, val_sampling_steps) if val_dir is not None else None
        loss = loss_fn or (segmentation_loss if isinstance(model, PetCtSegModel) else segresnet_loss)
        super().__init__(model, train_data, output_dir, loss_fn=loss, validate_fn=validate,
                         val_metric="val_dice_agg", **kwargs)
