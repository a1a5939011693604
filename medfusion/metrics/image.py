"""Image similarity for synthesized volumes and images: SSIM (2D, 3D, per slice, masked), PSNR, MAE, MSE.

Conventions (see the evaluation protocols in the project docs):

* **SSIM** is scikit-image's ``structural_similarity`` with the settings of Wang et al. (2004): Gaussian window
  σ 1.5 (11 wide), K1 0.01, K2 0.03, population covariance.  The data range ``R`` is always explicit (for float
  images scikit-image refuses to guess it, and so do we).  As in scikit-image and MONAI, the mean runs over the
  *valid* region: a border of half a window (5 voxels) is dropped on every filtered axis.
* ``mask`` (SSIM): the SSIM map of the whole image is averaged over the mask voxels inside the valid region
  (the SynthRAD convention); an empty mask gives ``nan``.
* ``per_slice=True``: 2D SSIM of every slice along ``axis`` (axial = the last NIfTI axis), averaged over the
  slices; with a mask, only slices whose mask is non-empty inside the valid region count.
* **PSNR** = 10·log10(R² / MSE) in dB (``inf`` for identical images); **MAE** / **MSE** in the images' units
  (HU for CT); with a mask, over the mask voxels only (``nan`` for an empty mask).

All functions take numpy arrays of equal shape, never modify them and return Python floats; unusable input
(different shapes, a non-positive data range, images smaller than the SSIM window) raises
:class:`~medfusion.errors.InputError`.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError

__all__ = ["ssim", "psnr", "mae", "mse", "region_ssim", "brasyn_ssim", "percentile_scale", "SSIM_SIGMA", "SSIM_PAD"]

#: Gaussian window of the SSIM (Wang et al. 2004): σ 1.5, truncated at 3.5 σ → 11 samples wide.
SSIM_SIGMA = 1.5
_TRUNCATE = 3.5
#: half the window width: the border that the SSIM mean leaves out on each filtered axis.
SSIM_PAD = int(_TRUNCATE * SSIM_SIGMA + 0.5)


def ssim(
    pred: np.ndarray,
    ref: np.ndarray,
    *,
    data_range: float,
    mask: np.ndarray | None = None,
    per_slice: bool = False,
    axis: int = -1,
) -> float:
    """Structural similarity of two 2D/3D arrays (see the module docstring for the conventions).

    Args:
        pred, ref: images of equal shape, any intensity unit.
        data_range: ``R`` of the SSIM constants ``C1 = (0.01 R)²``, ``C2 = (0.03 R)²``, in the images' unit
            (e.g. 1 for [0, 1] images, 4024 for CT clipped to [−1024, 3000] HU).
        mask: optional boolean array of the same shape; the SSIM map is averaged over it.
        per_slice: average 2D SSIM over the slices along ``axis`` instead of one 3D SSIM.
        axis: slice axis for ``per_slice``.

    Returns:
        the mean SSIM, or ``nan`` when a mask leaves nothing to average.
    """
    pred, ref = _pair(pred, ref)
    if data_range <= 0:
        raise InputError(f"data_range must be positive, got {data_range}")
    # SSIM is unchanged when both images and R are scaled by 1/R; at that scale float32 is ample, and twice as fast.
    pred = (pred / data_range).astype(np.float32)
    ref = (ref / data_range).astype(np.float32)
    m = None if mask is None else _mask(mask, pred.shape)
    if not per_slice:
        return _ssim_nd(pred, ref, m)
    values = []
    for i in range(pred.shape[axis]):
        sl = [slice(None)] * pred.ndim
        sl[axis] = i
        sl = tuple(sl)
        v = _ssim_nd(pred[sl], ref[sl], None if m is None else m[sl])
        if not np.isnan(v):
            values.append(v)
    return float(np.mean(values)) if values else float("nan")


def _ssim_nd(pred: np.ndarray, ref: np.ndarray, mask: np.ndarray | None) -> float:
    from skimage.metrics import structural_similarity

    if min(pred.shape) < 2 * SSIM_PAD + 1:
        raise InputError(f"SSIM needs every side ≥ {2 * SSIM_PAD + 1} voxels (the Gaussian window); got {pred.shape}")
    kwargs = dict(data_range=1.0, gaussian_weights=True, sigma=SSIM_SIGMA, use_sample_covariance=False)
    if mask is None:
        return float(structural_similarity(pred, ref, **kwargs))
    inner = tuple(slice(SSIM_PAD, n - SSIM_PAD) for n in pred.shape)
    m = mask[inner]
    if not m.any():
        return float("nan")
    _, full = structural_similarity(pred, ref, full=True, **kwargs)
    return float(full[inner][m].mean(dtype=np.float64))


def mse(pred: np.ndarray, ref: np.ndarray, *, mask: np.ndarray | None = None) -> float:
    """Mean squared error (units²); over ``mask`` when given (``nan`` if it is empty)."""
    d = _difference(pred, ref, mask)
    return float(np.mean(d * d)) if d.size else float("nan")


def mae(pred: np.ndarray, ref: np.ndarray, *, mask: np.ndarray | None = None) -> float:
    """Mean absolute error (the images' unit, e.g. HU); over ``mask`` when given (``nan`` if it is empty)."""
    d = _difference(pred, ref, mask)
    return float(np.mean(np.abs(d))) if d.size else float("nan")


def psnr(pred: np.ndarray, ref: np.ndarray, *, data_range: float, mask: np.ndarray | None = None) -> float:
    """Peak signal-to-noise ratio ``10·log10(R² / MSE)`` in dB; ``inf`` for identical images."""
    if data_range <= 0:
        raise InputError(f"data_range must be positive, got {data_range}")
    err = mse(pred, ref, mask=mask)
    if np.isnan(err):
        return err
    return float("inf") if err == 0 else float(10.0 * np.log10(float(data_range) ** 2 / err))


def percentile_scale(x: np.ndarray, lower: float = 0.5, upper: float = 99.5) -> np.ndarray:
    """Clip at the ``lower``/``upper`` percentiles (lower bound forced ≥ 0) and scale to [0, 1] (BraSyn)."""
    x = np.asarray(x, dtype=np.float64)
    lo, hi = np.percentile(x, [lower, upper])
    lo = max(lo, 0.0)
    if hi <= lo:
        return np.zeros_like(x)
    return (np.clip(x, lo, hi) - lo) / (hi - lo)


def region_ssim(pred: np.ndarray, ref: np.ndarray, seg: np.ndarray | None = None, *, data_range: float = 1.0
                ) -> dict[str, float]:
    """3D SSIM of the whole images and — with a label map — of ``pred·m`` vs ``ref·m`` for the tumour mask
    ``m = seg > 0`` and of ``pred·(1 − m)`` vs ``ref·(1 − m)`` (the BraSyn definition of regional SSIM).
    Returns ``{"ssim": …, "ssim_tumour": …, "ssim_non_tumour": …}`` (tumour keys only with ``seg``)."""
    out = {"ssim": ssim(pred, ref, data_range=data_range)}
    if seg is not None:
        m = (np.asarray(seg) > 0).astype(np.float64)
        out["ssim_tumour"] = ssim(pred * m, ref * m, data_range=data_range)
        out["ssim_non_tumour"] = ssim(pred * (1 - m), ref * (1 - m), data_range=data_range)
    return out


def brasyn_ssim(pred: np.ndarray, ref: np.ndarray, seg: np.ndarray | None = None) -> dict[str, float]:
    """BraSyn 2024 SSIM: each image percentile-scaled (0.5/99.5) to [0, 1], then :func:`region_ssim` with data
    range 1.  Returns ``{"ssim": …, "ssim_tumour": …, "ssim_non_tumour": …}`` (tumour keys only with seg)."""
    return region_ssim(percentile_scale(pred), percentile_scale(ref), seg, data_range=1.0)


def _difference(pred, ref, mask) -> np.ndarray:
    pred, ref = _pair(pred, ref)
    if mask is None:
        return (pred - ref).ravel()
    m = _mask(mask, pred.shape)
    return pred[m] - ref[m]


def _mask(mask, shape) -> np.ndarray:
    m = np.asarray(mask)
    if m.shape != tuple(shape):
        raise InputError(f"mask shape {m.shape} differs from the images' {tuple(shape)}")
    return m > 0


def _pair(pred, ref) -> tuple[np.ndarray, np.ndarray]:
    pred = np.asarray(pred, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    if pred.shape != ref.shape:
        raise InputError(f"prediction and reference shapes differ: {pred.shape} vs {ref.shape}")
    return pred, ref
