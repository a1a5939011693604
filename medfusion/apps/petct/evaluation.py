"""Held-out evaluation of the PET/CT segmenters: the diffusion ensemble against the SegResNet baseline, on the CT
grid, as HECKTOR scores.

Per case and segmenter, the prediction is made on the working grid and moved back onto the CT grid
(:mod:`.files`), then scored through :func:`medfusion.evaluate.evaluate_arrays` with the ``hecktor`` protocol
(Dice and HD95 per class, aggregated Dice per class in mm³ and its mean — the HECKTOR 2022 ranking value).  For the
diffusion ensemble also whether its uncertainty earns its place (:mod:`medfusion.metrics.uncertainty`), all over one
stated region — the voxels within :data:`BAND_MM` of the prediction or the truth, where errors can be: the AUROC
for misclassified voxels of the ensemble's predictive entropy, of one sample's entropy (the first sample, seed
``seed``: no ensemble needed) and of the distance to the predicted boundary (no sampling at all); the Brier score and
the expected calibration error of the ensemble's and of one sample's class probabilities; and the Dice left after
removing the most uncertain foreground voxels.
"""

from __future__ import annotations

import os
import time
from typing import Mapping

import numpy as np

from ...io import load_volume, write_atomic
from .files import prepare_case
from .geometry import to_ct_grid
from .inference import run_segmenter
from .model import PetCtSegModel
from .train import hecktor_datalist

__all__ = ["predict_case", "evaluate_heldout", "PROTOCOL", "REMOVED_FRACTIONS"]

PROTOCOL = "hecktor"
#: fractions of the most uncertain foreground voxels removed in the Dice-vs-removal curve
REMOVED_FRACTIONS = (0.0, 0.05, 0.1, 0.25)
#: uncertainty is scored within this distance (mm) of the prediction or the truth
BAND_MM = 5.0


def _on_ct_grid(seg, case) -> dict:
    from .inference import class_distribution

    prob = to_ct_grid(seg.probabilities, case.grid, case.ct, order=1)
    return {"labels": to_ct_grid(seg.labels, case.grid, case.ct, order=0),
            "entropy": to_ct_grid(seg.entropy, case.grid, case.ct, order=1), "classes": class_distribution(prob)}


def predict_case(model, item: Mapping, **kwargs) -> dict:
    """One case (``{"name", "pet", "ct", "label"}``) through ``model``: ``labels``, ``entropy`` and the class
    probabilities ``classes`` (background, GTVp, GTVn) on the CT grid — for an ensemble also those of its first
    sample alone (``one_sample``) —, the reference ``truth``, the CT ``spacing`` and the ``seconds`` taken.  Keyword
    arguments: :func:`~.inference.run_segmenter`."""
    t0 = time.time()
    case = prepare_case(item["pet"], item["ct"], model.preprocessing, model.divisor)
    seg = run_segmenter(model, case.pet_suv, case.ct_hu, **kwargs)
    out = {"name": item["name"], **_on_ct_grid(seg, case), "truth": np.rint(load_volume(item["label"]).data)
           .astype(np.uint8), "spacing": case.ct.spacing, "seconds": time.time() - t0, "samples": seg.samples}
    if isinstance(model, PetCtSegModel):  # sample 0 of the ensemble, on its own
        one = seg if seg.samples == 1 else run_segmenter(model, case.pet_suv, case.ct_hu, **{**kwargs, "samples": 1})
        out["one_sample"] = _on_ct_grid(one, case)
    return out


def _uncertainty_case(r) -> dict:
    from ...metrics.uncertainty import boundary_uncertainty, calibration, error_auroc, evaluation_region

    region = evaluation_region(r["labels"], r["truth"], r["spacing"], band_mm=BAND_MM)
    one = r["one_sample"]
    return {"region_voxels": int(region.sum()),
            "auroc_ensemble_entropy": error_auroc(r["entropy"], r["labels"], r["truth"], region=region),
            "auroc_one_sample_entropy": error_auroc(one["entropy"], one["labels"], r["truth"], region=region),
            "auroc_boundary_distance": error_auroc(boundary_uncertainty(r["labels"], r["spacing"]), r["labels"],
                                                   r["truth"], region=region),
            **{f"{k}_ensemble": v for k, v in calibration(r["classes"], r["truth"], region).items()},
            **{f"{k}_one_sample": v for k, v in calibration(one["classes"], r["truth"], region).items()}}


def _uncertainty_scores(results) -> dict:
    from ...metrics.uncertainty import dice_after_removing_uncertain

    cases = [_uncertainty_case(r) for r in results]
    curves = [dice_after_removing_uncertain(r["entropy"], r["labels"] > 0, r["truth"] > 0, REMOVED_FRACTIONS)
              for r in results]
    means = {k: float(np.nanmean([c[k] for c in cases])) if not all(np.isnan(c[k]) for c in cases) else float("nan")
             for k in cases[0] if k != "region_voxels"}
    return {"region": f"voxels within {BAND_MM:g} mm of the prediction or the truth", **means, "cases": cases,
            "error_auroc_mean": means["auroc_ensemble_entropy"],
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
