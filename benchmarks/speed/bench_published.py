"""The published-size cWDM denoiser on a full BraTS case on one NVIDIA GPU: seconds and peak memory.

Network: ``medfusion.networks.CWDM_PUBLISHED`` (channels 64 128 128 256 256, 2 residual blocks per level,
≈ 81.8 M parameters; the paper reports ≈ 81.5 M) as a per-contrast model (``target="t2f"``, no class embedding, as
published), with **random weights** (``torch.manual_seed(0)``): this measures time and memory only — the
synthesized images are meaningless.  Case: a 240×240×155 phantom (``make_brats_phantom``, seed 4242) through
``medfusion.apps.cwdm.synthesize``, the path of ``medfusion synthesize``: percentile normalisation, zero-padding to
the network's divisor (32: 256×256×160, so the network sees 32 × 128×128×80 wavelet channels), Haar-space sampling,
the padding's inverse, background zeroed.

Configurations: every ``--precisions`` (float32 = no autocast, cuDNN convolutions in TF32 as PyTorch allows by
default; bfloat16 = the network under ``torch.autocast``) × eager and ``torch.compile`` (default mode, the network
only; its compile time is recorded as ``warmup_seconds``).  For each: a warm-up, DDIM ``--ddim-steps`` (50) run in
full, and DDPM: ``--ddpm-timed-steps`` (30) steps of a DDPM chain are run (each DDPM step costs the same whatever
the chain length: one network evaluation, the posterior step and its noise) and the 1000-step chain is
**extrapolated**: seconds = (the run's total − its steps) + 1000 × median step (steps 2…k, each timed with a CUDA
synchronisation).  Peak memory: ``torch.cuda.max_memory_allocated()``, reset before every timed run (weights
included; ``peak_above_start_bytes`` excludes what was allocated before the run).  Runs that would not fit in
``--budget-s`` are skipped and listed as such; the results file is rewritten after every run.

    python benchmarks/speed/bench_published.py              # needs one CUDA GPU; ≈ 4–6 min on one H200
    python benchmarks/speed/bench_published.py --smoke --out outputs/published_smoke.json   # logic check: tiny, CPU is fine
Results: benchmarks/results/published_cuda.json (or --out; ``--smoke`` never writes into benchmarks/results).
Also run by ``bash benchmarks/gpu_checks.sh published``.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _common import RESULTS, _status, command_line, write_results  # noqa: E402

#: what ``--smoke`` runs instead: the published architecture (5 levels, divisor 32) at a toy width and size
SMOKE_NETWORK = {"channels": (8, 16, 16, 32, 32), "num_res_blocks": 2, "norm_num_groups": 8, "num_head_channels": 8}
SMOKE_SHAPE = (24, 24, 17)
#: seconds kept in reserve for one torch.compile before a compiled configuration is started
COMPILE_RESERVE_S = 150.0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default=None, help="default: cuda (with --smoke: cuda if present, else cpu)")
    p.add_argument("--shape", type=int, nargs=3, default=None, help="input case size (default 240 240 155)")
    p.add_argument("--precisions", nargs="+", default=["float32", "bfloat16"],
                   choices=("float32", "bfloat16", "float16"))
    p.add_argument("--compile", choices=("both", "off", "on"), default="both",
                   help="eager and torch.compile (both), eager only (off), compiled only (on)")
    p.add_argument("--ddim-steps", type=int, default=50)
    p.add_argument("--ddpm-steps", type=int, default=1000, help="the DDPM chain to extrapolate to")
    p.add_argument("--ddpm-timed-steps", type=int, default=30, help="DDPM steps actually run and timed")
    p.add_argument("--budget-s", type=float, default=420.0,
                   help="skip runs that would end later than this many seconds after the start (default 420)")
    p.add_argument("--smoke", action="store_true",
                   help="logic check on any machine: a tiny network and volume, 3 steps; never writes into "
                        "benchmarks/results")
    p.add_argument("--out")
    a = p.parse_args()
    t_start = time.perf_counter()

    import torch

    if a.smoke:
        a.device = a.device or ("cuda" if torch.cuda.is_available() else "cpu")
        a.shape = a.shape or list(SMOKE_SHAPE)
        a.ddim_steps = min(a.ddim_steps, 3)
        a.ddpm_timed_steps = min(a.ddpm_timed_steps, 3)
        a.out = a.out or str(Path(tempfile.gettempdir()) / "published_smoke.json")
        if Path(a.out).resolve().parent == RESULTS.resolve():
            _fail("--smoke results never go into benchmarks/results; give --out elsewhere")
    else:
        a.device = a.device or "cuda"
        a.shape = a.shape or [240, 240, 155]
    cuda = a.device.startswith("cuda")
    if cuda and not torch.cuda.is_available():
        _fail(f"no CUDA device visible to torch {torch.__version__} (CUDA build: {torch.version.cuda or 'none'}): "
              "this check needs one NVIDIA GPU. Run it on a GPU machine, or `--smoke` for a CPU logic check with a "
              "tiny network.")
    if not cuda and not a.smoke:
        _fail("the published-size check runs on CUDA only (a full volume with the 81.5 M network would take hours "
              "on a CPU); use --smoke for a CPU logic check")
    if not 2 <= a.ddpm_timed_steps <= a.ddpm_steps or not 1 <= a.ddim_steps:
        _fail("need 2 <= --ddpm-timed-steps <= --ddpm-steps and --ddim-steps >= 1")

    from medfusion.apps.cwdm import CWDMModel, synthesize
    from medfusion.phantoms.brain import make_brats_phantom
    from medfusion.core.precision import check_precision, resolve_device
    from medfusion.errors import InputError
    from medfusion.networks import CWDM_PUBLISHED

    try:
        dev = resolve_device(a.device)
        for prec in a.precisions:
            check_precision(prec, dev)
    except InputError as e:
        _fail(f"{e}")

    network_config = dict(SMOKE_NETWORK if a.smoke else CWDM_PUBLISHED)
    torch.manual_seed(0)
    model = CWDMModel.create(network_config, target="t2f").to(dev)
    model.network.eval()
    eager_network = model.network
    n_params = sum(q.numel() for q in eager_network.parameters())
    phantom = make_brats_phantom(tuple(a.shape), seed=4242)
    volumes = {c: phantom[c] for c in ("t1n", "t1c", "t2w")}
    padded = [math.ceil(s / model.divisor) * model.divisor for s in a.shape]
    wavelet = [s // 2 for s in padded]
    tflop = _forward_tflop(model.network_config, wavelet)

    seen = {}
    original_sample = model.diffusion.sample

    def timed_sample(conditions, *args, **kwargs):  # the time inside ConditionalDiffusion.sample
        seen["padded"] = [int(s) for s in conditions.shape[2:]]
        _sync(cuda)
        t0 = time.perf_counter()
        out = original_sample(conditions, *args, **kwargs)
        _sync(cuda)
        seen["sampling_s"] = time.perf_counter() - t0
        return out

    model.diffusion.sample = timed_sample

    def run(precision: str, sampler: str, steps: int, per_step: bool) -> dict:
        marks = []

        def progress(i, n):
            _sync(cuda)
            marks.append(time.perf_counter())

        _sync(cuda)
        if cuda:
            torch.cuda.reset_peak_memory_stats()
            before = torch.cuda.memory_allocated()
        t0 = time.perf_counter()
        synthesize(model, volumes, "t2f", steps=steps, sampler=sampler, seed=0, device=dev, precision=precision,
                   progress=progress if per_step else None)
        total = time.perf_counter() - t0
        r = {"sampler": sampler, "steps_run": steps, "seconds_total": total, "seconds_sampling": seen["sampling_s"],
             "seconds_per_step": seen["sampling_s"] / steps}
        if cuda:
            peak = torch.cuda.max_memory_allocated()
            r.update(peak_memory_bytes=peak, peak_above_start_bytes=peak - before,
                     peak_reserved_bytes=torch.cuda.max_memory_reserved())
        else:
            r.update(peak_memory_bytes=_status("VmHWM"))
        if per_step and len(marks) >= 2:
            step_s = [b - c for b, c in zip(marks[1:], marks[:-1])]
            r["step_seconds_median"] = statistics.median(step_s)
            r["step_seconds_min"], r["step_seconds_max"] = min(step_s), max(step_s)
        return r

    result = {
        "command": command_line(),
        "gpu_checks_command": None if a.smoke else "bash benchmarks/gpu_checks.sh published",
        "smoke": a.smoke,
        "weights": "random (torch.manual_seed(0)), not trained: timing and memory only, the outputs are meaningless",
        "network": {"config": model.network_config, "parameters": n_params, "divisor": model.divisor,
                    "forward_tflop_at_network_input": tflop,
                    "published": "cWDM (Friedrich et al., arXiv 2411.17203): ≈ 81.5 M parameters, per-contrast"},
        "input_shape": list(a.shape), "padded_shape": padded,
        "network_input_shape": [32, *wavelet], "device": str(dev),
        "settings": _backend_settings(torch, cuda),
        "ddpm_extrapolation": (f"DDPM {a.ddpm_steps} steps is not run in full: a {a.ddpm_timed_steps}-step DDPM "
                               f"chain is, and seconds = (its total - its steps) + {a.ddpm_steps} x its median step "
                               "(steps 2.., each ended by a CUDA synchronisation); one DDPM step costs the same in "
                               "any chain length"),
        "peak_memory_kind": ("torch.cuda.max_memory_allocated(), reset before each timed run, weights included "
                             "(peak_above_start_bytes: less what was allocated before the run)" if cuda else
                             "process RSS high-water mark (--smoke on a CPU: the whole process, never reset)"),
        "budget_s": a.budget_s,
        "configurations": [], "skipped": [], "complete": False,
    }
    name = "published_cuda" if cuda else "published_cpu"

    def save():
        result["seconds_elapsed"] = time.perf_counter() - t_start
        result["summary"] = _summary(result["configurations"], a.ddim_steps, a.ddpm_steps)
        return write_results(name, result, a.out)

    def left() -> float:
        return a.budget_s - (time.perf_counter() - t_start)

    compile_modes = {"both": (False, True), "off": (False,), "on": (True,)}[a.compile]
    print(f"{'smoke: ' if a.smoke else ''}{n_params / 1e6:.2f} M parameters, case {a.shape} padded to {padded}, "
          f"network input 32x{wavelet}, {'?' if tflop is None else f'{tflop:.2f}'} TFLOP per forward, on {dev}",
          flush=True)
    for compiled in compile_modes:
        # compiled: bfloat16 first, the more useful row should the budget end before the other
        for prec in sorted(a.precisions, key=lambda q: q == "float32") if compiled else a.precisions:
            label = f"{'compiled' if compiled else 'eager'} {prec}"
            cfg = {"compile": compiled, "precision": prec, "runs": {}}
            reserve = COMPILE_RESERVE_S if compiled else 0.0
            if left() <= reserve:
                result["skipped"].append({"configuration": label, "reason": f"{left():.0f} s of the budget left"
                                          + (f", {reserve:.0f} s reserved for a compile" if compiled else "")})
                print(f"{label}: skipped (budget)", flush=True)
                continue
            model.diffusion.network = torch.compile(eager_network) if compiled else eager_network
            result["configurations"].append(cfg)
            try:
                t0 = time.perf_counter()
                synthesize(model, volumes, "t2f", steps=1, sampler="ddim", seed=0, device=dev, precision=prec)
                cfg["warmup_seconds"] = time.perf_counter() - t0  # compile (if any), cuDNN set-up, first call
                probe = run(prec, "ddim", 2, per_step=False)  # a timed estimate of what a step costs
                result["padded_shape"] = seen["padded"]  # as the pipeline padded it
                overhead = max(probe["seconds_total"] - probe["seconds_sampling"], 0.0)
                step_est = probe["seconds_sampling"] / 2
                for sampler, steps, per_step in (("ddim", a.ddim_steps, False), ("ddpm", a.ddpm_timed_steps, True)):
                    need = overhead + steps * step_est * 1.2
                    if need > left():
                        result["skipped"].append({"configuration": label, "run": f"{sampler} {steps}", "reason":
                                                  f"needs ~{need:.0f} s, {left():.0f} s of the budget left"})
                        print(f"{label} {sampler} {steps}: skipped (budget)", flush=True)
                        continue
                    _report(cfg, label, run(prec, sampler, steps, per_step), a.ddpm_steps)
                    save()  # after every run: a run cut short by a time limit leaves the ones before it
            except Exception as e:  # noqa: BLE001 - record a failing configuration (a compile error, OOM), go on
                msg = str(e).strip()
                cfg["error"] = f"{type(e).__name__}: {msg.splitlines()[0] if msg else ''}"
                print(f"{label}: FAILED {cfg['error']}", flush=True)
            save()
    model.diffusion.network = eager_network
    result["complete"] = True
    path = save()
    for row in result["summary"]:
        print(row)
    print(f"wrote {path} ({result['seconds_elapsed']:.0f} s)")


def _report(cfg: dict, label: str, r: dict, ddpm_steps: int) -> None:
    """Add the extrapolation to a DDPM run, store the run in its configuration and print a line."""
    steps = r["steps_run"]
    if r["sampler"] == "ddpm" and "step_seconds_median" in r:
        fixed = r["seconds_total"] - steps * r["step_seconds_median"]  # all but the steps
        r["extrapolated_steps"] = ddpm_steps
        r["extrapolated_seconds_total"] = fixed + ddpm_steps * r["step_seconds_median"]
    cfg["runs"][f"{r['sampler']}{steps}"] = r
    extra = (f", DDPM {ddpm_steps} ~ {r['extrapolated_seconds_total']:.1f} s (extrapolated)"
             if "extrapolated_seconds_total" in r else "")
    print(f"{label:18s} {r['sampler']} {steps:4d} steps: {r['seconds_total']:7.2f} s ({r['seconds_per_step']:.3f} "
          f"s/step), peak {r['peak_memory_bytes'] / 2**30:.2f} GiB{extra}", flush=True)


def _fail(message: str) -> None:
    """One line on stderr and exit status 2, before any work."""
    print(f"bench_published: {message}", file=sys.stderr)
    sys.exit(2)


def _sync(cuda: bool) -> None:
    if cuda:
        import torch

        torch.cuda.synchronize()


def _forward_tflop(network_config: dict, wavelet_shape) -> float | None:
    """FLOPs of one network evaluation at the padded case size, counted on the meta device (no compute)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from medfusion.apps.cwdm import CWDMModel

    try:
        with torch.device("meta"):
            net = CWDMModel.build_network(dict(network_config))
            x = torch.zeros(1, 32, *wavelet_shape)
            t = torch.zeros(1, dtype=torch.long)
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            net(x, t)
        return counter.get_total_flops() / 1e12
    except Exception:  # noqa: BLE001 - an estimate only
        return None


