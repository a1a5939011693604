"""The tables that turn a label map into a prior image: one value per class, per modality.

Two tables, chosen by name (a model records the one it was trained with):

* ``seg2med`` (the default) — the authors' own tables (``data/prior_seg2med.json``, which names their files and
  commit): CT in Hounsfield units per ``total`` class; MR from each class's T1, T2 and proton density through their
  sequence equations and timings (T1: spoiled gradient echo, TE 4 ms, TR 7 ms, 10°; T2: spin echo, TE 150 ms,
  TR 2000 ms; opposed-phase: TE 2.30 ms, TR 7.25 ms, 10°, with no water-fat phase, as their code), with their
  own prior windows for MR. Their MR table is read by class name in the ``total_mr`` class set; a ``total`` map
  reaches it through :func:`map_labels` (``data/class_mapping.json``), and a ``total_mr`` map reaches the CT table
  the same way. The file lists where medfusion deliberately differs.
* ``medfusion`` — medfusion's earlier literature table (:mod:`.tissues`, ``data/tissues.json``): every class
  through a tissue with a proton density, T1, T2 and fat fraction at 1.5 T, windowed like its target. The
  phantoms' physics; the table of the weights trained before the authors' tables were adopted.

A second label map from TotalSegmentator's ``tissue_types`` task (1 subcutaneous fat, 2 torso fat, 3 skeletal
muscle) fills the body outside the organs; the unlabelled body gets the ``body`` value (0 HU), air the background.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from ...errors import InputError
from .constants import PRIOR_TABLES
from .tissues import (
    MODALITIES, TASKS, _read_json, class_names, label_values, spin_echo, spoiled_gradient_echo,
    tissue_table, tissue_value,
)

__all__ = ["PRIOR_TABLES", "DEFAULT_PRIOR_TABLE", "UNNAMED_TABLE", "PriorLookup", "prior_lookup", "prior_window", "map_labels",
           "seg2med_table", "class_mapping"]

#: the table of new models and of ``medfusion prior``
DEFAULT_PRIOR_TABLE = "seg2med"
#: the table of checkpoints that name none (trained before the authors' tables were adopted)
UNNAMED_TABLE = "medfusion"
_TISSUE_CLASSES = ("subcutaneous_fat", "torso_fat", "skeletal_muscle")  # tissue_types labels 1, 2, 3


@dataclass(frozen=True)
class PriorLookup:
    """The values of one modality's prior for one label task: ``labels[k]`` for class ``k`` (index 0 unused),
    ``tissues[k]`` for tissue label ``k`` (index 0 unused), the unlabelled ``body`` and the ``background``."""

    labels: np.ndarray
    tissues: np.ndarray
    body: float
    background: float


def check_table(table: str) -> str:
    if table not in PRIOR_TABLES:
        raise InputError(f"unknown prior table {table!r}; choose one of {', '.join(PRIOR_TABLES)}")
    return table


@functools.lru_cache(maxsize=1)
def seg2med_table() -> dict:
    """The authors' tables as ``data/prior_seg2med.json`` holds them."""
    return _read_json("prior_seg2med.json")


@functools.lru_cache(maxsize=1)
def class_mapping() -> dict[str, str | None]:
    """``total`` class name → ``total_mr`` class name (or ``None``), ``data/class_mapping.json``."""
    return dict(_read_json("class_mapping.json")["total_to_total_mr"])


@functools.lru_cache(maxsize=None)
def _label_map_lut(source: str, target: str) -> np.ndarray:
    """``lut[k]``: the ``target`` task's label for ``source`` label ``k`` (0 where the target has no such class)."""
    src, dst = class_names(source), class_names(target)
    ids = {name: label for label, name in dst.items()}
    lut = np.zeros(max(src) + 1, dtype=np.int64)
    if source == target:
        lut[list(src)] = list(src)
        return lut
    forward = class_mapping()
    if source == "total":
        for label, name in src.items():
            lut[label] = ids.get(forward[name] or "", 0)
    else:  # total_mr → total: the lowest-numbered total class that maps to it
        for label in sorted(dst):
            mr_name = forward[dst[label]]
            if mr_name is not None:
                mr_label = {n: k for k, n in src.items()}[mr_name]
                lut[mr_label] = lut[mr_label] or label
    return lut


