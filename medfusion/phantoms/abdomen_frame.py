"""The frame an abdomen phantom case is built in: the :class:`Part` and :class:`Anatomy` records, and the case's
:class:`Frame` (:func:`draw_frame`) — body outline and layers, spine levels and the diaphragm's domes, which every
builder of :mod:`.abdomen_anatomy` places its structures by.

Positions are in the anatomical mm of :mod:`.abdomen_geometry`. The spine's levels (S1, L5…L1, T12…T1, C7…C1)
stack up from the sacral promontory with per-case heights; the right diaphragm dome sits near T10, the left one
lower.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .abdomen_geometry import Body, Dome, Layer
from .shapes import Shape

__all__ = ["Part", "Anatomy", "Frame", "draw_frame"]


@dataclass(frozen=True)
class Part:
    """One structure: its shape, label (``None``: keep the label underneath), tissue (``None``: the label's
    tissue in ``tissues.json``) and an optional outer shell ``(mm, tissue)`` (cortical bone)."""

    shape: Shape
    label: int | None
    tissue: str | None = None
    shell: tuple[float, str] | None = None


@dataclass(frozen=True)
class Anatomy:
    """One case: the body, the parts in painting order, and the patient's shift in the scanner (mm)."""

    body: Body
    parts: tuple[Part, ...]
    shift: tuple[float, float, float]


@dataclass
class Frame:
    """What the builders share: the generator, body, diaphragm and spine of the case.

    ``levels`` maps a vertebra's name to (label, bottom z, top z), bottom-up; ``canal_y`` is the y of the
    spinal canal without lordosis; ``sx``/``sy`` the body's width and depth relative to 300 × 200 mm.
    """

    rng: np.random.Generator
    body: Body
    dome: Dome
    levels: dict[str, tuple[int, float, float]]
    canal_y: float
    lordosis: float
    sx: float
    sy: float

    def zc(self, name: str) -> float:
        """Centre height of a vertebra."""
        return 0.5 * (self.levels[name][1] + self.levels[name][2])

    def canal(self, z: float) -> float:
        """y of the spinal canal's centre at height z (lumbar lordosis bulges forward)."""
        return self.canal_y + self.lordosis * float(np.exp(-(((z - self.zc("L3")) / 90.0) ** 2)))

    def front(self, z: float) -> float:
        """y of the anterior surface of the vertebral bodies at height z."""
        zs = [self.zc(n) for n in self.levels]
        ry = float(np.interp(z, zs, [_vsize(n)[1] for n in self.levels]))
        rc = float(np.interp(z, zs, [_vsize(n)[2] for n in self.levels]))
        return self.canal(z) + rc + 2.0 + 2.0 * ry

    def cavity(self, extra: float = 0.0) -> Layer:
        """The body cavity (under the muscle wall), shrunk by ``extra`` mm."""
        return Layer(self.body, 1.0, self.body.wall + extra)

    def jitter(self, points, mm: float) -> np.ndarray:
        """``points`` (any shape, mm) each moved by up to ±``mm`` per coordinate."""
        p = np.asarray(points, dtype=float)
        return p + self.rng.uniform(-mm, mm, p.shape)


def _vsize(name: str) -> tuple[float, float, float]:
    """Vertebral body semi-axes (rx, ry) and spinal canal radius (mm) of a level."""
    k = int(name[1:])
    if name == "S1":
        return 25.0, 18.0, 9.5
    if name[0] == "L":
        return 21.5 + 0.7 * k, 16.0 + 0.4 * k, 9.5
    if name[0] == "T":
        return 13.0 + 0.6 * k, 11.0 + 0.45 * k, 7.5
    return 9.0, 7.0, 8.0


def _levels(z_promontory: float, scale: float) -> dict[str, tuple[int, float, float]]:
    """S1 below the promontory, then L5…L1 (35 mm each), T12…T1 (26 → 20 mm), C7…C1 (17 mm), × ``scale``."""
    levels = {"S1": (26, z_promontory - 30.0 * scale, z_promontory)}
    z = z_promontory
    steps = [(f"L{k}", 32 - k, 35.0) for k in range(5, 0, -1)]
    steps += [(f"T{k}", 44 - k, 19.5 + 0.65 * k) for k in range(12, 0, -1)]
    steps += [(f"C{k}", 51 - k, 17.0) for k in range(7, 0, -1)]
    for name, label, height in steps:
        levels[name] = (label, z, z + height * scale)
        z += height * scale
    return levels


def draw_frame(rng: np.random.Generator) -> Frame:
    """Body outline and layers, spine levels, the spinal canal's depth, diaphragm domes (right one higher)."""
    sx, sy = (float(v) for v in rng.uniform(0.9, 1.1, 2))
    fat_front = rng.uniform(10.0, 35.0)
    body = Body(width=(150.0 * sx, rng.uniform(-0.04, 0.04), rng.uniform(0.0, 0.1)),
                front=(105.0 * sy, rng.uniform(-0.1, 0.05), rng.uniform(-0.05, 0.08)),
                back=92.0 * sy * rng.uniform(0.95, 1.05), power=rng.uniform(2.2, 2.8),
                waves=tuple((rng.uniform(0.0, 0.02), rng.uniform(0.0, 2 * np.pi)) for _ in range(3)),
                fat_front=fat_front, fat_back=fat_front * rng.uniform(0.45, 0.8), wall=rng.uniform(8.0, 14.0))
    levels = _levels(rng.uniform(-160.0, -138.0), rng.uniform(0.92, 1.08))
    # from the skin of the back: fat, fascia, the paraspinal muscles (≈ 22 mm radius), then the canal
    canal_y = -body.back + body.fat_back + 3.0 + 22.0 * rng.uniform(0.85, 1.15) + 16.0
    zr = levels["T10"][2] + rng.uniform(-10.0, 12.0)
    dome = Dome(right=(60.0 * sx, 10.0, zr), left=(-65.0 * sx, 5.0, zr - rng.uniform(5.0, 20.0)),
                radius=rng.uniform(70.0, 95.0), back=1.35, floor=zr - rng.uniform(70.0, 85.0))
    return Frame(rng, body, dome, levels, canal_y, rng.uniform(0.0, 10.0), sx, sy)
