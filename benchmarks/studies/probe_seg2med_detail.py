"""How much of the truth's fine detail the seg2med 3D network keeps in one step, at small timesteps.

For a validation abdomen phantom (seed 2004: not trained on, not a benchmark case) and each target (CT, T1, T2),
the windowed truth is noised to timestep t (seed 0) and the network's x̂₀ is decoded to image space.  Reported per
t: ``detail_kept`` — the standard deviation, in the liver, of the high-pass residual (the image minus its 3×3×3
mean) of x̂₀ divided by the truth's (1 = every fine detail kept, as an x₀-predictor should near t = 0) — and the
mean absolute error to the truth inside the body (windowed, [0, 1]).  This is the diagnosis that motivated the
small-timestep training stage of the shipped 3D weights (bundle docs).

    python benchmarks/studies/probe_seg2med_detail.py [--weights CHECKPOINT] [--out FILE]

Results: benchmarks/results/seg2med_detail.json (or --out).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _common import add_cache_option, command_line, heldout_phantoms, write_results  # noqa: E402

TIMESTEPS = (0, 5, 10, 25, 50, 100)


def probe(model, case: dict, target: str, timesteps=TIMESTEPS) -> list[dict]:
    """``[{"t", "detail_kept", "mae"}]`` of one target of one loaded case."""
    import numpy as np
    import torch
    from scipy.ndimage import uniform_filter

    from medfusion.apps.seg2med.prior import make_prior

    def highpass(v):
        return v - uniform_filter(v.astype(np.float64), 3)

    liver, body = case["labels"] == 5, case["body"]
    truth = model.normalize(case[target], target)
    prior = model.normalize(make_prior(case["labels"], target, body=body), target)
    as_batch = lambda v: torch.from_numpy(v.astype(np.float32))[None, None]  # noqa: E731
    labels = model.class_labels("prior", target, batch=1)
    gen, rows = torch.Generator().manual_seed(0), []
    for t in timesteps:
        with torch.no_grad():  # the training forward pass: truth noised to t, the network's x̂₀ (model space)
            o = model.diffusion.forward_train(as_batch(truth), as_batch(prior), labels, generator=gen,
                                              timesteps=torch.tensor([t]))
        # x̂₀ − x₀ is linear in the image (the Haar transform), so truth + its decoded error is x̂₀ in image space
        image = np.clip(truth + model.diffusion.space.decode(o.x0_hat - o.x0)[0, 0].numpy(), 0.0, 1.0)
        rows.append({"t": t, "detail_kept": float(highpass(image)[liver].std() / highpass(truth)[liver].std()),
                     "mae": float(np.abs(image - truth)[body].mean())})
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", help="3D checkpoint (default: the shipped bundle's models/model_3d.pt)")
    add_cache_option(p)
    p.add_argument("--out")
    a = p.parse_args()

    import torch

    from medfusion.apps.seg2med.cases import load_case
    from medfusion.apps.seg2med.model import load_model
    from medfusion.apps.seg2med.train import case_datalist
    from medfusion.paths import bundle_dir

    torch.manual_seed(0)
    model = load_model(a.weights or bundle_dir("totalseg_mask_to_ct_mr") / "models" / "model_3d.pt", "cpu")
    model.network.eval()
    case = load_case(case_datalist(heldout_phantoms(1, seed0=2004, cache=a.cache, kind="abdomen"))[0])
    result = {target: probe(model, case, target) for target in ("ct", "t1", "t2")}
    for target, rows in result.items():
        print(target, " ".join(f"t={r['t']}: {r['detail_kept']:.3f}/{r['mae']:.4f}" for r in rows))
    payload = {"command": command_line(), "dataset": "validation abdomen phantom, seed 2004, shape [96, 96, 64]",
               "train_steps": model.info.get("train_steps"), "targets": result}
    print(f"wrote {write_results('seg2med_detail', payload, a.out)}")


if __name__ == "__main__":
    main()
