"""PNG figures of an evaluation: per-metric distributions and a slice montage of one case, from arrays.

The functions take numbers and arrays only (nothing here reads files or imports :mod:`medfusion.evaluate`;
:meth:`medfusion.metrics.report.Report.plot` passes them the worst case's arrays).  They draw on
:class:`matplotlib.figure.Figure` objects, which need neither pyplot nor a particular backend: the caller's
matplotlib backend is never switched, so they work alike on headless machines and in notebooks.  ``*_figure``
returns the figure (display it in a notebook, or save it yourself); ``plot_*`` writes a PNG atomically.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence

import numpy as np

__all__ = ["distributions_figure", "worst_case_figure", "plot_distributions", "plot_worst_case", "save_figure"]


def save_figure(fig, path: str) -> str:
    """Write a matplotlib figure as a PNG atomically (staged inside an :class:`~medfusion.outputs.OutputPlan`)."""
    from ..io import write_atomic

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return write_atomic(path, buf.getvalue())


def distributions_figure(values: Mapping[str, Sequence[float | None]], *, title: str = ""):
    """One panel per metric: a box plot and the individual cases; ``None``/NaN/inf values are counted as
    undefined in the panel's title.  ``values``: metric name → one value per case."""
    from matplotlib.figure import Figure

    names = list(values)
    cols = min(4, max(1, len(names)))
    rows = math.ceil(len(names) / cols) or 1
    fig = Figure(figsize=(3.0 * cols, 3.2 * rows), layout="tight")
    axes = fig.subplots(rows, cols, squeeze=False)
    rng = np.random.default_rng(0)  # fixed horizontal jitter: the same report draws the same figure
    for ax, m in zip(axes.flat, names):
        vals = np.array([v for v in values[m] if v is not None], dtype=np.float64)
        ok = vals[np.isfinite(vals)]
        undefined = len(values[m]) - ok.size
        if ok.size:
            ax.boxplot(ok, widths=0.5, showfliers=False)
            ax.scatter(1 + rng.uniform(-0.12, 0.12, ok.size), ok, s=10, alpha=0.6, color="tab:blue")
        label = f"{m}\nmean {ok.mean():.3f} (n={ok.size})" if ok.size else f"{m}\n(no defined value)"
        ax.set_title(label + (f", {undefined} undefined" if undefined else ""), fontsize=9)
        ax.set_xticks([])
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def _centre(mask: np.ndarray | None, shape) -> tuple[int, ...]:
    if mask is not None and mask.any():
        return tuple(int(round(c)) for c in np.argwhere(mask).mean(axis=0))
    return tuple(n // 2 for n in shape)


def _planes(vol: np.ndarray, centre) -> list[np.ndarray]:
    x, y, z = centre
    return [np.rot90(vol[:, :, z]), np.rot90(vol[:, y, :]), np.rot90(vol[x, :, :])]


def _volume_rows(pred, ref, mask, kind: str):
    """(title, volume, colour map, (vmin, vmax)) per figure row, and the centre of the slices."""
    if kind == "labels":
        fp_fn = (pred > 0).astype(float) - (ref > 0).astype(float)
        rows = [("reference", ref, "tab10", (0, 10)), ("prediction", pred, "tab10", (0, 10)),
                ("foreground: false pos. (red), false neg. (blue)", fp_fn, "bwr", (-1, 1))]
        return rows, _centre(ref > 0, ref.shape)
    lo, hi = np.percentile(ref, [0.5, 99.5])
    diff = np.abs(np.asarray(pred, dtype=np.float64) - ref)
    rows = [("prediction", pred, "gray", (lo, hi)), ("reference", ref, "gray", (lo, hi)),
            ("|difference|", diff, "magma", (0, max(float(np.percentile(diff, 99.5)), 1e-6)))]
    return rows, _centre(mask, ref.shape)


def _show(ax, img, cmap, vmin, vmax, aspect=None) -> None:
    """One slice or image; label maps (``tab10``) with the background black and label k in colour k."""
    if cmap == "tab10":
        img = np.ma.masked_equal(img, 0)
        ax.set_facecolor("black")
    ax.imshow(img, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest", aspect=aspect)


def worst_case_figure(pred: np.ndarray, ref: np.ndarray, mask: np.ndarray | None = None,
                      spacing: Sequence[float] | None = None, *, kind: str = "image", title: str = ""):
    """Slices of one case as the metrics saw it.

    Args:
        pred, ref: 3D volumes (``kind="image"``: intensities, e.g. after the protocol's scaling; ``"labels"``:
            label maps, also 2D label images) or ``(H, W, 3)`` uint8 images (``"rgb"``).
        mask: optional boolean mask; the slices pass through its centre (else the volume's centre).
        spacing: voxel size in mm per axis, for the pixel aspect ratio (``None``: isotropic).
        kind: ``"image"``: prediction, reference, |difference|; ``"labels"``: reference, prediction and the
            false positive/negative foreground; each as axial, coronal and sagittal slices.  ``"rgb"``:
            prediction, reference and the mean |difference| over the channels.
        title: the figure's title.
    """
    from matplotlib.figure import Figure

    if kind == "labels" and np.ndim(ref) == 2:  # a 2D label image (e.g. cells): the three rows side by side
        fig = Figure(figsize=(9, 3.4), layout="tight")
        rows, _ = _volume_rows(pred, ref, mask, kind)
        for ax, (t, img, cmap, (vmin, vmax)) in zip(fig.subplots(1, 3), rows):
            _show(ax, img, cmap, vmin, vmax)
            ax.set_title(t, fontsize=8)
            ax.axis("off")
    elif kind == "rgb":
        fig = Figure(figsize=(9, 3.4), layout="tight")
        diff = np.abs(pred.astype(np.int16) - ref.astype(np.int16)).mean(axis=-1)
        for ax, (t, img) in zip(fig.subplots(1, 3), (("prediction", pred), ("reference", ref), ("|difference|", diff))):
            ax.imshow(img, cmap="magma" if img.ndim == 2 else None)
            ax.set_title(t, fontsize=9)
            ax.axis("off")
    else:
        rows, centre = _volume_rows(pred, ref, mask, kind)
        sx, sy, sz = spacing if spacing is not None else (1.0, 1.0, 1.0)
        aspects = (sy / sx, sz / sx, sz / sy)  # rot90 puts the second array axis horizontally
        fig = Figure(figsize=(8.4, 8.4), layout="tight")
        axes = fig.subplots(3, 3)
        for r, (t, vol, cmap, (vmin, vmax)) in enumerate(rows):
            for c, (plane, img) in enumerate(zip(("axial", "coronal", "sagittal"), _planes(vol, centre))):
                ax = axes[r, c]
                _show(ax, img, cmap, vmin, vmax, aspect=aspects[c])
                ax.set_title(f"{t}\n{plane}" if c == 0 else plane, fontsize=8)
                ax.set_xticks([])
                ax.set_yticks([])
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def plot_distributions(values: Mapping[str, Sequence[float | None]], path: str, *, title: str = "") -> str:
    """Write :func:`distributions_figure` as a PNG to ``path``; returns ``path``."""
    return save_figure(distributions_figure(values, title=title), path)


def plot_worst_case(pred: np.ndarray, ref: np.ndarray, mask: np.ndarray | None = None,
                    spacing: Sequence[float] | None = None, *, path: str, kind: str = "image", title: str = "") -> str:
    """Write :func:`worst_case_figure` as a PNG to ``path``; returns ``path``."""
    return save_figure(worst_case_figure(pred, ref, mask, spacing, kind=kind, title=title), path)
