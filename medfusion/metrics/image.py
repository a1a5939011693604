"""SSIM and PSNR for volumes, with an explicit data range (as scikit-image requires for float images)."""

from __future__ import annotations

import numpy as np

__all__ = ["ssim", "psnr", "brasyn_ssim", "percentile_scale"]


def ssim(pred: np.ndarray, ref: np.ndarray, *, data_range: float) -> float:
    """Structural similarity of two 2D/3D arrays: Gaussian window (σ 1.5, 11 wide), K1 0.01, K2 0.03,
    population covariance — scikit-image ``structural_similarity`` with the Wang et al. (2004) settings,
    averaged over the valid region (the border of half a window is dropped)."""
    from skimage.metrics import structural_similarity

    pred, ref = _pair(pred, ref)
    return float(
        structural_similarity(
            pred, ref, data_range=float(data_range), gaussian_weights=True, sigma=1.5,
            use_sample_covariance=False,
        )
    )


def psnr(pred: np.ndarray, ref: np.ndarray, *, data_range: float) -> float:
    """Peak signal-to-noise ratio ``10·log10(R² / MSE)`` in dB; ``inf`` for identical images."""
    pred, ref = _pair(pred, ref)
    mse = float(np.mean((pred - ref) ** 2))
    return float("inf") if mse == 0 else float(10.0 * np.log10(float(data_range) ** 2 / mse))


def percentile_scale(x: np.ndarray, lower: float = 0.5, upper: float = 99.5) -> np.ndarray:
    """Clip at the ``lower``/``upper`` percentiles (lower bound forced ≥ 0) and scale to [0, 1] (BraSyn)."""
    x = np.asarray(x, dtype=np.float64)
    lo, hi = np.percentile(x, [lower, upper])
    lo = max(lo, 0.0)
    if hi <= lo:
        return np.zeros_like(x)
    return (np.clip(x, lo, hi) - lo) / (hi - lo)


def brasyn_ssim(pred: np.ndarray, ref: np.ndarray, seg: np.ndarray | None = None) -> dict[str, float]:
    """BraSyn 2024 SSIM: each image percentile-scaled (0.5/99.5) to [0, 1], 3D SSIM (data range 1) of the whole
    volume, and — with a label map — of ``pred·m`` vs ``ref·m`` for the tumour mask ``m = seg > 0`` and for
    ``1 − m``.  Returns ``{"ssim": …, "ssim_tumour": …, "ssim_non_tumour": …}`` (tumour keys only with seg)."""
    p, r = percentile_scale(pred), percentile_scale(ref)
    out = {"ssim": ssim(p, r, data_range=1.0)}
    if seg is not None:
        m = (np.asarray(seg) > 0).astype(np.float64)
        out["ssim_tumour"] = ssim(p * m, r * m, data_range=1.0)
        out["ssim_non_tumour"] = ssim(p * (1 - m), r * (1 - m), data_range=1.0)
    return out


def _pair(pred, ref) -> tuple[np.ndarray, np.ndarray]:
    pred = np.asarray(pred, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    if pred.shape != ref.shape:
        raise ValueError(f"prediction and reference shapes differ: {pred.shape} vs {ref.shape}")
    return pred, ref
