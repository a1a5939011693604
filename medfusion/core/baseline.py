"""Deterministic baselines (one network, no diffusion) with the same checkpoint format as the diffusion models.

Each application compares its diffusion model with a deterministic network trained on the same data and step
budget (PET/CT: SegResNet; stain translation: a pix2pix-style U-Net).  :class:`DeterministicModel` gives them what
:class:`~medfusion.core.model.DiffusionModel` gives the diffusion models — checkpoints (kind, network config, an empty
``diffusion`` entry, weights, preprocessing, settings, provenance), loading with ``weights_only=True`` and
devices — so :class:`~medfusion.core.training.Trainer` trains both the same way.
"""

from __future__ import annotations

import os
from typing import ClassVar, Mapping

import torch

from ..errors import InputError, first_line
from .checkpoint import Checkpoint, load_checkpoint, save_checkpoint

__all__ = ["DeterministicModel"]


class DeterministicModel:
    """A network built from ``network_config`` by :meth:`build_network`, with its settings.

    Attributes:
        network, network_config, preprocessing, settings, info: as for
            :class:`~medfusion.core.model.DiffusionModel`.
    """

    #: the checkpoint kind (a checkpoint of another kind is refused)
    kind: ClassVar[str] = "deterministic"

    def __init__(self, network_config: Mapping, preprocessing: Mapping | None = None, settings: Mapping | None = None,
                 info: Mapping | None = None) -> None:
        self.network_config = dict(network_config)
        self.preprocessing = dict(preprocessing or {})
        self.settings = dict(settings or {})
        self.info = dict(info or {})
        self.network: torch.nn.Module = self.build_network(self.network_config)

    @classmethod
    def build_network(cls, config: dict) -> torch.nn.Module:
        """The network described by ``config`` (an application's factory)."""
        raise NotImplementedError

    def to(self, device) -> "DeterministicModel":
        self.network.to(device)
        return self

    def checkpoint(self) -> Checkpoint:
        return Checkpoint(kind=self.kind, network=self.network_config, diffusion={},
                          state_dict=self.network.state_dict(), preprocessing=self.preprocessing,
                          settings=self.settings, info=self.info)

    def save(self, path: str | os.PathLike) -> str:
        """Write the model as a checkpoint (atomically)."""
        return save_checkpoint(self.checkpoint(), path)

    @classmethod
    def from_checkpoint(cls, ckpt: Checkpoint) -> "DeterministicModel":
        if ckpt.kind != cls.kind:
            raise InputError(f"a {ckpt.kind!r} checkpoint cannot be loaded as a {cls.kind!r} model")
        try:
            model = cls(ckpt.network, ckpt.preprocessing, ckpt.settings, ckpt.info)
            model.network.load_state_dict(ckpt.state_dict)
        except (KeyError, TypeError, ValueError, RuntimeError) as e:
            raise InputError(f"checkpoint weights do not fit its network config: {first_line(e)}") from None
        model.network.eval()
        return model

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | torch.device = "cpu") -> "DeterministicModel":
        """Load a checkpoint file (``torch.load(..., weights_only=True)``), in eval mode."""
        return cls.from_checkpoint(load_checkpoint(path, kind=cls.kind)).to(device)
