"""Batched one-level wavelet transforms: medfusion's one wavelet module.

- :func:`haar_dwt` / :func:`haar_idwt`: orthonormal Haar in 2D and 3D, our own strided convolutions (below);
- :func:`wavelet_dwt2d` / :func:`wavelet_idwt2d`: 2D with any PyWavelets filter bank through pytorch-wavelets,
  wrapped here once (its import workaround, :func:`medfusion.utils.compat.import_pytorch_wavelets`, and its modules
  cached per wavelet, mode, device and dtype); the MONAI transforms of :mod:`medfusion.transforms.wavelet` and the
  diffusion spaces of :mod:`medfusion.core.spaces` call these.

Haar.
The forward transform maps ``(B, C, *S)`` to ``(B, C * 2**d, *S / 2)``, ``d = spatial_dims``.  Output channel
``c * 2**d + k`` holds sub-band ``k`` of input channel ``c``; ``k`` follows the key order of PyWavelets
``pywt.dwtn(x, "haar")`` (``aa, ad, da, dd`` in 2D; ``aaa, aad, ..., ddd`` in 3D; the first letter belongs to
the first spatial axis, ``a`` = low pass, ``d`` = high pass).  For each block of ``2**d`` voxels::

    band[pqr] = 2**(-d/2) * sum_{a,b,c in {0,1}} s_p(a) s_q(b) s_r(c) x[2i+a, 2j+b, 2k+c]

with ``s_a = (1, 1)`` and ``s_d = (1, -1)``.  The transform is orthonormal, so the inverse is its transpose and
reconstruction is exact (to rounding) for even sizes.  Both directions are one strided (transposed) convolution
with the ``2**d`` fixed :func:`haar_filters` kernels (``groups = C``): a single kernel call on CPU and GPU, and
differentiable through PyTorch's own convolution gradients.  ``benchmarks/speed/bench_wavelets.py`` times it against
copying the same bytes and against other formulations (reshape + matmul, per-axis 1D transforms).
"""

from __future__ import annotations

import functools
import itertools
import math

import torch
import torch.nn.functional as F

__all__ = ["haar_dwt", "haar_idwt", "haar_filters", "subband_names", "wavelet_dwt2d", "wavelet_idwt2d",
           "WAVELET_MODES"]

#: Boundary modes in which pytorch-wavelets matches ``pywt.dwt2`` / ``pywt.idwt2`` (see the tests; the other names
#: it accepts, ``constant`` and ``replicate``, fail). Caveats, for images shorter than the filter along an axis:
#: ``"reflect"`` raises, and ``"periodization"`` can wrap the signal differently from PyWavelets.
WAVELET_MODES = ("zero", "symmetric", "periodic", "reflect", "periodization")

def subband_names(spatial_dims: int) -> list[str]:
    """Sub-band names in channel order, e.g. ``['aaa', 'aad', ..., 'ddd']`` for 3D (PyWavelets keys)."""
    _check_dims(spatial_dims)
    return ["".join(p) for p in itertools.product("ad", repeat=spatial_dims)]


def haar_filters(spatial_dims: int, dtype: torch.dtype = torch.float32, device=None) -> torch.Tensor:
    """The ``2**d`` Haar analysis kernels as a tensor of shape ``(2**d, 1, 2, ..., 2)``.

    ``conv3d(x.reshape(B * C, 1, *S), haar_filters(3), stride=2)`` is the 3D transform with the sub-band in the
    channel dimension (and ``conv_transpose3d`` with the same kernels its inverse).
    """
    _check_dims(spatial_dims)
    low = torch.tensor([1.0, 1.0], dtype=torch.float64)
    high = torch.tensor([1.0, -1.0], dtype=torch.float64)
    kernels = []
    for bands in itertools.product((low, high), repeat=spatial_dims):
        k = bands[0]
        for b in bands[1:]:
            k = torch.tensordot(k, b, dims=0)  # outer product: first band -> first axis
        kernels.append(k)
    w = torch.stack(kernels) / math.sqrt(2.0**spatial_dims)
    return w.unsqueeze(1).to(dtype=dtype, device=device)


def haar_dwt(x: torch.Tensor, spatial_dims: int) -> torch.Tensor:
    """One-level orthonormal Haar DWT of a batch ``(B, C, *S)`` → ``(B, C * 2**d, *S/2)``.

    Raises ``ValueError`` for a wrong number of dimensions, odd spatial sizes or a non-floating dtype.
    """
    _check_input(x, spatial_dims, inverse=False)
    conv = F.conv2d if spatial_dims == 2 else F.conv3d
    c = x.shape[1]
    return conv(x, _grouped_filters(spatial_dims, c, x.dtype, x.device), stride=2, groups=c)


