"""Seconds per iteration, our CWDMTrainer vs SupervisedTrainer, 40 iterations, CPU, OMP_NUM_THREADS=1.
Per-iteration time = interval between consecutive loss computations (data loading, forward, backward, step, handlers
and, every 10 iterations, a checkpoint and a log line). Fresh process per run, configurations alternated, REPS repeats.
--dummy: the loss is a parameter's sum times the batch mean (no network forward): the loop's own cost."""
import json, os, statistics, subprocess, sys
from pathlib import Path
HERE = Path(__file__).parent; PY = sys.executable
dummy = "--dummy" in sys.argv
RUNS = HERE / "runs" / ("timing_dummy" if dummy else "timing")
env = {**os.environ, "OMP_NUM_THREADS": "1"}
N, REPS = 40, 7
extra = ["--dummy-loss"] if dummy else []
configs = {
    "ours: CWDMTrainer (save_every=10, log_every=10)":
        [HERE / "ours_run.py", "--iters", N, "--save-every", 10, "--log-every", 10],
    "SupervisedTrainer natural (StatsHandler every 10, CheckpointSaver every 10, decollate=True)":
        [HERE / "st_run.py", "--mode", "natural", "--iters", N, "--save-every", 10, "--quiet"],
    "SupervisedTrainer natural, decollate=False":
        [HERE / "st_run.py", "--mode", "natural", "--iters", N, "--save-every", 10, "--quiet", "--decollate", 0],
    "SupervisedTrainer exact (+generator state, seeded sampler/items), decollate=True":
        [HERE / "st_run.py", "--mode", "exact", "--iters", N, "--save-every", 10, "--quiet"],
}
res = {k: [] for k in configs}
for rep in range(REPS):
    for i, (name, cmd) in enumerate(configs.items()):
        out = RUNS / f"c{i}_r{rep}"
        subprocess.run([PY, *map(str, cmd), *extra, "--out", str(out), "--phase", "t"], env=env, check=True,
                       capture_output=True)
        tr = json.loads((out / "trace_t_rank0.json").read_text())
        dts = [b["t"] - a["t"] for a, b in zip(tr, tr[1:])]
        cpu = [b["c"] - a["c"] for a, b in zip(tr, tr[1:])]
        res[name].append({"median_s": statistics.median(dts), "mean_s": statistics.mean(dts), "n": len(dts),
                          "cpu_median_s": statistics.median(cpu)})
        print(name, rep, res[name][-1], flush=True)
summary = {k: {"median_of_repeat_medians_ms": round(1e3 * statistics.median(r["median_s"] for r in v), 3),
               "min_of_repeat_medians_ms": round(1e3 * min(r["median_s"] for r in v), 3),
               "cpu_median_of_repeat_medians_ms": round(1e3 * statistics.median(r["cpu_median_s"] for r in v), 3),
               "cpu_min_of_repeat_medians_ms": round(1e3 * min(r["cpu_median_s"] for r in v), 3),
               "repeat_medians_ms": [round(1e3 * r["median_s"], 3) for r in v],
               "repeat_cpu_medians_ms": [round(1e3 * r["cpu_median_s"], 3) for r in v],
               "repeat_means_ms": [round(1e3 * r["mean_s"], 3) for r in v]} for k, v in res.items()}
print(json.dumps(summary, indent=1))
(HERE / f"timing_results{'_dummy' if dummy else ''}.json").write_text(json.dumps(summary, indent=1))
