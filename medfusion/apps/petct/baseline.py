"""The deterministic baseline: MONAI ``SegResNet`` on the same PET/CT inputs and data.

SegResNet is the family of the HECKTOR 2022 winner (an ensemble of SegResNets, aggregated Dice 0.788).  Here it is
one network of comparable capacity to the diffusion model's (``init_filters`` 16: 4.7 M parameters), trained on the
same working grid, normalisation (:func:`~.transforms.inference_preprocessing`) and patches, with MONAI's ``DiceCELoss``
(softmax over background, GTVp, GTVn) and the winners' kind of augmentation, until its validation score stops
improving (the bundle's ``train_baseline.json``; the curve and the stopping rule are in the bundle docs).  Its output
has the diffusion model's form — per-class probabilities of GTVp and GTVn — so both are labelled, written and
scored the same way; it has no uncertainty.

Its checkpoint is the shared format (:mod:`medfusion.core.checkpoint`, via
:class:`~medfusion.core.baseline.DeterministicModel`) with kind ``petct-segresnet``;
:class:`~medfusion.core.training.Trainer` trains it like a diffusion model.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import torch

from ...core.baseline import DeterministicModel
from ...core.inference import whole_volume
from .model import preprocessing_settings
from .transforms import preprocess, stacked_pet_ct

__all__ = ["SegResNetBaseline", "BASELINE_KIND", "segresnet_loss"]

BASELINE_KIND = "petct-segresnet"
_DEFAULT_NET = {"init_filters": 16, "blocks_down": [1, 2, 2, 4], "blocks_up": [1, 1, 1], "dropout_prob": 0.0}


class SegResNetBaseline(DeterministicModel):
    """A MONAI ``SegResNet`` (2 input channels PET/CT, 3 output classes) with its preprocessing and provenance
    (checkpoints, loading and devices: :class:`~medfusion.core.baseline.DeterministicModel`).

    Attributes:
        network: the ``SegResNet``.
        network_config: its keyword arguments (beyond the channel counts).
        preprocessing: :func:`~.model.preprocessing_settings`.
        info: provenance (training data, steps, scores).
    """

    kind = BASELINE_KIND

    @classmethod
    def build_network(cls, config: dict) -> torch.nn.Module:
        from monai.networks.nets import SegResNet

        return SegResNet(spatial_dims=3, in_channels=2, out_channels=3, **config)

    @classmethod
    def create(cls, network_config: Mapping | None = None, *, suv_scale: float = 10.0, suv_clip: float = 30.0,
               ct_window: tuple[float, float] = (-250.0, 250.0), spacing: tuple[float, float, float] = (2.0, 2.0, 2.0),
               box_mm: float | None = 144.0, info: dict | None = None) -> "SegResNetBaseline":
        """A new (untrained) baseline; the other arguments: :func:`~.model.preprocessing_settings`."""
        pre = preprocessing_settings(suv_scale, suv_clip, ct_window, spacing, box_mm)
        return cls({**_DEFAULT_NET, **dict(network_config or {})}, pre, info=info)

    @property
    def divisor(self) -> int:
        """Every input size must be a multiple of this (one halving per down-sampling level)."""
        return 2 ** (len(self.network_config["blocks_down"]) - 1)

    # ---- inference --------------------------------------------------------------------------------------------
    def predict(self, pet_suv: np.ndarray, ct_hu: np.ndarray, *, device="cpu", preprocessing=None) -> np.ndarray:
        """Per-class probabilities ``(2, X, Y, Z)`` (GTVp, GTVn; softmax over three classes) for PET (SUV) and
        CT (HU) on one grid, the whole volume at once (padded to :attr:`divisor`), normalised by ``preprocessing``
        (default: its own, :func:`.transforms.inference_preprocessing` of its settings)."""
        cond = torch.from_numpy(preprocess(stacked_pet_ct(pet_suv, ct_hu), self.preprocessing, preprocessing))
        cond = cond.to(device)
        self.to(device).network.eval()
        with torch.no_grad():
            out = whole_volume(lambda x: torch.softmax(self.network(x).float(), dim=1), cond, self.divisor)
        return out[1:].cpu().numpy().astype(np.float32)


def segresnet_loss(model: SegResNetBaseline, batch: dict, *, generator: torch.Generator, device,
                   precision: str) -> torch.Tensor:
    """MONAI ``DiceCELoss`` (softmax, one-hot labels, background included) of a batch ``{"image": (B, 2, *S),
    "label": (B, 1, *S)}``; ``generator`` is unused (the network is deterministic)."""
    from monai.losses import DiceCELoss

    from ...core.precision import autocast

    x = batch["image"].to(device)
    label = batch["label"].to(device).round().long()
    with autocast(x.device, precision):
        logits = model.network(x)
    return DiceCELoss(to_onehot_y=True, softmax=True, batch=True)(logits.float(), label)
