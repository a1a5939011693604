"""One checkpoint format for every application: self-describing plain data, loaded with ``weights_only=True``.

A checkpoint is a dictionary of tensors and plain Python values (never pickled code)::

    {"format": "medfusion.checkpoint/1",
     "kind": "cwdm",                      # which application's model this is
     "network": {...},                    # keyword arguments of the application's network factory
     "diffusion": {...},                  # ConditionalDiffusion.config: schedule, space, prediction, clip range
     "preprocessing": {...},              # what the application's preprocessing needs (percentiles, windows, ...)
     "settings": {...},                   # other application settings (target contrast, thresholds, ...)
     "info": {...},                       # provenance: training data, steps, scores
     "state_dict": {name: tensor}}

:func:`save_checkpoint` writes atomically (a temporary file, then :func:`os.replace`): an interrupted save never
leaves a half-written file.  :func:`load_checkpoint` accepts a ``.pt`` file or a MONAI bundle folder (its
``models/model.pt``) and names the problem in one line: not found, not plain data, not a medfusion checkpoint, or
a checkpoint of another application.
"""

from __future__ import annotations

import io
import os
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Mapping

import torch

from ..errors import InputError, first_line
from ..io import write_atomic

__all__ = ["Checkpoint", "CheckpointedModel", "load_model_by_kind", "save_checkpoint", "load_checkpoint", "save_torch", "load_torch", "plain",
           "FORMAT"]

FORMAT = "medfusion.checkpoint/1"


@dataclass
class Checkpoint:
    """The contents of a checkpoint (see the module docstring)."""

    kind: str
    network: dict
    diffusion: dict
    state_dict: dict
    preprocessing: dict = field(default_factory=dict)
    settings: dict = field(default_factory=dict)
    info: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """The dictionary that is saved: plain values and CPU tensors only."""
        return {"format": FORMAT, "kind": self.kind, "network": plain(self.network), "diffusion": plain(self.diffusion),
                "preprocessing": plain(self.preprocessing), "settings": plain(self.settings), "info": plain(self.info),
                "state_dict": {k: v.detach().cpu() for k, v in self.state_dict.items()}}

    @classmethod
    def from_dict(cls, state, *, kind: str | None = None, where: str = "checkpoint") -> "Checkpoint":
        """Check and unpack a loaded dictionary; ``kind`` is the application expected (``None``: any)."""
        if not isinstance(state, Mapping) or state.get("format") != FORMAT:
            found = state.get("format") if isinstance(state, Mapping) else type(state).__name__
            raise InputError(f"{where} is not a medfusion checkpoint (format {found!r}, expected {FORMAT!r})")
        if kind is not None and state.get("kind") != kind:
            raise InputError(f"{where} holds a {state.get('kind')!r} model, not a {kind!r} model")
        missing = [k for k in ("kind", "network", "diffusion", "state_dict") if k not in state]
        if missing:
            raise InputError(f"{where} lacks {', '.join(missing)}")
        return cls(kind=state["kind"], network=dict(state["network"]), diffusion=dict(state["diffusion"]),
                   state_dict=dict(state["state_dict"]), preprocessing=dict(state.get("preprocessing") or {}),
                   settings=dict(state.get("settings") or {}), info=dict(state.get("info") or {}))


def save_torch(obj, path: str | os.PathLike) -> str:
    """``torch.save`` through :func:`medfusion.io.write_atomic` (no partial file, ever)."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    return write_atomic(path, buf.getvalue())


def load_torch(path: str | os.PathLike):
    """``torch.load(path, weights_only=True)`` on the CPU, with one-line errors."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"weights not found: {path}")
    with open(path, "rb") as fh:
        head = fh.read(4)
    if not (head.startswith(b"PK\x03\x04") or head[:1] == b"\x80"):  # torch.save's zip, or its legacy pickle
        raise InputError(f"cannot read weights {path}: not a PyTorch checkpoint file (.pt)")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any failure to read means "not a usable checkpoint"
        reason = "not a PyTorch checkpoint of plain data" if isinstance(e, pickle.UnpicklingError) else first_line(e)
        raise InputError(f"cannot read weights {path}: {reason}") from None


def save_checkpoint(checkpoint: Checkpoint, path: str | os.PathLike) -> str:
    """Write ``checkpoint`` atomically to ``path`` (folders are created)."""
    return save_torch(checkpoint.to_dict(), path)


def load_checkpoint(path: str | os.PathLike, kind: str | None = None) -> Checkpoint:
    """Read a checkpoint file, or a bundle folder's ``models/model.pt``; ``kind`` = the application expected."""
    path = Path(path)
    if path.is_dir():
        path = path / "models" / "model.pt"
    return Checkpoint.from_dict(load_torch(path), kind=kind, where=str(path))


def plain(obj):
    """Tuples → lists and keys → strings, recursively, so a checkpoint holds only JSON-like values."""
    if isinstance(obj, Mapping):
        return {str(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    return obj


class CheckpointedModel:
    """What every model class shares around :class:`Checkpoint` (the diffusion models and the deterministic
    baselines): saving, loading by kind with ``weights_only=True`` (eval mode, on a device), and devices.

    A subclass names its ``kind`` and provides :meth:`checkpoint` (itself as a :class:`Checkpoint`) and
    :meth:`_build` (a new model from a checkpoint's plain values, before its weights are loaded); it has a
    ``network`` attribute."""

    #: the application this model belongs to (a checkpoint of another kind is refused)
    kind: ClassVar[str] = "model"

    def checkpoint(self) -> Checkpoint:
        raise NotImplementedError

    @classmethod
    def _build(cls, ckpt: Checkpoint) -> "CheckpointedModel":
        raise NotImplementedError

    def to(self, device):
        self.network.to(device)
        return self

    def save(self, path: str | os.PathLike) -> str:
        """Write the model as a checkpoint (atomically)."""
        return save_checkpoint(self.checkpoint(), path)

    @classmethod
    def from_checkpoint(cls, ckpt: Checkpoint):
        if ckpt.kind != cls.kind:
            raise InputError(f"a {ckpt.kind!r} checkpoint cannot be loaded as a {cls.kind!r} model")
        try:
            model = cls._build(ckpt)
            model.network.load_state_dict(ckpt.state_dict)
        except (KeyError, TypeError, ValueError, RuntimeError) as e:
            raise InputError(f"checkpoint weights do not fit its network config: {first_line(e)}") from None
        return model

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | torch.device = "cpu"):
        """Load a checkpoint file or bundle folder (``torch.load(..., weights_only=True)``), in eval mode."""
        model = cls.from_checkpoint(load_checkpoint(path, kind=cls.kind))
        model.network.eval()
        return model.to(device)


def load_model_by_kind(path: str | os.PathLike, classes) -> CheckpointedModel:
    """The model in a checkpoint file or bundle folder as whichever of ``classes`` (model classes) its kind names —
    e.g. an application's diffusion model or its deterministic baseline — read once, in eval mode."""
    ckpt = load_checkpoint(path)
    by_kind = {c.kind: c for c in classes}
    if ckpt.kind not in by_kind:
        raise InputError(f"{os.fspath(path)} holds a {ckpt.kind!r} model, not one of "
                         f"{', '.join(repr(k) for k in by_kind)}")
    model = by_kind[ckpt.kind].from_checkpoint(ckpt)
    model.network.eval()
    return model
