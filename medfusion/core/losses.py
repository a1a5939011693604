"""Losses that more than one application adds to the diffusion MSE: soft Dice and binary cross-entropy on a mask
that is diffused as channels in {−1, +1} (PET/CT tumours, StainDiffuser's cells).

A mask channel's *probability* is ``(x + 1) / 2`` clipped to [0, 1] (:func:`mask_probabilities`); for
x₀-prediction the public practice (Diff-UNet) adds Dice and cross-entropy on the x̂₀ mask's probabilities to the
MSE, which gives a usable mask after a few sampling steps.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["mask_probabilities", "dice_bce"]


def mask_probabilities(x: torch.Tensor) -> torch.Tensor:
    """Mask channels in [−1, 1] → per-channel probabilities ``(x + 1) / 2`` in [0, 1]."""
    return ((x + 1.0) * 0.5).clamp(0.0, 1.0)


def dice_bce(prob: torch.Tensor, truth: torch.Tensor, *, dice_weight: float = 1.0,
             bce_weight: float = 1.0) -> torch.Tensor:
    """``dice_weight`` × soft Dice (MONAI ``DiceLoss`` over every channel and the batch) + ``bce_weight`` × binary
    cross-entropy, of probabilities ``prob`` against a {0, 1} ``truth`` of the same shape ``(B, C, *S)``."""
    from monai.losses import DiceLoss

    prob, truth = prob.float(), truth.float()
    dice = DiceLoss(batch=True, smooth_nr=1e-5, smooth_dr=1e-5)(prob, truth)
    bce = F.binary_cross_entropy(prob.clamp(1e-4, 1.0 - 1e-4), truth)
    return dice_weight * dice + bce_weight * bce
