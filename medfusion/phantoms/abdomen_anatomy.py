"""Anatomy of the seg2med abdomen phantom: where each structure lies, how big it is, and its label.

:func:`draw_anatomy` draws one case from a random generator, before anything depends on the voxel grid, and
returns its :class:`Part` list in painting order (a later part covers an earlier one). Positions are in the
anatomical mm of :mod:`.abdomen_geometry` (x to the patient's right, y anterior, z superior). Most things are
placed relative to the spine, whose levels (S1, L5…L1, T12…T1, C7…C1) stack up from the sacral promontory
with per-case heights; the diaphragm domes sit near T10, the kidneys at L1–L3, the aortic bifurcation at L4.
Sizes and positions vary per case by about ±10–15% and ±5–10 mm.

Labels are TotalSegmentator ``total`` values. Parts with ``label=None`` change only the images (gas and
contents in bowel, vessels in the liver, the kidneys' medulla, marrow versus cortex); parts with label 0
are body tissue outside every class (fat, muscle, discs, CSF, diaphragm). The records and the case's frame (body,
spine levels, diaphragm) that the builders here share are in :mod:`.abdomen_frame`.
"""

from __future__ import annotations

import numpy as np

from .shapes import Column, Ellipsoid, Inter, Minus, Plane, Shape, Tube, Union, rotation
from .abdomen_frame import Anatomy, Frame, Part, _vsize, draw_frame
from .abdomen_geometry import DomeSide, Layer

__all__ = ["Part", "Anatomy", "Frame", "draw_anatomy"]


# ----------------------------------------------------------------------------------------------------------
# Body wall, thorax, spine and muscles
# ----------------------------------------------------------------------------------------------------------


def _body_parts(fr: Frame) -> list[Part]:
    """Skin and subcutaneous fat, the muscle wall, the fat of the body cavity, the diaphragm (all label 0)."""
    return [Part(Layer(fr.body, 0.0), 0, "subcutaneous_fat"),
            Part(Layer(fr.body, 1.0), 0, "skeletal_muscle"),
            Part(fr.cavity(), 0, "torso_fat"),
            Part(Inter(DomeSide(fr.dome, "band", 2.5, lo=(-np.inf, -np.inf, fr.dome.floor - 5.0)), fr.cavity()),
                 0, "skeletal_muscle")]


def _thorax_parts(fr: Frame) -> list[Part]:
    """Lung lobes above the diaphragm, mediastinal and pericardial fat, heart, oesophagus."""
    rng, dome = fr.rng, fr.dome
    zr = dome.right[2]
    thorax = fr.cavity(8.0)  # inside the ribs
    above = DomeSide(dome, "above", 4.0, lo=(-np.inf, -np.inf, dome.floor))
    yv = fr.front(zr)
    s = rng.uniform(0.75, 1.05)
    oblique = Plane((0.0, s, 1.0), zr + rng.uniform(50.0, 80.0) + s * yv)  # below/behind it: lower lobes
    horizontal = Plane((0.0, 0.0, 1.0), zr + rng.uniform(25.0, 50.0))  # below it: right middle lobe
    left, right = Plane((1.0, 0.0, 0.0), -6.0), Plane((-1.0, 0.0, 0.0), -6.0)
    lobes = [(11, (left, oblique)), (10, (left, oblique.flipped())), (14, (right, oblique)),
             (13, (right, oblique.flipped(), horizontal)), (12, (right, oblique.flipped(), horizontal.flipped()))]
    parts = [Part(Inter(thorax, above, *planes), label) for label, planes in lobes]
    mediastinum = Column(-8.0, yv + 35.0, 38.0 * fr.sx, 45.0, dome.floor, zr + 400.0)
    parts.append(Part(Inter(mediastinum, DomeSide(dome, "above", 2.0)), 0, "torso_fat"))
    centre = fr.jitter((-20.0 * fr.sx, 40.0 * fr.sy, zr + 45.0), 8.0)
    axes = np.array([62.0, 45.0, 60.0]) * rng.uniform(0.9, 1.1, 3)
    rot = rotation(z_deg=rng.uniform(-40.0, -20.0), y_deg=rng.uniform(10.0, 25.0))
    parts.append(Part(Inter(Ellipsoid(centre, axes + 5.0, rot), DomeSide(dome, "above", 2.0), thorax),
                      0, "torso_fat"))
    parts.append(Part(Inter(Ellipsoid(centre, axes, rot), DomeSide(dome, "above", 4.0), thorax), 51))
    gej = (-30.0 * fr.sx, 15.0, dome.left[2] - 25.0)  # where the oesophagus meets the stomach
    oes = [(-5.0, yv + 10.0, zr + 300.0), (-10.0, yv + 12.0, zr + 10.0), gej]
    parts.append(Part(Inter(Tube(fr.jitter(oes, 3.0), 8.0), fr.cavity()), 15))
    return parts


