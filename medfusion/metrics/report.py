"""The evaluation report: per-case records, a summary per metric, set-level metrics; JSON, CSV, table, plots.

JSON layout::

    {"protocol": ..., "description": ..., "settings": {...}, "inputs": {...},
     "cases": [{"case": name, "pred": file, "ref": file, "<metric>": value or null, ...}, ...],
     "summary": {"<metric>": {"mean", "std", "median", "min", "max", "n", "undefined"}, ...},
     "set_metrics": {"dsc_agg_GTVp": ..., ...},
     "unpaired": {"pred_only": [...], "ref_only": [...]}}

``null`` marks an undefined value (e.g. HD95 with an empty prediction, SSIM over an empty mask); an infinite value
is written as the string ``"inf"`` (``float()`` reads it back; PSNR of identical images, the BraTS engine's HD95
of a missed lesion).  Reports of :func:`medfusion.evaluate.evaluate_arrays` name no files (no ``pred``/``ref``/``mask``
keys).  The summary runs over the defined values: ``n`` counts them, ``undefined`` counts the others; ``std``
is the population standard deviation (ddof 0).  ``settings["conventions"]`` holds a protocol's own conventions
(e.g. which BraSyn values are the challenge's and which are additions).  CSV: one row per case (empty
``pred``/``ref`` for arrays; undefined values empty, infinite ones ``inf``), then one row per summary statistic (``case`` = ``summary:mean`` …) and one ``set``
row with the set-level metrics in their own columns.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..errors import InputError

__all__ = ["Report", "summarize", "STATISTICS"]

STATISTICS = ("mean", "std", "median", "min", "max", "n", "undefined")
_FILE_KEYS = ("case", "pred", "ref", "mask")


def summarize(values) -> dict[str, float | int | None]:
    """Statistics of one metric over the cases; non-finite values count as undefined."""
    v = np.asarray([x for x in values if x is not None], dtype=np.float64)
    ok = v[np.isfinite(v)]
    undefined = len(values) - ok.size
    if not ok.size:
        return {"mean": None, "std": None, "median": None, "min": None, "max": None, "n": 0, "undefined": undefined}
    return {"mean": float(ok.mean()), "std": float(ok.std()), "median": float(np.median(ok)),
            "min": float(ok.min()), "max": float(ok.max()), "n": int(ok.size), "undefined": int(undefined)}


def _json_value(x):
    """JSON has no NaN or infinity: NaN (undefined) is written as null, ±infinity as the string "inf"/"-inf"
    (which ``float()`` reads back)."""
    if isinstance(x, float) and not math.isfinite(x):
        return None if math.isnan(x) else ("inf" if x > 0 else "-inf")
    return x


@dataclass
class Report:
    """Result of :func:`medfusion.evaluate.evaluate` and :func:`medfusion.evaluate.evaluate_arrays`.

    ``loader`` (not written into the report): a callable mapping a case record to that case's checked arrays
    ``(pred, ref, mask, spacing)`` — the files read again, or the caller's arrays — for the worst-case figure
    of :meth:`plot`; without it :meth:`plot` draws only the distributions.
    """

    protocol: str
    description: str
    settings: dict
    cases: list[dict]
    set_metrics: dict[str, float] = field(default_factory=dict)
    unpaired: dict[str, list[str]] = field(default_factory=dict)
    inputs: dict = field(default_factory=dict)
    loader: Callable | None = field(default=None, repr=False, compare=False)

    @property
    def metric_names(self) -> list[str]:
        """Per-case metric keys, in first-seen order."""
        names: list[str] = []
        for c in self.cases:
            names += [k for k in c if k not in _FILE_KEYS and k not in names]
        return names

    @property
    def summary(self) -> dict[str, dict]:
        return {m: summarize([c.get(m) for c in self.cases]) for m in self.metric_names}

    def as_dict(self) -> dict:
        from .. import __version__

        return {
            "medfusion_version": __version__,
            "protocol": self.protocol,
            "description": self.description,
            "settings": self.settings,
            "inputs": self.inputs,
            "n_cases": len(self.cases),
            "cases": [{k: _json_value(v) for k, v in c.items()} for c in self.cases],
            "summary": self.summary,
            "set_metrics": {k: _json_value(v) for k, v in self.set_metrics.items()},
            "unpaired": self.unpaired,
        }

    # ------------------------------------------------------------------------------------------ writing
    def to_json(self) -> str:
        return json.dumps(self.as_dict(), indent=2, allow_nan=False) + "\n"

    def to_csv(self) -> str:
        metrics = self.metric_names
        header = ["case", "pred", "ref"] + metrics + list(self.set_metrics)
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(header)
        for c in self.cases:
            w.writerow([c["case"], c.get("pred", ""), c.get("ref", "")] + [_cell(c.get(m)) for m in metrics]
                       + [""] * len(self.set_metrics))
        summary = self.summary
        for stat in STATISTICS:
            w.writerow([f"summary:{stat}", "", ""] + [_cell(summary[m][stat]) for m in metrics]
                       + [""] * len(self.set_metrics))
        if self.set_metrics:
            w.writerow(["set", "", ""] + [""] * len(metrics) + [_cell(v) for v in self.set_metrics.values()])
        return buf.getvalue()

    def write(self, path: str, *, overwrite: bool = False) -> str:
        """Write the report as JSON or CSV (by the file's ending), atomically; refuses to replace a file
        unless ``overwrite``."""
        from ..io import ensure_absent, write_atomic

        text = self._render(path)
        ensure_absent([path], overwrite)
        return write_atomic(path, text)

    def _render(self, path: str) -> str:
        if path.lower().endswith(".json"):
            return self.to_json()
        if path.lower().endswith(".csv"):
            return self.to_csv()
        raise InputError(f"the report file must end in .json or .csv: {path}")

    # ------------------------------------------------------------------------------------------ reading
    def table(self) -> str:
        """A readable summary table (and the set-level metrics, and unpaired cases)."""
        rows = [("metric", "mean ± std", "median", "n", "undefined")]
        for m, s in self.summary.items():
            ms = "—" if s["mean"] is None else f"{s['mean']:.4f} ± {s['std']:.4f}"
            med = "—" if s["median"] is None else f"{s['median']:.4f}"
            rows.append((m, ms, med, str(s["n"]), str(s["undefined"])))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = [f"protocol {self.protocol}: {len(self.cases)} case(s)"]
        for i, r in enumerate(rows):
            lines.append("  ".join(c.ljust(w) if j == 0 else c.rjust(w) for j, (c, w) in enumerate(zip(r, widths))))
            if i == 0:
                lines.append("  ".join("-" * w for w in widths))
        for k, v in self.set_metrics.items():
            value = str(v) if isinstance(v, int) else "undefined" if not math.isfinite(v) else f"{v:.4f}"
            lines.append(f"{k} (over all cases): {value}")
        for side, names in self.unpaired.items():
            if names:
                lines.append(f"unpaired ({side.replace('_', ' ')}): {len(names)}: " + ", ".join(names[:5])
                             + (" …" if len(names) > 5 else ""))
        return "\n".join(lines)

    def worst_case(self) -> tuple[dict, str] | None:
        """The case with the worst value of the protocol's first metric (and that metric's name)."""
        from .protocols import LOWER_IS_BETTER

        for m in self.metric_names:
            vals = [(c.get(m), c) for c in self.cases if c.get(m) is not None and math.isfinite(c.get(m))]
            if not vals:
                continue
            lower_better = m.split("_")[0] in LOWER_IS_BETTER
            value, case = (max if lower_better else min)(vals, key=lambda t: t[0])
            return case, m
        return None

    def plot(self, folder: str, *, overwrite: bool = False) -> list[str]:
        """Write ``metrics.png`` (per-metric distributions over the cases) and ``worst_case.png`` (slices of the
        case with the worst first metric, as the metrics saw them) into ``folder``; returns the files written.
        Figures are drawn on :class:`matplotlib.figure.Figure` objects: the matplotlib backend is left alone."""
        from ..io import ensure_absent
        from .plots import plot_distributions, plot_worst_case
        from .protocols import get_protocol

        paths = [os.path.join(folder, "metrics.png"), os.path.join(folder, "worst_case.png")]
        ensure_absent(paths, overwrite)
        proto = get_protocol(self.protocol)
        values = {m: [c.get(m) for c in self.cases] for m in proto.plotted(self.metric_names)}
        written = [plot_distributions(values, paths[0], title=f"{self.protocol}: {len(self.cases)} case(s)")]
        worst = self.worst_case()
        if worst is None or self.loader is None:
            return written
        case, metric = worst
        pred, ref, mask, spacing = self.loader(case)
        if proto.inputs == "image":
            pred, ref = proto.display(pred, ref, self.settings.get("window"))
        title = f"worst case by {metric}: {case['case']} ({metric} = {case[metric]:.4g})"
        written.append(plot_worst_case(pred, ref, mask, spacing, path=paths[1], kind=proto.inputs, title=title))
        return written


def _cell(x) -> str:
    if x is None:
        return ""
    if isinstance(x, float) and math.isnan(x):
        return ""
    if isinstance(x, float):
        return repr(x) if math.isfinite(x) else _json_value(x)
    return str(x)

