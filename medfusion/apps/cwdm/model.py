"""Missing-modality BraTS MRI synthesis with a conditional wavelet diffusion model (cWDM).

The data flow for one case (every step is in one place here)::

    load 3 contrasts (io.load_volume, same shape/affine checked)
      → PercentileNormalize per contrast (0.1/99.9 percentiles → [0, 1])
      → pad to a size the U-Net accepts (symmetric zero padding)
      → WaveletConditionalDiffusion.sample (DDIM or DDPM, class label = missing contrast)
      → crop back → ZeroBackground (outside the inputs' foreground, ≤ 0.04)
      → io.save_like(reference = an input contrast): same shape, affine, orientation, spacing.

Reference: Friedrich et al., "cWDM: Conditional Wavelet Diffusion Models for Cross-Modality 3D Medical
Image Synthesis", arXiv 2411.17203.  Beyond the original: one class-conditioned model for all four contrasts,
DDIM with any number of steps, any input size, outputs in the input geometry.
"""

from __future__ import annotations

import dataclasses
import os
import pickle
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import torch

from .data.brats import CONTRASTS, BraTSCase, list_cases, load_case
from .diffusion import DiffusionSchedule, WaveletConditionalDiffusion
from .errors import InputError
from .io import ensure_absent, save_like
from .networks import cwdm_unet, spatial_divisor
from .transforms.intensity import PercentileNormalize, ZeroBackground, foreground_of

__all__ = [
    "CWDMModel",
    "load_model",
    "synthesize",
    "synthesize_case",
    "synthesize_folder",
    "pad_to_divisible",
    "crop_to_shape",
    "CHECKPOINT_FORMAT",
]

CHECKPOINT_FORMAT = "medfusion.cwdm/1"


