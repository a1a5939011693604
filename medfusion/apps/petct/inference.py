"""Ensemble segmentation on the working grid: N diffusion samples → probabilities, label map and uncertainty.

PET (SUV) and CT (HU) on one grid
  → :meth:`PetCtSegModel.conditions` (normalised, ``(2, X, Y, Z)``)
  → the inferer (core.inferers.EnsembleInferer: N samples with seeds ``seed … seed + N − 1``, each
        the whole volume padded to the divisor ∘ ConditionalDiffusion.sample, DDIM/DDPM, few steps)
        → per-class probabilities ``(x̂₀ + 1) / 2`` per sample
  → mean probability per class, its variance over the samples, the label map and the predictive entropy.

Arrays only; files and grids are :mod:`.files`'s.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from ...core.inferers import EnsembleInferer, inferer_for
from ...errors import InputError
from .model import DEFAULT_SAMPLES, DEFAULT_STEPS, PetCtSegModel, probabilities

__all__ = ["Segmentation", "segment", "default_inferer", "run_segmenter", "as_segmentation", "class_distribution",
           "label_map", "predictive_entropy"]


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


def default_inferer(**sampling) -> EnsembleInferer:
    """The ensemble :func:`segment` samples unless given another: :data:`~.model.DEFAULT_SAMPLES` samples of
    :data:`~.model.DEFAULT_STEPS` DDIM steps (chosen on validation phantoms, bundle docs), ``sampling`` overriding."""
    return EnsembleInferer(**{"samples": DEFAULT_SAMPLES, "steps": DEFAULT_STEPS, **sampling})


def segment(model: PetCtSegModel, pet_suv: np.ndarray, ct_hu: np.ndarray, *,
            inferer: EnsembleInferer | None = None, progress: Callable[[int, int], None] | None = None,
            **sampling) -> Segmentation:
    """Segment GTVp and GTVn from PET (SUV) and CT (HU) already on one grid (any size: padded to the divisor).

    Args:
        inferer: how the model is sampled (default: :func:`default_inferer` of ``sampling``); each sample's mask channels become probabilities before the ensemble's statistics.
        progress: ``(done, total)`` over all samples' steps.
        sampling: the default inferer's settings: ``samples`` (the ensemble size N ≥ 1; sample ``i`` uses seed
            ``seed + i``, a CPU generator: the same result on any device up to rounding), ``steps`` and ``sampler``
            (DDIM steps — few suffice for the x₀-predicting model — or ``"ddpm"``), ``seed``, ``device``,
            ``precision``.
    """
    inferer = inferer_for(inferer, default_inferer, **sampling)
    if not isinstance(inferer, EnsembleInferer):
        raise InputError(f"PET/CT segmentation samples an ensemble: give an EnsembleInferer, not a "
                         f"{type(inferer).__name__}")
    cond = torch.from_numpy(model.conditions(pet_suv, ct_hu))
    result = inferer(cond, model, None, progress, transform=probabilities)
    prob = result.mean.numpy().astype(np.float32)
    return Segmentation(labels=label_map(prob), probabilities=prob,
                        variance=result.variance.numpy().astype(np.float32), entropy=predictive_entropy(prob),
                        samples=inferer.samples)


def as_segmentation(prob: np.ndarray) -> Segmentation:
    """A deterministic prediction's probabilities ``(2, X, Y, Z)`` in :class:`Segmentation` form (no variance)."""
    return Segmentation(labels=label_map(prob), probabilities=prob, variance=np.zeros_like(prob),
                        entropy=predictive_entropy(prob), samples=1)


def run_segmenter(model, pet_suv: np.ndarray, ct_hu: np.ndarray, *, inferer: EnsembleInferer | None = None,
                  device=None, **sampling) -> Segmentation:
    """Either segmenter on PET (SUV) and CT (HU) on one grid: the diffusion ensemble (:func:`segment`, by ``inferer``
    or the default one of ``device`` and ``sampling``) or a deterministic model's probabilities (its ``predict``,
    e.g. the SegResNet baseline, on ``device`` or the inferer's; sampling options do not apply to it)."""
    if isinstance(model, PetCtSegModel):
        if inferer is None:
            sampling["device"] = device or "cpu"
        return segment(model, pet_suv, ct_hu, inferer=inferer, **sampling)
    return as_segmentation(model.predict(pet_suv, ct_hu, device=device or getattr(inferer, "device", "cpu")))
