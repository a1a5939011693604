"""``medfusion evaluate``: score predictions against references with a named protocol, case by case.

    from medfusion.evaluate import evaluate, evaluate_arrays
    report = evaluate("outputs/synth", "data/truth", protocol="brasyn", mask="data/seg")
    report.write("report.json")          # or .csv
    print(report.table())
    # the same from arrays in memory (applications, notebooks): the same numbers for the same volumes
    report = evaluate_arrays([{"case": "BraTS-001", "pred": synth, "ref": truth, "mask": seg}], protocol="brasyn")

Files and arrays share one path after loading: :func:`check_arrays` (the checks and conversions every case gets;
it and :func:`load_case` live in :mod:`medfusion.case_checks` and are re-exported here), the protocol's ``case``,
its set-level metrics and the :class:`~medfusion.metrics.report.Report`.

Pairing (:mod:`medfusion.pairing`, whose :class:`Case`, :func:`pair_cases` and ``IMAGE_EXTENSIONS`` are
re-exported here): ``pred`` and ``ref`` are files, or folders searched recursively; a case is a file's name without
its extension (``BraTS-001-t2f.nii.gz`` → ``BraTS-001-t2f``), and predictions and references with the same case
name are paired.  Files only on one side are listed in the report as unpaired (an error only if nothing pairs).
Masks (``mask``): one file for every case, or a folder (it may be the reference folder itself); see
:mod:`medfusion.pairing` for how a mask is matched to its case.

Geometry: prediction, reference and mask must share shape and affine (to ``atol`` mm); with ``resample=True``
the prediction and the mask are resampled onto the reference grid instead — nearest neighbour for label maps
(as HECKTOR does), linear for images.

Everything is checked before anything is written: bad input (missing or unreadable files, NaN voxels,
unexpected labels, mismatched geometry, empty folders, ``workers`` < 1) raises
:class:`~medfusion.errors.InputError` and no report is produced.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import partial

import numpy as np

from .case_checks import check_arrays, load_case
from .errors import InputError, ignore_signals
from .io import LABEL_IMAGE_EXTENSIONS, VOLUME_EXTENSIONS, load_rgb, load_volume
from .metrics.protocols import INSTANCE_METRICS, LABEL_METRICS, CaseResult, Protocol, Settings, get_protocol
from .pairing import IMAGE_EXTENSIONS, Case, pair_cases

__all__ = ["Case", "pair_cases", "load_case", "check_arrays", "evaluate", "evaluate_arrays", "IMAGE_EXTENSIONS"]


# ----------------------------------------------------------------------------------------------- one case
def _score_file_case(case: Case, protocol: Protocol, settings: Settings, resample: bool, atol: float) -> CaseResult:
    """Read one case, check it, and compute its metrics (runs in a worker process when workers > 1)."""
    pred, ref, mask, spacing = load_case(case, protocol.inputs, labels=settings.file_labels, resample=resample,
                                         atol=atol)
    return protocol.case(pred, ref, mask, spacing, settings)


def _score_array_case(case: Mapping, protocol: Protocol, settings: Settings) -> CaseResult:
    """Check one in-memory case and compute its metrics (runs in a worker process when workers > 1)."""
    pred, ref, mask, spacing = _load_array_case(case, protocol.inputs, settings.file_labels)
    return protocol.case(pred, ref, mask, spacing, settings)


def _load_array_case(case: Mapping, inputs: str, labels):
    name = case["case"]
    return check_arrays(case["pred"], case["ref"], case.get("mask"), case.get("spacing"), inputs=inputs,
                        labels=labels, names=(f"{name}: prediction", f"{name}: reference", f"{name}: mask"))


def _reload_file_case(record: dict, inputs: str, labels, resample: bool, atol: float):
    """The arrays of a report's case, read again from its files (for the worst-case figure)."""
    case = Case(record["case"], record["pred"], record["ref"], record.get("mask"))
    return load_case(case, inputs, labels=labels, resample=resample, atol=atol)


def _reload_array_case(record: dict, cases: Mapping[str, Mapping], inputs: str, labels):
    """The arrays of a report's case, from the caller's arrays (for the worst-case figure)."""
    return _load_array_case(cases[record["case"]], inputs, labels)


# ----------------------------------------------------------------------------------------------- shared path
@dataclass(frozen=True)
class _Plan:
    """What every evaluation settles before scoring: protocol, settings, set-level metrics, feature network."""

    proto: Protocol
    settings: Settings
    set_level: tuple[str, ...]
    extractor: object | None


