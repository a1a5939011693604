"""What every application needs, and nothing application-specific (this package imports no application).

- :mod:`.schedule` — noise schedule, DDPM/DDIM steps between any two timesteps, the sampling loop;
- :mod:`.spaces` — image spaces: identity, Haar wavelet (2D/3D), 2D wavelets via pytorch-wavelets;
- :mod:`.diffusion` — conditional diffusion over a space, prediction ``sample``/``epsilon``/``v``, loss, sampling;
- :mod:`.precision` — device, precision (float32/bfloat16/float16) and seed checks, autocast;
- :mod:`.inference` — whole volume, ensemble, slice-wise and sliding-window inference;
- :mod:`.streaming` — the sliding window over an image too large for memory, one row of tiles at a time;
- :mod:`.runner` — output checks before any work, cases split across ``torchrun`` processes;
- :mod:`.checkpoint` — the one checkpoint format (``weights_only=True``) and atomic writer;
- :mod:`.model` — a diffusion model with its settings, to and from checkpoints;
- :mod:`.training` — the one trainer (resume, validation, DDP, precision, logging); :mod:`.data` — its training
  sets (a data list through a MONAI ``Compose``, seeded per item);
- :mod:`.bundle` — what MONAI bundle entry points share (one-line errors, logged outputs).

Names resolve lazily: ``from medfusion.core import ConditionalDiffusion`` imports torch only then.
"""

from __future__ import annotations

from ..utils.lazy import lazy_exports

_EXPORTS: dict[str, tuple[str, ...]] = {
    "schedule": ("DiffusionSchedule", "sample_loop"),
    "spaces": ("ImageSpace", "IdentitySpace", "HaarSpace", "WaveletSpace2D", "make_space"),
    "diffusion": ("ConditionalDiffusion", "PREDICTIONS"),
    "precision": ("PRECISIONS", "resolve_device", "check_precision", "check_seed", "autocast"),
    "inference": ("whole_volume", "ensemble", "EnsembleResult", "slicewise", "sliding_window"),
    "streaming": ("stream_tiles", "tile_starts"),
    "runner": ("check_outputs", "run_cases", "process_rank"),
    "checkpoint": ("Checkpoint", "save_checkpoint", "load_checkpoint"),
    "model": ("DiffusionModel",),
    "training": ("Trainer",),
    "data": ("TransformDataset",),
    "bundle": ("BundleEntry",),
}

__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
