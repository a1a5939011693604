"""No-learning baselines for missing-contrast synthesis, to compare a trained model against."""

from __future__ import annotations

from typing import Mapping

import numpy as np

from ...metrics import ssim

__all__ = ["histogram_match", "best_contrast_baseline"]


def histogram_match(source: np.ndarray, reference: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Map ``source`` intensities inside ``mask`` monotonically onto the intensity histogram of ``reference``
    inside ``mask`` (quantile matching); 0 outside the mask."""
    out = np.zeros_like(source, dtype=np.float32)
    src, ref = source[mask], reference[mask]
    if src.size == 0:
        return out
    order = np.argsort(src, kind="stable")
    ref_sorted = np.sort(ref)
    quantiles = np.linspace(0, 1, src.size)
    matched = np.interp(quantiles, np.linspace(0, 1, ref_sorted.size), ref_sorted)
    values = np.empty_like(matched)
    values[order] = matched
    out[mask] = values
    return out


def best_contrast_baseline(available: Mapping[str, np.ndarray], truth: np.ndarray) -> tuple[str, np.ndarray]:
    """The available contrast that, histogram-matched to the truth inside the brain, is most similar (SSIM)
    to the truth.  **An oracle**: it uses the truth's histogram and picks by the truth, so it is an optimistic
    (hard to beat) version of "copy the best-matching contrast".  All images in [0, 1].

    Returns ``(contrast name, baseline image)``.
    """
    mask = np.zeros(truth.shape, dtype=bool)
    for v in available.values():
        mask |= v > 0
    best = None
    for name, img in available.items():
        candidate = histogram_match(img, truth, mask)
        score = ssim(candidate, truth, data_range=1.0)
        if best is None or score > best[0]:
            best = (score, name, candidate)
    return best[1], best[2]
