"""Anatomy of the head-and-neck PET/CT phantom: where each structure lies, its size, tissue and HECKTOR label.

:func:`draw_anatomy` draws one case from a random generator before anything depends on a voxel grid and returns
its :class:`Part` list in painting order (a later part covers an earlier one). Positions are *nominal* mm of a
reference patient whose CT field of view is :data:`REF_FOV_MM` (192 × 192 × 144 mm) centred on the origin: x
across the patient (RAS x), y posterior → anterior, z inferior → superior, z = 0 near C2/C3, the bottom of the
field of view below the larynx and its top ≈ 35 mm into the brain. A :class:`Pose` scales the nominal patient by
its size (±8 %) and turns it by a few degrees; the phantom scales the result to the field of view it renders.

Tissue values (:func:`draw_tissues`, per case: CT HU and FDG SUV), the records and the solids the structures are
made of are in :mod:`.headneck_parts`. Tumours (label 1 GTVp, 2 GTVn) are 10–20 HU denser than muscle with
SUV 4–20 (primary) or 3–12 (nodes) and sometimes a necrotic core (SUV 0.8–1.8, 15–25 HU lower).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .headneck_parts import TISSUE_NAMES, Anatomy, Cylinder, Lesion, Offset, Part, Pose, draw_tissues
from .shapes import Inter, Minus, Plane, Shape, Union, rotation

__all__ = ["REF_FOV_MM", "TISSUE_NAMES", "Anatomy", "Cylinder", "Lesion", "Offset", "Part", "Pose",
           "draw_anatomy", "draw_tissues"]

#: CT field of view (mm) of the nominal patient; the anatomy is scaled down for smaller fields of view
REF_FOV_MM: tuple[float, float, float] = (192.0, 192.0, 144.0)


@dataclass
class _Frame:
    """What the builders share: generator, pose, tissue values, spine and neck sizes, the contracted muscle."""

    rng: np.random.Generator
    pose: Pose
    tissues: dict[str, np.ndarray]
    lordosis: float
    step: float
    hot: tuple[str, float] | None

    def j(self, mm: float, n=None):
        """Uniform jitter in ±``mm``."""
        return self.rng.uniform(-mm, mm, n)

    def spine_y(self, z: float) -> float:
        """y (nominal mm) of the vertebral bodies' centres at height z (cervical lordosis bulges forward)."""
        return -9.0 + self.lordosis * float(np.exp(-(((z + 30.0) / 55.0) ** 2)))

    def canal_y(self, z: float) -> float:
        return self.spine_y(z) - 16.0

    def value(self, tissue: str, gain: float) -> np.ndarray:
        """The tissue's values with its SUV times ``gain``."""
        v = self.tissues[tissue].copy()
        v[1] *= np.float32(gain)
        return v

    def gland(self, tissue: str, centre, axes) -> Part:
        """A gland or tonsil near ``centre`` (± 3 mm), its size ± 15 % and its SUV ± 20 % (asymmetric uptake)."""
        c = np.asarray(centre, dtype=float) + self.j(3.0, 3)
        shape = self.pose.ell(c, np.asarray(axes, dtype=float) * self.rng.uniform(0.85, 1.15, 3))
        return Part(shape, tissue, values=self.value(tissue, self.rng.uniform(0.8, 1.2)))

    def muscle(self, name: str, side: float) -> str:
        return "hot_muscle" if self.hot == (name, side) else "muscle"


_HOT = ("sternocleidomastoid", "masseter", "pterygoid", "splenius")


def _frame(rng: np.random.Generator) -> _Frame:
    tissues = draw_tissues(rng)
    angles = rng.uniform(-1.0, 1.0, 3) * (4.0, 6.0, 4.0)  # degrees about z (yaw), y (roll), x (nodding)
    pose = Pose(float(rng.uniform(0.92, 1.08)), rotation(*angles))
    hot = (_HOT[int(rng.integers(len(_HOT)))], float(rng.choice((-1.0, 1.0))))
    return _Frame(rng, pose, tissues, float(rng.uniform(2.0, 8.0)), float(rng.uniform(16.5, 18.5)),
                  hot if rng.random() < 0.35 else None)


