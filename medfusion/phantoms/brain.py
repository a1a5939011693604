"""BraTS-like phantoms: four MR contrasts and a tumour label map on real brain anatomy.

The anatomy is the MNI ICBM152 2009 template (:mod:`.brain_template`) that ships inside nilearn (grey- and white-matter probability
maps and the brain mask, 1 mm; no download). CSF is the brain mask minus grey and white matter, so it holds
the ventricles and the sulcal CSF. Each seed gives a different head and tumour:

1. **Geometry.** The tissue maps are resampled (trilinear) onto the requested grid through a small random
   rotation (±6° per axis), scaling (±8% per axis) and translation (±5 mm). The default field of view is
   BraTS's 240 × 240 × 155 mm, so the brain fills most of the volume with a background margin. The affine
   is RAS+ with the requested spacing and the world origin at the centre of the grid.
2. **Tumour.** One glioma per case, centred in the deep white matter of a random hemisphere: a union of 3
   to 5 randomly oriented ellipsoids (core radius 10–25 mm) with a smoothly perturbed boundary. Labels as
   in BraTS 2023+: 1 necrotic core (NCR) inside, 3 enhancing tumour (ET) as a rim around it, 2 oedema
   (ED/SNFH) around the core, reaching further into white matter than into grey matter and not into CSF.
3. **Structures outside the tumour** (:mod:`.brain_anatomy`), where real contrasts differ from each other:
   venous sinuses (superior sagittal, transverse, straight), deep and 12–18 cortical veins, the large arteries,
   the choroid plexus in the lateral ventricles, the falx and tentorium, periventricular caps. Each seed moves
   every vessel by ≈ 1 mm, scales its radius by ±15% and draws its own cortical veins.
4. **Contrasts** (:mod:`.brain_render`). Each voxel mixes the intensities of :data:`TISSUE_INTENSITIES` by
   its tissue and structure fractions (partial volume); then a smooth multiplicative bias field (a field
   shared by the four contrasts, ≤ ±8%, times one per contrast, ≤ ±4%), a per-contrast gain and Rician noise
   (σ ≈ 2%). The strength of enhancement of vessels, plexus and dura on t1c varies by ±15% per seed. Outside
   the brain every voxel is exactly 0, as in skull-stripped BraTS data.

So t1c differs from t1n outside the tumour in the vessels, choroid plexus, dura and (slightly) the cortex, and
T2w from FLAIR in CSF, plexus and the periventricular caps — differences a model can learn from the other
contrasts (flow voids, CSF) and that no copy of another contrast reproduces.

The same seed gives identical output; the anatomy and tumour parameters are drawn before anything that
depends on the grid, so one seed gives the same head and tumour at every resolution (only the noise
differs). The phantoms are synthetic test data: plausible relative contrasts, not a physical MR simulation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..apps.cwdm.layout import CONTRASTS, SEG
from ..errors import InputError
from .brain_anatomy import Tube, draw_cortical_veins, vessel_atlas
from .brain_render import (
    STRUCTURES, TISSUE_INTENSITIES, bias_field, draw_bias_coefficients, dura_fraction, mix_structures, resample,
    tube_fractions,
)
from .brain_template import brain_anchor, mni152, template_extras, tumour_sites

__all__ = [
    "BRATS_FOV_MM",
    "TISSUE_INTENSITIES",
    "make_brats_phantom",
]

#: BraTS field of view (mm): 240 × 240 × 155 voxels of 1 mm.
BRATS_FOV_MM: tuple[float, float, float] = (240.0, 240.0, 155.0)

# BraTS 2023+ labels.
_NCR, _ED, _ET = 1, 2, 3

# Structures whose t1c enhancement strength varies per seed.
_ENHANCING = ("vein", "artery", "plexus", "dura")


# ----------------------------------------------------------------------------------------------------------
# Random parameters
# ----------------------------------------------------------------------------------------------------------


def _rotation(angles: np.ndarray) -> np.ndarray:
    """3x3 rotation from angles (radians) about the x, y and z axes (applied in that order)."""
    cx, cy, cz = np.cos(angles)
    sx, sy, sz = np.sin(angles)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


@dataclass(frozen=True)
class _Waves:
    """A smooth random field in mm coordinates: a normalised sum of plane waves (std ≈ 1, clipped to ±2)."""

    directions: np.ndarray  # (K, 3) unit vectors
    wavelengths: np.ndarray  # (K,) mm
    phases: np.ndarray  # (K,) radians

    @classmethod
    def draw(cls, rng: np.random.Generator, k: int, wavelength_mm: tuple[float, float]) -> _Waves:
        d = rng.standard_normal((k, 3))
        d /= np.linalg.norm(d, axis=1, keepdims=True)
        return cls(d, rng.uniform(*wavelength_mm, k), rng.uniform(0.0, 2.0 * np.pi, k))

    def __call__(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        """Evaluate on broadcastable world coordinates (mm); returns float32."""
        out = np.zeros(np.broadcast_shapes(x.shape, y.shape, z.shape), dtype=np.float32)
        for (dx, dy, dz), wl, ph in zip(self.directions, self.wavelengths, self.phases):
            k = 2.0 * np.pi / wl
            out += np.cos((k * dx) * x + (k * dy) * y + (k * dz) * z + ph, dtype=np.float32)
        out *= np.float32(np.sqrt(2.0 / len(self.phases)))
        return np.clip(out, -2.0, 2.0, out=out)


@dataclass(frozen=True)
class _Tumour:
    """Tumour shape in world mm: ellipsoid lobes, rim thickness, oedema reach and boundary noise."""

    centres: np.ndarray  # (L, 3) mm
    rotations: np.ndarray  # (L, 3, 3)
    axes: np.ndarray  # (L, 3) semi-axes, mm
    rim_mm: float  # enhancing rim thickness
    oedema_mm: float  # oedema reach beyond the core in pure white matter
    core_noise_mm: float
    oedema_noise_mm: float
    core_waves: _Waves
    oedema_waves: _Waves

    def reach_mm(self) -> float:
        """Radius (mm) around ``centres[0]`` outside which no tumour label can occur."""
        lobe = np.linalg.norm(self.centres - self.centres[0], axis=1) + self.axes.max(axis=1)
        return float(lobe.max() + 2.0 * self.core_noise_mm + self.oedema_mm + 2.0 * self.oedema_noise_mm)


def _draw_tumour(rng: np.random.Generator, centre: np.ndarray) -> _Tumour:
    radius = rng.uniform(10.0, 25.0)
    n_extra = int(rng.integers(2, 5))
    centres = [centre]
    axes = [radius * rng.uniform(0.8, 1.2, 3)]
    for _ in range(n_extra):
        direction = rng.standard_normal(3)
        direction /= np.linalg.norm(direction)
        centres.append(centre + direction * radius * rng.uniform(0.3, 0.7))
        axes.append(radius * rng.uniform(0.45, 0.8) * rng.uniform(0.75, 1.25, 3))
    rotations = [_rotation(rng.uniform(-np.pi, np.pi, 3)) for _ in centres]
    return _Tumour(
        centres=np.array(centres),
        rotations=np.array(rotations),
        axes=np.array(axes),
        rim_mm=float(np.clip(radius * rng.uniform(0.2, 0.4), 3.0, 7.0)),
        oedema_mm=float(rng.uniform(10.0, 25.0)),
        core_noise_mm=0.12 * radius,
        oedema_noise_mm=float(rng.uniform(3.0, 6.0)),
        core_waves=_Waves.draw(rng, 12, (15.0, 40.0)),
        oedema_waves=_Waves.draw(rng, 12, (20.0, 60.0)),
    )


def _default_spacing(shape: tuple[int, int, int]) -> tuple[float, float, float]:
    return tuple(fov / n for fov, n in zip(BRATS_FOV_MM, shape))  # type: ignore[return-value]


def _check_shape_spacing(shape, spacing) -> tuple[tuple[int, int, int], tuple[float, float, float]]:
    shape_t = tuple(int(n) for n in shape)
    if len(shape_t) != 3 or min(shape_t) < 1 or any(n != s for n, s in zip(shape_t, shape)):
        raise InputError(f"phantom shape must be three positive integers, got {tuple(shape)}")
    spacing_t = _default_spacing(shape_t) if spacing is None else tuple(float(s) for s in spacing)
    if len(spacing_t) != 3 or not all(np.isfinite(s) and s > 0 for s in spacing_t):
        raise InputError(f"phantom spacing must be three positive numbers (mm), got {spacing}")
    return shape_t, spacing_t  # type: ignore[return-value]


# ----------------------------------------------------------------------------------------------------------
# The phantom
# ----------------------------------------------------------------------------------------------------------


def _tumour_fractions(
    tumour: _Tumour, x: np.ndarray, y: np.ndarray, z: np.ndarray, wm_share: np.ndarray, csf_share: np.ndarray,
    blur_mm: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fractions of necrosis, enhancing tumour and oedema in each voxel (partial volume over ``blur_mm``).

    ``x, y, z`` are broadcastable world coordinates (mm) of a box of voxels; ``wm_share``/``csf_share`` are
    the white-matter and CSF shares of the brain tissue there. Returns three float32 arrays of the box shape.
    """
    # Distance (mm, approximate) outside the union of the ellipsoid lobes; negative inside.
    dist = None
    for centre, rot, ax in zip(tumour.centres, tumour.rotations, tumour.axes):
        dx, dy, dz = x - centre[0], y - centre[1], z - centre[2]
        r2 = sum(((rot[0, j] * dx + rot[1, j] * dy + rot[2, j] * dz) / ax[j]) ** 2 for j in range(3))
        lobe = (np.sqrt(r2) - 1.0) * ax.mean()
        dist = lobe if dist is None else np.minimum(dist, lobe)
    dist = dist.astype(np.float32) + tumour.core_noise_mm * tumour.core_waves(x, y, z)
    reach = tumour.oedema_mm * (0.25 + 0.75 * wm_share) + tumour.oedema_noise_mm * tumour.oedema_waves(x, y, z)

    def inside(edge):  # soft indicator of dist < edge
        return 0.5 * (1.0 + np.tanh((edge - dist) / blur_mm))

    core = inside(0.0)
    ncr = inside(-tumour.rim_mm)
    et = np.clip(core - ncr, 0.0, 1.0)
    ed = np.clip(inside(reach) - core, 0.0, 1.0) * np.clip(1.0 - 2.0 * csf_share, 0.0, 1.0)
    return ncr.astype(np.float32), et.astype(np.float32), ed.astype(np.float32)


