"""Batched one-level orthonormal Haar wavelet transforms in 2D and 3D.

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

__all__ = ["haar_dwt", "haar_idwt", "haar_filters", "subband_names"]

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
