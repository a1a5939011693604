"""Stain translation of slides too large for memory: seconds and peak memory of ``medfusion stain --stream`` (IHC +
cell labels into TIFF files, band by band) on synthetic slides of H × W pixels, each in a fresh process.

The slide is a tiled TIFF (256² tiles, deflate) written tile by tile: an ellipse of tissue (tiles of
``medfusion phantoms --kind stain`` tissue, seeds 3000–3007, in a seeded order) on glass (RGB ≈ 240), so about
a third of the tiles are background that the streamed mode does not run.  Comparing slides of the same width and
different heights shows whether memory stays bounded (it should not grow with the height); different widths show
what it grows with.

    python benchmarks/speed/bench_stain_large.py                                 # 10,000² and 2,500 × 10,000, 1 step
    python benchmarks/speed/bench_stain_large.py --sizes 2048x2048 --steps 10
Results: benchmarks/results/stain_large.json (or --out).  Peak memory: the process's maximum resident set.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _common import command_line, run_child, write_results  # noqa: E402

TILE = 256
GLASS = 240

_CHILD = r"""
import json, os, resource, sys, time
import torch
from medfusion.apps.stain.cli import load_translator
from medfusion.apps.stain.files import stain_file
import tifffile
a = json.loads(sys.argv[1])
torch.set_num_threads(a["threads"])
model = load_translator(a["weights"])
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
t0 = time.perf_counter()
stain_file(model, a["slide"], a["ihc"], cells=a["cells"], stream=True, steps=a["steps"], tile=a["tile"],
           overlap=a["overlap"], batch_size=a["batch_size"], seed=0)
seconds = time.perf_counter() - t0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # before reading any output back
with tifffile.TiffFile(a["cells"]) as tif:  # the largest label, strip by strip
    page = tif.pages[0]
    nuclei = max(int(seg.max()) for seg, _, _ in page.segments())
print(json.dumps({"seconds": seconds, "peak_rss_mb": peak, "rss_before_mb": base, "nuclei": nuclei,
                  "ihc_mb_on_disk": os.path.getsize(a["ihc"]) / 2**20}))
"""


def write_slide(path: Path, height: int, width: int, seed: int = 0) -> float:
    """A synthetic H&E slide (see the module docstring); returns the share of tiles with tissue."""
    import tifffile

    from medfusion.phantoms.histology import make_tissue_tile

    pool = [make_tissue_tile((TILE, TILE), seed=3000 + k)["he"] for k in range(8)]
    rng = np.random.default_rng(seed)
    rows, cols = -(-height // TILE), -(-width // TILE)
    order = rng.integers(0, len(pool), (rows, cols))
    glass = np.clip(rng.normal(GLASS, 3, (TILE, TILE, 3)), 0, 255).astype(np.uint8)
    tissue_tiles = 0

    def tiles():
        nonlocal tissue_tiles
        for r in range(rows):
            for c in range(cols):
                yy, xx = np.mgrid[r * TILE:(r + 1) * TILE, c * TILE:(c + 1) * TILE]
                inside = ((yy - height / 2) / (0.45 * height)) ** 2 + ((xx - width / 2) / (0.45 * width)) ** 2 < 1
                tissue_tiles += bool(inside.any())
                yield np.where(inside[..., None], pool[order[r, c]], glass)

    tifffile.imwrite(path, tiles(), shape=(height, width, 3), dtype=np.uint8, tile=(TILE, TILE),
                     photometric="rgb", compression="zlib")
    return tissue_tiles / (rows * cols)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", nargs="+", default=["10000x10000", "2500x10000"], help="H×W, e.g. 10000x10000")
    p.add_argument("--steps", type=int, default=1)
    p.add_argument("--tile", type=int, default=128)
    p.add_argument("--overlap", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--weights", help="checkpoint or bundle (default: the stain bundle's model.pt)")
    p.add_argument("--out")
    a = p.parse_args()

    from medfusion.paths import bundle_dir

    weights = a.weights or str(bundle_dir("he_to_ihc_staindiffuser") / "models" / "model.pt")
    rows = []
    with tempfile.TemporaryDirectory() as work:
        for size in a.sizes:
            height, width = (int(n) for n in size.lower().split("x"))
            slide = Path(work) / f"slide_{height}x{width}.tif"
            tissue = write_slide(slide, height, width)
            args = {"weights": weights, "slide": str(slide), "ihc": str(Path(work) / "ihc.tif"),
                    "cells": str(Path(work) / "cells.tif"), "steps": a.steps, "tile": a.tile, "overlap": a.overlap,
                    "batch_size": a.batch_size, "threads": a.threads}
            row = run_child(_CHILD, args, f"bench_stain_large: {size}")
            rows.append({"height": height, "width": width, "tissue_tile_share": tissue, **row})
            print(rows[-1], flush=True)
            for name in ("ihc.tif", "cells.tif", slide.name):
                (Path(work) / name).unlink()
    keep = {"steps": a.steps, "tile": a.tile, "overlap": a.overlap, "batch_size": a.batch_size, "threads": a.threads,
            "weights": "the bundle's models/model.pt" if a.weights is None else "given by --weights"}
    path = write_results("stain_large", {"command": command_line(), **keep, "results": rows}, a.out)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
