"""What the head-and-neck PET/CT phantom's anatomy is drawn with: the solids it adds to :mod:`.shapes`
(:class:`Cylinder`, :class:`Offset`), the patient's :class:`Pose`, the :class:`Part`, :class:`Lesion` and
:class:`Anatomy` records, and each tissue's CT and PET values (:func:`draw_tissues`); :mod:`.headneck_anatomy`
places the structures.

Tissue values (:func:`draw_tissues`, per case) are CT HU and FDG SUV: fat −110…−90 HU / SUV 0.25–0.4, muscle
45–55 HU / 0.7–1.0 (one contracted muscle SUV 2–4 in about a third of cases), brain grey matter 36–42 HU /
SUV 7–12 (white matter 55–70 % of it), cortical bone 850–1100 HU around 250–400 HU marrow, parotids −20…15 HU and
submandibular glands 30–45 HU (SUV 1.5–3), tonsils and adenoid 50–60 HU / SUV 2–4, vessels 35–45 HU / SUV
1.5–2, spinal cord 30–40 HU / SUV 1–1.4.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .shapes import Ellipsoid, Plane, Shape, Tube

__all__ = ["TISSUE_NAMES", "Anatomy", "Cylinder", "Lesion", "Offset", "Part", "Pose", "draw_tissues"]

#: tissue classes of the phantom's ``tissue`` map, in index order (0: air outside the body)
TISSUE_NAMES: tuple[str, ...] = (
    "air", "fat", "muscle", "hot_muscle", "tongue", "grey_matter", "white_matter", "csf", "cord",
    "cortical_bone", "marrow", "tooth", "cartilage", "disc", "parotid", "submandibular", "lymphoid", "thyroid",
    "blood", "lymph_node", "airway", "gtvp", "gtvn", "necrosis")


def _ellipse(qx, qy, rx: float, ry: float) -> np.ndarray:
    """Approximate signed distance (mm) to the ellipse with semi-axes ``rx``, ``ry`` (value over gradient)."""
    k0 = np.sqrt((qx / rx) ** 2 + (qy / ry) ** 2)
    k1 = np.sqrt((qx / (rx * rx)) ** 2 + (qy / (ry * ry)) ** 2)
    d = k0 * (k0 - 1.0) / np.maximum(k1, 1e-9)
    return np.where(k0 < 1e-6, -min(rx, ry), np.maximum(d, -min(rx, ry))).astype(np.float32)


class Cylinder(Shape):
    """Elliptic cylinder with flat ends: ``centre`` (mm), semi-axes ``rx``, ``ry`` across and ``half`` along its
    axis, turned by ``rot`` (3 × 3, columns: its x, y and axis directions)."""

    def __init__(self, centre, rx: float, ry: float, half: float, rot=None):
        self.c = [float(v) for v in centre]
        self.a = (float(rx), float(ry), float(half))
        self.r = np.eye(3) if rot is None else np.asarray(rot, dtype=float)
        extent = np.abs(self.r) @ np.array(self.a)
        self.lo, self.hi = np.array(self.c) - extent, np.array(self.c) + extent

    def fn(self, x, y, z):
        d = (x - self.c[0], y - self.c[1], z - self.c[2])
        q = [float(self.r[0, j]) * d[0] + float(self.r[1, j]) * d[1] + float(self.r[2, j]) * d[2] for j in range(3)]
        return np.maximum(_ellipse(q[0], q[1], self.a[0], self.a[1]), np.abs(q[2]) - self.a[2])


class Offset(Shape):
    """``shape`` shrunk by ``mm`` (≥ 0) all round: its signed distance plus ``mm``."""

    def __init__(self, shape: Shape, mm: float):
        self.shape, self.mm = shape, np.float32(max(float(mm), 0.0))
        self.lo, self.hi = shape.lo, shape.hi

    def sdf(self, grid, box) -> np.ndarray:
        return self.shape.sdf(grid, box) + self.mm


@dataclass(frozen=True)
class Pose:
    """The patient's size ``k`` and small rotation ``rot`` about the origin: nominal mm → anatomical mm."""

    k: float
    rot: np.ndarray

    def at(self, points) -> np.ndarray:
        """Nominal point(s) (…, 3) in the anatomical frame."""
        return (self.k * np.asarray(points, dtype=float)) @ self.rot.T

    def ell(self, centre, axes, turn=None) -> Ellipsoid:
        rot = self.rot if turn is None else self.rot @ turn
        return Ellipsoid(self.at(centre), self.k * np.asarray(axes, dtype=float), rot)

    def tube(self, points, radii) -> Tube:
        return Tube(self.at(points), self.k * np.asarray(radii, dtype=float))

    def cyl(self, centre, rx: float, ry: float, half: float) -> Cylinder:
        return Cylinder(self.at(centre), self.k * rx, self.k * ry, self.k * half, self.rot)

    def plane(self, normal, offset: float) -> Plane:
        norm = float(np.linalg.norm(normal))
        return Plane(self.rot @ (np.asarray(normal, dtype=float) / norm), self.k * offset / norm)


