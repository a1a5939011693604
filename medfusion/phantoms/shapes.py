"""Shapes as signed distances on a voxel grid, for the phantoms of every application.

Every shape answers one question for the voxels of a box of the grid: roughly how far (mm) is each voxel
centre from my surface, negative inside? a phantom turns distances into voxel fractions with a linear
ramp one voxel wide (partial volume), so a distance only has to be good near the surface. Each shape also
knows its bounding box (mm), so that it is evaluated only where it can matter; a tube evaluates each of its
segments on that segment's own small box, which keeps dozens of bowel loops and vessels cheap.

The shapes are ellipsoids, elliptic columns, tubes (polylines with a radius at each point) and half-spaces,
combined by union, intersection and difference (an application adds its own, e.g. seg2med's body layers and
diaphragm in :mod:`medfusion.phantoms.abdomen_geometry`). Coordinates are the phantom's anatomical mm: x towards
the patient's left-to-right (RAS x), y posterior to anterior, z inferior to superior, the body's axis on x = y = 0.
"""

from __future__ import annotations

import numpy as np

__all__ = ["BIG", "Grid", "Shape", "Ellipsoid", "Column", "Tube", "Plane", "Union", "Inter", "Minus", "rotation"]

#: the distance reported where a shape is not evaluated ("far outside")
BIG = np.float32(1.0e4)
_INF = np.full(3, np.inf)


def rotation(z_deg: float = 0.0, y_deg: float = 0.0, x_deg: float = 0.0) -> np.ndarray:
    """3×3 rotation: first about x, then y, then z (degrees); its columns are the rotated shape's axes."""
    a, b, c = np.deg2rad([x_deg, y_deg, z_deg])
    rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    ry = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    rz = np.array([[np.cos(c), -np.sin(c), 0], [np.sin(c), np.cos(c), 0], [0, 0, 1]])
    return rz @ ry @ rx


class Grid:
    """A voxel grid in anatomical mm.

    ``axes[i]`` are the voxel-centre coordinates along x, y, z (world mm minus the patient's ``shift``), ``h``
    is the width (mm) of the partial-volume ramp (the mean voxel size) and ``cache`` holds fields computed once
    on the whole grid.
    """

    def __init__(self, shape, spacing, origin, shift=(0.0, 0.0, 0.0)):
        self.shape = tuple(int(n) for n in shape)
        self.spacing = np.asarray(spacing, dtype=float)
        self.axes = [(float(origin[i]) - float(shift[i]) + self.spacing[i] * np.arange(n)).astype(np.float32)
                     for i, n in enumerate(self.shape)]
        self.h = float(np.mean(self.spacing))
        self.full = tuple(slice(0, n) for n in self.shape)
        self.cache: dict = {}

    def box(self, lo, hi):
        """The voxels within ``[lo − h, hi + h]`` (mm) as a tuple of slices, or ``None`` if there are none."""
        out = []
        for ax, sp, a, b in zip(self.axes, self.spacing, lo, hi):
            i0 = 0 if not np.isfinite(a) else max(int(np.ceil((a - self.h - ax[0]) / sp)), 0)
            i1 = len(ax) if not np.isfinite(b) else min(int(np.floor((b + self.h - ax[0]) / sp)) + 1, len(ax))
            if i1 <= i0:
                return None
            out.append(slice(i0, i1))
        return tuple(out)

    def coords(self, box):
        """Broadcastable x, y, z coordinates (mm, float32) of the voxels of ``box``."""
        x, y, z = (ax[s] for ax, s in zip(self.axes, box))
        return x[:, None, None], y[None, :, None], z[None, None, :]


def _size(box) -> tuple[int, ...]:
    return tuple(s.stop - s.start for s in box)


def _overlap(box, inner):
    """``inner ∩ box`` as (slices of the grid, slices of ``box``), or ``None`` if empty."""
    if inner is None:
        return None
    grid_sl, local_sl = [], []
    for b, s in zip(box, inner):
        a, e = max(b.start, s.start), min(b.stop, s.stop)
        if e <= a:
            return None
        grid_sl.append(slice(a, e))
        local_sl.append(slice(a - b.start, e - b.start))
    return tuple(grid_sl), tuple(local_sl)


def _ellipse_distance(q, axes) -> np.ndarray:
    """Approximate signed distance to an axis-aligned ellipse/ellipsoid with semi-axes ``axes``; ``q`` are the
    point's coordinates in the shape's frame (first-order: value of the implicit function over its gradient)."""
    k0 = np.sqrt(sum((qi / a) ** 2 for qi, a in zip(q, axes)))
    k1 = np.sqrt(sum((qi / (a * a)) ** 2 for qi, a in zip(q, axes)))
    d = k0 * (k0 - 1.0) / np.maximum(k1, 1e-9)
    return np.where(k0 < 1e-6, -min(axes), np.maximum(d, -min(axes))).astype(np.float32)


class Shape:
    """A region of space. Subclasses set ``lo``/``hi`` (bounding box, mm; ±inf when unbounded) and implement
    ``fn(x, y, z)`` on broadcastable coordinates, or override :meth:`sdf`."""

    lo = -_INF
    hi = _INF

    def sdf(self, grid: Grid, box) -> np.ndarray:
        """Signed distance (mm, float32) at the voxels of ``box``; ``BIG`` where the shape is not evaluated."""
        out = np.full(_size(box), BIG, dtype=np.float32)
        part = _overlap(box, grid.box(self.lo, self.hi))
        if part is not None:
            out[part[1]] = self.fn(*grid.coords(part[0]))
        return out

    def fn(self, x, y, z):  # pragma: no cover - every subclass implements fn or sdf
        raise NotImplementedError


