"""From template anatomy to a phantom's four contrasts: structures on the output grid, intensities, bias fields.

Every structure is a fraction of each voxel (partial volume at the grid's resolution):

- **Tissue maps** (GM, WM, CSF) and the template extras (lateral ventricles, periventricular caps) are resampled
  trilinearly from a template averaged over blocks about the size of the output voxels.
- **Tubes** (vessels, choroid plexus) and **sheets** (falx, tentorium) are evaluated analytically from their
  distance to each voxel centre (in MNI mm): an edge blurred over 0.3 voxel (the spread of averaging over a
  voxel); a structure thinner than the voxel is widened to 0.6 voxel with its contrast scaled down by the
  same factor (cross-section kept), so thin vessels neither vanish nor alias into beads.

Each voxel's intensity mixes the tissue intensities of :data:`TISSUE_INTENSITIES` by these fractions; a structure
replaces its fraction of whatever lies under it (caps, then dura, plexus, arteries, veins). The values are
plausible relative intensities, not a physical MR simulation:

- t1c − t1n: venous sinuses, cortical and deep veins enhance strongly (brighter than white matter), arteries
  moderately, choroid plexus and dura (falx, tentorium) strongly; cortex a little. Elsewhere t1c = t1n up to
  gain, bias field and noise.
- T2w and FLAIR: CSF bright on T2w, dark on FLAIR; flowing blood dark on both (flow voids); choroid plexus darker
  than CSF on T2w, brighter than it on FLAIR; periventricular caps bright on FLAIR, less so on T2w; dura dark.
- Each contrast has its own smooth receive (bias) field on top of one shared by all four: the four are separate
  acquisitions.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np
from scipy import ndimage

from .brain_anatomy import Tube, falx_floor, tentorium_height
from .brain_template import Anatomy

__all__ = ["TISSUE_INTENSITIES", "STRUCTURES", "resample", "tube_fractions", "dura_fraction", "bias_field",
           "draw_bias_coefficients", "mix_structures"]

#: Relative intensity of each tissue in each contrast (before bias field, gain and noise).
TISSUE_INTENSITIES: dict[str, dict[str, float]] = {
    #  healthy tissue          tumour                     structures outside the tumour
    "t1n": {"gm": 0.55, "wm": 0.80, "csf": 0.20, "ed": 0.45, "ncr": 0.25, "et": 0.55,
            "cap": 0.70, "dura": 0.40, "plexus": 0.50, "artery": 0.25, "vein": 0.45},
    "t1c": {"gm": 0.58, "wm": 0.80, "csf": 0.19, "ed": 0.45, "ncr": 0.25, "et": 1.00,
            "cap": 0.71, "dura": 0.90, "plexus": 1.00, "artery": 0.75, "vein": 1.10},
    "t2w": {"gm": 0.60, "wm": 0.40, "csf": 1.00, "ed": 0.85, "ncr": 0.95, "et": 0.60,
            "cap": 0.62, "dura": 0.25, "plexus": 0.60, "artery": 0.08, "vein": 0.15},
    "t2f": {"gm": 0.60, "wm": 0.45, "csf": 0.10, "ed": 0.95, "ncr": 0.40, "et": 0.70,
            "cap": 0.78, "dura": 0.40, "plexus": 0.65, "artery": 0.08, "vein": 0.18},
}

#: Structures outside the tumour, in the order they are laid over the tissues.
STRUCTURES: tuple[str, ...] = ("cap", "dura", "plexus", "artery", "vein")


def resample(anatomy: Anatomy, shape: tuple[int, int, int], vox_to_mni: np.ndarray) -> np.ndarray:
    """The template ``maps`` ``(C, *shape)`` on the output grid (trilinear, 0 outside the template)."""
    m = np.linalg.inv(anatomy.affine) @ vox_to_mni  # output voxel -> template voxel
    out = np.empty((anatomy.maps.shape[0], *shape), dtype=np.float32)
    for i in range(anatomy.maps.shape[0]):
        ndimage.affine_transform(anatomy.maps[i], m[:3, :3], offset=m[:3, 3], output=out[i], order=1,
                                 mode="constant", cval=0.0)
    return out


def _partial_volume(dist: np.ndarray, half_width, voxel_mm: float, power: int) -> np.ndarray:
    """Fraction of a voxel at ``dist`` (mm) from the axis/mid-surface of a structure of ``half_width`` (mm):
    an edge blurred over 0.3 voxel; thinner than 0.6 voxel → widened to it, contrast scaled by
    ``(half_width / widened) ** power`` (2 for tubes, 1 for sheets)."""
    wide = np.maximum(half_width, 0.6 * voxel_mm)
    amp = (half_width / wide) ** power
    return (amp * 0.5 * (1.0 + np.tanh((wide - dist) / (0.3 * voxel_mm)))).astype(np.float32)


def _index_box(mni_points: np.ndarray, pad_mm: float, vox_to_mni: np.ndarray, shape,
               inv: np.ndarray | None = None) -> tuple[slice, ...] | None:
    """Index box of the output grid around MNI points, padded by ``pad_mm``; ``None`` if outside the grid.
    ``inv``: the inverse of ``vox_to_mni``, if known."""
    inv = np.linalg.inv(vox_to_mni) if inv is None else inv
    vox = mni_points @ inv[:3, :3].T + inv[:3, 3]
    pad = pad_mm * np.sqrt((inv[:3, :3] ** 2).sum(axis=1))  # mm -> voxels along each output axis
    lo = np.maximum(np.floor(vox.min(axis=0) - pad).astype(int), 0)
    hi = np.minimum(np.ceil(vox.max(axis=0) + pad).astype(int) + 1, shape)
    if np.any(hi <= lo):
        return None
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))


def _box_mni(box: tuple[slice, ...], vox_to_mni: np.ndarray) -> list[np.ndarray]:
    """MNI coordinates (x, y, z) of the voxel centres of an index box, as three float32 arrays."""
    idx = [np.arange(s.start, s.stop, dtype=np.float64) for s in box]
    i, j, k = idx[0][:, None, None], idx[1][None, :, None], idx[2][None, None, :]
    return [(vox_to_mni[r, 0] * i + vox_to_mni[r, 1] * j + vox_to_mni[r, 2] * k + vox_to_mni[r, 3])
            .astype(np.float32) for r in range(3)]


def _median_step(points: np.ndarray) -> float:
    return float(np.median(np.linalg.norm(np.diff(points, axis=0), axis=1))) if len(points) > 1 else 0.0


def tube_fractions(tubes: Iterable[Tube], shape, vox_to_mni: np.ndarray, voxel_mm: float) -> dict[str, np.ndarray]:
    """Voxel fractions of the tubes, one ``float32`` map per tube kind (the largest fraction where they meet)."""
    out: dict[str, np.ndarray] = {}
    inv = np.linalg.inv(vox_to_mni)
    for tube in tubes:
        frac = out.setdefault(tube.kind, np.zeros(shape, dtype=np.float32))
        # Segments about as long as a voxel at most, or as the polyline's own (shorter) steps.
        step = max(1, int(0.75 * voxel_mm / max(_median_step(tube.points), 1e-6)))
        keep = np.unique(np.r_[np.arange(0, len(tube.points), step), len(tube.points) - 1])
        points, radii = tube.points[keep], tube.radii[keep]
        for a, b, ra, rb in zip(points[:-1], points[1:], radii[:-1], radii[1:]):
            pad = max(ra, rb, 0.6 * voxel_mm) + 1.5 * voxel_mm
            box = _index_box(np.stack([a, b]), pad, vox_to_mni, shape, inv)
            if box is None:
                continue
            x, y, z = _box_mni(box, vox_to_mni)
            ab = b - a
            t = np.clip(((x - a[0]) * ab[0] + (y - a[1]) * ab[1] + (z - a[2]) * ab[2]) / max(ab @ ab, 1e-9), 0, 1)
            d = np.sqrt((x - a[0] - t * ab[0]) ** 2 + (y - a[1] - t * ab[1]) ** 2 + (z - a[2] - t * ab[2]) ** 2)
            np.maximum(frac[box], _partial_volume(d, ra + t * (rb - ra), voxel_mm, 2), out=frac[box])
    return out


def dura_fraction(shape, vox_to_mni: np.ndarray, voxel_mm: float, csf_share: np.ndarray,
                  ventricle_share: np.ndarray, half_thickness_mm: float = 0.6) -> np.ndarray:
    """Voxel fraction of the falx (midsagittal plane, inside the interhemispheric CSF, outside the ventricles,
    above :func:`falx_floor`) and the tentorium (:func:`tentorium_height`)."""
    out = np.zeros(shape, dtype=np.float32)
    reach = max(half_thickness_mm, 0.6 * voxel_mm) + 1.5 * voxel_mm
    corners = np.array([[sx * reach, sy, sz] for sx in (-1, 1) for sy in (-110.0, 80.0) for sz in (-30.0, 90.0)])
    box = _index_box(corners, 0.0, vox_to_mni, shape)
    if box is not None:
        x, y, z = _box_mni(box, vox_to_mni)
        above = np.clip((z - falx_floor(y)) / 4.0 + 0.5, 0.0, 1.0)
        where = np.clip(csf_share[box] - ventricle_share[box], 0.0, 1.0) * above
        out[box] = _partial_volume(np.abs(x), half_thickness_mm, voxel_mm, 1) * where
    corners = np.array([[sx, sy, sz] for sx in (-62.0, 62.0) for sy in (-115.0, -15.0) for sz in (-45.0, 15.0)])
    box = _index_box(corners, 0.0, vox_to_mni, shape)
    if box is not None:
        x, y, z = _box_mni(box, vox_to_mni)
        height, inside = tentorium_height(x, y)
        slope = 1.3 / np.sqrt(np.maximum(np.abs(x), 1.0))  # |dz/dx| of the tent
        dist = np.abs(z - height) / np.sqrt(1.0 + slope**2)
        tent = _partial_volume(dist, half_thickness_mm, voxel_mm, 1) * inside
        np.maximum(out[box], tent, out=out[box])
    return out


def bias_field(coef: np.ndarray, x: np.ndarray, y: np.ndarray, z: np.ndarray, fov) -> np.ndarray:
    """A smooth multiplicative field ``1 + Σ coef_t P_i(x) P_j(y) P_k(z)`` over the nine Legendre terms of degree
    1 and 2 (coordinates normalised to [-1, 1] over the field of view ``fov``, mm), on the grid of the 1D axes
    ``x, y, z`` (mm): float32 ``(len(x), len(y), len(z))``."""
    polys = [np.stack([np.ones_like(u), u, 1.5 * u * u - 0.5]) for u in
             (np.ravel(c).astype(np.float64) / (f / 2.0) for c, f in zip((x, y, z), fov))]
    table = np.zeros((3, 3, 3))
    table[0, 0, 0] = 1.0
    terms = [(1, 0, 0), (0, 1, 0), (0, 0, 1), (2, 0, 0), (0, 2, 0), (0, 0, 2), (1, 1, 0), (1, 0, 1), (0, 1, 1)]
    for c, term in zip(coef, terms):
        table[term] = c
    return np.einsum("ijk,ix,jy,kz->xyz", table, *polys, optimize=True).astype(np.float32)


def draw_bias_coefficients(rng: np.random.Generator, n_contrasts: int) -> np.ndarray:
    """Legendre coefficients: a shared field of at most ±8% and per-contrast fields of at most ±4%."""
    coefs = rng.standard_normal((1 + n_contrasts, 9))
    limits = np.array([0.08] + [0.04] * n_contrasts)
    return coefs * (limits / np.abs(coefs).sum(axis=1))[:, None]


def mix_structures(image: np.ndarray, total: np.ndarray, fractions: dict[str, np.ndarray],
                   values: dict[str, float]) -> np.ndarray:
    """Lay the structures over a tissue image in :data:`STRUCTURES` order: each replaces its fraction of the
    voxel's brain tissue (``total`` = brain fraction of the voxel)."""
    for name in STRUCTURES:
        f = fractions.get(name)
        if f is None:
            continue
        image = image + f * (np.float32(values[name]) * total - image)
    return image