def _muscle_parts(fr: Frame) -> list[Part]:
    """Quadratus lumborum (label 0), autochthon and iliopsoas on both sides."""
    rng, parts = fr.rng, []
    z_low, z_top = fr.levels["S1"][1] - 30.0, fr.levels["C1"][2]
    zs = np.linspace(z_low, z_top, 12)
    size = rng.uniform(0.85, 1.15, 2)
    for side, auto, psoas in ((-1, 86, 88), (1, 87, 89)):
        radius = np.interp(zs, [fr.zc("S1"), fr.zc("L4"), fr.zc("T12"), fr.zc("T9")], [14, 22, 21, 16]) * size[0]
        x = side * (7.0 + radius)
        y = -fr.body.back + fr.body.fat_back + 4.0 + radius
        parts.append(Part(Inter(Tube(np.stack([x, y, zs], 1), radius), Layer(fr.body, 1.0, 2.0)), auto))
        rx = _vsize("L3")[0]
        quad = [(side * (rx + 38.0), fr.canal(fr.zc("T12")), fr.zc("T12")),
                (side * (rx + 45.0), fr.canal(fr.zc("L4")), fr.zc("L4"))]
        parts.insert(0, Part(Inter(Tube(fr.jitter(quad, 4.0), [9.0, 14.0]), fr.cavity(-4.0)), 0, "skeletal_muscle"))
        keys = [fr.zc("T12"), fr.zc("L2"), fr.zc("L4"), fr.levels["S1"][2], fr.levels["S1"][2] - 60.0]
        r = np.array([6.0, 12.0, 18.0, 22.0, 22.0]) * size[1]
        x = [side * (_vsize("L3")[0] + ri - 3.0) for ri in r[:4]] + [side * 65.0 * fr.sx]
        y = [fr.front(z) - 14.0 for z in keys[:4]] + [fr.front(keys[3]) + 20.0]
        parts.append(Part(Inter(Tube(fr.jitter(np.stack([x, y, keys], 1), 3.0), r), fr.cavity()), psoas))
    return parts


def _vertebra(fr: Frame, name: str) -> Part:
    """Vertebral body, arch, spinous and transverse processes of one level: marrow in a cortical shell."""
    label, z0, z1 = fr.levels[name]
    rx, ry, rc = _vsize(name)
    zc, disc = 0.5 * (z0 + z1), 0.22 * (z1 - z0)
    yc = fr.canal(zc)
    lumbar = name[0] in "LS"
    pieces = [Column(0.0, yc + rc + 2.0 + ry, rx, ry, z0 + disc / 2, z1 - disc / 2),
              Column(0.0, yc, rc + 6.0, rc + 6.0, z0 + disc / 2, z1 - disc / 2)]
    tip_y = min(-fr.body.back + fr.body.fat_back + 8.0, yc - rc - 10.0)
    tilt = (0.3 if lumbar else 0.9) * (z1 - z0)
    pieces.append(Tube([(0.0, yc - rc - 4.0, zc), (0.0, tip_y, zc - tilt)], [4.5, 3.5]))
    reach = rx + (22.0 if lumbar else 14.0)
    for side in (-1, 1):
        pieces.append(Tube([(side * (rc + 4.0), yc + 2.0, zc), (side * reach, yc - 4.0, zc)], [5.0, 4.0]))
    if name == "S1":  # the sacral alae
        pieces.append(Tube([(-45.0, yc + 10.0, zc), (45.0, yc + 10.0, zc)], 12.0))
    return Part(Union(*pieces), label, "marrow", shell=(1.5, "cortical_bone"))