def _body(fr: _Frame, cavity) -> Shape:
    """Skin outline: neck column, head around the cranial cavity, lower head and face, chin, submental region and
    the shoulders' tops."""
    P, u = fr.pose, fr.rng.uniform
    return Union(P.cyl((0.0, -8.0, -120.0), 57.0 * u(0.93, 1.08), 62.0 * u(0.95, 1.05), 180.0),
                 P.ell(cavity[0], cavity[1] + 12.0),
                 P.ell((0.0, 15.0 + fr.j(3.0), 30.0), np.array([70.0, 80.0, 60.0]) * u(0.95, 1.05, 3)),
                 P.ell((0.0, 62.0 + fr.j(3.0), -14.0), (38.0, 32.0, 22.0)),
                 P.ell((0.0, 30.0, -30.0), (48.0, 42.0, 22.0)), P.ell((0.0, -12.0, -175.0), (175.0, 78.0, 85.0)))


def _head_parts(fr: _Frame, cavity) -> list[Part]:
    """Skull (diploe in cortical tables) with its base rising to the front and the foramen magnum, petrous bones
    and mastoids; CSF, grey and white matter, cerebellum and brainstem above the base."""
    P, (c, a) = fr.pose, cavity
    z0, slope = 38.0 + fr.j(3.0), 0.5 + fr.j(0.08)  # the cranial base: z = z0 + slope · y

    def above(mm: float) -> Plane:  # the half-space above the cranial base lowered by ``mm``
        return P.plane((0.0, slope, -1.0), mm - z0)

    inner = P.ell(c, a)
    foramen = P.cyl((0.0, fr.canal_y(30.0), 30.0), 15.0, 17.0, 14.0)
    vault = Inter(Minus(P.ell(c, a + 7.0), inner), above(6.0))
    base = Inter(inner, above(6.0), above(0.0).flipped())  # a 6 mm plate under the brain
    parts = [Part(Minus(Union(vault, base), foramen), "marrow", shell=(2.5, "cortical_bone"))]
    for side in (-1.0, 1.0):
        parts.append(Part(P.ell((side * 30.0, -12.0, 36.0), (9.0, 24.0, 7.0), rotation(-side * 45.0)), "cortical_bone"))
        parts.append(Part(P.ell((side * 52.0, -22.0, 32.0), (9.0, 11.0, 13.0)), "marrow", shell=(1.5, "cortical_bone")))
    space = Inter(inner, above(0.0))
    brain = Offset(space, 2.5)
    cerebellum = Inter(P.ell((0.0, -42.0 + fr.j(3.0), 58.0), (48.0, 30.0, 20.0)), brain)
    stem = P.tube([(0.0, fr.canal_y(32.0), 32.0), (0.0, -14.0, 60.0), (0.0, -6.0, 85.0)], [9.0, 12.0, 13.0])
    return parts + [Part(space, "csf"), Part(brain, "grey_matter"),
                    Part(Offset(space, 12.0 + fr.j(2.0)), "white_matter"),
                    Part(cerebellum, "grey_matter", values=fr.value("grey_matter", fr.rng.uniform(0.8, 0.95))),
                    Part(Inter(stem, Offset(inner, 2.5)), "white_matter", values=fr.value("white_matter", 1.2))]


