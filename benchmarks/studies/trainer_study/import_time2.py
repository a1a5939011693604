"""`import monai` (which loads every submodule, monai.engines and monai.handlers included) with pytorch-ignite
importable vs blocked (as before it was installed); torch imported first, outside the timing; fresh process each,
alternated, 9 repeats, median."""
import json, os, statistics, subprocess, sys
PY = sys.executable
env = {**os.environ, "OMP_NUM_THREADS": "1"}
code = """
import sys, time
if {block}: sys.modules['ignite'] = None  # ImportError on import: monai's optional_import falls back
import torch
t0 = time.perf_counter()
import monai, monai.engines, monai.handlers
t1 = time.perf_counter()
print(t1 - t0, 'ignite.engine' in sys.modules)
"""
res = {"with_ignite": [], "ignite_blocked": []}
for _ in range(9):
    for key, block in (("with_ignite", False), ("ignite_blocked", True)):
        out = subprocess.run([PY, "-c", code.format(block=block)], env=env, capture_output=True, text=True, check=True)
        t, loaded = out.stdout.split(); res[key].append(float(t))
summary = {k: {"median_s": round(statistics.median(v), 3), "min_s": round(min(v), 3), "all_s": [round(x, 3) for x in v]}
           for k, v in res.items()}
summary["difference_of_medians_s"] = round(summary["with_ignite"]["median_s"] - summary["ignite_blocked"]["median_s"], 3)
summary["difference_of_mins_s"] = round(summary["with_ignite"]["min_s"] - summary["ignite_blocked"]["min_s"], 3)
print(json.dumps(summary, indent=1))
