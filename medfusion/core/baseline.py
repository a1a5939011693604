"""Deterministic baselines (one network, no diffusion) with the same checkpoint format as the diffusion models.

Each application compares its diffusion model with a deterministic network trained on the same data and step
budget (PET/CT: SegResNet; stain translation: a pix2pix-style U-Net).  :class:`DeterministicModel` gives them what
:class:`~medfusion.core.model.DiffusionModel` gives the diffusion models — checkpoints (kind, network config, an empty
``diffusion`` entry, weights, preprocessing, settings, provenance), loading with ``weights_only=True`` and
devices — so :class:`~medfusion.core.training.Trainer` trains both the same way.
"""

from __future__ import annotations

from typing import ClassVar, Mapping

import torch

from .checkpoint import Checkpoint, CheckpointedModel

__all__ = ["DeterministicModel"]


class DeterministicModel(CheckpointedModel):
    """A network built from ``network_config`` by :meth:`build_network`, with its settings.

    Attributes:
        network, network_config, preprocessing, settings, info: as for
            :class:`~medfusion.core.model.DiffusionModel`.
    """

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

    def checkpoint(self) -> Checkpoint:
        return Checkpoint(kind=self.kind, network=self.network_config, diffusion={},
                          state_dict=self.network.state_dict(), preprocessing=self.preprocessing,
                          settings=self.settings, info=self.info)

    @classmethod
    def _build(cls, ckpt: Checkpoint) -> "DeterministicModel":
        return cls(ckpt.network, ckpt.preprocessing, ckpt.settings, ckpt.info)
