"""Gaussian diffusion schedule with DDPM and DDIM steps between arbitrary timesteps.

Notation (Ho et al. 2020, Song et al. 2021): ``ᾱ_t = Π_{s≤t} (1 − β_s)``, forward process
``x_t = √ᾱ_t x₀ + √(1 − ᾱ_t) ε``.  A reverse step goes from timestep ``t`` to any earlier ``s`` (``s = −1``
means "clean", ``ᾱ_{−1} = 1``), so both samplers work with any number of steps:

- DDPM (ancestral): the Gaussian posterior ``q(x_s | x_t, x̂₀)`` with ``β' = 1 − ᾱ_t/ᾱ_s``, mean
  ``√ᾱ_s β'/(1 − ᾱ_t) · x̂₀ + √(1 − β') (1 − ᾱ_s)/(1 − ᾱ_t) · x_t`` and variance ``β'`` ("fixed large", as in cWDM)
  or ``β' (1 − ᾱ_s)/(1 − ᾱ_t)`` ("fixed small").
- DDIM: ``x_s = √ᾱ_s x̂₀ + √(1 − ᾱ_s − σ²) ε̂ + σ z`` with ``ε̂ = (x_t − √ᾱ_t x̂₀)/√(1 − ᾱ_t)`` and
  ``σ = η √(β' (1 − ᾱ_s)/(1 − ᾱ_t))``; ``η = 0`` is deterministic, ``η = 1`` equals DDPM "fixed small".

Why not MONAI's ``DDIMScheduler``: from MONAI 1.6.0 on (measured here with 1.6.1), ``set_timesteps(n)`` spaces the
timesteps with ``linspace(T − 1, 0, n)`` while ``step`` still moves the sample to the noise level of ``t − T // n``.
The next network call is then told a timestep that differs from the sample's noise level by the difference of the
two spacings: 11 timesteps at every step with 10 steps (gaps of 111 vs 100), at most 1 with 50 (gaps of 20–21 vs
20), 24–25 with 7 steps.  The error does not accumulate — each step starts again from its listed timestep — but it
is a systematic mismatch at few steps.  Here every step names both of its timesteps.  The schedule is kept in float64 and the
coefficients are cast per call into locals (no state changes with the input's dtype or device).
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

__all__ = ["DiffusionSchedule", "sample_loop", "SPACINGS"]

#: how a sampler spaces its timesteps (:meth:`DiffusionSchedule.timesteps`)
SPACINGS = ("uniform", "quadratic")


class DiffusionSchedule:
    """Noise schedule of a DDPM with ``num_train_timesteps`` steps.

    Args:
        num_train_timesteps: T (1000 in cWDM and seg2med).
        beta_start, beta_end: β₁ and β_T of the schedule.
        schedule: ``"linear"`` (β linear in t, as in DDPM/cWDM) or ``"scaled_linear"`` (√β linear).
    """

    def __init__(
        self,
        num_train_timesteps: int = 1000,
        beta_start: float = 1e-4,
        beta_end: float = 0.02,
        schedule: str = "linear",
    ) -> None:
        if num_train_timesteps < 1:
            raise ValueError(f"num_train_timesteps must be >= 1, got {num_train_timesteps}")
        if schedule == "linear":
            betas = np.linspace(beta_start, beta_end, num_train_timesteps, dtype=np.float64)
        elif schedule == "scaled_linear":
            betas = np.linspace(beta_start**0.5, beta_end**0.5, num_train_timesteps, dtype=np.float64) ** 2
        else:
            raise ValueError(f"unknown schedule {schedule!r}; use 'linear' or 'scaled_linear'")
        if not (0 < betas.min() and betas.max() < 1):
            raise ValueError("betas must lie in (0, 1)")
        self.num_train_timesteps = num_train_timesteps
        self.betas = betas
        self.alphas_cumprod = np.cumprod(1.0 - betas)
        self.config = {
            "num_train_timesteps": num_train_timesteps,
            "beta_start": beta_start,
            "beta_end": beta_end,
            "schedule": schedule,
        }

    # ---- helpers -------------------------------------------------------------------------------------------
    def alpha_bar(self, t: int) -> float:
        """ᾱ_t as a Python float; ``t = −1`` gives 1 (the clean end of the chain)."""
        return 1.0 if t < 0 else float(self.alphas_cumprod[t])

    def timesteps(self, num_steps: int, spacing: str = "uniform") -> list[int]:
        """``num_steps`` distinct timesteps from ``T − 1`` down to 0.

        ``spacing``: ``"uniform"`` (evenly spaced, rounded) or ``"quadratic"`` (``(T − 1)(k/(n − 1))²``, rounded —
        the DDIM paper's quadratic selection: most steps where the noise is weak, so that a sampler passes
        through the noise levels of the image's fine detail; a rounded value that repeats its neighbour is moved
        up by one).  ``num_steps = T`` gives every timestep (the original 1000-step DDPM chain) with either.
        """
        T = self.num_train_timesteps
        if not 1 <= num_steps <= T:
            raise ValueError(f"the number of sampling steps must be between 1 and {T}, got {num_steps}")
        if spacing not in SPACINGS:
            raise ValueError(f"unknown timestep spacing {spacing!r}; use one of {', '.join(SPACINGS)}")
        if num_steps == 1:
            return [T - 1]
        frac = np.linspace(1.0, 0.0, num_steps)
        ts = np.round((T - 1) * (frac if spacing == "uniform" else frac**2)).astype(int)
        for k in range(num_steps - 2, -1, -1):  # ascending from the clean end: keep every timestep distinct
            ts[k] = max(ts[k], ts[k + 1] + 1)
        return [int(t) for t in ts]

    def sample_timesteps(self, batch: int, *, generator: torch.Generator | None = None, device=None,
                         small_t_fraction: float = 0.0, small_t_max: int = 100) -> torch.Tensor:
        """Training timesteps, shape ``(batch,)`` int64, drawn uniformly from [0, T).

        With ``small_t_fraction > 0`` each one is, with that probability, drawn uniformly from [0, ``small_t_max``)
        instead: more training where the noise is weaker than the image's fine detail, which an x₀-predicting
        network must then pass through rather than smooth (the last steps of a sampler).
        """
        T = self.num_train_timesteps
        t = torch.randint(0, T, (batch,), generator=generator)
        if small_t_fraction:
            if not 0.0 < small_t_fraction <= 1.0 or not 1 <= small_t_max <= T:
                raise ValueError(f"small_t_fraction must be in (0, 1] and small_t_max in [1, {T}], got "
                                 f"{small_t_fraction} and {small_t_max}")
            low = torch.randint(0, small_t_max, (batch,), generator=generator)
            t = torch.where(torch.rand(batch, generator=generator) < small_t_fraction, low, t)
        return t.to(device) if device is not None else t

    # ---- forward process -----------------------------------------------------------------------------------
    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """Noisy ``x_t = √ᾱ_t x₀ + √(1 − ᾱ_t) ε`` for a batch: ``x0, noise (B, C, *S)``, ``t (B,)``."""
        ab = torch.as_tensor(self.alphas_cumprod, dtype=torch.float64)[t.detach().cpu().long()]
        shape = (-1,) + (1,) * (x0.ndim - 1)
        a = ab.sqrt().to(device=x0.device, dtype=x0.dtype).reshape(shape)
        s = (1.0 - ab).sqrt().to(device=x0.device, dtype=x0.dtype).reshape(shape)
        return a * x0 + s * noise

    # ---- reverse steps -------------------------------------------------------------------------------------
    def posterior(self, t: int, s: int) -> tuple[float, float, float, float]:
        """Coefficients of q(x_s | x_t, x₀): ``(coef_x0, coef_xt, var_small, var_large)``."""
        if not -1 <= s < t < self.num_train_timesteps:
            raise ValueError(f"a reverse step needs -1 <= s < t < T, got t={t}, s={s}")
        ab_t, ab_s = self.alpha_bar(t), self.alpha_bar(s)
        beta = 1.0 - ab_t / ab_s
        coef_x0 = ab_s**0.5 * beta / (1.0 - ab_t)
        coef_xt = (1.0 - beta) ** 0.5 * (1.0 - ab_s) / (1.0 - ab_t)
        var_small = beta * (1.0 - ab_s) / (1.0 - ab_t)
        return coef_x0, coef_xt, var_small, beta

    def ddpm_step(
        self,
        x_t: torch.Tensor,
        x0_hat: torch.Tensor,
        t: int,
        s: int,
        *,
        variance: str = "fixed_large",
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Ancestral DDPM step from ``t`` to ``s`` given the (clipped) prediction ``x̂₀``."""
        coef_x0, coef_xt, var_small, var_large = self.posterior(t, s)
        mean = coef_x0 * x0_hat + coef_xt * x_t
        if s < 0:
            return mean
        if variance == "fixed_large":
            var = var_large
        elif variance == "fixed_small":
            var = var_small
        else:
            raise ValueError(f"unknown variance {variance!r}; use 'fixed_large' or 'fixed_small'")
        return mean + var**0.5 * _randn_like(x_t, generator)

    def ddim_step(
        self,
        x_t: torch.Tensor,
        x0_hat: torch.Tensor,
        t: int,
        s: int,
        *,
        eta: float = 0.0,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """DDIM step from ``t`` to ``s`` given ``x̂₀``; ``eta = 0`` is deterministic."""
        _, _, var_small, _ = self.posterior(t, s)
        ab_t, ab_s = self.alpha_bar(t), self.alpha_bar(s)
        eps_hat = (x_t - ab_t**0.5 * x0_hat) / (1.0 - ab_t) ** 0.5
        sigma = eta * var_small**0.5
        x_s = ab_s**0.5 * x0_hat + max(1.0 - ab_s - sigma**2, 0.0) ** 0.5 * eps_hat
        if sigma > 0 and s >= 0:
            x_s = x_s + sigma * _randn_like(x_t, generator)
        return x_s


def _randn_like(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    # drawn on the generator's device (CPU generators stay reproducible across CPU and GPU runs)
    gen_device = generator.device if generator is not None else x.device
    return torch.randn(x.shape, generator=generator, dtype=x.dtype, device=gen_device).to(x.device)


def sample_loop(
    predict_x0: Callable[[torch.Tensor, int], torch.Tensor],
    x_T: torch.Tensor,
    schedule: DiffusionSchedule,
    *,
    sampler: str = "ddim",
    steps: int = 50,
    eta: float = 0.0,
    variance: str = "fixed_large",
    timestep_spacing: str = "uniform",
    generator: torch.Generator | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> torch.Tensor:
    """Run the reverse chain from pure noise ``x_T`` and return the final ``x̂₀``.

    Args:
        predict_x0: ``(x_t, t) -> x̂₀`` (the network's prediction, already clipped as the caller wants).
        x_T: starting noise ``(B, C, *S)``.
        sampler: ``"ddim"`` or ``"ddpm"``.
        steps: number of network evaluations (1 … T); ``"ddpm"`` with ``steps = T`` is the original chain.
        eta: DDIM stochasticity (0 = deterministic).
        variance: DDPM posterior variance, ``"fixed_large"`` (β, as cWDM) or ``"fixed_small"``.
        timestep_spacing: ``"uniform"`` or ``"quadratic"`` (:meth:`DiffusionSchedule.timesteps`).
        generator: source of the sampling noise (for reproducible samples).
        progress: called as ``progress(i, steps)`` after each step.
    """
    if sampler not in ("ddim", "ddpm"):
        raise ValueError(f"unknown sampler {sampler!r}; use 'ddim' or 'ddpm'")
    ts = schedule.timesteps(steps, timestep_spacing)
    x = x_T
    x0_hat = x_T
    for i, t in enumerate(ts):
        s = ts[i + 1] if i + 1 < len(ts) else -1
        x0_hat = predict_x0(x, t)
        if s < 0:
            x = x0_hat
        elif sampler == "ddim":
            x = schedule.ddim_step(x, x0_hat, t, s, eta=eta, generator=generator)
        else:
            x = schedule.ddpm_step(x, x0_hat, t, s, variance=variance, generator=generator)
        if progress is not None:
            progress(i + 1, len(ts))
    return x