def haar_idwt(y: torch.Tensor, spatial_dims: int) -> torch.Tensor:
    """Inverse of :func:`haar_dwt`: ``(B, C * 2**d, *S)`` → ``(B, C, *2S)``."""
    _check_input(y, spatial_dims, inverse=True)
    conv_t = F.conv_transpose2d if spatial_dims == 2 else F.conv_transpose3d
    c = y.shape[1] // 2**spatial_dims
    return conv_t(y, _grouped_filters(spatial_dims, c, y.dtype, y.device), stride=2, groups=c)


@functools.lru_cache(maxsize=32)
def _grouped_filters(d: int, channels: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """:func:`haar_filters` repeated for ``channels`` groups (cached: read-only, a few hundred bytes)."""
    return haar_filters(d, dtype, device).repeat(channels, *(1,) * (d + 1))


def wavelet_dwt2d(x: torch.Tensor, wave: str = "db2", mode: str = "zero") -> torch.Tensor:
    """One-level 2D DWT of a batch ``(B, C, H, W)`` with a PyWavelets filter bank → ``(B, 4C, H', W')``.

    Channel ``4c + k`` of input channel ``c``: ``k = 0`` the approximation, then pytorch-wavelets' three detail
    bands — PyWavelets' ``cA, cH, cV, cD`` of ``pywt.dwt2`` (``dwtn`` keys ``aa, da, ad, dd``: the mixed bands in
    the opposite order to :func:`haar_dwt`).  ``H' = (H + L − 1) // 2`` for filter length ``L`` in the padded
    modes, ``ceil(H / 2)`` in ``"periodization"`` (orthonormal for orthogonal wavelets).  pytorch-wavelets keeps
    its filters in single precision: float64 results are accurate to about 1e-7 relative."""
    low, (high,) = _ptw_module("forward", wave, mode, x.device, x.dtype)(x)  # (B, C, H', W'), (B, C, 3, H', W')
    return torch.cat([low.unsqueeze(2), high], dim=2).flatten(1, 2)


def wavelet_idwt2d(y: torch.Tensor, wave: str = "db2", mode: str = "zero") -> torch.Tensor:
    """Inverse of :func:`wavelet_dwt2d`: ``(B, 4C, H', W')`` → ``(B, C, H, W)`` (the input size rounded up to
    even; ``2H'`` in ``"periodization"``)."""
    if y.ndim != 4 or y.shape[1] % 4:
        raise ValueError(f"the inverse 2D DWT needs (B, 4C, H, W) coefficients, a multiple of 4 channels; got "
                         f"{tuple(y.shape)}")
    bands = y.unflatten(1, (y.shape[1] // 4, 4))  # (B, C, 4, H', W')
    return _ptw_module("inverse", wave, mode, y.device, y.dtype)((bands[:, :, 0], [bands[:, :, 1:]]))


@functools.lru_cache(maxsize=32)
def _ptw_module(which: str, wave: str, mode: str, device: torch.device, dtype: torch.dtype) -> torch.nn.Module:
    """pytorch-wavelets' ``DWTForward(J=1)`` or ``DWTInverse`` (cached: fixed filters, no state)."""
    from .utils.compat import import_pytorch_wavelets

    if mode not in WAVELET_MODES:
        raise ValueError(f"mode must be one of {WAVELET_MODES}, got {mode!r}")
    ptw = import_pytorch_wavelets()
    module = ptw.DWTForward(J=1, wave=wave, mode=mode) if which == "forward" else ptw.DWTInverse(wave=wave, mode=mode)
    return module.to(device, dtype)


def _check_dims(spatial_dims: int) -> None:
    if spatial_dims not in (2, 3):
        raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims!r}")


def _check_input(x: torch.Tensor, spatial_dims: int, inverse: bool) -> None:
    _check_dims(spatial_dims)
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"expected a torch.Tensor, got {type(x).__name__}")
    if x.ndim != spatial_dims + 2:
        raise ValueError(
            f"expected a batch of shape (B, C, {', '.join('S' * spatial_dims)}) for spatial_dims={spatial_dims}, "
            f"got shape {tuple(x.shape)}"
        )
    if not x.is_floating_point():
        raise ValueError(f"Haar transforms need a floating-point tensor, got {x.dtype}")
    if inverse:
        n = 2**spatial_dims
        if x.shape[1] % n:
            raise ValueError(f"inverse Haar DWT needs a multiple of {n} channels, got {x.shape[1]}")
    else:
        odd = [s for s in x.shape[2:] if s % 2]
        if odd:
            raise ValueError(
                f"Haar DWT needs even spatial sizes, got {tuple(x.shape[2:])}; pad first "
                "(e.g. monai.transforms.DivisiblePad(k=2))"
            )
