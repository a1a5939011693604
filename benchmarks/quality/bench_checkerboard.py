"""The 2-voxel checkerboard in a synthesized region: its coherent Nyquist components, truth vs synthesis.

A pattern that repeats every 2 voxels along some axes is measured by the mean of ``v · (−1)^(a·i + b·j + c·k)``
over the region, for each of the seven non-zero ``(a, b, c) ∈ {0, 1}³`` (the frequencies that one level of Haar
detail bands carries).  Noise averages out; a coherent checkerboard does not.  The review found one in the demo's
synthesized necrotic core; its cause is a smooth error of the network's prediction in the Haar detail channels
(it follows the 2×2×2 block grid: shifting the inputs by one voxel flips its sign), not the phantom nor the
sampler.  Run after retraining to see whether it is gone:

    python benchmarks/quality/bench_checkerboard.py            # the demo case, t2f hidden, necrotic core (label 1)
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _common import command_line  # noqa: E402


def nyquist_components(volume: np.ndarray, region: np.ndarray) -> dict[str, float]:
    """Mean of ``volume · (−1)^(a·i + b·j + c·k)`` over ``region`` for every non-zero ``(a, b, c)``."""
    idx = np.indices(volume.shape)
    out = {}
    for abc in itertools.product((0, 1), repeat=3):
        if any(abc):
            sign = (-1.0) ** sum(a * i for a, i in zip(abc, idx))
            out["".join(map(str, abc))] = float((volume * sign)[region].mean())
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--missing", default="t2f")
    p.add_argument("--label", type=int, default=1, help="region: this label of the case's seg (1 = necrotic core)")
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--out", default="benchmarks/results/checkerboard.json")
    args = p.parse_args()

    from medfusion.apps.cwdm import find_case, hide_and_synthesize, load_model
    from medfusion.paths import bundle_dir, sample_data_dir

    case_dir = sorted(d for d in sample_data_dir("brats_phantom").iterdir() if d.is_dir())[0]
    case = find_case(case_dir, require_missing=False)
    r = hide_and_synthesize(load_model(bundle_dir("brats_mri_cwdm")), case, args.missing, steps=args.steps, seed=0)
    region = r["seg"] == args.label
    truth, pred = nyquist_components(r["truth_normalised"], region), nyquist_components(r["pred"], region)
    result = {"command": command_line(), "case": case.name, "missing": args.missing, "region_label": args.label,
              "region_voxels": int(region.sum()),
              "truth": truth, "synthesized": pred,
              "max_abs": {"truth": max(map(abs, truth.values())), "synthesized": max(map(abs, pred.values()))},
              "mean_in_region": {"truth": float(r["truth_normalised"][region].mean()),
                                 "synthesized": float(r["pred"][region].mean())}}
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["max_abs"]), json.dumps(result["mean_in_region"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
