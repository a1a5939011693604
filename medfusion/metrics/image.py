"""Image similarity for synthesized volumes and images: SSIM (2D, 3D, per slice, masked), PSNR, MAE, MSE, and the
BraSyn regional SSIM.

Conventions (see the evaluation protocols in :mod:`medfusion.metrics.protocols`):

* **SSIM** (Wang et al., IEEE TIP 13(4):600–612, 2004): Gaussian window σ 1.5 truncated at 3.5 σ (11 samples
  wide), K1 0.01, K2 0.03, population (co)variances, ``C1 = (K1·R)²``, ``C2 = (K2·R)²``.  The data range ``R`` is
  always explicit.  The SSIM map is computed with :func:`scipy.ndimage.gaussian_filter`; what happens at the
  image border is the ``border`` argument:

  - ``"valid"`` (default): the mean runs over the voxels at least half a window (5 voxels) from the border on
    every axis, where the window lies inside the image — as Wang et al.'s MATLAB code, scikit-image, MONAI and
    torchmetrics ≤ 1.4.1 average;
  - ``"full"``: the mean runs over every voxel; near the border the filters see the image mirrored at its
    edge without repeating the edge voxel (``torch.nn.functional.pad(mode="reflect")``, SciPy's ``"mirror"``)
    — as torchmetrics ≥ 1.4.2 (September 2024, Lightning-AI/torchmetrics PR #2721) averages.

* ``mask`` (SSIM): the SSIM map of the whole image is averaged over the mask voxels (inside the valid region
  for ``border="valid"``; the SynthRAD convention); an empty mask gives ``nan``.
* ``per_slice=True``: 2D SSIM of every slice along ``axis`` (axial = the last NIfTI axis), averaged over the
  slices; with a mask, only slices whose mask has voxels in the averaged region count.
* **PSNR** = 10·log10(R² / MSE) in dB (``inf`` for identical images); **MAE** / **MSE** in the images' units
  (HU for CT); with a mask, over the mask voxels only (``nan`` for an empty mask).
* **BraSyn** (:func:`brasyn_ssim`): see its docstring; the regional SSIMs use torchmetrics' *default* data
  range, ``max(max − min)`` of the two masked volumes, as the organisers' ``ssim.py`` does.

All functions take numpy arrays of equal shape, never modify them and return Python floats; unusable input
(different shapes, a non-positive data range, images smaller than the SSIM window) raises
:class:`~medfusion.errors.InputError`.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..errors import InputError

__all__ = ["ssim", "psnr", "mae", "mse", "region_ssim", "brasyn_ssim", "percentile_scale", "default_data_range",
           "region_mean_errors", "interslice_difference", "seam_ratio", "SSIM_SIGMA", "SSIM_PAD", "SSIM_BORDERS", "BRASYN_BORDER"]

#: Gaussian window of the SSIM (Wang et al. 2004): σ 1.5, truncated at 3.5 σ → 11 samples wide.
SSIM_SIGMA = 1.5
_TRUNCATE = 3.5
#: half the window width: the border that the ``"valid"`` SSIM mean leaves out on each filtered axis.
SSIM_PAD = int(_TRUNCATE * SSIM_SIGMA + 0.5)
_K1, _K2 = 0.01, 0.03
#: what the SSIM mean does at the image border (see the module docstring).
SSIM_BORDERS = ("valid", "full")
#: the border handling of the BraSyn protocol: torchmetrics' current one (the organisers' ``ssim.py`` pins no
#: torchmetrics version; releases before 1.4.2 gave the ``"valid"`` mean).
BRASYN_BORDER = "full"


def ssim(
    pred: np.ndarray,
    ref: np.ndarray,
    *,
    data_range: float,
    mask: np.ndarray | None = None,
    per_slice: bool = False,
    axis: int = -1,
    border: str = "valid",
) -> float:
    """Structural similarity of two 2D/3D arrays (see the module docstring for the conventions).

    Args:
        pred, ref: images of equal shape, any intensity unit.
        data_range: ``R`` of the SSIM constants ``C1 = (0.01 R)²``, ``C2 = (0.03 R)²``, in the images' unit
            (e.g. 1 for [0, 1] images, 4024 for CT clipped to [−1024, 3000] HU).
        mask: optional boolean array of the same shape; the SSIM map is averaged over it.
        per_slice: average 2D SSIM over the slices along ``axis`` instead of one 3D SSIM.
        axis: slice axis for ``per_slice``.
        border: ``"valid"`` (mean away from the border, scikit-image) or ``"full"`` (mean over every voxel,
            mirrored border, torchmetrics ≥ 1.4.2).

    Returns:
        the mean SSIM (dimensionless, ≤ 1), or ``nan`` when a mask leaves nothing to average.
    """
    pred, ref = _pair(pred, ref)
    if not data_range > 0:
        raise InputError(f"data_range must be positive, got {data_range}")
    if border not in SSIM_BORDERS:
        raise InputError(f"border must be one of {', '.join(SSIM_BORDERS)}, got {border!r}")
    # SSIM is unchanged when both images and R are scaled by 1/R; at that scale float32 is ample, and twice as fast.
    pred = (pred / data_range).astype(np.float32)
    ref = (ref / data_range).astype(np.float32)
    m = None if mask is None else _mask(mask, pred.shape)
    if not per_slice:
        return _mean_ssim(pred, ref, m, border)
    values = []
    for i in range(pred.shape[axis]):
        sl = [slice(None)] * pred.ndim
        sl[axis] = i
        sl = tuple(sl)
        v = _mean_ssim(pred[sl], ref[sl], None if m is None else m[sl], border)
        if not np.isnan(v):
            values.append(v)
    return float(np.mean(values)) if values else float("nan")


def _ssim_map(x: np.ndarray, y: np.ndarray, mode: str) -> np.ndarray:
    """Local SSIM of images already divided by the data range (so ``C1 = K1²``, ``C2 = K2²``); Gaussian-weighted
    local means, population variances and covariance (Wang et al. 2004, eq. 13), ``mode`` at the border."""
    from scipy.ndimage import gaussian_filter

    def smooth(a):
        return gaussian_filter(a, sigma=SSIM_SIGMA, truncate=_TRUNCATE, mode=mode)

    mx, my = smooth(x), smooth(y)
    vx = smooth(x * x) - mx * mx
    vy = smooth(y * y) - my * my
    cxy = smooth(x * y) - mx * my
    c1, c2 = _K1 ** 2, _K2 ** 2
    return ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))


def _mean_ssim(pred: np.ndarray, ref: np.ndarray, mask: np.ndarray | None, border: str) -> float:
    if min(pred.shape) < 2 * SSIM_PAD + 1:
        raise InputError(f"SSIM needs every side ≥ {2 * SSIM_PAD + 1} voxels (the Gaussian window); got {pred.shape}")
    if border == "full":
        smap, region = _ssim_map(pred, ref, "mirror"), (slice(None),) * pred.ndim
    else:  # inside the valid region the window never leaves the image: the border mode does not matter there
        smap, region = _ssim_map(pred, ref, "reflect"), tuple(slice(SSIM_PAD, n - SSIM_PAD) for n in pred.shape)
    values = smap[region] if mask is None else smap[region][mask[region]]
    return float(values.mean(dtype=np.float64)) if values.size else float("nan")


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
    if not data_range > 0:
        raise InputError(f"data_range must be positive, got {data_range}")
    err = mse(pred, ref, mask=mask)
    if np.isnan(err):
        return err
    return float("inf") if err == 0 else float(10.0 * np.log10(float(data_range) ** 2 / err))


def synthrad_ssim(pred: np.ndarray, ref: np.ndarray, *, window: tuple[float, float] = (-1024.0, 3000.0),
                  mask: np.ndarray | None = None) -> float:
    """SSIM as SynthRAD2023 computes it (the organisers' ``functions/image_metrics.py``, SynthRAD2023/metrics).

    Both images are clipped to ``window``, every voxel outside ``mask`` is set to the window's low end, and both are
    shifted to ≥ 0 (when the low end is negative); then *one* scikit-image ``structural_similarity`` over the whole
    volume with its defaults (7-voxel uniform window, sample covariance, K1 0.01, K2 0.03), data range hi − lo, in
    float32 as the organisers' images are; its SSIM map is averaged over the mask voxels at least 3 voxels from
    the border (without a mask, scikit-image's own mean over that region).

    Raises:
        InputError: an axis shorter than 7 voxels (the SSIM window), or a mask of another shape.
    """
    from skimage.metrics import structural_similarity

    lo, hi = (float(v) for v in window)
    p, r = (np.clip(np.asarray(a, dtype=np.float32), lo, hi) for a in (pred, ref))
    if p.shape != r.shape:
        raise InputError(f"prediction and reference shapes differ: {p.shape} vs {r.shape}")
    if min(p.shape) < 7:
        raise InputError(f"SynthRAD's 3D SSIM needs at least 7 voxels along every axis, got {p.shape}")
    m = None if mask is None else _mask(mask, p.shape)
    if m is not None:
        p, r = np.where(m, p, np.float32(lo)), np.where(m, r, np.float32(lo))
    if lo < 0:
        p, r = p - np.float32(lo), r - np.float32(lo)
    full, smap = structural_similarity(r, p, data_range=hi - lo, full=True)
    if m is None:
        return float(full)
    inner = tuple(slice(3, n - 3) for n in p.shape)
    values = smap[inner][m[inner]]
    return float(values.mean(dtype=np.float64)) if values.size else float("nan")


def percentile_scale(x: np.ndarray, lower: float = 0.5, upper: float = 99.5) -> np.ndarray:
    """Clip at the image's own ``lower``/``upper`` percentiles (lower bound forced ≥ 0) and scale to [0, 1], as
    the BraSyn ``ssim.py`` normalises each image; a constant image gives zeros."""
    x = np.asarray(x, dtype=np.float64)
    lo, hi = np.percentile(x, [lower, upper])
    lo = max(lo, 0.0)
    if hi <= lo:
        return np.zeros_like(x)
    return (np.clip(x, lo, hi) - lo) / (hi - lo)


def default_data_range(pred: np.ndarray, ref: np.ndarray) -> float:
    """torchmetrics' default SSIM data range: ``max(pred.max() − pred.min(), ref.max() − ref.min())`` of the two
    arrays passed in one call (in their unit)."""
    pred, ref = _pair(pred, ref)
    return float(max(np.ptp(pred), np.ptp(ref)))


def region_ssim(pred: np.ndarray, ref: np.ndarray, seg: np.ndarray, *, data_range: float | None = None,
                border: str = BRASYN_BORDER) -> dict[str, float]:
    """The BraSyn regional SSIM: with ``m = seg > 0``, ``ssim_tumour`` = SSIM(pred·m, ref·m) and
    ``ssim_non_tumour`` = SSIM(pred·(1 − m), ref·(1 − m)), each averaged over the whole volume.

    Args:
        pred, ref: images of equal shape (BraSyn: percentile-scaled to [0, 1], see :func:`percentile_scale`).
        seg: label map (or mask) of the same shape; the tumour is every voxel > 0.
        data_range: ``None`` (BraSyn): torchmetrics' default, :func:`default_data_range` of the two masked
            volumes of each region; or one number for both regions.
        border: see :func:`ssim` (BraSyn: ``"full"``, as current torchmetrics).

    Returns:
        ``{"ssim_tumour": …, "ssim_non_tumour": …}``; a region whose masked volumes are both zero everywhere
        (e.g. an empty tumour mask) has data range 0 and SSIM 0/0 = ``nan`` (undefined), as in torchmetrics.
    """
    pred, ref = _pair(pred, ref)
    m = _mask(seg, pred.shape)
    out = {}
    for key, region in (("ssim_tumour", m), ("ssim_non_tumour", ~m)):
        p, r = pred * region, ref * region
        rng = default_data_range(p, r) if data_range is None else float(data_range)
        out[key] = ssim(p, r, data_range=rng, border=border) if rng > 0 else float("nan")
    return out


def brasyn_ssim(pred: np.ndarray, ref: np.ndarray, seg: np.ndarray | None = None, *, scaled: bool = False,
                border: str = BRASYN_BORDER) -> dict[str, float]:
    """SSIM the BraSyn 2023/24 way (the organisers' ``ssim.py``, github.com/hongweilibran/BraSyn).

    Each image is clipped at its own 0.5/99.5 percentiles (lower bound ≥ 0) and scaled to [0, 1]
    (:func:`percentile_scale`; skipped when ``scaled``), then torchmetrics' 3D SSIM (Gaussian 11, σ 1.5, K1
    0.01, K2 0.03, default data range) of the tumour and non-tumour volumes, see :func:`region_ssim`.

    Returns:
        ``{"ssim": …, "ssim_tumour": …, "ssim_non_tumour": …}`` (tumour keys only with ``seg``).  ``ssim`` —
        the whole volume with data range 1 — is a medfusion addition, not a BraSyn score.
    """
    p, r = (np.asarray(pred), np.asarray(ref)) if scaled else (percentile_scale(pred), percentile_scale(ref))
    out = {"ssim": ssim(p, r, data_range=1.0, border=border)}
    if seg is not None:
        out.update(region_ssim(p, r, seg, border=border))
    return out


def region_mean_errors(pred: np.ndarray, ref: np.ndarray, labels: np.ndarray, names: dict[int, str]) -> dict:
    """Per labelled region, ``mean(pred) − mean(ref)`` over its voxels (e.g. the mean-HU error of each organ, as
    seg2med reports it); regions absent from ``labels`` are left out."""
    pred, ref = _pair(pred, ref)
    lab = np.asarray(labels)
    if lab.shape != pred.shape:
        raise InputError(f"label map shape {lab.shape} differs from the images' {pred.shape}")
    out = {}
    for value, name in names.items():
        m = lab == value
        if m.any():
            out[name] = float(pred[m].mean() - ref[m].mean())
    return out


def interslice_difference(volume: np.ndarray, *, mask: np.ndarray | None = None, axis: int = 2) -> float:
    """Mean absolute difference between neighbouring slices along ``axis`` (the units of ``volume``), over the
    voxels inside ``mask`` in both slices: slice-to-slice stripes of a slice-wise generator raise it above the
    truth's."""
    v = np.moveaxis(np.asarray(volume, dtype=np.float64), axis, 0)
    d = np.abs(np.diff(v, axis=0))
    if mask is not None:
        m = np.moveaxis(_mask(mask, np.asarray(volume).shape), axis, 0)
        d = d[m[1:] & m[:-1]]
    return float(d.mean()) if d.size else float("nan")


def seam_ratio(image: np.ndarray, row_edges: Sequence[int], col_edges: Sequence[int]) -> float:
    """Seams of tiled processing: the mean absolute difference between neighbouring pixels across the given tile
    edges (edge ``k`` lies between pixel ``k − 1`` and pixel ``k``) divided by the mean across every other pair of
    neighbours; rows and columns together, all channels of an ``(H, W[, C])`` image.  1 = a tile edge is as smooth
    as anywhere else; a visible seam raises it."""
    img = np.asarray(image, dtype=np.float64)
    if img.ndim == 2:
        img = img[..., None]
    if img.ndim != 3:
        raise ValueError(f"expected an (H, W) or (H, W, C) image, got shape {img.shape}")
    at, off = [], []
    for axis, edges in ((0, row_edges), (1, col_edges)):
        d = np.abs(np.diff(img, axis=axis)).mean(axis=tuple(a for a in range(3) if a != axis))  # per boundary
        on = np.zeros(d.shape, dtype=bool)
        on[[int(k) - 1 for k in edges if 0 < int(k) < img.shape[axis]]] = True
        at.append(d[on])
        off.append(d[~on])
    seams, elsewhere = np.concatenate(at), np.concatenate(off)
    if not seams.size or not elsewhere.size:
        raise ValueError("no tile edge inside the image, or nothing but edges")
    return float(seams.mean() / elsewhere.mean())


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
