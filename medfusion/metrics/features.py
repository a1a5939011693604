"""Feature networks for FID, each built from a weights file that the user supplies.

The three FID protocols of the field (2D seg2med, 2.5D MAISI, 3D WDM) each use a different
pretrained network. None ships inside a pip package, and this module never downloads anything and never
falls back to random weights: every extractor takes the path of a weights file, checks that it exists before
building anything, loads it with ``torch.load(path, map_location="cpu", weights_only=True)`` and refuses a
file whose keys or shapes do not match the network exactly (a wrong file must not silently give a
half-random network).

=====================  =======================================  ==========================================
name                   network / weights file                   features
=====================  =======================================  ==========================================
``inception2d``        ImageNet Inception-v3 (torchvision),     2048-d pool features of every axial slice
                       ``inception_v3_google-0cc3c7bd.pth``     (2D FID, seg2med)
``radimagenet2.5d``    RadImageNet ResNet-50,                   2048-d pooled features of the slices along
                       ``RadImageNet-ResNet50_notop.pth`` or    each axis; one FID per plane, averaged
                       RadImageNet's ``ResNet50.pt``            (2.5D FID, MAISI)
``medicalnet3d``       MedicalNet 3D ResNet-50,                 one 2048-d vector per volume
                       ``resnet_50_23dataset.pth``              (3D FID, WDM)
=====================  =======================================  ==========================================

Every extractor maps one volume, a numpy array of shape (X, Y, Z) (axial slices along the last axis), to
float64 feature vectors. ``extractor.planes`` names the groups whose FIDs are averaged: ``("xy",)`` for the
2D extractor, ``("xy", "yz", "zx")`` for the 2.5D one, ``("volume",)`` for the 3D one;
``extractor.extract_planes(volume)`` returns ``{plane: (N, 2048) array}`` for every extractor, and
:func:`fid_from_volumes` computes the protocol's FID from two sets of volumes.

Numbers are comparable only with numbers from the same network file, the same preprocessing, the same
sample sizes and the same intensity conventions; FID values of different protocols are not on one scale.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from ..errors import InputError
from .distribution import fid as _fid

__all__ = [
    "FeatureExtractor",
    "Inception2DExtractor",
    "RadImageNet25DExtractor",
    "MedicalNet3DExtractor",
    "ExtractorInfo",
    "EXTRACTORS",
    "make_extractor",
    "inception_preprocess",
    "inception_preprocess_rgb",
    "radimagenet_preprocess",
    "medicalnet_preprocess",
    "extract_features",
    "fid_from_volumes",
    "plane_distances",
    "fid_25d",
    "IMAGENET_RGB_MEAN",
    "IMAGENET_RGB_STD",
    "IMAGENET_BGR_MEAN",
]

#: ImageNet channel statistics (RGB order) used by torchvision's ImageNet models.
IMAGENET_RGB_MEAN = (0.485, 0.456, 0.406)
IMAGENET_RGB_STD = (0.229, 0.224, 0.225)
#: The same means in BGR order, subtracted (without division by a std) before the RadImageNet ResNet-50.
IMAGENET_BGR_MEAN = (0.406, 0.456, 0.485)


@dataclass(frozen=True)
class ExtractorInfo:
    """What an extractor needs: its class, the weights file it expects and where that file comes from."""

    name: str
    protocol: str
    weights_file: str
    source: str
    cls: type


# --------------------------------------------------------------------------------------------------------------
# Base class


class FeatureExtractor:
    """A pretrained feature network with its preprocessing, built from a user-supplied weights file.

    Attributes:
        name: registry name (see :data:`EXTRACTORS`).
        dims: feature width (2048 for all three networks).
        planes: names of the feature groups whose FIDs are averaged by :func:`fid_from_volumes`.
        weights: the weights file (a :class:`~pathlib.Path`).
        device: the ``torch.device`` the network runs on.
        batch_size: slices (or volumes) per forward pass.
        network: the ``torch.nn.Module`` (eval mode).

    ``__call__(volume)`` maps an (X, Y, Z) numpy array to an (N, dims) float64 array (N slices or 1 volume);
    the 2.5D extractor, which has three planes, returns a dict instead (see
    :class:`RadImageNet25DExtractor`). ``extract_planes(volume)`` always returns ``{plane: (N, dims)}``.
    """

    name: str = ""
    dims: int = 2048
    planes: tuple[str, ...] = ()

    def __init__(self, weights, *, device="cpu", batch_size: int = 32) -> None:
        import torch

        info = EXTRACTORS[self.name]
        self.weights = _existing_weights(weights, info)
        if int(batch_size) < 1:
            raise InputError(f"batch_size must be ≥ 1, got {batch_size}")
        self.batch_size = int(batch_size)
        try:
            self.device = torch.device(device)
        except (RuntimeError, TypeError) as e:
            raise InputError(f"not a torch device: {device!r}") from e
        self._before_loading()
        state = _read_state_dict(self.weights, info)
        network = self._build(state)
        network.eval()
        self.network = network.to(self.device)

    # subclasses ---------------------------------------------------------------------------------------------
    def _before_loading(self) -> None:
        """Checks that need no weights (e.g. an optional package); runs after the file check."""

    def _build(self, state: dict) -> Any:
        raise NotImplementedError

    def __call__(self, volume: np.ndarray):
        raise NotImplementedError

    def extract_planes(self, volume: np.ndarray) -> dict[str, np.ndarray]:
        """``{plane: (N, dims) float64 features}`` for one volume, for every extractor."""
        return {self.planes[0]: self(volume)}

    # shared -------------------------------------------------------------------------------------------------
    def _forward_batches(self, items: np.ndarray, preprocess) -> np.ndarray:
        """Run ``network(preprocess(items[i:i+batch_size]))`` over the first axis; (N, dims) float64."""
        import torch

        out = []
        with torch.inference_mode():
            for start in range(0, items.shape[0], self.batch_size):
                x = preprocess(items[start : start + self.batch_size]).to(self.device)
                y = self.network(x)
                if not torch.is_tensor(y):  # e.g. a named tuple of (logits, aux)
                    y = y[0]
                y = y.reshape(y.shape[0], -1)
                if y.shape[1] != self.dims:
                    raise InputError(f"{self.name}: network gave {y.shape[1]} features, expected {self.dims}")
                out.append(y.detach().to("cpu", torch.float64).numpy())
        return np.concatenate(out, axis=0)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(weights={str(self.weights)!r}, device={str(self.device)!r})"


# --------------------------------------------------------------------------------------------------------------
# 2D FID: ImageNet Inception-v3 on axial slices (seg2med)


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
    import torch.nn.functional as F

    s = np.asarray(slices, dtype=np.float64)
    if s.ndim == 2:
        s = s[None]
    if s.ndim != 3:
        raise InputError(f"expected slices of shape (N, H, W), got {s.shape}")
    lo = s.min(axis=(1, 2), keepdims=True)
    span = s.max(axis=(1, 2), keepdims=True) - lo
    scaled = np.where(span > 0, (s - lo) / np.where(span > 0, span, 1.0), 0.0)
    x = torch.from_numpy(scaled.astype(np.float32))[:, None].repeat(1, 3, 1, 1)
    x = F.interpolate(x, size=(int(size), int(size)), mode="bilinear", align_corners=False)
    mean = torch.tensor(IMAGENET_RGB_MEAN, dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_RGB_STD, dtype=torch.float32).view(1, 3, 1, 1)
    return (x - mean) / std


def inception_preprocess_rgb(images: np.ndarray, size: int = 299):
    """8-bit RGB images → Inception-v3 input: divided by 255 (no per-image min-max: colour is the signal, as in
    the virtual-staining FIDs), resized to ``size``×``size`` (bilinear) and ImageNet-normalised.

    Args:
        images: (N, H, W, 3) (or one (H, W, 3)) uint8 array.

    Returns:
        float32 ``torch.Tensor`` of shape (N, 3, size, size).
    """
    import torch
    import torch.nn.functional as F

    a = np.asarray(images)
    if a.ndim == 3:
        a = a[None]
    if a.ndim != 4 or a.shape[-1] != 3 or a.dtype != np.uint8:
        raise InputError(f"expected 8-bit RGB images of shape (N, H, W, 3), got {a.dtype} {a.shape}")
    x = torch.from_numpy(a.astype(np.float32) / 255.0).permute(0, 3, 1, 2)
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


# --------------------------------------------------------------------------------------------------------------
# 2.5D FID: RadImageNet ResNet-50 on the slices of all three planes (MAISI)

_RADIMAGENET_PLANES = ("xy", "yz", "zx")


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
    s = np.asarray(slices, dtype=np.float64)
    if s.ndim == 2:
        s = s[None]
    if s.ndim != 3:
        raise InputError(f"expected slices of shape (N, H, W), got {s.shape}")
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
    slices of all volumes and reports their mean: :func:`fid_25d` / :func:`fid_from_volumes`.

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


# --------------------------------------------------------------------------------------------------------------
# 3D FID: MedicalNet 3D ResNet-50 (WDM)

_MEDICALNET_NORMALISATIONS = ("zscore", "minmax", "none")


def medicalnet_preprocess(volume: np.ndarray, normalise: str = "zscore"):
    """Volume → MedicalNet input of shape (1, 1, X, Y, Z), float32.

    ``normalise="zscore"``: ``(v − mean) / (std + 1e-5)`` over all voxels (unbiased std), the MedicalNet
    intensity normalisation as implemented in MAISI's FID script. (MedicalNet's own data loader takes mean and
    std over the voxels > 0 and fills zero voxels with N(0, 1) noise; that random fill is not reproduced.)
    ``normalise="minmax"``: each volume scaled to [0, 1] by its own min and max (a constant volume becomes 0).
    ``normalise="none"``: the intensities as given. WDM's published ``eval/fid.py`` fed volumes min-max scaled
    to [0, 1] (real volumes after clipping at their 0.1/99.9 percentiles) without z-scoring: ``"minmax"`` on
    volumes, or ``"none"`` on volumes already scaled that way, follows that script.
    """
    import torch

    if normalise not in _MEDICALNET_NORMALISATIONS:
        raise InputError(f"normalise must be one of {_MEDICALNET_NORMALISATIONS}, got {normalise!r}")
    v = _volume(volume)
    if normalise == "zscore":
        std = float(v.std(ddof=1)) if v.size > 1 else 0.0
        v = (v - v.mean()) / (std + 1e-5)
    elif normalise == "minmax":
        span = float(v.max() - v.min())
        v = (v - v.min()) / span if span > 0 else np.zeros_like(v)
    return torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32))[None, None]


class MedicalNet3DExtractor(FeatureExtractor):
    """3D FID features (WDM protocol): MedicalNet ``resnet_50_23dataset`` 3D ResNet-50, one 2048-d vector per
    volume (global average pool of the last stage).

    Network: MONAI ``monai.networks.nets.resnet50(spatial_dims=3, n_input_channels=1, shortcut_type="B",
    bias_downsample=False, feed_forward=False)`` (the MedicalNet settings of
    ``get_medicalnet_pretrained_resnet_args(50)``) with MedicalNet's stem (7×7×7, stride 2) and MedicalNet's
    dilated last stages: ``layer3`` and ``layer4`` keep stride 1 and use dilation 2 and 4 (MONAI's plain
    ResNet downsamples there instead, which is a different network for the same weights). This is the network
    of Tencent MedicalNet's ``models/resnet.py`` and of WDM's ``eval/models/resnet.py``.

    Weights: ``resnet_50_23dataset.pth`` from the Tencent MedicalNet release; a dict whose ``state_dict``
    holds ``module.``-prefixed backbone tensors (the prefix is removed; the file has no segmentation head).

    The volume (X, Y, Z) is passed at its own size as one (1, 1, X, Y, Z) batch after
    :func:`medicalnet_preprocess`; ``__call__`` returns (1, 2048) float64. WDM scored 1000 samples; FID from a
    few hundred volumes is strongly biased.

    Args:
        weights: path of the checkpoint.
        device: torch device for the network.
        normalise: ``"zscore"`` (default), ``"minmax"`` (WDM) or ``"none"``, see :func:`medicalnet_preprocess`.
    """

    name = "medicalnet3d"
    planes = ("volume",)

    def __init__(self, weights, *, device="cpu", normalise: str = "zscore") -> None:
        if normalise not in _MEDICALNET_NORMALISATIONS:
            raise InputError(f"normalise must be one of {_MEDICALNET_NORMALISATIONS}, got {normalise!r}")
        self.normalise = normalise
        super().__init__(weights, device=device, batch_size=1)

    def _build(self, state: dict):
        net = _empty(_medicalnet_resnet50)
        _load_strict(net, state, self.weights, "MedicalNet 3D ResNet-50 backbone")
        return net

    def preprocess(self, volume: np.ndarray):
        """:func:`medicalnet_preprocess` with this extractor's normalisation."""
        return medicalnet_preprocess(volume, self.normalise)

    def __call__(self, volume: np.ndarray) -> np.ndarray:
        """(X, Y, Z) volume → (1, 2048) float64."""
        vol = _volume(volume)
        return self._forward_batches(vol[None], lambda v: self.preprocess(v[0]))


