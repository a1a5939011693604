"""Held-out evaluation of seg2med: generate (and convert) every case, score the model and the no-learning baseline.

Every number comes from :mod:`medfusion.metrics`: SSIM, PSNR and MAE inside the body through
:func:`medfusion.evaluate.evaluate_arrays` with the ``synthrad`` protocol, SynthRAD2023's definition (MAE of the raw
values; PSNR of the clipped images; one 3D SSIM over the body; CT window [−1024, 3000] HU, MR window [0, the
model's MR maximum]), per-organ mean errors (:func:`~medfusion.metrics.image.region_mean_errors`,
HU for CT) and the slice-to-slice difference (:func:`~medfusion.metrics.image.interslice_difference`) relative to
the truth's — the stripe measure of a slice-wise model (1 = as smooth along z as the truth).
"""

from __future__ import annotations

import os
import time
from typing import Sequence

import numpy as np

from ...io import write_atomic
from .baseline import histogram_baseline, prior_baseline
from .cases import case_datalist, load_case
from .inference import SOURCE_TASK, convert, generate
from .model import Seg2MedModel
from .tissues import class_names

__all__ = ["load_case", "run_task", "score", "organ_errors", "evaluate_heldout", "ORGANS", "SOFT_TISSUE"]

PROTOCOL = "synthrad"
#: organs whose mean-HU error is reported (the seg2med paper's abdominal organs that the phantoms hold)
ORGANS = ("liver", "spleen", "kidney_left", "kidney_right", "pancreas", "stomach", "gallbladder", "aorta",
          "inferior_vena_cava", "vertebrae_L1", "heart")
#: the soft-tissue organs among them, whose phantom truth lies near the table's one value (the phantoms build the
#: stomach from gas and fluid and a vertebra from marrow and cortex), for scoring organ means against the prior
SOFT_TISSUE = tuple(o for o in ORGANS if o not in ("stomach", "vertebrae_L1"))


def organ_errors(model: Seg2MedModel, ct: np.ndarray, labels: np.ndarray, organs: Sequence[str] = SOFT_TISSUE,
                 min_voxels: int = 50) -> dict[str, float]:
    """Each of ``organs`` with at least ``min_voxels`` voxels in ``labels`` (``total`` classes): the mean of ``ct``
    over it minus its value in the model's prior table (HU) — the target of a model on any grid is every
    soft-tissue organ within 50 HU."""
    from ...metrics.image import region_mean_errors
    from .prior_tables import prior_lookup

    lab = np.asarray(labels)
    counts = np.bincount(lab.ravel())
    names = {k: v for k, v in class_names("total").items() if v in organs and k < len(counts) and counts[k] >= min_voxels}
    prior = prior_lookup("ct", "total", model.prior_table).labels[lab]
    return region_mean_errors(ct, prior, lab, names)


def run_task(model: Seg2MedModel, case: dict, source: str, target: str, *, via: str = "prior",
             tissues: bool = False, **kwargs) -> dict:
    """One task on one loaded case: the model's output, the baseline and the truth (RAS order).

    A conversion runs ``via`` the source's label map (the authors' way: the case's ``total`` map for a CT source, the
    same mapped to ``total_mr`` for an MR source, as TotalSegmentator would label it) or the image
    (:func:`.inference.convert`); ``tissues``: give the case's tissue map, if it has one."""
    from .prior_tables import map_labels

    t0 = time.time()
    tis = case["tissues"] if tissues else None
    common = dict(body=case["body"], tissues=tis, spacing=case["spacing"], **kwargs)
    name = f"{source}→{target}"
    task = "total" if source == "prior" else SOURCE_TASK[source]
    labels = case["labels"] if task == "total" else map_labels(case["labels"], "total", task)
    if source == "prior":
        pred = generate(model, labels, target, **common)
    elif via == "prior":
        pred = convert(model, case[source], source, target, via="prior", labels=labels, task=task, **common)
    else:
        common.pop("tissues")
        pred = convert(model, case[source], source, target, via="image", **common)
        name += " (image)"
    if source == "prior" or via == "prior":  # the prior of the label map the model was given
        base = prior_baseline(model, labels, target, body=case["body"], task=task, tissues=tis)
        base_name = "prior image"
    else:
        base = histogram_baseline(case[source], case[target], body=case["body"], target=target)
        base_name = f"{source} histogram-matched to the true {target} (oracle)"
    return {"name": case["name"], "task": name, "source": source, "target": target, "pred": pred,
            "baseline": base, "baseline_name": base_name, "truth": case[target], "body": case["body"],
            "labels": case["labels"], "spacing": case["spacing"], "seconds": time.time() - t0}


