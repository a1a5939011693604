"""Wavelet transforms of channel-first images, as MONAI transforms.

Haar (2D and 3D, orthonormal, one level)
    :class:`HaarDWT` maps ``(C, *S)`` to ``(C * 2**d, *S / 2)`` with ``d = spatial_dims``; output channel
    ``c * 2**d + k`` is sub-band ``k`` of input channel ``c``, ``k`` in the key order of PyWavelets
    ``pywt.dwtn(x, "haar")`` (``aa, ad, da, dd`` in 2D; ``aaa, aad, ada, add, daa, dad, dda, ddd`` in 3D, the first
    letter belongs to the first spatial axis; :func:`medfusion.wavelets.subband_names`). :class:`HaarIDWT`
    inverts it exactly (to rounding). Used by cWDM (Friedrich et al., arXiv 2411.17203), which diffuses in the
    3D Haar domain. For images in [0, 1] the low-pass band lies in [0, 2**(d/2)] (``2√2`` in 3D) and the
    details in [-2**(d/2 - 1), 2**(d/2 - 1)] (``±√2`` in 3D).

Other wavelets (2D only, via pytorch-wavelets)
    :class:`WaveletDWT2D` / :class:`WaveletIDWT2D` use any PyWavelets filter bank (``db2``, ``sym4``, ...) with a
    boundary ``mode``. Layout ``(C, H, W) -> (C * 4, H', W')``, channel ``c * 4 + k`` with ``k = 0, 1, 2, 3`` =
    ``LL`` and then the three detail bands in the order pytorch-wavelets returns them. In PyWavelets terms
    (``cA, (cH, cV, cD) = pywt.dwt2(x, wave, mode)``) that is ``k = 0: cA, 1: cH, 2: cV, 3: cD``, i.e. the
    ``dwtn`` keys ``aa, da, ad, dd``: the two mixed bands come in the *opposite* order to :class:`HaarDWT`
    (``aa, ad, da, dd``). The size is ``H' = (H + L - 1) // 2`` for filter length ``L`` in the padded modes and
    ``ceil(H / 2)`` in ``"periodization"``, as in PyWavelets.

All classes accept numpy arrays and torch tensors (including MONAI ``MetaTensor``) without a batch dimension
and return the same kind with the same floating dtype. A ``MetaTensor`` keeps its meta data, with the affine
rescaled to the coarser (or finer) grid: coarse voxel ``i`` is centred on fine voxels ``2i, 2i + 1``.
"""

from __future__ import annotations


import numpy as np
import torch
from monai.config import KeysCollection, NdarrayOrTensor
from monai.data import MetaTensor
from monai.data.meta_obj import get_track_meta
from monai.transforms import Transform
from monai.utils import TransformBackends, convert_to_dst_type

from medfusion.wavelets import WAVELET_MODES, haar_dwt, haar_idwt, wavelet_dwt2d, wavelet_idwt2d

from ._dictionary import KeyWise

__all__ = [
    "HaarDWT",
    "HaarDWTd",
    "HaarIDWT",
    "HaarIDWTd",
    "WaveletDWT2D",
    "WaveletIDWT2D",
]


class HaarDWT(Transform):
    """One-level orthonormal Haar DWT of a channel-first image: ``(C, *S) -> (C * 2**d, *S / 2)``.

    Args:
        spatial_dims: 2 or 3.

    Raises:
        ValueError: (when called) the image is not ``(C, *S)`` with ``spatial_dims`` spatial axes, a spatial size
            is odd (pad first, e.g. ``monai.transforms.DivisiblePad(k=2)``), or the dtype is not floating point.

    Example:
        >>> HaarDWT(spatial_dims=3)(torch.rand(4, 224, 224, 160)).shape
        torch.Size([32, 112, 112, 80])
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, spatial_dims: int = 3) -> None:
        self.spatial_dims = _check_spatial_dims(spatial_dims)

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        x = _as_batch(img, self.spatial_dims)
        return _like(haar_dwt(x, self.spatial_dims)[0], img, self.spatial_dims, zoom=2.0)


class HaarIDWT(Transform):
    """Inverse of :class:`HaarDWT`: ``(C * 2**d, *S) -> (C, *2S)``.

    Args:
        spatial_dims: 2 or 3.

    Raises:
        ValueError: (when called) wrong number of dimensions, a channel count that is not a multiple of
            ``2**spatial_dims``, or a non-floating dtype.
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, spatial_dims: int = 3) -> None:
        self.spatial_dims = _check_spatial_dims(spatial_dims)

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        y = _as_batch(img, self.spatial_dims)
        return _like(haar_idwt(y, self.spatial_dims)[0], img, self.spatial_dims, zoom=0.5)


