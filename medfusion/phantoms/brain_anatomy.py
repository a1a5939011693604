"""Anatomy of the BraTS phantoms in template (MNI) space: tissue maps, tumour sites, and the structures that make
the four contrasts differ outside the tumour.

Everything here is in MNI mm or on the MNI ICBM152 2009 template grid that ships inside nilearn (no download);
:mod:`.brain_render` puts it onto a phantom's grid.

- **Tissue maps, template extras, tumour sites** (:func:`mni152`, :func:`template_extras`, :func:`brain_anchor`,
  :func:`tumour_sites`): in :mod:`.brain_template`, re-exported here.
- **Vessels and choroid plexus** (:func:`vessel_atlas`): polylines with radii. Venous: the superior sagittal
  sinus (following the brain's midline outline from the frontal to the occipital pole, where it ends at the
  confluence), the transverse sinuses (from the confluence along the posterior outline), the internal cerebral
  and basal veins to the vein of Galen, the straight sinus (Galen → confluence), the superficial middle
  cerebral veins along the Sylvian fissures. Arterial: internal carotid, middle
  (Sylvian fissure), anterior (around the genu and over the corpus callosum) and posterior cerebral arteries,
  basilar artery. Choroid plexus: a glomus in each atrium and a strand along the ventricular body to the
  foramen of Monro. Hand-placed control points are moved to the most CSF-like voxel within 5 mm (vessels run
  in fissures, cisterns and sulci; the plexus inside the ventricles), then smoothed.
- **Dura** (:func:`tentorium_height`, :func:`falx_floor`): the falx is the midsagittal plane inside the
  interhemispheric CSF; the tentorium a tent-shaped surface from the straight sinus down to the transverse
  sinuses.
- **Cortical veins** (:func:`draw_cortical_veins`): 12 to 18 drawn per seed, running up the convexity just under
  the brain's outline to the superior sagittal sinus.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .brain_template import (
    FOV_HEIGHT_MM, Anatomy, _lateral_ventricles, _mni152_1mm, brain_anchor, mni152, template_extras, tumour_sites,
)

__all__ = [
    "Anatomy",
    "Tube",
    "mni152",
    "template_extras",
    "brain_anchor",
    "tumour_sites",
    "vessel_atlas",
    "draw_cortical_veins",
    "tentorium_height",
    "falx_floor",
    "FOV_HEIGHT_MM",
]


@dataclass(frozen=True)
class Tube:
    """A vessel (or plexus strand): a polyline ``points`` ``(N, 3)`` in MNI mm with a radius (mm) per point."""

    points: np.ndarray
    radii: np.ndarray
    kind: str  # "vein", "artery" or "plexus"

    def moved(self, offset: np.ndarray, scale: float) -> Tube:
        return Tube(self.points + offset, self.radii * scale, self.kind)


# ----------------------------------------------------------------------------------------------------------
# Curves in MNI space
# ----------------------------------------------------------------------------------------------------------


def _outline(origin: np.ndarray, directions: np.ndarray, inset_mm: float) -> np.ndarray:
    """Points ``inset_mm`` inside the brain's outer surface along rays from ``origin`` (MNI mm) in unit
    ``directions`` ``(N, 3)``: the last point of each ray where the brain fraction is ≥ 0.5."""
    anatomy = mni152(2)
    brain = anatomy.maps.sum(axis=0)
    steps = np.arange(0.0, 130.0, 0.5)
    pts = origin[None, None, :] + directions[:, None, :] * steps[None, :, None]  # (N, S, 3)
    inv = np.linalg.inv(anatomy.affine)
    vox = pts @ inv[:3, :3].T + inv[:3, 3]
    inside = ndimage.map_coordinates(brain, vox.reshape(-1, 3).T, order=1, cval=0.0).reshape(vox.shape[:2]) >= 0.5
    last = inside.shape[1] - 1 - np.argmax(inside[:, ::-1], axis=1)
    radius = np.maximum(steps[last] - inset_mm, 0.0)
    return origin[None, :] + directions * radius[:, None]


def _snap(points: np.ndarray, target: np.ndarray, radius_mm: float = 5.0) -> np.ndarray:
    """Move each point (MNI mm) to the voxel of the 1 mm ``target`` map (e.g. CSF) with the highest value
    within ``radius_mm``, preferring near voxels; the points keep their place where the map is flat."""
    affine = _mni152_1mm().affine
    inv = np.linalg.inv(affine)
    r = int(np.ceil(radius_mm))
    offs = np.stack(np.meshgrid(*[np.arange(-r, r + 1)] * 3, indexing="ij"), -1).reshape(-1, 3)
    offs = offs[(offs**2).sum(1) <= radius_mm**2]
    out = []
    for p in points:
        c = np.round(inv[:3, :3] @ p + inv[:3, 3]).astype(int)
        cand = np.clip(c + offs, 0, np.array(target.shape) - 1)
        score = target[tuple(cand.T)] - 0.004 * (offs**2).sum(1)
        best = cand[int(np.argmax(score))]
        out.append(affine[:3, :3] @ best + affine[:3, 3])
    return np.array(out)


def _smooth_polyline(points: np.ndarray, radii: np.ndarray, step_mm: float = 2.5) -> tuple[np.ndarray, np.ndarray]:
    """Resample a polyline at ≤ ``step_mm`` and smooth it (twice a 1-2-1 average, end points fixed)."""
    seg = np.linalg.norm(np.diff(points, axis=0), axis=1)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    t = np.linspace(0.0, s[-1], max(int(np.ceil(s[-1] / step_mm)) + 1, 2))
    pts = np.stack([np.interp(t, s, points[:, i]) for i in range(3)], axis=1)
    rad = np.interp(t, s, radii)
    for _ in range(2):
        pts[1:-1] = 0.25 * pts[:-2] + 0.5 * pts[1:-1] + 0.25 * pts[2:]
    return pts, rad


def _mirror(points) -> np.ndarray:
    return np.asarray(points, dtype=np.float64) * np.array([-1.0, 1.0, 1.0])


def _tube(points, radii, kind: str, snap_to: np.ndarray | None = None) -> Tube:
    pts = np.asarray(points, dtype=np.float64)
    if snap_to is not None:
        pts = _snap(pts, snap_to)
    rad = np.interp(np.linspace(0, 1, len(pts)), np.linspace(0, 1, len(radii)), radii)
    return Tube(*_smooth_polyline(pts, rad), kind)


@functools.lru_cache(maxsize=1)
def _ventricle_mask() -> np.ndarray:
    return _lateral_ventricles(mni152(2))


@functools.lru_cache(maxsize=1)
def _csf_1mm_smooth() -> np.ndarray:
    return ndimage.gaussian_filter(_mni152_1mm().maps[2], 1.0)


def _sagittal_rays(origin, degrees: np.ndarray, inset_mm: float) -> np.ndarray:
    a = np.deg2rad(degrees)
    dirs = np.stack([np.zeros_like(a), np.cos(a), np.sin(a)], axis=1)
    return _outline(np.asarray(origin, dtype=np.float64), dirs, inset_mm)


@functools.lru_cache(maxsize=1)
def _superior_sagittal_sinus() -> np.ndarray:
    """The midline outline from the frontal pole over the vertex to the occipital notch (the confluence)."""
    sss = _sagittal_rays((0.0, -18.0, 10.0), np.arange(25.0, 196.0, 5.0), inset_mm=1.0)
    sss.setflags(write=False)
    return sss


# The vein of Galen's junction with the straight sinus, behind and below the splenium (MNI mm).
_GALEN = (0.0, -50.0, 5.0)


def _venous_tubes() -> list[Tube]:
    """Superior sagittal, transverse and straight sinuses; internal cerebral, basal (Rosenthal) and superficial
    middle cerebral (Sylvian) veins."""
    csf = _csf_1mm_smooth()
    sss = _superior_sagittal_sinus()
    confluence = sss[-1]
    tubes = [_tube(sss, [2.0, 3.5, 4.5, 4.5], "vein")]
    a = np.deg2rad(np.arange(0.0, 81.0, 7.5))  # from the confluence laterally and forwards, falling slightly
    for side in (1.0, -1.0):
        dirs = np.stack([side * np.sin(a), -np.cos(a), -0.25 * np.sin(a)], axis=1)
        ts = _outline(confluence + np.array([0.0, 50.0, 0.0]), _unit(dirs), inset_mm=1.5)
        tubes.append(_tube(np.vstack([confluence, ts[1:]]), [4.0, 3.0], "vein"))
        icv = [(side * 2.0, -2.0, 14.0), (side * 2.0, -20.0, 14.0), (side * 2.0, -32.0, 10.0), _GALEN]
        tubes.append(_tube(icv, [1.2, 1.5], "vein", snap_to=csf))
        rosenthal = [(side * 18.0, 2.0, -14.0), (side * 22.0, -18.0, -10.0), (side * 14.0, -38.0, -2.0), _GALEN]
        tubes.append(_tube(rosenthal, [1.0, 1.3], "vein", snap_to=csf))
        centre = np.array([0.0, -10.0, 0.0])  # along the Sylvian fissure on the lateral surface
        sylvian = np.array([(side * 45.0, -25.0, 15.0), (side * 50.0, -8.0, 0.0), (side * 42.0, 12.0, -18.0)])
        tubes.append(_tube(_outline(centre, _unit(sylvian - centre), inset_mm=2.0), [1.0, 1.6], "vein"))
    tubes.append(_tube(np.array([_GALEN, confluence]), [2.5, 3.0], "vein"))  # straight sinus
    return tubes


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=1, keepdims=True)


# Arteries of the right hemisphere (MNI mm), mirrored for the left; radii from the first to the last point.
_ARTERIES: dict[str, tuple[list, list]] = {
    "internal carotid": ([(16, 0, -32), (15, 2, -22), (14, 2, -16)], [2.0, 2.0]),
    "middle cerebral": ([(14, 2, -16), (24, 3, -15), (34, 3, -11), (40, 0, -4), (41, -8, 2), (43, -18, 8)],
                        [1.6, 1.0]),
    "anterior cerebral": ([(13, 2, -16), (7, 12, -12), (3, 32, -8), (3, 40, 4), (3, 30, 13), (3, 20, 22),
                           (3, 10, 27), (3, 0, 31), (3, -10, 31), (3, -20, 29), (3, -30, 28)], [1.2, 0.9]),
    "posterior cerebral": ([(0, -13, -16), (10, -16, -13), (20, -28, -8), (24, -42, -4), (20, -60, 0),
                            (14, -76, 2)], [1.3, 0.8]),
}
_BASILAR = ([(0, -22, -46), (0, -17, -30), (0, -13, -16)], [1.6, 1.6])


def _arterial_tubes() -> list[Tube]:
    csf = _csf_1mm_smooth()
    tubes = [_tube(*_BASILAR, "artery", snap_to=csf)]
    for points, radii in _ARTERIES.values():
        for mirror in (False, True):
            pts = _mirror(points) if mirror else np.asarray(points, dtype=np.float64)
            tubes.append(_tube(pts, radii, "artery", snap_to=csf))
    return tubes


def _plexus_tubes() -> list[Tube]:
    """Choroid plexus per hemisphere: a glomus in the atrium and a strand along the floor of the body."""
    anatomy = mni152(2)
    vent = _ventricle_mask()
    mm = np.argwhere(vent) @ anatomy.affine[:3, :3].T + anatomy.affine[:3, 3]
    tubes = []
    for side in (1.0, -1.0):
        half = mm[side * mm[:, 0] > 3.0]
        path = []
        for y in (-40.0, -30.0, -20.0, -10.0, -2.0):
            sl = half[np.abs(half[:, 1] - y) <= 2.0]
            if len(sl) == 0:
                continue
            floor = sl[:, 2].min() + 2.0
            path.append((np.median(sl[sl[:, 2] <= floor + 4.0, 0]), y, floor))
        path = np.array(path)
        atrium = half[np.abs(half[:, 1] - path[0, 1]) <= 4.0]
        glomus = np.median(atrium, axis=0)
        path[0] = glomus
        tubes.append(Tube(np.array([glomus + (0, 4.0, 0), glomus - (0, 4.0, 0)]), np.array([3.5, 3.5]), "plexus"))
        tubes.append(_tube(path, [2.0, 1.2], "plexus"))
    return tubes


@functools.lru_cache(maxsize=1)
def vessel_atlas() -> tuple[Tube, ...]:
    """The template's sinuses, deep veins, large arteries and choroid plexus (see the module docstring)."""
    return tuple(_venous_tubes() + _arterial_tubes() + _plexus_tubes())


