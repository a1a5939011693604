"""The PET/CT segmentation model: a 3D conditional diffusion over the tumour mask, conditioned on PET and CT.

As Dong & Gong (arXiv 2401.17593): the network sees the noisy mask concatenated with the PET and CT volumes and
denoises the mask (T = 1000, linear β).  medfusion's choices where the paper is silent, all saved in the
checkpoint:

* **mask encoding** — two channels, GTVp (label 1) and GTVn (label 2), each −1 (absent) or +1 (present); a
  channel's *probability* is ``(x + 1) / 2`` clipped to [0, 1] (:func:`probabilities`);
* **conditions** — PET as SUV / ``suv_scale`` (10) clipped to [0, ``suv_clip`` / ``suv_scale``] (SUV 0–30 → 0–3)
  and CT in a soft-tissue window (−250 … 250 HU → −1 … 1, clipped);
* **prediction** — x₀ by default (a few DDIM steps give a usable mask, as Diff-UNet reports), ε as published;
* **space** — Haar wavelets (as cWDM: the whole head-and-neck box at half resolution per axis, 8× fewer voxels per
  network call, lossless) or the image itself (``space="identity"``).

The training loss (:func:`segmentation_loss`) is the public practice that works for x₀-prediction (Diff-UNet): MSE
on the network's target plus soft Dice and binary cross-entropy on the x̂₀ mask's probabilities.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import torch

from ...core.losses import dice_bce, mask_probabilities
from ...core.model import DiffusionModel
from ...errors import InputError
from ...networks import conditional_unet, spatial_divisor

__all__ = ["PetCtSegModel", "KIND", "DEFAULT_STEPS", "DEFAULT_SAMPLES", "CLASSES", "preprocessing_settings",
           "encode_labels",
           "probabilities", "segmentation_loss", "load_model"]

KIND = "petct"
#: the default sampling of ``medfusion segment``, the bundle and :func:`.inference.segment`: chosen on 8 validation
#: phantoms with three raters each by a rule fixed beforehand (highest aggregated Dice within 0.01, then the lowest
#: generalised energy distance to the raters, then the fewest network calls; bundle docs)
DEFAULT_STEPS = 5
DEFAULT_SAMPLES = 10
#: HECKTOR labels: value → name (0 is background)
CLASSES = {1: "GTVp", 2: "GTVn"}
_SMALL_CHANNELS = (32, 64, 64)


class PetCtSegModel(DiffusionModel):
    """A PET/CT tumour-mask denoiser with its settings (see :class:`~medfusion.core.model.DiffusionModel`).

    Preprocessing (saved in the checkpoint): :func:`preprocessing_settings`.
    """

    kind = KIND

    @classmethod
    def build_network(cls, config: dict) -> torch.nn.Module:
        return conditional_unet(**config)

    @classmethod
    def create(cls, network_config: Mapping | None = None, *, space: str = "haar", prediction: str = "sample",
               schedule: Mapping | None = None, suv_scale: float = 10.0, suv_clip: float = 30.0,
               ct_window: tuple[float, float] = (-250.0, 250.0), spacing: tuple[float, float, float] = (2.0, 2.0, 2.0),
               box_mm: float | None = 144.0, info: dict | None = None) -> "PetCtSegModel":
        """A new (untrained) model.

        Args:
            network_config: keyword arguments of :func:`medfusion.networks.conditional_unet` beyond the channel
                counts (``channels``, ``num_res_blocks``, ...); small defaults.
            space: ``"haar"`` (default) or ``"identity"``.
            prediction: ``"sample"`` (x₀, default) or ``"epsilon"`` (published) or ``"v"``.
            schedule: :class:`~medfusion.core.schedule.DiffusionSchedule` arguments (default T = 1000, linear β).
            suv_scale, suv_clip, ct_window, spacing, box_mm: :func:`preprocessing_settings` (intensities and the
                working grid).
        """
        if space not in ("haar", "identity"):
            raise InputError(f"space must be 'haar' or 'identity', got {space!r}")
        pre = preprocessing_settings(suv_scale, suv_clip, ct_window, spacing, box_mm)
        n = 8 if space == "haar" else 1
        config = {"channels": _SMALL_CHANNELS, "num_res_blocks": 1, "norm_num_groups": 16, "num_head_channels": 16}
        config.update(dict(network_config or {}))
        config.update(spatial_dims=3, in_channels=4 * n, out_channels=2 * n, num_class_embeds=None)
        config["channels"] = [int(c) for c in config["channels"]]
        config["attention_levels"] = [bool(a) for a in config.get("attention_levels") or
                                      [False] * len(config["channels"])]
        space_cfg = {"kind": "haar", "spatial_dims": 3, "lll_scale": 3.0} if space == "haar" else \
            {"kind": "identity", "spatial_dims": 3}
        diffusion = {"schedule": dict(schedule or {}), "space": space_cfg, "clip_range": (-1.0, 1.0),
                     "prediction": prediction, "target_channels": 2}
        return cls.from_parts(config, diffusion, preprocessing=pre, info=dict(info or {}))

    @property
    def divisor(self) -> int:
        """Every working-grid size given to the network must be a multiple of this."""
        haar = self.diffusion.space.config["kind"] == "haar"
        return spatial_divisor(self.network_config["channels"], wavelet_levels=1 if haar else 0)

    def conditions(self, pet_suv: np.ndarray, ct_hu: np.ndarray) -> np.ndarray:
        """The network's conditions ``(2, X, Y, Z)`` from PET (SUV) and CT (HU) on one grid: the model's own
        preprocessing (:func:`.transforms.inference_preprocessing`)."""
        from .transforms import preprocess, stacked_pet_ct

        return preprocess(stacked_pet_ct(pet_suv, ct_hu), self.preprocessing)


def preprocessing_settings(suv_scale: float = 10.0, suv_clip: float = 30.0,
                           ct_window: tuple[float, float] = (-250.0, 250.0),
                           spacing: tuple[float, float, float] = (2.0, 2.0, 2.0),
                           box_mm: float | None = 144.0) -> dict:
    """The checked preprocessing settings (saved in checkpoints): intensities
    (:func:`.transforms.inference_preprocessing`) and the working grid (:func:`~.geometry.working_grid`: voxel ``spacing`` in mm, and the head-and-neck box of ``box_mm``
    found from PET, or ``None`` for the whole CT∩PET overlap)."""
    if not suv_scale > 0 or not suv_clip > 0 or not ct_window[1] > ct_window[0]:
        raise InputError(f"bad intensity settings: suv_scale {suv_scale}, suv_clip {suv_clip}, "
                         f"ct_window {tuple(ct_window)}")
    if len(spacing) != 3 or not all(float(s) > 0 for s in spacing) or (box_mm is not None and not box_mm > 0):
        raise InputError(f"bad working grid: spacing {tuple(spacing)} mm, box {box_mm} mm")
    return {"suv_scale": float(suv_scale), "suv_clip": float(suv_clip),
            "ct_window": [float(ct_window[0]), float(ct_window[1])], "spacing": [float(s) for s in spacing],
            "box_mm": None if box_mm is None else float(box_mm)}


def encode_labels(labels: torch.Tensor | np.ndarray) -> torch.Tensor:
    """A label map ``(..., X, Y, Z)`` (0, 1 GTVp, 2 GTVn) → ``(..., 2, X, Y, Z)`` float32 in {−1, +1}
    (a batch ``(B, 1, X, Y, Z)`` becomes ``(B, 2, X, Y, Z)``)."""
    lab = torch.as_tensor(np.asarray(labels) if isinstance(labels, np.ndarray) else labels)
    if lab.ndim >= 4 and lab.shape[-4] == 1:
        lab = lab.squeeze(-4)
    lab = lab.round().long()
    chans = [(lab == k).float() * 2.0 - 1.0 for k in CLASSES]
    return torch.stack(chans, dim=-4)


#: mask channels in [−1, 1] → per-class probabilities (see :mod:`medfusion.core.losses`)
probabilities = mask_probabilities


def segmentation_loss(model: PetCtSegModel, batch: dict, *, generator: torch.Generator, device,
                      precision: str, dice_weight: float = 1.0, bce_weight: float = 1.0) -> torch.Tensor:
    """The loss of a batch ``{"image": (B, 2, X, Y, Z) conditions, "label": (B, 1, X, Y, Z) labels}``:
    MSE on the network's target (x₀ or ε, over the whole space) + ``dice_weight`` × soft Dice (MONAI ``DiceLoss``
    over both classes and the batch) + ``bce_weight`` × binary cross-entropy, both on the image-space x̂₀'s
    probabilities."""
    cond = batch["image"].to(device)
    target = encode_labels(batch["label"]).to(device)
    o = model.diffusion.forward_train(target, cond, None, generator=generator, precision=precision)
    prob = probabilities(model.diffusion.space.decode(o.x0_hat.float()))
    return o.mse() + dice_bce(prob, (target > 0).float(), dice_weight=dice_weight, bce_weight=bce_weight)


def load_model(path, device: str | torch.device = "cpu") -> PetCtSegModel:
    """Load a PET/CT checkpoint file or bundle folder (``torch.load(..., weights_only=True)``)."""
    return PetCtSegModel.load(path, device)
