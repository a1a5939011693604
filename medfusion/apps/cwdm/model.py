"""The cWDM model: a 3D conditional diffusion in Haar wavelet space that predicts x₀.

Reference: Friedrich et al., "cWDM: Conditional Wavelet Diffusion Models for Cross-Modality 3D Medical Image
Synthesis", arXiv 2411.17203.  Beyond the original: one class-conditioned model for all four contrasts (the class
label is the index of the missing contrast in :data:`CONTRASTS`); ``target`` fixes a per-contrast model.
"""

from __future__ import annotations

from typing import Mapping

import torch

from ...core.model import DiffusionModel
from ...errors import InputError
from ...networks import cwdm_unet, spatial_divisor
from .layout import CONTRASTS

__all__ = ["CWDMModel", "load_model", "KIND", "check_contrast"]

KIND = "cwdm"
_DEFAULT_CHANNELS = (64, 128, 128, 256, 256)


def check_contrast(name: str) -> str:
    if name not in CONTRASTS:
        raise InputError(f"unknown contrast {name!r}; BraTS contrasts are {', '.join(CONTRASTS)}")
    return name


class CWDMModel(DiffusionModel):
    """A cWDM denoiser with its settings (see :class:`~medfusion.core.model.DiffusionModel`).

    Settings (saved in the checkpoint): ``target`` — the contrast a per-contrast model synthesizes, or ``None``
    for a class-conditioned model; ``background_threshold`` — output voxels ≤ this are set to 0 (``None``: off).
    Preprocessing: the ``lower``/``upper`` percentiles of the input normalisation.
    """

    kind = KIND

    @classmethod
    def build_network(cls, config: dict) -> torch.nn.Module:
        return cwdm_unet(**config)

    @classmethod
    def create(cls, network_config: Mapping | None = None, *, target: str | None = None,
               schedule: Mapping | None = None, lll_scale: float = 3.0, lower: float = 0.1, upper: float = 99.9,
               background_threshold: float | None = 0.04, info: dict | None = None) -> "CWDMModel":
        """A new (untrained) model; ``network_config`` goes to :func:`medfusion.networks.cwdm_unet`."""
        config = dict(network_config or {})
        if target is not None:
            check_contrast(target)
            config.setdefault("num_class_embeds", None)
        diffusion = {"schedule": dict(schedule or {}), "prediction": "sample", "clip_range": (0.0, 1.0),
                     "space": {"kind": "haar", "spatial_dims": config.get("spatial_dims", 3), "lll_scale": lll_scale},
                     "target_channels": 1}
        return cls.from_parts(config, diffusion, preprocessing={"lower": float(lower), "upper": float(upper)},
                              settings={"target": target, "background_threshold": background_threshold},
                              info=dict(info or {}))

    @property
    def target(self) -> str | None:
        return self.settings.get("target")

    @property
    def lower(self) -> float:
        return float(self.preprocessing.get("lower", 0.1))

    @property
    def upper(self) -> float:
        return float(self.preprocessing.get("upper", 99.9))

    @property
    def background_threshold(self) -> float | None:
        return self.settings.get("background_threshold", 0.04)

    @property
    def class_conditioned(self) -> bool:
        return bool(self.network_config.get("num_class_embeds"))

    @property
    def divisor(self) -> int:
        """Every image size given to the model must be a multiple of this (padding makes it so)."""
        return spatial_divisor(self.network_config.get("channels", _DEFAULT_CHANNELS))

    def class_labels(self, missing: str, batch: int = 1, device=None) -> torch.Tensor | None:
        """The class labels telling a class-conditioned network which contrast to synthesize."""
        if not self.class_conditioned:
            return None
        return torch.full((batch,), CONTRASTS.index(missing), dtype=torch.long, device=device)


def load_model(path, device: str | torch.device = "cpu") -> CWDMModel:
    """Load a cWDM checkpoint file or bundle folder (``torch.load(..., weights_only=True)``)."""
    return CWDMModel.load(path, device)