@dataclass(frozen=True)
class _Case:
    """Everything random about one case that does not depend on the grid (drawn in this order)."""

    to_output_mm: np.ndarray  # (4, 4): template (MNI) mm -> output mm
    tumour: _Tumour
    gains: np.ndarray  # per contrast
    sigma: float  # Rician noise
    tubes: tuple[Tube, ...]  # vessels and choroid plexus, MNI mm
    enhancement: dict[str, float]  # t1c enhancement strength per structure
    bias: np.ndarray  # (1 + len(CONTRASTS), 9) Legendre coefficients: shared field, then one per contrast


def _draw_case(rng: np.random.Generator) -> _Case:
    rotation = _rotation(np.deg2rad(rng.uniform(-6.0, 6.0, 3)))
    scale = rng.uniform(0.92, 1.08, 3)
    shift = rng.uniform(-5.0, 5.0, 3)
    sites = tumour_sites()[int(rng.integers(2))]
    site_mni = sites[int(rng.integers(len(sites)))]
    anchor = brain_anchor()
    # template (MNI) mm -> output mm:  x_out = R S (x_mni - anchor) + shift
    linear = rotation @ np.diag(scale)
    to_output_mm = np.eye(4)
    to_output_mm[:3, :3] = linear
    to_output_mm[:3, 3] = shift - linear @ anchor
    tumour = _draw_tumour(rng, to_output_mm[:3, :3] @ site_mni + to_output_mm[:3, 3])
    gains = rng.uniform(0.9, 1.05, len(CONTRASTS))
    sigma = float(rng.uniform(0.015, 0.025))
    tubes = tuple(t.moved(rng.normal(0.0, 1.0, 3), rng.uniform(0.85, 1.15)) for t in vessel_atlas())
    tubes += tuple(draw_cortical_veins(rng))
    enhancement = {k: float(v) for k, v in zip(_ENHANCING, rng.uniform(0.85, 1.15, len(_ENHANCING)))}
    bias = draw_bias_coefficients(rng, len(CONTRASTS))
    return _Case(to_output_mm, tumour, gains, sigma, tubes, enhancement, bias)