# --------------------------------------------------------------------------------------------------------------
# Registry

_INCEPTION_SOURCE = (
    "torchvision's ImageNet model weights (Inception_V3_Weights.IMAGENET1K_V1), "
    "https://download.pytorch.org/models/inception_v3_google-0cc3c7bd.pth"
)
_RADIMAGENET_SOURCE = (
    "RadImageNet's PyTorch ResNet-50, distributed by the RadImageNet project (radimagenet.com; its PyTorch "
    "release has ResNet50.pt) and, as RadImageNet-ResNet50_notop.pth, as the torch-hub model "
    "Warvito/radimagenet-models used by MONAI's generative tutorials and MAISI; download it yourself"
)
_MEDICALNET_SOURCE = (
    "the Tencent MedicalNet release (github.com/Tencent/MedicalNet; also on Hugging Face as "
    "TencentMedicalNet/MedicalNet-Resnet50); download it yourself"
)

EXTRACTORS: dict[str, ExtractorInfo] = {
    "inception2d": ExtractorInfo(
        "inception2d", "2D FID (seg2med)", "inception_v3_google-0cc3c7bd.pth", _INCEPTION_SOURCE,
        Inception2DExtractor,
    ),
    "radimagenet2.5d": ExtractorInfo(
        "radimagenet2.5d", "2.5D FID (MAISI)", "RadImageNet-ResNet50_notop.pth (or RadImageNet's ResNet50.pt)",
        _RADIMAGENET_SOURCE, RadImageNet25DExtractor,
    ),
    "medicalnet3d": ExtractorInfo(
        "medicalnet3d", "3D FID (WDM)", "resnet_50_23dataset.pth", _MEDICALNET_SOURCE, MedicalNet3DExtractor,
    ),
}
"""Extractor name → :class:`ExtractorInfo` (protocol, expected weights file, where it comes from, class)."""

