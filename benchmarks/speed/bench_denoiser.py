"""One denoiser step in wavelet space vs pixel space: same U-Net widths, same volume, side by side.

A step is what sampling does per timestep: the network forward pass plus clipping x̂₀ to [0, 1] in image space
(for the wavelet model: inverse DWT → clamp → DWT).  The wavelet model sees ``2^3·(1 + 3) = 32`` channels at
half the resolution and predicts 8; the pixel model sees 4 channels at full resolution and predicts 1.
Each mode runs in its own process so that peak memory is measured cleanly (resident-set high-water mark above
what the model and inputs already hold on CPU; allocator peak on CUDA).

    python benchmarks/speed/bench_denoiser.py                       # 240×240×160 (BraTS, z padded), CPU
    python benchmarks/speed/bench_denoiser.py --device cuda --shape 224 224 160
    python benchmarks/speed/bench_denoiser.py --device cuda --precision bfloat16    # network under bfloat16 autocast
Both modes are a :class:`medfusion.core.ConditionalDiffusion` (``prediction="sample"``, x̂₀ clipped to [0, 1]) over
a ``HaarSpace(3, lll_scale=3)`` (wavelet) or an ``ImageSpace(3)`` (pixel).
Results: benchmarks/results/denoiser.json (or --out; on a GPU ``denoiser_cuda.json``; a precision other than
float32 adds ``_<precision>`` to the name).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _common import PeakMemory, add_precision_option, command_line, timed, write_results  # noqa: E402


def worker(mode: str, shape, channels, res_blocks: int, repeats: int, device: str, precision: str) -> dict:
    import torch

    from medfusion.core import ConditionalDiffusion, HaarSpace, ImageSpace, autocast
    from medfusion.networks import conditional_unet, cwdm_unet

    torch.manual_seed(0)
    net_kwargs = dict(channels=channels, num_res_blocks=res_blocks, norm_num_groups=16, num_head_channels=16,
                      num_class_embeds=4)
    if mode == "wavelet":
        net = cwdm_unet(spatial_dims=3, n_conditions=3, **net_kwargs)  # 32 channels in, 8 out
        diffusion = ConditionalDiffusion(net, space=HaarSpace(3, lll_scale=3.0))
    else:
        net = conditional_unet(3, 4, 1, **net_kwargs)
        diffusion = ConditionalDiffusion(net, space=ImageSpace(3))
    space = diffusion.space
    cond = space.encode(torch.rand(1, 3, *shape))
    x = torch.randn(1, space.channels(1), *[s // space.divisor for s in shape])

    def step():
        # what ConditionalDiffusion.sample does per timestep: the network (under autocast for bfloat16/float16),
        # its output back in float32, x̂₀ clipped to [0, 1] in image space (Haar: IDWT → clamp → DWT)
        with autocast(device, precision):
            out = net(torch.cat([x, cond], 1), t, class_labels=label)
        return diffusion.clip(diffusion.to_x0(out.to(x.dtype), x, t))

    net = net.to(device).eval()
    x, cond = x.to(device), cond.to(device)
    t, label = torch.tensor([500], device=device), torch.tensor([1], device=device)
    with torch.no_grad():
        step()  # warm-up
        with PeakMemory(device) as pm:
            step()
        times = timed(step, repeats, device)
    return {"mode": mode, "seconds": statistics.median(times), "all_seconds": times,
            "peak_extra_bytes": pm.peak_bytes, "network_input_shape": [int(x.shape[1] + cond.shape[1]),
                                                                        *map(int, x.shape[2:])],
            "parameters": sum(p.numel() for p in net.parameters())}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shape", type=int, nargs=3, default=[240, 240, 160])
    p.add_argument("--channels", type=int, nargs="+", default=[32, 64, 64], help="U-Net widths (shipped: 32 64 64)")
    p.add_argument("--res-blocks", type=int, default=1)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--device", default="cpu")
    add_precision_option(p)
    p.add_argument("--out")
    p.add_argument("--worker", choices=("wavelet", "pixel"), help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.worker:
        print(json.dumps(worker(a.worker, a.shape, a.channels, a.res_blocks, a.repeats, a.device, a.precision)))
        return
    from medfusion.core.precision import check_precision, resolve_device
    from medfusion.errors import InputError

    try:
        check_precision(a.precision, resolve_device(a.device))
    except InputError as e:
        sys.exit(f"bench_denoiser: {e}")
    runs = {}
    for mode in ("wavelet", "pixel"):
        cmd = [sys.executable, __file__, "--worker", mode, "--shape", *map(str, a.shape), "--channels",
               *map(str, a.channels), "--res-blocks", str(a.res_blocks), "--repeats", str(a.repeats),
               "--device", a.device, "--precision", a.precision]
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode:
            sys.exit(f"bench_denoiser: the {mode} worker failed:\n{res.stderr.strip()}")
        runs[mode] = json.loads(res.stdout.strip().splitlines()[-1])
        print(f"{mode:8s} {runs[mode]['seconds']:8.3f} s/step  peak +{runs[mode]['peak_extra_bytes'] / 2**30:.2f} GiB")
    speedup = runs["pixel"]["seconds"] / runs["wavelet"]["seconds"]
    memory = runs["pixel"]["peak_extra_bytes"] / max(runs["wavelet"]["peak_extra_bytes"], 1)
    summary = {"speedup": speedup, "memory_ratio": memory, "target": "wavelet step >= 4x faster and >= 4x less "
               "peak memory than pixel space", "target_met": bool(speedup >= 4 and memory >= 4)}
    print(f"wavelet vs pixel: {speedup:.1f}x faster, {memory:.1f}x less peak memory -> target "
          f"{'met' if summary['target_met'] else 'NOT met'}")
    name = "denoiser" if a.device == "cpu" else f"denoiser_{a.device.split(':')[0]}"  # CPU and GPU rows apart
    if a.precision != "float32":
        name += f"_{a.precision}"
    path = write_results(name, {"command": command_line(), "shape": a.shape, "channels": a.channels,
                                "res_blocks": a.res_blocks, "device": a.device, "precision": a.precision,
                                "runs": runs, "summary": summary}, a.out)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