def _anatomy_on_grid(case: _Case, shape: tuple[int, int, int], affine: np.ndarray) -> dict[str, np.ndarray]:
    """Tissue fractions ``gm, wm, csf`` (their sum ``total`` is the brain fraction), the lateral ventricles'
    CSF fraction, and each structure's share of the brain tissue of every voxel, on the output grid."""
    vox_to_mni = np.linalg.inv(case.to_output_mm) @ affine
    spacing = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
    level = 1
    while level < 8 and 2 * level <= spacing.min():
        level *= 2
    gm, wm, csf = resample(mni152(level), shape, vox_to_mni)
    ventricles, caps = resample(template_extras(level), shape, vox_to_mni)
    total = gm + wm + csf
    per_total = 1.0 / np.maximum(total, np.float32(1e-6))
    ventricle_share = np.clip(ventricles * per_total, 0.0, 1.0)
    voxel_mm = float(np.prod(spacing) ** (1.0 / 3.0))
    maps = {"gm": gm, "wm": wm, "csf": csf, "total": total, "ventricles": ventricles,
            "cap": np.clip(caps * per_total, 0.0, 1.0),
            "dura": dura_fraction(shape, vox_to_mni, voxel_mm, np.clip(csf * per_total, 0.0, 1.0), ventricle_share)}
    tubes = tube_fractions(case.tubes, shape, vox_to_mni, voxel_mm)
    maps["plexus"] = tubes["plexus"] * ventricle_share  # the plexus lies inside the ventricles
    maps["artery"], maps["vein"] = tubes["artery"], tubes["vein"]
    return maps


