"""2.5D FID features (MAISI): RadImageNet ResNet-50 on the slices of all three planes of a volume.

Holds :class:`RadImageNet25DExtractor`, its preprocessing (:func:`radimagenet_preprocess`: a CT window, BGR
channels, ImageNet means subtracted) and the MONAI 2D ResNet-50 trunk it runs, adapted to the Keras layout of
``RadImageNet-ResNet50_notop.pth`` or kept in torchvision's layout for RadImageNet's ``ResNet50.pt``. The
registry and the FID entry points (:func:`~medfusion.metrics.features.fid_25d`) are in
:mod:`medfusion.metrics.features`.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

from ..errors import InputError
from .features_base import ExtractorInfo, FeatureExtractor, _empty, _load_strict, _slices, _volume

__all__ = ["RadImageNet25DExtractor", "radimagenet_preprocess", "IMAGENET_BGR_MEAN"]

#: The ImageNet channel means in BGR order, subtracted (without division by a std) before the RadImageNet
#: ResNet-50.
IMAGENET_BGR_MEAN = (0.406, 0.456, 0.485)

_RADIMAGENET_PLANES = ("xy", "yz", "zx")

_RADIMAGENET_SOURCE = (
    "RadImageNet's PyTorch ResNet-50, distributed by the RadImageNet project (radimagenet.com; its PyTorch "
    "release has ResNet50.pt) and, as RadImageNet-ResNet50_notop.pth, as the torch-hub model "
    "Warvito/radimagenet-models used by MONAI's generative tutorials and MAISI; download it yourself"
)


def radimagenet_preprocess(slices: np.ndarray, window: tuple[float, float] = (-1000.0, 1000.0)):
    """Slices → RadImageNet ResNet-50 input (MAISI protocol).

    Intensities (CT: HU) are clipped to ``window`` and mapped linearly to [0, 1]; the slice is repeated to 3
    channels in BGR order and the ImageNet means (BGR: 0.406, 0.456, 0.485) are subtracted per channel, with
    no division by a standard deviation. No resizing. (For a grey slice the channel order only decides which
    mean is subtracted from which channel.)

    MAISI's script clips to [−1000, 1000] and then min-max scales the clipped volume; that equals this
    fixed window whenever the volume reaches both ends of the window (air and dense bone in CT).

    Args:
        slices: (N, H, W) (or one (H, W)) array.
        window: ``(low, high)`` intensity window, low < high.

    Returns:
        float32 ``torch.Tensor`` of shape (N, 3, H, W); channel c holds ``scaled − IMAGENET_BGR_MEAN[c]``.
    """
    import torch

    lo, hi = _window(window)
    s = _slices(slices)
    scaled = (np.clip(s, lo, hi) - lo) / (hi - lo)
    x = np.stack([scaled - m for m in IMAGENET_BGR_MEAN], axis=1)
    return torch.from_numpy(x.astype(np.float32))


class RadImageNet25DExtractor(FeatureExtractor):
    """2.5D FID features (MAISI protocol): RadImageNet ResNet-50, 2048-d global-average-pooled features of
    the 2D slices along each of the three axes.

    Planes of an (X, Y, Z) volume: ``"xy"`` = ``volume[:, :, k]`` (Z slices of X×Y), ``"yz"`` =
    ``volume[k, :, :]`` (X slices of Y×Z), ``"zx"`` = ``volume[:, k, :]`` (Y slices of X×Z), as in MAISI's
    ``compute_fid_2-5d_ct.py`` (which feeds RAS-oriented volumes, optionally resampled to 1 mm, at native
    size; give all volumes one orientation and spacing). Preprocessing: :func:`radimagenet_preprocess`.

    **Return type:** ``__call__(volume)`` returns a dict ``{"xy": (Z, 2048), "yz": (X, 2048), "zx": (Y, 2048)}``
    of float64 arrays (restricted to ``planes`` if given). The protocol computes one FID per plane over all
    slices of all volumes and reports their mean: :func:`~medfusion.metrics.features.fid_25d` /
    :func:`~medfusion.metrics.features.fid_from_volumes`.

    Network: MONAI's ``monai.networks.nets.ResNet`` (2D, bottleneck blocks, layers [3, 4, 6, 3], 7×7 stride-2
    stem, no classifier). Accepted weights files (detected from their keys):

    * ``RadImageNet-ResNet50_notop.pth``, the PyTorch conversion of RadImageNet's Keras ResNet-50 that MAISI
      and MONAI's generative-model tutorials load through torch hub (``Warvito/radimagenet-models``). It is a
      Keras-style ResNet-50 (v1): every convolution has a bias, a block's stride sits on its first 1×1
      convolution, batch-norm ε = 1.001e-5. The MONAI network is adapted to that layout (``layout="keras"``).
      MAISI's published 2.5D FIDs were computed with this file.
    * a torchvision-layout ResNet-50 state dict (``conv1``/``bn1``/``layer1``–``layer4``, optional ``fc``,
      which is dropped; ``layout="torchvision"``), e.g. RadImageNet's own PyTorch ``ResNet50.pt``, whose
      ``backbone.0``/``backbone.1``/``backbone.4``–``backbone.7`` keys are renamed to those names.

    Args:
        weights: path of the state dict.
        device: torch device for the network.
        batch_size: slices per forward pass.
        window: CT window ``(low, high)`` mapped to [0, 1]; default [−1000, 1000] HU.
        planes: subset of ``("xy", "yz", "zx")`` to compute (default all three).
    """

    name = "radimagenet2.5d"
    planes = _RADIMAGENET_PLANES

    def __init__(
        self,
        weights,
        *,
        device="cpu",
        batch_size: int = 32,
        window: tuple[float, float] = (-1000.0, 1000.0),
        planes: Iterable[str] = _RADIMAGENET_PLANES,
    ) -> None:
        self.window = _window(window)
        planes = tuple(planes)
        unknown = [p for p in planes if p not in _RADIMAGENET_PLANES]
        if unknown or not planes or len(set(planes)) != len(planes):
            raise InputError(f"planes must be distinct names from {_RADIMAGENET_PLANES}, got {planes}")
        self.planes = planes
        self.layout = ""
        super().__init__(weights, device=device, batch_size=batch_size)

    def _build(self, state: dict):
        state, self.layout = _radimagenet_state(state)
        net = _empty(lambda: _monai_resnet50_2d(keras=self.layout == "keras"))
        _load_strict(net, state, self.weights, f"RadImageNet ResNet-50 ({self.layout} layout, no classifier)")
        return net

    def preprocess(self, slices: np.ndarray):
        """:func:`radimagenet_preprocess` with this extractor's window."""
        return radimagenet_preprocess(slices, self.window)

    def __call__(self, volume: np.ndarray) -> dict[str, np.ndarray]:
        """(X, Y, Z) volume → ``{plane: (n_slices, 2048) float64}`` for each plane in ``self.planes``."""
        vol = _volume(volume)
        stacks = {"xy": np.moveaxis(vol, 2, 0), "yz": vol, "zx": np.moveaxis(vol, 1, 0)}
        return {p: self._forward_batches(stacks[p], self.preprocess) for p in self.planes}

    def extract_planes(self, volume: np.ndarray) -> dict[str, np.ndarray]:
        return self(volume)