def _plan(protocol, metrics, labels, has_mask: bool, data_range, window, empty_dice, hd95_empty, workers,
          fid, foreground: bool = False) -> _Plan:
    """Validate the options (the same for files and arrays) and build the settings written into the report."""
    if isinstance(workers, bool) or not isinstance(workers, (int, np.integer)) or workers < 1:
        raise InputError(f"workers must be a whole number ≥ 1, got {workers!r}")
    metrics = list(metrics or [])
    set_level = tuple(m for m in metrics if m in ("fid", "kid"))
    metrics = [m for m in metrics if m not in set_level]
    if protocol is None:
        seg_only = metrics and all(m in LABEL_METRICS + INSTANCE_METRICS for m in metrics)
        protocol = "labels" if seg_only or (labels is not None and not metrics) else "image"
    proto = get_protocol(protocol)
    if labels is not None and not isinstance(labels, dict):
        labels = {int(v): str(int(v)) for v in labels}
    if labels is not None and proto.inputs != "labels":
        raise InputError(f"--labels applies to label-map protocols (labels, hecktor), not {proto.name}")
    if foreground and proto.inputs != "labels":
        raise InputError(f"--foreground applies to the labels protocol, not {proto.name}")
    if has_mask and not proto.uses_mask:
        raise InputError(f"protocol {proto.name} takes no mask")
    if proto.mask_needed and not has_mask and not (metrics or set_level):
        raise InputError(f"protocol {proto.name} needs {proto.mask_needed}: give it as the mask (--mask FILE or "
                         f"FOLDER), or name the metrics to compute without it (--metrics)")
    if set_level and proto.inputs == "labels":
        raise InputError(f"FID/KID apply to images, not to the {proto.name} protocol's label maps")
    if set_level and proto.inputs == "rgb" and fid and fid.get("extractor") != "inception2d":
        raise InputError("FID/KID of RGB images use the Inception-v3 features: --fid-extractor inception2d")
    if set_level and not fid:
        raise InputError("FID/KID need a feature network: give --fid-extractor NAME and --fid-weights FILE")
    per_case = metrics if metrics else (() if set_level else None)  # only FID/KID asked for: no per-case metric
    settings = proto.settings(per_case, data_range=data_range, window=window, labels=labels,
                              empty_dice=empty_dice, hd95_empty=hd95_empty, foreground=foreground)
    extractor = None
    if set_level:
        from .metrics.features import make_extractor

        extractor = make_extractor(fid["extractor"], fid["weights"], device=fid.get("device", "cpu"),
                                   **fid.get("options", {}))
    return _Plan(proto, settings, set_level, extractor)


def _run(items: list, score: Callable, workers: int, progress: bool) -> list[CaseResult]:
    """Score every item, in worker processes when ``workers`` > 1; the first bad case stops the run."""
    results: list[CaseResult] = []
    bar = _bar(len(items), progress)
    if workers > 1 and len(items) > 1:
        # workers ignore Ctrl-C and SIGTERM: the main process stops them and reports once
        pool = ProcessPoolExecutor(max_workers=min(workers, len(items)), initializer=ignore_signals)
        try:
            for r in pool.map(score, items):
                results.append(r)
                bar()
        finally:  # on a bad case, stop at once: drop the cases not started yet
            pool.shutdown(wait=True, cancel_futures=True)
    else:
        for item in items:
            results.append(score(item))
            bar()
    return results


def _finish(plan: _Plan, records: list[dict], results: list[CaseResult], volumes: Callable, *, unpaired: dict,
            inputs: dict, loader: Callable):
    """Set-level metrics, FID/KID and the report: the same for files and arrays."""
    from .metrics.report import Report

    set_values = plan.proto.set_metrics(results, plan.settings)
    if plan.extractor is not None:
        set_values.update(_distribution_metrics(volumes, plan.extractor, plan.set_level,
                                                rgb=plan.proto.inputs == "rgb"))
    settings = plan.settings.as_dict()
    if plan.proto.conventions:
        settings["conventions"] = dict(plan.proto.conventions)
    return Report(protocol=plan.proto.name, description=plan.proto.description, settings=settings,
                  cases=[{**rec, **r.values} for rec, r in zip(records, results)], set_metrics=set_values,
                  unpaired=unpaired, inputs=inputs, loader=loader)