def _spine_parts(fr: Frame) -> list[Part]:
    """Discs (label 0), vertebrae, sacrum, spinal canal (CSF, label 0) and cord (ends at L1/L2)."""
    names = list(fr.levels)
    parts = []
    for lower, upper in zip(names[:-1], names[1:]):
        z = fr.levels[lower][2]
        rx, ry, rc = _vsize(upper)
        height = 0.15 * (fr.levels[upper][2] - z) + 1.0
        parts.append(Part(Column(0.0, fr.canal(z) + rc + 2.0 + ry, 0.95 * rx, 0.95 * ry, z - height, z + height),
                          0, "intervertebral_disc"))
    parts += [_vertebra(fr, n) for n in names]
    z1 = fr.levels["S1"][1]
    y = fr.canal(z1) + 20.0
    sacrum = Union(Tube([(0.0, y, z1), (0.0, y - 25.0, z1 - 50.0), (0.0, y - 45.0, z1 - 100.0)], [20.0, 15.0, 10.0]),
                   Tube([(-42.0, y - 8.0, z1 - 15.0), (42.0, y - 8.0, z1 - 15.0)], 14.0))
    parts.append(Part(sacrum, 25, "marrow", shell=(1.5, "cortical_bone")))
    zs = [z1 - 60.0] + [fr.zc(n) for n in names]
    canal = [(0.0, fr.canal(z) - (20.0 if z < z1 else 0.0), z) for z in zs]
    radius = [_vsize(n)[2] for n in names[:1] + names]
    parts.append(Part(Tube(canal, radius), 0, "csf"))
    z_conus = fr.levels["L2"][2] + fr.rng.uniform(-15.0, 10.0)
    cord = [(0.0, fr.canal(z), z) for z in [z_conus - 10.0, z_conus + 20.0] + [fr.zc(n) for n in names[8:]]]
    parts.append(Part(Tube(cord, [1.5] + [4.5] * (len(cord) - 1)), 79))
    return parts