_ALIASES = {"radimagenet25d": "radimagenet2.5d"}


def make_extractor(name: str, weights, device="cpu", **kwargs) -> FeatureExtractor:
    """Build the extractor registered as ``name`` (``"inception2d"``, ``"radimagenet2.5d"`` (alias
    ``"radimagenet25d"``), ``"medicalnet3d"``) from the weights file ``weights``; extra keyword arguments go to
    its class (e.g. ``batch_size``, ``window``, ``normalise``)."""
    key = _ALIASES.get(str(name).lower(), str(name).lower())
    if key not in EXTRACTORS:
        raise InputError(f"unknown FID feature extractor {name!r}; choose from {', '.join(EXTRACTORS)}")
    return EXTRACTORS[key].cls(weights, device=device, **kwargs)  # checks the file before building anything


# --------------------------------------------------------------------------------------------------------------
# FID over sets of volumes


def extract_features(volumes: Iterable[np.ndarray], extractor: FeatureExtractor) -> dict[str, np.ndarray]:
    """Features of a set of volumes, ``{plane: (N_total, dims)}``: per plane, the rows of all volumes stacked
    in order (N_total = total slices for the 2D/2.5D extractors, number of volumes for the 3D one)."""
    parts: dict[str, list[np.ndarray]] = {p: [] for p in extractor.planes}
    for volume in volumes:
        for plane, feats in extractor.extract_planes(volume).items():
            parts[plane].append(feats)
    if not any(parts.values()):
        raise InputError("no volumes given")
    return {p: np.concatenate(v, axis=0) for p, v in parts.items()}