# ----------------------------------------------------------------------------------------------- API
def evaluate(
    pred: str,
    ref: str,
    *,
    protocol: str | None = None,
    metrics: Sequence[str] | None = None,
    mask: str | None = None,
    labels: dict[int, str] | Sequence[int] | None = None,
    data_range: float | str | None = None,
    window: tuple[float, float] | None = None,
    empty_dice: float = 1.0,
    hd95_empty: float | None = None,
    resample: bool = False,
    pattern: str | None = None,
    atol: float = 1e-3,
    workers: int = 1,
    fid: dict | None = None,
    progress: bool = False,
    foreground: bool = False,
):
    """Evaluate predictions against references in files; returns a :class:`~medfusion.metrics.report.Report`.

    Args:
        pred, ref: files, or folders of files paired by case name.
        protocol: ``brasyn``, ``synthrad``, ``hecktor``, ``bci``, ``image`` or ``labels`` (see
            :mod:`medfusion.metrics.protocols`); default: ``labels`` when only segmentation metrics are asked
            for (or ``labels`` are given without metrics), else ``image``.
        metrics: metric families (default: the protocol's); ``fid``/``kid`` add set-level FID/KID (needs ``fid``).
        mask: a mask file for every case, or a folder of masks (brasyn: the tumour label map; synthrad: the
            body mask; image: the region to average over).
        labels: label values (or value → name) for label protocols; other values in a file are an error.
        data_range, window: see :class:`~medfusion.metrics.protocols.Settings`.
        empty_dice, hd95_empty: empty-mask conventions (written into the report).
        resample: resample predictions (and masks) onto the reference grid instead of refusing a mismatch.
        pattern: shell pattern the file names in folders must match (e.g. ``"*-t2f.nii.gz"``).
        atol: affine tolerance (mm) of the geometry check.
        workers: processes scoring cases in parallel (a whole number ≥ 1).
        fid: ``{"extractor": name, "weights": path, "device": "cpu", "options": {...}}`` for FID/KID; options go
            to the extractor, e.g. ``{"normalise": "minmax"}`` for MedicalNet as WDM used it (see
            :mod:`medfusion.metrics.features`).
        progress: show a progress bar.
        foreground: ``labels`` protocol: score every positive value as one label ("foreground"), for instance label
            maps such as cell nuclei numbered 1..N (2D label images: PNG/TIFF files, HD95 in pixels).
    """
    plan = _plan(protocol, metrics, labels, mask is not None, data_range, window, empty_dice, hd95_empty, workers,
                 fid, foreground)
    proto, settings = plan.proto, plan.settings
    extensions = {"rgb": IMAGE_EXTENSIONS, "labels": VOLUME_EXTENSIONS + LABEL_IMAGE_EXTENSIONS}.get(
        proto.inputs, VOLUME_EXTENSIONS)
    cases, unpaired = pair_cases(pred, ref, mask, extensions=extensions, pattern=pattern)
    score = partial(_score_file_case, protocol=proto, settings=settings, resample=resample, atol=atol)
    results = _run(cases, score, workers, progress)
    records = [{"case": c.name, "pred": c.pred, "ref": c.ref, **({"mask": c.mask} if c.mask else {})} for c in cases]
    return _finish(plan, records, results, partial(_file_volumes, cases, proto.inputs == "rgb"), unpaired=unpaired,
                   inputs={"pred": pred, "ref": ref, "mask": mask, "resample": resample, "atol": atol},
                   loader=partial(_reload_file_case, inputs=proto.inputs, labels=settings.file_labels,
                                  resample=resample, atol=atol))


