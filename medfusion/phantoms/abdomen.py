"""Seeded abdomen/thorax phantoms for seg2med: a TotalSegmentator label map with the CT and MR it came from.

seg2med learns the way from a label map (and its "prior image", one value per label) to a real image. A phantom
gives both sides with a known truth: ``labels`` (TotalSegmentator ``total`` values), ``tissues`` (its
``tissue_types``: fat and muscle) and ``ct``, ``t1``, ``t2`` images that hold what a real scan has beyond the
prior, so the prior is a baseline a model can beat.

1. **Anatomy** (:mod:`.abdomen_anatomy`; shapes in :mod:`medfusion.phantoms.shapes` and :mod:`.abdomen_geometry`): from
   the lung bases and the bottom of the heart down to the pelvic inlet — body outline with subcutaneous fat and a
   muscle wall, spine (vertebral bodies, arches and processes labelled by level, discs, canal, cord), autochthon, iliopsoas,
   ribs and costal cartilages, sternum, iliac wings, lung lobes, heart, oesophagus, aorta, IVC, iliac
   vessels, liver, spleen, kidneys, adrenals, gallbladder, stomach, duodenum, pancreas, portal/splenic vein,
   small bowel and colon. Sizes, positions and shapes vary per seed; the patient lies a few mm off centre.
2. **Partial volume.** Each structure is painted over the earlier ones with its voxel fraction, a ramp one
   voxel wide across its surface; a voxel takes the label of the last structure covering its centre.
3. **CT** (HU): each tissue's value of ``tissues.json`` (``marrow``, ``csf``, ``fluid``, ``stool`` and the
   renal ``medulla`` are :data:`EXTRA_TISSUES`), so the unlabelled body is subcutaneous and visceral fat
   (−100/−90) and muscle (55), not the prior's 0 HU; vertebrae, ribs, sternum and iliac wings are marrow
   (200) in a cortical shell (700); the liver holds hepatic and portal vessels, the kidneys a medulla, the
   bowel fluid, stool and gas (−1000, still labelled bowel). A smooth texture (a few HU in organs, more in
   fat, marrow, lung and stool, :data:`TEXTURE_HU`) and Gaussian noise (σ 10–15 HU) come on top; air is
   −1000 HU.
4. **MR** (``t1``: the in-phase VIBE, ``t2``: spin echo of ``tissues.json``): each tissue's signal from its
   proton density, T1, T2 and fat fraction by :func:`~.tissues.mr_signal`, mixed by the voxel fractions (a
   voxel's signal is the sum of its compartments' signals), times the same texture (≈ texture HU / 400,
   relative), a smooth multiplicative bias field (≈ ±15%) per sequence and Rician noise (σ 1–2% of the
   fat signal). Outside the body there is only noise.

The body mask is the inside of the skin; thresholding the CT at −500 HU, keeping the largest component and
filling holes slice by slice gives it back (the lungs touch the top of the volume, so a 3D fill would leave
them out). The grid is RAS+ (x to the patient's right, y anterior, z superior) with the world origin at its
centre; the default spacing makes a 400 × 400 × 300 mm field of view for any shape. The same seed gives the
same arrays; the anatomy is drawn before anything that depends on the grid, so one seed gives the same body
at every resolution (only the noise and texture differ).
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from typing import Union

import numpy as np
from scipy import ndimage

from ..apps.seg2med.tissues import Tissue, class_names, mr_signal, tissue_name, tissue_table
from ..errors import InputError
from ..io import ensure_absent, save_like, volume_from_array
from .abdomen_anatomy import draw_anatomy
from .abdomen_frame import Anatomy, Part
from .abdomen_geometry import Layer
from .seeded import write_seeded_cases
from .shapes import Grid

__all__ = ["ABDOMEN_FOV_MM", "EXTRA_TISSUES", "TEXTURE_HU", "AbdomenPhantomCase", "make_abdomen_phantom",
           "write_abdomen_case", "write_abdomen_dataset"]

PathLike = Union[str, "os.PathLike[str]"]

#: default field of view (mm): 400 × 400 in-plane, 300 mm from the heart and lung bases to the pelvic inlet
ABDOMEN_FOV_MM: tuple[float, float, float] = (400.0, 400.0, 300.0)

#: tissues of unlabelled structures that ``tissues.json`` does not list (medfusion's choices, 1.5 T)
EXTRA_TISSUES: dict[str, Tissue] = {
    # cancellous bone: vertebral marrow MR values of tissues.json, HU between marrow fat and cortex
    "marrow": Tissue("marrow", hu=200.0, pd=0.6, t1_ms=549.0, t2_ms=49.0, fat_fraction=0.5),
    "csf": Tissue("csf", hu=5.0, pd=1.0, t1_ms=4000.0, t2_ms=2000.0, fat_fraction=0.0),
    "fluid": Tissue("fluid", hu=10.0, pd=0.95, t1_ms=2500.0, t2_ms=500.0, fat_fraction=0.0),  # bowel/gastric
    "stool": Tissue("stool", hu=20.0, pd=0.6, t1_ms=800.0, t2_ms=60.0, fat_fraction=0.05),
    # renal medulla (de Bazelaire et al. 2004, 1.5 T); tissues.json's kidney stands for the cortex
    "medulla": Tissue("medulla", hu=30.0, pd=0.9, t1_ms=1412.0, t2_ms=85.0, fat_fraction=0.0),
}

#: amplitude (HU; MR: this / 400, relative) of the smooth texture by tissue; others get 4 HU
TEXTURE_HU: dict[str, float] = {"subcutaneous_fat": 8.0, "torso_fat": 10.0, "skeletal_muscle": 5.0, "muscle": 5.0,
                                "marrow": 30.0, "cortical_bone": 40.0, "lung": 40.0, "stool": 60.0, "air": 0.0,
                                "airway": 0.0, "fluid": 3.0, "csf": 2.0, "blood": 3.0, "gallbladder": 2.0}

FILES = ("mask", "body", "tissues", "ct", "t1", "t2")
#: TotalSegmentator ``tissue_types`` labels of the phantom's tissues (its labelled muscles count as skeletal muscle)
TISSUE_LABELS = {"subcutaneous_fat": 1, "torso_fat": 2, "skeletal_muscle": 3, "muscle": 3}
_SEQUENCES = ("t1", "t2")
_CLIP_MM = 1.0  # every structure stays this far inside the skin


@functools.lru_cache(maxsize=None)
def _values(tissue: str) -> np.ndarray:
    """(HU, t1 signal, t2 signal, texture HU) of a tissue, float32."""
    t = EXTRA_TISSUES.get(tissue) or tissue_table().tissues[tissue]
    signals = [float(mr_signal(t.pd, t.t1_ms, t.t2_ms, t.fat_fraction, s)) for s in _SEQUENCES]
    return np.array([t.hu, *signals, TEXTURE_HU.get(tissue, 4.0)], dtype=np.float32)


def _tissue(part: Part) -> str:
    if part.tissue is not None:
        return part.tissue
    return tissue_name(class_names("total")[part.label])


def _paint(grid: Grid, maps: np.ndarray, labels: np.ndarray, tissues: np.ndarray, part: Part,
           clip: Layer | None) -> None:
    """Paint one part over ``maps`` (HU, t1, t2, texture) with its voxel fractions, and over ``labels`` and
    ``tissues`` (:data:`TISSUE_LABELS`, 0 for other tissues) where it covers the voxel centre."""
    box = grid.box(part.shape.lo, part.shape.hi)
    if box is None:
        return
    d = part.shape.sdf(grid, box)
    if clip is not None:
        np.maximum(d, clip.sdf(grid, box), out=d)
    frac = np.clip(0.5 - d / np.float32(grid.h), 0.0, 1.0)
    if not frac.any():
        return
    value = _values(_tissue(part)).reshape(4, 1, 1, 1)
    if part.shell is not None:  # the share of the voxel within the shell's thickness under the surface
        share = np.clip(0.5 + (d + np.float32(part.shell[0])) / np.float32(grid.h), 0.0, 1.0)
        value = value + share * (_values(part.shell[1]).reshape(4, 1, 1, 1) - value)
    view = maps[(slice(None), *box)]
    view += frac * (value - view)
    inside = d <= 0.0
    if part.label is not None:
        labels[box][inside] = part.label
    tissues[box][inside] = TISSUE_LABELS.get(_tissue(part), 0)


def _render(grid: Grid, anatomy: Anatomy) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Noise-free maps ``(4, X, Y, Z)`` (HU, t1 signal, t2 signal, texture amplitude), the label map and the tissue
    map."""
    maps = np.empty((4, *grid.shape), dtype=np.float32)
    maps[:] = _values("air").reshape(4, 1, 1, 1)
    labels = np.zeros(grid.shape, dtype=np.uint8)
    tissues = np.zeros(grid.shape, dtype=np.uint8)
    clip = Layer(anatomy.body, 0.0, _CLIP_MM)
    for i, part in enumerate(anatomy.parts):
        _paint(grid, maps, labels, tissues, part, None if i == 0 else clip)
    return maps, labels, tissues


