"""``medfusion demo``: hide one contrast of an embedded sample case, synthesize it, and score it."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np

from .errors import InputError

__all__ = ["run_demo", "montage"]


def run_demo(
    out_dir="outputs/demo",
    *,
    case: str | None = None,
    missing: str = "t2f",
    steps: int = 50,
    sampler: str = "ddim",
    seed: int = 0,
    device: str = "cpu",
    weights=None,
    data_dir=None,
    quiet: bool = False,
) -> dict:
    """Run the demo and return its metrics; writes ``<case>-<missing>.nii.gz``, ``montage.png`` and
    ``metrics.json`` into ``out_dir`` (the folder is replaced on each run)."""
    from . import cwdm
    from .data.brats import CONTRASTS, find_case, load_case
    from .io import load_volume, save_like
    from .paths import bundle_dir, sample_data_dir

    data_dir = Path(data_dir) if data_dir else sample_data_dir("brats_phantom")
    if not data_dir.is_dir():
        raise InputError(f"sample data folder not found: {data_dir}")
    out = Path(out_dir)
    _check_replaceable(out)  # before any work: never delete a folder the demo did not make
    folders = sorted(p for p in data_dir.iterdir() if p.is_dir())
    if case is not None:
        folders = [p for p in folders if p.name == case]
    if not folders:
        raise InputError(f"no sample case {case or ''} in {data_dir}")
    full = find_case(folders[0], require_missing=False)
    if full.missing is not None:
        raise InputError(f"sample case {full.name} must have all four contrasts to score the demo")
    vols = load_case(full)
    truth_raw = vols[missing].data
    inputs = {c: vols[c].data for c in CONTRASTS if c != missing}

    t0 = time.time()
    model = cwdm.load_model(weights or bundle_dir("brats_mri_cwdm"), device)
    progress = None
    if not quiet:
        from .progress import progress_bar

        progress = progress_bar(f"{full.name}: synthesizing {missing}")
    pred = cwdm.synthesize(model, inputs, missing, steps=steps, sampler=sampler, seed=seed, device=device,
                           progress=progress)
    seconds = time.time() - t0

    seg = load_volume(full.seg).data if full.seg else None
    scored = cwdm.score_synthesis(pred, truth_raw, inputs, seg=seg, lower=model.lower, upper=model.upper)
    images = scored.pop("_images")
    metrics = {
        "case": full.name,
        "missing": missing,
        "sampler": sampler,
        "steps": steps,
        "seed": seed,
        "device": str(device),
        "seconds": round(seconds, 2),
        "weights": model.info.get("description", "medfusion cWDM checkpoint"),
        **scored,
        "protocol": "ssim/psnr: truth percentile-normalised (0.1/99.9) to [0, 1] like the inputs, 3D SSIM "
                    "(Gaussian σ 1.5), data range 1; brasyn_*: BraSyn 2024 protocol (0.5/99.5 percentiles, "
                    "tumour = seg > 0)",
    }

    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    ref = next(iter(vols.values()))
    nifti = save_like(pred, ref, out / f"{full.name}-{missing}.nii.gz")
    montage(images["inputs"], pred, images["truth"], missing, out / "montage.png",
            baseline=(scored["baseline"]["name"], images["baseline"]))
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")

    rows = [("", "SSIM", "PSNR dB", "BraSyn SSIM tumour", "non-tumour")]
    model_label = "cWDM" if weights else "cWDM (shipped weights)"
    for key, label in (("model", model_label), ("baseline", metrics["baseline"]["name"])):
        m = metrics[key]
        rows.append((label, f"{m['ssim']:.4f}", f"{m['psnr']:.2f}", f"{m.get('brasyn_ssim_tumour', float('nan')):.4f}",
                     f"{m.get('brasyn_ssim_non_tumour', float('nan')):.4f}"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    print(f"medfusion demo: {full.name}, {missing} hidden and synthesized ({sampler}, {steps} steps, "
          f"{seconds:.1f} s on {device})")
    for r in rows:
        print("  " + "  ".join(v.ljust(w) for v, w in zip(r, widths)))
    print(f"wrote {nifti}, {out / 'montage.png'}, {out / 'metrics.json'}")
    return metrics


_DEMO_FILES = ("montage.png", "metrics.json")


def _check_replaceable(out: Path) -> None:
    """The demo replaces its output folder; refuse when that would delete anything the demo does not write."""
    if not out.exists():
        return
    if not out.is_dir():
        raise InputError(f"demo output {out} exists and is not a folder")
    foreign = sorted(p.name for p in out.iterdir()
                     if not (p.is_file() and (p.name in _DEMO_FILES or p.name.endswith(".nii.gz"))))
    if foreign:
        raise InputError(f"demo output folder {out} holds files the demo did not write ({', '.join(foreign[:3])}"
                         f"{', ...' if len(foreign) > 3 else ''}); choose another --out")


def montage(inputs: dict, pred: np.ndarray, truth: np.ndarray, missing: str, path, *, baseline=None) -> None:
    """PNG of the middle axial slice: the three inputs, synthesized, truth, |difference| (and the baseline)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    z = truth.shape[2] // 2
    panels = [(f"input {c}", v) for c, v in inputs.items()]
    panels += [(f"synthesized {missing}", pred), (f"true {missing}", truth)]
    if baseline is not None:
        panels.append((f"baseline ({baseline[0]})", baseline[1]))
    panels.append(("|synthesized − true|", np.abs(pred - truth)))
    fig, axes = plt.subplots(1, len(panels), figsize=(2.6 * len(panels), 3.0))
    for ax, (title, vol) in zip(axes, panels):
        ax.imshow(np.rot90(vol[:, :, z]), cmap="gray", vmin=0, vmax=1 if not title.startswith("|") else 0.5)
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
