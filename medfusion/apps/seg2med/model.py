"""The seg2med model: a conditional diffusion from a prior image (or another modality) to CT or MR.

Two shapes on the same core (:class:`~medfusion.core.model.DiffusionModel`):

* ``dims=2`` — the published model: a 2D pixel-space DDPM on axial slices, ε-prediction, linear β, the condition
  concatenated to the noisy slice (MONAI ``DiffusionModelUNet``, attention at the deepest level); run slice by
  slice over a volume by :func:`medfusion.core.inference.slicewise`;
* ``dims=3`` — medfusion's full-volume option (not in the paper): a 3D diffusion in Haar wavelet space predicting
  x₀, as cWDM does, run on the whole volume at once — no slice-to-slice stripes.

One network serves several *tasks*, each a (condition, target) pair such as ``("prior", "ct")`` (mask → CT) or
``("t1", "ct")`` (MR → CT conversion); the task's index is the network's class label.  Images enter the network
windowed to [0, 1]: CT [−1000, 1000] HU as the authors' CT model, MR by its sequence's window. A prior image comes
from the model's prior table (:mod:`.prior_tables`, recorded in the checkpoint: ``seg2med``, the authors', for new
models; ``medfusion`` for checkpoints that name none) and is windowed by that table's prior window — the authors'
own for MR — or like its target.
"""

from __future__ import annotations

import warnings
from typing import Mapping, Sequence

import numpy as np
import torch

from ...core.model import DiffusionModel
from ...errors import InputError
from ...networks import conditional_unet, spatial_divisor
from .constants import TARGETS
from .prior_tables import DEFAULT_PRIOR_TABLE, UNNAMED_TABLE, prior_window

__all__ = ["Seg2MedModel", "KIND", "TARGETS", "SOURCES", "ALL_TASKS", "WINDOWS", "load_model"]

KIND = "seg2med"
#: what can condition: the prior image of a label map, or an image of another modality
SOURCES = ("prior",) + TARGETS
#: every generation and conversion task, in class-label order
ALL_TASKS = (("prior", "ct"), ("prior", "t1"), ("prior", "t2"), ("ct", "t1"), ("ct", "t2"), ("t1", "ct"),
             ("t2", "ct"), ("t1", "t2"), ("t2", "t1"))
#: intensity windows mapped to [0, 1]: CT as published; MR (signal of tissues.mr_signal) to hold every tissue
WINDOWS = {"ct": (-1000.0, 1000.0), "t1": (0.0, 150.0), "t2": (0.0, 800.0)}
#: background (air) value per modality
AIR = {"ct": -1000.0, "t1": 0.0, "t2": 0.0}
#: sampling steps by default: the setting the shipped weights' held-out numbers were measured with (bundle docs)
DEFAULT_STEPS = 20
#: sampler by default, for both models: the setting of the held-out numbers; for the 3D model it scored best on
#: validation phantoms among DDIM/DDPM at 20 steps with uniform or quadratic timesteps (bundle docs)
DEFAULT_SAMPLER = "ddim"
_SMALL_CHANNELS = (32, 64, 64)


def check_task(source: str, target: str) -> tuple[str, str]:
    if target not in TARGETS:
        raise InputError(f"unknown target modality {target!r}; choose one of {', '.join(TARGETS)}")
    if source not in SOURCES:
        raise InputError(f"unknown source {source!r}; choose one of {', '.join(SOURCES)}")
    if source == target:
        raise InputError(f"source and target are both {target!r}: nothing to convert")
    return source, target