class WaveletDWT2D(Transform):
    """One-level 2D DWT with any PyWavelets filter bank, via pytorch-wavelets: ``(C, H, W) -> (C * 4, H', W')``.

    Channel ``c * 4 + k`` holds, for input channel ``c``: ``k = 0`` the approximation ``cA``, then ``cH``, ``cV``,
    ``cD`` of ``pywt.dwt2`` (``dwtn`` keys ``aa, da, ad, dd`` - note ``da`` before ``ad``, unlike :class:`HaarDWT`).
    Odd sizes are allowed (as in PyWavelets); :class:`WaveletIDWT2D` then returns one extra row/column.

    Args:
        wave: a PyWavelets wavelet name, e.g. ``"db2"``, ``"sym4"``, ``"bior2.2"``.
        mode: boundary handling, one of :data:`WAVELET_MODES`. ``"periodization"`` gives the orthonormal
            (non-redundant, ``ceil(H / 2)``) transform for orthogonal wavelets.

    Note:
        pytorch-wavelets stores its filters in single precision, so float64 results are accurate to about
        ``1e-7`` relative (not ``1e-15``). :func:`medfusion.wavelets.wavelet_dwt2d` does the work.
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, wave: str = "db2", mode: str = "zero") -> None:
        self.wave, self.mode = _check_wavelet(wave, mode)

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        y = wavelet_dwt2d(_as_batch(img, 2), self.wave, self.mode)
        return _like(y[0], img, 2, zoom=2.0)


class WaveletIDWT2D(Transform):
    """Inverse of :class:`WaveletDWT2D`: ``(C * 4, H', W') -> (C, 2H' - L + 2, 2W' - L + 2)`` (``2H'`` for
    ``"periodization"``), i.e. the input size, rounded up to even.

    Args:
        wave: the wavelet the coefficients were computed with.
        mode: the boundary mode they were computed with.
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, wave: str = "db2", mode: str = "zero") -> None:
        self.wave, self.mode = _check_wavelet(wave, mode)

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        x = wavelet_idwt2d(_as_batch(img, 2), self.wave, self.mode)
        return _like(x[0], img, 2, zoom=0.5)


class HaarDWTd(KeyWise):
    """Dictionary wrapper of :class:`HaarDWT`: transforms each of ``keys`` in place of its value.

    Args:
        keys: keys of the images to transform.
        spatial_dims: 2 or 3.
        allow_missing_keys: skip keys that are absent instead of raising ``KeyError``.
    """

    backend = HaarDWT.backend

    def __init__(self, keys: KeysCollection, spatial_dims: int = 3, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, HaarDWT(spatial_dims), allow_missing_keys)


class HaarIDWTd(KeyWise):
    """Dictionary wrapper of :class:`HaarIDWT`.

    Args:
        keys: keys of the coefficient images to transform back.
        spatial_dims: 2 or 3.
        allow_missing_keys: skip keys that are absent instead of raising ``KeyError``.
    """

    backend = HaarIDWT.backend

    def __init__(self, keys: KeysCollection, spatial_dims: int = 3, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, HaarIDWT(spatial_dims), allow_missing_keys)


def _check_spatial_dims(spatial_dims: int) -> int:
    if spatial_dims not in (2, 3):
        raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims!r}")
    return spatial_dims


def _check_wavelet(wave: str, mode: str) -> tuple[str, str]:
    import pywt

    if mode not in WAVELET_MODES:
        raise ValueError(f"mode must be one of {WAVELET_MODES}, got {mode!r}")
    if wave not in pywt.wavelist(kind="discrete"):
        raise ValueError(f"unknown discrete wavelet {wave!r}; see pywt.wavelist(kind='discrete')")
    return wave, mode


def _as_batch(img: NdarrayOrTensor, spatial_dims: int) -> torch.Tensor:
    """A plain ``(1, C, *S)`` tensor view of a channel-first image (no copy where possible)."""
    if img.ndim != spatial_dims + 1:
        axes = ("H", "W", "D")[:spatial_dims]
        raise ValueError(
            f"expected a channel-first image (C, {', '.join(axes)}) for spatial_dims={spatial_dims}, "
            f"got shape {tuple(img.shape)}"
        )
    if isinstance(img, MetaTensor):
        x = img.as_tensor()
    elif isinstance(img, np.ndarray):
        x = torch.from_numpy(np.ascontiguousarray(img))
    else:
        x = torch.as_tensor(img)
    return x.unsqueeze(0)


def _like(out: torch.Tensor, img: NdarrayOrTensor, spatial_dims: int, zoom: float) -> NdarrayOrTensor:
    """``out`` as the same kind of object as ``img``; a ``MetaTensor`` gets ``img``'s meta with the affine of a
    grid whose voxels are ``zoom`` times as large (2 for the forward transform, 0.5 for the inverse)."""
    if isinstance(img, np.ndarray):
        return out.numpy()
    if isinstance(img, MetaTensor) and get_track_meta():
        result: MetaTensor = convert_to_dst_type(out, img)[0]
        result.affine = _zoom_affine(img.affine, spatial_dims, zoom)
        return result
    return out


def _zoom_affine(affine: torch.Tensor, spatial_dims: int, zoom: float) -> torch.Tensor:
    """Affine of the grid whose voxel ``u`` sits at old-grid index ``zoom * u + (zoom - 1) / 2``.

    With ``zoom = 2`` coarse voxel ``u`` is centred between fine voxels ``2u`` and ``2u + 1``; ``zoom = 0.5`` is
    the exact inverse (the factors are powers of two, so a round trip restores the affine bit for bit).
    """
    new = affine.clone()
    n = min(spatial_dims, affine.shape[-1] - 1)
    new[..., :, -1] += affine[..., :, :n].sum(-1) * ((zoom - 1) / 2)
    new[..., :, :n] *= zoom
    return new