def fid_from_volumes(
    volumes_a: Iterable[np.ndarray], volumes_b: Iterable[np.ndarray], extractor: FeatureExtractor
) -> dict[str, float]:
    """The extractor's FID protocol between two sets of volumes (e.g. generated vs real).

    One FID per plane over the pooled features of all volumes of each set, then their mean. Returns
    ``{"fid": mean}`` plus, for extractors with several planes, ``{"fid_xy": …, "fid_yz": …, "fid_zx": …}``.
    """
    return plane_distances(extract_features(volumes_a, extractor), extract_features(volumes_b, extractor))


def plane_distances(features_a: Mapping[str, np.ndarray], features_b: Mapping[str, np.ndarray],
                    which: Iterable[str] = ("fid",)) -> dict[str, float]:
    """FID (and/or KID, the mean over subsets) per plane between two feature sets ``{plane: (N, dims)}``, and
    their mean over the planes under ``"fid"`` / ``"kid"``; with several planes also ``"fid_<plane>"`` …"""
    from .distribution import kid

    out: dict[str, float] = {}
    for metric in which:
        if metric not in ("fid", "kid"):
            raise InputError(f"unknown distribution metric {metric!r}: fid or kid")
        per_plane = {p: _fid(features_a[p], features_b[p]) if metric == "fid" else kid(features_a[p], features_b[p])[0]
                     for p in features_a}
        out[metric] = float(np.mean(list(per_plane.values())))
        if len(per_plane) > 1:
            out.update({f"{metric}_{p}": float(v) for p, v in per_plane.items()})
    return out


