"""seg2med speed and memory: seconds per volume and peak memory of the 2D slice model and the 3D full-volume model
generating a CT from a label map of X×Y×Z voxels (an abdomen phantom's), each in a fresh process.

    python benchmarks/speed/bench_seg2med_speed.py                          # 256×256×64, DDIM 50, CPU
    python benchmarks/speed/bench_seg2med_speed.py --shape 512 512 64 --device cuda --precision bfloat16
Results: benchmarks/results/seg2med_speed.json (or --out). Peak memory: the process's maximum resident set
(CPU) and ``torch.cuda.max_memory_allocated`` (GPU).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _common import add_precision_option, command_line, run_child, write_results  # noqa: E402

_CHILD = r"""
import json, resource, sys, time
import torch
from medfusion.apps.seg2med.inference import generate
from medfusion.apps.seg2med.model import load_model
from medfusion.phantoms.abdomen import make_abdomen_phantom
a = json.loads(sys.argv[1])
ph = make_abdomen_phantom(tuple(a["shape"]), seed=3000)
model = load_model(a["weights"], a["device"])
kw = dict(body=ph["body"], spacing=tuple(float(v) for v in abs(ph["affine"].diagonal()[:3])), steps=a["steps"], seed=0,
          device=a["device"], precision=a["precision"], batch_size=a["batch_size"])
if a["device"].startswith("cuda"):
    torch.cuda.reset_peak_memory_stats()
t0 = time.perf_counter()
ct = generate(model, ph["labels"], "ct", **kw)
if a["device"].startswith("cuda"):
    torch.cuda.synchronize()
seconds = time.perf_counter() - t0
out = {"seconds": seconds, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
if a["device"].startswith("cuda"):
    out["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
print(json.dumps(out))
"""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["2d", "3d"], choices=("2d", "3d"))
    p.add_argument("--shape", type=int, nargs=3, default=[256, 256, 64])
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--batch-size", type=int, default=16, help="slices per batch of the 2D model")
    p.add_argument("--weights2d", help="2D checkpoint (default: the shipped models/model.pt)")
    p.add_argument("--device", default="cpu")
    add_precision_option(p)
    p.add_argument("--out")
    a = p.parse_args()

    from medfusion.paths import bundle_dir

    models = bundle_dir("totalseg_mask_to_ct_mr") / "models"
    rows = {}
    for which in a.models:
        weights = (a.weights2d if which == "2d" and a.weights2d else models / ("model.pt" if which == "2d" else
                                                                                 "model_3d.pt"))
        args = {"shape": a.shape, "steps": a.steps, "device": a.device, "precision": a.precision,
                "batch_size": a.batch_size, "weights": str(weights)}
        rows[which] = run_child(_CHILD, args, f"bench_seg2med_speed: the {which} run")
        print(f"{which}: {rows[which]}")
    path = write_results("seg2med_speed", {"command": command_line(), "shape": a.shape, "steps": a.steps,
                                           "weights2d": a.weights2d or "shipped models/model.pt",
                                           "device": a.device, "precision": a.precision, "results": rows}, a.out)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
