"""Helpers shared by the benchmark scripts: machine description, peak memory, results files, held-out data."""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict:
    import torch

    info = {
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "processor": platform.processor() or platform.machine(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "load_average_1_5_15min_at_end": list(os.getloadavg()),  # other work on the machine skews CPU timings
    }
    return info


def command_line() -> str:
    """The command that ran this benchmark, as a user types it from the repository root."""
    args = " ".join(sys.argv[1:])
    script = Path(sys.argv[0]).resolve()
    try:
        script = script.relative_to(RESULTS.parent.parent)
    except ValueError:  # run from elsewhere: its name in benchmarks/
        script = Path("benchmarks") / script.name
    return f"python {script.as_posix()}" + (" " + args if args else "")


def _status(field: str) -> int:
    """A memory field of /proc/self/status in bytes (Linux)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not found in /proc/self/status")


class PeakMemory:
    """Peak extra memory of a block: resident-set high-water mark on CPU (Linux), allocator peak on CUDA.

    ``with PeakMemory(device) as pm: ...`` then ``pm.peak_bytes`` (above what was resident before the block).
    """

    def __init__(self, device: str = "cpu") -> None:
        self.device = device
        self.peak_bytes = 0

    def __enter__(self):
        import torch

        if self.device.startswith("cuda"):
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.before = torch.cuda.memory_allocated()
        else:
            self.before = _status("VmRSS")
            with open("/proc/self/clear_refs", "w") as f:  # resets VmHWM to the current RSS
                f.write("5")
        return self

    def __exit__(self, *exc):
        import torch

        if self.device.startswith("cuda"):
            torch.cuda.synchronize()
            self.peak_bytes = torch.cuda.max_memory_allocated() - self.before
        else:
            self.peak_bytes = _status("VmHWM") - self.before
        return False


def timed(fn, repeats: int, device: str = "cpu") -> list[float]:
    import torch

    out = []
    for _ in range(repeats):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        out.append(time.perf_counter() - t0)
    return out


def write_results(name: str, payload: dict, out: str | None = None) -> Path:
    path = Path(out) if out else RESULTS / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"benchmark": name, "date": time.strftime("%Y-%m-%d"), "machine": machine(), **payload}
    path.write_text(json.dumps(_finite(payload), indent=2, allow_nan=False) + "\n")
    return path


def _finite(x):
    """JSON-ready copy: NaN/inf (undefined metric values) → null."""
    import math

    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_finite(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def add_precision_option(parser, default: str = "float32") -> None:
    """``--precision``: the dtype the network runs in under autocast (medfusion.core.precision)."""
    parser.add_argument("--precision", default=default, choices=("float32", "bfloat16", "float16"),
                        help=f"network autocast dtype while sampling (default {default}; float16: CUDA only)")


def add_heldout_options(parser, cases: int) -> None:
    """``--cases --shape --steps --sampler --seed --device --precision --cache --out`` of the held-out quality
    benchmarks."""
    parser.add_argument("--cases", type=int, default=cases)
    parser.add_argument("--shape", type=int, nargs=3, default=[96, 96, 64])
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--sampler", default="ddim", choices=("ddim", "ddpm"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    add_precision_option(parser)
    add_cache_option(parser)
    parser.add_argument("--out")


def add_cache_option(parser) -> None:
    parser.add_argument("--cache", help="folder for the generated benchmark data (default: "
                        "benchmarks/results/_heldout, not committed); e.g. a /tmp folder for smoke runs")


#: phantom kind → case-name prefix of its held-out cases
_HELDOUT_PREFIX = {"brats": "BraTS-HELDOUT", "abdomen": "ABD-HELDOUT", "headneck": "HN-HELDOUT",
                   "stain": "STAIN-HELDOUT"}


def heldout_phantoms(n: int, shape=(96, 96, 64), seed0: int = 3000, cache: str | None = None,
                     kind: str = "brats", **options) -> Path:
    """Held-out phantom cases of ``kind`` (:data:`medfusion.phantoms.KINDS`; seeds never used for training: the
    shipped weights used 1000–1031 and 2000–2001 for validation), written once into a cache folder (default:
    beside the results), one folder per version of the phantom generator; ``options`` go to its dataset writer
    (e.g. ``raters=True``)."""
    from medfusion.phantoms import KINDS

    phantom = KINDS[kind]
    root = Path(cache) if cache else RESULTS / "_heldout"
    extra = "".join(f"-{k}" for k, v in sorted(options.items()) if v)
    folder = root / f"{kind}-{'x'.join(map(str, shape))}-seed{seed0}-n{n}{extra}-{_phantom_fingerprint(kind)}"
    if not (folder / ".complete").is_file():
        phantom.dataset_writer()(folder, n, shape=tuple(shape), seed0=seed0, prefix=_HELDOUT_PREFIX[kind],
                                 overwrite=True, **options)
        (folder / ".complete").touch()
    return folder


def _phantom_fingerprint(kind: str = "brats") -> str:
    """A short hash of a phantom kind's generator sources: a changed generator gets a fresh cache folder."""
    import hashlib

    from medfusion.phantoms import KINDS

    h = hashlib.sha256()
    for f in KINDS[kind].sources():
        h.update(f.name.encode() + b"\0" + f.read_bytes())
    return h.hexdigest()[:8]


def load_bundle_model(weights: str | None, device: str):
    """The cWDM model of ``weights`` (checkpoint or bundle folder), default the shipped bundle."""
    from medfusion.apps.cwdm import load_model
    from medfusion.paths import bundle_dir

    return load_model(weights or bundle_dir("brats_mri_cwdm"), device)


def run_child(code: str, args: dict, what: str) -> dict:
    """Run ``code`` in a fresh Python process with ``json.dumps(args)`` as its argument (a clean peak-memory
    measurement) and return the JSON its last output line holds; exit with its error output if it fails."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", code, json.dumps(args)], capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"{what} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])