def fid_25d(
    volumes_a: Iterable[np.ndarray], volumes_b: Iterable[np.ndarray], extractor: RadImageNet25DExtractor
) -> dict[str, float]:
    """2.5D FID (MAISI): one FID per plane (XY, YZ, ZX) with a :class:`RadImageNet25DExtractor`, and their
    mean under ``"fid"`` (see :func:`fid_from_volumes`)."""
    if not isinstance(extractor, RadImageNet25DExtractor):
        raise InputError(f"fid_25d needs a RadImageNet25DExtractor, got {type(extractor).__name__}")
    return fid_from_volumes(volumes_a, volumes_b, extractor)


# --------------------------------------------------------------------------------------------------------------
# Helpers: files, state dicts, networks


def _existing_weights(weights, info: ExtractorInfo) -> Path:
    if weights is None or str(weights) == "":
        raise InputError(
            f"the {info.protocol} needs a weights file, {info.weights_file}, from {info.source}; none was given"
        )
    path = Path(weights).expanduser()
    if not path.is_file():
        raise InputError(
            f"{info.protocol} weights not found: {path}; it needs {info.weights_file}, from {info.source}"
        )
    return path


def _read_state_dict(path: Path, info: ExtractorInfo) -> dict:
    import torch

    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:  # unpickling errors, truncated files, pickled modules refused by weights_only
        raise InputError(f"cannot read {path} as a PyTorch state dict for the {info.protocol}: {_first_line(e)}") from e
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping) or not obj:
        raise InputError(f"{path} is not a state dict (a {type(obj).__name__}); expected {info.weights_file}")
    if not all(isinstance(k, str) and torch.is_tensor(v) for k, v in obj.items()):
        raise InputError(f"{path} is not a state dict of named tensors; expected {info.weights_file}")
    state = dict(obj)
    if all(k.startswith("module.") for k in state):  # saved from torch.nn.DataParallel (MedicalNet)
        state = {k[len("module.") :]: v for k, v in state.items()}
    return state


