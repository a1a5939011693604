"""Seeded head-and-neck PET/CT phantoms with HECKTOR 2022 labels, for training and testing tumour segmenters.

One case is a CT (HU) and an FDG PET (SUV) of the same patient, each on its own grid, and the tumour label map on
the CT grid (uint8: 0 background, 1 GTVp, 2 GTVn), as HECKTOR 2022 distributes them.

1. **Anatomy** (:mod:`.headneck_anatomy`, shapes of :mod:`medfusion.phantoms.shapes`): from below the larynx to ≈ 35 mm into
   the brain: skin, subcutaneous fat and muscle; skull (cortical tables around diploe), petrous bones, mastoids,
   mandible, teeth, hard palate, C1 … T2 (marrow in cortical shells, discs, arches), spinal canal and cord; brain
   (grey and white matter, cerebellum, brainstem); airway (nasal cavity, maxillary sinuses, pharynx, larynx,
   trachea) with thyroid/cricoid cartilage and hyoid; tongue, chewing and neck muscles, fat pads; parotid and
   submandibular glands, tonsils and adenoid, thyroid; carotid arteries, jugular veins, vertebral arteries;
   small benign lymph nodes. Sizes, positions and a few degrees of rotation vary per seed. Then the primary
   tumour (GTVp, 1–4 cm, a union of 2–4 ellipsoids in the pharyngeal/laryngeal wall or the tongue next to the
   airway) and 0–3 lymph nodes (GTVn, 0.8–2.5 cm, levels II–IV), some with a necrotic core.
2. **Partial volume**: each structure is painted over the earlier ones with its voxel fraction (a linear ramp one
   voxel wide across its surface); a voxel is labelled tumour where the tumour covers its centre (fraction ≥ ½).
3. **CT** (HU; values in :mod:`.headneck_parts`): tissue values, a smooth texture (≈ 3 mm grain, a few HU in
   soft tissue, tens in bone) and slightly correlated Gaussian noise (σ 10–20 HU per case), clipped to
   [−1024, 3071]. Tumours are only 10–20 HU denser than muscle: CT alone does not find them.
4. **PET** (SUV): the tissues' uptake times a smooth heterogeneity (±20–35 % in tumours) is rendered on sub-voxels
   of ≤ 2 mm over the PET field of view, blurred by the scanner's Gaussian PSF (5–7 mm FWHM), averaged into the
   PET voxels, given Poisson-like, slightly correlated noise (σ = k·√SUV, k 0.08–0.25 per case, plus a faint
   floor of 0.01–0.04 SUV everywhere) and clipped to [0, 30]. Brain SUV 7–12, tumours 4–20 (primary) and 3–12
   (nodes), physiological uptake in tonsils (2–4), salivary glands (1.5–3) and sometimes a contracted muscle
   (2–4).

**Geometry.** The CT grid has the requested shape and spacing (default 2 × 2 × 3 mm, so 96 × 96 × 48 voxels see
192 × 192 × 144 mm); the PET grid (default 4 mm) sees a 10–20 % larger field of view, shifted by up to 5 %. Both
live in one RAS+ world (mm) away from the origin; in about half the cases the CT (and, independently, the PET)
stores x and y reversed, as DICOM-converted (LPS) files do, with the affine saying so. The anatomy keeps its real
size unless the CT field of view is smaller than 192 × 192 × 144 mm; then it shrinks with it (isotropically), so
tiny test grids still hold the whole neck and a visible tumour (never under 2.8 CT voxels across), and the PSF
shrinks with it (a miniature patient looks like a real one on a coarser grid). The same seed gives identical
arrays; the anatomy is drawn before anything that depends on the grid.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Union

import numpy as np
from scipy import ndimage

from ..errors import InputError
from ..io import ensure_absent, save_like, volume_from_array
from .headneck_anatomy import REF_FOV_MM, draw_anatomy
from .headneck_parts import TISSUE_NAMES, Anatomy, Part
from .seeded import write_seeded_cases
from .shapes import Grid

__all__ = ["CT_SPACING_MM", "PET_SPACING_MM", "SUV_CAP", "RATER_OFFSETS_MM", "RATERS_FOLDER", "HeadNeckPhantomCase",
           "make_headneck_phantom", "write_headneck_case", "write_headneck_dataset"]

PathLike = Union[str, "os.PathLike[str]"]

#: default CT voxel size (mm)
CT_SPACING_MM: tuple[float, float, float] = (2.0, 2.0, 3.0)
#: default PET voxel size (mm)
PET_SPACING_MM: tuple[float, float, float] = (4.0, 4.0, 4.0)
#: the PET never exceeds this SUV
SUV_CAP = 30.0
#: where :func:`write_headneck_case` puts the raters' label maps (beside ``labelsTr``)
RATERS_FOLDER = "labelsTr_raters"
#: several plausible annotations of one case: each rater draws the tumour border this far (anatomical mm) outside
#: the true surface (negative: inside) — tight, as the truth, generous; the second rater is the reference label map
RATER_OFFSETS_MM: tuple[float, ...] = (-2.0, 0.0, 2.0)
_SUB_MM = 2.0  # PET activity is rendered on sub-voxels no larger than this before the PSF
_INDEX = {name: np.uint8(i) for i, name in enumerate(TISSUE_NAMES)}


@dataclass(frozen=True)
class _Placement:
    """Where the case sits in the world (mm): anatomy mm → world is ``anchor + scale · p``; CT and PET grids in
    RAS voxel order start at ``ct_origin`` / ``pet_origin``; ``*_flip``: stored with x and y reversed."""

    scale: float
    anchor: np.ndarray
    ct_origin: np.ndarray
    pet_shape: tuple[int, int, int]
    pet_origin: np.ndarray
    ct_flip: bool
    pet_flip: bool


def _check(shape, spacing, pet_spacing):
    """Validated ``(shape, spacing, pet_spacing)``; :class:`InputError` otherwise."""
    shape_t = tuple(int(n) for n in shape)
    if len(shape_t) != 3 or min(shape_t) < 1 or any(n != s for n, s in zip(shape_t, shape)):
        raise InputError(f"phantom shape must be three positive integers, got {tuple(shape)}")
    out = []
    for what, value, default in (("spacing", spacing, CT_SPACING_MM), ("PET spacing", pet_spacing, PET_SPACING_MM)):
        sp = np.array(default if value is None else value, dtype=float).reshape(-1)
        if sp.shape != (3,) or not np.all(np.isfinite(sp) & (sp > 0)):
            raise InputError(f"phantom {what} must be three positive numbers (mm), got {value}")
        out.append(sp)
    return shape_t, out[0], out[1]


def _scale(shape, spacing) -> float:
    """Anatomy shrink factor: 1, or less when the CT field of view is smaller than :data:`REF_FOV_MM`."""
    return float(min(1.0, np.min(np.array(shape) * spacing / np.array(REF_FOV_MM))))


def _place(rng: np.random.Generator, shape, spacing, pet_spacing, scale: float) -> _Placement:
    """Draw the world position of the CT, the patient's offset in it, and the PET's larger, shifted grid."""
    fov = np.array(shape) * spacing
    centre = rng.uniform(-30.0, 30.0, 3) + (0.0, 0.0, rng.uniform(-150.0, 150.0))  # CT field of view centre
    anchor = centre - scale * rng.uniform(-8.0, 8.0, 3)  # the patient a few mm off centre
    pet_shape = tuple(int(np.ceil(f / p)) for f, p in zip(fov * rng.uniform(1.1, 1.2, 3), pet_spacing))
    pet_centre = centre + rng.uniform(-0.05, 0.05, 3) * fov
    flips = rng.random(2) < 0.5
    return _Placement(scale, anchor, centre - (np.array(shape) - 1) / 2.0 * spacing, pet_shape,
                      pet_centre - (np.array(pet_shape) - 1) / 2.0 * pet_spacing, bool(flips[0]), bool(flips[1]))


def _grid(shape, spacing, origin, place: _Placement) -> Grid:
    """A world grid (RAS voxel order) expressed in the anatomy's mm."""
    return Grid(shape, np.asarray(spacing) / place.scale, (np.asarray(origin) - place.anchor) / place.scale)


