"""Speed of ``medfusion evaluate`` on 100 cases of 128³: Dice + HD95 on label maps and SSIM on images.

The target (issue 3): Dice + HD95 + SSIM for 100 cases of 128×128×128 in under a minute on 2 CPU cores.

Data (written once into ``benchmarks/results/_evaluate/``, not committed): 100 reference/prediction pairs of
128³ ``.nii.gz`` label maps with two tumour-like labels (spheres of radius 8–25 voxels, the prediction shifted and
resized) at 1 × 1 × 1.5 mm, and 100 pairs of 128³ float32 images (smooth random texture, prediction = reference
+ noise).  Timed: the whole command as a user runs it — ``medfusion evaluate --protocol labels --metrics dice hd95``
on the label maps and ``medfusion evaluate --protocol image --metrics ssim --data-range 1`` on the images, file
reading and report writing included — in one process (``--workers 1``) and in two (``--workers 2``).

    python benchmarks/speed/bench_evaluate.py [--cases 100] [--size 128] [--out FILE] [--cache DIR]

Results: benchmarks/results/evaluate.json (or --out), and a table on stdout.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _common import RESULTS, write_results  # noqa: E402

TARGET_S = 60.0


def make_data(n: int, size: int, cache: str | None = None) -> Path:
    import nibabel as nib
    import numpy as np
    from scipy.ndimage import gaussian_filter

    folder = (Path(cache) if cache else RESULTS / "_evaluate") / f"n{n}-{size}"
    if (folder / "done").exists():
        return folder
    affine = np.diag([1.0, 1.0, 1.5, 1.0])
    grid = np.indices((size,) * 3, dtype=np.float32)
    for sub in ("labels_ref", "labels_pred", "images_ref", "images_pred"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        rng = np.random.default_rng(i)
        ref = np.zeros((size,) * 3, dtype=np.uint8)
        pred = np.zeros_like(ref)
        for label in (1, 2):
            c = rng.uniform(0.3, 0.7, 3) * size
            r = rng.uniform(8, 25) * size / 128
            for out, centre, radius in ((ref, c, r), (pred, c + rng.normal(0, 2, 3), r * rng.uniform(0.8, 1.2))):
                d2 = sum((g - ci) ** 2 for g, ci in zip(grid, centre))
                out[(d2 <= radius**2) & (out == 0)] = label
        img = gaussian_filter(rng.random((size,) * 3, dtype=np.float32), 3)
        img = (img - img.min()) / (img.max() - img.min())
        noisy = np.clip(img + rng.normal(0, 0.05, img.shape).astype(np.float32), 0, 1)
        name = f"case{i:03d}.nii.gz"
        for sub, data in (("labels_ref", ref), ("labels_pred", pred), ("images_ref", img), ("images_pred", noisy)):
            nib.save(nib.Nifti1Image(data, affine), str(folder / sub / name))
    (folder / "done").touch()
    return folder


def run(args: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "medfusion.cli.main", "evaluate", "--quiet", *args], check=True,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def parse_args(doc: str, cache: str) -> argparse.Namespace:
    """``--cases --size --cache --out`` of the evaluation speed benchmarks."""
    ap = argparse.ArgumentParser(description=doc.split("\n")[0])
    ap.add_argument("--cases", type=int, default=100)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--cache", help=f"folder for the generated data (default: benchmarks/results/{cache}, not "
                    "committed); e.g. a /tmp folder for smoke runs")
    ap.add_argument("--out")
    return ap.parse_args()


def main() -> None:
    a = parse_args(__doc__, "_evaluate")
    data = make_data(a.cases, a.size, a.cache)
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for workers in (1, 2):
            w = ["--workers", str(workers)]
            t_labels = run(["--pred", str(data / "labels_pred"), "--ref", str(data / "labels_ref"), "--protocol",
                            "labels", "--metrics", "dice", "hd95", "--out", f"{tmp}/labels{workers}.json", *w])
            t_images = run(["--pred", str(data / "images_pred"), "--ref", str(data / "images_ref"), "--protocol",
                            "image", "--metrics", "ssim", "--data-range", "1", "--out", f"{tmp}/images{workers}.json",
                            *w])
            rows[f"workers_{workers}"] = {"dice_hd95_s": round(t_labels, 2), "ssim_s": round(t_images, 2),
                                          "total_s": round(t_labels + t_images, 2)}
    finish("evaluate", a, rows, "total_s",
           [f"{k}: Dice+HD95 {r['dice_hd95_s']:.1f} s + SSIM {r['ssim_s']:.1f} s = {r['total_s']:.1f} s"
            for k, r in rows.items()])


def finish(name: str, a: argparse.Namespace, rows: dict, seconds: str, lines: list[str], **extra) -> None:
    """Write ``benchmarks/results/<name>.json`` (or ``--out``) with the target check, and print ``lines``."""
    best = min(r[seconds] for r in rows.values())
    payload = {
        "command": f"python benchmarks/speed/bench_{name}.py" + (f" --cases {a.cases}" if a.cases != 100 else "")
        + (f" --size {a.size}" if a.size != 128 else ""),
        **extra, "cases": a.cases, "shape": [a.size] * 3, "results": rows, "target_s": TARGET_S,
        "target_met": best < TARGET_S,
    }
    path = write_results(name, payload, a.out)
    print("\n".join(lines))
    print(f"target < {TARGET_S:.0f} s: {'met' if best < TARGET_S else 'NOT met'}; wrote {path}")


if __name__ == "__main__":
    main()
