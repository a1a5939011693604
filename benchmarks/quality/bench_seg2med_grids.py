"""seg2med on label maps from grids the training phantoms never had: organ means against the prior, per grid.

Each case is a held-out abdomen phantom drawn on another grid — a small anisotropic field of view on an oblique
affine without a body mask (the grid of a TotalSegmentator mask made outside this repository: 67×59×23 voxels at
1.4×1.1×3 mm), a large field of view, a finer in-plane grid, an oblique one, and a 117 mm field of view at the
training pixel size (added in bundle 0.8.0: the slice model darkened such small fields of view) — written as NIfTI
files and generated
through ``medfusion.apps.seg2med.files.generate_file`` (the ``medfusion generate`` path). For every class with
at least 50 voxels it reports the generated CT's mean minus the prior's value for that class and minus the phantom
CT's own mean. The target — every organ within 50 HU of its prior value — is scored on the soft-tissue organs of
:data:`medfusion.apps.seg2med.evaluation.SOFT_TISSUE` (bones, bowel, stomach and cartilage are built in the phantoms from marrow, cortex, gas, fluid and
stool, so their true means are far from the table's single value, and a model that learns the truth leaves the prior
there).

    python benchmarks/quality/bench_seg2med_grids.py                   # shipped 2D model, 2 seeds per grid, DDIM 20
    python benchmarks/quality/bench_seg2med_grids.py --weights RUN/model.pt --seeds 1 --steps 5 --out smoke.json
    python benchmarks/quality/bench_seg2med_grids.py --first-seed 2004 --out val.json   # validation phantoms, to choose weights
    python benchmarks/quality/bench_seg2med_grids.py --first-seed 2004 --sample-seed 1 --out val_s1.json  # other noise
    python benchmarks/quality/bench_seg2med_grids.py --spread val.json val_s1.json   # how far apart the organ means are

Results: benchmarks/results/seg2med_grids.json (or --out).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _common import command_line, write_results  # noqa: E402

H = 400.0 / 96
#: name → (shape, spacing mm, rotation about the z axis in degrees, body mask given)
GRIDS = {
    "training grid": ((96, 96, 16), (H, H, 4.6875), 0.0, True),
    "small oblique field of view, no body mask": ((67, 59, 23), (1.4, 1.1, 3.0), 20.0, False),
    "large field of view (512 mm)": ((128, 128, 16), (4.0, 4.0, 5.0), 0.0, True),
    "fine in-plane (2.1 mm), 6 mm slices": ((192, 192, 12), (H / 2, H / 2, 6.0), 0.0, True),
    "oblique (35 degrees), no body mask": ((96, 96, 16), (H, H, 4.6875), 35.0, False),
    "small field of view (117 mm), training pixels": ((28, 28, 16), (H, H, 4.6875), 0.0, True),
}


def _affine(shape, spacing, degrees) -> np.ndarray:
    """Voxel → mm, turned by ``degrees`` about z, the grid's centre at the origin."""
    from medfusion.phantoms.shapes import rotation

    a = np.eye(4)
    a[:3, :3] = rotation(z_deg=degrees) @ np.diag(spacing)
    a[:3, 3] = -a[:3, :3] @ ((np.array(shape) - 1) / 2.0)
    return a


def _case(model, name, seed, folder, steps, sampler, tissues=False, sample_seed=0):
    import nibabel as nib

    from medfusion.apps.seg2med.evaluation import SOFT_TISSUE, organ_errors
    from medfusion.apps.seg2med.files import generate_file
    from medfusion.apps.seg2med.inference import from_ras, to_ras
    from medfusion.apps.seg2med.tissues import class_names
    from medfusion.metrics.image import region_mean_errors
    from medfusion.phantoms.abdomen import make_abdomen_phantom

    shape, spacing, degrees, with_body = GRIDS[name]
    ph = make_abdomen_phantom(shape, spacing=spacing, seed=seed)
    affine = _affine(shape, spacing, degrees)
    paths = {k: str(folder / f"{k}.nii.gz") for k in ("mask", "body", "tissues", "out")}
    nib.save(nib.Nifti1Image(from_ras(ph["labels"], affine).astype(np.uint8), affine), paths["mask"])
    nib.save(nib.Nifti1Image(from_ras(ph["body"], affine).astype(np.uint8), affine), paths["body"])
    if tissues:
        nib.save(nib.Nifti1Image(from_ras(ph["tissues"], affine).astype(np.uint8), affine), paths["tissues"])
    t0 = time.time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        generate_file(model, paths["mask"], "ct", paths["out"], body=paths["body"] if with_body else None,
                      tissues=paths["tissues"] if tissues else None,
                      steps=steps, sampler=sampler, seed=sample_seed, overwrite=True)
    seconds = time.time() - t0
    ct = to_ras(nib.load(paths["out"]).get_fdata(dtype=np.float32), affine)
    lab = ph["labels"]
    counts = np.bincount(lab.ravel())
    names = {k: v for k, v in class_names("total").items() if k < len(counts) and counts[k] >= 50}
    vs_prior = organ_errors(model, ct, lab, organs=tuple(names.values()))  # each organ against its table value
    vs_truth = region_mean_errors(ct, ph["ct"], lab, names)
    organs = {o: {"voxels": int(counts[k]), "vs_prior": vs_prior[o], "vs_truth": vs_truth[o]} for k, o in names.items()}
    soft = {k: v for k, v in organs.items() if k in SOFT_TISSUE}
    worst = max(soft.items(), key=lambda kv: abs(kv[1]["vs_prior"]))
    return {"grid": name, "seed": seed, "seconds": seconds, "organs": organs,
            "worst_organ": worst[0], "worst_vs_prior": worst[1]["vs_prior"],
            "mean_abs_vs_prior": float(np.mean([abs(o["vs_prior"]) for o in soft.values()])),
            "mean_abs_vs_truth": float(np.mean([abs(o["vs_truth"]) for o in soft.values()])),
            "within_50_hu": all(abs(o["vs_prior"]) <= 50 for o in soft.values())}