def _face_parts(fr: _Frame) -> list[Part]:
    """Maxillary sinuses, nasal cavity, hard palate, mandible, teeth, tongue, chewing muscles, salivary glands."""
    P, rng = fr.pose, fr.rng
    parts = [Part(P.cyl((0.0, 48.0, 19.0), 22.0, 28.0, 3.0), "marrow", shell=(1.0, "cortical_bone"))]
    for side in (-1.0, 1.0):  # orbits: fat around the eye (vitreous ≈ CSF)
        parts += [Part(P.ell((side * 32.0, 64.0, 62.0), (16.0, 18.0, 13.0)), "fat"),
                  Part(P.ell((side * 32.0, 70.0, 63.0), (11.5, 11.5, 11.5)), "csf")]
    for side in (-1.0, 1.0):
        c, a = (side * 27.0, 55.0 + fr.j(3.0), 40.0), np.array([12.0, 16.0, 15.0]) * rng.uniform(0.85, 1.1, 3)
        parts += [Part(P.ell(c, a + 2.0), "cortical_bone"), Part(P.ell(c, a), "airway"),
                  Part(P.tube([(side * 6.0, 28.0, 35.0), (side * 7.0, 55.0, 39.0), (side * 6.0, 80.0, 43.0)],
                              [6.0, 7.0, 5.0]), "airway")]
    half = [(50.0, -2.0, 30.0), (49.0, 4.0, -12.0), (40.0, 38.0, -18.0), (22.0, 62.0, -20.0)]
    arc = np.array([(-x, y, z) for x, y, z in half] + [(0.0, 72.0, -20.0)] + half[::-1]) + fr.j(2.0, (9, 3))
    radii = [5.0, 6.0, 7.0, 7.0, 8.0, 7.0, 7.0, 6.0, 5.0]
    parts.append(Part(P.tube(arc, radii), "marrow", shell=(2.5, "cortical_bone")))
    teeth = np.array([(-36.0, 40.0, 0.0), (-20.0, 60.0, 0.0), (0.0, 67.0, 0.0), (20.0, 60.0, 0.0), (36.0, 40.0, 0.0)])
    parts += [Part(P.tube(teeth + (0.0, 0.0, -7.0), 4.0), "tooth"), Part(P.tube(teeth + (0.0, 3.0, 5.0), 4.0), "tooth"),
              Part(P.ell((0.0, 42.0 + fr.j(3.0), -2.0), np.array([22.0, 30.0, 14.0]) * rng.uniform(0.9, 1.1, 3)),
                   "tongue")]
    for side in (-1.0, 1.0):
        parts += [Part(P.ell((side * 56.0, 12.0, 2.0), (7.0, 14.0, 22.0)), fr.muscle("masseter", side)),
                  Part(P.ell((side * 38.0, 8.0, 10.0), (7.0, 10.0, 16.0), rotation(x_deg=20.0)),
                       fr.muscle("pterygoid", side)),
                  fr.gland("parotid", (side * 52.0, -6.0, 18.0), (12.0, 18.0, 22.0)),
                  fr.gland("submandibular", (side * 32.0, 36.0, -27.0), (11.0, 12.0, 9.0))]
    return parts


def _neck_parts(fr: _Frame) -> list[Part]:
    """Fat pads, sternocleidomastoid and splenius muscles, tonsils and adenoid, thyroid, carotid arteries,
    jugular veins and a few small benign lymph nodes."""
    P, rng, parts = fr.pose, fr.rng, []
    for side in (-1.0, 1.0):
        parts += [Part(P.ell((side * 40.0, -22.0, -40.0), (10.0, 14.0, 30.0)), "fat"),
                  Part(P.ell((side * 20.0, 8.0, 18.0), (5.0, 7.0, 12.0)), "fat"),
                  Part(P.tube([(side * 52.0, -22.0, 30.0), (side * 46.0, 5.0, -20.0), (side * 22.0, 38.0, -95.0)],
                              [7.0, 7.5, 6.0]), fr.muscle("sternocleidomastoid", side)),
                  Part(P.tube([(side * 22.0, -42.0, 30.0), (side * 28.0, -48.0, -20.0), (side * 34.0, -45.0, -80.0)],
                              9.0), fr.muscle("splenius", side)),
                  fr.gland("lymphoid", (side * 13.0, 16.0, 5.0), (6.0, 8.0, 11.0)),  # palatine tonsil
                  Part(P.ell((side * 15.0, 26.0, -80.0), (7.0, 9.0, 18.0)), "thyroid")]
    parts += [Part(P.ell((0.0, 40.0, -38.0), (22.0, 18.0, 8.0)), "fat"),
              fr.gland("lymphoid", (0.0, 24.0, -6.0), (12.0, 5.0, 7.0)),  # lingual tonsil
              fr.gland("lymphoid", (0.0, 8.0, 30.0), (12.0, 6.0, 6.0)),  # adenoid
              Part(P.ell((0.0, 36.0, -84.0), (10.0, 4.0, 5.0)), "thyroid")]
    for side in (-1.0, 1.0):
        bif = np.array([side * 24.0, 14.0, -22.0 + fr.j(8.0)])
        parts += [Part(P.tube([(side * 22.0, 12.0, -300.0), (side * 22.0, 12.0, -40.0), bif], 3.5), "blood"),
                  Part(P.tube([bif, (side * 28.0, 8.0, -5.0), (side * 30.0, 4.0, 20.0), (side * 28.0, 2.0, 38.0)],
                              [3.2, 3.0, 2.8, 2.5]), "blood"),
                  Part(P.tube([bif, (side * 26.0, 24.0, -5.0), (side * 35.0, 20.0, 20.0)], [2.6, 2.3, 2.0]), "blood"),
                  Part(P.tube([(side * 32.0, 6.0, -300.0), (side * 33.0, 4.0, -40.0), (side * 36.0, 0.0, 0.0),
                               (side * 38.0, -6.0, 30.0)], rng.uniform(4.5, 7.0)), "blood")]
    for _ in range(int(rng.integers(2, 6))):  # benign nodes along the jugular chain: physiological, not tumour
        c = (rng.choice((-1.0, 1.0)) * rng.uniform(30.0, 42.0), rng.uniform(-20.0, 10.0), rng.uniform(-70.0, 0.0))
        parts.append(Part(P.ell(c, rng.uniform(3.0, 5.0, 3)), "lymph_node"))
    return parts