def _paint(grid: Grid, out: dict, part: Part, values: np.ndarray, shell: np.ndarray | None) -> None:
    """Paint one part over ``out["maps"]`` with its voxel fractions, and over the tissue and label maps where it
    covers the voxel centre; parts with an ``inset`` stay that far inside the skin."""
    box = grid.box(part.shape.lo, part.shape.hi)
    if box is None:
        return
    d = part.shape.sdf(grid, box)
    if part.inset is not None:
        np.maximum(d, out["body_d"][box] + np.float32(part.inset), out=d)
    frac = np.clip(np.float32(0.5) - d / np.float32(grid.h), 0.0, 1.0)
    if not frac.any():
        return
    value = values.reshape(-1, 1, 1, 1)
    if shell is not None:  # the share of the voxel within the shell's thickness under the surface
        share = np.clip(np.float32(0.5) + (d + np.float32(part.shell[0])) / np.float32(grid.h), 0.0, 1.0)
        value = value + share * (shell.reshape(-1, 1, 1, 1) - value)
    view = out["maps"][(slice(None), *box)]
    view += frac * (value - view)
    inside = d <= 0.0
    out["tissue"][box][inside] = _INDEX[part.tissue]
    if part.label is not None:
        out["labels"][box][inside] = part.label
        for rater, offset in zip(out.get("raters", ()), RATER_OFFSETS_MM):  # where each rater draws its border
            rater[box][d <= np.float32(offset)] = part.label


