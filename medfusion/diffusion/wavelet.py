"""Conditional diffusion in Haar wavelet space (cWDM, Friedrich et al., arXiv 2411.17203).

Images ``(B, C, *S)`` with intensities in ``[0, 1]`` are moved to wavelet space with one level of the
orthonormal Haar DWT (``(B, C·2^d, *S/2)``); the low-pass channel of every image (``LLL`` in 3D) is divided by
``lll_scale`` (3 as published; √8 = 2√2 maps it exactly onto [0, 1]).  The network sees
``cat(x_t, conditions)`` in wavelet space and predicts ``x̂₀`` (not the noise).  At every sampling step ``x̂₀`` is
clipped **in image space** (inverse DWT → clamp to ``clip_range`` → DWT), which is what keeps the sample a
valid image; a coefficient-wise clip (MONAI's ``clip_sample``) is not the same.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from ..wavelets import haar_dwt, haar_idwt
from .schedule import DiffusionSchedule, sample_loop

__all__ = ["WaveletConditionalDiffusion"]


class WaveletConditionalDiffusion:
    """x₀-predicting conditional diffusion in Haar wavelet space.

    Args:
        network: denoiser called as ``network(x, timesteps, class_labels=...)`` with
            ``x = cat(x_t, c)`` of ``2^d · (target_channels + condition_channels)`` channels, returning
            ``2^d · target_channels`` channels (e.g. MONAI ``DiffusionModelUNet``).
        schedule: the noise schedule (T = 1000, linear β 1e-4 … 0.02 by default).
        spatial_dims: 2 or 3.
        lll_scale: divisor of every image's low-pass channel in wavelet space.
        clip_range: image-space range ``x̂₀`` is clipped to at every step (``None``: no clipping).
    """

    def __init__(
        self,
        network: torch.nn.Module,
        schedule: DiffusionSchedule | None = None,
        *,
        spatial_dims: int = 3,
        lll_scale: float = 3.0,
        clip_range: tuple[float, float] | None = (0.0, 1.0),
    ) -> None:
        if lll_scale <= 0:
            raise ValueError(f"lll_scale must be positive, got {lll_scale}")
        self.network = network
        self.schedule = schedule if schedule is not None else DiffusionSchedule()
        self.spatial_dims = spatial_dims
        self.lll_scale = float(lll_scale)
        self.clip_range = clip_range

    # ---- image <-> wavelet space ---------------------------------------------------------------------------
    def _lll_weights(self, channels: int, ref: torch.Tensor) -> torch.Tensor:
        n = 2**self.spatial_dims
        w = torch.ones(channels, dtype=ref.dtype, device=ref.device)
        w[::n] = 1.0 / self.lll_scale
        return w.reshape((1, channels) + (1,) * self.spatial_dims)

    def encode(self, image: torch.Tensor) -> torch.Tensor:
        """Image ``(B, C, *S)`` → scaled wavelet coefficients ``(B, C·2^d, *S/2)``."""
        w = haar_dwt(image, self.spatial_dims)
        return w * self._lll_weights(w.shape[1], w)

    def decode(self, coeffs: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`encode`."""
        return haar_idwt(coeffs / self._lll_weights(coeffs.shape[1], coeffs), self.spatial_dims)

    def clip_x0(self, coeffs: torch.Tensor) -> torch.Tensor:
        """Clip a wavelet-space ``x̂₀`` in image space (identity when ``clip_range`` is None)."""
        if self.clip_range is None:
            return coeffs
        lo, hi = self.clip_range
        return self.encode(self.decode(coeffs).clamp(lo, hi))

    # ---- training --------------------------------------------------------------------------------------------
    def loss(
        self,
        target: torch.Tensor,
        conditions: torch.Tensor,
        class_labels: torch.Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
        timesteps: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Mean squared error between ``x̂₀`` and ``x₀`` over all wavelet coefficients (as published).

        Args:
            target: images to generate ``(B, C_t, *S)`` in ``[0, 1]``.
            conditions: conditioning images ``(B, C_c, *S)`` in ``[0, 1]``.
            class_labels: ``(B,)`` int64 (e.g. which contrast is missing) for class-conditioned networks.
            generator: CPU generator for timesteps and noise (reproducible training).
            timesteps: fixed timesteps ``(B,)`` instead of uniform draws (validation).
        """
        x0 = self.encode(target)
        c = self.encode(conditions)
        b = x0.shape[0]
        t = timesteps if timesteps is not None else self.schedule.sample_timesteps(b, generator=generator)
        noise = torch.randn(x0.shape, generator=generator, dtype=x0.dtype).to(x0.device)
        x_t = self.schedule.q_sample(x0, t, noise)
        pred = self.network(torch.cat([x_t, c], dim=1), t.to(x0.device), class_labels=class_labels)
        return F.mse_loss(pred.float(), x0.float())

    # ---- sampling --------------------------------------------------------------------------------------------
    @torch.no_grad()
    def sample(
        self,
        conditions: torch.Tensor,
        class_labels: torch.Tensor | None = None,
        *,
        target_channels: int = 1,
        sampler: str = "ddim",
        steps: int = 50,
        eta: float = 0.0,
        variance: str = "fixed_large",
        generator: torch.Generator | None = None,
        progress: Callable[[int, int], None] | None = None,
        autocast: bool = False,
    ) -> torch.Tensor:
        """Generate images ``(B, target_channels, *S)`` in image space from conditions ``(B, C_c, *S)``.

        The starting noise is N(0, I) in wavelet space (equivalent to image space, Haar being orthonormal),
        drawn from ``generator`` (a CPU generator gives the same sample on CPU and GPU up to rounding).
        ``autocast`` runs the network in bfloat16/float16 autocast on CUDA.
        """
        c = self.encode(conditions)
        n = 2**self.spatial_dims
        shape = (c.shape[0], target_channels * n) + tuple(c.shape[2:])
        gen_device = generator.device if generator is not None else c.device
        x_T = torch.randn(shape, generator=generator, dtype=c.dtype, device=gen_device).to(c.device)

        def predict_x0(x_t: torch.Tensor, t: int) -> torch.Tensor:
            tt = torch.full((x_t.shape[0],), t, dtype=torch.long, device=x_t.device)
            with torch.autocast(c.device.type, enabled=autocast and c.device.type == "cuda"):
                out = self.network(torch.cat([x_t, c], dim=1), tt, class_labels=class_labels)
            return self.clip_x0(out.to(c.dtype))

        x0 = sample_loop(
            predict_x0, x_T, self.schedule, sampler=sampler, steps=steps, eta=eta, variance=variance,
            generator=generator, progress=progress,
        )
        image = self.decode(x0)
        if self.clip_range is not None:
            image = image.clamp(*self.clip_range)
        return image
