"""Hard cases for the SynthRAD2023 and HECKTOR 2022 protocols, written as NIfTI files by a seeded generator.

``tests/metrics/test_organiser_values.py`` scores them with medfusion and compares with the values the organisers'
own code gives for the same files, which ``tests/data/organiser_values.json`` holds;
``python tests/metrics/organiser_values.py`` computes those values from a checkout of the organisers' repositories
(their code is run there, not copied here).
Keep the generator fixed: changing it invalidates the stored values.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

SEED = 2023


def _oblique(spacing, angle: float = 0.0, origin=(0.0, 0.0, 0.0)) -> np.ndarray:
    """A float32 affine: a rotation by ``angle`` about the last axis, then ``spacing`` (mm)."""
    c, s = np.cos(angle), np.sin(angle)
    affine = np.eye(4)
    affine[:3, :3] = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]) @ np.diag(spacing)
    affine[:3, 3] = origin
    return affine.astype(np.float32)


def _save(path: Path, data, affine, dtype=np.float32) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.asarray(data, dtype=dtype), affine), str(path))


def _ball(shape, centre, radius, spacing=(1.0, 1.0, 1.0)) -> np.ndarray:
    grids = np.meshgrid(*[(np.arange(n) - c) * s for n, c, s in zip(shape, centre, spacing)], indexing="ij")
    return sum(g * g for g in grids) <= radius * radius


# ----------------------------------------------------------------------------------------------- SynthRAD
def _ct_pair(rng, shape):
    """A CT-like reference (air, body, bone above 3000 HU in places) and a noisy, biased prediction (some values
    below −1024)."""
    body = _ball(shape, [n / 2 for n in shape], min(shape) * 0.42)
    ref = np.where(body, 40.0 + 30.0 * rng.standard_normal(shape), -1000.0 + 5.0 * rng.standard_normal(shape))
    bone = _ball(shape, [n / 2 + 2 for n in shape], min(shape) * 0.12)
    ref[bone] = 1500.0 + 1200.0 * rng.random(int(bone.sum()))  # up to 2700 HU
    ref[_ball(shape, [n / 2 - 3 for n in shape], 2.5)] = 3400.0  # metal, beyond the window
    pred = ref + 60.0 * rng.standard_normal(shape) + 15.0
    pred[~body] = -1100.0 + 40.0 * rng.standard_normal(int((~body).sum()))  # below the window
    return body, ref, pred


def synthrad_cases(root: Path) -> dict[str, dict]:
    """Write the SynthRAD cases under ``root``; returns case name → {"pred", "ref", "mask" (or None), "window"}."""
    rng = np.random.default_rng(SEED)
    cases = {}
    specs = {  # name: (shape, affine, mask rule, window)
        "ct_body_mask": ((24, 22, 20), _oblique((0.9, 0.9, 2.5), 0.2), "body", (-1024.0, 3000.0)),
        "ct_tight_mask": ((20, 26, 18), _oblique((1.0, 1.0, 1.0)), "tight", (-1024.0, 3000.0)),
        "ct_mask_at_border": ((16, 16, 16), _oblique((1.2, 0.8, 3.0), -0.4), "border", (-1024.0, 3000.0)),
        "ct_no_mask": ((18, 18, 14), _oblique((1.0, 1.0, 2.0)), None, (-1024.0, 3000.0)),
        "mr_window": ((20, 20, 16), _oblique((1.0, 1.0, 1.5)), "body", (0.0, 800.0)),
    }
    for name, (shape, affine, rule, window) in specs.items():
        body, ref, pred = _ct_pair(rng, shape)
        if window[0] >= 0:  # MR-like: non-negative signal with values beyond the window's top
            ref, pred = np.abs(ref) / 3.0, np.abs(pred) / 3.0
        mask = {"body": body, "tight": _ball(shape, [n / 2 for n in shape], min(shape) * 0.25),
                "border": np.pad(np.ones([n - 2 for n in shape], bool), 1), None: None}[rule]
        case = {"pred": root / "synthrad" / "pred" / f"{name}.nii.gz", "ref": root / "synthrad" / "ref" / f"{name}.nii.gz",
                "mask": None if mask is None else root / "synthrad" / "mask" / f"{name}.nii.gz", "window": window}
        _save(case["pred"], pred, affine)
        _save(case["ref"], ref, affine)
        if mask is not None:
            _save(case["mask"], mask, affine, np.uint8)
        cases[name] = case
    return cases


# ----------------------------------------------------------------------------------------------- HECKTOR
#: case → (CT spacing, rotation, GTVp centres/radii of reference and prediction, GTVn likewise); None = absent
_HECKTOR = {
    "CHUM-001": ((0.98, 0.98, 3.27), 0.0, ([(20, 20, 8)], [7.0]), ([(21, 20, 8)], [7.5]), ([(32, 14, 9)], [5.0]),
                 ([(31, 15, 9)], [4.0])),
    "CHUP-002": ((1.17, 1.17, 3.0), 0.3, ([(18, 22, 9)], [9.0]), ([(18, 23, 9)], [8.0]), None, None),
    "HGJ-003": ((0.5, 0.5, 2.0), 0.0, ([(22, 22, 10)], [4.0]), None, ([(30, 12, 8)], [3.0]), ([(30, 12, 8)], [3.0])),
    "MDA-004": ((2.0, 2.0, 2.0), -0.2, ([(16, 18, 7)], [8.0]), ([(17, 18, 7)], [9.0]), None,
                ([(28, 28, 8)], [5.0])),
    "USZ-005": ((0.75, 0.75, 1.5), 0.0, ([(20, 18, 9)], [6.0]), ([(20, 19, 9)], [6.0]), ([(10, 30, 9)], [4.0]),
                ([(11, 30, 9)], [4.0])),
}
HECKTOR_SHAPE = (40, 40, 18)
#: the case whose prediction is stored on another grid of the same spacing (a crop shifted by whole voxels)
HECKTOR_CROPPED = "USZ-005"


def _labels(shape, spacing, gtvp, gtvn) -> np.ndarray:
    out = np.zeros(shape, np.uint8)
    for label, spec in ((1, gtvp), (2, gtvn)):
        if spec is not None:
            for centre, radius in zip(*spec):
                out[_ball(shape, centre, radius, spacing)] = label
    return out


def hecktor_cases(root: Path) -> dict[str, dict]:
    """Write the HECKTOR cases (five spacings, oblique affines, empty classes, a prediction on a cropped grid)
    under ``root``; returns case name → {"pred", "ref"}."""
    cases = {}
    for name, (spacing, angle, p_ref, p_pred, n_ref, n_pred) in _HECKTOR.items():
        affine = _oblique(spacing, angle, origin=(-20.0, 15.0, -40.0))
        ref = _labels(HECKTOR_SHAPE, spacing, p_ref, n_ref)
        pred = _labels(HECKTOR_SHAPE, spacing, p_pred, n_pred)
        if name == HECKTOR_CROPPED:  # the prediction only over voxels 4.. and 2.. of the first two axes
            pred = pred[4:, 2:, :]
            affine_pred = affine.astype(np.float64).copy()
            affine_pred[:3, 3] += affine_pred[:3, :3] @ np.array([4.0, 2.0, 0.0])
            affine_pred = affine_pred.astype(np.float32)
        else:
            affine_pred = affine
        case = {"pred": root / "hecktor" / "pred" / f"{name}.nii.gz", "ref": root / "hecktor" / "ref" / f"{name}.nii.gz"}
        _save(case["ref"], ref, affine, np.uint8)
        _save(case["pred"], pred, affine_pred, np.uint8)
        cases[name] = case
    return cases
