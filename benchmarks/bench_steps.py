"""SSIM vs number of sampling steps: DDIM with few steps against the published 1000-step DDPM.

Case ``i`` of the held-out phantoms has contrast ``i mod 4`` hidden.  Every run is scored like the demo (SSIM and
PSNR against the truth, data range 1) and timed.

    python benchmarks/bench_steps.py                     # 2 volumes; DDIM 1…100 steps and DDPM 1000 steps
Results: benchmarks/results/steps.json (or --out).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import heldout_phantoms, write_results  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", help="checkpoint or bundle (default: the shipped bundle)")
    p.add_argument("--cases", type=int, default=2)
    p.add_argument("--shape", type=int, nargs=3, default=[96, 96, 64])
    p.add_argument("--ddim", type=int, nargs="+", default=[1, 2, 5, 10, 25, 50, 100])
    p.add_argument("--ddpm", type=int, nargs="*", default=[1000])
    p.add_argument("--device", default="cpu")
    p.add_argument("--out")
    a = p.parse_args()

    import numpy as np

    from medfusion.cwdm import score_synthesis, synthesize
    from medfusion.data.brats import CONTRASTS, list_cases, load_case
    from medfusion.cwdm import load_model
    from medfusion.paths import bundle_dir

    model = load_model(a.weights or bundle_dir("brats_mri_cwdm"), a.device)
    cases = list_cases(heldout_phantoms(a.cases, a.shape), require_missing=False)
    runs = [("ddim", n) for n in a.ddim] + [("ddpm", n) for n in a.ddpm]
    rows = []
    for i, case in enumerate(cases):
        vols = {k: v.data for k, v in load_case(case).items()}
        missing = CONTRASTS[i % 4]
        inputs = {k: v for k, v in vols.items() if k != missing}
        for sampler, steps in runs:
            t0 = time.time()
            pred = synthesize(model, inputs, missing, steps=steps, sampler=sampler, seed=0, device=a.device)
            sec = time.time() - t0
            s = score_synthesis(pred, vols[missing], inputs, lower=model.lower, upper=model.upper)
            rows.append({"case": case.name, "missing": missing, "sampler": sampler, "steps": steps,
                         "seconds": sec, "ssim": s["model"]["ssim"], "psnr": s["model"]["psnr"]})
            print(f"{case.name} {missing} {sampler:4s} {steps:5d} steps  SSIM {rows[-1]['ssim']:.4f}  "
                  f"PSNR {rows[-1]['psnr']:6.2f}  {sec:7.1f} s", flush=True)
    curve = []
    for sampler, steps in runs:
        r = [x for x in rows if x["sampler"] == sampler and x["steps"] == steps]
        curve.append({"sampler": sampler, "steps": steps, "ssim": float(np.mean([x["ssim"] for x in r])),
                      "psnr": float(np.mean([x["psnr"] for x in r])),
                      "seconds_per_volume": float(np.mean([x["seconds"] for x in r]))})
    result = {"curve": curve, "runs": rows,
              "dataset": f"held-out phantoms, seeds 3000–{3000 + a.cases - 1}, shape {a.shape}"}
    ref = next((c for c in curve if c["sampler"] == "ddpm" and c["steps"] == 1000), None)
    d50 = next((c for c in curve if c["sampler"] == "ddim" and c["steps"] == 50), None)
    if ref and d50:
        result["ddim50_minus_ddpm1000_ssim"] = d50["ssim"] - ref["ssim"]
        result["target"] = "DDIM 50 steps within 0.01 SSIM of DDPM 1000 steps"
        result["target_met"] = bool(abs(d50["ssim"] - ref["ssim"]) <= 0.01 or d50["ssim"] > ref["ssim"])
    print("\n steps  sampler   SSIM    PSNR   s/volume")
    for c in curve:
        print(f"{c['steps']:6d}  {c['sampler']:6s}  {c['ssim']:.4f}  {c['psnr']:6.2f}  {c['seconds_per_volume']:8.1f}")
    cmd = "python benchmarks/" + Path(__file__).name + (" " + " ".join(sys.argv[1:]) if sys.argv[1:] else "")
    path = write_results("steps", {"command": cmd, **result}, a.out)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
