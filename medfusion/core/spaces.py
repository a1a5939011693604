"""Image spaces a diffusion model can work in: the image itself, or a one-level wavelet transform of it.

A space maps a batch of images ``(B, C, *S)`` to the tensor the network denoises and back:

- :class:`IdentitySpace` — pixels/voxels as they are (seg2med's 2D slice model, the PET/CT mask model);
- :class:`HaarSpace` — one-level orthonormal Haar DWT in 2D or 3D, ``(B, C·2^d, *S/2)``, with every image's
  low-pass channel (``LL``/``LLL``) divided by ``lll_scale`` (cWDM, Friedrich et al., arXiv 2411.17203: 3;
  ``2^(d/2)`` maps an image in [0, 1] exactly onto [0, 1]);
- :class:`WaveletSpace2D` — one-level 2D DWT with any orthogonal PyWavelets filter bank (``db2``, ``sym4``, ...)
  through pytorch-wavelets in ``"periodization"`` mode, which keeps the transform orthonormal and the size
  exactly ``S/2`` (histology tiles, 2D slices).

Every space also clips a prediction ``x̂₀`` **in image space** (decode → clamp → encode): a coefficient-wise clip
(MONAI's ``clip_sample``) does not keep a wavelet-space sample a valid image.  ``divisor`` is what each spatial
size must be a multiple of; ``config`` rebuilds the space (:func:`make_space`), so checkpoints can store it.
"""

from __future__ import annotations

import torch

from ..wavelets import haar_dwt, haar_idwt, wavelet_dwt2d, wavelet_idwt2d

__all__ = ["ImageSpace", "IdentitySpace", "HaarSpace", "WaveletSpace2D", "make_space"]


class ImageSpace:
    """The identity space; base class of the others.

    Args:
        spatial_dims: 2 or 3.
    """

    kind = "identity"
    #: image-space sizes must be multiples of this
    divisor = 1

    def __init__(self, spatial_dims: int = 3) -> None:
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims!r}")
        self.spatial_dims = spatial_dims

    @property
    def config(self) -> dict:
        """Keyword arguments that rebuild this space with :func:`make_space`."""
        return {"kind": self.kind, "spatial_dims": self.spatial_dims}

    def channels(self, image_channels: int) -> int:
        """Channels of the encoded tensor for ``image_channels`` image channels."""
        return image_channels

    def encode(self, image: torch.Tensor) -> torch.Tensor:
        """Images ``(B, C, *S)`` → the tensor the network sees."""
        return image

    def decode(self, coeffs: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`encode`."""
        return coeffs

    def clip(self, coeffs: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
        """Clip an encoded ``x̂₀`` to ``[lo, hi]`` in image space (for the identity space: a plain clamp)."""
        return self.encode(self.decode(coeffs).clamp(lo, hi))


IdentitySpace = ImageSpace


class HaarSpace(ImageSpace):
    """One-level orthonormal Haar wavelet space, low-pass channels divided by ``lll_scale``.

    Channel ``c·2^d + k`` of the encoded tensor is sub-band ``k`` (PyWavelets ``dwtn`` key order,
    :func:`medfusion.wavelets.subband_names`) of image channel ``c``.

    Args:
        spatial_dims: 2 or 3.
        lll_scale: divisor of each image's low-pass channel (3 in cWDM).
    """

    kind = "haar"
    divisor = 2

    def __init__(self, spatial_dims: int = 3, lll_scale: float = 3.0) -> None:
        super().__init__(spatial_dims)
        if not lll_scale > 0:
            raise ValueError(f"lll_scale must be positive, got {lll_scale}")
        self.lll_scale = float(lll_scale)

    @property
    def config(self) -> dict:
        return {**super().config, "lll_scale": self.lll_scale}

    def channels(self, image_channels: int) -> int:
        return image_channels * 2**self.spatial_dims

    def _weights(self, like: torch.Tensor) -> torch.Tensor:
        w = torch.ones(like.shape[1], dtype=like.dtype, device=like.device)
        w[:: 2**self.spatial_dims] = 1.0 / self.lll_scale
        return w.reshape((1, -1) + (1,) * self.spatial_dims)

    def encode(self, image: torch.Tensor) -> torch.Tensor:
        w = haar_dwt(image, self.spatial_dims)
        return w * self._weights(w)

    def decode(self, coeffs: torch.Tensor) -> torch.Tensor:
        return haar_idwt(coeffs / self._weights(coeffs), self.spatial_dims)


class WaveletSpace2D(ImageSpace):
    """One-level 2D wavelet space with an orthogonal PyWavelets filter bank, via pytorch-wavelets.

    ``(B, C, H, W) → (B, 4C, H/2, W/2)``; channel ``4c + k``: ``k = 0`` the approximation (divided by
    ``ll_scale``), then pytorch-wavelets' three detail bands (PyWavelets ``cH, cV, cD``).  ``"periodization"``
    boundary handling keeps the transform orthonormal, so N(0, I) noise stays N(0, I) in either space.

    Args:
        wave: an orthogonal discrete wavelet (``haar``, ``db2``, ``sym4``, ``coif1``, ...).
        ll_scale: divisor of the approximation band (2 maps an image in [0, 1] onto [0, 1] for Haar).
    """

    kind = "wavelet2d"
    divisor = 2

    def __init__(self, wave: str = "db2", ll_scale: float = 2.0) -> None:
        import pywt

        super().__init__(2)
        if wave not in pywt.wavelist(kind="discrete") or not pywt.Wavelet(wave).orthogonal:
            raise ValueError(f"{wave!r} is not an orthogonal discrete wavelet (see pywt.wavelist(kind='discrete'))")
        if not ll_scale > 0:
            raise ValueError(f"ll_scale must be positive, got {ll_scale}")
        self.wave, self.ll_scale = wave, float(ll_scale)

    @property
    def config(self) -> dict:
        return {"kind": self.kind, "wave": self.wave, "ll_scale": self.ll_scale}

    def channels(self, image_channels: int) -> int:
        return 4 * image_channels

    def encode(self, image: torch.Tensor) -> torch.Tensor:
        if image.ndim != 4 or image.shape[-1] % 2 or image.shape[-2] % 2:
            raise ValueError(f"expected (B, C, H, W) with even H and W, got {tuple(image.shape)}")
        y = wavelet_dwt2d(image, self.wave, "periodization").unflatten(1, (image.shape[1], 4))
        return torch.cat([y[:, :, :1] / self.ll_scale, y[:, :, 1:]], dim=2).flatten(1, 2)

    def decode(self, coeffs: torch.Tensor) -> torch.Tensor:
        if coeffs.ndim != 4 or coeffs.shape[1] % 4:
            raise ValueError(f"expected (B, 4C, H, W) coefficients, got {tuple(coeffs.shape)}")
        bands = coeffs.unflatten(1, (coeffs.shape[1] // 4, 4))
        bands = torch.cat([bands[:, :, :1] * self.ll_scale, bands[:, :, 1:]], dim=2)
        return wavelet_idwt2d(bands.flatten(1, 2), self.wave, "periodization")


_SPACES = {cls.kind: cls for cls in (ImageSpace, HaarSpace, WaveletSpace2D)}


def make_space(kind: str = "identity", **kwargs) -> ImageSpace:
    """The space described by a :attr:`ImageSpace.config` dictionary, e.g. ``make_space("haar", spatial_dims=3)``."""
    if kind not in _SPACES:
        raise ValueError(f"unknown image space {kind!r}; choose one of {', '.join(_SPACES)}")
    return _SPACES[kind](**kwargs)
