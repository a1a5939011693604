"""BraTS challenges' lesion-wise segmentation metrics, computed by the organisers' own engine.

The BraTS organisers publish their evaluation as the ``brats-evaluation`` package: one panoptica configuration per
challenge (which labels form which region, connected components as lesions, maximal bipartite matching of lesions
by Dice above 1e-6, per-lesion and global Dice, normalised surface Dice and HD95, and the edge-case conventions:
a region with no lesion on either side is NaN; one with no matched lesion — all missed or all spurious — scores
lesion-wise Dice 0 and HD95 infinity).
medfusion re-implements none of it: for each case it loads the challenge's configuration from the installed
``brats-evaluation`` package and runs ``panoptica`` on the two label maps, then writes what panoptica returns, per
region, as ``<region>_<field>`` (``wt_sq_dsc``, ``tc_fp``, ``et_global_bin_hd95``, ...).  NaN and infinity are kept
as the engine returns them: the report writes NaN as an empty value and infinity as ``inf``, and the summary
counts both as undefined instead of averaging them in.

Both packages are an optional extra (``pip install 'medfusion[brats]'``), pinned to the versions the tests compare
against: ``brats-evaluation`` 0.0.10 (AGPL-3.0, called, never copied) and ``panoptica`` 2.1.7 (Apache-2.0), which
itself requires numpy < 2.3.

**Voxel spacing.**  The official command passes file paths to panoptica, which reads NIfTI files with SimpleITK:
its arrays are (z, y, x) while the spacing it passes along is (x, y, z), so with anisotropic voxels its distances
(HD95, NSD) pair each axis with another axis's spacing.  medfusion passes each array with the spacing of its own
axes (from the reference's affine).  On isotropic voxels — the BraTS data, 1 mm — both give the same values; the
tests compare them there, and with anisotropic voxels compare against the same engine given correctly paired
spacing.
"""

from __future__ import annotations

import contextlib
import io
import math
import warnings
from dataclasses import replace

import numpy as np

from ..errors import InputError
from .constants import BRATS_CHALLENGES
from .protocol_base import CaseResult, Protocol, Settings

__all__ = ["BratsProtocol", "BRATS_PROTOCOLS", "EXTRA"]

EXTRA = "brats"
CHALLENGES = BRATS_CHALLENGES
#: fields listed first in each region (the lesion-wise scores, then the global ones, then the detection counts);
#: every other field panoptica returns follows in panoptica's order
LEAD_FIELDS = ("sq_dsc", "sq_hd95", "sq_nsd", "pq_dsc", "global_bin_dsc", "global_bin_hd95", "global_bin_nsd",
               "tp", "fp", "fn")
#: fields drawn in the report's distribution figure (lesion-wise Dice and HD95 per region)
PLOTTED_FIELDS = ("sq_dsc", "sq_hd95")

_ENGINES: dict[str, "_Engine"] = {}


class _Engine:
    """One challenge's panoptica evaluator, its regions (merged regions first) and the labels they use."""

    def __init__(self, config: str):
        evaluator_cls, path = _import_engine(config)
        with _quiet():
            self.evaluator = evaluator_cls.load_from_config(path)
            keys = list(self.evaluator.resulting_metric_keys)  # computed on a dummy case
        groups = self.evaluator._Panoptica_Evaluator__segmentation_class_groups  # no public accessor in 2.1.7
        order = list(self.evaluator.segmentation_class_groups_names)
        merged = sorted((g for g in order if len(groups[g].value_labels) > 1),
                        key=lambda g: -len(groups[g].value_labels))
        self.regions = merged + [g for g in order if g not in merged]
        # every label a region uses, named after its own single-label region where it has one
        single = {int(groups[g].value_labels[0]): g for g in order if len(groups[g].value_labels) == 1}
        used = sorted({int(label) for g in order for label in groups[g].value_labels})
        self.labels = {label: single.get(label, str(label)) for label in used}
        self.fields = [f for f in LEAD_FIELDS if f in keys] + [f for f in keys if f not in LEAD_FIELDS]

    def evaluate(self, pred: np.ndarray, ref: np.ndarray, spacing) -> dict[str, dict]:
        with _quiet():
            results = self.evaluator.evaluate(pred, ref, voxelspacing=tuple(float(s) for s in spacing))
        return {region: r.to_dict() for region, r in results.items()}


