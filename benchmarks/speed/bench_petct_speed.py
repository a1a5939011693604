"""PET/CT segmentation speed and memory: seconds and peak memory of an N-sample diffusion ensemble over a head-and-neck
box of B mm at S mm voxels (the issue's case: 5 samples, 144 mm at 1 mm, i.e. a 144³ working grid), in a fresh
process.

The shipped network (its weights; speed does not depend on them) runs on a working grid of the requested spacing
and box: ``PetCtSegModel`` with ``spacing``/``box_mm`` changed, on a head-and-neck phantom whose CT and PET cover the
box. What is timed is :func:`medfusion.apps.petct.inference.segment` on the resampled arrays (the ensemble);
resampling and writing are reported apart.

    python benchmarks/speed/bench_petct_speed.py                                   # 5 samples × 10 steps, 144 mm at 1 mm, CPU
    python benchmarks/speed/bench_petct_speed.py --device cuda --precision bfloat16
Results: benchmarks/results/petct_speed.json (or --out). Peak memory: the process's maximum resident set (CPU) and
``torch.cuda.max_memory_allocated`` (GPU).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _common import add_precision_option, command_line, run_child, write_results  # noqa: E402

_CHILD = r"""
import json, resource, sys, tempfile, time
import torch
from medfusion.apps.petct.model import PetCtSegModel
from medfusion.phantoms.headneck import write_headneck_case
from medfusion.apps.petct.files import prepare_case
from medfusion.apps.petct.inference import segment
a = json.loads(sys.argv[1])
shipped = PetCtSegModel.load(a["weights"])
model = PetCtSegModel.create(shipped.network_config, spacing=[a["spacing"]] * 3, box_mm=a["box_mm"])
model.network.load_state_dict(shipped.network.state_dict())
folder = tempfile.mkdtemp()
case = write_headneck_case(folder, "HN-SPEED", shape=tuple(a["ct_shape"]), seed=3000, spacing=tuple(a["ct_spacing"]))
t0 = time.perf_counter()
work = prepare_case(case.pet, case.ct, model.preprocessing, model.divisor)
prep = time.perf_counter() - t0
if a["device"].startswith("cuda"):
    torch.cuda.reset_peak_memory_stats()
t0 = time.perf_counter()
seg = segment(model, work.pet_suv, work.ct_hu, samples=a["samples"], steps=a["steps"], device=a["device"],
              precision=a["precision"])
if a["device"].startswith("cuda"):
    torch.cuda.synchronize()
seconds = time.perf_counter() - t0
out = {"working_grid": list(work.grid.shape), "seconds_ensemble": seconds, "seconds_resampling": prep,
       "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
if a["device"].startswith("cuda"):
    out["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
print(json.dumps(out))
"""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--samples", type=int, default=5)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--box-mm", type=float, default=144.0)
    p.add_argument("--spacing", type=float, default=1.0, help="working-grid voxel size (mm)")
    p.add_argument("--device", default="cpu")
    add_precision_option(p)
    p.add_argument("--out")
    a = p.parse_args()

    from medfusion.paths import bundle_dir

    # a CT of 1×1×2 mm voxels covering 192×192×200 mm, so that the box fits below the brain
    args = {"samples": a.samples, "steps": a.steps, "box_mm": a.box_mm, "spacing": a.spacing, "device": a.device,
            "precision": a.precision, "ct_shape": [192, 192, 100], "ct_spacing": [1.0, 1.0, 2.0],
            "weights": str(bundle_dir("hecktor_petct_diffseg") / "models" / "model.pt")}
    row = run_child(_CHILD, args, "bench_petct_speed: the run")
    print(row)
    path = write_results("petct_speed", {"command": command_line(), **{k: v for k, v in args.items()
                                                                        if k != "weights"}, "result": row}, a.out)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
