"""Quality vs number of sampling steps: DDIM with few steps against the published 1000-step DDPM.

Case ``i`` of the held-out phantoms has contrast ``i mod 4`` hidden.  Every run is timed (the synthesis only) and
scored like ``medfusion evaluate --protocol brasyn`` (``medfusion.apps.cwdm.evaluation.score``: each image clipped
at its own 0.5/99.5 percentiles and scaled to [0, 1]; BraSyn's tumour / non-tumour SSIM with the case's ``seg``,
and our whole-volume SSIM, PSNR and MSE).  The target compares the whole-volume ``ssim``.

    python benchmarks/quality/bench_steps.py                     # 2 volumes; DDIM 1…100 steps and DDPM 1000 steps
    python benchmarks/quality/bench_steps.py --device cuda --precision bfloat16
Results: benchmarks/results/steps.json (or --out).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _common import (  # noqa: E402
    add_cache_option, add_precision_option, command_line, heldout_phantoms, load_bundle_model, write_results,
)

TARGET_METRIC = "ssim"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", help="checkpoint or bundle (default: the shipped bundle)")
    p.add_argument("--cases", type=int, default=2)
    p.add_argument("--shape", type=int, nargs=3, default=[96, 96, 64])
    p.add_argument("--ddim", type=int, nargs="*", default=[1, 2, 5, 10, 25, 50, 100])
    p.add_argument("--ddpm", type=int, nargs="*", default=[1000])
    p.add_argument("--device", default="cpu")
    add_precision_option(p)
    add_cache_option(p)
    p.add_argument("--out")
    a = p.parse_args()

    import numpy as np

    from medfusion.apps.cwdm import CONTRASTS, list_cases, load_case, synthesize
    from medfusion.apps.cwdm.evaluation import score
    from medfusion.io import load_volume

    model = load_bundle_model(a.weights, a.device)
    cases = list_cases(heldout_phantoms(a.cases, a.shape, cache=a.cache), require_missing=False)
    runs = [("ddim", n) for n in a.ddim] + [("ddpm", n) for n in a.ddpm]
    rows = []
    metrics: list[str] = []
    for i, case in enumerate(cases):
        vols = load_case(case)
        seg = load_volume(case.seg).data if case.seg else None
        missing = CONTRASTS[i % 4]
        inputs = {k: v.data for k, v in vols.items() if k != missing}
        for sampler, steps in runs:
            t0 = time.time()
            pred = synthesize(model, inputs, missing, steps=steps, sampler=sampler, seed=0, device=a.device,
                              precision=a.precision)
            sec = time.time() - t0
            report = score([{"name": case.name, "missing": missing, "pred": pred, "truth": vols[missing].data,
                             "seg": seg, "spacing": vols[missing].spacing}])
            s = {k: v for k, v in report.cases[0].items() if k != "case"}
            metrics += [m for m in s if m not in metrics]
            rows.append({"case": case.name, "missing": missing, "sampler": sampler, "steps": steps, "seconds": sec,
                         **s})
            vals = "  ".join(f"{m} {s[m]:.4f}" for m in s)
            print(f"{case.name} {missing} {sampler:4s} {steps:5d} steps  {vals}  {sec:7.1f} s", flush=True)
    if TARGET_METRIC not in metrics:
        sys.exit(f"bench_steps: the brasyn protocol no longer reports {TARGET_METRIC!r} (it reports "
                 f"{', '.join(metrics)}) - update TARGET_METRIC")

    def mean(values):
        v = np.array([np.nan if x is None else x for x in values], dtype=np.float64)
        v = v[np.isfinite(v)]
        return float(v.mean()) if v.size else None

    curve = []
    for sampler, steps in runs:
        r = [x for x in rows if x["sampler"] == sampler and x["steps"] == steps]
        curve.append({"sampler": sampler, "steps": steps, **{m: mean([x.get(m) for x in r]) for m in metrics},
                      "seconds_per_volume": mean([x["seconds"] for x in r])})
    result = {"protocol": report.description, "metrics": metrics, "device": a.device, "precision": a.precision,
              "curve": curve, "runs": rows,
              "dataset": f"held-out phantoms, seeds 3000–{3000 + a.cases - 1}, shape {a.shape}"}
    ref = next((c for c in curve if c["sampler"] == "ddpm" and c["steps"] == 1000), None)
    d50 = next((c for c in curve if c["sampler"] == "ddim" and c["steps"] == 50), None)
    if ref and d50:
        result[f"ddim50_minus_ddpm1000_{TARGET_METRIC}"] = d50[TARGET_METRIC] - ref[TARGET_METRIC]
        result["target"] = f"DDIM 50 steps within 0.01 {TARGET_METRIC} (brasyn protocol) of DDPM 1000 steps"
        result["target_met"] = bool(abs(d50[TARGET_METRIC] - ref[TARGET_METRIC]) <= 0.01
                                    or d50[TARGET_METRIC] > ref[TARGET_METRIC])
    print("\n steps  sampler " + " ".join(f"{m:>15s}" for m in metrics) + "   s/volume")
    for c in curve:
        vals = " ".join(f"{c[m]:15.4f}" if c[m] is not None else f"{'undefined':>15s}" for m in metrics)
        print(f"{c['steps']:6d}  {c['sampler']:6s}  {vals}  {c['seconds_per_volume']:8.1f}")
    path = write_results("steps", {"command": command_line(), **result}, a.out)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