@contextlib.contextmanager
def _quiet():
    """Keep panoptica's notes out of the report: it prints one on labels shared by two regions and warns on every
    NSD computation that its threshold is the default."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


def _import_engine(config: str):
    """The panoptica evaluator class and the path of the organisers' configuration, or one line saying what to
    install."""
    try:
        from importlib.resources import files

        import brats_evaluation
        from panoptica import Panoptica_Evaluator
        from panoptica.utils.citation_reminder import disable_citation_reminder
    except ImportError as exc:
        raise InputError(f"the BraTS protocols need the optional extra {EXTRA!r} (the organisers' brats-evaluation "
                         f"package and panoptica): pip install 'medfusion[{EXTRA}]' ({exc.name} is missing)") from None
    disable_citation_reminder()  # its banner would land in the middle of the report; cite panoptica (README)
    path = files(brats_evaluation).joinpath("configs", f"config_{config}.yaml")
    if not path.is_file():
        raise InputError(f"brats-evaluation {getattr(brats_evaluation, '__version__', '')} has no configuration "
                         f"{config!r}; install the pinned version: pip install 'medfusion[{EXTRA}]'")
    return Panoptica_Evaluator, str(path)


def engine(config: str) -> _Engine:
    """The (cached, per process) engine of one challenge configuration."""
    if config not in _ENGINES:
        _ENGINES[config] = _Engine(config)
    return _ENGINES[config]


class BratsProtocol(Protocol):
    """A BraTS challenge's lesion-wise metrics through panoptica with the organisers' configuration."""

    inputs = "labels"
    uses_mask = False
    conventions = {
        "engine": "panoptica with the brats-evaluation configuration (values as the engine returns them)",
        "undefined": "NaN (a region absent from both label maps) is written empty; infinity (HD95 of a missed or "
                     "spurious lesion) is written as inf; the summary counts both as undefined",
        "spacing": "each array with the spacing of its own axes (the official command pairs them in reverse "
                   "order when it reads NIfTI files through SimpleITK; identical for isotropic voxels)",
    }

    def __init__(self, name: str):
        self.name = name
        self.config, what = CHALLENGES[name]
        self.description = (f"BraTS {what}: lesion-wise (connected components matched by Dice) and global Dice, "
                            f"NSD and HD95 (mm) per region, and lesion counts, by panoptica with the organisers' "
                            f"{self.config!r} configuration (brats-evaluation)")

    @property
    def available(self) -> tuple[str, ...]:  # type: ignore[override]
        """Every field panoptica returns per region (needs the extra)."""
        return tuple(engine(self.config).fields)

    @property
    def default(self) -> tuple[str, ...]:  # type: ignore[override]
        return self.available

    def _check(self, s: Settings) -> Settings:
        if s.labels or s.foreground:
            raise InputError(f"{self.name} takes its regions and labels from the organisers' configuration; "
                             "--labels and --foreground are for --protocol labels")
        if s.hd95_empty is not None or not s.empty_dice == 1.0:
            raise InputError(f"{self.name} keeps the engine's conventions for empty regions; --empty-dice and "
                             "--hd95-empty are for --protocol labels")
        return replace(s, labels=dict(engine(self.config).labels))

    def case(self, pred, ref, mask, spacing, s):
        if ref.ndim != 3:
            raise InputError(f"{self.name} scores 3D label maps, got a {ref.ndim}D image")
        eng = engine(self.config)
        results = eng.evaluate(pred, ref, spacing)
        out = {}
        for region in eng.regions:
            values = results[region]
            for f in s.metrics:
                out[f"{region}_{f}"] = float(values.get(f, math.nan))  # absent = not computed: NaN, as the parser
        return CaseResult(out)

    def plotted(self, names):
        return [n for n in names if n.split("_", 1)[-1] in PLOTTED_FIELDS] or names


BRATS_PROTOCOLS = tuple(BratsProtocol(name) for name in CHALLENGES)
