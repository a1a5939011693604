"""Conditional diffusion over an image space, with any prediction type, a training loss and sampling.

The network sees ``cat(x_t, encode(conditions))`` (conditions concatenated to the noisy target in the space, as
cWDM, seg2med and the PET/CT mask model do) and, optionally, class labels.  It predicts, by ``prediction``:

- ``"sample"``: ``x̂₀`` itself (cWDM);
- ``"epsilon"``: the noise ``ε̂`` (DDPM, seg2med), ``x̂₀ = (x_t − √(1−ᾱ_t) ε̂) / √ᾱ_t``;
- ``"v"``: ``v̂ = √ᾱ_t ε − √(1−ᾱ_t) x₀`` (Salimans & Ho 2022), ``x̂₀ = √ᾱ_t x_t − √(1−ᾱ_t) v̂``;
- ``"skip"``: EDM's preconditioning (Karras et al. 2022) in DDPM terms: with ``x̃ = x_t/√ᾱ_t = x₀ + σ_t ε``,
  ``σ_t² = (1−ᾱ_t)/ᾱ_t`` and the data's standard deviation ``σ_d`` (``sigma_data``),
  ``x̂₀ = c_skip x̃ + c_out F`` with ``c_skip = σ_d²/(σ_t² + σ_d²)`` and ``c_out = σ_t/√(σ_t² + σ_d²)``.  At low
  noise ``x̂₀`` passes ``x̃`` through and ``F`` only removes the noise (an x₀-network has to learn to copy its
  input, and a small one keeps only part of the fine detail); at high noise ``F`` is ``x̂₀`` itself, so a
  ``"sample"`` network's weights are a warm start.  (EDM's ``c_out`` is this one times ``σ_d``; dropping the
  factor keeps ``F`` in the data's units.)  The loss is on ``F``: its target
  ``(x₀ − c_skip x̃)/c_out`` has standard deviation ``σ_d`` at every ``t`` for data of that spread.

Residual diffusion (``reference=k``): the diffused quantity is the target minus condition channel ``k`` (e.g. a
prior image that already holds every organ's mean value), so the network only learns what the condition lacks
(texture, noise, corrections); sampling adds the condition back.  Every space here is linear, so the difference
is taken in the space.

Whatever it predicts is turned into ``x̂₀``, clipped in image space (:meth:`ImageSpace.clip`) and handed to the
DDPM/DDIM step of :mod:`medfusion.core.schedule`, so every sampler works with every prediction type.

Precision: ``precision`` runs the network under ``torch.autocast`` with that dtype (``"float32"`` = no autocast);
the noise, ``x_t``, the training target and the loss are computed in float32 outside autocast.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from .precision import autocast
from .schedule import DiffusionSchedule, sample_loop
from .spaces import ImageSpace

__all__ = ["ConditionalDiffusion", "PREDICTIONS", "TrainOutput"]

PREDICTIONS = ("sample", "epsilon", "v", "skip")


@dataclass
class TrainOutput:
    """One training forward pass, in the model's space: the network output and its target, and ``x̂₀``/``x₀``
    (applications add their own losses on these, e.g. Dice on a decoded mask)."""

    prediction: torch.Tensor
    target: torch.Tensor
    x0_hat: torch.Tensor
    x0: torch.Tensor
    timesteps: torch.Tensor

    def mse(self) -> torch.Tensor:
        """The diffusion loss: mean squared error between the network output and its target over the whole space."""
        return F.mse_loss(self.prediction.float(), self.target.float())


class ConditionalDiffusion:
    """A denoising network, a noise schedule and an image space.

    Args:
        network: called as ``network(x, timesteps, class_labels=...)`` with ``x`` of
            ``space.channels(target_channels + condition_channels)`` channels, returning
            ``space.channels(target_channels)`` (e.g. MONAI ``DiffusionModelUNet``).
        schedule: the noise schedule (T = 1000, linear β 1e-4 … 0.02 by default).
        space: where diffusion happens (default: the image itself, 3D).
        prediction: ``"sample"``, ``"epsilon"``, ``"v"`` or ``"skip"``.
        sigma_data: ``σ_d`` of ``"skip"`` (the standard deviation of what is diffused, in the space).
        clip_range: image-space range of ``x̂₀`` (``None``: no clipping), e.g. ``(0, 1)`` for normalised MRI,
            ``(-1, 1)`` for images scaled that way.
        target_channels: image channels of what is generated.
        reference: ``None``, or the index of the condition channel that the target is generated relative to
            (residual diffusion; needs ``target_channels == 1``).
    """

    def __init__(
        self,
        network: torch.nn.Module,
        schedule: DiffusionSchedule | None = None,
        space: ImageSpace | None = None,
        *,
        prediction: str = "sample",
        clip_range: tuple[float, float] | None = (0.0, 1.0),
        target_channels: int = 1,
        reference: int | None = None,
        sigma_data: float = 0.5,
    ) -> None:
        if prediction not in PREDICTIONS:
            raise ValueError(f"unknown prediction type {prediction!r}; choose one of {', '.join(PREDICTIONS)}")
        if reference is not None and (int(target_channels) != 1 or int(reference) < 0):
            raise ValueError(f"reference needs one target channel and a condition channel index >= 0, got "
                             f"reference={reference}, target_channels={target_channels}")
        self.network = network
        self.schedule = schedule if schedule is not None else DiffusionSchedule()
        self.space = space if space is not None else ImageSpace(3)
        self.prediction = prediction
        self.clip_range = None if clip_range is None else (float(clip_range[0]), float(clip_range[1]))
        self.target_channels = int(target_channels)
        self.reference = None if reference is None else int(reference)
        if not float(sigma_data) > 0:
            raise ValueError(f"sigma_data must be > 0, got {sigma_data!r}")
        self.sigma_data = float(sigma_data)

    @property
    def config(self) -> dict:
        """Plain values that rebuild everything but the network (for checkpoints)."""
        config = {"schedule": dict(self.schedule.config), "space": self.space.config, "prediction": self.prediction,
                  "clip_range": None if self.clip_range is None else list(self.clip_range),
                  "target_channels": self.target_channels, "reference": self.reference}
        if self.prediction == "skip":  # the only prediction type that uses it
            config["sigma_data"] = self.sigma_data
        return config

    # ---- prediction types ----------------------------------------------------------------------------------
    def _coefficients(self, t: torch.Tensor, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``√ᾱ_t`` and ``√(1 − ᾱ_t)`` per batch element, broadcastable against ``like``."""
        ab = torch.as_tensor(self.schedule.alphas_cumprod, dtype=torch.float64)[t.detach().cpu().long()]
        shape = (-1,) + (1,) * (like.ndim - 1)
        a = ab.sqrt().to(device=like.device, dtype=like.dtype).reshape(shape)
        s = (1.0 - ab).sqrt().to(device=like.device, dtype=like.dtype).reshape(shape)
        return a, s

    def _skip_coefficients(self, t: torch.Tensor, like: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``σ_t``, ``c_skip`` and ``c_out`` of ``"skip"``, and ``√ᾱ_t``."""
        a, s = self._coefficients(t, like)
        sigma = s / a
        norm = sigma**2 + self.sigma_data**2
        return sigma, self.sigma_data**2 / norm, sigma / norm.sqrt(), a

    def training_target(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """What the network should output for ``x_t = √ᾱ_t x₀ + √(1−ᾱ_t) ε``."""
        if self.prediction == "sample":
            return x0
        if self.prediction == "epsilon":
            return noise
        if self.prediction == "skip":
            sigma, c_skip, c_out, _ = self._skip_coefficients(t, x0)
            return (x0 - c_skip * (x0 + sigma * noise)) / c_out
        a, s = self._coefficients(t, x0)
        return a * noise - s * x0

    def to_x0(self, output: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The network's output as ``x̂₀`` (before clipping)."""
        if self.prediction == "sample":
            return output
        if self.prediction == "skip":
            _, c_skip, c_out, a = self._skip_coefficients(t, x_t)
            return c_skip * x_t / a + c_out * output
        a, s = self._coefficients(t, x_t)
        if self.prediction == "epsilon":
            return (x_t - s * output) / a
        return a * x_t - s * output

    def clip(self, x0_hat: torch.Tensor, ref: torch.Tensor | None = None) -> torch.Tensor:
        """Clip ``x̂₀`` (in the space) to :attr:`clip_range` in image space; for residual diffusion ``x̂₀ + ref``
        is clipped (``ref``: the encoded reference channel)."""
        if self.clip_range is None:
            return x0_hat
        if ref is None:
            return self.space.clip(x0_hat, *self.clip_range)
        return self.space.clip(x0_hat + ref, *self.clip_range) - ref

    def _reference(self, cond: torch.Tensor | None) -> torch.Tensor | None:
        """The encoded reference channel of the encoded conditions (``None`` without residual diffusion)."""
        if self.reference is None:
            return None
        n = self.space.channels(1)
        if cond is None or cond.shape[1] < (self.reference + 1) * n:
            raise ValueError(f"residual diffusion needs condition channel {self.reference}")
        return cond[:, self.reference * n: (self.reference + 1) * n]

    def _network(self, x_t, cond, t, class_labels, precision):
        x = x_t if cond is None else torch.cat([x_t, cond], dim=1)
        with autocast(x.device, precision):
            out = self.network(x, t, class_labels=class_labels)
        return out.to(x_t.dtype)

    # ---- training --------------------------------------------------------------------------------------------
    def forward_train(
        self,
        target: torch.Tensor,
        conditions: torch.Tensor | None = None,
        class_labels: torch.Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
        timesteps: torch.Tensor | None = None,
        small_t_fraction: float = 0.0,
        small_t_max: int = 100,
        precision: str = "float32",
    ) -> TrainOutput:
        """Noise ``target`` images ``(B, C_t, *S)`` at random (or given) timesteps and run the network.

        ``generator`` (a CPU generator) draws timesteps and noise, so training is reproducible on any device.
        ``small_t_fraction``, ``small_t_max``: how random timesteps are drawn
        (:meth:`~medfusion.core.schedule.DiffusionSchedule.sample_timesteps`; 0: uniform).
        """
        x0 = self.space.encode(_at_least_float32(target))
        cond = None if conditions is None else self.space.encode(_at_least_float32(conditions))
        ref = self._reference(cond)
        if ref is not None:
            x0 = x0 - ref
        b = x0.shape[0]
        t = timesteps if timesteps is not None else self.schedule.sample_timesteps(
            b, generator=generator, small_t_fraction=small_t_fraction, small_t_max=small_t_max)
        t = t.to(x0.device)
        noise = torch.randn(x0.shape, generator=generator, dtype=x0.dtype).to(x0.device)
        x_t = self.schedule.q_sample(x0, t, noise)
        out = self._network(x_t, cond, t, class_labels, precision)
        return TrainOutput(out, self.training_target(x0, noise, t), self.to_x0(out, x_t, t), x0, t)

    def loss(self, target, conditions=None, class_labels=None, **kwargs) -> torch.Tensor:
        """Mean squared error between the network output and its target over the whole space (for
        ``"sample"``: MSE on every wavelet coefficient, as cWDM).  Keyword arguments: :meth:`forward_train`."""
        return self.forward_train(target, conditions, class_labels, **kwargs).mse()

    # ---- sampling --------------------------------------------------------------------------------------------
    @torch.no_grad()
    def sample(
        self,
        conditions: torch.Tensor | None = None,
        class_labels: torch.Tensor | None = None,
        *,
        shape: tuple[int, ...] | None = None,
        sampler: str = "ddim",
        steps: int = 50,
        eta: float = 0.0,
        variance: str = "fixed_large",
        timestep_spacing: str = "uniform",
        generator: torch.Generator | None = None,
        progress: Callable[[int, int], None] | None = None,
        precision: str = "float32",
    ) -> torch.Tensor:
        """Generate images ``(B, target_channels, *S)`` in image space.

        Args:
            conditions: ``(B, C_c, *S)`` images (``None`` for an unconditional model; then give ``shape``,
                the image-space ``(B, *S)``).
            sampler, steps, eta, variance, timestep_spacing: see :func:`medfusion.core.schedule.sample_loop`.
            generator: draws the starting noise and the DDPM noise (a CPU generator gives the same sample on
                CPU and GPU up to rounding).
            precision: ``"float32"``, ``"bfloat16"`` or ``"float16"`` (autocast of the network only).
        """
        cond = None if conditions is None else self.space.encode(_at_least_float32(conditions))
        if cond is not None:
            device, batch, spatial = cond.device, cond.shape[0], tuple(cond.shape[2:])
        elif shape is not None:
            device, batch = next(self.network.parameters()).device, shape[0]
            spatial = tuple(s // self.space.divisor for s in shape[1:])
        else:
            raise ValueError("give conditions or the shape (B, *S) to sample")
        full = (batch, self.space.channels(self.target_channels)) + spatial
        gen_device = generator.device if generator is not None else device
        dtype = torch.float32 if cond is None else cond.dtype
        x_T = torch.randn(full, generator=generator, dtype=dtype, device=gen_device).to(device)

        def predict_x0(x_t: torch.Tensor, t: int) -> torch.Tensor:
            tt = torch.full((x_t.shape[0],), t, dtype=torch.long, device=x_t.device)
            return self.clip(self.to_x0(self._network(x_t, cond, tt, class_labels, precision), x_t, tt), ref)

        ref = self._reference(cond)
        x0 = sample_loop(predict_x0, x_T, self.schedule, sampler=sampler, steps=steps, eta=eta, variance=variance,
                         timestep_spacing=timestep_spacing, generator=generator, progress=progress)
        image = self.space.decode(x0 if ref is None else x0 + ref)
        return image if self.clip_range is None else image.clamp(*self.clip_range)


def _at_least_float32(x: torch.Tensor) -> torch.Tensor:
    """float64 stays float64 (tests against closed forms); anything else becomes float32."""
    return x if x.dtype in (torch.float32, torch.float64) else x.float()
