"""The deterministic baseline: a pix2pix-style U-Net generator trained with L1 (no GAN), same data and budget.

Pix2pix (Isola et al. 2017) is the usual paired virtual-staining baseline; its generator is a U-Net and its loss
L1 + a GAN term.  Here: MONAI ``UNet`` (2D, residual units) from the H&E tile (RGB in [−1, 1]) to the same
outputs as the diffusion model — the IHC image (``tanh``, L1 loss) and/or the cell foreground (``sigmoid``, soft
Dice + cross-entropy, :mod:`medfusion.core.losses`) — so both are tiled, written and scored the same way.  The
GAN term is left out on purpose: it needs a discriminator and its own tuning, and L1 alone is the deterministic
reference the multitask-diffusion claim should beat.  Checkpoint kind ``stain-unet``.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ...core.baseline import DeterministicModel
from ...core.losses import dice_bce
from .model import TaskSettings, split_tasks
from .network import TASK_CHANNELS

__all__ = ["UNetBaseline", "BASELINE_KIND", "baseline_loss"]

BASELINE_KIND = "stain-unet"
_DEFAULT_NET = {"channels": [32, 64, 128, 256], "strides": [2, 2, 2], "num_res_units": 1}


class UNetBaseline(TaskSettings, DeterministicModel):
    """A MONAI ``UNet`` from H&E (3 channels) to the outputs of ``settings["tasks"]`` (IHC: 3, cells: 1 channel).

    Settings: ``tasks`` and ``tile`` (as :class:`~.model.StainModel`)."""

    kind = BASELINE_KIND

    @classmethod
    def build_network(cls, config: dict) -> torch.nn.Module:
        from monai.networks.nets import UNet

        cfg = dict(config)
        out = sum(TASK_CHANNELS[t] for t in cfg.pop("tasks"))
        return UNet(spatial_dims=2, in_channels=3, out_channels=out, **cfg)

    @classmethod
    def create(cls, network_config: Mapping | None = None, *, tasks: Sequence[str] = ("ihc", "cells"),
               tile: int = 128, info: dict | None = None) -> "UNetBaseline":
        """A new (untrained) baseline: ``network_config`` = MONAI ``UNet`` arguments (``channels``, ``strides``,
        ``num_res_units``, ...) beyond the channel counts."""
        tasks = cls.checked_tasks(tasks)
        config = {**_DEFAULT_NET, **dict(network_config or {}), "tasks": list(tasks)}
        model = cls(config, settings={"tasks": list(tasks), "tile": int(tile)}, info=info)
        model.check_tile()
        return model

    @property
    def divisor(self) -> int:
        """Every input size must be a multiple of this (one halving per stride)."""
        return int(np.prod(self.network_config["strides"]))

    def outputs(self, he: torch.Tensor) -> dict[str, torch.Tensor]:
        """H&E ``(B, 3, H, W)`` in [−1, 1] → ``{"ihc": tanh, in [−1, 1]; "cells": logits}`` by its tasks."""
        parts = split_tasks(self.tasks, self.network(he))
        if "ihc" in parts:
            parts["ihc"] = torch.tanh(parts["ihc"])
        return parts

    def forward_tiles(self, he: torch.Tensor) -> torch.Tensor:
        """What tiled inference blends: ``(B, C, H, W)`` in [−1, 1] (IHC and cells as 2·p − 1), task order."""
        parts = self.outputs(he)
        if "cells" in parts:
            parts["cells"] = torch.sigmoid(parts["cells"]) * 2.0 - 1.0
        return torch.cat([parts[t] for t in self.tasks], dim=1)


def baseline_loss(model: UNetBaseline, batch: dict, *, generator: torch.Generator, device,
                  precision: str) -> torch.Tensor:
    """L1 on the IHC image (pix2pix's reconstruction term) + soft Dice and cross-entropy on the cell foreground, by
    the model's tasks; ``generator`` is unused (the network is deterministic)."""
    from ...core.precision import autocast

    he = batch["he"].to(device)
    with autocast(he.device, precision):
        parts = model.outputs(he)
    loss = torch.zeros((), device=he.device)
    if "ihc" in parts:
        loss = loss + F.l1_loss(parts["ihc"].float(), batch["ihc"].to(device).float())
    if "cells" in parts:
        truth = (batch["cells"].to(device) > 0).float()
        loss = loss + dice_bce(torch.sigmoid(parts["cells"].float()), truth)
    return loss