def _rib_parts(fr: Frame) -> list[Part]:
    """Ribs 1–12 on both sides, the costal cartilages of ribs 6–10, the sternum and xiphoid, iliac wings."""
    rng, body, parts = fr.rng, fr.body, []
    ends = [0.9] * 7 + [0.82, 0.75, 0.68, 0.5, 0.38]  # where each rib ends (fraction of π from the back)
    drops = [95.0] * 10 + [55.0, 35.0]
    depth = 0.5 * max(body.wall, 12.0) + 3.0
    for k in range(1, 13):
        z_head = fr.zc(f"T{k}") + 4.0
        drop, end, radius = drops[k - 1] * rng.uniform(0.85, 1.15), ends[k - 1] * np.pi, 5.0 * rng.uniform(0.9, 1.1)
        for side, label in ((-1, 91 + k), (1, 103 + k)):
            thetas = np.linspace(0.22 * np.pi, end, 6)
            zs = z_head - drop * ((thetas - thetas[0]) / (end - thetas[0])) ** 1.3
            path = [(side * (_vsize("T8")[0] + 12.0), fr.canal(z_head) - 2.0, z_head)]
            path += [(*body.point(side * t, z, depth), z) for t, z in zip(thetas, zs)]
            wall = Layer(body, 1.0, 1.0)
            parts.append(Part(Inter(Tube(path, radius), wall), label, "marrow", shell=(1.2, "cortical_bone")))
            if 6 <= k <= 10:
                stop = (0.96 - 0.05 * max(k - 7, 0)) * np.pi
                rise = 10.0 + 8.0 * max(k - 7, 0)
                cart = [path[-1]] + [(*body.point(side * (end + f * (stop - end)), zs[-1] + f * rise, depth),
                                      zs[-1] + f * rise) for f in (0.5, 1.0)]
                parts.append(Part(Inter(Tube(cart, 4.0), wall), 117))
    z_x = fr.dome.right[2] + rng.uniform(-25.0, 0.0)
    y_s = body.point(np.pi, z_x, 8.0)[1]
    sternum = Union(Column(0.0, y_s, 14.0, 6.0, z_x, z_x + 300.0),
                    Tube([(0.0, y_s, z_x + 5.0), (0.0, y_s + 2.0, z_x - 30.0)], [4.0, 2.5]))
    parts.append(Part(Inter(sternum, Layer(body, 1.0, 1.0)), 116, "marrow", shell=(1.2, "cortical_bone")))
    for side, label in ((-1, 77), (1, 78)):
        centre = fr.jitter((side * 85.0 * fr.sx, fr.front(fr.zc("L4")) - 17.0, fr.zc("L4") - 68.0), 5.0)
        wing = Ellipsoid(centre, (7.0, 60.0, 70.0), rotation(z_deg=-side * rng.uniform(35.0, 50.0)))
        parts.append(Part(Inter(wing, Layer(body, 1.0, 1.0)), label, "marrow", shell=(1.5, "cortical_bone")))
    return parts


# ----------------------------------------------------------------------------------------------------------
# Bowel, organs and vessels
# ----------------------------------------------------------------------------------------------------------


def _hollow(label: int, points, radii, wall: float, content: str, gas: list[Shape], clip: Shape):
    """A bowel segment: wall (``label``'s tissue, but bowel wall for the colon), contents, then gas pockets
    (``gas``, each kept inside the lumen); all labelled ``label``."""
    radii = np.asarray(radii, dtype=float)
    outer, lumen = Inter(Tube(points, radii), clip), Inter(Tube(points, radii - wall), clip)
    parts = [Part(outer, label, "bowel" if label == 20 else None), Part(lumen, None, content)]
    return parts + [Part(Inter(g, lumen), None, "air") for g in gas]


def _pockets(fr: Frame, points, radii, n: int) -> list[Shape]:
    """``n`` gas pockets at random points of a tube, floating up to its anterior (non-dependent) side."""
    out = []
    for _ in range(n):
        i = int(fr.rng.integers(len(points)))
        r = float(np.asarray(radii, dtype=float).reshape(-1)[min(i, np.size(radii) - 1)])
        size = r * fr.rng.uniform(0.5, 0.9)
        out.append(Ellipsoid(np.asarray(points[i]) + (0.0, r - 0.6 * size, 0.0), (size * 1.4, size, size * 1.4)))
    return out