def make_brats_phantom(
    shape: tuple[int, int, int] = (96, 96, 64),
    *,
    spacing: tuple[float, float, float] | None = None,
    seed: int = 0,
    return_tissues: bool = False,
) -> dict[str, np.ndarray]:
    """Make one BraTS-like case in memory.

    Args:
        shape: grid size ``(X, Y, Z)``; any positive sizes (odd included).
        spacing: voxel size in mm; default ``240/X, 240/Y, 155/Z`` (BraTS's field of view).
        seed: all randomness comes from ``numpy.random.default_rng(seed)``.
        return_tissues: also return the tumour-free tissue fractions ``"gm"``, ``"wm"``, ``"csf"``, the lateral
            ventricles' CSF fraction ``"ventricles"``, and the share of each voxel's brain tissue taken by each
            structure outside the tumour: ``"cap"`` (periventricular caps), ``"dura"``, ``"plexus"``,
            ``"artery"``, ``"vein"`` (all ``float32 (X, Y, Z)``).

    Returns:
        ``"t1n"``, ``"t1c"``, ``"t2w"``, ``"t2f"``: ``float32 (X, Y, Z)`` intensities, about [0, 1]
        (brightest tissue ≈ 1), exactly 0 outside the brain; ``"seg"``: ``uint8 (X, Y, Z)`` labels
        0 background/healthy, 1 NCR, 2 oedema, 3 ET; ``"affine"``: ``(4, 4)`` float64 voxel → RAS+ mm.
        On grids too coarse to resolve a tumour class, the voxel with the largest share of that class
        gets its label, so labels 1, 2 and 3 are all present whenever the tumour lies in the field of view.
    """
    shape, spacing = _check_shape_spacing(shape, spacing)
    rng = np.random.default_rng(seed)
    case = _draw_case(rng)  # everything random that does not depend on the grid

    # --- output grid: RAS+, centre of the grid at the world origin ---
    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = -(np.array(shape) - 1) / 2.0 * np.array(spacing)
    axes_mm = [(affine[i, 3] + spacing[i] * np.arange(shape[i])).astype(np.float32) for i in range(3)]

    maps = _anatomy_on_grid(case, shape, affine)
    brain = maps["total"] >= 0.5
    seg, tumour = _tumour_labels(case.tumour, affine, axes_mm, spacing, maps, brain)
    inside = np.flatnonzero(brain)
    shared = bias_field(case.bias[0], *axes_mm, BRATS_FOV_MM).ravel()[inside]
    out = {}
    for i, contrast in enumerate(CONTRASTS):
        field = shared * bias_field(case.bias[1 + i], *axes_mm, BRATS_FOV_MM).ravel()[inside]
        out[contrast] = _contrast(contrast, case, maps, tumour, inside, field * np.float32(case.gains[i]), rng)
    out[SEG] = seg
    out["affine"] = affine
    if return_tissues:
        out.update({k: maps[k] for k in ("gm", "wm", "csf", "ventricles", *STRUCTURES)})
    return out


