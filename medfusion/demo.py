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
    from .baselines import best_contrast_baseline
    from .data.brats import CONTRASTS, find_case, load_case
    from .io import save_like
    from .metrics import brasyn_ssim, psnr, ssim
    from .paths import bundle_dir, sample_data_dir
    from .transforms.intensity import PercentileNormalize

    data_dir = Path(data_dir) if data_dir else sample_data_dir("brats_phantom")
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
        from .cli.main import _progress_bar

        progress = _progress_bar(f"{full.name}: synthesizing {missing}")
    pred = cwdm.synthesize(model, inputs, missing, steps=steps, sampler=sampler, seed=seed, device=device,
                           progress=progress)
    seconds = time.time() - t0

    truth = np.asarray(PercentileNormalize(model.lower, model.upper)(truth_raw[None]))[0]
    normed = {c: np.asarray(PercentileNormalize(model.lower, model.upper)(v[None]))[0] for c, v in inputs.items()}
    base_name, baseline = best_contrast_baseline(normed, truth)
    seg = None
    if full.seg:
        from .io import load_volume

        seg = load_volume(full.seg).data
    metrics = {
        "case": full.name,
        "missing": missing,
        "sampler": sampler,
        "steps": steps,
        "seed": seed,
        "device": str(device),
        "seconds": round(seconds, 2),
        "weights": model.info.get("description", "medfusion cWDM checkpoint"),
        "model": {"ssim": ssim(pred, truth, data_range=1.0), "psnr": psnr(pred, truth, data_range=1.0),
                  **{f"brasyn_{k}": v for k, v in brasyn_ssim(pred, truth_raw, seg).items()}},
        "baseline": {"name": f"oracle histogram-matched {base_name}",
                     "ssim": ssim(baseline, truth, data_range=1.0),
                     "psnr": psnr(baseline, truth, data_range=1.0),
                     **{f"brasyn_{k}": v for k, v in brasyn_ssim(baseline, truth_raw, seg).items()}},
        "protocol": "ssim/psnr: inputs and truth percentile-normalised (0.1/99.9) to [0, 1], 3D SSIM (Gaussian "
                    "σ 1.5), data range 1; brasyn_*: BraSyn 2024 protocol (0.5/99.5 percentiles, tumour = seg>0)",
    }

    out = Path(out_dir)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    ref = next(iter(vols.values()))
    nifti = save_like(pred, ref, out / f"{full.name}-{missing}.nii.gz")
    montage(normed, pred, truth, missing, out / "montage.png", baseline=(base_name, baseline))
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")

    rows = [("", "SSIM", "PSNR dB", "BraSyn SSIM tumour", "non-tumour")]
    for key, label in (("model", "cWDM (shipped weights)"), ("baseline", metrics["baseline"]["name"])):
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