def _bowel_parts(fr: Frame) -> list[Part]:
    """Small bowel loops, colon, duodenum and stomach, with fluid or stool, and gas (still labelled)."""
    rng, sx, sy, cavity = fr.rng, fr.sx, fr.sy, fr.cavity()
    z_top, z_bot = fr.zc("L2"), fr.levels["S1"][2] - 40.0
    rows = int(rng.integers(5, 8))
    y_lo, y_hi = fr.front(fr.zc("L4")) + 30.0, fr.body.point(np.pi, fr.zc("L4"), fr.body.wall + 15.0)[1]
    loops = []  # rows of loops, each meandering across the belly and back
    for i, z in enumerate(np.linspace(z_top, z_bot, rows)):
        xs = np.linspace(-70.0 * sx, 60.0 * sx, 5)[:: 1 if i % 2 == 0 else -1] + rng.uniform(-12.0, 12.0, 5)
        ys = rng.uniform(y_lo, max(y_hi, y_lo + 10.0), 5)
        loops += list(zip(xs, ys, z + rng.uniform(-15.0, 15.0, 5)))
    r = rng.uniform(11.0, 14.0)
    parts = _hollow(18, loops, r, 3.0, "fluid", _pockets(fr, loops, r, int(rng.integers(0, 4))), cavity)
    zl1, zs1 = fr.zc("L1"), fr.levels["S1"][2]
    colon = fr.jitter([(70 * sx, 25, zs1 - 10), (85 * sx, 25, fr.zc("L3")), (80 * sx, 20, zl1 - 10),
                       (55 * sx, 50 * sy, zl1 - 20), (20, 65 * sy, fr.zc("L2") - 10), (-30, 65 * sy, fr.zc("L2")),
                       (-70 * sx, 30 * sy, zl1 + 25), (-88 * sx, 10, zl1 + 10), (-88 * sx, 10, fr.zc("L3")),
                       (-75 * sx, 15, zs1 - 10), (-40 * sx, 25, zs1 - 45)], 6.0)
    radii = np.array([24, 22, 21, 19, 18, 18, 18, 17, 16, 16, 15]) * rng.uniform(0.85, 1.15)
    parts += _hollow(20, colon, radii, 3.0, "stool", _pockets(fr, colon, radii, int(rng.integers(3, 7))), cavity)
    below = Inter(cavity, DomeSide(fr.dome, "below", 4.0, hi=(np.inf, np.inf, fr.dome.right[2] + 10.0)))
    pylorus = (22 * sx, 45 * sy, zl1 + 15)
    duo = fr.jitter([pylorus, (45 * sx, 20 * sy, zl1 + 5), (48 * sx, 15, fr.zc("L2")), (35 * sx, 15, fr.zc("L3")),
                     (0, fr.front(fr.zc("L3")) + 22, fr.zc("L3")), (-30 * sx, 20, fr.zc("L2"))], 4.0)
    parts += _hollow(19, duo, 12.0, 3.0, "fluid", [], cavity)
    zl = fr.dome.left[2]
    stomach = fr.jitter([(-50 * sx, -5, zl - 12), (-62 * sx, 25 * sy, zl - 60), (-40 * sx, 50 * sy, fr.zc("T12")),
                         (-5, 60 * sy, zl1 + 15), pylorus], 5.0)
    radii = np.array([38.0, 33.0, 28.0, 20.0, 12.0]) * rng.uniform(0.85, 1.15)
    level = Plane((0.0, -1.0, 0.0), -(stomach[:, 1].max() + radii.min() - rng.uniform(15.0, 35.0)))
    return parts + _hollow(6, stomach, radii, 5.0, "fluid", [level], below)


def _kidney_parts(fr: Frame, side: int) -> tuple[list[Part], np.ndarray]:
    """A kidney (cortex, medulla, sinus fat at the hilum) and the adrenal gland above it; and the hilum."""
    rng = fr.rng
    z = fr.zc("L2") + (10.0 if side > 0 else 25.0)
    centre = fr.jitter((side * 75.0 * fr.sx, fr.front(z) - 10.0, z), 6.0)
    axes = np.array([28.0, 24.0, 55.0]) * rng.uniform(0.85, 1.15, 3)
    rot = rotation(z_deg=side * rng.uniform(20.0, 35.0), y_deg=side * rng.uniform(-15.0, -5.0))
    hilum = centre + rot @ np.array([-side * 0.55 * axes[0], 0.0, 0.0])
    parts = [Part(Inter(Ellipsoid(centre, axes, rot), fr.cavity()), 2 if side > 0 else 3),
             Part(Minus(Ellipsoid(centre, 0.72 * axes, rot), Ellipsoid(centre, 0.4 * axes, rot)), None, "medulla"),
             Part(Ellipsoid(hilum, axes * (0.4, 0.35, 0.45), rot), 0, "torso_fat")]
    top = centre + rot @ np.array([side * -8.0, 0.0, axes[2] + 10.0])
    parts.append(Part(Ellipsoid(top, (5.0, 16.0, 14.0), rotation(z_deg=side * 40.0)), 8 if side > 0 else 9))
    return parts, hilum


