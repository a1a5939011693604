"""Missing-contrast synthesis of one case in memory: three contrasts in, the fourth out (files: :mod:`.files`).

    3 contrasts (arrays, one grid)
      → transforms.normalize (percentiles → [0, 1])
      → the inferer (core.inferers.WholeVolumeInferer: sampler, steps, seed, device, precision): pad to
        model.divisor → ConditionalDiffusion.sample (Haar space, class label = missing contrast) → the padding's
        inverse
      → transforms.postprocess (zero background).
"""

from __future__ import annotations

from typing import Callable, Mapping

import numpy as np
import torch

from ...core.inferers import DiffusionInferer, WholeVolumeInferer, inferer_for
from ...errors import InputError
from ...io import refuse_constant
from .layout import CONTRASTS
from .model import CWDMModel, check_contrast
from .transforms import normalize, postprocess

__all__ = ["synthesize", "default_inferer"]


def default_inferer(**sampling) -> WholeVolumeInferer:
    """The inferer :func:`synthesize` samples with unless given another: the whole volume, 50 DDIM steps, seed 0,
    ``sampling`` overriding."""
    return WholeVolumeInferer(**{"steps": 50, "sampler": "ddim", **sampling})


def synthesize(model: CWDMModel, volumes: Mapping[str, np.ndarray], missing: str, *,
               inferer: DiffusionInferer | None = None, progress: Callable[[int, int], None] | None = None,
               **sampling) -> np.ndarray:
    """Synthesize the ``missing`` contrast from the three others.

    Args:
        model: a trained :class:`CWDMModel`.
        volumes: the three available contrasts, name → 3D array (any intensity unit, one shape).
        missing: the contrast to synthesize (``t1n``, ``t1c``, ``t2w`` or ``t2f``).
        inferer: how the model is sampled (default: :func:`default_inferer` of ``sampling``: the whole volume at
            once).
        progress: ``(done, total)`` over the sampling steps.
        sampling: the default inferer's settings: ``steps`` (50), ``sampler`` (``"ddim"`` with any number of steps,
            or ``"ddpm"``: 1000 steps is the published sampler), ``seed`` (0; a CPU generator: the same seed gives
            the same result on any device), ``device`` and ``precision`` (``"float32"``, ``"bfloat16"`` or
            ``"float16"`` on CUDA: autocast of the network).
    Returns:
        float32 array of the input shape, intensities in [0, 1], background 0.
    """
    check_contrast(missing)
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
    x = torch.from_numpy(normalize(raw, model.lower, model.upper))
    y = inferer(x, model, model.class_labels(missing), progress)[0].numpy()
    return postprocess(y, raw, model.background_threshold)
