"""A trained (or trainable) diffusion model with everything needed to use it, for any application.

:class:`DiffusionModel` holds a :class:`~medfusion.core.diffusion.ConditionalDiffusion` (network, schedule, space,
prediction type) and the plain values an application needs around it: the network factory's arguments, the
preprocessing settings, other settings, and provenance.  It turns into a
:class:`~medfusion.core.checkpoint.Checkpoint` and back; an application subclasses it, names its ``kind`` and its
network factory, and adds properties for its own settings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch

from ..errors import InputError
from .checkpoint import Checkpoint, CheckpointedModel
from .diffusion import ConditionalDiffusion
from .precision import check_precision, check_seed, resolve_device
from .schedule import SPACINGS, DiffusionSchedule
from .spaces import make_space

__all__ = ["DiffusionModel"]


@dataclass
class DiffusionModel(CheckpointedModel):
    """A diffusion model and its settings.

    Attributes:
        diffusion: network, schedule, image space and prediction type.
        network_config: keyword arguments of :meth:`build_network` that rebuild the network.
        preprocessing: settings of the application's preprocessing (e.g. percentiles), saved with the weights.
        settings: other application settings (e.g. the target contrast).
        info: provenance (training data, steps, scores).
    """

    kind: ClassVar[str] = "diffusion"

    diffusion: ConditionalDiffusion
    network_config: dict
    preprocessing: dict = field(default_factory=dict)
    settings: dict = field(default_factory=dict)
    info: dict = field(default_factory=dict)

    # ---- what an application provides ----------------------------------------------------------------------
    @classmethod
    def build_network(cls, config: dict) -> torch.nn.Module:
        """The network described by ``config`` (an application's factory)."""
        raise NotImplementedError

    # ---- construction ---------------------------------------------------------------------------------------
    @classmethod
    def from_parts(cls, network_config: dict, diffusion: dict, **kwargs) -> "DiffusionModel":
        """A new model from the network's config and :attr:`ConditionalDiffusion.config`-style values."""
        d = dict(diffusion)
        space = make_space(**d.get("space", {"kind": "identity"}))
        clip = d.get("clip_range", (0.0, 1.0))
        diff = ConditionalDiffusion(
            cls.build_network(dict(network_config)), DiffusionSchedule(**d.get("schedule", {})), space,
            prediction=d.get("prediction", "sample"), clip_range=None if clip is None else tuple(clip),
            target_channels=int(d.get("target_channels", 1)), reference=d.get("reference"),
            **({"sigma_data": float(d["sigma_data"])} if "sigma_data" in d else {}),  # older checkpoints lack it
        )
        return cls(diffusion=diff, network_config=dict(network_config), **kwargs)

    def check_sampling(self, *, steps: int, sampler: str, seed: int, device, precision: str,
                       timestep_spacing: str = "uniform") -> torch.device:
        """Check sampling options against this model before any work; returns the torch device.

        Raises:
            InputError: an unknown sampler or timestep spacing, ``steps`` not an integer from 1 to the training
                timesteps, a bad seed, an unavailable device or a precision it cannot run.
        """
        T = self.diffusion.schedule.num_train_timesteps
        if sampler not in ("ddim", "ddpm"):
            raise InputError(f"unknown sampler {sampler!r}; use ddim or ddpm")
        if timestep_spacing not in SPACINGS:
            raise InputError(f"unknown timestep spacing {timestep_spacing!r}; use {' or '.join(SPACINGS)}")
        if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= T:
            raise InputError(f"steps must be an integer from 1 to {T} (this model's training timesteps), got "
                             f"{steps!r}")
        check_seed(seed)
        dev = resolve_device(device)
        check_precision(precision, dev)
        return dev

    @property
    def network(self) -> torch.nn.Module:
        return self.diffusion.network

    @network.setter
    def network(self, net: torch.nn.Module) -> None:  # the trainer swaps in a DDP wrapper while training
        self.diffusion.network = net

    # ---- checkpoints ----------------------------------------------------------------------------------------
    def checkpoint(self) -> Checkpoint:
        return Checkpoint(kind=self.kind, network=self.network_config, diffusion=self.diffusion.config,
                          state_dict=self.network.state_dict(), preprocessing=self.preprocessing,
                          settings=self.settings, info=self.info)

    @classmethod
    def _build(cls, ckpt: Checkpoint) -> "DiffusionModel":
        return cls.from_parts(ckpt.network, ckpt.diffusion, preprocessing=ckpt.preprocessing, settings=ckpt.settings,
                              info=ckpt.info)
