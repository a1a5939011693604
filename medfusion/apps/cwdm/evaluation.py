"""Held-out evaluation of cWDM: hide each contrast of complete cases in turn, synthesize it, and score the
model and the no-learning baseline — every number computed by :mod:`medfusion.metrics` through
:func:`medfusion.evaluate.evaluate_arrays` with the ``brasyn`` protocol, the same path as ``medfusion evaluate``
on the written files."""

from __future__ import annotations

import os
import time
from typing import Sequence

import numpy as np

from ...core.processing import preprocessed
from ...errors import InputError
from ...io import load_volume, write_atomic
from .baseline import best_contrast_baseline
from .inference import synthesize
from .layout import CONTRASTS, BraTSCase, list_cases, load_case
from .model import CWDMModel
from .transforms import inference_preprocessing

__all__ = ["hide_and_synthesize", "score", "evaluate_heldout"]

PROTOCOL = "brasyn"


def hide_and_synthesize(model: CWDMModel, case: BraTSCase, missing: str, *, preprocessing=None, **kwargs) -> dict:
    """Synthesize ``missing`` of a complete case from the other three; also the oracle baseline.

    Returns ``{"name", "missing", "pred", "truth", "baseline", "baseline_name", "inputs", "seg", "spacing",
    "reference", "seconds"}``: ``pred`` in [0, 1]; ``truth`` as stored; ``inputs`` and ``baseline`` normalised
    like the model's inputs (by ``preprocessing``, default the model's own:
    :func:`.transforms.inference_preprocessing`); ``reference`` the volume whose geometry outputs take.
    ``kwargs``: :func:`.inference.synthesize`'s.
    """
    vols = load_case(case)
    if missing not in vols:
        raise InputError(f"case {case.name} has no {missing} to compare with")
    inputs = {c: v.data for c, v in vols.items() if c != missing}
    t0 = time.time()
    pred = synthesize(model, inputs, missing, preprocessing=preprocessing, **kwargs)
    seconds = time.time() - t0
    pre = inference_preprocessing(model.lower, model.upper) if preprocessing is None else preprocessing
    normed = dict(zip(inputs, _normalised(pre, list(inputs.values()))))
    truth_n = _normalised(pre, [vols[missing].data])[0]
    base_name, baseline = best_contrast_baseline(normed, truth_n)
    seg = load_volume(case.seg).data if case.seg else None
    return {"name": case.name, "missing": missing, "pred": pred, "truth": vols[missing].data, "truth_normalised": truth_n,
            "baseline": baseline, "baseline_name": f"oracle histogram-matched {base_name}", "inputs": normed,
            "seg": seg, "spacing": vols[missing].spacing, "reference": vols[missing], "seconds": seconds}


def _normalised(preprocessing, volumes: list) -> np.ndarray:
    """``volumes`` stacked as the preprocessing's ``"image"`` and normalised by it."""
    return preprocessed(preprocessing, np.stack([np.asarray(v, np.float32) for v in volumes]))


def score(results: Sequence[dict], which: str = "pred"):
    """A :class:`~medfusion.metrics.report.Report` (``brasyn``) of ``which`` (``"pred"`` or ``"baseline"``) of
    :func:`hide_and_synthesize` results against the true contrasts, tumour = ``seg > 0``."""
    from ...evaluate import evaluate_arrays

    cases = [{"case": f"{r['name']}-{r['missing']}", "pred": r[which], "ref": r["truth"],
              "mask": None if r["seg"] is None else r["seg"] > 0, "spacing": r["spacing"]} for r in results]
    if all(c["mask"] is None for c in cases):  # no label maps: only the additions (the BraSyn scores need one)
        return evaluate_arrays(cases, protocol=PROTOCOL, metrics=["ssim", "psnr", "mse"])
    return evaluate_arrays(cases, protocol=PROTOCOL)


def _means(report, rows: Sequence[int]) -> dict:
    """Mean of each metric over ``rows`` of ``report``, undefined values left out (the report's own summary)."""
    from ...metrics.report import summarize

    return {m: summarize([report.cases[i].get(m) for i in rows])["mean"] for m in report.metric_names}


def evaluate_heldout(model: CWDMModel, dataset_dir: str | os.PathLike, *, missing: Sequence[str] | None = None,
                     max_cases: int | None = None, report: str | os.PathLike | None = None, preprocessing=None,
                     postprocessing=None, **kwargs) -> dict:
    """Hide each contrast in ``missing`` (default: all the model can synthesize) of every complete case in
    ``dataset_dir``, synthesize it, and score model and baseline with the ``brasyn`` protocol.

    Returns ``{"protocol", "cases": [...], "summary": {contrast or "all": {"model": {metric: mean},
    "baseline": {...}, "n", "seconds_per_volume"}}}``, also written as JSON to ``report`` when given.  Keyword
    arguments go to :func:`~medfusion.apps.cwdm.inference.synthesize` (steps, sampler, seed, device, precision,
    and the ``preprocessing`` and ``postprocessing``, the former also normalising the baseline's contrasts).
    """
    import json

    cases = [c for c in list_cases(dataset_dir, require_missing=False) if c.missing is None][:max_cases]
    if not cases:
        raise InputError(f"no complete cases in {dataset_dir}")
    targets = list(missing) if missing else ([model.target] if model.target else list(CONTRASTS))
    results = [hide_and_synthesize(model, c, m, preprocessing=preprocessing, postprocessing=postprocessing, **kwargs)
               for c in cases for m in targets]
    reports = {"model": score(results, "pred"), "baseline": score(results, "baseline")}
    summary = {}
    for group in targets + ["all"]:
        rows = [i for i, r in enumerate(results) if group == "all" or r["missing"] == group]
        summary[group] = {who: _means(rep, rows) for who, rep in reports.items()}
        summary[group].update(n=len(rows), seconds_per_volume=float(np.mean([results[i]["seconds"] for i in rows])))
    records = [{"case": r["name"], "missing": r["missing"], "seconds": r["seconds"], "baseline": r["baseline_name"],
                "model": {k: v for k, v in reports["model"].cases[i].items() if k != "case"},
                "baseline_scores": {k: v for k, v in reports["baseline"].cases[i].items() if k != "case"}}
               for i, r in enumerate(results)]
    out = {"dataset": os.fspath(dataset_dir), "protocol": reports["model"].description, "settings": kwargs,
           "model_info": model.info, "cases": records, "summary": summary}
    if report is not None:
        write_atomic(report, json.dumps(_plain_json(out), indent=2, allow_nan=False) + "\n")
    return out


def _plain_json(x):
    """JSON-ready copy: undefined values (NaN, ±inf) → null, unknown objects → their string."""
    if isinstance(x, dict):
        return {str(k): _plain_json(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain_json(v) for v in x]
    if isinstance(x, (float, np.floating)):
        return float(x) if np.isfinite(x) else None
    if x is None or isinstance(x, (str, int, bool)):
        return x
    return str(x)
