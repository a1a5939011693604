"""2D FID features (seg2med): ImageNet Inception-v3 (torchvision) on axial slices, and on 8-bit RGB images.

Holds :class:`Inception2DExtractor`, its preprocessing (:func:`inception_preprocess` for slices of any
intensity unit, :func:`inception_preprocess_rgb` for RGB images) and the ImageNet RGB statistics. The network
needs torchvision, the ``fid`` extra. The registry and the FID entry points are in
:mod:`medfusion.metrics.features`.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from .features_base import ExtractorInfo, FeatureExtractor, _empty, _first_line, _load_strict, _slices, _volume

__all__ = ["Inception2DExtractor", "inception_preprocess", "inception_preprocess_rgb", "IMAGENET_RGB_MEAN",
           "IMAGENET_RGB_STD"]

#: ImageNet channel statistics (RGB order) used by torchvision's ImageNet models.
IMAGENET_RGB_MEAN = (0.485, 0.456, 0.406)
IMAGENET_RGB_STD = (0.229, 0.224, 0.225)

_INCEPTION_SOURCE = (
    "torchvision's ImageNet model weights (Inception_V3_Weights.IMAGENET1K_V1), "
    "https://download.pytorch.org/models/inception_v3_google-0cc3c7bd.pth"
)


def inception_preprocess(slices: np.ndarray, size: int = 299):
    """Slices → Inception-v3 input: each slice min-max scaled to [0, 1] (a constant slice becomes 0), repeated
    to 3 channels, resized to ``size``×``size`` (bilinear, ``align_corners=False``, no antialiasing) and
    normalised with the ImageNet RGB mean/std, as torchvision's ImageNet models expect.

    Args:
        slices: (N, H, W) (or one (H, W)) array of intensities in any unit.

    Returns:
        float32 ``torch.Tensor`` of shape (N, 3, size, size).
    """
    import torch

    s = _slices(slices)
    lo = s.min(axis=(1, 2), keepdims=True)
    span = s.max(axis=(1, 2), keepdims=True) - lo
    scaled = np.where(span > 0, (s - lo) / np.where(span > 0, span, 1.0), 0.0)
    x = torch.from_numpy(scaled.astype(np.float32))[:, None].repeat(1, 3, 1, 1)
    return _resize_normalise(x, size)


def inception_preprocess_rgb(images: np.ndarray, size: int = 299):
    """8-bit RGB images → Inception-v3 input: divided by 255 (no per-image min-max: colour is the signal, as in
    the virtual-staining FIDs), resized to ``size``×``size`` (bilinear) and ImageNet-normalised.

    Args:
        images: (N, H, W, 3) (or one (H, W, 3)) uint8 array.

    Returns:
        float32 ``torch.Tensor`` of shape (N, 3, size, size).
    """
    import torch

    a = np.asarray(images)
    if a.ndim == 3:
        a = a[None]
    if a.ndim != 4 or a.shape[-1] != 3 or a.dtype != np.uint8:
        raise InputError(f"expected 8-bit RGB images of shape (N, H, W, 3), got {a.dtype} {a.shape}")
    x = torch.from_numpy(a.astype(np.float32) / 255.0).permute(0, 3, 1, 2)
    return _resize_normalise(x, size)


def _resize_normalise(x, size: int):
    """(N, 3, H, W) float32 tensor in [0, 1] → resized to ``size``×``size`` (bilinear, ``align_corners=False``)
    and normalised with the ImageNet RGB mean/std."""
    import torch
    import torch.nn.functional as F

    x = F.interpolate(x, size=(int(size), int(size)), mode="bilinear", align_corners=False)
    mean = torch.tensor(IMAGENET_RGB_MEAN, dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_RGB_STD, dtype=torch.float32).view(1, 3, 1, 1)
    return (x - mean) / std


class Inception2DExtractor(FeatureExtractor):
    """2D FID features (seg2med protocol): ImageNet Inception-v3 pool features (2048-d) of every axial slice.

    Protocol: slices ``volume[:, :, k]`` along the last axis, each min-max scaled to [0, 1], repeated to 3
    channels, resized to 299×299 (bilinear) and ImageNet-normalised (:func:`inception_preprocess`); the
    network is torchvision's ``inception_v3`` (``aux_logits=False``, ``transform_input=True`` as torchvision
    sets for its ImageNet weights, ``fc`` replaced by identity), so the features are the 2048-d global average
    pool before the classifier. ``__call__`` returns (Z, 2048) float64.

    Weights: torchvision's ImageNet Inception-v3 state dict ``inception_v3_google-0cc3c7bd.pth`` (the file
    behind ``Inception_V3_Weights.IMAGENET1K_V1``); its ``AuxLogits.*`` and ``fc.*`` tensors are not used.
    These are *not* the TensorFlow FID Inception weights of pytorch-fid/clean-fid
    (``pt_inception-2015-12-05``), so values differ from those tools'.

    The architecture needs torchvision, which is not a core dependency (installing it replaces a CPU torch
    with a CUDA build): install the ``fid`` extra, ``pip install "medfusion[fid]"``.

    Args:
        weights: path of the state dict.
        device: torch device for the network.
        batch_size: slices per forward pass.
    """

    name = "inception2d"
    planes = ("xy",)

    def _before_loading(self) -> None:
        self._inception_v3 = _torchvision_inception_v3()

    def _build(self, state: dict):
        import torch

        state = {k: v for k, v in state.items() if not k.startswith(("AuxLogits.", "fc."))}
        def build():
            net = self._inception_v3(weights=None, aux_logits=False, init_weights=False, transform_input=True)
            net.fc = torch.nn.Identity()
            return net

        net = _empty(build)
        _load_strict(net, state, self.weights, "torchvision Inception-v3 (without AuxLogits and fc)")
        return net

    def __call__(self, volume: np.ndarray) -> np.ndarray:
        """(X, Y, Z) volume → (Z, 2048) float64 pool features, one row per axial slice."""
        vol = _volume(volume)
        return self._forward_batches(np.moveaxis(vol, -1, 0), inception_preprocess)

    def rgb(self, images: np.ndarray) -> np.ndarray:
        """(N, H, W, 3) uint8 RGB images (e.g. virtual stainings) → (N, 2048) float64 pool features
        (:func:`inception_preprocess_rgb`)."""
        a = np.asarray(images)
        return self._forward_batches(a[None] if a.ndim == 3 else a, inception_preprocess_rgb)


Inception2DExtractor._info = ExtractorInfo(
    "inception2d", "2D FID (seg2med)", "inception_v3_google-0cc3c7bd.pth", _INCEPTION_SOURCE, Inception2DExtractor,
)


def _torchvision_inception_v3():
    try:
        from torchvision.models import inception_v3
    except ImportError as e:
        raise InputError(
            'the 2D FID (Inception-v3) needs torchvision: install the `fid` extra, pip install "medfusion[fid]" '
            "(it installs torchvision, and with it a CUDA torch build, so it is kept out of the core)"
        ) from e
    except Exception as e:  # e.g. a torchvision built for another torch
        raise InputError(f"torchvision could not be imported: {_first_line(e)}") from e
    return inception_v3
