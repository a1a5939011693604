"""3D FID features (WDM): the MedicalNet 3D ResNet-50 (``resnet_50_23dataset.pth``), one vector per volume.

Holds :class:`MedicalNet3DExtractor`, its preprocessing (:func:`medicalnet_preprocess`: z-score, min-max or
none) and the MONAI 3D ResNet-50 with MedicalNet's dilated last stages. The registry and the FID entry points
are in :mod:`medfusion.metrics.features`.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from .features_base import ExtractorInfo, FeatureExtractor, _empty, _load_strict, _volume

__all__ = ["MedicalNet3DExtractor", "medicalnet_preprocess"]

_MEDICALNET_NORMALISATIONS = ("zscore", "minmax", "none")

_MEDICALNET_SOURCE = (
    "the Tencent MedicalNet release (github.com/Tencent/MedicalNet; also on Hugging Face as "
    "TencentMedicalNet/MedicalNet-Resnet50); download it yourself"
)


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

    _check_normalise(normalise)
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
        _check_normalise(normalise)
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


MedicalNet3DExtractor._info = ExtractorInfo(
    "medicalnet3d", "3D FID (WDM)", "resnet_50_23dataset.pth", _MEDICALNET_SOURCE, MedicalNet3DExtractor,
)


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


def _check_normalise(normalise: str) -> None:
    if normalise not in _MEDICALNET_NORMALISATIONS:
        raise InputError(f"normalise must be one of {_MEDICALNET_NORMALISATIONS}, got {normalise!r}")
