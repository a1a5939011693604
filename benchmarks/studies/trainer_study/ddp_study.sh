#!/bin/bash
# SupervisedTrainer (and our loop) under torchrun, 2 processes, gloo on CPU; tiny runs.
set -e
cd "$(dirname "$0")"
export OMP_NUM_THREADS=1
PY="${PYTHON:-python}"
TR="${TORCHRUN:-torchrun}"
R=runs/ddp; rm -rf $R
T="$TR --standalone --nproc_per_node=2"
$T st_run.py --mode natural --iters 12 --out $R/nat --phase whole --quiet
$T st_run.py --mode exact --iters 12 --out $R/ex_whole --phase whole --quiet
$T st_run.py --mode exact --iters 12 --stop 6 --out $R/ex_parts --phase p1 --quiet
$T st_run.py --mode exact --iters 12 --out $R/ex_parts --phase p2 --resume --quiet
$T st_run.py --mode natural --iters 12 --stop 6 --out $R/nat_parts --phase p1 --quiet
$T st_run.py --mode natural --iters 12 --out $R/nat_parts --phase p2 --resume --quiet
$T ours_run.py --iters 12 --out $R/ours_whole --phase whole --distributed > $R/ours.log 2>&1
$PY - <<'PYEOF'
import json
from compare import compare
R = "runs/ddp"
def digests(d, phase):
    return [[r["rng"] for r in json.load(open(f"{R}/{d}/trace_{phase}_rank{k}.json"))] for k in (0, 1)]
for d in ("nat", "ex_whole"):
    a, b = digests(d, "whole")
    print(f"{d}: iterations per rank {len(a)}/{len(b)}; noise-RNG state identical on both ranks at "
          f"{sum(x == y for x, y in zip(a, b))}/{len(a)} iterations")
print("DDP exact 12 vs 6+resume:", compare(f"{R}/ex_whole/weights_whole.pt", f"{R}/ex_parts/weights_p2.pt"))
print("DDP natural 12 vs 6+resume:", compare(f"{R}/nat/weights_whole.pt", f"{R}/nat_parts/weights_p2.pt"))
print("DDP exact SupervisedTrainer 12 vs our CWDMTrainer(distributed) 12:",
      compare(f"{R}/ex_whole/weights_whole.pt", f"{R}/ours_whole/weights_whole.pt"))
import torch
ck = torch.load(f"{R}/ex_parts/last.pt", weights_only=True)
print("last.pt keys:", sorted(ck), "| generator states saved:", len(ck["noise_generator"]["states"]))
PYEOF