def evaluate_arrays(
    cases: Iterable[Mapping],
    *,
    protocol: str | None = None,
    metrics: Sequence[str] | None = None,
    labels: dict[int, str] | Sequence[int] | None = None,
    data_range: float | str | None = None,
    window: tuple[float, float] | None = None,
    empty_dice: float = 1.0,
    hd95_empty: float | None = None,
    workers: int = 1,
    fid: dict | None = None,
    progress: bool = False,
    foreground: bool = False,
):
    """Evaluate predictions held in memory; returns the same :class:`~medfusion.metrics.report.Report` as
    :func:`evaluate` does for the same volumes in files (one code path after loading: :func:`check_arrays`, the
    protocol, its set-level metrics, the report).

    Args:
        cases: ``{"case": name, "pred": array, "ref": array, "mask": array | None, "spacing": (sx, sy, sz) |
            None}`` per case, names unique.  Volumes are 3D (any real dtype, converted to ``float32`` as NIfTI
            files are read), label maps integer-valued, RGB images ``(H, W, 3)`` ``uint8``; ``mask`` as the
            ``mask`` of :func:`evaluate` (the BraSyn tumour label map, the SynthRAD body mask, …); ``spacing``
            in mm (``None``: 1 per axis, so HD95 is in voxels).  The arrays are not modified; the report keeps
            references to them for :meth:`~medfusion.metrics.report.Report.plot`.
        protocol, metrics, labels, data_range, window, empty_dice, hd95_empty, workers, fid, progress,
            foreground: as for :func:`evaluate` (``workers`` > 1 copies each case's arrays to a worker process).

    Raises:
        InputError: no cases, a case without ``case``/``pred``/``ref`` or with unknown keys, duplicate names,
            arrays that :func:`check_arrays` refuses, options :func:`evaluate` refuses.
    """
    cases = _array_cases(cases)
    plan = _plan(protocol, metrics, labels, any(c.get("mask") is not None for c in cases), data_range, window,
                 empty_dice, hd95_empty, workers, fid, foreground)
    proto, settings = plan.proto, plan.settings
    results = _run(cases, partial(_score_array_case, protocol=proto, settings=settings), workers, progress)
    records = [{"case": c["case"]} for c in cases]
    by_name = {c["case"]: c for c in cases}
    return _finish(plan, records, results, partial(_array_volumes, cases, proto.inputs),
                   unpaired={"pred_only": [], "ref_only": []},
                   inputs={"source": "arrays", "masks": sum(c.get("mask") is not None for c in cases)},
                   loader=partial(_reload_array_case, cases=by_name, inputs=proto.inputs,
                                  labels=settings.file_labels))


_CASE_KEYS = ("case", "pred", "ref", "mask", "spacing")


def _array_cases(cases: Iterable[Mapping]) -> list[Mapping]:
    """The in-memory cases as a list; each a dict with the known keys, ``case``/``pred``/``ref`` given, names unique."""
    out = [cases] if isinstance(cases, Mapping) else list(cases)
    if not out:
        raise InputError("evaluate_arrays: no cases given")
    names = []
    for i, c in enumerate(out):
        if not isinstance(c, Mapping) or isinstance(cases, Mapping):
            raise InputError(f"evaluate_arrays takes a sequence of dicts with keys {', '.join(_CASE_KEYS)}")
        missing = [k for k in ("case", "pred", "ref") if c.get(k) is None]
        unknown = sorted(map(str, set(c) - set(_CASE_KEYS)))
        if missing or unknown:
            what = f"lacks {', '.join(missing)}" if missing else f"has unknown keys {', '.join(unknown)}"
            raise InputError(f"case {i} {what} (keys: {', '.join(_CASE_KEYS)})")
        if not isinstance(c["case"], str) or not c["case"]:
            raise InputError(f"case {i}: the case name must be a non-empty string, got {c['case']!r}")
        if c["case"] in names:
            raise InputError(f"two cases are both called {c['case']!r}")
        names.append(c["case"])
    return out


def _file_volumes(cases: list[Case], rgb: bool, side: str):
    """The predictions or references (``side``) of file cases, one array at a time (for FID/KID)."""
    for c in cases:
        yield load_rgb(getattr(c, side)) if rgb else load_volume(getattr(c, side)).data


def _array_volumes(cases: list[Mapping], inputs: str, side: str):
    """The predictions or references (``side``) of in-memory cases, as the file path reads them (for FID/KID)."""
    for c in cases:
        yield np.asarray(c[side], dtype=np.uint8 if inputs == "rgb" else np.float32)


def _bar(n: int, show: bool):
    if not show:
        return lambda: None
    from .utils.progress import progress_bar

    update, done = progress_bar("evaluate", unit="case"), [0]

    def step():
        done[0] += 1
        update(done[0], n)

    return step


def _distribution_metrics(volumes: Callable[[str], Iterable[np.ndarray]], extractor, which: Sequence[str],
                          rgb: bool) -> dict[str, float]:
    """FID/KID between the features of all predictions and all references (``volumes("pred")`` /
    ``volumes("ref")``), per plane of the extractor (one for 2D slices, RGB images and 3D volumes, three for 2.5D)
    and averaged over the planes."""
    from .metrics.features import extract_features, plane_distances

    if rgb:  # RGB images (bci): one Inception feature row per image
        feats = [{"xy": np.concatenate([extractor.rgb(img) for img in volumes(side)])} for side in ("pred", "ref")]
    else:
        feats = [extract_features(volumes(side), extractor) for side in ("pred", "ref")]
    return plane_distances(*feats, which)
