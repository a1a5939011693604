"""PNG figures of an evaluation report: per-metric distributions and a slice montage of the worst case."""

from __future__ import annotations

import math

import numpy as np

__all__ = ["plot_distributions", "plot_worst_case"]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_distributions(report, path: str) -> str:
    """One panel per metric: a box plot and the individual cases (undefined values counted in the title)."""
    plt = _pyplot()
    names = report.metric_names
    cols = min(4, max(1, len(names)))
    rows = math.ceil(len(names) / cols) or 1
    fig, axes = plt.subplots(rows, cols, figsize=(3.0 * cols, 3.2 * rows), squeeze=False)
    rng = np.random.default_rng(0)
    for ax, m in zip(axes.flat, names):
        vals = np.array([c.get(m) for c in report.cases if c.get(m) is not None], dtype=np.float64)
        ok = vals[np.isfinite(vals)]
        undefined = len(report.cases) - ok.size
        if ok.size:
            ax.boxplot(ok, widths=0.5, showfliers=False)
            ax.scatter(1 + rng.uniform(-0.12, 0.12, ok.size), ok, s=10, alpha=0.6, color="tab:blue")
        title = f"{m}\nmean {ok.mean():.3f} (n={ok.size})" if ok.size else f"{m}\n(no defined value)"
        if undefined:
            title += f", {undefined} undefined"
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    fig.suptitle(f"{report.protocol}: {len(report.cases)} case(s)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _centre(mask: np.ndarray, shape) -> tuple[int, ...]:
    if mask is not None and mask.any():
        return tuple(int(round(c)) for c in np.argwhere(mask).mean(axis=0))
    return tuple(n // 2 for n in shape)


def _planes(vol: np.ndarray, centre) -> list[np.ndarray]:
    x, y, z = centre
    return [np.rot90(vol[:, :, z]), np.rot90(vol[:, y, :]), np.rot90(vol[x, :, :])]


def plot_worst_case(report, case: dict, metric: str, path: str) -> str:
    """Axial, coronal and sagittal slices of the worst case: prediction, reference and their difference
    (images), or reference, prediction and the false positive/negative voxels (label maps)."""
    plt = _pyplot()
    from ..evaluate import Case, load_case
    from .protocols import get_protocol

    proto = get_protocol(report.protocol)
    value = case.get(metric)
    title = f"worst case by {metric}: {case['case']} ({metric} = {value:.4g})"
    pred, ref, mask, spacing = load_case(Case(case["case"], case["pred"], case["ref"], case.get("mask")), proto.inputs,
                                         resample=bool(report.inputs.get("resample")),
                                         atol=report.inputs.get("atol", 1e-3))
    if proto.inputs == "rgb":
        diff = np.abs(pred.astype(np.int16) - ref.astype(np.int16)).mean(axis=-1)
        fig, axes = plt.subplots(1, 3, figsize=(9, 3.4))
        for ax, (t, img) in zip(axes, (("prediction", pred), ("reference", ref), ("|difference|", diff))):
            ax.imshow(img, cmap="magma" if img.ndim == 2 else None)
            ax.set_title(t, fontsize=9)
            ax.axis("off")
    else:
        if proto.inputs == "labels":
            rows = [("reference", ref, "tab10"), ("prediction", pred, "tab10"),
                    ("foreground: false pos. (red), false neg. (blue)", (pred > 0).astype(float) - (ref > 0).astype(float), "bwr")]
            centre = _centre(ref > 0, ref.shape)
            ranges = [(0, 10), (0, 10), (-1, 1)]
        else:
            pred, ref = proto.display(pred, ref, report.settings.get("window"))
            lo, hi = np.percentile(ref, [0.5, 99.5])
            diff = np.abs(pred - ref)
            rows = [("prediction", pred, "gray"), ("reference", ref, "gray"), ("|difference|", diff, "magma")]
            centre = _centre(mask, ref.shape)
            ranges = [(lo, hi), (lo, hi), (0, max(float(np.percentile(diff, 99.5)), 1e-6))]
        sx, sy, sz = spacing
        aspects = (sy / sx, sz / sx, sz / sy)  # rot90 puts the second array axis horizontally
        fig, axes = plt.subplots(3, 3, figsize=(8.4, 8.4))
        for r, ((t, vol, cmap), (vmin, vmax)) in enumerate(zip(rows, ranges)):
            for c, (plane, img) in enumerate(zip(("axial", "coronal", "sagittal"), _planes(vol, centre))):
                ax = axes[r, c]
                if cmap == "tab10":  # label maps: background black, label k in colour k
                    img = np.ma.masked_equal(img, 0)
                    ax.set_facecolor("black")
                ax.imshow(img, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest", aspect=aspects[c])
                ax.set_title(f"{t}\n{plane}" if c == 0 else plane, fontsize=8)
                ax.set_xticks([])
                ax.set_yticks([])
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