class Seg2MedModel(DiffusionModel):
    """A seg2med denoiser with its settings (see :class:`~medfusion.core.model.DiffusionModel`).

    Settings (saved in the checkpoint): ``dims`` (2 or 3), ``tasks`` (list of ``[source, target]``; the class label
    is the index). Preprocessing: ``windows`` (modality → ``[lo, hi]``).
    """

    kind = KIND

    @classmethod
    def build_network(cls, config: dict) -> torch.nn.Module:
        return conditional_unet(**config)

    @classmethod
    def create(cls, network_config: Mapping | None = None, *, dims: int = 2,
               tasks: Sequence[Sequence[str]] = ALL_TASKS, windows: Mapping[str, Sequence[float]] | None = None,
               prediction: str | None = None, schedule: Mapping | None = None, lll_scale: float = 3.0,
               residual: bool = False, sigma_data: float = 0.5, prior_table: str = DEFAULT_PRIOR_TABLE,
               spacing: Sequence[float | None] | None = None, size: Sequence[int | None] | None = None,
               class_conditioning: bool = True, clip_range: Sequence[float] = (0.0, 1.0),
               info: dict | None = None) -> "Seg2MedModel":
        """A new (untrained) model.

        Args:
            network_config: keyword arguments of :func:`medfusion.networks.conditional_unet` beyond the channel
                counts (``channels``, ``num_res_blocks``, ``attention_levels``, ...); small defaults.
            dims: 2 (the published slice model) or 3 (full volume in Haar wavelet space).
            tasks: the (source, target) pairs it learns; one task → no class label.
            prediction: default ``epsilon`` for 2D (published), ``sample`` for 3D; ``skip``: EDM's
                preconditioning (:class:`~medfusion.core.diffusion.ConditionalDiffusion`) with ``sigma_data``.
            schedule: :class:`~medfusion.core.schedule.DiffusionSchedule` arguments (default T = 1000, linear β).
            prior_table: the table of its prior images (:data:`~.prior_tables.PRIOR_TABLES`); their windows
                follow it.
            spacing: the voxel spacing (mm, RAS+ order; ``None`` for an axis it keeps) the network works at: volumes
                at other spacings are taken there and back (:mod:`.model_grid`), and the training data too;
                ``None``: the input's grid.
            size: the size (voxels per axis, ``None``: any) of the window the network sees, as in training; a volume
                is cut or padded with air to it, centred on the body (:mod:`.model_grid`).
            class_conditioning: tell the network the task by a class label (several tasks); ``False`` as the
                authors: the network learns the target modality from the prior image's look alone.
            clip_range: the range ``x̂₀`` is clipped to at every sampling step (images are in [0, 1]; the authors'
                MONAI scheduler clips to [−1, 1]).
            residual: generate the target as the prior image plus a diffused difference (residual diffusion,
                :class:`~medfusion.core.diffusion.ConditionalDiffusion` ``reference=0``): the prior already holds
                each organ's value, the network learns the rest; generation tasks only.
        """
        if dims not in (2, 3):
            raise InputError(f"dims must be 2 or 3, got {dims!r}")
        tasks = [list(check_task(*t)) for t in tasks]
        if not tasks:
            raise InputError("a seg2med model needs at least one task")
        if residual and any(source != "prior" for source, _ in tasks):
            raise InputError("residual diffusion adds the prior image back, so it is for mask→image tasks only; "
                             f"got {', '.join(f'{s}→{t}' for s, t in tasks if s != 'prior')}")
        n = 2**dims if dims == 3 else 1  # image channels in the space (Haar: 8 sub-bands)
        config = {"channels": _SMALL_CHANNELS, "num_res_blocks": 1, "norm_num_groups": 16, "num_head_channels": 16}
        config.update(dict(network_config or {}))
        config.update(spatial_dims=dims, in_channels=2 * n, out_channels=n,
                      num_class_embeds=len(tasks) if len(tasks) > 1 and class_conditioning else None)
        config["channels"] = [int(c) for c in config["channels"]]
        levels = config.get("attention_levels") or [False] * (len(config["channels"]) - 1) + [dims == 2]
        config["attention_levels"] = [bool(a) for a in levels]  # published 2D: attention at the deepest level
        space = {"kind": "identity", "spatial_dims": 2} if dims == 2 else \
            {"kind": "haar", "spatial_dims": 3, "lll_scale": lll_scale}
        diffusion = {"schedule": dict(schedule or {}), "space": space, "clip_range": tuple(float(c) for c in clip_range),
                     "prediction": prediction or ("epsilon" if dims == 2 else "sample"), "target_channels": 1,
                     "reference": 0 if residual else None, "sigma_data": float(sigma_data)}
        pre = _preprocessing(windows, prior_table, spacing, size)
        return cls.from_parts(config, diffusion, preprocessing=pre,
                              settings={"dims": dims, "tasks": tasks, "class_conditioning": bool(class_conditioning)},
                              info=dict(info or {}))

    # ---- settings ----------------------------------------------------------------------------------------------
    @property
    def dims(self) -> int:
        return int(self.settings["dims"])

    @property
    def tasks(self) -> list[tuple[str, str]]:
        return [tuple(t) for t in self.settings["tasks"]]

    @property
    def divisor(self) -> int:
        """Every (in-plane, for 2D) image size given to the network must be a multiple of this."""
        return spatial_divisor(self.network_config["channels"], wavelet_levels=1 if self.dims == 3 else 0)

    def window(self, modality: str) -> tuple[float, float]:
        lo, hi = self.preprocessing["windows"][modality]
        return float(lo), float(hi)

    @property
    def prior_table(self) -> str:
        """The table of the prior images it was trained on (``medfusion`` for checkpoints that name none)."""
        return str(self.preprocessing.get("prior_table", UNNAMED_TABLE))

    def input_spacing(self, shape, spacing=None) -> list[float]:
        """``spacing`` (mm, RAS+ order) of a volume of ``shape``; ``None``: the model's own (with a warning when the
        model has one), 1 mm for any axis it leaves open."""
        target = self.preprocessing.get("spacing")
        if spacing is not None:
            return [float(v) for v in spacing]
        if target:
            warnings.warn(f"no voxel spacing given: the volume is taken to be at the model's own "
                          f"({' × '.join(f'{v:g}' for v in target if v)} mm in-plane); pass spacing=", stacklevel=3)
        given = list(target or []) + [None] * (len(shape) - len(target or []))
        return [1.0 if v is None else float(v) for v in given]

    def grid(self, shape, spacing, body=None):
        """The :class:`~.model_grid.ModelGrid` of a RAS+ volume of ``shape`` and ``spacing`` (mm, e.g. from
        :meth:`input_spacing`) for this model, its window centred on ``body``."""
        from .model_grid import model_grid

        return model_grid(shape, spacing, self.preprocessing.get("spacing"), self.preprocessing.get("size"), body)

    def prior_window(self, modality: str) -> tuple[float, float]:
        """The window of ``modality``'s prior image: the table's own, else the target's."""
        w = self.preprocessing.get("prior_windows", {}).get(modality)
        return (float(w[0]), float(w[1])) if w is not None else self.window(modality)

    def task_index(self, source: str, target: str) -> int:
        check_task(source, target)
        if (source, target) not in self.tasks:
            can = ", ".join(f"{'mask' if s == 'prior' else s}→{t}" for s, t in self.tasks)
            wanted = f"{'mask' if source == 'prior' else source}→{target}"
            hint = ""
            if source != "prior" and all(s == "prior" for s, _ in self.tasks):
                hint = " (it generates from label maps only; the shipped 2D model, --model 2d, also converts)"
            raise InputError(f"this model was not trained for {wanted}; it does {can}{hint}")
        return self.tasks.index((source, target))

    def class_labels(self, source: str, target: str, batch: int = 1, device=None) -> torch.Tensor | None:
        index = self.task_index(source, target)
        if len(self.tasks) == 1 or not self.settings.get("class_conditioning", True):
            return None
        return torch.full((batch,), index, dtype=torch.long, device=device)

    # ---- intensities -------------------------------------------------------------------------------------------
    def normalize(self, image: np.ndarray, modality: str) -> np.ndarray:
        """``image`` (HU or MR signal) windowed to [0, 1] (clipped), float32."""
        return _to_unit(image, self.window(modality))

    def normalize_prior(self, prior: np.ndarray, modality: str) -> np.ndarray:
        """A prior image of ``modality`` windowed to [0, 1] (clipped) by :meth:`prior_window`, float32."""
        return _to_unit(prior, self.prior_window(modality))

    def denormalize(self, image01: np.ndarray, modality: str) -> np.ndarray:
        lo, hi = self.window(modality)
        return (np.asarray(image01, dtype=np.float32) * (hi - lo) + lo).astype(np.float32)


def _preprocessing(windows, prior_table: str, spacing, size) -> dict:
    """The preprocessing settings a checkpoint keeps: windows, the prior table and its windows, the model's grid."""
    win = {k: [float(v) for v in w] for k, w in {**WINDOWS, **dict(windows or {})}.items()}
    prior_windows = {m: list(w) for m in TARGETS if (w := prior_window(m, prior_table)) is not None}
    return {"windows": win, "prior_table": prior_table, "prior_windows": prior_windows,
            "spacing": None if spacing is None else [None if v is None else float(v) for v in spacing],
            "size": None if size is None else [None if v is None else int(v) for v in size]}


def _to_unit(image: np.ndarray, window: tuple[float, float]) -> np.ndarray:
    lo, hi = window
    return np.clip((np.asarray(image, dtype=np.float32) - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)


def load_model(path, device: str | torch.device = "cpu") -> Seg2MedModel:
    """Load a seg2med checkpoint file or bundle folder (``torch.load(..., weights_only=True)``)."""
    return Seg2MedModel.load(path, device)