def _vertebra(fr: _Frame, zc: float, i: int) -> list[Part]:
    """One cervical/upper thoracic level at height ``zc``: body (marrow in a cortical shell), arch, spinous and
    transverse processes, and the disc above it (``i``: 0 for C2, growing downwards)."""
    P, yb = fr.pose, fr.spine_y(zc)
    rx, ry, half, yc = 8.5 + 0.5 * i, 7.5 + 0.2 * i, 0.37 * fr.step, fr.canal_y(zc)
    ring = [(-rx * 0.7, yb - ry + 1.0), (-10.5, yc), (-4.0, yc - 9.5), (4.0, yc - 9.5), (10.5, yc),
            (rx * 0.7, yb - ry + 1.0)]
    tip = yc - 10.0 - (16.0 + 2.0 * i if i else 20.0)
    bone = [P.cyl((0.0, yb, zc), rx, ry, half), P.tube([(x, y, zc) for x, y in ring], 2.8),
            P.tube([(0.0, yc - 10.0, zc), (0.0, tip, zc - 0.4 * fr.step)], [3.5, 2.5])]
    bone += [P.tube([(s * (rx - 1.0), yb - 2.0, zc), (s * (rx + 13.0), yb - 5.0, zc)], 3.5) for s in (-1.0, 1.0)]
    if i == 0:  # C2's dens, up into the ring of C1
        bone.append(P.cyl((0.0, yb, zc + half + 9.0), 5.0, 5.0, 9.0))
    parts = [Part(Union(*bone), "marrow", shell=(1.5, "cortical_bone"))]
    if i:
        parts.append(Part(P.cyl((0.0, yb, zc + 0.5 * fr.step), 0.95 * rx, 0.95 * ry, 0.12 * fr.step), "disc"))
    return parts


def _spine_parts(fr: _Frame) -> list[Part]:
    """C1 (ring and lateral masses) and C2 … T2, the spinal canal (CSF), the cord and the vertebral arteries."""
    P, parts = fr.pose, []
    levels = [8.0 - i * fr.step for i in range(8)]  # C2 … T2 body centres
    for i, zc in enumerate(levels):
        parts += _vertebra(fr, zc, i)
    z1, y1 = levels[0] + 0.37 * fr.step + 10.0, fr.spine_y(levels[0])
    c1 = [P.tube([(-12.0, y1 + 6.0, z1), (0.0, y1 + 10.0, z1), (12.0, y1 + 6.0, z1)], 3.0),
          P.tube([(-16.0, y1 - 8.0, z1), (-9.0, y1 - 30.0, z1), (0.0, y1 - 33.0, z1), (9.0, y1 - 30.0, z1),
                  (16.0, y1 - 8.0, z1)], 3.0)]
    c1 += [P.ell((s * 16.0, y1 - 2.0, z1), (6.5, 9.0, 6.0)) for s in (-1.0, 1.0)]
    parts.append(Part(Union(*c1), "marrow", shell=(1.5, "cortical_bone")))
    zs = [-300.0] + levels[::-1] + [z1, 34.0]
    parts.append(Part(P.tube([(0.0, fr.canal_y(z), z) for z in zs], 7.5), "csf"))
    parts.append(Part(P.tube([(0.0, fr.canal_y(z), z) for z in zs], 4.5 + fr.j(0.5)), "cord"))
    for s in (-1.0, 1.0):
        path = [(s * 20.0, fr.spine_y(z) - 3.0, z) for z in [-300.0] + levels[::-1]]
        path += [(s * 20.0, y1 - 12.0, z1 + 6.0), (s * 6.0, y1 - 8.0, 38.0)]
        parts.append(Part(P.tube(path, 2.0), "blood"))
    return parts


