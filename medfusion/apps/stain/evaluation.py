"""Held-out evaluation of stain translators: the IHC image by the ``bci`` protocol and the cells by Dice and by
instance metrics, every number from :mod:`medfusion.metrics`.

For each case folder (``he.png``, ``ihc.png``, ``cells.png``) every model translates the H&E; the IHC image is
scored against the true IHC with 8-bit PSNR and SSIM as BCI computes them (:func:`medfusion.evaluate.evaluate_arrays`,
``protocol="bci"``), the cell labels against the coarse true labels (the ``labels`` protocol with
``foreground=True``, as ``medfusion evaluate --protocol labels --foreground --metrics dice dsc_agg aji pq`` scores
label images): foreground Dice per image and aggregated over all pixels of the set, and per image the object-level
AJI and panoptic quality (PQ with its segmentation part SQ and detection part RQ).  Three no-learning references are
scored the same way: ``he_as_ihc`` (the H&E image itself as the IHC prediction), ``haematoxylin_as_ihc`` (the H&E's
own haematoxylin rendered as an IHC counterstain, :func:`.data.haematoxylin_as_ihc`) and ``haematoxylin_watershed``
(cells from the H&E's haematoxylin channel by :func:`.data.nuclei_labels`, the rule that made the coarse training
labels — on tiles whose labels came from that rule, a circular reference).
"""

from __future__ import annotations

import os
import time
from typing import Mapping

import numpy as np

from ...io import load_rgb, write_atomic
from .images import load_labels, stain_datalist
from .inference import translate

__all__ = ["evaluate_heldout", "load_cases", "score", "REFERENCES"]

#: the no-learning references and what they predict
REFERENCES = {"he_as_ihc": "ihc", "haematoxylin_as_ihc": "ihc", "haematoxylin_watershed": "cells"}


def _predict(name: str, model, he: np.ndarray, **kwargs) -> dict:
    if name == "he_as_ihc":
        return {"ihc": he}
    if name == "haematoxylin_as_ihc":
        from .data import haematoxylin_as_ihc

        return {"ihc": haematoxylin_as_ihc(he)}
    if name == "haematoxylin_watershed":
        from .data import nuclei_labels

        return {"cells": nuclei_labels(he)}
    return translate(model, he, **kwargs)


def load_cases(dataset_dir, max_cases: int | None = None) -> list[dict]:
    """The case folders of ``dataset_dir`` (the first ``max_cases``) read once: ``{"name", "he", "ihc", "cells"}``."""
    return [{"name": it["name"], "he": load_rgb(it["he"]), "ihc": load_rgb(it["ihc"]),
             "cells": load_labels(it["cells"])} for it in stain_datalist(dataset_dir)[: max_cases or None]]


def score(preds: list[dict], cases: list[dict]) -> dict:
    """Predictions (``{"ihc"?, "cells"?}`` per case) against :func:`load_cases` cases: ``{"ihc": {"psnr", "ssim",
    "per_case"}, "cells": {"dice", "dice_aggregated", "aji", "pq", "sq", "rq", "per_case"}}`` for the tasks
    predicted — the ``bci`` protocol and the ``labels`` protocol with ``foreground``
    (:func:`medfusion.evaluate.evaluate_arrays`); AJI and PQ are means over the images where they are defined."""
    from ...evaluate import evaluate_arrays

    out: dict = {}
    if "ihc" in preds[0]:
        rep = evaluate_arrays([{"case": c["name"], "pred": p["ihc"], "ref": c["ihc"]} for p, c in zip(preds, cases)],
                              protocol="bci")
        out["ihc"] = {"psnr": float(np.mean([r["psnr"] for r in rep.cases])),
                      "ssim": float(np.mean([r["ssim"] for r in rep.cases])),
                      "per_case": [{"case": r["case"], "psnr": r["psnr"], "ssim": r["ssim"]} for r in rep.cases]}
    if "cells" in preds[0]:
        pairs = [{"case": c["name"], "pred": p["cells"], "ref": c["cells"]} for p, c in zip(preds, cases)]
        rep = evaluate_arrays(pairs, protocol="labels", metrics=["dice", "dsc_agg", "aji", "pq"], foreground=True)
        per = [{"case": r["case"], "dice": r["dice_foreground"], **{k: r[k] for k in ("aji", "pq", "sq", "rq")}}
               for r in rep.cases]
        out["cells"] = {"dice": float(np.mean([r["dice"] for r in per])),
                        "dice_aggregated": rep.set_metrics["dsc_agg_foreground"],
                        **{k: _mean_defined([r[k] for r in per]) for k in ("aji", "pq", "sq", "rq")},
                        "per_case": per}
    return out


def _mean_defined(values) -> float:
    """The mean of the defined (finite) values; ``nan`` when there are none."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    return float(v.mean()) if v.size else float("nan")


def evaluate_heldout(models: Mapping[str, object], dataset_dir, *, references: bool = True,
                     max_cases: int | None = None, report: str | os.PathLike | None = None, **kwargs) -> dict:
    """Score every model (name → :class:`~.model.StainModel` or :class:`~.baseline.UNetBaseline`) and, with
    ``references``, the no-learning references on the case folders of ``dataset_dir``.

    Returns ``{"n_cases", "models": {name: {"ihc": {"psnr", "ssim", "per_case"}, "cells": {"dice",
    "dice_aggregated", "per_case"}, "seconds_per_image"}}}`` (each model's tasks only) and writes it as JSON to
    ``report`` when given.  Keyword arguments: :func:`.inference.translate` (steps, seed, tile, overlap, device, ...).
    """
    import json

    cases = load_cases(dataset_dir, max_cases)
    runs = dict(models)
    if references:
        runs.update({name: None for name in REFERENCES})
    result: dict = {"n_cases": len(cases), "models": {}}
    for name, model in runs.items():
        t0 = time.time()
        preds = [_predict(name, model, c["he"], **kwargs) for c in cases]
        result["models"][name] = {**score(preds, cases), "seconds_per_image": (time.time() - t0) / len(cases)}
    if report is not None:
        write_atomic(report, json.dumps(result, indent=1, allow_nan=True))
    return result
