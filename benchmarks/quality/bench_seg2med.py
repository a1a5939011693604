"""Shipped seg2med weights (2D slice model and 3D full-volume model) vs the no-learning baselines on held-out
abdomen phantoms.

Scores: ``medfusion.apps.seg2med.evaluation.evaluate_heldout`` — the ``synthrad`` protocol of
:mod:`medfusion.metrics`, SynthRAD2023's definition (MAE of the raw values, PSNR of the clipped images and one 3D
SSIM, inside the body; CT window [−1024, 3000] HU, MR [0, window maximum]), the mean absolute per-organ mean error
(HU, CT targets) and the slice-to-slice difference relative to
the truth's (``interslice_ratio``: 1 = as smooth along z as the truth; slice-wise stripes raise it).  Baselines:
the prior image (generation) and the input histogram-matched to the true target (conversion; an oracle).

    python benchmarks/quality/bench_seg2med.py                       # 4 held-out 96×96×64 phantoms, DDIM 20, CPU
    python benchmarks/quality/bench_seg2med.py --models 2d --tasks prior:ct --cases 1 --steps 5 --out smoke.json

The sampling defaults are the application's (``seg2med.model.DEFAULT_STEPS`` / ``DEFAULT_SAMPLER``).
Results: benchmarks/results/seg2med_quality.json (or --out).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _common import add_heldout_options, command_line, heldout_phantoms, write_results  # noqa: E402

from medfusion.apps.seg2med.model import DEFAULT_SAMPLER, DEFAULT_STEPS  # noqa: E402
from medfusion.core.schedule import SPACINGS  # noqa: E402

DEFAULT_TASKS = ("prior:ct", "prior:t1", "prior:t2", "t1:ct", "ct:t1")
#: the targets: the model beats the baseline in SSIM and MAE on every generation task (issue 8)
TARGET_TASKS = ("prior→ct", "prior→t1", "prior→t2")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["2d", "3d"], choices=("2d", "3d"))
    p.add_argument("--weights2d", help="2D checkpoint (default: the shipped bundle's models/model.pt)")
    p.add_argument("--weights3d", help="3D checkpoint (default: the shipped bundle's models/model_3d.pt)")
    p.add_argument("--tasks", nargs="+", default=list(DEFAULT_TASKS), help="source:target pairs")
    p.add_argument("--via", nargs="+", default=["prior", "image"], choices=("prior", "image"),
                   help="how conversions run, side by side (default both: the authors' way through the label map, "
                   "and the image-conditioned model)")
    p.add_argument("--tissues", action="store_true", help="give the phantoms' tissue_types maps (default: none, as "
                   "for users without TotalSegmentator's licensed task)")
    p.add_argument("--timestep-spacing", choices=SPACINGS, default="uniform",
                   help="the sampler's timestep spacing (default uniform)")
    add_heldout_options(p, cases=4)
    p.set_defaults(steps=DEFAULT_STEPS, sampler=DEFAULT_SAMPLER)
    a = p.parse_args()

    from medfusion.apps.seg2med.evaluation import evaluate_heldout
    from medfusion.apps.seg2med.model import load_model
    from medfusion.paths import bundle_dir

    bundle = bundle_dir("totalseg_mask_to_ct_mr")
    data = heldout_phantoms(a.cases, a.shape, cache=a.cache, kind="abdomen")
    tasks = [tuple(t.split(":")) for t in a.tasks]
    result = {"dataset": f"held-out abdomen phantoms, seeds 3000–{3000 + a.cases - 1}, shape {a.shape}",
              "steps": a.steps, "sampler": a.sampler, "timestep_spacing": a.timestep_spacing, "via": a.via,
              "tissues": a.tissues,
              "precision": a.precision, "device": a.device, "models": {}}
    for which in a.models:
        default = bundle / "models" / ("model.pt" if which == "2d" else "model_3d.pt")
        model = load_model(getattr(a, f"weights{which}") or default, a.device)
        out = evaluate_heldout(model, data, tasks=tasks, via=a.via, tissues=a.tissues, steps=a.steps, sampler=a.sampler,
                               timestep_spacing=a.timestep_spacing, seed=a.seed, device=a.device,
                               precision=a.precision)
        out["model_info"] = {k: model.info.get(k) for k in ("train_steps", "best_val_ssim", "description")}
        out["targets_met"] = _targets(out["summary"])
        result["models"][which] = out
        _print(which, out)
    path = write_results("seg2med_quality", {"command": command_line(), **result}, a.out)
    print(f"wrote {path}")


def _targets(summary: dict) -> dict:
    """Per generation task: does the model beat the prior image in SSIM (higher) and MAE (lower)?"""
    out = {}
    for task in TARGET_TASKS:
        if task in summary:
            m, b = summary[task]["model"], summary[task]["baseline"]
            out[task] = {"ssim": bool(m["ssim"] > b["ssim"]), "mae": bool(m["mae"] < b["mae"])}
    return out


def _print(which: str, out: dict) -> None:
    s = out["summary"]
    metrics = ["ssim", "psnr", "mae", "interslice_ratio", "organ_abs_mean_error"]
    print(f"\n{which} model ({out['seconds_per_task']:.1f} s per volume and task)")
    print(f"{'task':12s} {'':9s} " + " ".join(f"{m:>20s}" for m in metrics))
    for task, v in s.items():
        for who in ("model", "baseline"):
            vals = " ".join(f"{v[who][m]:20.4f}" if m in v[who] else f"{'-':>20s}" for m in metrics)
            print(f"{task:12s} {who:9s} {vals}")


if __name__ == "__main__":
    main()
