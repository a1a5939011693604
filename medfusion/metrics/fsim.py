"""FSIM, the feature similarity index for grayscale images (Zhang, Zhang, Mou & Zhang, 2011), and its slice mean
over volumes.

Reference: L. Zhang, L. Zhang, X. Mou and D. Zhang, "FSIM: A Feature Similarity Index for Image Quality
Assessment", IEEE Transactions on Image Processing 20(8):2378-2386, 2011, doi:10.1109/TIP.2011.2109730.

Protocol (the paper's grayscale FSIM with the settings of the authors' published MATLAB code, ``FeatureSIM.m``):

1. Both images are scaled to the 0–255 range of 8-bit images (multiplied by ``255 / data_range``), because the
   constants below are calibrated for that range.  Values are not clipped.
2. Downsampling: ``F = max(1, round(min(rows, cols) / 256))`` (rounding halves away from zero); each image is
   filtered with an F×F average kernel (zero padding outside the image, MATLAB ``conv2(..., 'same')`` placement)
   and every F-th row and column is kept, starting with the first.  For F = 2 and even sizes this is exactly
   the mean of non-overlapping 2×2 blocks; for odd F the window is centred on the kept sample.
3. Phase congruency PC (Kovesi's ``phasecong2`` as embedded in ``FeatureSIM.m``): log-Gabor filters built in the
   frequency plane, 4 scales × 4 orientations, minimum wavelength 6 px, scale multiplier 2, σ_f/f_0 = 0.55,
   angular spacing / angular σ = 1.2, every filter multiplied by a Butterworth low-pass (cut-off 0.45, order 15).
   Per orientation, the energy ``Σ_s A_s·(cos Δφ_s − |sin Δφ_s|)`` is reduced by a noise threshold
   ``T = (μ_R + k·σ_R) / 1.7`` (k = 2), where the Rayleigh mean μ_R and spread σ_R come from the noise power
   estimated as ``median(|EO_smallest scale|²) / ln 2`` divided by the filter's summed squared transfer function;
   negative values become 0.  ``PC = Σ_o energy_o / Σ_o Σ_s A_{s,o}``; ε = 1e-4 guards the mean phase vector.
4. Gradient magnitude G with the Scharr operator ``[[3, 0, -3], [10, 0, -10], [3, 0, -3]] / 16`` and its
   transpose (zero padding).
5. ``S_PC = (2·PC1·PC2 + T1) / (PC1² + PC2² + T1)`` with T1 = 0.85, ``S_G`` likewise from G with T2 = 160,
   ``S_L = S_PC·S_G`` and ``FSIM = Σ S_L·PC_m / Σ PC_m`` with ``PC_m = max(PC1, PC2)``.

FSIM lies in (0, 1] and is 1 for identical images.  It is undefined (0/0) when neither image has any phase
congruency (``Σ PC_m = 0``), e.g. when both are constant; :func:`fsim` then returns NaN and :func:`fsim_volume`
leaves such slices out of its mean.  A constant image is given PC = 0 exactly (its filter responses are zero
in exact arithmetic, only rounding noise in floating point).

Everything is computed in float64 with numpy/scipy FFTs; all 16 filters (and, for volumes, several slices) are
applied in one batched FFT, so a 128×128 slice takes milliseconds.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from medfusion.errors import InputError

__all__ = ["fsim", "fsim_volume"]

# Phase congruency (phasecong2 settings in FeatureSIM.m)
N_SCALES = 4
N_ORIENTATIONS = 4
MIN_WAVELENGTH = 6.0
MULT = 2.0
SIGMA_ON_F = 0.55
D_THETA_ON_SIGMA = 1.2
NOISE_K = 2.0
EPSILON = 1e-4
LOWPASS_CUTOFF = 0.45
LOWPASS_ORDER = 15
#: Empirical factor by which Kovesi's noise estimate (derived for PC_1) overestimates the noise for PC_2.
PC2_NOISE_RESCALE = 1.7
# Similarity constants (for images in 0–255)
T1 = 0.85
T2 = 160.0

#: Complex filter responses held in memory at once (elements): bounds the slices batched in one FFT.
_MAX_BATCH_ELEMENTS = 1 << 19


def fsim(pred, ref, *, data_range: float) -> float:
    """FSIM of two 2D grayscale arrays (Zhang et al., IEEE TIP 2011; protocol in the module docstring).

    Both are scaled to 0–255 by ``255 / data_range`` (inputs are expected in ``[0, data_range]``; nothing is
    clipped), downsampled by ``F = max(1, round(min(rows, cols) / 256))``, and compared through phase
    congruency (T1 = 0.85) and Scharr gradient magnitude (T2 = 160), weighted by ``max(PC_pred, PC_ref)``.
    The result is symmetric in ``pred`` and ``ref`` and lies in (0, 1], with 1 for identical images.  Returns
    ``nan`` when neither image has any phase congruency (e.g. both constant), where FSIM is 0/0.

    Raises :class:`~medfusion.errors.InputError` for different shapes, arrays that are not 2D or smaller than
    2×2, non-finite values and a ``data_range`` that is not a positive finite number.
    """
    scale = _scale(data_range)
    pred, ref = _pair(pred, ref, ndim=2)
    if min(pred.shape) < 2:
        raise InputError(f"FSIM needs images of at least 2×2 pixels, got {pred.shape}")
    return float(_fsim_stack(pred[None] * scale, ref[None] * scale)[0])


def fsim_volume(pred, ref, *, data_range: float, axis: int = -1, mask=None) -> float:
    """Mean 2D FSIM (see :func:`fsim`) over the slices of two 3D volumes along ``axis``.

    ``axis`` defaults to the last axis, which is the axial direction of RAS/LPS-oriented NIfTI volumes.  With
    ``mask`` (same shape; nonzero/True = inside), only slices in which the mask has at least one voxel count;
    each counted slice is still compared as a whole (the mask selects slices, it does not crop them).  Slices
    whose FSIM is undefined — neither slice has any phase congruency, which includes every slice where pred and
    ref are both constant (e.g. all background), identical or not — are left out of the mean rather than
    counted as 1.0, so that empty background does not inflate the score.  Returns ``nan`` when no slice counts.

    Raises :class:`~medfusion.errors.InputError` for different shapes, volumes that are not 3D or whose slices
    are smaller than 2×2, non-finite values, a bad ``axis``, a mask of another shape, and a ``data_range`` that
    is not a positive finite number.
    """
    scale = _scale(data_range)
    pred, ref = _pair(pred, ref, ndim=3)
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)) or not -3 <= axis <= 2:
        raise InputError(f"axis must be an integer in [-3, 2], got {axis!r}")
    axis = int(axis) % 3
    counted = np.ones(pred.shape[axis], dtype=bool)
    if mask is not None:
        mask = np.asarray(mask)
        if mask.shape != pred.shape:
            raise InputError(f"mask shape {mask.shape} differs from the volume shape {pred.shape}")
        counted = np.moveaxis(mask != 0, axis, 0).reshape(pred.shape[axis], -1).any(axis=1)
    pred = np.moveaxis(pred, axis, 0)
    ref = np.moveaxis(ref, axis, 0)
    if min(pred.shape[1:]) < 2:
        raise InputError(f"FSIM needs slices of at least 2×2 pixels, got {pred.shape[1:]}")

    # Both slices constant: no phase congruency anywhere, FSIM undefined; skip them without filtering.
    constant = _is_constant(pred) & _is_constant(ref)
    index = np.flatnonzero(counted & ~constant)
    if index.size == 0:
        return float("nan")

    per_slice = pred.shape[1] * pred.shape[2] * N_SCALES * N_ORIENTATIONS
    batch = max(1, _MAX_BATCH_ELEMENTS // per_slice)
    values = np.concatenate([
        _fsim_stack(pred[chunk] * scale, ref[chunk] * scale)
        for chunk in np.array_split(index, math.ceil(index.size / batch))
    ])
    values = values[np.isfinite(values)]
    return float(values.mean()) if values.size else float("nan")


# ----------------------------------------------------------------------------------------------------------------
# Core (stacks of 2D images, leading axis = slice, already in 0–255)


def _fsim_stack(pred: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """FSIM of each pair of 2D images in two (n, rows, cols) stacks already scaled to 0–255; NaN where undefined."""
    factor = _downsampling_factor(pred.shape[1], pred.shape[2])
    y1, y2 = _downsample(pred, factor), _downsample(ref, factor)
    pc1, pc2 = _phase_congruency(y1), _phase_congruency(y2)
    g1, g2 = _gradient_magnitude(y1), _gradient_magnitude(y2)
    s_pc = (2 * pc1 * pc2 + T1) / (pc1**2 + pc2**2 + T1)
    s_g = (2 * g1 * g2 + T2) / (g1**2 + g2**2 + T2)
    pc_m = np.maximum(pc1, pc2)
    numerator = (s_pc * s_g * pc_m).sum(axis=(1, 2))
    denominator = pc_m.sum(axis=(1, 2))
    out = np.full(pred.shape[0], np.nan)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


def _is_constant(stack: np.ndarray) -> np.ndarray:
    """Per image of an (n, rows, cols) stack: are all its values equal?"""
    return np.ptp(stack.reshape(len(stack), -1), axis=1) == 0


def _downsampling_factor(rows: int, cols: int) -> int:
    """``max(1, round(min(rows, cols) / 256))`` with MATLAB's rounding (halves away from zero)."""
    return max(1, int(math.floor(min(rows, cols) / 256 + 0.5)))


