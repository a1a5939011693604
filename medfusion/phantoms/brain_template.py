"""The MNI152 template maps the BraTS phantoms are drawn on, loaded once per process: tissue fractions, the
lateral ventricles and periventricular caps, the point placed at the centre of the field of view, and the tumour
sites. The vessels, dura and cortical veins drawn on these maps are in :mod:`.brain_anatomy`.

Everything here is in MNI mm or on the MNI ICBM152 2009 template grid that ships inside nilearn (no download).

- **Tissue maps** (:func:`mni152`): grey matter, white matter and CSF fractions (CSF = brain mask − GM − WM), at
  1 mm or averaged over 2³, 4³, 8³ blocks for coarse grids (anti-aliasing).
- **Template extras** (:func:`template_extras`, 2 mm and coarser): the lateral ventricles (the deep CSF
  component holding the frontal horns) and the periventricular caps — white matter lining the ventricles,
  thickest at the tips of the frontal and occipital horns, where T2w and FLAIR are normally bright.
- **Placement** (:func:`brain_anchor`, :func:`tumour_sites`): the MNI point at the centre of BraTS's field of
  view, and candidate tumour centres in deep white matter.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

__all__ = ["Anatomy", "mni152", "template_extras", "brain_anchor", "tumour_sites", "FOV_HEIGHT_MM"]

#: Height (mm) of BraTS's field of view (155 slices of 1 mm).
FOV_HEIGHT_MM = 155.0

# Top of the brain this far (mm) below the top of the default field of view; the lowest part of the
# brainstem leaves the field of view instead, as in BraTS.
_TOP_MARGIN_MM = 8.0


@dataclass(frozen=True)
class Anatomy:
    """Maps on one template grid: ``maps`` is ``(C, X, Y, Z)`` float32 in [0, 1]; ``affine`` maps template
    voxels to MNI mm."""

    maps: np.ndarray
    affine: np.ndarray


def _readonly(a: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(a, dtype=np.float32)
    a.setflags(write=False)
    return a


# ----------------------------------------------------------------------------------------------------------
# Template maps (loaded once per process)
# ----------------------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _mni152_1mm() -> Anatomy:
    """GM, WM and CSF fractions of the MNI152 2009 template at 1 mm, from the files shipped in nilearn."""
    from nilearn import datasets  # heavy import (~1 s): only when a phantom is made

    gm_img = datasets.load_mni152_gm_template(resolution=1)
    wm_img = datasets.load_mni152_wm_template(resolution=1)
    mask_img = datasets.load_mni152_brain_mask(resolution=1)
    mask = np.asarray(mask_img.get_fdata(dtype=np.float32)) > 0.5
    gm = np.asarray(gm_img.get_fdata(dtype=np.float32)) * mask
    wm = np.asarray(wm_img.get_fdata(dtype=np.float32)) * mask
    excess = np.maximum(gm + wm, 1.0)  # GM + WM never exceeds 1 in the shipped maps; guard anyway
    gm, wm = gm / excess, wm / excess
    csf = np.clip(mask - gm - wm, 0.0, 1.0)
    return Anatomy(maps=_readonly(np.stack([gm, wm, csf])), affine=np.array(gm_img.affine, dtype=np.float64))


def _block_average(anatomy: Anatomy, factor: int) -> Anatomy:
    """``anatomy`` averaged over ``factor``³ blocks (zero-padded at the far edges)."""
    if factor == 1:
        return anatomy
    pad = [(0, 0)] + [(0, (-n) % factor) for n in anatomy.maps.shape[1:]]
    t = np.pad(anatomy.maps, pad)
    c, x, y, z = t.shape
    t = t.reshape(c, x // factor, factor, y // factor, factor, z // factor, factor).mean(axis=(2, 4, 6))
    block = np.diag([factor, factor, factor, 1.0])
    block[:3, 3] = (factor - 1) / 2.0  # centre of the first block, in the finer grid's voxels
    return Anatomy(maps=_readonly(t), affine=anatomy.affine @ block)


@functools.lru_cache(maxsize=4)
def mni152(level: int) -> Anatomy:
    """GM, WM, CSF fractions averaged over ``level``³ blocks (``level`` mm voxels; 1, 2, 4 or 8)."""
    return _block_average(_mni152_1mm(), level)


@functools.lru_cache(maxsize=4)
def template_extras(level: int) -> Anatomy:
    """Lateral-ventricle CSF fraction and periventricular-cap fraction (of the voxel), at ``max(level, 2)`` mm."""
    if level != 2:
        return template_extras(2) if level < 2 else _block_average(template_extras(2), level // 2)
    anatomy = mni152(2)
    gm, wm, csf = anatomy.maps
    ventricles = _lateral_ventricles(anatomy)
    # Distance (mm) from the ventricles, and where along them: the horn tips get the thickest caps.
    dist = ndimage.distance_transform_edt(~ventricles, sampling=2.0)
    idx = np.argwhere(ventricles)
    y_mm = anatomy.affine[1, 1] * np.arange(gm.shape[1]) + anatomy.affine[1, 3]
    y_lo = idx[:, 1].min() * anatomy.affine[1, 1] + anatomy.affine[1, 3]
    y_hi = idx[:, 1].max() * anatomy.affine[1, 1] + anatomy.affine[1, 3]
    horn = np.clip(np.maximum((y_mm - (y_hi - 14.0)) / 8.0, ((y_lo + 16.0) - y_mm) / 10.0), 0.0, 1.0)
    horn = horn[None, :, None]
    reach = 1.5 + 3.0 * horn  # mm
    cap = np.exp(-np.maximum(dist - 2.0, 0.0) / reach) * (0.5 + 0.5 * horn) * (dist > 0) * wm
    maps = np.stack([csf * ndimage.binary_dilation(ventricles), np.clip(cap, 0.0, 1.0)])
    return Anatomy(maps=_readonly(maps), affine=anatomy.affine)


def _lateral_ventricles(anatomy: Anatomy) -> np.ndarray:
    """Boolean mask of the lateral (and third) ventricles on the 2 mm grid: the CSF component, ≥ 10 mm inside
    the brain, that holds the frontal horns."""
    gm, wm, csf = anatomy.maps
    brain = (gm + wm + csf) >= 0.5
    depth = ndimage.distance_transform_edt(brain, sampling=2.0)
    labels, _ = ndimage.label((csf >= 0.5) & (depth >= 10.0))
    seed = _to_voxel(anatomy, np.array([[4.0, 10.0, 12.0], [-4.0, 10.0, 12.0]]))
    found = {int(labels[tuple(s)]) for s in seed} - {0}
    if len(found) != 1:
        raise RuntimeError("MNI152 template: could not find the lateral ventricles")
    return labels == found.pop()


def _to_voxel(anatomy: Anatomy, mm: np.ndarray) -> np.ndarray:
    inv = np.linalg.inv(anatomy.affine)
    return np.round(mm @ inv[:3, :3].T + inv[:3, 3]).astype(int)


@functools.lru_cache(maxsize=1)
def brain_anchor() -> np.ndarray:
    """MNI point (mm) placed at the centre of the field of view: the centre of the brain's bounding box
    in x and y; in z, the point that leaves the top of the brain ``_TOP_MARGIN_MM`` below the top of a
    155 mm field of view."""
    anatomy = mni152(2)
    idx = np.argwhere(anatomy.maps.sum(axis=0) >= 0.5)
    lo = anatomy.affine[:3, :3] @ idx.min(axis=0) + anatomy.affine[:3, 3]
    hi = anatomy.affine[:3, :3] @ idx.max(axis=0) + anatomy.affine[:3, 3]
    centre = (lo + hi) / 2.0
    centre[2] = hi[2] + _TOP_MARGIN_MM - FOV_HEIGHT_MM / 2.0
    return centre


@functools.lru_cache(maxsize=1)
def tumour_sites() -> tuple[np.ndarray, np.ndarray]:
    """Candidate tumour centres (MNI mm) in deep white matter of the left and right hemisphere: white
    matter fraction ≥ 0.7, at least 30 mm inside the brain, at least 12 mm from the midline."""
    anatomy = mni152(2)
    gm, wm, csf = anatomy.maps
    brain = (gm + wm + csf) >= 0.5
    depth = ndimage.distance_transform_edt(brain, sampling=2.0)
    idx = np.argwhere((wm >= 0.7) & (depth >= 30.0))
    world = idx @ anatomy.affine[:3, :3].T + anatomy.affine[:3, 3]
    left, right = world[world[:, 0] <= -12.0], world[world[:, 0] >= 12.0]
    left.setflags(write=False)
    right.setflags(write=False)
    return left, right
