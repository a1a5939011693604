"""The StainDiffuser model: H&E in, IHC image and cell mask out, by one diffusion over both (or a single task).

medfusion's choices where the paper (Kataria et al., arXiv 2403.11340) is silent or has no public code, all saved
in the checkpoint:

* **targets** — the IHC image as RGB in [−1, 1] (``uint8 / 127.5 − 1``) and the cell (nucleus) mask as one channel
  in {−1, +1}; both are denoised together at the same timestep by :class:`~.network.DualBranchDenoiser`
  (a shared H&E encoder, one branch per task);
* **condition** — the H&E tile, RGB in [−1, 1];
* **space** — a one-level 2D Haar wavelet space (low-pass / 2, so [−1, 1] stays [−1, 1]): a 128×128 tile is
  denoised at 64×64 with 4× the channels, lossless;
* **prediction** — x₀ (``"sample"``, as cWDM and the PET/CT model: usable outputs after a few DDIM steps);
* **loss** (:func:`stain_loss`) — MSE on the network's target over every task's channels, plus soft Dice and
  binary cross-entropy on the x̂₀ cell mask (:mod:`medfusion.core.losses`) when cells are a task.

Single-task variants (``tasks=("ihc",)`` or ``("cells",)``) are the same model with one branch.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import torch

from ...core.losses import dice_bce, mask_probabilities
from ...core.model import DiffusionModel
from ...errors import InputError
from ...networks import spatial_divisor
from .network import TASK_CHANNELS, DualBranchDenoiser

__all__ = ["StainModel", "TaskSettings", "KIND", "TASKS", "split_tasks", "unit_to_rgb", "stain_loss", "load_model"]

KIND = "stain"
#: the task sets a model can be built for: multitask (as published) and the two single-task variants
TASKS = (("ihc", "cells"), ("ihc",), ("cells",))
_SMALL_UNET = {"channels": (32, 64, 64), "num_res_blocks": 1, "norm_num_groups": 16, "num_head_channels": 16}


class TaskSettings:
    """The settings the diffusion model and the U-Net baseline share: ``tasks`` (output order) and ``tile`` (the
    training tile, the default tile of tiled inference; a multiple of the model's ``divisor``)."""

    settings: dict

    @property
    def tasks(self) -> tuple[str, ...]:
        return tuple(self.settings["tasks"])

    @property
    def tile(self) -> int:
        return int(self.settings["tile"])

    @staticmethod
    def checked_tasks(tasks: Sequence[str]) -> tuple[str, ...]:
        tasks = tuple(tasks)
        if tasks not in TASKS:
            raise InputError(f"tasks must be one of {', '.join('+'.join(t) for t in TASKS)}, got {'+'.join(tasks)}")
        return tasks

    def check_tile(self) -> None:
        if self.tile < self.divisor or self.tile % self.divisor:
            raise InputError(f"tile must be a positive multiple of {self.divisor}, got {self.tile}")


class StainModel(TaskSettings, DiffusionModel):
    """An H&E → IHC (+ cells) denoiser with its settings (see :class:`~medfusion.core.model.DiffusionModel`).

    Settings (saved in the checkpoint): ``tasks`` and ``tile`` (the training tile size, the default tile of tiled
    inference).
    """

    kind = KIND

    @classmethod
    def build_network(cls, config: dict) -> torch.nn.Module:
        return DualBranchDenoiser(**config)

    @classmethod
    def create(cls, unet: Mapping | None = None, *, tasks: Sequence[str] = ("ihc", "cells"),
               encoder_channels: int = 32, prediction: str = "sample", schedule: Mapping | None = None,
               tile: int = 128, info: dict | None = None) -> "StainModel":
        """A new (untrained) model.

        Args:
            unet: each branch's :func:`medfusion.networks.conditional_unet` arguments (``channels``,
                ``num_res_blocks``, ...); small defaults.
            tasks: one of :data:`TASKS`.
            encoder_channels: width of the shared H&E encoder.
            prediction: ``"sample"`` (x₀, default), ``"epsilon"`` or ``"v"``.
            schedule: :class:`~medfusion.core.schedule.DiffusionSchedule` arguments (default T = 1000, linear β).
            tile: training tile size in pixels (a multiple of the model's divisor).
        """
        tasks = cls.checked_tasks(tasks)
        u = {**_SMALL_UNET, **dict(unet or {})}
        u["channels"] = [int(c) for c in u["channels"]]
        config = {"tasks": list(tasks), "space_channels": 4, "condition_channels": 3,
                  "encoder_channels": int(encoder_channels), "unet": u}
        diffusion = {"schedule": dict(schedule or {}), "space": {"kind": "haar", "spatial_dims": 2, "lll_scale": 2.0},
                     "clip_range": (-1.0, 1.0), "prediction": prediction,
                     "target_channels": sum(TASK_CHANNELS[t] for t in tasks)}
        model = cls.from_parts(config, diffusion, settings={"tasks": list(tasks), "tile": int(tile)},
                               info=dict(info or {}))
        model.check_tile()
        return model

    @property
    def divisor(self) -> int:
        """Every image size given to the network must be a multiple of this."""
        return spatial_divisor(self.network_config["unet"]["channels"], wavelet_levels=1)

    def targets(self, ihc: torch.Tensor | None, cells: torch.Tensor | None) -> torch.Tensor:
        """The diffusion target ``(B, C, H, W)`` of this model's tasks: IHC ``(B, 3, H, W)`` in [−1, 1] and a
        cell mask ``(B, 1, H, W)`` (labels; > 0 is a cell) → cat in task order, the mask as {−1, +1}."""
        parts = {"ihc": ihc, "cells": None if cells is None else (cells > 0).float() * 2.0 - 1.0}
        missing = [t for t in self.tasks if parts[t] is None]
        if missing:
            raise InputError(f"this model's tasks need {', '.join(missing)}")
        return torch.cat([parts[t].float() for t in self.tasks], dim=1)

    def split(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Image-space output ``(B, C, H, W)`` → ``{"ihc": (B, 3, H, W), "cells": (B, 1, H, W)}`` (its tasks)."""
        return split_tasks(self.tasks, x)


def split_tasks(tasks: Sequence[str], x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Channels ``(B, C, H, W)`` of ``tasks`` in order → one tensor per task (IHC: 3 channels, cells: 1)."""
    return dict(zip(tasks, torch.split(x, [TASK_CHANNELS[t] for t in tasks], dim=1)))


def unit_to_rgb(x: np.ndarray) -> np.ndarray:
    """float ``(3, H, W)`` in [−1, 1] → uint8 RGB ``(H, W, 3)`` (rounded, clipped)."""
    return np.clip(np.rint((np.moveaxis(np.asarray(x, dtype=np.float32), 0, -1) + 1.0) * 127.5), 0, 255).astype(
        np.uint8)


def stain_loss(model: StainModel, batch: dict, *, generator: torch.Generator, device, precision: str,
               dice_weight: float = 1.0, bce_weight: float = 1.0) -> torch.Tensor:
    """The loss of a batch ``{"he": (B, 3, H, W), "ihc": (B, 3, H, W)`` in [−1, 1], ``"cells": (B, 1, H, W)}``:
    MSE on the network's target over every task's channels, plus (when cells are a task) ``dice_weight`` × soft
    Dice + ``bce_weight`` × cross-entropy of the image-space x̂₀ mask's probabilities."""
    cond = batch["he"].to(device)
    target = model.targets(batch.get("ihc"), batch.get("cells")).to(device)
    o = model.diffusion.forward_train(target, cond, None, generator=generator, precision=precision)
    loss = o.mse()
    if "cells" in model.tasks:
        x0_hat = model.split(model.diffusion.space.decode(o.x0_hat.float()))["cells"]
        truth = model.split(target)["cells"] > 0
        loss = loss + dice_bce(mask_probabilities(x0_hat), truth.float(), dice_weight=dice_weight,
                               bce_weight=bce_weight)
    return loss


def load_model(path, device: str | torch.device = "cpu") -> StainModel:
    """Load a stain checkpoint file or bundle folder (``torch.load(..., weights_only=True)``)."""
    return StainModel.load(path, device)
