"""Shipped cWDM weights vs the no-learning baseline on held-out phantoms, every contrast hidden in turn.

    python benchmarks/bench_quality.py                  # 6 held-out 96×96×64 phantoms, DDIM 50 steps, CPU
Results: benchmarks/results/quality.json (or --out): per case and contrast, and means per contrast and overall,
for the model and for the oracle histogram-matched best-contrast baseline (medfusion.baselines).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import heldout_phantoms, write_results  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", help="checkpoint or bundle (default: the shipped bundle)")
    p.add_argument("--cases", type=int, default=6)
    p.add_argument("--shape", type=int, nargs=3, default=[96, 96, 64])
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--sampler", default="ddim")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out")
    a = p.parse_args()

    from medfusion.cwdm import evaluate_heldout, load_model
    from medfusion.paths import bundle_dir

    model = load_model(a.weights or bundle_dir("brats_mri_cwdm"), a.device)
    data = heldout_phantoms(a.cases, a.shape)
    result = evaluate_heldout(model, data, steps=a.steps, sampler=a.sampler, device=a.device)
    result["dataset"] = f"held-out phantoms, seeds 3000–{3000 + a.cases - 1}, shape {a.shape}"
    s = result["summary"]
    for group, v in s.items():
        print(f"{group:4s} model SSIM {v['model']['ssim']:.4f} PSNR {v['model']['psnr']:6.2f} | baseline SSIM "
              f"{v['baseline']['ssim']:.4f} PSNR {v['baseline']['psnr']:6.2f}  ({v['n']} volumes, "
              f"{v['seconds_per_volume']:.1f} s each)")
    beats = s["all"]["model"]["ssim"] > s["all"]["baseline"]["ssim"] and s["all"]["model"]["psnr"] > s["all"]["baseline"]["psnr"]
    result["target"] = "model beats the no-learning baseline in SSIM and PSNR on held-out phantoms (mean over all)"
    result["target_met"] = bool(beats)
    cmd = "python benchmarks/" + Path(__file__).name + (" " + " ".join(sys.argv[1:]) if sys.argv[1:] else "")
    path = write_results("quality", {"command": cmd, **result}, a.out)
    print(f"target {'met' if beats else 'NOT met'}; wrote {path}")


if __name__ == "__main__":
    main()
