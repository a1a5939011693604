"""``medfusion evaluate``: score predictions against references with a named protocol, case by case.

    from medfusion.evaluate import evaluate
    report = evaluate("outputs/synth", "data/truth", protocol="brasyn", mask="data/seg")
    report.write("report.json")          # or .csv
    print(report.table())

Pairing: ``pred`` and ``ref`` are files, or folders searched recursively; a case is a file's name without its
extension (``BraTS-001-t2f.nii.gz`` → ``BraTS-001-t2f``), and predictions and references with the same case name
are paired.  Files only on one side are listed in the report as unpaired (an error only if nothing pairs).
Masks (``mask``): one file for every case, or a folder (it may be the reference folder itself); a mask belongs
to a case when its name ends in ``-seg``/``_seg``/``-mask``/``_mask``/``-label(s)`` and the part before equals the
case name or the case name without its last ``-``/``_`` part (so ``BraTS-001-seg`` is the mask of
``BraTS-001-t2f``); failing that, a mask file with exactly the case's name.

Geometry: prediction, reference and mask must share shape and affine (to ``atol`` mm); with ``resample=True``
the prediction and the mask are resampled onto the reference grid instead — nearest neighbour for label maps
(as HECKTOR does), linear for images.

Everything is checked before anything is written: bad input (missing or unreadable files, NaN voxels,
unexpected labels, mismatched geometry, empty folders) raises :class:`~medfusion.errors.InputError` and no
report is produced.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import partial

import numpy as np

from .errors import InputError
from .io import NIFTI_EXTENSIONS, check_same_geometry, load_rgb, load_volume, resample_like
from .metrics.protocols import LABEL_METRICS, CaseResult, Protocol, Settings, get_protocol

__all__ = ["Case", "pair_cases", "load_case", "evaluate", "IMAGE_EXTENSIONS"]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
_MASK_SUFFIX = re.compile(r"[-_](seg|mask|label|labels)$", re.IGNORECASE)
_LAST_PART = re.compile(r"[-_][^-_]+$")


@dataclass(frozen=True)
class Case:
    """One prediction/reference pair (and its mask, if any)."""

    name: str
    pred: str
    ref: str
    mask: str | None = None


# ----------------------------------------------------------------------------------------------- pairing
def _stem(path: str, extensions: Sequence[str]) -> str | None:
    base = os.path.basename(path)
    low = base.lower()
    for ext in extensions:
        if low.endswith(ext):
            return base[: -len(ext)]
    return None


def _collect(path: str, extensions: Sequence[str], what: str, pattern: str | None) -> dict[str, str]:
    """Case name → file, for a file or (recursively) a folder."""
    import fnmatch

    if not os.path.exists(path):
        raise InputError(f"{what} not found: {path}")
    if os.path.isfile(path):
        stem = _stem(path, extensions)
        if stem is None:
            raise InputError(f"{what} {path} is not a {'/'.join(extensions)} file")
        return {stem: path}
    found: dict[str, str] = {}
    for root, dirs, files in os.walk(path):
        dirs.sort()
        for f in sorted(files):
            stem = _stem(f, extensions)
            if stem is None or (pattern and not fnmatch.fnmatch(f, pattern)):
                continue
            full = os.path.join(root, f)
            if stem in found:
                raise InputError(f"two {what} files are both called {stem!r}: {found[stem]} and {full}")
            found[stem] = full
    if not found:
        only = f" matching {pattern!r}" if pattern else ""
        raise InputError(f"{what} folder {path} holds no {'/'.join(extensions)} files{only}")
    return found


def _mask_for(case: str, masks: dict[str, str], suffixed: dict[str, str]) -> str | None:
    for candidate in (case, _LAST_PART.sub("", case)):
        if candidate in suffixed:
            return suffixed[candidate]
    return masks.get(case)


def pair_cases(pred: str, ref: str, mask: str | None = None, *, extensions: Sequence[str] = NIFTI_EXTENSIONS,
               pattern: str | None = None) -> tuple[list[Case], dict[str, list[str]]]:
    """Pair predictions with references by case name (see the module docstring).

    Returns:
        the cases (sorted by name) and ``{"pred_only": [...], "ref_only": [...]}`` (case names).
    Raises:
        InputError: missing paths, empty folders, duplicate case names, no pair at all, a case without a mask
            when a mask folder is given.
    """
    single = os.path.isfile(pred) and os.path.isfile(ref)
    preds = _collect(pred, extensions, "prediction", None if single else pattern)
    refs = _collect(ref, extensions, "reference", None if single else pattern)
    if single:  # two files: one case, whatever their names
        name = next(iter(preds))
        preds, refs = {name: pred}, {name: ref}
    elif os.path.isfile(pred) != os.path.isfile(ref):
        raise InputError("give --pred and --ref both as files or both as folders")
    names = sorted(set(preds) & set(refs))
    unpaired = {"pred_only": sorted(set(preds) - set(refs)), "ref_only": sorted(set(refs) - set(preds))}
    if not names:
        raise InputError(f"no prediction in {pred} has a reference of the same name in {ref} "
                         f"(e.g. {unpaired['pred_only'][:1] or '-'} vs {unpaired['ref_only'][:1] or '-'})")
    masks: dict[str, str | None] = {n: None for n in names}
    if mask is not None:
        if os.path.isfile(mask):
            masks = {n: mask for n in names}
        else:
            found = _collect(mask, NIFTI_EXTENSIONS, "mask", None)
            suffixed = {_MASK_SUFFIX.sub("", k): v for k, v in found.items() if _MASK_SUFFIX.search(k)}
            masks = {n: _mask_for(n, found, suffixed) for n in names}
            lacking = [n for n, m in masks.items() if m is None]
            if lacking:
                raise InputError(f"no mask in {mask} for {len(lacking)} case(s), e.g. {lacking[0]}")
    return [Case(n, preds[n], refs[n], masks[n]) for n in names], unpaired


# ----------------------------------------------------------------------------------------------- loading
def _on_grid(vol, ref, what: str, *, resample: bool, labels: bool, atol: float) -> np.ndarray:
    try:
        check_same_geometry({"reference": ref, what: vol}, atol=atol)
    except InputError as exc:
        if not resample:
            raise InputError(f"{exc} (use --resample to resample the {what} onto the reference grid)") from None
        return resample_like(vol, ref, order=0 if labels else 1)
    return vol.data


def load_case(case: Case, inputs: str, *, labels=None, resample: bool = False, atol: float = 1e-3):
    """Read and check one case as a protocol sees it (``inputs``: "image", "labels" or "rgb").

    Returns:
        ``(pred, ref, mask, spacing)``: the prediction on the reference grid (resampled if ``resample`` and the
        grids differ), the reference, the mask as a boolean array (or ``None``) and the reference's voxel
        spacing in mm (``None`` for RGB images). Label maps come back as integer arrays, checked against
        ``labels`` when given.
    Raises:
        InputError: unreadable files, NaN voxels, different sizes or grids (without ``resample``), unexpected
            labels.
    """
    if inputs == "rgb":
        pred, ref = load_rgb(case.pred), load_rgb(case.ref)
        if pred.shape != ref.shape:
            raise InputError(f"{case.pred} and {case.ref} have different sizes: {pred.shape} vs {ref.shape}")
        return pred, ref, None, None
    ref_vol = load_volume(case.ref)
    is_labels = inputs == "labels"
    pred = _on_grid(load_volume(case.pred), ref_vol, "prediction", resample=resample, labels=is_labels, atol=atol)
    ref = ref_vol.data
    mask = None
    if case.mask is not None:
        mask = _on_grid(load_volume(case.mask), ref_vol, "mask", resample=resample, labels=True, atol=atol) > 0
    if is_labels:
        from .metrics.segmentation import check_label_map

        expected = tuple(labels) if labels else None
        pred = check_label_map(pred, labels=expected, name=case.pred)
        ref = check_label_map(ref, labels=expected, name=case.ref)
    return pred, ref, mask, ref_vol.spacing


def _score_case(case: Case, protocol: Protocol, settings: Settings, resample: bool, atol: float):
    """Read one case, check it, and compute its metrics (runs in a worker process when workers > 1)."""
    pred, ref, mask, spacing = load_case(case, protocol.inputs, labels=settings.labels, resample=resample, atol=atol)
    return protocol.case(pred, ref, mask, spacing, settings)


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
):
    """Evaluate predictions against references; returns a :class:`~medfusion.metrics.report.Report`.

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
        workers: processes scoring cases in parallel.
        fid: ``{"extractor": name, "weights": path, "device": "cpu", "options": {...}}`` for FID/KID; options go
            to the extractor, e.g. ``{"normalise": "minmax"}`` for MedicalNet as WDM used it (see
            :mod:`medfusion.metrics.features`).
        progress: show a progress bar.
    """
    from .metrics.report import Report

    if workers < 1:
        raise InputError(f"workers must be at least 1, got {workers}")
    metrics = list(metrics or [])
    set_level = [m for m in metrics if m in ("fid", "kid")]
    metrics = [m for m in metrics if m not in set_level]
    if protocol is None:
        seg_only = metrics and all(m in LABEL_METRICS for m in metrics)
        protocol = "labels" if seg_only or (labels is not None and not metrics) else "image"
    proto = get_protocol(protocol)
    if labels is not None and not isinstance(labels, dict):
        labels = {int(v): str(int(v)) for v in labels}
    if labels is not None and proto.inputs != "labels":
        raise InputError(f"--labels applies to label-map protocols (labels, hecktor), not {proto.name}")
    if mask is not None and not proto.uses_mask:
        raise InputError(f"protocol {proto.name} takes no mask")
    if set_level and proto.inputs == "labels":
        raise InputError(f"FID/KID apply to images, not to the {proto.name} protocol's label maps")
    if set_level and proto.inputs == "rgb" and fid and fid.get("extractor") != "inception2d":
        raise InputError("FID/KID of RGB images use the Inception-v3 features: --fid-extractor inception2d")
    if set_level and not fid:
        raise InputError("FID/KID need a feature network: give --fid-extractor NAME and --fid-weights FILE")
    per_case = metrics if metrics else (() if set_level else None)  # only FID/KID asked for: no per-case metric
    settings = proto.settings(per_case, data_range=data_range, window=window, labels=labels,
                              empty_dice=empty_dice, hd95_empty=hd95_empty)
    extractor = None
    if set_level:
        from .metrics.features import make_extractor

        extractor = make_extractor(fid["extractor"], fid["weights"], device=fid.get("device", "cpu"),
                                   **fid.get("options", {}))

    extensions = IMAGE_EXTENSIONS if proto.inputs == "rgb" else NIFTI_EXTENSIONS
    cases, unpaired = pair_cases(pred, ref, mask, extensions=extensions, pattern=pattern)
    score = partial(_score_case, protocol=proto, settings=settings, resample=resample, atol=atol)
    results: list[CaseResult] = []
    bar = _bar(len(cases), progress)
    if workers > 1 and len(cases) > 1:
        pool = ProcessPoolExecutor(max_workers=min(workers, len(cases)))
        try:
            for r in pool.map(score, cases):
                results.append(r)
                bar()
        finally:  # on a bad case, stop at once: drop the cases not started yet
            pool.shutdown(wait=True, cancel_futures=True)
    else:
        for c in cases:
            results.append(score(c))
            bar()
    set_values = proto.set_metrics(results, settings)
    if extractor is not None:
        set_values.update(_distribution_metrics(cases, extractor, set_level, rgb=proto.inputs == "rgb"))
    return Report(
        protocol=proto.name, description=proto.description, settings=settings.as_dict(),
        cases=[{"case": c.name, "pred": c.pred, "ref": c.ref, **({"mask": c.mask} if c.mask else {}),
                **r.values} for c, r in zip(cases, results)],
        set_metrics=set_values, unpaired=unpaired,
        inputs={"pred": pred, "ref": ref, "mask": mask, "resample": resample, "atol": atol},
    )


def _bar(n: int, show: bool):
    if not show:
        return lambda: None
    from .progress import progress_bar

    update, done = progress_bar("evaluate", unit="case"), [0]

    def step():
        done[0] += 1
        update(done[0], n)

    return step


def _distribution_metrics(cases: list[Case], extractor, which: Sequence[str], rgb: bool) -> dict[str, float]:
    """FID/KID between the features of all predictions and all references, per plane of the extractor (one for
    2D slices, RGB images and 3D volumes, three for 2.5D) and averaged over the planes."""
    from .metrics.features import extract_features, plane_distances

    if rgb:  # RGB images (bci): one Inception feature row per image
        feats = [{"xy": np.concatenate([extractor.rgb(load_rgb(getattr(c, side))) for c in cases])}
                 for side in ("pred", "ref")]
    else:
        feats = [extract_features((load_volume(getattr(c, side)).data for c in cases), extractor)
                 for side in ("pred", "ref")]
    return plane_distances(*feats, which)
