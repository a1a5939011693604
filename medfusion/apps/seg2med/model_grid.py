"""The model's grid: a volume taken to the voxel spacing and field of view the network was trained at, and back.

A seg2med network learns anatomy at one scale and one image size: the slice model at its training pixel spacing
and slice size, the 3D model at its training voxel spacing. A scan at another spacing (a 0.8 mm CT against 4 mm
training slices) shows the network organs four times their trained size; a slice with more or less air around the
body than the training slices moves every organ's value (the shipped slice model put a liver 58 HU higher on a
128² slice than on its trained 96² at the same spacing). So, as the authors resize and pad every slice to one
size before their network, medfusion

1. takes the volume (RAS+ voxel order) to the model's ``spacing`` — label maps by nearest neighbour, images
   linearly;
2. cuts a window of exactly the model's ``size`` out of it, centred on the body (air, i.e. 0, where the window
   reaches beyond the volume: a small field of view is padded with air — after its edge values are continued for
   :data:`EDGE_MARGIN` voxels, see below);
3. runs the network there, and puts the result back: the window into the resampled grid (air elsewhere), then
   linearly onto the input's grid.

A body wider than the window loses what lies outside it (a warning says so). A model that records no ``spacing``
and ``size`` (checkpoints from before) runs on the input's grid, as before.

Why the edge is continued: where a field of view cuts the body, the network cannot tell the cut from the skin and
darkens the tissue along it over about one of its voxels, as it darkens subcutaneous fat. On the 94 × 65 mm field of
view of ``benchmarks/quality/bench_seg2med_grids.py`` the tissue within 4 mm of the cut came out 52 HU too dark and the
pancreas, which lies along it, 62–73 HU; with the label map (and body, tissue map, image) continued 3 model voxels
beyond the cut by edge replication, and the continuation discarded on the way back, every organ was within 30 HU
(1 to 4 voxels all did; 8 voxels drew long stripes of organ that the network painted as something else, the aorta
then −50 HU). Where the field of view ends in air, continuing it changes nothing.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ...io import resample_array

__all__ = ["ModelGrid", "model_grid", "EDGE_MARGIN"]

#: voxels (of the model's grid) by which a field of view's edge values are continued into the window's padding
EDGE_MARGIN = 3

#: the axial extent (mm, left–right × anterior–posterior) of the body that a cut field of view is set in
#: (:meth:`ModelGrid.body_context`): about the training phantoms' bodies, 304–313 × 175–208 mm
BODY_CONTEXT_MM = (300.0, 200.0)


@dataclass(frozen=True)
class ModelGrid:
    """The input grid (``shape``, ``spacing``, RAS+ voxel order), the resampled grid (``model_shape``,
    ``model_spacing``, the same centre) and the network's window in it (``start``, ``size`` per axis; a start below
    0 or an end beyond the grid is padding)."""

    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]
    model_shape: tuple[int, int, int]
    model_spacing: tuple[float, float, float]
    start: tuple[int, int, int]
    size: tuple[int, int, int]
    margin: int = EDGE_MARGIN

    @property
    def resampled(self) -> bool:
        return not (self.shape == self.model_shape and np.allclose(self.spacing, self.model_spacing))

    def _affines(self) -> tuple[np.ndarray, np.ndarray]:
        """Voxel → mm of the input and resampled grids, both centred on the origin."""
        def centred(shape, spacing):
            a = np.diag([*spacing, 1.0])
            a[:3, 3] = -(np.array(shape) - 1) / 2.0 * np.array(spacing)
            return a
        return centred(self.shape, self.spacing), centred(self.model_shape, self.model_spacing)

    def _overlap(self, pads=((0, 0),) * 3) -> tuple[tuple[slice, ...], tuple[slice, ...]]:
        """Slices of the resampled grid (widened by ``pads`` voxels before and after each axis) and of the window
        that cover the same voxels."""
        grid, win = [], []
        for s, n, m, (before, after) in zip(self.start, self.size, self.model_shape, pads):
            lo, hi = max(s, -before), min(s + n, m + after)
            grid.append(slice(lo + before, hi + before))
            win.append(slice(lo - s, hi - s))
        return tuple(grid), tuple(win)

    def to_model(self, data: np.ndarray, *, labels: bool) -> np.ndarray:
        """``data`` on the model's grid (nearest neighbour for ``labels``, else linear), in the network's window:
        where the window reaches beyond the volume, the volume's edge values continued for ``margin`` voxels
        (module docstring), then 0 — air, no label."""
        out = np.asarray(data)
        if self.resampled:
            src, dst = self._affines()
            work = out.astype(np.int32 if labels else np.float32)  # types NIfTI resampling takes
            out = resample_array(work, src, self.model_shape, dst, order=0 if labels else 1).astype(out.dtype)
        pads = self._edge_pads()
        window = np.zeros(self.size, dtype=out.dtype)
        grid, win = self._overlap(pads)
        window[win] = np.pad(out, pads, mode="edge")[grid]
        return window

    def _edge_pads(self) -> tuple[tuple[int, int], ...]:
        """Voxels (before, after) per axis by which the volume's edge is continued into the window's padding."""
        return tuple((min(self.margin, max(0, -s)), min(self.margin, max(0, s + n - m)))
                     for s, n, m in zip(self.start, self.size, self.model_shape))

    def covered(self) -> np.ndarray:
        """The window's voxels that :meth:`to_model` fills from the volume or its continued edge (bool, ``size``);
        the rest is padding."""
        cover = np.zeros(self.size, dtype=bool)
        cover[self._overlap(self._edge_pads())[1]] = True
        return cover

    def body_context(self, body: np.ndarray, extent_mm: Sequence[float] = BODY_CONTEXT_MM) -> np.ndarray:
        """The body on the network's window (``body``, from :meth:`to_model`) set in an elliptical body of
        ``extent_mm``, centred in the window, on each axial slice where the field of view cuts the body: the
        ellipse fills only the padding (what the volume and its continued edge do not reach), where the label map
        has no organ, so the prior image there is the body's value. A slice whose body ends in air inside the field
        of view is left as it is, and so is a window without padding.

        Why: the slice model darkens every organ when the body fills little of its window — a 117 mm field of view
        at its 4.17 mm pixels came out 50–60 HU too dark on average — as most of its training slices held a whole
        body (their field-of-view augmentation, which pads with air, cut a window that small in 1.5 % of them;
        training does not add this body: bundle docs, "Small fields of view"). What the network draws in the padding
        is discarded by :meth:`from_model`."""
        body = np.asarray(body, dtype=bool)
        cover = self.covered()
        if cover.all():
            return body
        beside_padding = np.zeros_like(cover)  # covered voxels with a padding neighbour in-plane
        for axis in (0, 1):
            for step in (1, -1):
                beside_padding |= cover & ~np.roll(cover, step, axis=axis) & _not_wrapped(cover.shape, axis, step)
        cut = np.any(body & beside_padding, axis=(0, 1))  # per axial slice
        axes = [(np.arange(n) - (n - 1) / 2.0) * s / (e / 2.0)
                for n, s, e in zip(self.size[:2], self.model_spacing[:2], extent_mm)]
        ellipse = axes[0][:, None] ** 2 + axes[1][None, :] ** 2 <= 1.0
        return body | (ellipse[:, :, None] & ~cover & cut[None, None, :])

    def from_model(self, data: np.ndarray, *, fill: float = 0.0) -> np.ndarray:
        """A result in the network's window back on the input grid (``fill`` outside the window), float32."""
        out = np.full(self.model_shape, fill, dtype=np.float32)
        grid, win = self._overlap()
        out[grid] = np.asarray(data, dtype=np.float32)[win]
        if not self.resampled:
            return out
        dst, src = self._affines()
        return resample_array(out, src, self.shape, dst, order=1, fill=fill)


