"""Speed of ``medfusion evaluate --protocol brats-gli`` (panoptica, organisers' configuration), 100 cases of 128³.

The target (issue 11): 100 cases of 128×128×128 in under a minute on 2 CPU cores.

Data (written once into ``benchmarks/results/_evaluate_brats/``, not committed): 100 reference/prediction pairs of
128³ ``.nii.gz`` label maps at 1 mm (BraTS' grid spacing) with BraTS 2024 glioma labels: 1–3 lesions per case, each
an oedema ball (2, SNFH) around an enhancing rim (3, ET) around a necrotic core (1, NETC), radius 6–20 voxels;
the prediction moves each lesion by a few voxels and resizes it by ±20 %, misses a lesion with probability 0.15
and adds a small spurious ET lesion with probability 0.3.  Timed: the whole command as a user runs it, file
reading and report writing included, with ``--workers 1`` and ``--workers 2``.

    python benchmarks/speed/bench_evaluate_brats.py [--cases 100] [--size 128] [--out FILE] [--cache DIR]

Results: benchmarks/results/evaluate_brats.json (or --out), and a line per run on stdout.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS  # noqa: E402
from bench_evaluate import finish, parse_args, run  # noqa: E402


def _lesion(vol, grid, centre, radius) -> None:
    for label, r in ((2, radius), (3, 0.7 * radius), (1, 0.35 * radius)):
        vol[sum((g - c) ** 2 for g, c in zip(grid, centre)) <= r * r] = label


def make_data(n: int, size: int, cache: str | None = None) -> Path:
    import nibabel as nib
    import numpy as np

    folder = (Path(cache) if cache else RESULTS / "_evaluate_brats") / f"brats-n{n}-{size}"
    if (folder / "done").exists():
        return folder
    for sub in ("ref", "pred"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    grid = np.indices((size,) * 3, dtype=np.float32)
    for i in range(n):
        rng = np.random.default_rng(i)
        ref = np.zeros((size,) * 3, dtype=np.uint8)
        pred = np.zeros_like(ref)
        for _ in range(rng.integers(1, 4)):
            centre = rng.uniform(0.25, 0.75, 3) * size
            radius = rng.uniform(6, 20) * size / 128
            _lesion(ref, grid, centre, radius)
            if rng.random() >= 0.15:
                _lesion(pred, grid, centre + rng.normal(0, 2, 3), radius * rng.uniform(0.8, 1.2))
        if rng.random() < 0.3:
            _lesion(pred, grid, rng.uniform(0.2, 0.8, 3) * size, 3 * size / 128)
        name = f"BraTS-GLI-{i:05d}-000.nii.gz"
        for sub, data in (("ref", ref), ("pred", pred)):
            nib.save(nib.Nifti1Image(data, np.eye(4)), str(folder / sub / name))
    (folder / "done").touch()
    return folder


def main() -> None:
    a = parse_args(__doc__, "_evaluate_brats")
    data = make_data(a.cases, a.size, a.cache)
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for workers in (1, 2):
            rows[f"workers_{workers}"] = {"seconds": round(run([
                "--pred", str(data / "pred"), "--ref", str(data / "ref"), "--protocol", "brats-gli",
                "--out", f"{tmp}/brats{workers}.json", "--workers", str(workers)]), 2)}
    finish("evaluate_brats", a, rows, "seconds", [f"{k}: {r['seconds']:.1f} s" for k, r in rows.items()],
           protocol="brats-gli")


if __name__ == "__main__":
    main()