def _window(model: Seg2MedModel, target: str) -> tuple[float, float] | None:
    return None if target == "ct" else (0.0, model.window(target)[1])


def score(model: Seg2MedModel, results: Sequence[dict], which: str = "pred") -> list[dict]:
    """Per result, the ``synthrad`` scores of ``which`` (``"pred"`` or ``"baseline"``), its organ mean errors (CT)
    and its slice-to-slice difference relative to the truth's."""
    from ...evaluate import evaluate_arrays
    from ...metrics.image import interslice_difference, region_mean_errors

    names = {k: v for k, v in class_names("total").items() if v in ORGANS}
    rows = []
    for r in results:
        report = evaluate_arrays([{"case": f"{r['name']}:{r['task']}", "pred": r[which], "ref": r["truth"],
                                   "mask": r["body"], "spacing": r["spacing"]}], protocol=PROTOCOL,
                                 window=_window(model, r["target"]))
        row = {k: float(v) for k, v in report.cases[0].items() if isinstance(v, (int, float, np.floating))}
        truth_z = interslice_difference(r["truth"], mask=r["body"])
        row["interslice_ratio"] = interslice_difference(r[which], mask=r["body"]) / truth_z
        if r["target"] == "ct":
            errors = region_mean_errors(r[which], r["truth"], r["labels"], names)
            row["organ_abs_mean_error"] = float(np.mean(np.abs(list(errors.values())))) if errors else float("nan")
        rows.append({"case": r["name"], "task": r["task"], **row})
    return rows


def _summary(rows: Sequence[dict]) -> dict:
    out: dict = {}
    for task in dict.fromkeys(r["task"] for r in rows):
        sel = [r for r in rows if r["task"] == task]
        keys = [k for k in sel[0] if k not in ("case", "task")]
        out[task] = {"n": len(sel), **{k: float(np.nanmean([r[k] for r in sel])) for k in keys}}
    return out


def _runs(model: Seg2MedModel, tasks, via) -> list[tuple[str, str, str]]:
    """(source, target, via) of every run: a conversion once per way in ``via`` the model can do it."""
    runs = []
    for source, target in (tuple(t) for t in (tasks or model.tasks)):
        if source == "prior":
            runs.append((source, target, "prior"))
            continue
        for v in via:
            if (v == "prior" and ("prior", target) in model.tasks) or (v == "image" and (source, target) in model.tasks):
                runs.append((source, target, v))
    return runs


def evaluate_heldout(model: Seg2MedModel, dataset_dir, *, tasks: Sequence[Sequence[str]] | None = None,
                     via: Sequence[str] = ("prior",), tissues: bool = False, max_cases: int | None = None,
                     report: str | os.PathLike | None = None, **kwargs) -> dict:
    """Every task of ``tasks`` (default: the model's generation tasks, and its conversion tasks ``via`` each way
    it can) on every case of ``dataset_dir``; model against baseline. ``tissues``: give the cases' tissue maps.

    Returns ``{"summary": {task: {"n", "model": {...}, "baseline": {...}}}, "cases": [...], "seconds": ...}`` and
    writes it as JSON to ``report`` when given.  Keyword arguments: :func:`.inference.translate`.
    """
    import json

    items = case_datalist(dataset_dir)[: max_cases or None]
    runs = _runs(model, tasks, via)
    results = []
    for item in items:
        case = load_case(item)
        results += [run_task(model, case, s, t, via=v, tissues=tissues, **kwargs) for s, t, v in runs]
    rows_m, rows_b = score(model, results, "pred"), score(model, results, "baseline")
    sm, sb = _summary(rows_m), _summary(rows_b)
    summary = {t: {"n": sm[t]["n"], "model": {k: v for k, v in sm[t].items() if k != "n"},
                   "baseline": {k: v for k, v in sb[t].items() if k != "n"}, "baseline_name": r["baseline_name"]}
               for t, r in {r["task"]: r for r in results}.items()}
    out = {"protocol": PROTOCOL, "summary": summary, "cases": {"model": rows_m, "baseline": rows_b},
           "seconds_per_task": float(np.mean([r["seconds"] for r in results]))}
    if report is not None:
        write_atomic(report, json.dumps(out, indent=1, allow_nan=True))
    return out