def _interpolation(axis: np.ndarray, cell_mm: float) -> np.ndarray:
    """Matrix (voxels × nodes) of linear interpolation from nodes ``cell_mm`` apart to the voxels of ``axis``."""
    pos = (axis - axis[0]) / cell_mm
    nodes = int(np.floor(pos[-1])) + 2
    i0 = np.minimum(np.floor(pos).astype(int), nodes - 2)
    frac = (pos - i0).astype(np.float32)
    w = np.zeros((len(axis), nodes), dtype=np.float32)
    w[np.arange(len(axis)), i0] = 1.0 - frac
    w[np.arange(len(axis)), i0 + 1] = frac
    return w


def _smooth_field(rng: np.random.Generator, grid: Grid, cell_mm: float = 10.0) -> np.ndarray:
    """A smooth random field (std ≈ 1, correlated over ≈ 2 cells): blurred white noise on nodes ``cell_mm``
    apart, linearly interpolated to the voxels (float32)."""
    w = [_interpolation(ax, cell_mm) for ax in grid.axes]
    nodes = ndimage.gaussian_filter(rng.standard_normal(tuple(m.shape[1] for m in w)), 1.0, mode="wrap")
    nodes = (nodes / max(float(nodes.std()), 1e-6)).astype(np.float32)
    out = np.tensordot(w[0], nodes, axes=(1, 0))  # (X, ny, nz)
    out = np.tensordot(out, w[1], axes=(1, 1))  # (X, nz, Y)
    return np.tensordot(out, w[2], axes=(1, 1))  # (X, Y, Z)


