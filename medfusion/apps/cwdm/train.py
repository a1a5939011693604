"""Training the cWDM model: the data list, the training set, the loss of a batch, validation, and the bundle's
trainer (:class:`CWDMTrainer`, the core :class:`~medfusion.core.training.Trainer` with those pieces)."""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np
import torch

from ...core.data import TransformDataset
from ...core.training import Trainer
from ...errors import InputError
from .layout import CONTRASTS, list_cases, load_case
from .model import CWDMModel
from .transforms import normalize, preprocessing

__all__ = ["brats_datalist", "BraTSTrainingSet", "split_missing", "cwdm_loss", "CWDMValidation", "CWDMTrainer"]


def brats_datalist(dataset_dir: str | os.PathLike) -> list[dict]:
    """One dict per complete case folder: ``{"name", "t1n", "t1c", "t2w", "t2f", ["seg"]}`` (file paths)."""
    items = []
    for case in list_cases(dataset_dir, require_missing=False):
        if case.missing is not None:
            continue  # a case without all four contrasts cannot supervise training
        items.append({"name": case.name, **case.paths, **({"seg": case.seg} if case.seg else {})})
    if not items:
        raise InputError(f"no complete cases (all of {', '.join(CONTRASTS)}) in {dataset_dir}")
    return items


class BraTSTrainingSet(TransformDataset):
    """Complete BraTS-layout cases through :func:`~medfusion.apps.cwdm.transforms.preprocessing` (loaded and
    normalised once, cached; cropped at random per access when ``patch_size`` is given; padded to ``divisor``)."""

    def __init__(self, dataset_dir, patch_size: Sequence[int] | None = None, *, divisor: int | None = None,
                 seed: int = 0, cache: bool = True, lower: float = 0.1, upper: float = 99.9):
        transform = preprocessing(CONTRASTS, lower=lower, upper=upper, divisor=divisor, patch_size=patch_size,
                                  seed=seed)
        super().__init__(brats_datalist(dataset_dir), transform, cache=cache)


def split_missing(image: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """From ``image (B, 4, *S)`` and missing-contrast indices ``labels (B,)``, return the target
    ``(B, 1, *S)`` and the three conditions ``(B, 3, *S)`` in canonical order."""
    n = image.shape[1]
    order = torch.stack([torch.tensor([k] + [j for j in range(n) if j != k]) for k in labels.tolist()])
    order = order.to(image.device).reshape(order.shape + (1,) * (image.ndim - 2)).expand(-1, -1, *image.shape[2:])
    arranged = torch.gather(image, 1, order)
    return arranged[:, :1], arranged[:, 1:]


def cwdm_loss(model: CWDMModel, batch: dict, *, generator: torch.Generator, device, precision: str) -> torch.Tensor:
    """The cWDM loss of a batch ``{"image": (B, 4, *S)}``: a missing contrast per sample (the model's target, or
    drawn at random and told to the network as its class label), MSE on x̂₀ over all wavelet coefficients."""
    image = batch["image"].to(device)
    b = image.shape[0]
    if model.target is not None:
        labels = torch.full((b,), CONTRASTS.index(model.target), dtype=torch.long)
    else:
        labels = torch.randint(0, len(CONTRASTS), (b,), generator=generator)
    labels = labels.to(device)
    target, conds = split_missing(image, labels)
    return model.diffusion.loss(target, conds, labels if model.class_conditioned else None, generator=generator,
                                precision=precision)


class CWDMValidation:
    """Mean SSIM (3D, data range 1, :func:`medfusion.metrics.ssim`) of full-volume DDIM samples on the first
    ``cases`` complete cases of ``val_dir``, each with a different missing contrast in turn; cases read once."""

    def __init__(self, val_dir, cases: int = 2, steps: int = 10) -> None:
        self.val_dir, self.cases, self.steps = val_dir, int(cases), int(steps)
        self._volumes: list[dict] | None = None

    def __call__(self, model: CWDMModel, device) -> dict:
        from ...metrics import ssim
        from .inference import synthesize

        if self._volumes is None:
            found = [c for c in list_cases(self.val_dir, require_missing=False) if c.missing is None]
            self._volumes = [{k: v.data for k, v in load_case(c).items()} for c in found[: self.cases]]
        scores = []
        for i, vols in enumerate(self._volumes):
            missing = model.target or CONTRASTS[i % len(CONTRASTS)]
            pred = synthesize(model, {c: v for c, v in vols.items() if c != missing}, missing, steps=self.steps,
                              seed=i, device=device)
            truth = normalize([vols[missing]], model.lower, model.upper)[0]
            scores.append(ssim(pred, truth, data_range=1.0))
        return {"val_ssim": float(np.mean(scores)), "val_cases": len(scores)}


class CWDMTrainer(Trainer):
    """The core trainer with the cWDM loss and validation (the bundle's ``train.json`` builds this).

    Args:
        model: a :class:`CWDMModel` (``target`` fixed → always that contrast; ``None`` → any, as class label).
        train_data: e.g. :class:`BraTSTrainingSet`.
        val_dir: complete cases for validation (``None``: none; ``model.pt`` is then the last step).
        val_cases, val_sampling_steps: validation size and DDIM steps per sample.
        loss_fn: the loss (default :func:`cwdm_loss`; the bundle's ``loss`` component).
        Other arguments: :class:`~medfusion.core.training.Trainer`.
    """

    def __init__(self, model: CWDMModel, train_data, output_dir, *, val_dir=None, val_cases: int = 2,
                 val_sampling_steps: int = 10, loss_fn=None, **kwargs) -> None:
        validate = CWDMValidation(val_dir, val_cases, val_sampling_steps) if val_dir is not None else None
        super().__init__(model, train_data, output_dir, loss_fn=loss_fn or cwdm_loss, validate_fn=validate,
                         val_metric="val_ssim", **kwargs)
