"""PET/CT head-and-neck tumour segmentation on held-out phantoms: the diffusion ensemble against the SegResNet
baseline (comparable capacity, same data, trained to convergence).

Scores: ``medfusion.apps.petct.evaluation.evaluate_heldout`` — the ``hecktor`` protocol of :mod:`medfusion.metrics`
on the CT grid (Dice and HD95 per class and case; aggregated Dice per class and their mean, the HECKTOR 2022 ranking
value, in mm³), and for the ensemble whether its uncertainty earns its place, over the voxels within 5 mm of the
prediction or the truth: the AUROC for misclassified voxels of its predictive entropy beside two references that
need no ensemble (one sample's entropy; the distance to the predicted boundary), the Brier score and expected
calibration error of the ensemble's and of one sample's probabilities, and the tumour Dice after removing the most
uncertain foreground voxels.

    python benchmarks/quality/bench_petct.py --diffusion RUN/model.pt --baseline RUN_BASELINE/model.pt   # 8 held-out cases
    python benchmarks/quality/bench_petct.py ... --cases 1 --samples 1 --steps 2 --out /tmp/smoke.json
Results: benchmarks/results/petct_quality.json (or --out).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _common import add_heldout_options, command_line, heldout_phantoms, write_results  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--diffusion", help="diffusion checkpoint (default: the shipped bundle's models/model.pt)")
    p.add_argument("--baseline", help="SegResNet checkpoint (default: the shipped bundle's models/segresnet.pt)")
    p.add_argument("--samples", type=int, default=10, help="ensemble size (default 10, the application's)")
    add_heldout_options(p, cases=8)
    p.set_defaults(shape=[96, 96, 48], steps=5)
    a = p.parse_args()

    from medfusion.apps.petct.baseline import SegResNetBaseline
    from medfusion.apps.petct.evaluation import evaluate_heldout
    from medfusion.apps.petct.model import PetCtSegModel
    from medfusion.paths import bundle_dir

    models = {}
    if a.diffusion or not a.baseline:
        models["diffusion"] = PetCtSegModel.load(a.diffusion or bundle_dir("hecktor_petct_diffseg"), a.device)
    if a.baseline or not a.diffusion:
        default = bundle_dir("hecktor_petct_diffseg") / "models" / "segresnet.pt"
        models["segresnet"] = SegResNetBaseline.load(a.baseline or default, a.device)
    data = heldout_phantoms(a.cases, a.shape, cache=a.cache, kind="headneck")
    out = evaluate_heldout(models, data, samples=a.samples, steps=a.steps, sampler=a.sampler, seed=a.seed,
                           device=a.device, precision=a.precision)
    for name, m in models.items():
        out["models"][name]["model_info"] = {k: m.info.get(k) for k in ("train_steps", "best_val_dice_agg",
                                                                        "description")}
    out["dataset"] = f"held-out head-and-neck phantoms, seeds 3000–{3000 + a.cases - 1}, CT shape {a.shape}"
    out.update(samples=a.samples, steps=a.steps, sampler=a.sampler, device=a.device, precision=a.precision)
    _print(out)
    path = write_results("petct_quality", {"command": command_line(), **out}, a.out)
    print(f"wrote {path}")


def _print(out: dict) -> None:
    print(f"{'model':10s} {'DSCagg GTVp':>12s} {'DSCagg GTVn':>12s} {'DSCagg mean':>12s} {'s/case':>8s}  uncertainty")
    for name, m in out["models"].items():
        s = m["set_metrics"]
        unc = m.get("uncertainty")
        curve = "" if unc is None else ", ".join(f"{k}: {v:.3f}" for k, v in unc["tumour_dice_after_removing"].items())
        extra = "" if unc is None else f"Dice after removing {curve}"
        print(f"{name:10s} {s['dsc_agg_GTVp']:12.4f} {s['dsc_agg_GTVn']:12.4f} {s['dsc_agg_mean']:12.4f} "
              f"{m['seconds_per_case']:8.1f}  {extra}")
        if unc is not None:
            print(f"  uncertainty over the {unc['region']}: error AUROC ensemble entropy "
                  f"{unc['auroc_ensemble_entropy']:.3f}, one sample's entropy {unc['auroc_one_sample_entropy']:.3f}, "
                  f"distance to the predicted boundary {unc['auroc_boundary_distance']:.3f}; Brier / ECE ensemble "
                  f"{unc['brier_ensemble']:.4f} / {unc['ece_ensemble']:.4f}, one sample {unc['brier_one_sample']:.4f}"
                  f" / {unc['ece_one_sample']:.4f}")


if __name__ == "__main__":
    main()
