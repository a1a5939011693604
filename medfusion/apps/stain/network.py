"""StainDiffuser's denoiser: a shared H&E encoder and one denoising U-Net per task (IHC image, cell mask).

The paper (Kataria et al., arXiv 2403.11340; no public code) trains two diffusion processes at once — IHC
generation and cell segmentation — whose branches interact through a shared H&E encoder with task-specific
attention.  medfusion's reading of that, on the core's input-concatenation contract (the network is called with
``cat(x_t, encoded H&E)``)::

    H&E (in the space) ──► shared encoder (conv blocks) ──► features F
                                                             │
                 ┌───────────── gate_ihc(F) = F · σ(conv(F)) ┴ gate_cells(F) = F · σ(conv(F)) ─────────────┐
    x_t[IHC] ──► cat ──► U-Net_ihc ──► IHC output              x_t[cells] ──► cat ──► U-Net_cells ──► mask output

* **shared encoder** — two 3×3 convolution blocks (GroupNorm, SiLU) at the space's resolution; every task's loss
  trains it, which is how one task helps the other;
* **task-specific attention** — a per-task spatial-and-channel gate ``σ(1×1 conv)`` on the shared features;
* **branches** — MONAI ``DiffusionModelUNet`` each (timestep-conditioned), one per task; both see the same
  timestep, so one sampling loop denoises both outputs together.

Single-task variants (``tasks=("ihc",)`` or ``("cells",)``) keep the encoder and drop the other branch, so the
multitask claim can be measured with everything else equal.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import torch
from torch import nn

from ...networks import conditional_unet

__all__ = ["DualBranchDenoiser", "TASK_CHANNELS"]

#: image channels of each task's output: the IHC image (RGB) and the cell mask (one foreground channel)
TASK_CHANNELS = {"ihc": 3, "cells": 1}


class _Gate(nn.Module):
    """Task-specific attention on shared features: ``F · σ(W F + b)`` (a 1×1 convolution, per pixel and channel)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 1)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return f * torch.sigmoid(self.conv(f))


def _block(cin: int, cout: int, groups: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.GroupNorm(groups, cout), nn.SiLU())


class DualBranchDenoiser(nn.Module):
    """The multitask (or single-task) StainDiffuser denoiser in a 2D image space.

    Args:
        tasks: ``("ihc", "cells")`` (multitask), ``("ihc",)`` or ``("cells",)``, in output channel order.
        space_channels: channels of one image channel in the space (1 for pixels, 4 for a 2D Haar space).
        condition_channels: image channels of the condition (3: H&E RGB).
        encoder_channels: width of the shared H&E features.
        unet: keyword arguments of :func:`medfusion.networks.conditional_unet` for each branch (``channels``,
            ``num_res_blocks``, ``norm_num_groups``, ``num_head_channels``, ...).
    """

    def __init__(self, tasks: Sequence[str] = ("ihc", "cells"), *, space_channels: int = 4,
                 condition_channels: int = 3, encoder_channels: int = 32, unet: Mapping | None = None) -> None:
        super().__init__()
        tasks = tuple(tasks)
        if not tasks or len(set(tasks)) != len(tasks) or any(t not in TASK_CHANNELS for t in tasks):
            raise ValueError(f"tasks must be distinct names from {', '.join(TASK_CHANNELS)}, got {list(tasks)}")
        self.tasks = tasks
        self.split = [TASK_CHANNELS[t] * space_channels for t in tasks]
        cond = condition_channels * space_channels
        groups = min(8, encoder_channels)
        self.encoder = nn.Sequential(_block(cond, encoder_channels, groups),
                                     _block(encoder_channels, encoder_channels, groups))
        self.gates = nn.ModuleDict({t: _Gate(encoder_channels) for t in tasks})
        cfg = {"channels": (32, 64, 64), "num_res_blocks": 1, "norm_num_groups": 16, "num_head_channels": 16,
               **dict(unet or {})}
        self.branches = nn.ModuleDict({
            t: conditional_unet(2, n + encoder_channels, n, **cfg) for t, n in zip(tasks, self.split)})

    @property
    def target_channels(self) -> int:
        """Channels of ``x_t`` (all tasks, in the space)."""
        return sum(self.split)

    def forward(self, x: torch.Tensor, timesteps: torch.Tensor, class_labels=None) -> torch.Tensor:
        """``x = cat(x_t of every task, encoded H&E)`` → every task's output, concatenated in task order."""
        n = self.target_channels
        features = self.encoder(x[:, n:])
        outs = []
        for task, x_t in zip(self.tasks, torch.split(x[:, :n], self.split, dim=1)):
            outs.append(self.branches[task](torch.cat([x_t, self.gates[task](features)], dim=1), timesteps))
        return torch.cat(outs, dim=1)