def _organ_parts(fr: Frame, vessels: dict) -> list[Part]:
    """Spleen, liver with its vessels, gallbladder, kidneys, adrenals, renal veins, pancreas."""
    rng, sx, sy, zr = fr.rng, fr.sx, fr.sy, fr.dome.right[2]
    parts, below = [], DomeSide(fr.dome, "below", 4.0, hi=(np.inf, np.inf, zr + 10.0))
    c = fr.jitter((-90.0 * sx, -35.0 * sy, zr - 45.0), 8.0)
    spleen = Minus(Ellipsoid(c, np.array([28.0, 60.0, 50.0]) * rng.uniform(0.85, 1.15, 3), rotation(z_deg=35.0)),
                   Ellipsoid(c + (35.0, 12.0, 0.0), (25.0, 30.0, 35.0)))
    parts.append(Part(Inter(spleen, below, fr.cavity()), 1))
    right = Ellipsoid(fr.jitter((65.0 * sx, 0.0, zr - 55.0), 8.0), np.array([80.0 * sx, 95.0 * sy, 85.0])
                      * rng.uniform(0.9, 1.1, 3), rotation(z_deg=rng.uniform(-10.0, 10.0)))
    left = Ellipsoid(fr.jitter((-15.0 * sx, 45.0 * sy, zr - 30.0), 8.0), np.array([65.0 * sx, 45.0 * sy, 40.0])
                     * rng.uniform(0.8, 1.2, 3))
    liver = Inter(Union(right, left), below, fr.cavity())
    parts.append(Part(liver, 5))
    hv = vessels["ivc"][0][3]
    porta = vessels["portal"][0][-1]
    for start, end, r in [(hv, (80 * sx, -5, zr - 60), 5.0), (hv, (40 * sx, 45 * sy, zr - 55), 4.5),
                          (hv, (-20 * sx, 50 * sy, zr - 40), 4.0), (porta, (85 * sx, 0, zr - 50), 5.0),
                          (porta, (5, 40 * sy, zr - 35), 4.0)]:
        mid = 0.5 * (np.asarray(start) + end) + rng.uniform(-8, 8, 3)
        parts.append(Part(Inter(Tube([start, mid, fr.jitter(end, 8.0)], [r, 0.7 * r, 2.0]), liver), None, "blood"))
    gb = Ellipsoid(fr.jitter((45.0 * sx, 45.0 * sy, zr - 110.0), 8.0), np.array([16.0, 16.0, 38.0])
                   * rng.uniform(0.8, 1.2, 3), rotation(x_deg=rng.uniform(-40.0, -20.0)))
    parts.append(Part(Inter(gb, fr.cavity()), 4))
    for side in (1, -1):
        kidney, hilum = _kidney_parts(fr, side)
        ivc = vessels["ivc"][0][1]
        parts += kidney + [Part(Tube([hilum, (ivc[0], ivc[1] + 4.0, hilum[2])], 5.5), 0, "blood")]
    zl1 = fr.zc("L1")
    pancreas = fr.jitter([(35 * sx, fr.front(zl1) + 28, fr.zc("L2") + 5), (5, fr.front(zl1) + 35, zl1),
                          (-35 * sx, fr.front(zl1) + 28, zl1 + 10), (-70 * sx, -10 * sy, fr.zc("T12") + 5)], 4.0)
    parts.append(Part(Inter(Tube(pancreas, np.array([17.0, 11.0, 11.0, 9.0]) * rng.uniform(0.85, 1.15)),
                            fr.cavity()), 7))
    return parts


