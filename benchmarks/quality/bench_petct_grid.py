"""PET/CT quality against sampling steps and ensemble size: aggregated Dice (HECKTOR protocol, CT grid) and the
uncertainty's AUROC for errors (over the voxels within 5 mm of the prediction or the truth; for one sample, its own
entropy), for every (steps, samples) pair, on held-out head-and-neck phantoms.

Per case and number of steps, ``max(samples)`` single samples are drawn once (sample ``i`` with seed ``i``, as
:func:`medfusion.apps.petct.inference.segment` seeds its ensemble), and the ensemble of the first ``k`` is their
mean — exactly what ``segment(samples=k)`` gives, at the cost of the largest ensemble only.  Every score comes from
:mod:`medfusion.metrics` (through :func:`medfusion.evaluate.evaluate_arrays` and
:mod:`medfusion.metrics.uncertainty`).

    python benchmarks/quality/bench_petct_grid.py                                   # 8 cases, steps 1 2 5 10, samples 1 2 5 10
    python benchmarks/quality/bench_petct_grid.py --cases 1 --steps 1 2 --samples 1 2 --out /tmp/grid.json   # smoke run
Results: benchmarks/results/petct_grid.json (or --out) and a plot next to it (.png).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _common import add_cache_option, command_line, heldout_phantoms, write_results  # noqa: E402


def _case_rows(model, item, steps_list, samples_list, device) -> list[dict]:
    """Per (steps, samples): labels and entropy on the CT grid for one case."""
    import numpy as np

    from medfusion.apps.petct.geometry import to_ct_grid
    from medfusion.apps.petct.files import prepare_case
    from medfusion.apps.petct.inference import label_map, predictive_entropy, segment
    from medfusion.io import load_volume

    case = prepare_case(item["pet"], item["ct"], model.preprocessing, model.divisor)
    truth = np.rint(load_volume(item["label"]).data).astype(np.uint8)
    rows = []
    for steps in steps_list:
        draws = [segment(model, case.pet_suv, case.ct_hu, samples=1, steps=steps, seed=i, device=device).probabilities
                 for i in range(max(samples_list))]
        for k in samples_list:
            prob = np.mean(draws[:k], axis=0)
            rows.append({"steps": steps, "samples": k, "name": item["name"], "truth": truth,
                         "spacing": case.ct.spacing,
                         "labels": to_ct_grid(label_map(prob), case.grid, case.ct, order=0),
                         "entropy": to_ct_grid(predictive_entropy(prob), case.grid, case.ct, order=1)})
    return rows


def _score(rows: list[dict]) -> dict:
    import numpy as np

    from medfusion.apps.petct.evaluation import BAND_MM
    from medfusion.evaluate import evaluate_arrays
    from medfusion.metrics.uncertainty import error_auroc, evaluation_region

    rep = evaluate_arrays([{"case": r["name"], "pred": r["labels"], "ref": r["truth"], "spacing": r["spacing"]}
                           for r in rows], protocol="hecktor")
    out = {k: float(v) for k, v in rep.set_metrics.items()}
    out["error_auroc_mean"] = float(np.nanmean([  # over the band where errors can be, as the held-out evaluation
        error_auroc(r["entropy"], r["labels"], r["truth"],
                    region=evaluation_region(r["labels"], r["truth"], r["spacing"], band_mm=BAND_MM))
        for r in rows]))
    return out


def _plot(table: list[dict], path: Path, key: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    for steps in sorted({r["steps"] for r in table}):
        sel = [r for r in table if r["steps"] == steps]
        ax.plot([r["samples"] for r in sel], [r[key] for r in sel], marker="o", label=f"{steps} DDIM steps")
    ax.set_xscale("log")
    ax.set_xlabel("ensemble size (samples)")
    ax.set_ylabel(key)
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", type=int, default=8)
    p.add_argument("--steps", type=int, nargs="+", default=[1, 2, 5, 10])
    p.add_argument("--samples", type=int, nargs="+", default=[1, 2, 5, 10])
    p.add_argument("--weights", help="checkpoint (default: the shipped bundle's models/model.pt)")
    p.add_argument("--device", default="cpu")
    add_cache_option(p)
    p.add_argument("--out")
    a = p.parse_args()

    from medfusion.apps.petct.model import load_model
    from medfusion.apps.petct.train import hecktor_datalist
    from medfusion.paths import bundle_dir

    model = load_model(a.weights or bundle_dir("hecktor_petct_diffseg") / "models" / "model.pt", a.device)
    data = heldout_phantoms(a.cases, (96, 96, 48), cache=a.cache, kind="headneck")
    rows = [r for it in hecktor_datalist(data) for r in _case_rows(model, it, a.steps, a.samples, a.device)]
    table = []
    for steps in a.steps:
        for k in a.samples:
            table.append({"steps": steps, "samples": k,
                          **_score([r for r in rows if r["steps"] == steps and r["samples"] == k])})
            print(table[-1], flush=True)
    path = write_results("petct_grid", {"command": command_line(), "dataset": f"held-out head-and-neck phantoms, "
                                        f"seeds 3000–{3000 + a.cases - 1}", "device": a.device, "table": table}, a.out)
    _plot(table, path.with_suffix(".png"), "dsc_agg_mean")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
