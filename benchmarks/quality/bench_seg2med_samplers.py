"""Choose the seg2med 3D model's default sampler (and weights) on validation phantoms (not the held-out benchmark's).

A candidate is ``sampler:steps[:spacing][@weights]`` — DDIM or DDPM (strided ancestral steps), the number of steps,
the timesteps' spacing (``uniform``, the default, or ``quadratic``) and which of the ``--weights`` (``label=path``;
default ``shipped=`` the bundle's ``models/model_3d.pt``; the first label when none is named).  Seed 0, float32.
The rule, fixed before the first run: count the issue's 9 conditions met (per task mask → CT/T1/T2: SSIM above the
prior image's, MAE below it, slice-to-slice ratio within [0.9, 1.1]); the most conditions wins, ties by the mean
SSIM over the three tasks, and a tie on both keeps the first candidate (the current default).  Only the chosen
setting is then run on the held-out phantoms (``bench_seg2med.py``).  Scores: as ``bench_seg2med.py``
(``seg2med.evaluate_heldout``, the ``synthrad`` protocol of ``medfusion.metrics``).

Runs so far (each on phantoms that no earlier choice had seen; training used seeds 1000–1031, the training runs'
validation 2000–2003, the held-out benchmark 3000+):

- seeds 2004–2007, the step-6000 weights: DDIM and DDPM at 20 and 50 steps →
  ``benchmarks/results/seg2med_samplers_3d.json`` (DDPM 20 chosen)::

    python benchmarks/quality/bench_seg2med_samplers.py --candidates ddim:20 ddim:50 ddpm:20 ddpm:50

- seeds 2008–2011, the step-6000 weights against a fine-tuned candidate (``seg2med_samplers_3d_finetune.json``)::

    python benchmarks/quality/bench_seg2med_samplers.py --seed0 2008 --weights shipped=SHIPPED.pt new=FINETUNED.pt \
        --candidates ddpm:20@shipped ddpm:20@new ddim:20@new ddpm:20:quadratic@new ddpm:20:quadratic@shipped \
        --out benchmarks/results/seg2med_samplers_3d_finetune.json

- seeds 2012–2015, the step-8500 weights against an EDM-style ``skip`` fine-tune of them
  (``seg2med_samplers_3d_skip.json``; the shipped weights kept)::

    python benchmarks/quality/bench_seg2med_samplers.py --seed0 2012 --weights shipped=SHIPPED.pt skip=SKIP.pt \
        --candidates ddim:20@shipped ddim:20@skip ddim:20:quadratic@skip ddpm:20:quadratic@skip ddpm:20@skip \
        --out benchmarks/results/seg2med_samplers_3d_skip.json
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _common import add_cache_option, command_line, heldout_phantoms, write_results  # noqa: E402

TASKS = (("prior", "ct"), ("prior", "t1"), ("prior", "t2"))
VALIDATION_SEED = 2004


def conditions_met(summary: dict) -> int:
    """How many of the 9 conditions (3 per task) the model meets."""
    met = 0
    for s in summary.values():
        met += s["model"]["ssim"] > s["baseline"]["ssim"]
        met += s["model"]["mae"] < s["baseline"]["mae"]
        met += 0.9 <= s["model"]["interslice_ratio"] <= 1.1
    return int(met)


def parse_candidate(text: str, labels) -> dict:
    """``sampler:steps[:spacing][@weights]`` → ``{"sampler", "steps", "spacing", "weights"}``."""
    spec, _, label = text.partition("@")
    parts = spec.split(":")
    if len(parts) not in (2, 3) or not parts[1].isdigit():
        raise SystemExit(f"bad candidate {text!r}: use sampler:steps[:spacing][@weights]")
    label = label or labels[0]
    if label not in labels:
        raise SystemExit(f"candidate {text!r} names weights {label!r}; --weights has {', '.join(labels)}")
    return {"sampler": parts[0], "steps": int(parts[1]),
            "spacing": parts[2] if len(parts) == 3 else "uniform", "weights": label}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--candidates", nargs="+", default=["ddim:20", "ddim:50", "ddpm:20", "ddpm:50"],
                   help="sampler:steps[:spacing][@weights], the default first (it wins ties)")
    p.add_argument("--cases", type=int, default=4)
    p.add_argument("--seed0", type=int, default=VALIDATION_SEED, help="first validation phantom's seed")
    p.add_argument("--weights", nargs="+", default=None,
                   help="label=path of 3D checkpoints (default: shipped= the bundle's models/model_3d.pt)")
    add_cache_option(p)
    p.add_argument("--out")
    a = p.parse_args()

    import numpy as np

    from medfusion.apps.seg2med.evaluation import evaluate_heldout
    from medfusion.apps.seg2med.model import load_model
    from medfusion.paths import bundle_dir

    weights = dict(w.split("=", 1) for w in a.weights) if a.weights else {
        "shipped": str(bundle_dir("totalseg_mask_to_ct_mr") / "models" / "model_3d.pt")}
    candidates = {c: parse_candidate(c, list(weights)) for c in a.candidates}
    models = {label: load_model(path, "cpu") for label, path in weights.items()}
    data = heldout_phantoms(a.cases, seed0=a.seed0, cache=a.cache, kind="abdomen")
    results = {}
    for cand, c in candidates.items():
        r = evaluate_heldout(models[c["weights"]], data, tasks=TASKS, steps=c["steps"], sampler=c["sampler"],
                             timestep_spacing=c["spacing"], seed=0)
        results[cand] = {**c, "met": conditions_met(r["summary"]),
                         "mean_ssim": float(np.mean([s["model"]["ssim"] for s in r["summary"].values()])),
                         "summary": r["summary"], "seconds_per_task": r["seconds_per_task"]}
        print(f"{cand}: {results[cand]['met']} of 9 conditions, mean SSIM {results[cand]['mean_ssim']:.4f}",
              flush=True)
    chosen = max(a.candidates, key=lambda c: (results[c]["met"], results[c]["mean_ssim"], c == a.candidates[0]))
    payload = {"command": command_line(), "weights": {k: Path(v).name for k, v in weights.items()},
               "dataset": f"validation abdomen phantoms, seeds {a.seed0}–{a.seed0 + a.cases - 1}, "
                          "shape [96, 96, 64]", "candidates": results, "chosen": chosen}
    path = write_results("seg2med_samplers_3d", payload, a.out)
    print(f"chosen: {chosen}; wrote {path}")


if __name__ == "__main__":
    main()