def _bias_field(coef: np.ndarray, grid: Grid) -> np.ndarray:
    """exp of a quadratic polynomial in coordinates scaled by 200 mm (``coef``: 9 numbers)."""
    x, y, z = (c / np.float32(200.0) for c in grid.coords(grid.full))
    terms = (x, y, z, x * x, y * y, z * z, x * y, x * z, y * z)
    return np.exp(sum(np.float32(c) * t for c, t in zip(coef, terms))).astype(np.float32)


def _images(grid: Grid, maps: np.ndarray, rng: np.random.Generator, noise: dict) -> dict[str, np.ndarray]:
    """CT, t1 and t2 from the noise-free maps: texture, bias fields and noise."""
    texture = _smooth_field(rng, grid)
    ct = maps[0] + maps[3] * texture
    ct += np.float32(noise["ct_sigma"]) * rng.standard_normal(grid.shape, dtype=np.float32)
    out = {"ct": np.maximum(ct, np.float32(-1024.0))}
    relative = np.maximum(1.0 + maps[3] * texture / np.float32(400.0), np.float32(0.2))
    for i, seq in enumerate(_SEQUENCES):
        signal = maps[1 + i] * relative * _bias_field(noise["bias"][i], grid)
        sigma = np.float32(noise["mr"][i] * _values("subcutaneous_fat")[1 + i])
        real = signal + sigma * rng.standard_normal(grid.shape, dtype=np.float32)
        imag = sigma * rng.standard_normal(grid.shape, dtype=np.float32)
        out[seq] = np.sqrt(real * real + imag * imag)
    return out


def _check_shape_spacing(shape, spacing) -> tuple[tuple[int, int, int], tuple[float, float, float]]:
    shape_t = tuple(int(n) for n in shape)
    if len(shape_t) != 3 or min(shape_t) < 1 or any(n != s for n, s in zip(shape_t, shape)):
        raise InputError(f"phantom shape must be three positive integers, got {tuple(shape)}")
    if spacing is None:
        spacing_t = tuple(fov / n for fov, n in zip(ABDOMEN_FOV_MM, shape_t))
    else:
        spacing_t = tuple(float(s) for s in spacing)
    if len(spacing_t) != 3 or not all(np.isfinite(s) and s > 0 for s in spacing_t):
        raise InputError(f"phantom spacing must be three positive numbers (mm), got {spacing}")
    return shape_t, spacing_t  # type: ignore[return-value]


