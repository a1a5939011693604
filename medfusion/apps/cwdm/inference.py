"""Missing-contrast synthesis of one case in memory: three contrasts in, the fourth out (files: :mod:`.files`).

    3 contrasts (arrays, one grid)
      → transforms.normalize (percentiles → [0, 1])
      → core.inference.whole_volume: pad to model.divisor → ConditionalDiffusion.sample (Haar space, DDIM/DDPM,
        class label = missing contrast) → the padding's inverse
      → transforms.postprocess (zero background).
"""

from __future__ import annotations

from typing import Callable, Mapping

import numpy as np
import torch

from ...core.inference import whole_volume
from ...errors import InputError
from ...io import refuse_constant
from .layout import CONTRASTS
from .model import CWDMModel, check_contrast
from .transforms import normalize, postprocess

__all__ = ["synthesize"]


def synthesize(model: CWDMModel, volumes: Mapping[str, np.ndarray], missing: str, *, steps: int = 50,
               sampler: str = "ddim", seed: int = 0, device: str | torch.device = "cpu", precision: str = "float32",
               progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """Synthesize the ``missing`` contrast from the three others.

    Args:
        model: a trained :class:`CWDMModel`.
        volumes: the three available contrasts, name → 3D array (any intensity unit, one shape).
        missing: the contrast to synthesize (``t1n``, ``t1c``, ``t2w`` or ``t2f``).
        steps, sampler: ``"ddim"`` with any number of steps, or ``"ddpm"`` (1000 steps is the published sampler).
        seed: seeds the sampling noise (a CPU generator: the same seed gives the same result on any device).
        precision: ``"float32"``, ``"bfloat16"`` or ``"float16"`` (CUDA): autocast of the network.
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
    dev = model.check_sampling(steps=steps, sampler=sampler, seed=seed, device=device, precision=precision)
    x = torch.from_numpy(normalize(raw, model.lower, model.upper)).to(dev)
    model.to(dev).network.eval()
    labels = model.class_labels(missing, device=dev)
    generator = torch.Generator().manual_seed(seed)

    def sample(batch: torch.Tensor) -> torch.Tensor:
        return model.diffusion.sample(batch, labels, sampler=sampler, steps=steps, generator=generator,
                                      progress=progress, precision=precision)

    y = whole_volume(sample, x, model.divisor)[0].float().cpu().numpy()
    return postprocess(y, raw, model.background_threshold)