def _straight_sinus() -> tuple[np.ndarray, np.ndarray]:
    """(vein of Galen end, confluence end) of the straight sinus, MNI mm."""
    return np.array(_GALEN), _superior_sagittal_sinus()[-1]


def tentorium_height(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Height ``z`` (MNI mm) of the tentorium above ``(x, y)`` and whether the tentorium is there: a tent
    falling off ``2.6·√|x|`` mm from the straight sinus, behind the incisura (the free edge from the vein of
    Galen to the petrous apices at y ≈ −20)."""
    galen, confluence = _straight_sinus()
    t = np.clip((y - galen[1]) / (confluence[1] - galen[1]), 0.0, 1.0)
    ridge = galen[2] + t * (confluence[2] - galen[2])
    ax = np.abs(x)
    z = ridge - 2.6 * np.sqrt(ax)
    edge = galen[1] + (np.minimum(ax, 30.0) / 25.0) ** 2 * (-20.0 - galen[1])
    return z, (y <= edge) & (y >= confluence[1] - 10.0) & (ax <= 60.0)


def falx_floor(y: np.ndarray) -> np.ndarray:
    """Lowest ``z`` (MNI mm) of the falx at ``y``: down to the crista galli in front, above the corpus callosum
    region in the middle, on the tentorium behind the vein of Galen."""
    galen, confluence = _straight_sinus()
    ys = [confluence[1] - 20.0, confluence[1], galen[1], 10.0, 15.0, 80.0]
    zs = [confluence[2] + 2.0, confluence[2] + 2.0, galen[2] + 2.0, 0.0, -20.0, -25.0]
    return np.interp(y, ys, zs).astype(np.float32)


def draw_cortical_veins(rng: np.random.Generator) -> list[Tube]:
    """12 to 18 superficial cortical veins running up the convexity, 1.5 mm under the brain's outline, to the
    superior sagittal sinus; radius 0.9 to 1.6 mm."""
    origin = np.array([0.0, -18.0, 15.0])
    n = int(rng.integers(12, 19))
    first = float(rng.choice([-1.0, 1.0]))
    veins = []
    for k in range(n):
        side = first if k % 2 == 0 else -first
        az0, el0 = np.deg2rad(rng.uniform(-70.0, 60.0)), np.deg2rad(rng.uniform(5.0, 35.0))
        az1, el1 = az0 * rng.uniform(0.3, 0.7), np.deg2rad(rng.uniform(70.0, 80.0))
        wiggle, phase = np.deg2rad(rng.uniform(2.0, 6.0)), rng.uniform(0.0, 2.0 * np.pi)
        t = np.linspace(0.0, 1.0, 14)
        az = az0 + t * (az1 - az0) + wiggle * np.sin(2.0 * np.pi * 1.5 * t + phase)
        el = el0 + t * (el1 - el0)
        dirs = np.stack([side * np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)], axis=1)
        radius = rng.uniform(0.9, 1.6)
        veins.append(Tube(_outline(origin, dirs, inset_mm=1.5), np.linspace(radius, 1.2 * radius, len(t)), "vein"))
    return veins
