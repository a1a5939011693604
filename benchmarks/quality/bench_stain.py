"""Stain translation quality on held-out tiles: the multitask diffusion model, the single-task variants (when their
weights are given), the U-Net baseline and the no-learning references — IHC by the ``bci`` protocol (8-bit PSNR,
SSIM), cells by Dice — on synthetic tiles (seeds 3000 and up) and on the real test strip of scikit-image's IHC image
(columns 384–511, never trained on), every number from :mod:`medfusion.metrics`
(:func:`medfusion.apps.stain.evaluation.evaluate_heldout`); and the seam ratio of the whole real test strip translated
tile by tile at the default tile and overlap, beside the true IHC's ratio at the same edges.

    python benchmarks/quality/bench_stain.py                                     # 16 synthetic + 4 real 128² tiles, 10 steps
    python benchmarks/quality/bench_stain.py --cases 2 --steps 2 --out /tmp/smoke.json          # smoke run
Results: benchmarks/results/stain_quality.json (or --out).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _common import RESULTS, add_cache_option, command_line, heldout_phantoms, write_results  # noqa: E402


def _real_test_tiles(cache: str | None, size: int) -> Path:
    """The real test strip cut into ``size``² tiles, written once."""
    from medfusion.apps.stain.data import write_skimage_dataset

    folder = (Path(cache) if cache else RESULTS / "_heldout") / f"stain-skimage-test-{size}"
    if not (folder / ".complete").is_file():
        write_skimage_dataset(folder, "test", size=size, overwrite=True)
        (folder / ".complete").touch()
    return folder


def _models(a) -> dict:
    from medfusion.apps.stain.baseline import UNetBaseline
    from medfusion.apps.stain.model import load_model
    from medfusion.paths import bundle_dir

    models_dir = bundle_dir("he_to_ihc_staindiffuser") / "models"
    models = {"multitask": load_model(a.weights or models_dir / "model.pt")}
    for name, path in (("ihc_only", a.ihc_only), ("cells_only", a.cells_only)):
        path = path or models_dir / f"{name}.pt"
        if Path(path).is_file():
            models[name] = load_model(path)
    models["unet"] = UNetBaseline.load(a.unet or models_dir / "unet.pt")
    return models


def _table(result: dict) -> list[str]:
    nan = float("nan")
    lines = []
    for name, m in result["models"].items():
        ihc, cells = m.get("ihc", {}), m.get("cells", {})
        lines.append(f"{name:24s} PSNR {ihc.get('psnr', nan):6.2f}  SSIM {ihc.get('ssim', nan):.4f}  "
                     f"Dice {cells.get('dice', nan):.4f}  AJI {cells.get('aji', nan):.4f}  PQ {cells.get('pq', nan):.4f}"
                     f" (SQ {cells.get('sq', nan):.4f}, RQ {cells.get('rq', nan):.4f})  "
                     f"({m['seconds_per_image']:.1f} s/image)")
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", type=int, default=16, help="synthetic held-out tiles")
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--weights", help="multitask checkpoint (default: the bundle's models/model.pt)")
    p.add_argument("--unet", help="U-Net checkpoint (default: the bundle's models/unet.pt)")
    p.add_argument("--ihc-only", help="single-task (IHC) checkpoint (default: the bundle's models/ihc_only.pt)")
    p.add_argument("--cells-only", help="single-task (cells) checkpoint (default: the bundle's models/cells_only.pt)")
    p.add_argument("--device", default="cpu")
    add_cache_option(p)
    p.add_argument("--out")
    a = p.parse_args()

    from medfusion.apps.stain.evaluation import evaluate_heldout

    models = _models(a)
    sets = {"synthetic": heldout_phantoms(a.cases, (a.size, a.size), cache=a.cache, kind="stain"),
            "real_test_strip": _real_test_tiles(a.cache, a.size)}
    result = {"steps": a.steps, "seed": a.seed, "device": a.device, "sets": {},
              "model_info": {k: {i: m.info.get(i) for i in ("train_steps", "best_val_score", "description")}
                             for k, m in models.items()}}
    for name, folder in sets.items():
        r = evaluate_heldout(models, folder, steps=a.steps, seed=a.seed, device=a.device)
        result["sets"][name] = r
        print(f"\n{name} ({r['n_cases']} tiles)\n" + "\n".join(_table(r)), flush=True)
    result["real_strip_seams"] = _real_strip_seams(models, a)
    print("seam ratio on the real test strip (1 = tile edges as smooth as anywhere else): "
          + ", ".join(f"{k} {v:.3f}" for k, v in result["real_strip_seams"]["seam_ratio_ihc"].items()))
    path = write_results("stain_quality", {"command": command_line(), **result}, a.out)
    print(f"wrote {path}")


def _real_strip_seams(models: dict, a) -> dict:
    """The whole real test strip translated tile by tile at each model's default tile and overlap: the seam ratio
    of its IHC at the tile edges, beside the true IHC's ratio at the same edges (its own texture there)."""
    from medfusion.apps.stain.data import split_pairs
    from medfusion.apps.stain.inference import check_tiling, tile_edges, translate
    from medfusion.metrics.image import seam_ratio

    strip = split_pairs("test")
    out: dict = {"shape": list(strip["he"].shape[:2]), "seam_ratio_ihc": {}}
    for name, model in models.items():
        if "ihc" not in model.tasks:
            continue
        tile, overlap = check_tiling(model, None, None)
        rows, cols = (tile_edges(n, tile, overlap) for n in strip["he"].shape[:2])
        ihc = translate(model, strip["he"], steps=a.steps, seed=a.seed, device=a.device)["ihc"]
        out["seam_ratio_ihc"][name] = seam_ratio(ihc, rows, cols)
        out.setdefault("tile_overlap", {})[name] = [tile, overlap]
        out["seam_ratio_ihc"]["truth"] = seam_ratio(strip["ihc"], rows, cols)
    return out


if __name__ == "__main__":
    main()
