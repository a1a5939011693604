"""``medfusion demo``: hide one contrast of an embedded sample case, synthesize it, and score it.

The scores come from :func:`medfusion.evaluate.evaluate_arrays` with the ``brasyn`` protocol — the same numbers
``medfusion evaluate --protocol brasyn`` prints for the written NIfTI against the sample's true contrast.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from ...errors import InputError

__all__ = ["run_demo", "montage"]

#: (metric, column title): the two BraSyn scores first, then two additions (whole-volume SSIM and PSNR)
_COLUMNS = (("ssim_tumour", "BraSyn SSIM tumour"), ("ssim_non_tumour", "non-tumour"), ("ssim", "SSIM (whole)"),
            ("psnr", "PSNR dB"))


def _sample_case(data_dir, case: str | None):
    from ...paths import sample_data_dir
    from .layout import find_case

    data_dir = Path(data_dir) if data_dir else sample_data_dir("brats_phantom")
    if not data_dir.is_dir():
        raise InputError(f"sample data folder not found: {data_dir}")
    folders = sorted(p for p in data_dir.iterdir() if p.is_dir() and (case is None or p.name == case))
    if not folders:
        raise InputError(f"no sample case {case or ''} in {data_dir}")
    full = find_case(folders[0], require_missing=False)
    if full.missing is not None:
        raise InputError(f"sample case {full.name} must have all four contrasts to score the demo")
    return full


def run_demo(out_dir="outputs/demo", *, case: str | None = None, missing: str = "t2f", steps: int = 50,
             sampler: str = "ddim", seed: int = 0, device: str = "cpu", precision: str = "float32", weights=None,
             data_dir=None, quiet: bool = False) -> dict:
    """Run the demo and return its metrics; writes ``<case>-<missing>.nii.gz``, ``montage.png`` and
    ``metrics.json`` into ``out_dir``, which replaces the folder of an earlier demo run (a folder the demo did not
    write, or one holding anything else, is never replaced: :class:`~medfusion.outputs.OutputPlan`)."""
    from ...outputs import OutputPlan
    from .layout import check_case

    out = Path(out_dir)
    full = _sample_case(data_dir, case)
    with OutputPlan(inputs=full.inputs()).add_folder(out, owner="medfusion demo"):  # checked before any work
        check_case(full)
        from ...core.precision import resolve_device
        from ...io import save_like, write_atomic
        from ...paths import bundle_dir
        from .evaluation import hide_and_synthesize, score
        from .model import load_model

        resolve_device(device)
        model = load_model(weights or bundle_dir("brats_mri_cwdm"), "cpu")
        progress = None
        if not quiet:
            from ...utils.progress import progress_bar

            progress = progress_bar(f"{full.name}: synthesizing {missing}")
        r = hide_and_synthesize(model, full, missing, steps=steps, sampler=sampler, seed=seed, device=device,
                                precision=precision, progress=progress)
        model_scores = score([r], "pred")
        base_scores = score([r], "baseline")
        metrics = {"case": full.name, "missing": missing, "sampler": sampler, "steps": steps, "seed": seed,
                   "device": str(device), "precision": precision, "seconds": round(r["seconds"], 2),
                   "weights": model.info.get("description", "medfusion cWDM checkpoint"),
                   "protocol": model_scores.description,
                   "model": _values(model_scores), "baseline": {"name": r["baseline_name"], **_values(base_scores)}}
        nifti = save_like(r["pred"], r["reference"], out / f"{full.name}-{missing}.nii.gz")
        montage(r["inputs"], r["pred"], r["truth_normalised"], missing, out / "montage.png",
                baseline=(r["baseline_name"], r["baseline"]))
        write_atomic(out / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    _print_table(metrics, "cWDM" if weights else "cWDM (shipped weights)", r["seconds"])
    print(f"wrote {nifti}, {out / 'montage.png'}, {out / 'metrics.json'}")
    return metrics


def _values(report) -> dict:
    return {k: (None if v is None or not np.isfinite(v) else float(v)) for k, v in report.cases[0].items()
            if k != "case"}


def _print_table(metrics: dict, model_label: str, seconds: float) -> None:
    rows = [("",) + tuple(label for _, label in _COLUMNS)]
    for key, label in (("model", model_label), ("baseline", metrics["baseline"]["name"])):
        m = metrics[key]
        rows.append((label,) + tuple("-" if m.get(k) is None else (f"{m[k]:.2f}" if k == "psnr" else f"{m[k]:.4f}")
                                     for k, _ in _COLUMNS))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    print(f"medfusion demo: {metrics['case']}, {metrics['missing']} hidden and synthesized ({metrics['sampler']}, "
          f"{metrics['steps']} steps, {seconds:.1f} s on {metrics['device']})")
    for r in rows:
        print("  " + "  ".join(v.ljust(w) for v, w in zip(r, widths)))


def montage(inputs: dict, pred: np.ndarray, truth: np.ndarray, missing: str, path, *, baseline=None) -> None:
    """PNG of the middle axial slice: the three inputs, synthesized, truth, (baseline,) |difference|.

    Drawn on a ``matplotlib.figure.Figure`` (no pyplot), so the user's matplotlib backend is never changed."""
    from matplotlib.figure import Figure

    from ...metrics.plots import save_figure

    z = truth.shape[2] // 2
    panels = [(f"input {c}", v) for c, v in inputs.items()]
    panels += [(f"synthesized {missing}", pred), (f"true {missing}", truth)]
    if baseline is not None:
        panels.append((f"baseline ({baseline[0]})", baseline[1]))
    panels.append(("|synthesized − true|", np.abs(pred - truth)))
    fig = Figure(figsize=(2.6 * len(panels), 3.0))
    axes = fig.subplots(1, len(panels))
    for ax, (title, vol) in zip(axes, panels):
        ax.imshow(np.rot90(vol[:, :, z]), cmap="gray", vmin=0, vmax=1 if not title.startswith("|") else 0.5)
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    fig.tight_layout()
    save_figure(fig, os.fspath(path))
