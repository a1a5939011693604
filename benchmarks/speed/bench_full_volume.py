"""A full BraTS-size case (240×240×155, 1 mm) through the shipped configuration: time and peak memory.

The case is a phantom written as NIfTI files; it goes through the same path as ``medfusion synthesize``
(``medfusion.apps.cwdm.synthesize_case``: load → normalise → pad to the network's divisor, 240×240×160 for the
shipped weights → wavelet-space sampling → the padding's inverse → write in the input geometry).

    python benchmarks/speed/bench_full_volume.py --steps 50             # CPU
    python benchmarks/speed/bench_full_volume.py --steps 50 --device cuda
    python benchmarks/speed/bench_full_volume.py --steps 1000 --sampler ddpm --device cuda   # the published sampler
    python benchmarks/speed/bench_full_volume.py --steps 50 --device cuda --precision bfloat16
Results: benchmarks/results/full_volume_<device>[_<sampler><steps>][_<precision>].json (or --out); the sampler and
steps appear for DDPM, the precision when it is not float32.  Peak memory: the process's resident-set high-water
mark on CPU (everything: Python, model, volumes), the allocator peak on CUDA.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _common import _status, add_precision_option, command_line, load_bundle_model, write_results  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", help="checkpoint or bundle (default: the shipped bundle)")
    p.add_argument("--shape", type=int, nargs=3, default=[240, 240, 155])
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--sampler", choices=("ddim", "ddpm"), default="ddim")
    p.add_argument("--device", default="cpu")
    add_precision_option(p)
    p.add_argument("--out")
    a = p.parse_args()

    import nibabel as nib
    import torch

    from medfusion.apps.cwdm import synthesize_case
    from medfusion.phantoms.brain_files import write_brats_case

    cuda = a.device.startswith("cuda")
    with tempfile.TemporaryDirectory() as tmp:
        case = write_brats_case(tmp, "BraTS-FULLSIZE-00000-000", shape=tuple(a.shape), seed=4242, drop="t2f")
        t0 = time.time()
        model = load_bundle_model(a.weights, a.device)
        step_times = []
        last = [time.time()]

        def progress(i, n):
            now = time.time()
            step_times.append(now - last[0])
            last[0] = now

        if cuda:
            torch.cuda.reset_peak_memory_stats()
        last[0] = time.time()
        out = synthesize_case(model, case, Path(tmp) / "out.nii.gz", steps=a.steps, sampler=a.sampler,
                              device=a.device, precision=a.precision, progress=progress)
        total = time.time() - t0
        sampling = sum(step_times)
        shape_out = nib.load(out).shape
    peak = torch.cuda.max_memory_allocated() if cuda else _status("VmHWM")
    result = {
        "command": command_line(),
        "input_shape": a.shape, "padded_shape": [-(-s // model.divisor) * model.divisor for s in a.shape],
        "output_shape": list(shape_out), "steps": a.steps, "sampler": a.sampler, "device": a.device,
        "precision": a.precision,
        "seconds_total": total, "seconds_sampling": sampling,
        "seconds_per_step": sampling / max(len(step_times), 1),
        "peak_memory_bytes": peak,
        "peak_memory_kind": "CUDA allocator peak" if cuda else "process RSS high-water mark",
        "network_config": model.network_config,
        "parameters": sum(q.numel() for q in model.network.parameters()),
    }
    print(f"{a.shape} on {a.device} ({a.precision}): {total:.1f} s total, {result['seconds_per_step']:.2f} s/step, "
          f"peak {peak / 2**30:.2f} GiB")
    name = f"full_volume_{a.device.split(':')[0]}" + ("" if a.sampler == "ddim" else f"_{a.sampler}{a.steps}")
    if a.precision != "float32":
        name += f"_{a.precision}"
    path = write_results(name, result, a.out)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
