"""Shipped cWDM weights vs the no-learning baseline on held-out phantoms, every contrast hidden in turn.

Scores: ``medfusion.apps.cwdm.evaluation.evaluate_heldout``, i.e. :func:`medfusion.evaluate.evaluate_arrays` with
the ``brasyn`` protocol (the same numbers as ``medfusion evaluate --protocol brasyn`` on the written files): each
image clipped at its own 0.5/99.5 percentiles and scaled to [0, 1]; BraSyn's tumour / non-tumour SSIM (tumour =
the case's ``seg > 0``) and our additions (whole-volume SSIM, PSNR, MSE).  The metric names are the protocol's.

    python benchmarks/quality/bench_quality.py                  # 6 held-out 96×96×64 phantoms, DDIM 50 steps, CPU
    python benchmarks/quality/bench_quality.py --device cuda --precision bfloat16
Results: benchmarks/results/quality.json (or --out): per case and contrast, and means per contrast and overall,
for the model and for the oracle histogram-matched best-contrast baseline (medfusion.apps.cwdm.baseline).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _common import (  # noqa: E402
    add_heldout_options, command_line, heldout_phantoms, load_bundle_model, write_results,
)

#: the target compares these (mean over every case and contrast): higher is better for both
TARGET_METRICS = ("ssim", "psnr")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", help="checkpoint or bundle (default: the shipped bundle)")
    p.add_argument("--missing", nargs="+", help="contrasts to hide (default: every contrast the model synthesizes)")
    add_heldout_options(p, cases=6)
    a = p.parse_args()

    from medfusion.apps.cwdm.evaluation import evaluate_heldout
    from medfusion.metrics.protocols import LOWER_IS_BETTER

    model = load_bundle_model(a.weights, a.device)
    data = heldout_phantoms(a.cases, a.shape, cache=a.cache)
    result = evaluate_heldout(model, data, missing=a.missing, steps=a.steps, sampler=a.sampler, seed=a.seed,
                              device=a.device, precision=a.precision)
    result["dataset"] = f"held-out phantoms, seeds 3000–{3000 + a.cases - 1}, shape {a.shape}"  # not a local path
    s = result["summary"]
    metrics = list(s["all"]["model"])
    print(f"protocol brasyn, {a.sampler} {a.steps} steps, {a.precision} on {a.device}")
    print(f"{'':5s} {'':9s} " + " ".join(f"{m:>15s}" for m in metrics))
    for group, v in s.items():
        for who in ("model", "baseline"):
            vals = " ".join(f"{v[who][m]:15.4f}" if v[who][m] is not None else f"{'undefined':>15s}" for m in metrics)
            print(f"{group:5s} {who:9s} {vals}")
        print(f"{'':5s} ({v['n']} volumes, {v['seconds_per_volume']:.1f} s each)")

    def better(m: str, model_v, base_v) -> bool | None:
        if model_v is None or base_v is None:
            return None
        lower = any(m == f or m.startswith(f + "_") for f in LOWER_IS_BETTER)
        return bool(model_v < base_v if lower else model_v > base_v)

    overall = s["all"]
    result["model_better_than_baseline"] = {m: better(m, overall["model"][m], overall["baseline"][m]) for m in metrics}
    missing_target = [m for m in TARGET_METRICS if m not in metrics]
    if missing_target:
        sys.exit(f"bench_quality: the brasyn protocol no longer reports {', '.join(missing_target)}; "
                 f"it reports {', '.join(metrics)} - update TARGET_METRICS")
    beats = all(result["model_better_than_baseline"][m] for m in TARGET_METRICS)
    result["target"] = ("model beats the no-learning baseline in brasyn-protocol whole-volume SSIM and PSNR on "
                        "held-out phantoms (mean over all)")
    result["target_metrics"] = list(TARGET_METRICS)
    result["target_met"] = bool(beats)
    path = write_results("quality", {"command": command_line(), **result}, a.out)
    print(f"target {'met' if beats else 'NOT met'}; wrote {path}")


if __name__ == "__main__":
    main()