def spread(paths: list[str]) -> None:
    """Print how far apart the soft-tissue organ means of runs on the same cases are (e.g. other ``--sample-seed``)."""
    import json

    runs = [{(c["grid"], c["seed"]): c for c in json.loads(Path(p).read_text())["cases"]} for p in paths]
    shared = [k for k in runs[0] if all(k in r for r in runs)]  # files of another benchmark version: their common cases
    soft = set(json.loads(Path(paths[0]).read_text())["soft_tissue_organs"])
    gaps = [max(vals) - min(vals) for k in shared for o in runs[0][k]["organs"] if o in soft
            for vals in [[r[k]["organs"][o]["vs_prior"] for r in runs]]]
    within = [sum(r[k]["within_50_hu"] for k in shared) for r in runs]
    print(f"{len(gaps)} (case, soft-tissue organ) pairs: the runs' organ means differ by {np.median(gaps):.1f} HU "
          f"at the median, {max(gaps):.1f} HU at most; cases within 50 HU per run (of the {len(shared)} all runs "
          f"share): {within}")


def main() -> None:
    if sys.argv[1:2] == ["--spread"]:
        return spread(sys.argv[2:])
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", help="checkpoint (default: the shipped bundle's models/model.pt)")
    p.add_argument("--seeds", type=int, default=2, help="held-out phantoms per grid (seeds 3000, 3001, ...)")
    p.add_argument("--first-seed", type=int, default=3000,
                   help="the first phantom seed (3000 and up: held out; 2004 and up: fresh validation phantoms)")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--sampler", default="ddim")
    p.add_argument("--tissues", action="store_true", help="give the phantoms' tissue_types maps (default: none)")
    p.add_argument("--sample-seed", type=int, default=0, help="the sampler's seed (its starting noise; default 0)")
    p.add_argument("--out")
    a = p.parse_args()

    from medfusion.apps.seg2med.evaluation import SOFT_TISSUE
    from medfusion.apps.seg2med.model import load_model
    from medfusion.paths import bundle_dir

    model = load_model(a.weights or bundle_dir("totalseg_mask_to_ct_mr") / "models" / "model.pt")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in GRIDS:
            for seed in range(a.first_seed, a.first_seed + a.seeds):
                rows.append(_case(model, name, seed, Path(tmp), a.steps, a.sampler, a.tissues, a.sample_seed))
                r = rows[-1]
                print(f"{name:45s} seed {seed}: worst {r['worst_organ']} {r['worst_vs_prior']:+.1f} HU, mean |vs prior| "
                      f"{r['mean_abs_vs_prior']:.1f} HU, |vs truth| {r['mean_abs_vs_truth']:.1f} HU, {r['seconds']:.1f} s",
                      flush=True)
    path = write_results("seg2med_grids", {
        "command": command_line(), "model": str(a.weights or "shipped models/model.pt"),
        "model_info": {k: model.info.get(k) for k in ("description", "train_steps")}, "steps": a.steps,
        "sampler": a.sampler, "sample_seed": a.sample_seed, "tissues": a.tissues,
        "target": "every soft-tissue organ's mean within 50 HU of its prior value",
        "soft_tissue_organs": list(SOFT_TISSUE),
        "all_within_50_hu": all(r["within_50_hu"] for r in rows), "cases": rows}, a.out)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
