"""Training data, validation and the trainer of the StainDiffuser model (and of its U-Net baseline).

A dataset is a folder of case folders, each with ``he.png`` (H&E, 8-bit RGB), ``ihc.png`` (the registered IHC
image, 8-bit RGB) and ``cells.png`` (coarse nucleus labels, 16-bit; used in training only) — what
``medfusion phantoms --kind stain`` and :mod:`.data` write.  Each access gives a random ``tile``×``tile`` crop
with random flips and 90° rotations (MONAI dictionary transforms, seeded per item by the core trainer).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ...core.data import TransformDataset
from ...core.training import Trainer
from .images import CASE_FILES, stain_datalist
from .model import StainModel, stain_loss
from .transforms import training_preprocessing

__all__ = ["StainTrainingSet", "StainValidation", "StainTrainer"]


class StainTrainingSet(TransformDataset):
    """Case folders through :func:`training_preprocessing` (loaded once and cached; a random tile per access)."""

    def __init__(self, dataset_dir, *, tile: int, needed: Sequence[str] = CASE_FILES, cache: bool = True):
        super().__init__(stain_datalist(dataset_dir, needed), training_preprocessing(tile, needed), cache=cache)

    @classmethod
    def for_model(cls, model, dataset_dir, *, cache: bool = True) -> "StainTrainingSet":
        """The training set with ``model``'s tile size and the files its tasks need (H&E always)."""
        tasks = getattr(model, "tasks", ("ihc",))
        return cls(dataset_dir, tile=model.tile, needed=("he",) + tuple(tasks), cache=cache)


class StainValidation:
    """Scores on the first ``cases`` cases of ``val_dir`` (whole images, ``steps`` DDIM steps, seed = case index):
    ``val_ssim`` and ``val_psnr`` of the IHC image and ``val_dice`` of the cell foreground, scored as the held-out
    evaluation scores them (:func:`.evaluation.score`), and ``val_score``, their mean over the model's tasks (IHC:
    SSIM; cells: Dice), which selects ``model.pt``."""

    def __init__(self, val_dir, cases: int = 4, steps: int = 5) -> None:
        self.val_dir, self.cases, self.steps = val_dir, int(cases), int(steps)
        self._cases: list[dict] | None = None  # read once, at the first validation

    def __call__(self, model, device) -> dict:
        from .evaluation import load_cases, score
        from .inference import translate

        if self._cases is None:
            self._cases = load_cases(self.val_dir, self.cases)
        preds = [translate(model, c["he"], steps=self.steps, seed=i, device=device) for i, c in enumerate(self._cases)]
        result = score(preds, self._cases)
        scores = {"val_cases": len(self._cases)}
        if "ihc" in result:
            scores.update(val_ssim=result["ihc"]["ssim"], val_psnr=result["ihc"]["psnr"])
        if "cells" in result:
            scores["val_dice"] = result["cells"]["dice"]
        scores["val_score"] = float(np.mean([scores[k] for k in ("val_ssim", "val_dice") if k in scores]))
        return scores


class StainTrainer(Trainer):
    """The core trainer with :func:`~.model.stain_loss` (or the baseline's loss for a U-Net baseline; ``loss_fn``,
    the bundle's ``loss`` component, replaces it) and
    :class:`StainValidation`; the bundle's ``train.json`` builds this.  Other arguments:
    :class:`~medfusion.core.training.Trainer`."""

    def __init__(self, model, train_data, output_dir, *, val_dir=None, val_cases: int = 4,
                 val_sampling_steps: int = 5, loss_fn=None, **kwargs) -> None:
        validate = StainValidation(val_dir, val_cases, val_sampling_steps) if val_dir is not None else None
        loss = loss_fn or (stain_loss if isinstance(model, StainModel) else _baseline_loss())
        super().__init__(model, train_data, output_dir, loss_fn=loss, validate_fn=validate,
                         val_metric="val_score", **kwargs)


def _baseline_loss():
    from .baseline import baseline_loss

    return baseline_loss