def _render(grid: Grid, anatomy: Anatomy, channels: tuple[int, ...], raters: bool = False) -> dict[str, np.ndarray]:
    """Noise-free ``maps`` (the ``channels`` of HU, SUV, texture HU, relative SUV texture), ``tissue`` and
    ``labels`` maps, the ``body`` mask on ``grid``, and with ``raters`` the label map of every rater
    (:data:`RATER_OFFSETS_MM`)."""
    ch = list(channels)
    body_d = anatomy.body.sdf(grid, grid.full)
    out = {"maps": np.empty((len(ch), *grid.shape), dtype=np.float32), "body_d": body_d,
           "tissue": np.zeros(grid.shape, dtype=np.uint8), "labels": np.zeros(grid.shape, dtype=np.uint8)}
    if raters:
        out["raters"] = [np.zeros(grid.shape, dtype=np.uint8) for _ in RATER_OFFSETS_MM]
    out["maps"][:] = anatomy.tissues["air"][ch].reshape(-1, 1, 1, 1)
    for part in anatomy.parts:
        values = anatomy.tissues[part.tissue] if part.values is None else part.values
        shell = None if part.shell is None else anatomy.tissues[part.shell[1]][ch]
        _paint(grid, out, part, np.asarray(values, dtype=np.float32)[ch], shell)
    out["body"] = body_d <= 0.0
    return out


def _field(rng: np.random.Generator, shape, sigma) -> np.ndarray:
    """Smooth random field (std 1, float32): white noise blurred by ``sigma`` voxels (per axis)."""
    f = ndimage.gaussian_filter(rng.standard_normal(shape, dtype=np.float32), sigma, mode="wrap")
    return f / np.float32(max(float(f.std()), 1e-6))


