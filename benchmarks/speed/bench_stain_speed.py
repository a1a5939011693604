"""Stain translation speed and memory: seconds and peak memory of ``medfusion.apps.stain.inference.translate`` (IHC +
cells, DDIM) on an N×N H&E image tile by tile, in a fresh process per size; and the seam ratio of the output at
the tile edges (``medfusion.metrics.image.seam_ratio``; 1 = no seams).

The network is the bundle's architecture; its weights are the bundle's ``models/model.pt`` when it exists, else
random (speed does not depend on the weights, but the seam ratio of a random network means nothing — the JSON says
which was used).  The H&E image is a synthetic tissue tile of that size (``medfusion phantoms --kind stain``).

    python benchmarks/speed/bench_stain_speed.py                              # 1024² and 2048², 10 steps, CPU
    python benchmarks/speed/bench_stain_speed.py --sizes 1024 --device cuda --precision bfloat16
Results: benchmarks/results/stain_speed.json (or --out). Peak memory: the process's maximum resident set (CPU) and
``torch.cuda.max_memory_allocated`` (GPU).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _common import add_precision_option, command_line, run_child, write_results  # noqa: E402

_CHILD = r"""
import json, os, resource, sys, time
import torch
from medfusion.apps.stain.model import StainModel
from medfusion.phantoms.histology import make_tissue_tile
from medfusion.apps.stain.inference import tile_edges, translate
from medfusion.metrics.image import seam_ratio
a = json.loads(sys.argv[1])
if os.path.exists(a["weights"]):
    model, weights = StainModel.load(a["weights"]), "the bundle's models/model.pt"
else:
    torch.manual_seed(0)
    model, weights = StainModel.create(a["unet"], tasks=a["tasks"], encoder_channels=a["encoder_channels"],
                                       tile=a["tile"]), "random (no trained weights shipped yet)"
he = make_tissue_tile((a["size"], a["size"]), seed=3000)["he"]
if a["device"].startswith("cuda"):
    torch.cuda.reset_peak_memory_stats()
t0 = time.perf_counter()
out = translate(model, he, steps=a["steps"], tile=a["tile"], overlap=a["overlap"], batch_size=a["batch_size"],
                device=a["device"], precision=a["precision"])
if a["device"].startswith("cuda"):
    torch.cuda.synchronize()
seconds = time.perf_counter() - t0
edges = tile_edges(a["size"], a["tile"], a["overlap"])
row = {"size": a["size"], "seconds": seconds, "weights": weights, "tiles_per_axis": len(edges) // 2 + 1,
       "seam_ratio_ihc": seam_ratio(out["ihc"], edges, edges),
       "seam_ratio_cell_probability": seam_ratio(out["cell_probability"], edges, edges),
       "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
if a["device"].startswith("cuda"):
    row["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
print(json.dumps(row))
"""


def main() -> None:
    import json

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[1024, 2048])
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--tile", type=int, default=128)
    p.add_argument("--overlap", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--device", default="cpu")
    add_precision_option(p)
    p.add_argument("--out")
    a = p.parse_args()

    from medfusion.paths import bundle_dir

    bundle = bundle_dir("he_to_ihc_staindiffuser")
    train = json.loads((bundle / "configs" / "train.json").read_text())
    args = {"steps": a.steps, "tile": a.tile, "overlap": a.overlap, "batch_size": a.batch_size, "device": a.device,
            "precision": a.precision, "unet": train["unet"], "tasks": train["tasks"],
            "encoder_channels": train["encoder_channels"], "weights": str(bundle / "models" / "model.pt")}
    rows = []
    for size in a.sizes:
        rows.append(run_child(_CHILD, {**args, "size": size}, f"bench_stain_speed: {size}²"))
        print(rows[-1], flush=True)
    keep = {k: v for k, v in args.items() if k not in ("weights", "unet")}
    path = write_results("stain_speed", {"command": command_line(), **keep, "results": rows}, a.out)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