def _airway_parts(fr: _Frame) -> list[Part]:
    """Thyroid and cricoid cartilage and the hyoid, then the airway: naso-, oro- and hypopharynx (wide: two
    lateral channels), larynx with the narrow glottis, trachea."""
    P, rng = fr.pose, fr.rng
    c, box = (0.0, 27.0, -40.0), [P.plane((0.0, -1.0, 0.0), -22.0)]  # anterior half of the larynx
    hyoid = [(-20.0, 22.0, -28.0), (-14.0, 34.0, -29.0), (0.0, 40.0, -30.0), (14.0, 34.0, -29.0), (20.0, 22.0, -28.0)]
    parts = [Part(Minus(Inter(P.cyl(c, 17.0, 15.0, 11.0), *box), P.cyl(c, 14.5, 12.5, 12.0)), "cartilage"),
             Part(Minus(P.cyl((0.0, 27.0, -55.0), 12.0, 12.0, 4.0), P.cyl((0.0, 27.0, -55.0), 9.5, 9.5, 5.0)),
                  "cartilage"),
             Part(P.tube(hyoid, 2.5), "marrow", shell=(1.0, "cortical_bone"))]
    zs = [31.0, 24.0, 10.0, -2.0, -14.0, -24.0, -34.0, -44.0, -47.0, -54.0, -66.0, -100.0, -300.0]
    ys = [24.0, 14.0, 13.0, 14.0, 16.0, 20.0, 24.0, 26.0, 26.0, 27.0, 28.0, 27.0, 24.0]
    radii = np.array([6.0, 7.0, 7.0, 6.5, 6.0, 6.0, 6.0, 4.0, 3.5, 7.0, 8.0, 8.5, 9.0]) * rng.uniform(0.8, 1.15, 13)
    parts.append(Part(P.tube(np.stack([np.zeros(len(zs)) + fr.j(1.0, len(zs)), ys, zs], 1), radii), "airway"))
    w = rng.uniform(4.0, 7.0)
    for side in (-1.0, 1.0):  # the pharynx is wider than deep; piriform sinuses low at the sides
        lateral = [(side * w, 14.0, 24.0), (side * w, 14.0, 5.0), (side * w, 16.0, -12.0),
                   (side * (w + 6.0), 20.0, -34.0)]
        parts.append(Part(P.tube(lateral, [4.5, 4.5, 4.0, 2.5 * rng.uniform(0.6, 1.3)]), "airway"))
    return parts


_SITES = ("tonsil", "base_of_tongue", "larynx", "hypopharynx", "oral_cavity")
_SITE_P = (0.35, 0.2, 0.2, 0.1, 0.15)


def _site(rng: np.random.Generator, site: str, side: float) -> np.ndarray:
    """Nominal centre of a primary tumour at ``site``, in the wall next to the airway (oral cavity: tongue)."""
    u = rng.uniform
    places = {"tonsil": (u(10.0, 16.0), u(14.0, 19.0), u(-6.0, 12.0)),
              "base_of_tongue": (u(0.0, 8.0), u(22.0, 28.0), u(-16.0, -4.0)),
              "larynx": (u(4.0, 10.0), u(22.0, 30.0), u(-46.0, -32.0)),
              "hypopharynx": (u(11.0, 16.0), u(16.0, 22.0), u(-40.0, -24.0)),
              "oral_cavity": (u(8.0, 18.0), u(42.0, 56.0), u(-10.0, 2.0))}
    x, y, z = places[site]
    return np.array([side * x, y, z])


