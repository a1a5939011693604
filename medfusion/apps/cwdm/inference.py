"""Missing-contrast synthesis of one case in memory: three contrasts in, the fourth out (files: :mod:`.files`).

    3 contrasts (arrays, one grid), stacked (3, X, Y, Z)
      → the preprocessing (default: transforms.inference_preprocessing, percentiles → [0, 1])
      → the inferer (core.inferers.WholeVolumeInferer: sampler, steps, seed, device, precision): pad to
        model.divisor → ConditionalDiffusion.sample (Haar space, class label = missing contrast) → the padding's
        inverse
      → the postprocessing (default: transforms.inference_postprocessing, zero background).
"""

from __future__ import annotations

from typing import Callable, Mapping

import numpy as np
import torch

from ...core.inferers import DiffusionInferer, WholeVolumeInferer, inferer_for
from ...core.processing import check_processing, postprocessed, preprocessed
from ...errors import InputError
from ...io import refuse_constant
from .layout import CONTRASTS
from .model import CWDMModel, check_contrast
from .transforms import inference_postprocessing, inference_preprocessing

__all__ = ["synthesize", "default_inferer"]


def default_inferer(**sampling) -> WholeVolumeInferer:
    """The inferer :func:`synthesize` samples with unless given another: the whole volume, 50 DDIM steps, seed 0,
    ``sampling`` overriding."""
    return WholeVolumeInferer(**{"steps": 50, "sampler": "ddim", **sampling})


def synthesize(model: CWDMModel, volumes: Mapping[str, np.ndarray], missing: str, *,
               inferer: DiffusionInferer | None = None, progress: Callable[[int, int], None] | None = None,
               preprocessing=None, postprocessing=None, **sampling) -> np.ndarray:
    """Synthesize the ``missing`` contrast from the three others.

    Args:
        model: a trained :class:`CWDMModel`.
        volumes: the three available contrasts, name → 3D array (any intensity unit, one shape).
        missing: the contrast to synthesize (``t1n``, ``t1c``, ``t2w`` or ``t2f``).
        inferer: how the model is sampled (default: :func:`default_inferer` of ``sampling``: the whole volume at
            once).
        progress: ``(done, total)`` over the sampling steps.
        preprocessing: a MONAI dictionary transform (a ``Compose``) from ``{"image": the three contrasts stacked
            (3, X, Y, Z) float32, raw}`` to ``"image"`` as the network takes it, same shape (default: the model's
            own, :func:`~.transforms.inference_preprocessing` of its ``lower`` / ``upper``).
        postprocessing: one from ``{"pred": the sample (1, X, Y, Z), "inputs": the raw contrasts}`` to the final
            ``"pred"`` (default: :func:`~.transforms.inference_postprocessing` of the model's
            ``background_threshold``).
        sampling: the default inferer's settings: ``steps`` (50), ``sampler`` (``"ddim"`` with any number of steps,
            or ``"ddpm"``: 1000 steps is the published sampler), ``seed`` (0; a CPU generator: the same seed gives
            the same result on any device), ``device`` and ``precision`` (``"float32"``, ``"bfloat16"`` or
            ``"float16"`` on CUDA: autocast of the network).
    Returns:
        float32 array of the input shape; with the default processing intensities in [0, 1], background 0.
    """
    check_contrast(missing)
    check_processing(preprocessing, "preprocessing")
    check_processing(postprocessing, "postprocessing")
    if model.target is not None and model.target != missing:
        raise InputError(f"this model synthesizes {model.target} only, but {missing} is missing")
    conds = [c for c in CONTRASTS if c != missing]
    absent = [c for c in conds if c not in volumes]
    if absent:
        raise InputError(f"to synthesize {missing}, contrasts {', '.join(absent)} are needed too")
    raw = [np.asarray(volumes[c], dtype=np.float32) for c in conds]
    if any(r.ndim != 3 or r.shape != raw[0].shape for r in raw):
        raise InputError(f"expected three 3D volumes of one shape, got {[r.shape for r in raw]}")
    for c, r in zip(conds, raw):
        refuse_constant(r, f"contrast {c}", "there is nothing to synthesize from")
    inferer = inferer_for(inferer, default_inferer, **sampling)
    pre = inference_preprocessing(model.lower, model.upper) if preprocessing is None else preprocessing
    post = inference_postprocessing(model.background_threshold) if postprocessing is None else postprocessing
    inputs = np.stack(raw)
    x = preprocessed(pre, inputs)
    y = inferer(torch.from_numpy(x), model, model.class_labels(missing), progress)[0].numpy()
    return np.ascontiguousarray(postprocessed(post, y[None], inputs)[0][0])
