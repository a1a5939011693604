"""Denoising networks: thin factories over MONAI's ``DiffusionModelUNet`` (one class for 2D and 3D)."""

from __future__ import annotations

from typing import Sequence

__all__ = ["conditional_unet", "cwdm_unet", "spatial_divisor", "CWDM_PUBLISHED"]

#: The published cWDM denoiser (≈ 81.5 M parameters, as reported with the paper).
CWDM_PUBLISHED = {"channels": (64, 128, 128, 256, 256), "num_res_blocks": 2, "norm_num_groups": 32}


def conditional_unet(
    spatial_dims: int,
    in_channels: int,
    out_channels: int,
    *,
    channels: Sequence[int] = (64, 128, 128, 256, 256),
    num_res_blocks: int | Sequence[int] = 2,
    attention_levels: Sequence[bool] | None = None,
    norm_num_groups: int = 32,
    resblock_updown: bool = True,
    num_class_embeds: int | None = None,
    num_head_channels: int | Sequence[int] = 32,
    use_flash_attention: bool = True,
):
    """A MONAI ``DiffusionModelUNet`` for input-concatenation conditioning.

    Defaults follow the cWDM denoiser: no attention in the levels (MONAI still adds one self-attention block
    at the bottleneck), residual up/down-sampling, concatenated skips.  ``num_class_embeds`` adds a learned
    class embedding to the timestep embedding; the network must then be called with ``class_labels``.
    ``use_flash_attention`` computes attention with PyTorch's ``scaled_dot_product_attention`` (memory-efficient
    kernels on CPU and GPU; same weights and results up to rounding): without it the bottleneck attention of a
    full BraTS volume would materialise an N×N matrix.
    """
    from monai.networks.nets import DiffusionModelUNet

    channels = tuple(int(c) for c in channels)
    if attention_levels is None:
        attention_levels = (False,) * len(channels)
    return DiffusionModelUNet(
        spatial_dims=spatial_dims,
        in_channels=in_channels,
        out_channels=out_channels,
        channels=channels,
        attention_levels=tuple(attention_levels),
        num_res_blocks=num_res_blocks,
        norm_num_groups=norm_num_groups,
        resblock_updown=resblock_updown,
        num_class_embeds=num_class_embeds,
        num_head_channels=num_head_channels,
        use_flash_attention=use_flash_attention,
    )


def cwdm_unet(
    *,
    spatial_dims: int = 3,
    n_conditions: int = 3,
    num_class_embeds: int | None = 4,
    **kwargs,
):
    """The cWDM denoiser: input ``2^d·(1 + n_conditions)`` wavelet channels, output ``2^d``.

    ``num_class_embeds=4`` gives one model for all four BraTS contrasts (told which one is missing through
    ``class_labels``); ``None`` gives a per-contrast model as published.  Other keyword arguments go to
    :func:`conditional_unet` (``channels``, ``num_res_blocks``, ...).
    """
    n = 2**spatial_dims
    return conditional_unet(
        spatial_dims, n * (1 + n_conditions), n, num_class_embeds=num_class_embeds, **kwargs
    )


def spatial_divisor(channels: Sequence[int], wavelet_levels: int = 1) -> int:
    """What every image-space size must be divisible by for a U-Net with ``len(channels)`` levels."""
    return 2 ** (len(channels) - 1 + wavelet_levels)
