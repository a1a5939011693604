"""Where the head and neck lies in a PET: the box the early HECKTOR editions cropped, placed from the brain's
uptake (:func:`head_neck_box`), for :func:`medfusion.apps.petct.geometry.working_grid` with ``box_mm``.

Positions are world RAS+ millimetres, as in :mod:`.geometry`.
"""

from __future__ import annotations

import logging

import numpy as np

from medfusion.io import Volume

__all__ = ["head_neck_box", "BRAIN_SMOOTH_SIGMA_MM", "BRAIN_SUV", "BRAIN_MIN_ML", "BODY_SUV"]

_log = logging.getLogger(__name__)

Bounds = tuple[np.ndarray, np.ndarray]

#: Gaussian smoothing of the PET before looking for the brain (standard deviation, mm).
BRAIN_SMOOTH_SIGMA_MM = 3.0
#: The brain is where the smoothed PET exceeds this SUV (brain grey matter takes up FDG strongly).
BRAIN_SUV = 3.0
#: The smallest connected component accepted as the brain (ml); a real brain is ≈ 1200 ml.
BRAIN_MIN_ML = 10.0
#: The body (for centring the box in x and y) is where the smoothed PET exceeds this SUV.
BODY_SUV = 0.3


def _world_axis(volume: Volume, axis: int) -> np.ndarray:
    """World coordinate ``axis`` (0 R, 1 A, 2 S; mm) of every voxel centre, ``float32``, the volume's shape."""
    row = volume.affine[axis]
    i, j, k = (np.arange(n, dtype=np.float32) for n in volume.shape)
    return (row[0] * i[:, None, None] + row[1] * j[None, :, None] + row[2] * k[None, None, :] + row[3]).astype(
        np.float32
    )


def head_neck_box(pet: Volume, box: np.ndarray, overlap: Bounds) -> Bounds:
    """The head-and-neck box of edge lengths ``box`` (mm) placed from the PET, after the rule of the early HECKTOR
    editions: the box's top is the bottom of the brain and it is centred in x and y on the body there.

    Steps:

    1. smooth the PET with a Gaussian of σ = :data:`BRAIN_SMOOTH_SIGMA_MM` (3 mm; in voxels per axis);
    2. keep the voxels above :data:`BRAIN_SUV` (3) whose centres lie in the upper (superior) third of the PET's
       range of S coordinates;
    3. the brain is their largest 6-connected component, if at least :data:`BRAIN_MIN_ML` (10 ml);
    4. the box's top is the lowest S of the brain's voxel centres and its bottom ``box[2]`` mm lower;
    5. the box is centred in R and A on the centroid of the body: the voxels whose smoothed SUV exceeds
       :data:`BODY_SUV` (0.3) within the box's S range (the brain's centroid if there are none).

    Without a brain-like component, a warning is logged and the box is centred on the overlap's centre.

    Returns:
        ``(lo, hi)`` of the box, RAS+ mm (not yet clipped to the overlap).
    """
    from scipy import ndimage

    sigma = BRAIN_SMOOTH_SIGMA_MM / np.asarray(pet.spacing)
    smooth = ndimage.gaussian_filter(pet.data, sigma=sigma, mode="nearest")
    s_coord = _world_axis(pet, 2)
    top, bottom = float(s_coord.max()), float(s_coord.min())
    labels, count = ndimage.label((smooth > BRAIN_SUV) & (s_coord >= top - (top - bottom) / 3.0))
    sizes = np.bincount(labels.ravel())[1:] if count else np.zeros(0)
    voxel_ml = abs(float(np.linalg.det(pet.affine[:3, :3]))) / 1000.0
    if sizes.size == 0 or sizes.max() * voxel_ml < BRAIN_MIN_ML:
        _log.warning(
            "no brain-like region (smoothed SUV > %g, at least %g ml, in the upper third of the PET) found: "
            "the %s mm box is centred on the CT∩PET overlap",
            BRAIN_SUV, BRAIN_MIN_ML, "×".join(f"{b:g}" for b in box),
        )
        centre = (overlap[0] + overlap[1]) / 2.0
        return centre - box / 2.0, centre + box / 2.0
    brain = labels == (int(np.argmax(sizes)) + 1)
    brain_bottom = float(s_coord[brain].min())
    body = (smooth > BODY_SUV) & (s_coord >= brain_bottom - box[2]) & (s_coord <= brain_bottom)
    where = body if body.any() else brain
    centre_ra = [float(_world_axis(pet, axis)[where].mean()) for axis in (0, 1)]
    lo = np.array([centre_ra[0] - box[0] / 2.0, centre_ra[1] - box[1] / 2.0, brain_bottom - box[2]])
    return lo, lo + box
