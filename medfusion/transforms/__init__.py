"""MONAI-style transforms: array classes hold the logic, ``...d`` dictionary classes only map keys.

Exports are resolved lazily (PEP 562), so ``import medfusion.transforms`` is cheap and a transform's module
(with its torch/MONAI imports) loads on first access, e.g. ``from medfusion.transforms import HaarDWT``.
To export a new module's transforms, add one line to ``_EXPORTS``.
"""

from __future__ import annotations

import importlib
from typing import Any

#: submodule -> the public names it defines
_EXPORTS: dict[str, tuple[str, ...]] = {
    "wavelet": ("HaarDWT", "HaarDWTd", "HaarIDWT", "HaarIDWTd", "WaveletDWT2D", "WaveletIDWT2D"),
    "intensity": ("PercentileNormalize", "PercentileNormalized", "ZeroBackground"),
}

_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = sorted(_MODULE_OF)


def __getattr__(name: str) -> Any:
    if name not in _MODULE_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_MODULE_OF[name]}", __name__), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
