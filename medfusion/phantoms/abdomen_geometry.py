"""Geometry of the seg2med abdomen phantom beyond the shared shapes of :mod:`medfusion.phantoms.shapes`: the body outline
with its layers (skin, fat, muscle) and the diaphragm's domes.

Coordinates are the phantom's anatomical mm: x towards the patient's left-to-right (RAS x), y posterior to anterior,
z inferior to superior, the body's axis on x = y = 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .shapes import Grid, Shape

__all__ = ["Body", "Layer", "Dome", "DomeSide"]

_INF = np.full(3, np.inf)


@dataclass(frozen=True)
class Body:
    """The body outline and its layers.

    The cross-section at height z is a superellipse ``(|x|/A)^p + (|y|/B)^p = 1`` with half-width
    ``A(z) = w0 (1 + w1 u + w2 u²)``, ``u = z / 150 mm`` (clipped to ±1.2), anterior half-depth ``B(z)`` of the
    same form (``front``) and a constant posterior half-depth (``back``), its radius modulated by a few harmonics of the
    angle. Distances are radial (along the ray from the axis). Under the skin lies subcutaneous fat, thickest
    in front (``fat_front``) and thinnest at the back (``fat_back``), then a muscle wall ``wall`` thick.
    """

    width: tuple[float, float, float]
    front: tuple[float, float, float]
    back: float
    power: float
    waves: tuple[tuple[float, float], ...]  # (amplitude, phase) of angular harmonics 2, 3, ...
    fat_front: float
    fat_back: float
    wall: float

    def _rho(self, x, y, z):
        """Superellipse 'radius' (1 on the outline, proportional to distance along a ray) and the angle θ
        (0 posterior, ±π anterior, positive towards +x)."""
        u = np.clip(z / 150.0, -1.2, 1.2)  # beyond ±180 mm the outline stays as it is there
        a = self.width[0] * (1.0 + self.width[1] * u + self.width[2] * u * u)
        b = np.where(y > 0, self.front[0] * (1.0 + self.front[1] * u + self.front[2] * u * u), self.back)
        p = self.power
        theta = np.arctan2(x, -y)
        wave = 1.0 + sum(amp * np.cos((k + 2) * theta + ph) for k, (amp, ph) in enumerate(self.waves))
        return ((np.abs(x) / a) ** p + (np.abs(y) / b) ** p) ** (1.0 / p) * wave, theta

    def fat(self, theta):
        """Subcutaneous fat thickness (mm) at angle θ."""
        return self.fat_back + (self.fat_front - self.fat_back) * 0.5 * (1.0 - np.cos(theta))

    def distances(self, x, y, z):
        """Radial signed distance to the skin (mm) and the fat thickness there, float32 arrays."""
        rho, theta = self._rho(x, y, z)
        r = np.sqrt(x * x + y * y)
        d = np.where(rho > 1e-6, r * (1.0 - 1.0 / np.maximum(rho, 1e-6)), -self.back)
        return d.astype(np.float32), np.broadcast_to(self.fat(theta), d.shape).astype(np.float32)

    def point(self, theta: float, z: float, depth: float) -> tuple[float, float]:
        """(x, y) of the point ``depth`` mm under the subcutaneous fat on the ray at angle θ, height z."""
        ux, uy = np.sin(theta), -np.cos(theta)
        rho, _ = self._rho(np.float64(ux), np.float64(uy), np.float64(z))
        radius = 1.0 / float(rho) - float(self.fat(theta)) - depth
        return float(radius * ux), float(radius * uy)


class Layer(Shape):
    """Inside the body, ``fat_weight`` × the fat thickness + ``extra`` mm under the skin (``fat_weight`` 0: the
    skin itself; 1 with ``extra`` 0: under the fat; 1 with ``extra`` = wall: the body cavity)."""

    def __init__(self, body: Body, fat_weight: float, extra: float = 0.0):
        self.body, self.w, self.extra = body, float(fat_weight), float(extra)

    def sdf(self, grid: Grid, box) -> np.ndarray:
        key = ("body", id(self.body))
        if key not in grid.cache:
            grid.cache[key] = self.body.distances(*grid.coords(grid.full))
        d, fat = grid.cache[key]
        return d[box] + np.float32(self.w) * fat[box] + np.float32(self.extra)


@dataclass(frozen=True)
class Dome:
    """The diaphragm: the higher of two domes ``z = z_i − r² / (2 R)``, never below ``floor``.

    ``r²`` weighs the distance from a dome's top by ``back`` behind it (the posterior recesses go deeper)
    and by 0.8 in front.
    """

    right: tuple[float, float, float]
    left: tuple[float, float, float]
    radius: float
    back: float
    floor: float

    def distance(self, x, y, z):
        """Signed distance (mm, positive above) to the diaphragm surface."""
        heights, slopes = [], []
        for cx, cy, cz in (self.right, self.left):
            dy = y - cy
            ky = np.where(dy < 0, self.back, 0.8)
            heights.append(cz - ((x - cx) ** 2 + (ky * dy) ** 2) / (2.0 * self.radius))
            slopes.append(((x - cx) ** 2 + (ky * ky * dy) ** 2) / self.radius ** 2)
        top = np.maximum(heights[0], heights[1])
        slope2 = np.where(heights[0] >= heights[1], slopes[0], slopes[1])
        slope2 = np.where(top < self.floor, 0.0, slope2)
        return ((z - np.maximum(top, self.floor)) / np.sqrt(1.0 + slope2)).astype(np.float32)


class DomeSide(Shape):
    """Above (``"above"``) or below (``"below"``) the diaphragm by ``gap`` mm, or within ``gap`` mm of it
    (``"band"``); ``lo``/``hi`` optionally bound the region (mm)."""

    def __init__(self, dome: Dome, mode: str, gap: float, lo=None, hi=None):
        self.dome, self.mode, self.gap = dome, mode, np.float32(gap)
        self.lo = -_INF if lo is None else np.asarray(lo, dtype=float)
        self.hi = _INF if hi is None else np.asarray(hi, dtype=float)

    def sdf(self, grid: Grid, box) -> np.ndarray:
        key = ("dome", id(self.dome))
        if key not in grid.cache:
            grid.cache[key] = self.dome.distance(*grid.coords(grid.full))
        d = grid.cache[key][box]
        if self.mode == "above":
            return self.gap - d
        if self.mode == "below":
            return d + self.gap
        return np.abs(d) - self.gap
