"""TotalSegmentator classes and the tissue values of seg2med prior images (CT in HU, MR by sequence equations).

Two data files beside this module hold the facts, each with its source:

* ``data/totalsegmentator_classes.json`` — label value → class name of the ``total`` (117 classes) and
  ``total_mr`` (50) tasks, as ``totalsegmentator.map_to_binary.class_map`` has them (a test compares the two
  when TotalSegmentator is installed);
* ``data/tissues.json`` — per tissue a Hounsfield value, proton density, T1 and T2 at 1.5 T and a fat
  fraction; regular expressions that map class names to tissues; the MR sequences.

MR signal (magnitude, arbitrary units × ``mr_scale``) of a voxel with proton density ``PD`` and fat fraction
``f`` is the sum of a water part (the tissue's T1/T2) and a fat part (the fat T1/T2), each

* spoiled gradient echo: ``sin α (1 − E1) / (1 − cos α E1) · exp(−TE/T2)``, ``E1 = exp(−TR/T1)`` (T2 stands
  in for T2*), the fat part turned by the chemical-shift phase ``2π · γ̄ B0 · δ · TE`` — so the echo at
  TE 2.30 ms is opposed-phase and the one at 4.54 ms in-phase at 1.5 T;
* spin echo: ``(1 − E1) · exp(−TE/T2)``, water and fat in phase (the echo refocuses the shift).
"""

from __future__ import annotations

import functools
import json
import re
import warnings
from dataclasses import dataclass
from importlib import resources

import numpy as np

from ...errors import InputError
from .constants import MODALITIES, TASKS

__all__ = ["TASKS", "TISSUE_TASKS", "KNOWN_TASKS", "MODALITIES", "class_names", "Tissue", "tissue_table", "tissue_name",
           "mr_signal", "spoiled_gradient_echo", "spin_echo", "tissue_value", "label_values"]

#: the tissue task that goes with each: subcutaneous fat, torso fat and skeletal muscle (a second label map)
TISSUE_TASKS = {"total": "tissue_types", "total_mr": "tissue_types_mr"}
#: every TotalSegmentator task whose class map ships with medfusion
KNOWN_TASKS = TASKS + tuple(TISSUE_TASKS.values())

GAMMA_BAR_MHZ_PER_T = 42.577  # proton gyromagnetic ratio / 2π


def _read_json(name: str) -> dict:
    return json.loads(resources.files(__package__).joinpath("data", name).read_text(encoding="utf-8"))


@functools.lru_cache(maxsize=None)
def class_names(task: str = "total") -> dict[int, str]:
    """Label value → TotalSegmentator class name for ``task`` (``"total"``, ``"total_mr"`` or a tissue task)."""
    if task not in KNOWN_TASKS:
        raise InputError(f"unknown TotalSegmentator task {task!r}; choose one of {', '.join(KNOWN_TASKS)}")
    return {int(k): v for k, v in _read_json("totalsegmentator_classes.json")[task].items()}


@dataclass(frozen=True)
class Tissue:
    """A tissue's CT value and MR parameters (1.5 T)."""

    name: str
    hu: float
    pd: float
    t1_ms: float
    t2_ms: float
    fat_fraction: float


@dataclass(frozen=True)
class TissueTable:
    tissues: dict[str, Tissue]
    patterns: tuple[tuple[re.Pattern, str], ...]
    default: str
    background: str
    body: str
    sequences: dict[str, dict]
    fat: dict
    field_strength_t: float
    mr_scale: float


@functools.lru_cache(maxsize=1)
def tissue_table() -> TissueTable:
    """The tissue table of ``data/tissues.json``."""
    raw = _read_json("tissues.json")
    tissues = {name: Tissue(name=name, **values) for name, values in raw["tissues"].items()}
    patterns = tuple((re.compile(p), t) for p, t in raw["classes"])
    for _, t in patterns:
        if t not in tissues:  # pragma: no cover - a broken data file
            raise ValueError(f"tissues.json maps a class to unknown tissue {t!r}")
    return TissueTable(tissues=tissues, patterns=patterns, default=raw["default"], background=raw["background"],
                       body=raw["body"], sequences=raw["sequences"], fat=raw["fat"],
                       field_strength_t=float(raw["field_strength_T"]), mr_scale=float(raw["mr_scale"]))


def tissue_name(class_name: str, *, warn: bool = True) -> str:
    """The tissue of a TotalSegmentator class; a class the table does not list gets the default tissue
    (``soft_tissue``), with a warning."""
    table = tissue_table()
    for pattern, tissue in table.patterns:
        if pattern.search(class_name):
            return tissue
    if warn:
        warnings.warn(f"class {class_name!r} is not in medfusion's tissue table; it gets the default tissue "
                      f"{table.default!r}", stacklevel=2)
    return table.default