def _downsample(stack: np.ndarray, factor: int) -> np.ndarray:
    """F×F average filter (zero padding, MATLAB ``conv2(x, ones(F)/F², 'same')`` alignment), then keep every F-th
    row and column starting with the first."""
    if factor == 1:
        return stack
    # conv2 'same' with a length-F kernel: output j averages input samples j + F//2 - F + 1 … j + F//2.
    after = factor // 2
    before = factor - 1 - after
    out = stack
    for axis in (1, 2):
        n = out.shape[axis]
        pad = [(0, 0)] * 3
        pad[axis] = (before, after)
        padded = np.pad(out, pad)
        starts = np.arange(0, n, factor)
        out = sum(np.take(padded, starts + t, axis=axis) for t in range(factor))
    return out / factor**2


def _gradient_magnitude(stack: np.ndarray) -> np.ndarray:
    """Scharr gradient magnitude, kernel ``[[3, 0, -3], [10, 0, -10], [3, 0, -3]] / 16`` and its transpose, zero
    padding (``conv2(..., 'same')``; the kernel's flip only changes the sign)."""
    p = np.pad(stack, ((0, 0), (1, 1), (1, 1)))
    rows_smoothed = 3 * p[:, :-2, :] + 10 * p[:, 1:-1, :] + 3 * p[:, 2:, :]  # (n, rows, cols + 2)
    cols_smoothed = 3 * p[:, :, :-2] + 10 * p[:, :, 1:-1] + 3 * p[:, :, 2:]  # (n, rows + 2, cols)
    gx = (rows_smoothed[:, :, :-2] - rows_smoothed[:, :, 2:]) / 16
    gy = (cols_smoothed[:, :-2, :] - cols_smoothed[:, 2:, :]) / 16
    return np.sqrt(gx**2 + gy**2)