def _block_mean(a: np.ndarray, q) -> np.ndarray:
    """Mean over blocks of ``q`` (per axis) voxels."""
    n = [s // k for s, k in zip(a.shape, q)]
    return a.reshape(n[0], q[0], n[1], q[1], n[2], q[2]).mean(axis=(1, 3, 5), dtype=np.float32)


def _pet(rng: np.random.Generator, anatomy: Anatomy, place: _Placement, spacing: np.ndarray, scan: dict):
    """PET (SUV, RAS voxel order), its label map (tumour fraction ≥ ½) and where tumours touch a voxel."""
    q = [max(1, int(np.ceil(s / _SUB_MM - 1e-6))) for s in spacing]
    sub = spacing / np.array(q)
    sub_shape = tuple(n * k for n, k in zip(place.pet_shape, q))
    grid = _grid(sub_shape, sub, place.pet_origin - spacing / 2.0 + sub / 2.0, place)
    r = _render(grid, anatomy, (1, 3))
    activity = r["maps"][0] * np.maximum(1.0 + r["maps"][1] * _field(rng, sub_shape, 4.0 / sub), np.float32(0.05))
    psf = scan["fwhm"] * place.scale / 2.3548 / sub  # σ in sub-voxels; a shrunken patient gets a sharper PSF
    activity = ndimage.gaussian_filter(activity, psf, mode="nearest")
    pet = _block_mean(activity, q)
    fractions = [_block_mean((r["labels"] == k).astype(np.float32), q) for k in (1, 2)]
    labels = np.zeros(place.pet_shape, dtype=np.uint8)
    for k, f in zip((1, 2), fractions):
        labels[f >= 0.5] = k
    noise = scan["pet_noise"] * np.sqrt(np.maximum(pet, 0.0)) * _field(rng, place.pet_shape, 0.7)
    floor = np.float32(scan["pet_floor"]) * _field(rng, place.pet_shape, 0.7)
    pet = np.clip(pet + noise + floor, 0.0, SUV_CAP).astype(np.float32)
    return pet, labels, (fractions[0] + fractions[1]) > 0.0


def _oriented(a: np.ndarray, spacing, origin, flip: bool) -> tuple[np.ndarray, np.ndarray]:
    """The array (RAS voxel order) and its affine, with x and y reversed (LPS-like storage) if ``flip``."""
    affine = np.diag([*np.asarray(spacing, dtype=float), 1.0])
    affine[:3, 3] = origin
    if flip:
        a = a[::-1, ::-1]
        for i in (0, 1):
            affine[i, i] = -spacing[i]
            affine[i, 3] = origin[i] + (a.shape[i] - 1) * spacing[i]
    return np.ascontiguousarray(a), affine


def make_headneck_phantom(
    shape: tuple[int, int, int] = (96, 96, 48),
    *,
    spacing: tuple[float, float, float] | None = None,
    seed: int = 0,
    pet_spacing: tuple[float, float, float] | None = None,
) -> dict[str, Any]:
    """Make one head-and-neck PET/CT case in memory (see the module docstring).

    Args:
        shape: CT grid ``(X, Y, Z)``; any positive sizes, odd ones included (32 × 32 × 16 still holds the neck
            and a tumour).
        spacing: CT voxel size (mm); default :data:`CT_SPACING_MM` (2, 2, 3).
        seed: all randomness comes from ``numpy.random.default_rng(seed)``.
        pet_spacing: PET voxel size (mm); default :data:`PET_SPACING_MM` (4, 4, 4).

    Returns:
        ``ct``: float32 HU ``(X, Y, Z)``; ``ct_affine``: 4 × 4 voxel → RAS+ mm; ``pet``: float32 SUV on the PET
        grid; ``pet_affine``; ``labels``: uint8 on the CT grid (0, 1 GTVp, 2 GTVn); ``body``: bool body mask
        (CT grid); ``rater_labels``: uint8 ``(3, X, Y, Z)``, the label maps of three raters who draw the tumour
        border 2 mm inside, on, and 2 mm outside its surface (:data:`RATER_OFFSETS_MM`; the second equals
        ``labels``); ``tissue``: uint8 tissue index per CT voxel (``tissue_names``); ``pet_labels``: uint8 labels
        on the PET grid (tumour fraction ≥ ½); ``gtvp_centre``: world mm (3,); ``gtvn_centres``: world mm
        (n, 3); ``n_nodes``; ``suv_max_tumour``: the highest PET SUV in voxels the tumours touch;
        ``scale``: anatomy size relative to the real one; ``ct_noise_hu``, ``pet_fwhm_mm``, ``pet_noise`` (k);
        ``hot_muscle``: the contracted muscle, or ``None``; ``seed``.

    Raises:
        InputError: a shape or spacing that is not three positive numbers.
    """
    shape, spacing, pet_sp = _check(shape, spacing, pet_spacing)
    scale = _scale(shape, spacing)
    rng = np.random.default_rng(seed)
    anatomy = draw_anatomy(rng, min_lesion_mm=2.8 * float(spacing.max()) / scale)  # nothing grid-dependent first
    place = _place(rng, shape, spacing, pet_sp, scale)
    scan = {"ct_noise": rng.uniform(10.0, 20.0), "fwhm": rng.uniform(5.0, 7.0), "pet_noise": rng.uniform(0.08, 0.25),
            "pet_floor": rng.uniform(0.01, 0.04)}
    ct_render = _render(_grid(shape, spacing, place.ct_origin, place), anatomy, (0, 2), raters=True)
    maps = ct_render["maps"]
    ct = maps[0] + maps[1] * _field(rng, shape, 1.5 / spacing)
    ct += np.float32(scan["ct_noise"]) * _field(rng, shape, 0.5)
    ct = np.clip(ct, -1024.0, 3071.0).astype(np.float32)
    pet, pet_labels, touched = _pet(rng, anatomy, place, pet_sp, scan)
    out: dict[str, Any] = {}
    for key, a in (("ct", ct), ("labels", ct_render["labels"]), ("body", ct_render["body"]),
                   ("tissue", ct_render["tissue"])):
        out[key], out["ct_affine"] = _oriented(a, spacing, place.ct_origin, place.ct_flip)
    out["rater_labels"] = np.stack([_oriented(r, spacing, place.ct_origin, place.ct_flip)[0]
                                    for r in ct_render["raters"]])
    for key, a in (("pet", pet), ("pet_labels", pet_labels)):
        out[key], out["pet_affine"] = _oriented(a, pet_sp, place.pet_origin, place.pet_flip)
    world = [place.anchor + scale * lesion.centre for lesion in anatomy.lesions]
    out.update(tissue_names=TISSUE_NAMES, gtvp_centre=world[0], gtvn_centres=np.array(world[1:]).reshape(-1, 3),
               n_nodes=len(world) - 1, suv_max_tumour=float(pet[touched].max()) if touched.any() else 0.0,
               scale=scale, ct_noise_hu=float(scan["ct_noise"]), pet_fwhm_mm=float(scan["fwhm"]),
               pet_noise=float(scan["pet_noise"]), hot_muscle=anatomy.hot_muscle, seed=seed)
    return out


# ----------------------------------------------------------------------------------------------------------
# Writing cases and datasets (HECKTOR 2022 layout)
# ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HeadNeckPhantomCase:
    """The files of one written case: ``imagesTr/<name>__CT.nii.gz``, ``imagesTr/<name>__PT.nii.gz`` and
    ``labelsTr/<name>.nii.gz``."""

    name: str
    ct: str
    pet: str
    label: str


def _case_paths(out_dir: PathLike, name: str, raters: bool = False) -> dict[str, str]:
    root = os.fspath(out_dir)
    paths = {"ct": os.path.join(root, "imagesTr", f"{name}__CT.nii.gz"),
             "pet": os.path.join(root, "imagesTr", f"{name}__PT.nii.gz"),
             "label": os.path.join(root, "labelsTr", f"{name}.nii.gz")}
    if raters:
        paths.update({f"rater{k + 1}": os.path.join(root, RATERS_FOLDER, f"{name}_rater{k + 1}.nii.gz")
                      for k in range(len(RATER_OFFSETS_MM))})
    return paths


def write_headneck_case(
    out_dir: PathLike,
    name: str,
    *,
    shape: tuple[int, int, int],
    seed: int,
    spacing: tuple[float, float, float] | None = None,
    overwrite: bool = False,
    raters: bool = False,
) -> HeadNeckPhantomCase:
    """Write one case in the HECKTOR 2022 layout: CT as int16 HU, PET as float32 SUV (each with its own affine)
    and the label map as uint8 on the CT grid.

    Args:
        out_dir: dataset folder (``imagesTr``/``labelsTr`` are created if needed).
        name: case name, e.g. ``"HN-PHANTOM-00000"``.
        shape, spacing, seed: see :func:`make_headneck_phantom` (PET at its default spacing).
        overwrite: replace existing files; otherwise any existing output is an error raised before writing.
        raters: also write the three raters' label maps as ``labelsTr_raters/<name>_rater{1,2,3}.nii.gz``.

    Raises:
        OutputExistsError: some output exists and ``overwrite`` is false (nothing is written).
    """
    paths = _case_paths(out_dir, name, raters)
    ensure_absent(paths.values(), overwrite)
    case = make_headneck_phantom(shape, spacing=spacing, seed=seed)
    described = f"medfusion petct head-and-neck phantom, seed {seed}".encode()[:80]
    ct_ref = volume_from_array(case["ct"], case["ct_affine"])
    pet_ref = volume_from_array(case["pet"], case["pet_affine"])
    for ref in (ct_ref, pet_ref):
        ref.header["descrip"] = described
    save_like(case["ct"], ct_ref, paths["ct"], overwrite=overwrite, dtype=np.int16)
    save_like(case["pet"], pet_ref, paths["pet"], overwrite=overwrite, dtype=np.float32)
    save_like(case["labels"], ct_ref, paths["label"], overwrite=overwrite, dtype=np.uint8)
    for k, rater in enumerate(case["rater_labels"] if raters else ()):
        save_like(rater, ct_ref, paths[f"rater{k + 1}"], overwrite=overwrite, dtype=np.uint8)
    return HeadNeckPhantomCase(name=name, ct=paths["ct"], pet=paths["pet"], label=paths["label"])


def write_headneck_dataset(
    out_dir: PathLike,
    n: int,
    *,
    shape: tuple[int, int, int],
    seed0: int = 0,
    prefix: str = "HN-PHANTOM",
    spacing: tuple[float, float, float] | None = None,
    overwrite: bool = False,
    raters: bool = False,
) -> list[HeadNeckPhantomCase]:
    """Write ``n`` cases ``<prefix>-00000``, ``<prefix>-00001``, ... with seeds ``seed0``, ``seed0 + 1``, ...
    (see :func:`write_headneck_case`; ``raters``: also the three raters' label maps).

    Raises:
        InputError: ``n`` is negative.
        OutputExistsError: some output exists and ``overwrite`` is false (checked before writing anything).
    """
    from functools import partial

    return write_seeded_cases(write_headneck_case, partial(_case_paths, raters=raters), out_dir, n, prefix=prefix,
                              seed0=seed0, overwrite=overwrite, shape=shape, spacing=spacing, raters=raters)