@dataclass(frozen=True)
class Part:
    """One structure painted over the earlier ones: its shape, tissue (a :data:`TISSUE_NAMES` entry), HECKTOR
    label (``None``: leave the label map alone), an outer shell ``(mm, tissue)`` (cortical bone), its own
    values ``(HU, SUV, texture HU, relative SUV texture)`` instead of the tissue's, and how far (mm) inside
    the skin it is kept (``None``: not clipped)."""

    shape: Shape
    tissue: str
    label: int | None = None
    shell: tuple[float, str] | None = None
    values: np.ndarray | None = None
    inset: float | None = 1.0


@dataclass(frozen=True)
class Lesion:
    """A tumour: HECKTOR label (1 GTVp, 2 GTVn), centre (anatomical mm), diameter (mm), SUV, necrotic core."""

    label: int
    centre: np.ndarray
    diameter: float
    suv: float
    necrotic: bool


@dataclass(frozen=True)
class Anatomy:
    """One case: the body outline, the parts in painting order, the tissue values and the tumours."""

    body: Shape
    parts: tuple[Part, ...]
    tissues: dict[str, np.ndarray]
    lesions: tuple[Lesion, ...]
    hot_muscle: str | None


def draw_tissues(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Each tissue's ``(HU, SUV, texture HU, relative SUV texture)`` for one case (float32)."""
    u = rng.uniform
    muscle, brain = u(45.0, 55.0), u(7.0, 12.0)
    rows = {
        "air": (-1000.0, 0.0, 0.0, 0.0), "airway": (u(-1000.0, -960.0), 0.0, 5.0, 0.0),
        "fat": (u(-110.0, -90.0), u(0.25, 0.4), 10.0, 0.15), "muscle": (muscle, u(0.7, 1.0), 6.0, 0.1),
        "hot_muscle": (muscle, u(2.0, 4.0), 6.0, 0.15), "tongue": (muscle + u(0.0, 10.0), u(1.0, 1.8), 6.0, 0.12),
        "grey_matter": (u(36.0, 42.0), brain, 3.0, 0.06),
        "white_matter": (u(26.0, 32.0), brain * u(0.55, 0.7), 3.0, 0.06),
        "csf": (u(2.0, 10.0), 0.2, 2.0, 0.05), "cord": (u(30.0, 40.0), u(1.0, 1.4), 3.0, 0.05),
        "cortical_bone": (u(850.0, 1100.0), u(0.3, 0.5), 60.0, 0.1),
        "marrow": (u(250.0, 400.0), u(0.9, 1.4), 40.0, 0.1),
        "tooth": (u(1600.0, 2200.0), 0.3, 80.0, 0.0), "cartilage": (u(120.0, 300.0), u(0.6, 0.9), 40.0, 0.1),
        "disc": (u(70.0, 90.0), u(0.5, 0.8), 5.0, 0.05), "parotid": (u(-20.0, 15.0), u(1.5, 3.0), 8.0, 0.12),
        "submandibular": (u(30.0, 45.0), u(1.5, 3.0), 5.0, 0.12), "lymphoid": (u(50.0, 60.0), u(2.0, 4.0), 4.0, 0.12),
        "thyroid": (u(90.0, 120.0), u(1.2, 2.0), 5.0, 0.1), "blood": (u(35.0, 45.0), u(1.5, 2.0), 3.0, 0.03),
        "lymph_node": (muscle + u(-10.0, 5.0), u(1.0, 2.0), 4.0, 0.1),
        "gtvp": (muscle + 15.0, 10.0, 5.0, 0.3), "gtvn": (muscle + 15.0, 6.0, 5.0, 0.3),
        "necrosis": (muscle - 5.0, 1.2, 4.0, 0.1),
    }
    return {name: np.array(rows[name], dtype=np.float32) for name in TISSUE_NAMES}