def mr_signal(pd, t1_ms, t2_ms, fat_fraction, sequence: str) -> np.ndarray:
    """MR magnitude signal × ``mr_scale`` for tissue parameters (numbers or arrays) in ``sequence``
    (``t1``, ``t1_opposed`` or ``t2``); see the module docstring for the equations."""
    table = tissue_table()
    if sequence not in table.sequences:
        raise InputError(f"unknown MR sequence {sequence!r}; choose one of {', '.join(table.sequences)}")
    seq = table.sequences[sequence]
    pd, t1, t2, ff = (np.asarray(v, dtype=np.float64) for v in (pd, t1_ms, t2_ms, fat_fraction))
    fat_t1, fat_t2 = float(table.fat["t1_ms"]), float(table.fat["t2_ms"])
    if seq["kind"] == "spin_echo":
        signal = (1 - ff) * spin_echo(t1, t2, seq) + ff * spin_echo(fat_t1, fat_t2, seq)
    elif seq["kind"] == "spoiled_gradient_echo":
        shift_hz = GAMMA_BAR_MHZ_PER_T * table.field_strength_t * float(table.fat["shift_ppm"])  # MHz·ppm = Hz
        phase = 2 * np.pi * shift_hz * float(seq["te_ms"]) * 1e-3
        signal = np.abs((1 - ff) * spoiled_gradient_echo(t1, t2, seq)
                        + ff * spoiled_gradient_echo(fat_t1, fat_t2, seq) * np.exp(1j * phase))
    else:  # pragma: no cover - a broken data file
        raise ValueError(f"unknown sequence kind {seq['kind']!r}")
    return (table.mr_scale * pd * signal).astype(np.float64)


def spoiled_gradient_echo(t1_ms, t2_ms, seq: dict) -> np.ndarray:
    """Spoiled gradient echo per unit proton density: ``sin α (1 − E1) / (1 − cos α E1) · exp(−TE/T2)``,
    ``E1 = exp(−TR/T1)`` (T2 stands in for T2*); ``seq`` holds ``tr_ms``, ``te_ms``, ``flip_deg``."""
    t1, t2 = np.asarray(t1_ms, dtype=np.float64), np.asarray(t2_ms, dtype=np.float64)
    alpha = np.deg2rad(float(seq["flip_deg"]))
    e1 = np.exp(-float(seq["tr_ms"]) / t1)
    return np.sin(alpha) * (1 - e1) / (1 - np.cos(alpha) * e1) * np.exp(-float(seq["te_ms"]) / t2)


def spin_echo(t1_ms, t2_ms, seq: dict) -> np.ndarray:
    """Spin echo per unit proton density: ``(1 − exp(−TR/T1)) · exp(−TE/T2)``; ``seq`` holds ``tr_ms``, ``te_ms``."""
    t1, t2 = np.asarray(t1_ms, dtype=np.float64), np.asarray(t2_ms, dtype=np.float64)
    return (1 - np.exp(-float(seq["tr_ms"]) / t1)) * np.exp(-float(seq["te_ms"]) / t2)


def tissue_value(tissue: str, modality: str) -> float:
    """The prior-image value of ``tissue``: HU for ``ct``, else the MR signal in that sequence."""
    if modality not in MODALITIES:
        raise InputError(f"unknown modality {modality!r}; choose one of {', '.join(MODALITIES)}")
    t = tissue_table().tissues[tissue]
    if modality == "ct":
        return float(t.hu)
    return float(mr_signal(t.pd, t.t1_ms, t.t2_ms, t.fat_fraction, modality))


def label_values(modality: str, task: str = "total", *, warn: bool = True) -> np.ndarray:
    """A lookup table ``lut[label]`` → prior value for every label of ``task`` (index 0 = body value);
    classes the tissue table does not list get the default tissue (one warning naming them all)."""
    names = class_names(task)
    lut = np.zeros(max(names) + 1, dtype=np.float32)
    lut[0] = tissue_value(tissue_table().body, modality)
    unlisted = []
    for label, name in names.items():
        tissue = tissue_name(name, warn=False)
        if tissue == tissue_table().default and not any(p.search(name) for p, _ in tissue_table().patterns):
            unlisted.append(name)
        lut[label] = tissue_value(tissue, modality)
    if unlisted and warn:
        warnings.warn(f"{len(unlisted)} {task} classes are not in medfusion's tissue table and get the default "
                      f"tissue {tissue_table().default!r}: {', '.join(unlisted)}", stacklevel=2)
    return lut
