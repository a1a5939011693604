"""MONAI-style transforms: array classes hold the logic, ``...d`` dictionary classes only map keys.

Exports are resolved lazily (PEP 562), so ``import medfusion.transforms`` is cheap and a transform's module
(with its torch/MONAI imports) loads on first access, e.g. ``from medfusion.transforms import HaarDWT``.
To export a new module's transforms, add one line to ``_EXPORTS``.
"""

from __future__ import annotations

from ..utils.lazy import lazy_exports

#: submodule -> the public names it defines
_EXPORTS: dict[str, tuple[str, ...]] = {
    "wavelet": ("HaarDWT", "HaarDWTd", "HaarIDWT", "HaarIDWTd", "WaveletDWT2D", "WaveletIDWT2D"),
    "intensity": ("PercentileNormalize", "PercentileNormalized", "ZeroBackground", "ZeroBackgroundd"),
    "io": ("LoadVolume", "LoadVolumed"),
}

__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