def _tumour_labels(tumour: _Tumour, affine, axes_mm, spacing, maps, brain):
    """The label map, and ``(box, healthy, ncr, et, ed)`` fractions in the tumour's box (``None`` if the tumour
    is outside the grid); ``axes_mm``: the grid's x, y, z coordinates (mm)."""
    seg = np.zeros(brain.shape, dtype=np.uint8)
    box = _tumour_box(tumour, affine, brain.shape)
    if box is None:
        return seg, None
    bx, by, bz = box
    x, y, z = axes_mm[0][bx, None, None], axes_mm[1][None, by, None], axes_mm[2][None, None, bz]
    share = 1.0 / np.maximum(maps["total"][box], 1e-6)
    ncr, et, ed = _tumour_fractions(tumour, x, y, z, maps["wm"][box] * share, maps["csf"][box] * share,
                                    blur_mm=0.3 * float(np.mean(spacing)))
    healthy = np.clip(1.0 - ncr - et - ed, 0.0, 1.0)
    classes = np.argmax(np.stack([healthy, ncr, ed, et]), axis=0)  # 0 healthy, then BraTS label order
    labels = np.array([0, _NCR, _ED, _ET], dtype=np.uint8)[classes]
    labels[~brain[box]] = 0
    _ensure_labels(labels, brain[box], {_NCR: ncr, _ED: ed, _ET: et})
    seg[box] = labels
    return seg, (box, healthy, ncr, et, ed)


def _contrast(contrast: str, case: _Case, maps, tumour, inside: np.ndarray, field: np.ndarray, rng) -> np.ndarray:
    """One contrast: tissues and structures mixed by their fractions, the tumour, times ``field`` (bias × gain
    at the brain's voxels ``inside``), Rician noise; exactly 0 outside the brain."""
    v = dict(TISSUE_INTENSITIES[contrast])
    if contrast == "t1c":  # per-seed strength of enhancement (contrast dose and timing)
        base = TISSUE_INTENSITIES["t1n"]
        v.update({k: base[k] + case.enhancement[k] * (v[k] - base[k]) for k in _ENHANCING})
    image = maps["gm"] * np.float32(v["gm"]) + maps["wm"] * np.float32(v["wm"]) + maps["csf"] * np.float32(v["csf"])
    image = mix_structures(image, maps["total"], maps, v)
    if tumour is not None:
        box, healthy, ncr, et, ed = tumour
        image[box] = healthy * image[box] + maps["total"][box] * (
            ncr * np.float32(v["ncr"]) + et * np.float32(v["et"]) + ed * np.float32(v["ed"]))
    signal = image.ravel()[inside] * field
    # Rician noise: magnitude of a complex signal with Gaussian noise in both channels.
    sigma = np.float32(case.sigma)
    real = signal + sigma * rng.standard_normal(signal.size, dtype=np.float32)
    imag = sigma * rng.standard_normal(signal.size, dtype=np.float32)
    result = np.zeros(image.shape, dtype=np.float32)
    result.ravel()[inside] = np.sqrt(real * real + imag * imag)
    return result


def _tumour_box(tumour: _Tumour, affine: np.ndarray, shape: tuple[int, int, int]):
    """Index box (tuple of slices) of the grid that can hold tumour labels, or ``None`` if outside."""
    centre_vox = (tumour.centres[0] - affine[:3, 3]) / np.diag(affine)[:3]
    half_vox = tumour.reach_mm() / np.diag(affine)[:3] + 1.0
    lo = np.maximum(np.floor(centre_vox - half_vox).astype(int), 0)
    hi = np.minimum(np.ceil(centre_vox + half_vox).astype(int) + 1, shape)
    if np.any(hi <= lo):
        return None
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))


def _ensure_labels(labels: np.ndarray, brain: np.ndarray, fractions: dict[int, np.ndarray]) -> None:
    """Give a missing label (a class thinner than the voxels) to the brain voxel with its largest share."""
    taken = np.zeros(labels.shape, dtype=bool)
    for label in (_NCR, _ET, _ED):
        if np.any(labels == label):
            continue
        score = np.where(brain & ~taken, fractions[label], -1.0)
        best = np.unravel_index(int(np.argmax(score)), labels.shape)
        if score[best] <= 0.0:
            continue
        labels[best] = label
        taken[best] = True