def _empty(builder):
    """``builder()`` run on the meta device, then given uninitialised CPU storage: every tensor is then
    overwritten by :func:`_load_strict`, so no time is spent on a random initialisation."""
    import torch

    with torch.device("meta"):
        net = builder()
    return net.to_empty(device="cpu")


def _load_strict(network, state: dict, path: Path, what: str) -> None:
    """Load ``state`` into ``network`` only if keys and shapes match exactly (``num_batches_tracked``, a
    training counter that older files lack, is filled in); else :class:`InputError`."""
    import torch

    own = network.state_dict()
    state = dict(state)
    for k in own:
        if k.endswith("num_batches_tracked") and k not in state:
            state[k] = torch.zeros((), dtype=torch.long)
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys ({_some(missing)})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys ({_some(unexpected)})")
        raise InputError(f"{path} does not fit the {what}: {'; '.join(parts)}; is it the right file?")
    wrong = [k for k in own if tuple(own[k].shape) != tuple(state[k].shape)]
    if wrong:
        k = wrong[0]
        raise InputError(
            f"{path} does not fit the {what}: {len(wrong)} tensors have the wrong shape, e.g. {k} "
            f"{tuple(state[k].shape)} instead of {tuple(own[k].shape)}"
        )
    network.load_state_dict(state, strict=True)


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


def _medicalnet_resnet50():
    """MONAI 3D ResNet-50 with MedicalNet's settings and dilated layer3/layer4 (stride 1, dilation 2/4)."""
    from monai.networks.nets import resnet50
    from monai.networks.nets.resnet import get_medicalnet_pretrained_resnet_args

    bias_downsample, shortcut_type = get_medicalnet_pretrained_resnet_args(50)
    net = resnet50(
        pretrained=False, spatial_dims=3, n_input_channels=1, conv1_t_size=7, conv1_t_stride=2,
        shortcut_type=shortcut_type, bias_downsample=bias_downsample, feed_forward=False,
    )
    for layer, dilation in ((net.layer3, 2), (net.layer4, 4)):
        for block in layer:
            block.conv2.stride = (1, 1, 1)
            block.conv2.dilation = (dilation,) * 3
            block.conv2.padding = (dilation,) * 3
            if block.downsample is not None:
                block.downsample[0].stride = (1, 1, 1)
    return net


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


def _volume(volume) -> np.ndarray:
    try:
        v = np.asarray(volume, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise InputError(f"volume is not a numeric array: {e}") from e
    if v.ndim != 3 or min(v.shape) < 1:
        raise InputError(f"expected a 3D volume (X, Y, Z), got shape {v.shape}")
    if not np.all(np.isfinite(v)):
        raise InputError("volume contains non-finite values (NaN or inf)")
    return v


def _window(window) -> tuple[float, float]:
    try:
        lo, hi = (float(w) for w in window)
    except (TypeError, ValueError) as e:
        raise InputError(f"window must be (low, high), got {window!r}") from e
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        raise InputError(f"window must be finite with low < high, got {window!r}")
    return lo, hi


def _some(keys: list[str], n: int = 3) -> str:
    return ", ".join(keys[:n]) + (", …" if len(keys) > n else "")


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return (text[0] if text else type(e).__name__)[:200]