def _vessel_paths(fr: Frame) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Centre lines and radii of the aorta, IVC, portal/splenic vein and the iliac vessels (label → path)."""
    rng, sx, sy, zr = fr.rng, fr.sx, fr.sy, fr.dome.right[2]
    zs = [zr + 300.0, zr - 30.0, fr.zc("L1"), fr.zc("L4")]
    r = np.array([13.0, 12.5, 11.0, 9.0]) * rng.uniform(0.85, 1.15)
    aorta = [(-22.0, fr.front(zs[0]) - 6.0, zs[0]), (-14.0, fr.front(zs[1]) + 2.0, zs[1])]
    aorta += [(-5.0, fr.front(z) + ri + 1.0, z) for z, ri in zip(zs[2:], r[2:])]
    zs = [fr.zc("L5"), fr.zc("L2"), fr.zc("L1") + 30.0]
    ivc = [(14.0, fr.front(zs[0]) + 11.0, zs[0])] + [(22.0 * sx, fr.front(z) + 13.0, z) for z in zs[1:]]
    ivc += [(25.0 * sx, fr.front(zr - 25.0) + 15.0, zr - 25.0), (20.0 * sx, 15.0 * sy, zr + 10.0)]
    zl1 = fr.zc("L1")
    portal = [(-68.0 * sx, -15.0 * sy, fr.zc("T12")), (-35.0 * sx, fr.front(zl1) + 15.0, zl1 + 8.0),
              (8.0, fr.front(zl1) + 22.0, zl1), (30.0 * sx, fr.front(zl1) + 32.0, zl1 + 25.0),
              (45.0 * sx, 15.0 * sy, zl1 + 45.0)]
    paths = {"aorta": (aorta, r), "ivc": (ivc, np.array([10.0, 11.0, 12.0, 12.0, 13.0]) * rng.uniform(0.85, 1.15)),
             "portal": (portal, np.array([5.0, 5.5, 6.5, 7.0, 7.0]) * rng.uniform(0.85, 1.15))}
    for name, start, dy, radius in (("artery", aorta[-1], -5.0, 6.5), ("vein", ivc[0], -12.0, 7.5)):
        for side in (-1, 1):
            path = [start, (side * 35.0 * sx, start[1] + dy, start[2] - 45.0),
                    (side * 60.0 * sx, start[1] + 2.0 * dy, start[2] - 100.0)]
            paths[f"iliac_{name}_{side}"] = (path, radius * rng.uniform(0.85, 1.15))
    return {k: (fr.jitter(p, 2.0), np.asarray(v, dtype=float)) for k, (p, v) in paths.items()}


def _vessel_parts(fr: Frame, vessels: dict) -> list[Part]:
    """The vessels of :func:`_vessel_paths` with their labels (painted last: they cross organs)."""
    labels = {"aorta": 52, "ivc": 63, "portal": 64, "iliac_artery_-1": 65, "iliac_artery_1": 66,
              "iliac_vein_-1": 67, "iliac_vein_1": 68}
    return [Part(Inter(Tube(*vessels[k]), fr.cavity(-6.0)), label) for k, label in labels.items()]


def draw_anatomy(rng: np.random.Generator) -> Anatomy:
    """Draw one case's anatomy (see the module docstring); the same generator state gives the same case."""
    fr = draw_frame(rng)
    shift = tuple(float(v) for v in rng.uniform(-1.0, 1.0, 3) * (6.0, 6.0, 12.0))
    vessels = _vessel_paths(fr)
    # the bowel and organs first, so that muscles, bones and vessels keep their shapes where they touch
    parts = (_body_parts(fr) + _thorax_parts(fr) + _bowel_parts(fr) + _organ_parts(fr, vessels)
             + _muscle_parts(fr) + _spine_parts(fr) + _rib_parts(fr) + _vessel_parts(fr, vessels))
    return Anatomy(fr.body, tuple(parts), shift)