def map_labels(labels: np.ndarray, source: str, target: str) -> np.ndarray:
    """A label map of TotalSegmentator task ``source`` expressed in ``target``'s classes (``total`` ↔
    ``total_mr``, by :func:`class_mapping`); classes the target lacks become 0 (unlabelled)."""
    for task in (source, target):
        if task not in TASKS:
            raise InputError(f"unknown TotalSegmentator task {task!r}; choose one of {', '.join(TASKS)}")
    return _label_map_lut(source, target)[np.asarray(labels, dtype=np.int64)]


def _mr_signal(rho_t1_t2: tuple[float, float, float], modality: str) -> float:
    t1, t2, rho = rho_t1_t2
    seq = seg2med_table()["sequences"][modality]
    kind = spin_echo if seq["kind"] == "spin_echo" else spoiled_gradient_echo
    return float(rho * kind(t1, t2, seq))


def _seg2med_class_values(modality: str, task: str) -> dict[str, float]:
    """Class name of ``task`` → prior value in the authors' table (classes without one are left out)."""
    t = seg2med_table()
    if modality == "ct":
        hu = t["ct"]["classes"]
        if task == "total":
            return {name: float(v) for name, v in hu.items()}
        total = class_names("total")
        back = _label_map_lut("total_mr", "total")
        return {name: float(hu[total[int(back[k])]]) for k, name in class_names(task).items() if back[k]}
    rows = {**t["mr"]["classes"], **t["mr"]["medfusion_additions"]["classes"]}
    mr = {name: _mr_signal(rows[name], modality) for name in class_names("total_mr").values()}
    if task == "total_mr":
        return mr
    return {name: mr[target] for name, target in class_mapping().items() if target is not None}


def _seg2med_lookup(modality: str, task: str) -> PriorLookup:
    t = seg2med_table()
    values = _seg2med_class_values(modality, task)
    names = class_names(task)
    if modality == "ct":
        body, background = float(t["ct"]["body_hu"]), float(t["ct"]["background_hu"])
        tissue = [float(t["ct"]["tissue_types"][n]) for n in _TISSUE_CLASSES]
    else:
        body, background = _mr_signal(t["mr"]["body"], modality), float(t["mr"]["background"])
        tissue = [_mr_signal(t["mr"]["tissue_types"][n], modality) for n in _TISSUE_CLASSES]
    lut = np.full(max(names) + 1, body, dtype=np.float32)
    for label, name in names.items():
        lut[label] = values.get(name, body)
    return PriorLookup(lut, np.array([body, *tissue], dtype=np.float32), body, background)


def _medfusion_lookup(modality: str, task: str) -> PriorLookup:
    table = tissue_table()
    body = tissue_value(table.body, modality)
    tissue = [tissue_value(n, modality) for n in _TISSUE_CLASSES]
    return PriorLookup(label_values(modality, task), np.array([body, *tissue], dtype=np.float32), body,
                       tissue_value(table.background, modality))


@functools.lru_cache(maxsize=None)
def prior_lookup(modality: str, task: str = "total", table: str = DEFAULT_PRIOR_TABLE) -> PriorLookup:
    """The prior values of ``modality`` for label maps of ``task`` in ``table``."""
    if modality not in MODALITIES:
        raise InputError(f"unknown modality {modality!r}; choose one of {', '.join(MODALITIES)}")
    if task not in TASKS:
        raise InputError(f"unknown TotalSegmentator task {task!r}; choose one of {', '.join(TASKS)}")
    look = _seg2med_lookup if check_table(table) == "seg2med" else _medfusion_lookup
    return look(modality, task)


def prior_window(modality: str, table: str = DEFAULT_PRIOR_TABLE) -> tuple[float, float] | None:
    """The window that maps ``modality``'s prior to [0, 1] in ``table``, or ``None``: windowed like its target
    (CT in both tables; MR in the ``medfusion`` table)."""
    if check_table(table) == "medfusion" or modality == "ct":
        return None
    lo, hi = seg2med_table()["prior_windows"][modality]
    return float(lo), float(hi)


