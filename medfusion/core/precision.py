"""Device, numerical precision and seed: checked once, with one-line errors, before any work.

``precision`` names the dtype the network runs in under ``torch.autocast``: ``"float32"`` (no autocast, the
default everywhere), ``"bfloat16"`` (the usual GPU choice: float32's range, half the memory traffic) or
``"float16"`` (CUDA only here: autocast to float16 on a CPU is slow and loses range).  Sampling noise, the
DDPM/DDIM arithmetic and training targets stay float32 (see :mod:`medfusion.core.diffusion`).
"""

from __future__ import annotations

import contextlib

import torch

from ..errors import InputError
from .constants import PRECISIONS

__all__ = ["PRECISIONS", "resolve_device", "check_precision", "check_seed", "autocast"]

_DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16}
#: seeds are what ``torch.Generator.manual_seed`` accepts without wrapping: 0 … 2^63 − 1
MAX_SEED = 2**63 - 1


def resolve_device(name: str | torch.device) -> torch.device:
    """A usable torch device, or an :class:`InputError` saying why not (unknown name, no CUDA in this torch
    build, no such GPU index)."""
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError) as e:
        raise InputError(f"unknown device {name!r}: use cpu, cuda, cuda:N or mps") from e
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(f"device {name!r} asked for, but this torch ({torch.__version__}) sees no CUDA GPU; "
                             "use --device cpu, or install a CUDA build of torch")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise InputError(f"device {name!r}: only {torch.cuda.device_count()} CUDA device(s) visible")
    elif device.type == "mps":
        if not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
            raise InputError(f"device {name!r} is not available on this machine")
    elif device.type != "cpu":
        raise InputError(f"unsupported device {name!r}: use cpu, cuda, cuda:N or mps")
    return device


def check_precision(precision: str, device: torch.device) -> str:
    """``precision`` if it is one of :data:`PRECISIONS` and sensible on ``device``."""
    if precision not in PRECISIONS:
        raise InputError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if precision == "float16" and torch.device(device).type == "cpu":
        raise InputError("float16 runs on CUDA devices only; on a CPU use float32 or bfloat16")
    return precision


def check_seed(seed: int) -> int:
    """``seed`` as an int in ``[0, 2^63 − 1]``."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise InputError(f"seed must be an integer from 0 to {MAX_SEED}, got {seed!r}")
    return seed


def autocast(device: torch.device | str, precision: str = "float32"):
    """``torch.autocast`` to ``precision`` on ``device``'s type, or a no-op context for float32."""
    if precision == "float32":
        return contextlib.nullcontext()
    if precision not in _DTYPES:
        raise ValueError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    return torch.autocast(torch.device(device).type, dtype=_DTYPES[precision])