RadImageNet25DExtractor._info = ExtractorInfo(
    "radimagenet2.5d", "2.5D FID (MAISI)", "RadImageNet-ResNet50_notop.pth (or RadImageNet's ResNet50.pt)",
    _RADIMAGENET_SOURCE, RadImageNet25DExtractor,
)


def _radimagenet_state(state: dict) -> tuple[dict, str]:
    """Rename a RadImageNet ResNet-50 state dict to torchvision/MONAI key names; detect its layout."""
    if any(k.startswith("backbone.") for k in state):
        # RadImageNet's PyTorch release: nn.Sequential(*list(torchvision resnet50.children())[:-1]) under
        # "backbone": children 0, 1, 4..7 are conv1, bn1, layer1..layer4 (2, 3, 8 have no parameters).
        names = {"0": "conv1", "1": "bn1", "4": "layer1", "5": "layer2", "6": "layer3", "7": "layer4"}
        renamed = {}
        for k, v in state.items():
            parts = k.split(".")
            if parts[0] == "backbone" and len(parts) > 2 and parts[1] in names:
                k = ".".join([names[parts[1]]] + parts[2:])
            renamed[k] = v
        state = renamed
    state = {k: v for k, v in state.items() if k not in ("fc.weight", "fc.bias")}
    layout = "keras" if "conv1.bias" in state else "torchvision"
    return state, layout


def _monai_resnet50_2d(*, keras: bool):
    """MONAI 2D ResNet-50 trunk; with ``keras=True`` adapted to the Keras ResNet-50 (v1) layout."""
    import torch.nn as nn
    from monai.networks.nets import ResNet

    net = ResNet(
        block="bottleneck", layers=[3, 4, 6, 3], block_inplanes=[64, 128, 256, 512], spatial_dims=2,
        n_input_channels=3, conv1_t_size=7, conv1_t_stride=2, shortcut_type="B", feed_forward=False,
        bias_downsample=keras,
    )
    if keras:
        net.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=True)
        for layer in (net.layer1, net.layer2, net.layer3, net.layer4):
            for block in layer:
                stride = block.conv2.stride
                c_in, width, c_out = block.conv1.in_channels, block.conv1.out_channels, block.conv3.out_channels
                block.conv1 = nn.Conv2d(c_in, width, kernel_size=1, stride=stride, bias=True)
                block.conv2 = nn.Conv2d(width, width, kernel_size=3, stride=1, padding=1, bias=True)
                block.conv3 = nn.Conv2d(width, c_out, kernel_size=1, bias=True)
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.eps = 1.001e-5  # Keras BatchNormalization default
    return net


def _window(window) -> tuple[float, float]:
    try:
        lo, hi = (float(w) for w in window)
    except (TypeError, ValueError) as e:
        raise InputError(f"window must be (low, high), got {window!r}") from e
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        raise InputError(f"window must be finite with low < high, got {window!r}")
    return lo, hi