def _backend_settings(torch, cuda: bool) -> dict:
    import warnings

    s = {"torch_compile_mode": "default (the network only)", "cudnn_benchmark": torch.backends.cudnn.benchmark,
         "float32_matmul_precision": torch.get_float32_matmul_precision()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for key, get in (("cudnn_allow_tf32", lambda: torch.backends.cudnn.allow_tf32),
                         ("cuda_matmul_allow_tf32", lambda: torch.backends.cuda.matmul.allow_tf32),
                         ("cudnn_conv_fp32_precision", lambda: torch.backends.cudnn.conv.fp32_precision)):
            try:
                s[key] = get()
            except Exception:  # noqa: BLE001 - not in every torch version
                pass
    if cuda:
        s["cuda_runtime"] = torch.version.cuda
        s["cudnn"] = torch.backends.cudnn.version()
    return s


def _summary(configs: list[dict], ddim_steps: int, ddpm_steps: int) -> list[str]:
    rows = []
    for cfg in configs:
        label = f"{'compiled' if cfg['compile'] else 'eager'} {cfg['precision']}"
        if "error" in cfg:
            rows.append(f"{label}: failed ({cfg['error']})")
            continue
        parts = []
        for r in cfg["runs"].values():
            if r["sampler"] == "ddim":
                parts.append(f"DDIM {r['steps_run']}: {r['seconds_total']:.1f} s, peak "
                             f"{r['peak_memory_bytes'] / 2**30:.2f} GiB")
            elif "extrapolated_seconds_total" in r:
                parts.append(f"DDPM {ddpm_steps}: ~{r['extrapolated_seconds_total']:.0f} s extrapolated from "
                             f"{r['steps_run']} steps ({r['step_seconds_median']:.3f} s/step), peak "
                             f"{r['peak_memory_bytes'] / 2**30:.2f} GiB")
        rows.append(f"{label}: " + ("; ".join(parts) or "no timed run (see skipped)")
                    + f" (warm-up {cfg.get('warmup_seconds', 0):.1f} s)")
    return rows


if __name__ == "__main__":
    main()