def _lesion(fr: _Frame, label: int, centre, diameter: float, suv: float, p_necrosis: float):
    """An irregular tumour of about ``diameter`` (nominal mm): 2–4 overlapping ellipsoids, denser than muscle,
    SUV ``suv`` (heterogeneous), with a necrotic core with probability ``p_necrosis``; returns the
    :class:`Lesion` and its parts."""
    rng, P = fr.rng, fr.pose
    r = diameter / 2.1
    turn = [rotation(*rng.uniform(-90.0, 90.0, 3)) for _ in range(4)]
    offsets = rng.normal(size=(3, 3))
    offsets *= (r * rng.uniform(0.3, 0.55, 3) / np.linalg.norm(offsets, axis=1))[:, None]
    axes = [r * rng.uniform(0.8, 1.0, 3)] + [r * rng.uniform(0.4, 0.7, 3) for _ in range(3)]
    lobes = int(rng.integers(2, 5))
    blobs = [P.ell(np.asarray(centre) + (0.0 if i == 0 else offsets[i - 1]), axes[i], turn[i]) for i in range(lobes)]
    hu = float(fr.tissues["muscle"][0]) + rng.uniform(10.0, 20.0)
    name = "gtvp" if label == 1 else "gtvn"
    values = np.float32([hu, suv, 5.0, rng.uniform(0.2, 0.35)])
    parts = [Part(Union(*blobs), name, label=label, values=values, inset=2.0)]
    core = np.float32([hu - rng.uniform(15.0, 25.0), rng.uniform(0.8, 1.8), 4.0, 0.1])
    core_axes = r * rng.uniform(0.3, 0.45, 3)
    necrotic = bool(rng.random() < p_necrosis)
    if necrotic:
        parts.append(Part(P.ell(centre, core_axes), "necrosis", values=core, inset=3.0))
    return Lesion(label, P.at(centre), diameter * P.k, float(suv), necrotic), parts


def _lesions(fr: _Frame, min_diameter: float) -> tuple[list[Lesion], list[Part]]:
    """The primary (GTVp, 10–40 mm, SUV 4–20) and 0–3 lymph nodes (GTVn, 8–25 mm, SUV 3–12) at levels II–IV,
    mostly on the primary's side, not touching each other; no diameter below ``min_diameter``."""
    rng = fr.rng
    site, side = _SITES[int(rng.choice(len(_SITES), p=_SITE_P))], float(rng.choice((-1.0, 1.0)))
    centre, drawn = _site(rng, site, side), rng.uniform(10.0, 40.0)
    d = max(drawn, min_diameter)
    lesion, parts = _lesion(fr, 1, centre, d, rng.uniform(4.0, 20.0), 0.45 if drawn >= 20.0 else 0.1)
    lesions, placed = [lesion], [(centre, d)]
    for _ in range(int(rng.choice(4, p=(0.3, 0.3, 0.25, 0.15)))):
        for _try in range(30):
            s = side if rng.random() < 0.8 else -side
            z = (rng.uniform(-25.0, 5.0), rng.uniform(-45.0, -25.0), rng.uniform(-72.0, -45.0))[int(rng.integers(3))]
            c, drawn = np.array([s * rng.uniform(28.0, 38.0), rng.uniform(-10.0, 10.0), z]), rng.uniform(8.0, 25.0)
            dn = max(drawn, min_diameter)
            if all(np.linalg.norm(c - pc) > 0.6 * (dn + pd) + 3.0 for pc, pd in placed):
                lesion, more = _lesion(fr, 2, c, dn, rng.uniform(3.0, 12.0), 0.35 if drawn >= 15.0 else 0.05)
                lesions.append(lesion)
                parts += more
                placed.append((c, dn))
                break
    return lesions, parts


def draw_anatomy(rng: np.random.Generator, *, min_lesion_mm: float = 0.0) -> Anatomy:
    """Draw one case (see the module docstring); ``min_lesion_mm``: smallest tumour diameter (nominal mm), so
    that coarse grids still hold every tumour."""
    fr = _frame(rng)
    cavity = (np.array([0.0, fr.j(4.0), 100.0 + fr.j(4.0)]), np.array([64.0, 80.0, 66.0]) * rng.uniform(0.93, 1.07, 3))
    body = _body(fr, cavity)
    parts = [Part(body, "fat", inset=None), Part(Offset(body, rng.uniform(4.0, 12.0)), "muscle", inset=None)]
    parts += _head_parts(fr, cavity) + _face_parts(fr) + _neck_parts(fr) + _spine_parts(fr) + _airway_parts(fr)
    lesions, lesion_parts = _lesions(fr, min_lesion_mm)
    hot = None if fr.hot is None else f"{'right' if fr.hot[1] > 0 else 'left'} {fr.hot[0]}"
    return Anatomy(body, tuple(parts + lesion_parts), fr.tissues, tuple(lesions), hot)
