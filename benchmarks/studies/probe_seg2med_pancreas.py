"""What makes the slice model paint the pancreas dark: the authors' CT values, or how the model was trained?

A research probe, not a benchmark. Fine-tunes of the shipped 2D weights, identical but for one change
(:data:`VARIANTS`): ``control`` changes nothing; ``distinct`` gives the pancreas 100 HU in the authors' table (no
other class has it) instead of the 40 HU it shares with the small bowel, spleen and spinal cord; ``colon`` gives the
colon 0 HU (medfusion's value, the body's) instead of the liver's 50 HU — the colon holds gas, and at 50 HU the
prior image hardly tells it from the 40 HU organs beside it; ``plain`` trains without tissue maps and field-of-view
crops, as the weights before 0.5.0 were trained (``plain_scratch``: the same from scratch, 2500 steps;
``shipped_scratch``: train.json's settings from scratch on that schedule); ``more_phantoms`` trains on 256 phantoms
instead of 32. The others: 3000 steps, lr 2e-4, no warm-up, a moving average of the weights (0.999), the bundle's
``train.json`` otherwise. Then each generates CT for phantoms on the training grid (validation seeds 2004-2005,
held-out 3000-3001; no tissue maps; 20 DDIM steps) under its own table, and the probe reports each organ's mean
minus the phantom truth's and the share of its voxels below −50 HU (fat or gas) in each.

    python benchmarks/studies/probe_seg2med_pancreas.py train --table control --data TRAIN --val VAL --out RUN_C
    python benchmarks/studies/probe_seg2med_pancreas.py train --table distinct --data TRAIN --val VAL --out RUN_D
    python benchmarks/studies/probe_seg2med_pancreas.py train --table colon --data TRAIN --val VAL --out RUN_COLON
    python benchmarks/studies/probe_seg2med_pancreas.py train --table plain --data TRAIN --val VAL --out RUN_PLAIN
    python benchmarks/studies/probe_seg2med_pancreas.py train --table more_phantoms --data TRAIN256 --val VAL \
        --out RUN_256
    python benchmarks/studies/probe_seg2med_pancreas.py score --control RUN_C/model.pt --distinct RUN_D/model.pt \
        --colon RUN_COLON/model.pt --plain RUN_PLAIN/model.pt --more_phantoms RUN_256/model.pt

(TRAIN, VAL: ``medfusion phantoms --kind abdomen --out TRAIN --n 32 --seed 1000`` and ``--out VAL --n 2 --seed
2000``; TRAIN256: ``--out TRAIN256 --n 256 --seed 10000``; each fine-tune about 20 min on two CPU threads.) The
recorded control is the moving-average fine-tune of the bundle docs, run through ``python -m monai.bundle run`` with
the same settings and validation every 500 steps.
Results: benchmarks/results/seg2med_pancreas.json.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _common import command_line, write_results  # noqa: E402

BUNDLE = Path(__file__).resolve().parents[2] / "bundles" / "totalseg_mask_to_ct_mr"
DISTINCT_HU = 100.0
#: the one change of each variant: CT values of the authors' table (``table``) or training settings of ``train.json``
#: (``settings``). ``colon``: medfusion's value for the colon (the body's), where the authors give it the liver's
#: 50 HU, 10 HU from the pancreas, small bowel and spleen, though it holds gas. ``plain``: trained as the weights
#: before 0.5.0 were, whose pancreas was right — no tissue maps, no field-of-view crops. ``more_phantoms``: nothing
#: changes but the data, 256 training phantoms instead of 32 (``--data`` names them). ``plain_scratch``: ``plain``
#: trained from scratch (2500 steps, lr 5e-4 cosine, 50 warm-up steps, no moving average), as those weights were;
#: ``shipped_scratch``: the same schedule from scratch with train.json's tissue maps and field-of-view crops
_SCRATCH = {"init_weights": None, "max_steps": 2500, "lr": 0.0005, "warmup_steps": 50, "val_every": 500,
            "ema_decay": 0.0}
VARIANTS = {"control": {}, "distinct": {"table": {"pancreas": DISTINCT_HU}}, "colon": {"table": {"colon": 0.0}},
            "plain": {"settings": {"tissue_dropout": 1.0, "fov_augment": 0.0}}, "more_phantoms": {},
            "plain_scratch": {"settings": {"tissue_dropout": 1.0, "fov_augment": 0.0, **_SCRATCH}},
            "shipped_scratch": {"settings": _SCRATCH}}
SEEDS = (2004, 2005, 3000, 3001)
ORGANS = ("pancreas", "small_bowel", "liver", "spleen", "kidney_left", "aorta")


def use_table(kind: str) -> None:
    """The loaded authors' table as variant ``kind`` has it (its ``table`` changes, the authors' values otherwise)."""
    from medfusion.apps.seg2med.prior_tables import prior_lookup, seg2med_table

    classes = seg2med_table()["ct"]["classes"]
    classes.update(pancreas=40.0, colon=50.0)  # the authors' values, whatever an earlier call changed
    classes.update(VARIANTS[kind].get("table", {}))
    prior_lookup.cache_clear()


def train(table: str, data: str, val: str, out: str) -> None:
    from monai.bundle import ConfigParser

    use_table(table)
    parser = ConfigParser()
    parser.read_config(str(BUNDLE / "configs" / "train.json"))
    parser.update({"bundle_root": str(BUNDLE), "dataset_dir": data, "val_dir": val, "output_dir": out,
                   "init_weights": str(BUNDLE / "models" / "model.pt"), "max_steps": 3000, "lr": 0.0002,
                   "warmup_steps": 0, "val_every": 1000, "ema_decay": 0.999, **VARIANTS[table].get("settings", {})})
    parser.get_parsed_content("training").run()


def score(weights: str) -> dict:
    """``{seed: {organ: generated mean − truth mean}}`` on the training grid."""
    import warnings

    import numpy as np

    from medfusion.apps.seg2med.inference import generate
    from medfusion.apps.seg2med.model import load_model
    from medfusion.phantoms.abdomen import make_abdomen_phantom
    from medfusion.apps.seg2med.tissues import class_names

    names = {v: k for k, v in class_names("total").items()}
    model, h = load_model(weights), 400.0 / 96
    rows = {}
    for seed in SEEDS:
        ph = make_abdomen_phantom((96, 96, 16), spacing=(h, h, 4.6875), seed=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ct = generate(model, ph["labels"], "ct", body=ph["body"], spacing=(h, h, 4.6875), steps=20,
                          sampler="ddim", seed=0)
        sel = {o: s for o in ORGANS if (s := ph["labels"] == names[o]).sum() >= 50}
        rows[str(seed)] = {o: {"minus_truth": round(float(ct[s].mean() - ph["ct"][s].mean()), 1),
                               "below_-50_hu": round(float(np.mean(ct[s] < -50)), 3),
                               "truth_below_-50_hu": round(float(np.mean(ph["ct"][s] < -50)), 3)}
                           for o, s in sel.items()}
        print(Path(weights).parent.name, seed, rows[str(seed)], flush=True)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="mode", required=True)
    t = sub.add_parser("train")
    t.add_argument("--table", choices=tuple(VARIANTS), required=True)
    t.add_argument("--data", required=True)
    t.add_argument("--val", required=True)
    t.add_argument("--out", required=True)
    s = sub.add_parser("score")
    for kind in VARIANTS:
        s.add_argument(f"--{kind}", help=f"the {kind} variant's model.pt")
    s.add_argument("--out")
    a = p.parse_args()
    if a.mode == "train":
        train(a.table, a.data, a.val, a.out)
        return
    import torch

    torch.set_num_threads(2)
    results = {}
    for kind in VARIANTS:
        if getattr(a, kind):
            use_table(kind)
            results[kind] = score(getattr(a, kind))
    path = write_results("seg2med_pancreas", {
        "command": command_line(), "variants": VARIANTS,
        "measure": "per organ: the generated CT's mean minus the phantom truth's (HU), and the fractions of its voxels "
                   "below -50 HU in the generated CT and in the truth; training grid, 20 DDIM steps",
        "results": results}, a.out)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