@dataclasses.dataclass
class CWDMModel:
    """A cWDM denoiser with everything needed to use it.

    Attributes:
        diffusion: the network wrapped in :class:`WaveletConditionalDiffusion`.
        network_config: keyword arguments of :func:`medfusion.networks.cwdm_unet` that rebuild the network.
        target: the contrast a per-contrast model synthesizes, or ``None`` for a class-conditioned model that
            synthesizes any of the four (class label = index in :data:`CONTRASTS`).
        lower, upper: percentiles of the input normalisation.
        background_threshold: output voxels ≤ this are set to 0 (``None``: off).
        info: free-form provenance (training data, steps, ...).
    """

    diffusion: WaveletConditionalDiffusion
    network_config: dict
    target: str | None = None
    lower: float = 0.1
    upper: float = 99.9
    background_threshold: float | None = 0.04
    info: dict = dataclasses.field(default_factory=dict)

    # ---- construction --------------------------------------------------------------------------------------
    @classmethod
    def create(
        cls,
        network_config: Mapping | None = None,
        *,
        target: str | None = None,
        schedule: Mapping | None = None,
        lll_scale: float = 3.0,
        **kwargs,
    ) -> "CWDMModel":
        """A new (untrained) model; ``network_config`` goes to :func:`cwdm_unet`."""
        config = dict(network_config or {})
        if target is not None:
            _check_contrast(target)
            config.setdefault("num_class_embeds", None)
        network = cwdm_unet(**config)
        diffusion = WaveletConditionalDiffusion(
            network, DiffusionSchedule(**dict(schedule or {})), spatial_dims=config.get("spatial_dims", 3),
            lll_scale=lll_scale,
        )
        return cls(diffusion=diffusion, network_config=config, target=target, **kwargs)

    @property
    def network(self) -> torch.nn.Module:
        return self.diffusion.network

    @property
    def divisor(self) -> int:
        """Every image size given to the network must be a multiple of this (zero padding makes it so)."""
        return spatial_divisor(self.network_config.get("channels", (64, 128, 128, 256, 256)))

    def to(self, device) -> "CWDMModel":
        self.diffusion.network.to(device)
        return self

    # ---- checkpoints (data only: loadable with weights_only=True) ------------------------------------------
    def state(self) -> dict:
        """The checkpoint dictionary: tensors and plain Python values only."""
        return {
            "format": CHECKPOINT_FORMAT,
            "network_config": _plain(self.network_config),
            "schedule": _plain(self.diffusion.schedule.config),
            "lll_scale": self.diffusion.lll_scale,
            "target": self.target,
            "contrasts": list(CONTRASTS),
            "preprocessing": {"lower": self.lower, "upper": self.upper},
            "background_threshold": self.background_threshold,
            "info": _plain(self.info),
            "state_dict": {k: v.detach().cpu() for k, v in self.network.state_dict().items()},
        }

    def save(self, path: str | os.PathLike) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        torch.save(self.state(), tmp)
        os.replace(tmp, path)

    @classmethod
    def from_state(cls, state: Mapping) -> "CWDMModel":
        if not isinstance(state, Mapping):
            raise InputError(f"not a medfusion cWDM checkpoint (a {type(state).__name__}, not a dictionary)")
        if state.get("format") != CHECKPOINT_FORMAT:
            raise InputError(f"not a medfusion cWDM checkpoint (format {state.get('format')!r})")
        model = cls.create(
            state["network_config"],
            target=state.get("target"),
            schedule=state.get("schedule"),
            lll_scale=state.get("lll_scale", 3.0),
            lower=state.get("preprocessing", {}).get("lower", 0.1),
            upper=state.get("preprocessing", {}).get("upper", 99.9),
            background_threshold=state.get("background_threshold", 0.04),
            info=dict(state.get("info", {})),
        )
        try:
            model.network.load_state_dict(state["state_dict"])
        except (KeyError, RuntimeError) as e:
            raise InputError(f"checkpoint weights do not fit its network_config: {_first_line(e)}") from e
        return model


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> CWDMModel:
    """Load a cWDM checkpoint (``torch.load(..., weights_only=True)``: a checkpoint is data, never code).

    ``path`` may be a ``.pt`` file or a MONAI bundle folder (its ``models/model.pt``).
    """
    path = Path(path)
    if path.is_dir():
        path = path / "models" / "model.pt"
    if not path.is_file():
        raise InputError(f"weights not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any failure to read means "not a usable checkpoint"
        reason = "not a PyTorch checkpoint of plain data" if isinstance(e, pickle.UnpicklingError) else _first_line(e)
        raise InputError(f"cannot read weights {path}: {reason}") from e
    model = CWDMModel.from_state(state)
    model.network.eval()
    return model.to(device)


# ---- geometry helpers ---------------------------------------------------------------------------------------
def pad_to_divisible(x: np.ndarray, k: int) -> np.ndarray:
    """Zero-pad the spatial axes of ``(C, *S)`` symmetrically (the extra voxel after) to multiples of ``k``:
    MONAI's ``DivisiblePad``, returned as a plain array."""
    from monai.transforms import DivisiblePad

    return np.asarray(DivisiblePad(k, method="symmetric", mode="constant")(x))


def crop_to_shape(x: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """Inverse of :func:`pad_to_divisible`: crop ``(C, *S')`` back to spatial ``shape``."""
    slices = [slice(None)]
    for s_pad, s in zip(x.shape[1:], shape):
        d = s_pad - s
        slices.append(slice(d // 2, d // 2 + s))
    return x[tuple(slices)]


# ---- synthesis ------------------------------------------------------------------------------------------------
def synthesize(
    model: CWDMModel,
    volumes: Mapping[str, np.ndarray],
    missing: str,
    *,
    steps: int = 50,
    sampler: str = "ddim",
    seed: int = 0,
    device: str | torch.device = "cpu",
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """Synthesize the ``missing`` contrast from the three others.

    Args:
        model: a trained :class:`CWDMModel`.
        volumes: the three available contrasts, name → 3D array (any intensity unit, same shape).
        missing: the contrast to synthesize (one of ``t1n, t1c, t2w, t2f``).
        steps, sampler: sampling schedule (``"ddim"`` with any number of steps, or ``"ddpm"``; 1000-step DDPM
            is the published sampler).
        seed: seeds the sampling noise (CPU generator: same seed, same result).
    Returns:
        float32 array of the input shape with intensities in [0, 1] (background 0).
    """
    _check_contrast(missing)
    if model.target is not None and model.target != missing:
        raise InputError(f"this model synthesizes {model.target} only, but {missing} is missing")
    conds = [c for c in CONTRASTS if c != missing]
    absent = [c for c in conds if c not in volumes]
    if absent:
        raise InputError(f"to synthesize {missing}, contrasts {', '.join(absent)} are needed too")
    raw = np.stack([np.asarray(volumes[c], dtype=np.float32) for c in conds])
    if raw.ndim != 4:
        raise InputError(f"expected 3D volumes, got shape {raw.shape[1:]}")
    shape = raw.shape[1:]
    x = np.asarray(PercentileNormalize(model.lower, model.upper)(raw), dtype=np.float32)
    x = pad_to_divisible(x, model.divisor)

    device = torch.device(device)
    model.to(device).network.eval()
    cond = torch.from_numpy(np.ascontiguousarray(x))[None].to(device)
    labels = None
    if model.network_config.get("num_class_embeds"):
        labels = torch.tensor([CONTRASTS.index(missing)], device=device)
    generator = torch.Generator().manual_seed(int(seed))
    out = model.diffusion.sample(
        cond, labels, sampler=sampler, steps=steps, generator=generator, progress=progress,
        autocast=device.type == "cuda",
    )
    y = crop_to_shape(out[0].float().cpu().numpy(), shape)
    y = ZeroBackground(model.background_threshold)(y, foreground_of(list(raw)))
    return np.ascontiguousarray(y[0], dtype=np.float32)


def synthesize_case(
    case: BraTSCase,
    model: CWDMModel,
    out_path: str | os.PathLike,
    *,
    overwrite: bool = False,
    **kwargs,
) -> str:
    """Load a case, synthesize its missing contrast and write it in the input geometry.

    The output keeps the shape, affine, orientation and spacing of the case's first available contrast.
    Nothing is written when anything fails; an existing output is an error unless ``overwrite``.
    """
    if case.missing is None:
        raise InputError(f"case {case.name}: no contrast is missing")
    ensure_absent([out_path], overwrite)
    vols = load_case(case)
    ref = next(iter(vols.values()))
    y = synthesize(model, {k: v.data for k, v in vols.items()}, case.missing, **kwargs)
    return save_like(y, ref, out_path, overwrite=overwrite)


def synthesize_folder(
    dataset_dir: str | os.PathLike,
    output_dir: str | os.PathLike,
    model: CWDMModel,
    *,
    overwrite: bool = False,
    **kwargs,
) -> list[str]:
    """Fill in the missing contrast of every BraTS-layout case folder under ``dataset_dir``.

    Writes ``<output_dir>/<case>-<missing>.nii.gz`` per case.  All cases and outputs are checked before any
    synthesis starts, so a bad folder stops the run before anything is written.
    """
    cases = list_cases(dataset_dir)
    outs = [case.output_path(output_dir) for case in cases]
    ensure_absent(outs, overwrite)
    return [synthesize_case(c, model, o, overwrite=overwrite, **kwargs) for c, o in zip(cases, outs)]


class CWDMSynthesizer:
    """Bundle entry point: ``synthesizer.run()`` fills in every case folder of ``dataset_dir``."""

    def __init__(self, checkpoint, dataset_dir, output_dir, *, steps=50, sampler="ddim", seed=0,
                 device="cpu", overwrite=False):
        self.checkpoint, self.dataset_dir, self.output_dir = checkpoint, dataset_dir, output_dir
        self.kwargs = dict(steps=int(steps), sampler=sampler, seed=int(seed), device=device)
        self.overwrite = overwrite

    def run(self) -> list[str]:
        model = load_model(self.checkpoint, self.kwargs["device"])
        return synthesize_folder(self.dataset_dir, self.output_dir, model, overwrite=self.overwrite, **self.kwargs)


def _check_contrast(name: str) -> None:
    if name not in CONTRASTS:
        raise InputError(f"unknown contrast {name!r}; BraTS contrasts are {', '.join(CONTRASTS)}")


def _first_line(err: BaseException) -> str:
    """The first non-empty line of an exception's message (torch's messages run over many lines)."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return lines[0] if lines else type(err).__name__


def _plain(obj):
    """Tuples → lists recursively, so a checkpoint holds only plain JSON-like values."""
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


# ---- evaluation on complete cases (held-out phantoms or real BraTS training cases) ------------------------------
def score_synthesis(pred: np.ndarray, truth_raw: np.ndarray, inputs: Mapping[str, np.ndarray], *,
                    seg: np.ndarray | None = None, lower: float = 0.1, upper: float = 99.9) -> dict:
    """Scores of a synthesized contrast and of the no-learning baseline against the true contrast.

    ``ssim``/``psnr``: truth percentile-normalised like the model's inputs (``lower``/``upper`` → [0, 1]),
    3D SSIM (Gaussian σ 1.5) and PSNR with data range 1.  ``brasyn_*``: the BraSyn 2024 protocol (each image
    0.5/99.5-percentile scaled; tumour = ``seg > 0``).  The baseline is the oracle histogram-matched best
    available contrast (:func:`medfusion.baselines.best_contrast_baseline`).
    """
    from .baselines import best_contrast_baseline
    from .metrics import brasyn_ssim, psnr, ssim

    norm = PercentileNormalize(lower, upper)
    truth = np.asarray(norm(truth_raw[None]))[0]
    normed = {c: np.asarray(norm(np.asarray(v)[None]))[0] for c, v in inputs.items()}
    base_name, baseline = best_contrast_baseline(normed, truth)

    def scores(img):
        out = {"ssim": ssim(img, truth, data_range=1.0), "psnr": psnr(img, truth, data_range=1.0)}
        out.update({f"brasyn_{k}": v for k, v in brasyn_ssim(img, truth_raw, seg).items()})
        return out

    return {"model": scores(pred), "baseline": {"name": f"oracle histogram-matched {base_name}", **scores(baseline)},
            "_images": {"truth": truth, "baseline": baseline, "inputs": normed}}


def evaluate_heldout(
    model: CWDMModel,
    dataset_dir: str | os.PathLike,
    *,
    missing: Sequence[str] | None = None,
    steps: int = 50,
    sampler: str = "ddim",
    seed: int = 0,
    device: str | torch.device = "cpu",
    max_cases: int | None = None,
    report: str | os.PathLike | None = None,
) -> dict:
    """Hide each contrast in ``missing`` (default: every contrast the model can synthesize) of every complete
    case in ``dataset_dir``, synthesize it, and score model and baseline (:func:`score_synthesis`).

    Returns ``{"cases": [...], "summary": {missing: {"model": {metric: mean}, "baseline": {...}}, "all": ...}}``
    and writes it as JSON to ``report`` when given.
    """
    import json
    import time

    from .data.brats import list_cases
    from .io import load_volume

    cases = [c for c in list_cases(dataset_dir, require_missing=False) if c.missing is None][:max_cases]
    if not cases:
        raise InputError(f"no complete cases in {dataset_dir}")
    targets = list(missing) if missing else ([model.target] if model.target else list(CONTRASTS))
    records = []
    for case in cases:
        vols = load_case(case)
        seg = load_volume(case.seg).data if case.seg else None
        for m in targets:
            inputs = {c: v.data for c, v in vols.items() if c != m}
            t0 = time.time()
            pred = synthesize(model, inputs, m, steps=steps, sampler=sampler, seed=seed, device=device)
            seconds = time.time() - t0
            s = score_synthesis(pred, vols[m].data, inputs, seg=seg, lower=model.lower, upper=model.upper)
            s.pop("_images")
            records.append({"case": case.name, "missing": m, "seconds": seconds, **s})
    summary = {}
    for group in targets + ["all"]:
        rows = [r for r in records if group == "all" or r["missing"] == group]
        summary[group] = {
            who: {k: float(np.mean([r[who][k] for r in rows])) for k in rows[0][who] if k != "name"}
            for who in ("model", "baseline")
        }
        summary[group]["n"] = len(rows)
        summary[group]["seconds_per_volume"] = float(np.mean([r["seconds"] for r in rows]))
    result = {"dataset": os.fspath(dataset_dir), "steps": steps, "sampler": sampler, "seed": seed,
              "model_info": model.info, "cases": records, "summary": summary}
    if report is not None:
        Path(report).parent.mkdir(parents=True, exist_ok=True)
        Path(report).write_text(json.dumps(result, indent=2) + "\n")
    return result


class CWDMEvaluator:
    """Bundle entry point for ``evaluate.json``: :func:`evaluate_heldout` with a checkpoint path."""

    def __init__(self, checkpoint, dataset_dir, report, *, missing=None, steps=50, sampler="ddim", seed=0,
                 device="cpu", max_cases=None):
        self.checkpoint, self.device = checkpoint, device
        self.kwargs = dict(dataset_dir=dataset_dir, report=report, missing=missing, steps=int(steps),
                           sampler=sampler, seed=int(seed), device=device, max_cases=max_cases)

    def run(self) -> dict:
        result = evaluate_heldout(load_model(self.checkpoint, self.device), **self.kwargs)
        for group, s in result["summary"].items():
            print(f"[evaluate] {group}: model SSIM {s['model']['ssim']:.4f} PSNR {s['model']['psnr']:.2f} | "
                  f"baseline SSIM {s['baseline']['ssim']:.4f} PSNR {s['baseline']['psnr']:.2f} (n={s['n']})")
        return result