def make_abdomen_phantom(
    shape: tuple[int, int, int] = (96, 96, 64),
    *,
    spacing: tuple[float, float, float] | None = None,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Make one abdomen/thorax case in memory (see the module docstring).

    Args:
        shape: grid size ``(X, Y, Z)``; any positive sizes, odd ones included (16 or more per axis to see
            much anatomy).
        spacing: voxel size (mm), any anisotropy; default ``400/X, 400/Y, 300/Z`` (:data:`ABDOMEN_FOV_MM`).
        seed: all randomness comes from ``numpy.random.default_rng(seed)``.

    Returns:
        ``"labels"``: ``uint8 (X, Y, Z)`` TotalSegmentator ``total`` label values (0 outside every class);
        ``"body"``: ``bool`` body mask; ``"tissues"``: ``uint8`` TotalSegmentator ``tissue_types`` labels
        (:data:`TISSUE_LABELS`: 1 subcutaneous fat, 2 torso fat, 3 skeletal muscle); ``"ct"``: ``float32`` HU
        (≥ −1024); ``"t1"``, ``"t2"``: ``float32`` MR signal in the units of :func:`~.tissues.mr_signal`; ``"affine"``: ``(4, 4)`` voxel → RAS+ mm, the
        grid's centre at the origin.
    """
    shape, spacing = _check_shape_spacing(shape, spacing)
    rng = np.random.default_rng(seed)
    anatomy = draw_anatomy(rng)  # everything random that does not depend on the grid comes first
    noise = {"ct_sigma": rng.uniform(10.0, 15.0), "mr": rng.uniform(0.01, 0.02, 2),
             "bias": rng.uniform(-0.08, 0.08, (2, 9))}
    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = -(np.array(shape) - 1) / 2.0 * np.array(spacing)
    grid = Grid(shape, spacing, affine[:3, 3], anatomy.shift)
    maps, labels, tissues = _render(grid, anatomy)
    body = Layer(anatomy.body, 0.0).sdf(grid, grid.full) <= 0.0
    return {"labels": labels, "body": body, "tissues": tissues, **_images(grid, maps, rng, noise), "affine": affine}


# ----------------------------------------------------------------------------------------------------------
# Writing cases and datasets
# ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AbdomenPhantomCase:
    """The files of one written phantom case."""

    name: str
    folder: str
    mask: str
    body: str
    tissues: str
    ct: str
    t1: str
    t2: str


def _case_paths(out_dir: PathLike, name: str) -> dict[str, str]:
    folder = os.path.join(os.fspath(out_dir), name)
    return {k: os.path.join(folder, f"{k}.nii.gz") for k in FILES}


def write_abdomen_case(
    out_dir: PathLike,
    name: str,
    *,
    shape: tuple[int, int, int],
    seed: int,
    spacing: tuple[float, float, float] | None = None,
    overwrite: bool = False,
) -> AbdomenPhantomCase:
    """Write one phantom as ``<out_dir>/<name>/{mask,body,tissues,ct,t1,t2}.nii.gz``.

    ``mask`` (the ``total`` label map), ``body`` and ``tissues`` (the ``tissue_types`` map) are uint8, ``ct`` int16
    HU (as scanners store CT), ``t1``/``t2`` int16 scaled by NIfTI ``scl_slope`` (steps of range/65535, far below the phantom's noise; files about a third
    of float32's), all with the phantom's RAS+ affine.

    Args:
        out_dir: dataset folder (created if needed).
        name: case name, e.g. ``"ABD-PHANTOM-00000"``.
        shape, spacing, seed: see :func:`make_abdomen_phantom`.
        overwrite: replace existing files; otherwise any existing output is an error raised before writing.
    """
    paths = _case_paths(out_dir, name)
    ensure_absent(paths.values(), overwrite)
    phantom = make_abdomen_phantom(shape, spacing=spacing, seed=seed)
    reference = volume_from_array(phantom["ct"], phantom["affine"])
    reference.header["descrip"] = f"medfusion seg2med abdomen phantom, seed {seed}".encode()[:80]
    arrays = {"mask": phantom["labels"], "body": phantom["body"], "tissues": phantom["tissues"], "ct": phantom["ct"],
              "t1": phantom["t1"], "t2": phantom["t2"]}
    for kind, path in paths.items():
        dtype = np.uint8 if kind in ("mask", "body", "tissues") else np.int16
        save_like(arrays[kind], reference, path, overwrite=overwrite, dtype=dtype, scaled=kind in ("t1", "t2"))
    return AbdomenPhantomCase(name=name, folder=os.path.join(os.fspath(out_dir), name), **paths)


def write_abdomen_dataset(
    out_dir: PathLike,
    n: int,
    *,
    shape: tuple[int, int, int],
    seed0: int = 0,
    prefix: str = "ABD-PHANTOM",
    spacing: tuple[float, float, float] | None = None,
    overwrite: bool = False,
) -> list[AbdomenPhantomCase]:
    """Write ``n`` phantom cases ``<prefix>-00000``, ``<prefix>-00001``, ... with seeds ``seed0``,
    ``seed0 + 1``, ... (see :func:`write_abdomen_case`).

    Raises:
        InputError: ``n`` is negative.
        OutputExistsError: some output exists and ``overwrite`` is false (checked before writing anything).
    """
    return write_seeded_cases(write_abdomen_case, _case_paths, out_dir, n, prefix=prefix, seed0=seed0,
                              overwrite=overwrite, shape=shape, spacing=spacing)