def model_grid(shape: Sequence[int], spacing: Sequence[float], model_spacing: Sequence[float | None] | None,
               size: Sequence[int | None] | None = None, body: np.ndarray | None = None) -> ModelGrid:
    """The :class:`ModelGrid` of a volume of ``shape`` and ``spacing`` (mm, RAS+ order) for a model trained at
    ``model_spacing`` (``None`` per axis or as a whole: keep the input's) on windows of ``size`` voxels (``None``
    per axis: the whole axis), centred on ``body`` (a bool array of ``shape``; ``None``: the volume's centre)."""
    shape_t = tuple(int(n) for n in shape)
    spacing_t = tuple(float(s) for s in spacing)
    target = _per_axis(model_spacing)
    new_spacing = tuple(float(t) if t else s for t, s in zip(target, spacing_t))
    new_shape = tuple(max(1, int(round(n * s / t))) for n, s, t in zip(shape_t, spacing_t, new_spacing))
    sizes = tuple(int(w) if w else n for w, n in zip(_per_axis(size), new_shape))
    bounds = _body_bounds(body, shape_t, new_shape)
    # centred on the body's bounding box (an odd remainder: one more voxel of padding after the body, one more cut
    # before it); training runs this same code (transforms.ModelGridd)
    start = tuple(lo + int((hi - lo - w) / 2) if w != n else 0 for (lo, hi), w, n in zip(bounds, sizes, new_shape))
    grid = ModelGrid(shape_t, spacing_t, new_shape, new_spacing, start, sizes)  # type: ignore[arg-type]
    if body is not None and any(w < n for w, n in zip(sizes, new_shape)):
        _warn_if_cut(grid, body)
    return grid


def _not_wrapped(shape, axis: int, step: int) -> np.ndarray:
    """False where ``np.roll(…, step, axis)`` brings a voxel round from the other end (the window's border has no
    neighbour beyond it)."""
    keep = np.ones(shape, dtype=bool)
    index = [slice(None)] * len(shape)
    index[axis] = 0 if step > 0 else -1
    keep[tuple(index)] = False
    return keep


def _per_axis(values) -> list:
    return [None] * 3 if values is None else list(values) + [None] * (3 - len(values))


def _body_bounds(body, shape, new_shape) -> list[tuple[int, int]]:
    """The body's bounding box (first voxel, one past the last) per axis in resampled voxels (the whole volume
    without a body)."""
    if body is None or not np.any(body):
        return [(0, m) for m in new_shape]
    idx = [np.flatnonzero(np.any(body, axis=tuple(a for a in range(3) if a != ax))) for ax in range(3)]
    out = []
    for i, m, n in zip(idx, new_shape, shape):
        lo = int(round(i[0] * m / n))
        out.append((lo, max(lo + 1, int(round((i[-1] + 1) * m / n)))))
    return out


def _warn_if_cut(grid: ModelGrid, body: np.ndarray) -> None:
    inside = grid.from_model(np.ones(grid.size, np.float32)) > 0.5
    lost = float(np.mean(~inside[np.asarray(body, bool)]))
    if lost > 0.001:
        mm = [round(w * s) for w, s in zip(grid.size, grid.model_spacing)]
        warnings.warn(f"the body is wider than the model's field of view ({' × '.join(map(str, mm))} mm): "
                      f"{100 * lost:.1f} % of it lies outside and becomes air", stacklevel=3)
