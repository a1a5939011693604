"""Diffusion processes: noise schedules, DDPM/DDIM sampling, and conditional wavelet diffusion."""

from .schedule import DiffusionSchedule, sample_loop
from .wavelet import WaveletConditionalDiffusion

__all__ = ["DiffusionSchedule", "sample_loop", "WaveletConditionalDiffusion"]