def _frequency_grid(rows: int, cols: int) -> tuple[np.ndarray, np.ndarray]:
    """Normalised frequency coordinates (x along columns, y along rows), centred, as in Kovesi's code: even sizes
    ``[-n/2, n/2 - 1] / n``, odd sizes ``[-(n-1)/2, (n-1)/2] / (n - 1)``."""

    def axis_range(n: int) -> np.ndarray:
        if n % 2:
            return np.arange(-(n - 1) / 2, (n - 1) / 2 + 1) / (n - 1)
        return np.arange(-n / 2, n / 2) / n

    return np.meshgrid(axis_range(cols), axis_range(rows))


@lru_cache(maxsize=8)
def _filter_bank(rows: int, cols: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Log-Gabor transfer functions for one image size, shape (orientations, scales, rows, cols), zero frequency
    at [0, 0]; and per orientation the noise-model constants: Σ|H_smallest|² (for the noise power), and over the
    spatial even filters f_s = Re(ifft2(H_s))·√(rows·cols): Σ_x Σ_s f_s² and Σ_x Σ_{i<j} f_i·f_j."""
    x, y = _frequency_grid(rows, cols)
    radius = np.fft.ifftshift(np.sqrt(x**2 + y**2))
    theta = np.fft.ifftshift(np.arctan2(-y, x))  # anticlockwise angle (rows run downwards)
    lowpass = np.fft.ifftshift(1.0 / (1.0 + (np.sqrt(x**2 + y**2) / LOWPASS_CUTOFF) ** (2 * LOWPASS_ORDER)))
    radius[0, 0] = 1.0  # avoid log(0); the zero-frequency value of each filter is set to 0 below

    wavelengths = MIN_WAVELENGTH * MULT ** np.arange(N_SCALES)
    log_gabor = np.exp(-np.log(radius[None] * wavelengths[:, None, None]) ** 2 / (2 * math.log(SIGMA_ON_F) ** 2))
    log_gabor *= lowpass
    log_gabor[:, 0, 0] = 0.0

    theta_sigma = math.pi / N_ORIENTATIONS / D_THETA_ON_SIGMA
    angles = np.arange(N_ORIENTATIONS) * math.pi / N_ORIENTATIONS
    sin_t, cos_t = np.sin(theta)[None], np.cos(theta)[None]
    ds = sin_t * np.cos(angles)[:, None, None] - cos_t * np.sin(angles)[:, None, None]
    dc = cos_t * np.cos(angles)[:, None, None] + sin_t * np.sin(angles)[:, None, None]
    spread = np.exp(-np.arctan2(ds, dc) ** 2 / (2 * theta_sigma**2))  # angular distance wraps correctly

    filters = spread[:, None] * log_gabor[None]  # (orientations, scales, rows, cols)
    smallest_power = (filters[:, 0] ** 2).sum(axis=(1, 2))
    spatial = np.fft.ifft2(filters).real * math.sqrt(rows * cols)
    sum_an2 = (spatial**2).sum(axis=(1, 2, 3))
    total = spatial.sum(axis=1)
    sum_ai_aj = ((total**2).sum(axis=(1, 2)) - sum_an2) / 2  # Σ_{i<j} f_i f_j = ((Σ f)² − Σ f²) / 2
    for array in (filters, smallest_power, sum_an2, sum_ai_aj):
        array.flags.writeable = False
    return filters, smallest_power, sum_an2, sum_ai_aj


def _phase_congruency(stack: np.ndarray) -> np.ndarray:
    """Phase congruency (Kovesi's PC_2 with noise compensation, FeatureSIM.m settings) of each image in an
    (n, rows, cols) stack; values in [0, 1]; exactly 0 for constant images."""
    from scipy import fft as sfft

    n, rows, cols = stack.shape
    filters, smallest_power, sum_an2, sum_ai_aj = _filter_bank(rows, cols)
    spectrum = sfft.fft2(stack)
    eo = sfft.ifft2(spectrum[:, None, None] * filters[None])  # (n, orientations, scales, rows, cols)
    even, odd = eo.real, eo.imag
    amplitude_all = np.abs(eo).sum(axis=(1, 2))
    smallest_e2 = even[:, :, 0] ** 2 + odd[:, :, 0] ** 2

    sum_even = even.sum(axis=2)
    sum_odd = odd.sum(axis=2)
    magnitude = np.sqrt(sum_even**2 + sum_odd**2)
    norm = magnitude + EPSILON
    mean_even = (sum_even / norm)[:, :, None]
    mean_odd = (sum_odd / norm)[:, :, None]
    # Σ_s A_s·(cos(φ_s − φ̄) − |sin(φ_s − φ̄)|) from dot and cross products with the mean phase vector (φ̄);
    # the dot products summed over scales reduce to |Σ_s EO_s|² / (|Σ_s EO_s| + ε).
    cross = np.abs(even * mean_odd - odd * mean_even).sum(axis=2)
    energy = magnitude**2 / norm - cross
    del eo, even, odd

    # Noise: |EO|² at the smallest scale is exponential (χ² with 2 dof) under Gaussian noise, mean = median / ln 2
    median_e2 = np.median(smallest_e2.reshape(n, N_ORIENTATIONS, -1), axis=2)
    noise_power = (median_e2 / math.log(2)) / smallest_power  # (n, orientations)
    noise_energy2 = 2 * noise_power * sum_an2 + 4 * noise_power * sum_ai_aj
    tau = np.sqrt(noise_energy2 / 2)  # Rayleigh parameter of the noise energy
    threshold = (tau * math.sqrt(math.pi / 2) + NOISE_K * math.sqrt(2 - math.pi / 2) * tau) / PC2_NOISE_RESCALE
    energy = np.maximum(energy - threshold[:, :, None, None], 0.0)

    energy_all = energy.sum(axis=1)
    pc = np.zeros_like(energy_all)
    np.divide(energy_all, amplitude_all, out=pc, where=amplitude_all > 0)
    pc[_is_constant(stack)] = 0.0
    return pc


# ----------------------------------------------------------------------------------------------------------------
# Validation


def _scale(data_range) -> float:
    try:
        value = float(data_range)
    except (TypeError, ValueError) as err:
        raise InputError(f"data_range must be a positive number, got {data_range!r}") from err
    if not math.isfinite(value) or value <= 0:
        raise InputError(f"data_range must be a positive finite number, got {data_range!r}")
    return 255.0 / value


def _pair(pred, ref, *, ndim: int) -> tuple[np.ndarray, np.ndarray]:
    try:
        pred = np.asarray(pred, dtype=np.float64)
        ref = np.asarray(ref, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise InputError(f"prediction and reference must be numeric arrays ({err})") from err
    if pred.shape != ref.shape:
        raise InputError(f"prediction and reference shapes differ: {pred.shape} vs {ref.shape}")
    if pred.ndim != ndim:
        raise InputError(f"expected {ndim}D arrays, got shape {pred.shape}")
    for name, array in (("prediction", pred), ("reference", ref)):
        if not np.isfinite(array).all():
            raise InputError(f"{name} contains non-finite values (NaN or inf)")
    return pred, ref
