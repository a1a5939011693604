"""Held-out evaluation of the PET/CT segmenters: the diffusion ensemble against the SegResNet baseline, on the CT
grid, as HECKTOR scores.

Per case and segmenter, the prediction is made on the working grid and moved back onto the CT grid
(:mod:`.pipeline`), then scored through :func:`medfusion.evaluate.evaluate_arrays` with the ``hecktor`` protocol
(Dice and HD95 per class, aggregated Dice per class and its mean — the HECKTOR 2022 ranking value).  For the
diffusion model also: whether its uncertainty marks its errors (:mod:`medfusion.metrics.uncertainty`: the AUROC of
the predictive entropy for misclassified voxels, per case, and the Dice left after removing the most uncertain
voxels).
"""

from __future__ import annotations

import os
import time
from typing import Mapping

import numpy as np

from ...io import load_volume, write_atomic
from .geometry import to_ct_grid
from .model import PetCtSegModel
from .pipeline import prepare_case
from .segmentation import run_segmenter
from .train import hecktor_datalist

__all__ = ["predict_case", "evaluate_heldout", "PROTOCOL", "REMOVED_FRACTIONS"]

PROTOCOL = "hecktor"
#: fractions of the most uncertain foreground voxels removed in the Dice-vs-removal curve
REMOVED_FRACTIONS = (0.0, 0.05, 0.1, 0.25)


def predict_case(model, item: Mapping, **kwargs) -> dict:
    """One case (``{"name", "pet", "ct", "label"}``) through ``model``: ``labels`` and ``entropy`` on the CT grid,
    the reference ``truth``, the CT ``spacing`` and the ``seconds`` taken.  Keyword arguments:
    :func:`~.segmentation.run_segmenter`."""
    t0 = time.time()
    case = prepare_case(item["pet"], item["ct"], model.preprocessing, model.divisor)
    seg = run_segmenter(model, case.pet_suv, case.ct_hu, **kwargs)
    labels = to_ct_grid(seg.labels, case.grid, case.ct, order=0)
    entropy = to_ct_grid(seg.entropy, case.grid, case.ct, order=1)
    truth = np.rint(load_volume(item["label"]).data).astype(np.uint8)
    return {"name": item["name"], "labels": labels, "entropy": entropy, "truth": truth,
            "spacing": case.ct.spacing, "seconds": time.time() - t0, "samples": seg.samples}


def _uncertainty_scores(results) -> dict:
    from ...metrics.uncertainty import dice_after_removing_uncertain, error_auroc

    aurocs = [error_auroc(r["entropy"], r["labels"], r["truth"]) for r in results]
    curves = [dice_after_removing_uncertain(r["entropy"], r["labels"] > 0, r["truth"] > 0, REMOVED_FRACTIONS)
              for r in results]
    return {"error_auroc_mean": float(np.nanmean(aurocs)) if not np.isnan(aurocs).all() else float("nan"),
            "error_auroc_cases": aurocs,
            "tumour_dice_after_removing": {str(f): float(np.nanmean([c[f] for c in curves]))
                                           for f in REMOVED_FRACTIONS}}


def evaluate_heldout(models: Mapping[str, object], dataset_dir, *, max_cases: int | None = None,
                     report: str | os.PathLike | None = None, **kwargs) -> dict:
    """Every segmenter of ``models`` (name → diffusion model or baseline) on the cases of a HECKTOR-layout
    ``dataset_dir``; returns ``{"protocol", "models": {name: {"set_metrics", "summary", "cases", "seconds_per_case",
    ["uncertainty"]}}}`` and writes it as JSON to ``report`` when given.  Keyword arguments: :func:`predict_case`.
    """
    import json

    from ...evaluate import evaluate_arrays

    items = hecktor_datalist(dataset_dir)[: max_cases or None]
    out: dict = {"protocol": PROTOCOL, "n_cases": len(items), "models": {}}
    for name, model in models.items():
        results = [predict_case(model, it, **kwargs) for it in items]
        rep = evaluate_arrays([{"case": r["name"], "pred": r["labels"], "ref": r["truth"], "spacing": r["spacing"]}
                               for r in results], protocol=PROTOCOL)
        entry = {"set_metrics": dict(rep.set_metrics), "summary": rep.summary, "cases": rep.cases,
                 "seconds_per_case": float(np.mean([r["seconds"] for r in results]))}
        if isinstance(model, PetCtSegModel):  # an ensemble: does its uncertainty mark its errors?
            entry["uncertainty"] = _uncertainty_scores(results)
        out["models"][name] = entry
    if report is not None:
        write_atomic(report, json.dumps(out, indent=1, allow_nan=True, default=float))
    return out
