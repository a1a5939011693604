"""Ensemble segmentation on the working grid: N diffusion samples → probabilities, label map and uncertainty.

PET (SUV) and CT (HU) on one grid, stacked ``(2, X, Y, Z)``
  → the preprocessing (default :func:`.transforms.inference_preprocessing` of the model's settings: normalised)
  → the inferer (core.inferers.EnsembleInferer: N samples with seeds ``seed … seed + N − 1``, each
        the whole volume padded to the divisor ∘ ConditionalDiffusion.sample, DDIM/DDPM, few steps)
        → per-class probabilities ``(x̂₀ + 1) / 2`` per sample
  → mean probability per class and its variance over the samples
  → the postprocessing (default :func:`.transforms.inference_postprocessing`: the label map) and the predictive
    entropy of its probabilities.

Arrays only; files and grids are :mod:`.files`'s.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from ...core.inferers import EnsembleInferer, inferer_for
from ...core.processing import as_numpy, check_processing, postprocessed
from ...errors import InputError
from .model import DEFAULT_SAMPLES, DEFAULT_STEPS, PetCtSegModel, probabilities
from .transforms import class_distribution, inference_postprocessing, label_map, preprocess, stacked_pet_ct

__all__ = ["Segmentation", "segment", "default_inferer", "run_segmenter", "as_segmentation", "class_distribution",
           "label_map", "predictive_entropy"]  # class_distribution, label_map: from .transforms


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
            preprocessing=None, postprocessing=None, **sampling) -> Segmentation:
    """Segment GTVp and GTVn from PET (SUV) and CT (HU) already on one grid (any size: padded to the divisor).

    Args:
        inferer: how the model is sampled (default: :func:`default_inferer` of ``sampling``); each sample's mask
            channels become probabilities before the ensemble's statistics.
        progress: ``(done, total)`` over all samples' steps.
        preprocessing: a MONAI dictionary transform (a ``Compose``) from ``{"image": PET, CT (2, X, Y, Z) float32}``
            to the network's conditions as ``"image"``, same shape (default: the model's own,
            :func:`.transforms.inference_preprocessing` of its settings).
        postprocessing: one from ``{"pred": the mean GTVp, GTVn probabilities (2, X, Y, Z), "inputs": PET, CT}`` to
            the final ``"pred"`` and the label map ``"label"`` (1, X, Y, Z) (default:
            :func:`.transforms.inference_postprocessing`; without a ``"label"``, the label map of ``"pred"``).
        sampling: the default inferer's settings: ``samples`` (the ensemble size N ≥ 1; sample ``i`` uses seed
            ``seed + i``, a CPU generator: the same result on any device up to rounding), ``steps`` and ``sampler``
            (DDIM steps — few suffice for the x₀-predicting model — or ``"ddpm"``), ``seed``, ``device``,
            ``precision``.
    """
    inferer = inferer_for(inferer, default_inferer, **sampling)
    if not isinstance(inferer, EnsembleInferer):
        raise InputError(f"PET/CT segmentation samples an ensemble: give an EnsembleInferer, not a "
                         f"{type(inferer).__name__}")
    check_processing(postprocessing, "postprocessing")
    raw = stacked_pet_ct(pet_suv, ct_hu)
    cond = torch.from_numpy(preprocess(raw, model.preprocessing, preprocessing))
    result = inferer(cond, model, None, progress, transform=probabilities)
    return as_segmentation(result.mean.numpy().astype(np.float32), result.variance.numpy().astype(np.float32),
                           samples=inferer.samples, inputs=raw, postprocessing=postprocessing)


def as_segmentation(prob: np.ndarray, variance: np.ndarray | None = None, *, samples: int = 1,
                    inputs: np.ndarray | None = None, postprocessing=None) -> Segmentation:
    """Probabilities ``(2, X, Y, Z)`` (an ensemble's mean with its ``variance``, or a deterministic prediction's:
    no variance) through the ``postprocessing`` (default :func:`.transforms.inference_postprocessing`; ``inputs``:
    the raw PET, CT (2, X, Y, Z)) in :class:`Segmentation` form."""
    post = inference_postprocessing() if postprocessing is None else postprocessing
    prob, out = postprocessed(post, prob, inputs)
    labels = label_map(prob) if "label" not in out else _labels(out["label"], prob.shape[1:])
    return Segmentation(labels=labels, probabilities=prob,
                        variance=np.zeros_like(prob) if variance is None else variance,
                        entropy=predictive_entropy(prob), samples=samples)


def _labels(label, spatial: tuple) -> np.ndarray:
    """The postprocessing's ``"label"`` ``(1, *S)`` or ``(*S)`` as a uint8 label map, checked."""
    lab = as_numpy(label)
    if lab.shape == (1, *spatial):
        lab = lab[0]
    if lab.shape != tuple(spatial):
        raise InputError(f"postprocessing must give 'label' of shape (1, *{tuple(spatial)}), got {lab.shape}")
    if not np.isin(lab, (0, 1, 2)).all():
        raise InputError(f"postprocessing gave 'label' values other than 0, 1 (GTVp), 2 (GTVn): "
                         f"{sorted(set(np.unique(lab).tolist()) - {0, 1, 2})[:5]}")
    return lab.astype(np.uint8)


def run_segmenter(model, pet_suv: np.ndarray, ct_hu: np.ndarray, *, inferer: EnsembleInferer | None = None,
                  device=None, preprocessing=None, postprocessing=None, **sampling) -> Segmentation:
    """Either segmenter on PET (SUV) and CT (HU) on one grid: the diffusion ensemble (:func:`segment`, by ``inferer``
    or the default one of ``device`` and ``sampling``) or a deterministic model's probabilities (its ``predict``,
    e.g. the SegResNet baseline, on ``device`` or the inferer's; sampling options do not apply to it); both with
    the ``preprocessing`` and ``postprocessing`` (default: the model's own, :mod:`.transforms`)."""
    if isinstance(model, PetCtSegModel):
        if inferer is None:
            sampling["device"] = device or "cpu"
        return segment(model, pet_suv, ct_hu, inferer=inferer, preprocessing=preprocessing,
                       postprocessing=postprocessing, **sampling)
    prob = model.predict(pet_suv, ct_hu, device=device or getattr(inferer, "device", "cpu"),
                         preprocessing=preprocessing)
    return as_segmentation(prob, inputs=stacked_pet_ct(pet_suv, ct_hu), postprocessing=postprocessing)