class Ellipsoid(Shape):
    """Ellipsoid with centre, semi-axes (mm) and a rotation whose columns are its axes."""

    def __init__(self, centre, axes, rot=None):
        self.c = [float(v) for v in centre]
        self.a = [float(v) for v in axes]
        self.r = np.eye(3) if rot is None else np.asarray(rot, dtype=float)
        extent = np.sqrt(((self.r * np.array(self.a)) ** 2).sum(axis=1))
        self.lo, self.hi = np.array(self.c) - extent, np.array(self.c) + extent

    def fn(self, x, y, z):
        d = (x - self.c[0], y - self.c[1], z - self.c[2])
        r = self.r
        q = [float(r[0, j]) * d[0] + float(r[1, j]) * d[1] + float(r[2, j]) * d[2] for j in range(3)]
        return _ellipse_distance(q, self.a)


class Column(Shape):
    """Elliptic cylinder along z: centre (cx, cy), semi-axes (rx, ry), from z0 to z1 (mm)."""

    def __init__(self, cx, cy, rx, ry, z0, z1):
        self.p = [float(v) for v in (cx, cy, rx, ry, z0, z1)]
        self.lo = np.array([cx - rx, cy - ry, z0], dtype=float)
        self.hi = np.array([cx + rx, cy + ry, z1], dtype=float)

    def fn(self, x, y, z):
        cx, cy, rx, ry, z0, z1 = self.p
        return np.maximum(_ellipse_distance((x - cx, y - cy), (rx, ry)), np.maximum(z0 - z, z - z1))


class Tube(Shape):
    """A polyline through ``points`` (n × 3, mm) with a radius at each point (linear along each segment),
    rounded at the ends; each segment is evaluated on its own bounding box."""

    def __init__(self, points, radii):
        self.p = np.asarray(points, dtype=float).reshape(-1, 3)
        self.r = np.broadcast_to(np.asarray(radii, dtype=float), (len(self.p),)).copy()
        self.lo = (self.p - self.r[:, None]).min(axis=0)
        self.hi = (self.p + self.r[:, None]).max(axis=0)

    def sdf(self, grid: Grid, box) -> np.ndarray:
        out = np.full(_size(box), BIG, dtype=np.float32)
        for a, b, ra, rb in zip(self.p[:-1], self.p[1:], self.r[:-1], self.r[1:]):
            reach = max(ra, rb)
            part = _overlap(box, grid.box(np.minimum(a, b) - reach, np.maximum(a, b) + reach))
            if part is None:
                continue
            x, y, z = grid.coords(part[0])
            ab = b - a
            dx, dy, dz = x - float(a[0]), y - float(a[1]), z - float(a[2])
            t = (dx * float(ab[0]) + dy * float(ab[1]) + dz * float(ab[2])) / max(float(ab @ ab), 1e-9)
            t = np.clip(t, 0.0, 1.0)
            dist = np.sqrt((dx - t * float(ab[0])) ** 2 + (dy - t * float(ab[1])) ** 2 + (dz - t * float(ab[2])) ** 2)
            view = out[part[1]]
            np.minimum(view, dist - (float(ra) + t * float(rb - ra)), out=view)
        return out


class Plane(Shape):
    """Half-space ``normal · p < offset`` (``normal`` is normalised here)."""

    def __init__(self, normal, offset):
        n = np.asarray(normal, dtype=float)
        self.n = [float(v) for v in n / np.linalg.norm(n)]
        self.off = float(offset) / float(np.linalg.norm(n))

    def fn(self, x, y, z):
        return self.n[0] * x + self.n[1] * y + self.n[2] * z - self.off

    def flipped(self) -> Plane:
        """The other half-space."""
        return Plane([-v for v in self.n], -self.off)


class Union(Shape):
    """Points in any of the shapes."""

    def __init__(self, *shapes: Shape):
        self.parts = shapes
        self.lo = np.min([s.lo for s in shapes], axis=0)
        self.hi = np.max([s.hi for s in shapes], axis=0)

    def sdf(self, grid: Grid, box) -> np.ndarray:
        out = np.full(_size(box), BIG, dtype=np.float32)
        for s in self.parts:
            part = _overlap(box, grid.box(s.lo, s.hi))
            if part is not None:
                view = out[part[1]]
                np.minimum(view, s.sdf(grid, part[0]), out=view)
        return out


class Inter(Shape):
    """Points in all of the shapes."""

    def __init__(self, *shapes: Shape):
        self.parts = shapes
        self.lo = np.max([s.lo for s in shapes], axis=0)
        self.hi = np.min([s.hi for s in shapes], axis=0)

    def sdf(self, grid: Grid, box) -> np.ndarray:
        out = self.parts[0].sdf(grid, box)
        for s in self.parts[1:]:
            np.maximum(out, s.sdf(grid, box), out=out)
        return out


class Minus(Shape):
    """Points in ``a`` but not in ``b``."""

    def __init__(self, a: Shape, b: Shape):
        self.a, self.b = a, b
        self.lo, self.hi = a.lo, a.hi

    def sdf(self, grid: Grid, box) -> np.ndarray:
        return np.maximum(self.a.sdf(grid, box), -self.b.sdf(grid, box))
