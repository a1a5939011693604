"""Speed of the 3D Haar DWT + IDWT (medfusion.wavelets) on a cWDM-sized volume, against copying the same bytes.

Times, on a (1, 4, 224, 224, 160) float32 volume (4 BraTS contrasts after padding/cropping, 128 MB):

* ``haar_dwt`` and ``haar_idwt`` (medfusion: one strided convolution each, filters cached - see
  ``medfusion/wavelets.py``);
* for context, what sampling calls: ``medfusion.core.HaarSpace(3, lll_scale=3)``'s ``encode``/``decode`` (the same
  transforms plus the low-pass channels divided/multiplied by 3);
* what copying the same bytes costs: ``x.clone()`` (same allocator as the transforms, page faults included)
  and ``numpy.ndarray.copy()`` (numpy asks the kernel for huge pages, so its fresh memory is cheaper);
* alternatives, for context: a strided ``conv3d`` / ``conv_transpose3d`` with the 8 Haar kernels (groups = C),
  a reshape/permute + 8×8 matmul, and pytorch-wavelets' 1D transform applied along each axis.

Median of ``--repeats`` runs after one warm-up, on CPU with all torch threads of the machine, again with one
thread (the setting of ``DataLoader`` workers), and on CUDA when present. The target: DWT + IDWT within 3× the
time of ``x.clone()`` with all threads. CPU timings depend on what else the machine runs: the load average
before and after is recorded. Most of a clone's time on CPU is page faults of the fresh 128 MB; PyTorch's
``THP_MEM_ALLOC_ENABLE=1`` (huge pages for large CPU tensors) makes clone and the transforms about 3x faster.

    python benchmarks/speed/bench_wavelets.py [--out FILE] [--repeats N] [--shape B C X Y Z]

Results: benchmarks/results/wavelets.json (or --out), and a table on stdout.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _common import command_line, timed, write_results  # noqa: E402

SHAPE = (1, 4, 224, 224, 160)
TARGET_RATIO = 3.0


def conv_dwt(x, w):
    import torch.nn.functional as F

    c = x.shape[1]
    return F.conv3d(x, w.repeat(c, 1, 1, 1, 1), stride=2, groups=c)


def conv_idwt(y, w):
    import torch.nn.functional as F

    c = y.shape[1] // 8
    return F.conv_transpose3d(y, w.repeat(c, 1, 1, 1, 1), stride=2, groups=c)


def matmul_dwt(x, w):
    b, c, h, wd, d = x.shape
    blocks = x.reshape(b * c, h // 2, 2, wd // 2, 2, d // 2, 2).permute(0, 2, 4, 6, 1, 3, 5).reshape(b * c, 8, -1)
    return (w.reshape(8, 8) @ blocks).reshape(b, c * 8, h // 2, wd // 2, d // 2)


def matmul_idwt(y, w):
    b, c8, h, wd, d = y.shape
    blocks = (w.reshape(8, 8).T @ y.reshape(b * c8 // 8, 8, -1)).reshape(-1, 2, 2, 2, h, wd, d)
    return blocks.permute(0, 4, 1, 5, 2, 6, 3).reshape(b, c8 // 8, 2 * h, 2 * wd, 2 * d)


def per_axis_ptwt(ptwt, device):
    """pytorch-wavelets has no 3D transform: its 1D Haar along each axis, bands in PyWavelets dwtn order."""
    import torch

    fwd = ptwt.DWT1DForward(J=1, wave="haar", mode="zero").to(device)
    inv = ptwt.DWT1DInverse(wave="haar", mode="zero").to(device)

    def dwt(x):
        b, c = x.shape[:2]
        bands = [x.reshape(b * c, *x.shape[2:])]
        for axis in (1, 2, 3):
            split = []
            for t in bands:
                t = t.movedim(axis, -1)
                low, (high,) = fwd(t.reshape(-1, 1, t.shape[-1]))
                split += [s.reshape(*t.shape[:-1], -1).movedim(-1, axis) for s in (low, high)]
            bands = split
        return torch.stack(bands, 1).reshape(b, c * 8, *bands[0].shape[1:])

    def idwt(y):
        b, c8 = y.shape[:2]
        bands = list(y.reshape(b * c8 // 8, 8, *y.shape[2:]).unbind(1))
        for axis in (3, 2, 1):
            merged = []
            for low, high in zip(bands[0::2], bands[1::2]):
                low, high = low.movedim(axis, -1), high.movedim(axis, -1)
                shape = low.shape
                t = inv((low.reshape(-1, 1, shape[-1]), [high.reshape(-1, 1, shape[-1])]))
                merged.append(t.reshape(*shape[:-1], -1).movedim(-1, axis))
            bands = merged
        return bands[0].reshape(b, c8 // 8, *bands[0].shape[1:])

    return dwt, idwt


def run_device(device: str, repeats: int, threads: int, shape=SHAPE) -> dict:
    import torch

    from medfusion.utils.compat import import_pytorch_wavelets
    from medfusion.core import HaarSpace
    from medfusion.wavelets import haar_dwt, haar_filters, haar_idwt

    torch.set_num_threads(threads)
    x = torch.rand(shape, generator=torch.Generator().manual_seed(0)).to(device)
    y = haar_dwt(x, 3)
    w = haar_filters(3, x.dtype, x.device)
    ptwt_dwt, ptwt_idwt = per_axis_ptwt(import_pytorch_wavelets(), device)
    space = HaarSpace(3, lll_scale=3.0)
    lll = torch.ones(y.shape[1], dtype=y.dtype, device=y.device)
    lll[::8] = 3.0  # HaarSpace's coefficients are y with every low-pass channel divided by 3
    lll = lll.reshape(1, -1, 1, 1, 1)
    candidates = {
        "medfusion": (lambda a: haar_dwt(a, 3), lambda a: haar_idwt(a, 3)),
        "core HaarSpace (LLL / 3)": (lambda a: space.encode(a) * lll, lambda a: space.decode(a / lll)),
        "conv3d (groups=C)": (lambda a: conv_dwt(a, w), lambda a: conv_idwt(a, w)),
        "permute + matmul": (lambda a: matmul_dwt(a, w), lambda a: matmul_idwt(a, w)),
        "pytorch-wavelets 1D per axis": (ptwt_dwt, ptwt_idwt),
    }

    def stats(fn, n=repeats):
        fn()  # warm-up
        t = timed(fn, n, device)
        return {"median_ms": 1e3 * statistics.median(t), "min_ms": 1e3 * min(t), "runs": n}

    rows = {"x.clone()": stats(lambda: x.clone())}
    if device == "cpu":
        xn = x.numpy()
        rows["numpy copy"] = stats(lambda: xn.copy())
    for name, (dwt, idwt) in candidates.items():
        # against medfusion's coefficients, and the round trip to x
        err = max((dwt(x) - y).abs().max().item(), (idwt(y) - x).abs().max().item())
        n = repeats if name in ("medfusion", "conv3d (groups=C)") else max(2, repeats // 2)
        if name.startswith("core HaarSpace"):  # timed on its own coefficients (errors above undo the scaling)
            ys = space.encode(x)
            fwd, inv = stats(lambda: space.encode(x), n), stats(lambda: space.decode(ys), n)
        else:
            fwd, inv = stats(lambda: dwt(x), n), stats(lambda: idwt(y), n)
        rows[name] = {
            "dwt_ms": fwd["median_ms"],
            "idwt_ms": inv["median_ms"],
            "median_ms": fwd["median_ms"] + inv["median_ms"],
            "runs": n,
            "max_abs_error": err,
        }
    clone = rows["x.clone()"]["median_ms"]
    for row in rows.values():
        row["ratio_to_clone"] = row["median_ms"] / clone
    ours = rows["medfusion"]["ratio_to_clone"]
    return {
        "device": torch.cuda.get_device_name(0) if device.startswith("cuda") else "cpu",
        "torch_threads": threads,
        "rows": rows,
        "ratio_dwt_idwt_to_clone": ours,
        "target_ratio": TARGET_RATIO,
        "target_met": ours <= TARGET_RATIO,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", help="results file (default: benchmarks/results/wavelets.json)")
    p.add_argument("--repeats", type=int, default=7, help="timed runs per measurement (after one warm-up)")
    p.add_argument("--shape", type=int, nargs=5, default=list(SHAPE), metavar=("B", "C", "X", "Y", "Z"),
                   help="volume shape (default: %(default)s; X, Y, Z even)")
    a = p.parse_args()
    shape = tuple(a.shape)

    import os

    import torch

    all_threads = torch.get_num_threads()
    runs = {"cpu": ("cpu", all_threads), "cpu, 1 thread": ("cpu", 1)}
    if torch.cuda.is_available():
        runs["cuda"] = ("cuda", all_threads)
    load_before = os.getloadavg()
    results = {}
    for key, (device, threads) in runs.items():
        res = run_device(device, a.repeats, threads, shape)
        results[key] = res
        print(f"\n{key} ({res['device']}), {threads} torch threads, shape {shape} float32")
        print(f"{'':30s} {'DWT ms':>9s} {'IDWT ms':>9s} {'total ms':>9s} {'x clone':>8s}")
        for name, row in res["rows"].items():
            dwt, idwt = (f"{row[k]:9.1f}" if k in row else f"{'':9s}" for k in ("dwt_ms", "idwt_ms"))
            print(f"{name:30s} {dwt} {idwt} {row['median_ms']:9.1f} {row['ratio_to_clone']:8.2f}")
        verdict = "met" if res["target_met"] else "NOT met"
        print(f"target DWT + IDWT <= {TARGET_RATIO:g}x clone: {verdict} ({res['ratio_dwt_idwt_to_clone']:.2f}x)")
    torch.set_num_threads(all_threads)
    payload = {
        "command": command_line(),
        "shape": list(shape),
        "dtype": "float32",
        "repeats": a.repeats,
        "load_average_1_5_15min": {"before": load_before, "after": os.getloadavg()},
        "results": results,
    }
    print("\nwrote", write_results("wavelets", payload, a.out))


if __name__ == "__main__":
    main()
