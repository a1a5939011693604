"""Ensemble segmentation on the working grid: N diffusion samples → probabilities, label map and uncertainty.

PET (SUV) and CT (HU) on one grid
  → :meth:`PetCtSegModel.conditions` (normalised, ``(2, X, Y, Z)``)
  → core.inference.ensemble over seeds ``seed … seed + N − 1`` of
        core.inference.whole_volume (padding to the divisor) ∘ ConditionalDiffusion.sample (DDIM/DDPM, few steps)
        → per-class probabilities ``(x̂₀ + 1) / 2``
  → mean probability per class, its variance over the samples, the label map and the predictive entropy.

Arrays only; files and grids are :mod:`.files`'s.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from ...core.inference import ensemble, progress_over, whole_volume
from ...errors import InputError
from .model import DEFAULT_SAMPLES, DEFAULT_STEPS, PetCtSegModel, probabilities

__all__ = ["Segmentation", "segment", "run_segmenter", "as_segmentation", "class_distribution", "label_map",
           "predictive_entropy"]


@dataclass
class Segmentation:
    """The result of :func:`segment` on the working grid.

    Attributes:
        labels: ``(X, Y, Z)`` uint8: 0 background, 1 GTVp, 2 GTVn (:func:`label_map`).
        probabilities: ``(2, X, Y, Z)`` float32: mean probability of GTVp and GTVn over the samples.
        variance: ``(2, X, Y, Z)`` float32: their variance over the samples (0 for one sample).
        entropy: ``(X, Y, Z)`` float32: predictive entropy (nats, 0 … ln 3) of :func:`class_distribution`.
        samples: the ensemble size.
    """

    labels: np.ndarray
    probabilities: np.ndarray
    variance: np.ndarray
    entropy: np.ndarray
    samples: int


def class_distribution(prob: np.ndarray) -> np.ndarray:
    """Per-voxel distribution over (background, GTVp, GTVn) from the two class probabilities ``(2, *S)``:
    ``(max(1 − p₁ − p₂, 0), p₁, p₂)`` normalised to sum 1 → ``(3, *S)`` float32."""
    p = np.clip(np.asarray(prob, dtype=np.float64), 0.0, 1.0)
    q = np.concatenate([np.clip(1.0 - p.sum(axis=0, keepdims=True), 0.0, 1.0), p])
    q /= np.maximum(q.sum(axis=0, keepdims=True), 1e-12)
    return q.astype(np.float32)


def label_map(prob: np.ndarray) -> np.ndarray:
    """The most probable class per voxel (ties → the lower label), uint8: 0 background, 1 GTVp, 2 GTVn."""
    return np.argmax(class_distribution(prob), axis=0).astype(np.uint8)


def predictive_entropy(prob: np.ndarray) -> np.ndarray:
    """Entropy (nats) of :func:`class_distribution` per voxel, float32: 0 where the ensemble agrees on a class
    with certainty, ln 3 ≈ 1.10 at most."""
    q = class_distribution(prob).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -np.where(q > 0, q * np.log(q), 0.0).sum(axis=0)
    return np.maximum(h, 0.0).astype(np.float32)


def segment(model: PetCtSegModel, pet_suv: np.ndarray, ct_hu: np.ndarray, *, samples: int = DEFAULT_SAMPLES,
            steps: int = DEFAULT_STEPS, sampler: str = "ddim", seed: int = 0, device="cpu", precision: str = "float32",
            progress: Callable[[int, int], None] | None = None) -> Segmentation:
    """Segment GTVp and GTVn from PET (SUV) and CT (HU) already on one grid (any size: padded to the divisor).

    Args:
        samples: ensemble size N (≥ 1); sample ``i`` uses seed ``seed + i`` (a CPU generator: the same result on
            any device up to rounding).
        steps, sampler: DDIM steps (few suffice for the x₀-predicting model) or ``"ddpm"``.
        progress: ``(done, total)`` over all samples' steps.
    """
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise InputError(f"samples must be an integer ≥ 1, got {samples!r}")
    dev = model.check_sampling(steps=steps, sampler=sampler, seed=seed, device=device, precision=precision)
    cond = torch.from_numpy(model.conditions(pet_suv, ct_hu)).to(dev)
    model.to(dev).network.eval()
    if progress is not None:
        progress = progress_over(progress, samples)

    def one(sample_seed: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(sample_seed)

        def sample(batch: torch.Tensor) -> torch.Tensor:
            return model.diffusion.sample(batch, None, sampler=sampler, steps=steps, generator=generator,
                                          progress=progress, precision=precision)

        return probabilities(whole_volume(sample, cond, model.divisor).float()).cpu()

    with torch.no_grad():
        result = ensemble(one, samples, seed=seed)
    prob = result.mean.numpy().astype(np.float32)
    return Segmentation(labels=label_map(prob), probabilities=prob,
                        variance=result.variance.numpy().astype(np.float32), entropy=predictive_entropy(prob),
                        samples=samples)


def as_segmentation(prob: np.ndarray) -> Segmentation:
    """A deterministic prediction's probabilities ``(2, X, Y, Z)`` in :class:`Segmentation` form (no variance)."""
    return Segmentation(labels=label_map(prob), probabilities=prob, variance=np.zeros_like(prob),
                        entropy=predictive_entropy(prob), samples=1)


def run_segmenter(model, pet_suv: np.ndarray, ct_hu: np.ndarray, *, device="cpu", **sampling) -> Segmentation:
    """Either segmenter on PET (SUV) and CT (HU) on one grid: the diffusion ensemble (:func:`segment`, with
    ``sampling`` options) or a deterministic model's probabilities (its ``predict``, e.g. the SegResNet baseline;
    sampling options do not apply to it)."""
    if isinstance(model, PetCtSegModel):
        return segment(model, pet_suv, ct_hu, device=device, **sampling)
    return as_segmentation(model.predict(pet_suv, ct_hu, device=device))
