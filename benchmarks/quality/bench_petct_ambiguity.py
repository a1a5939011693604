"""Does the PET/CT ensemble add information beyond one sample?  On head-and-neck phantoms with three plausible
annotations per case (raters who draw the tumour border 2 mm inside, on, and 2 mm outside its surface:
``medfusion.phantoms.headneck.RATER_OFFSETS_MM``), for every (DDIM steps, samples) pair: the aggregated Dice of the
ensemble against the reference label map (``hecktor`` protocol, mm³) and the generalised energy distance of its
samples against the three raters (``medfusion.metrics.uncertainty.generalised_energy_distance``, d = 1 − mean IoU
of GTVp and GTVn; lower is better), beside one sample's and the SegResNet baseline's (a single map).

Per case and number of steps, ``max(samples)`` single samples are drawn once (sample ``i`` with seed ``i``, as
``segment(samples=k)`` seeds its ensemble); the ensemble of ``k`` is the mean of the first ``k`` for the Dice and
those ``k`` label maps for the GED.

    python benchmarks/quality/bench_petct_ambiguity.py --seed0 2020 --out benchmarks/results/petct_ambiguity_validation.json
    python benchmarks/quality/bench_petct_ambiguity.py --cases 1 --steps 1 --samples 1 2 --out /tmp/smoke.json   # smoke run
Results: benchmarks/results/petct_ambiguity.json (or --out).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _common import add_cache_option, command_line, heldout_phantoms, write_results  # noqa: E402


def _raters(folder: Path, name: str) -> list:
    import numpy as np

    from medfusion.phantoms.headneck import RATER_OFFSETS_MM, RATERS_FOLDER
    from medfusion.io import load_volume

    return [np.rint(load_volume(folder / RATERS_FOLDER / f"{name}_rater{k + 1}.nii.gz").data).astype(np.uint8)
            for k in range(len(RATER_OFFSETS_MM))]


def _case(model, item, folder: Path, steps_list, samples_list, device) -> list[dict]:
    """Per (steps, samples): the ensemble's label map and its samples' label maps on the CT grid, for one case."""
    import numpy as np

    from medfusion.apps.petct.geometry import to_ct_grid
    from medfusion.apps.petct.files import prepare_case
    from medfusion.apps.petct.inference import label_map, segment

    case = prepare_case(item["pet"], item["ct"], model.preprocessing, model.divisor)
    raters = _raters(folder, item["name"])
    rows = []
    for steps in steps_list:
        draws = [segment(model, case.pet_suv, case.ct_hu, samples=1, steps=steps, seed=i, device=device).probabilities
                 for i in range(max(samples_list))]
        maps = [to_ct_grid(label_map(p), case.grid, case.ct, order=0) for p in draws]
        for k in samples_list:
            rows.append({"steps": steps, "samples": k, "name": item["name"], "raters": raters,
                         "spacing": case.ct.spacing, "maps": maps[:k],
                         "labels": to_ct_grid(label_map(np.mean(draws[:k], axis=0)), case.grid, case.ct, order=0)})
    return rows


def _score(rows: list[dict]) -> dict:
    import numpy as np

    from medfusion.evaluate import evaluate_arrays
    from medfusion.metrics.uncertainty import generalised_energy_distance

    rep = evaluate_arrays([{"case": r["name"], "pred": r["labels"], "ref": r["raters"][1], "spacing": r["spacing"]}
                           for r in rows], protocol="hecktor", metrics=["dsc_agg"])
    geds = [generalised_energy_distance(r["maps"], r["raters"], labels=(1, 2)) for r in rows]
    return {"dsc_agg_mean": float(rep.set_metrics["dsc_agg_mean"]),
            **{k: float(np.mean([g[k] for g in geds])) for k in geds[0]}}


def _baseline(weights, data: Path, device: str) -> dict:
    """The SegResNet: one map per case, against the same raters."""
    from medfusion.apps.petct.evaluation import predict_case
    from medfusion.apps.petct.train import hecktor_datalist

    rows = []
    for item in hecktor_datalist(data):
        r = predict_case(weights, item, device=device)
        rows.append({"name": item["name"], "raters": _raters(data, item["name"]), "spacing": r["spacing"],
                     "maps": [r["labels"]], "labels": r["labels"]})
    return _score(rows)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", type=int, default=8)
    p.add_argument("--seed0", type=int, default=3000, help="first phantom seed (3000: held-out; 2020: validation)")
    p.add_argument("--steps", type=int, nargs="+", default=[1, 2, 5, 10])
    p.add_argument("--samples", type=int, nargs="+", default=[1, 5, 10])
    p.add_argument("--device", default="cpu")
    add_cache_option(p)
    p.add_argument("--out")
    a = p.parse_args()

    from medfusion.apps.petct.baseline import SegResNetBaseline
    from medfusion.apps.petct.model import load_model
    from medfusion.apps.petct.train import hecktor_datalist
    from medfusion.paths import bundle_dir

    models = bundle_dir("hecktor_petct_diffseg") / "models"
    model = load_model(models / "model.pt", a.device)
    data = heldout_phantoms(a.cases, (96, 96, 48), seed0=a.seed0, cache=a.cache, kind="headneck", raters=True)
    rows = [r for it in hecktor_datalist(data) for r in _case(model, it, data, a.steps, a.samples, a.device)]
    table = []
    for steps in a.steps:
        for k in a.samples:
            table.append({"steps": steps, "samples": k,
                          **_score([r for r in rows if r["steps"] == steps and r["samples"] == k])})
            print(table[-1], flush=True)
    baseline = _baseline(SegResNetBaseline.load(models / "segresnet.pt"), data, a.device)
    print("segresnet", baseline)
    path = write_results("petct_ambiguity", {
        "command": command_line(), "dataset": f"head-and-neck phantoms with three raters, seeds {a.seed0}–"
        f"{a.seed0 + a.cases - 1}", "device": a.device, "table": table, "segresnet": baseline}, a.out)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
