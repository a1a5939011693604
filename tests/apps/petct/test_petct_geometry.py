"""PET/CT geometry (medfusion.apps.petct.geometry): world boxes, input checks, the working grid, resampling there and
back onto the CT grid. Tiny volumes are written as real NIfTI files with real affines; expected values are computed
by hand or from the affines directly, never by the code under test."""

from __future__ import annotations

import logging

import nibabel as nib
import numpy as np
import pytest

from medfusion.apps.petct.geometry import (
    WorkingGrid,
    load_pet_ct,
    overlap_bounds,
    to_ct_grid,
    to_working_grid,
    working_grid,
    world_bounds,
)
from medfusion.errors import InputError
from medfusion.io import load_volume, volume_from_array

# The CT's world box (RAS mm) in most tests: x [-32, 32], y [-28, 28], z [-26, 26]; 2 mm voxels → (32, 28, 26).
CT_LO, CT_HI, CT_SHAPE = np.array([-32.0, -28.0, -26.0]), np.array([32.0, 28.0, 26.0]), (32, 28, 26)
# The PET's: x [-40, 40], y [-36, 36], z [-32, 32]; 4 mm voxels → (20, 18, 16).
PET_LO, PET_HI = np.array([-40.0, -36.0, -32.0]), np.array([40.0, 36.0, 32.0])

# orientation = (world axis of each voxel axis, its sign)
ORIENTATIONS = {
    "RAS": ((0, 1, 2), (1, 1, 1)),
    "LPS": ((0, 1, 2), (-1, -1, 1)),
    "permuted": ((2, 0, 1), (1, -1, -1)),
}


def oriented(lo, hi, spacing, orientation="RAS"):
    """(shape, affine) of a grid covering the world box [lo, hi] with voxels of `spacing` mm, in `orientation`."""
    axes, signs = ORIENTATIONS[orientation]
    affine = np.eye(4)
    shape = []
    for a, (w, s) in enumerate(zip(axes, signs)):
        affine[:3, a] = 0.0
        affine[w, a] = s * spacing
        affine[w, 3] = lo[w] + spacing / 2 if s > 0 else hi[w] - spacing / 2
        shape.append(int(round((hi[w] - lo[w]) / spacing)))
    return tuple(shape), affine


def world_of_voxels(shape, affine):
    """World coordinates (mm) of every voxel centre, (*shape, 3)."""
    ijk = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), axis=-1).astype(float)
    return ijk @ affine[:3, :3].T + affine[:3, 3]


def write(path, data, affine):
    nib.save(nib.Nifti1Image(np.asarray(data, dtype=np.float32), affine), str(path))
    return path


def ct_phantom(shape, affine):
    """HU: air, a body cylinder of soft tissue (radius 22 mm) with a bone rod."""
    w = world_of_voxels(shape, affine)
    ct = np.full(shape, -1000.0)
    ct[np.hypot(w[..., 0], w[..., 1]) < 22] = 40.0
    ct[np.hypot(w[..., 0], w[..., 1] + 10) < 5] = 700.0
    return ct


def pet_phantom(shape, affine):
    """SUV: 0 outside, 1 in the body cylinder, a hot sphere of 6."""
    w = world_of_voxels(shape, affine)
    pet = np.where(np.hypot(w[..., 0], w[..., 1]) < 22, 1.0, 0.0)
    pet[np.linalg.norm(w - [5.0, 4.0, 2.0], axis=-1) < 8] = 6.0
    return pet


@pytest.fixture
def pair(tmp_path):
    """Write a PET (4 mm, RAS) and a CT (2 mm, orientation chosen by the test) and return their paths."""

    def make(ct_orientation="RAS", pet=None, ct=None):
        pet_shape, pet_affine = oriented(PET_LO, PET_HI, 4.0, "RAS")
        ct_shape, ct_affine = oriented(CT_LO, CT_HI, 2.0, ct_orientation)
        pet_data = pet_phantom(pet_shape, pet_affine) if pet is None else pet(pet_shape, pet_affine)
        ct_data = ct_phantom(ct_shape, ct_affine) if ct is None else ct(ct_shape, ct_affine)
        return (write(tmp_path / "pet.nii.gz", pet_data, pet_affine), write(tmp_path / "ct.nii.gz", ct_data, ct_affine))

    return make


# --- world boxes ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "affine, shape, lo, hi",
    [
        # axis-aligned: origin (10, -20, 5), 2 × 3 × 4 mm voxels
        (np.array([[2, 0, 0, 10], [0, 3, 0, -20], [0, 0, 4, 5], [0, 0, 0, 1.0]]), (5, 4, 3),
         [9, -21.5, 3], [19, -9.5, 15]),
        # flipped (LPS-like): x = 100 - 2i, y = 50 - 2j, z = -20 + 3k
        (np.diag([-2.0, -2.0, 3.0, 1.0]) + np.array([[0, 0, 0, 100], [0, 0, 0, 50], [0, 0, 0, -20], [0, 0, 0, 0]]),
         (10, 5, 4), [81, 41, -21.5], [101, 51, -9.5]),
        # permuted: i → y (2 mm), j → -z (1 mm), k → x (3 mm)
        (np.array([[0, 0, 3, 10], [2, 0, 0, -5], [0, -1, 0, 7], [0, 0, 0, 1.0]]), (4, 5, 6),
         [8.5, -6, 2.5], [26.5, 2, 7.5]),
    ],
    ids=["axis-aligned", "flipped", "permuted"],
)
def test_world_bounds_by_hand(affine, shape, lo, hi):
    vol = volume_from_array(np.zeros(shape), affine)
    got_lo, got_hi = world_bounds(vol)
    np.testing.assert_allclose(got_lo, lo, atol=1e-9)
    np.testing.assert_allclose(got_hi, hi, atol=1e-9)


def test_overlap_bounds_by_hand():
    a = volume_from_array(np.zeros((10, 10, 10)), np.diag([2.0, 2.0, 2.0, 1.0]))  # [-1, 19]³
    flipped = np.diag([-1.0, 1.0, 1.0, 1.0])
    flipped[:3, 3] = [30, 5, -3]  # x = 30 - i → [10.5, 30.5]; y [4.5, 24.5]; z [-3.5, 16.5]
    b = volume_from_array(np.zeros((20, 20, 20)), flipped)
    lo, hi = overlap_bounds(a, b)
    np.testing.assert_allclose(lo, [10.5, 4.5, -1])
    np.testing.assert_allclose(hi, [19, 19, 16.5])
    far = np.diag([2.0, 2.0, 2.0, 1.0])
    far[:3, 3] = [0, 0, 100]
    assert overlap_bounds(a, volume_from_array(np.zeros((10, 10, 10)), far)) is None
    touching = far.copy()
    touching[2, 3] = 20  # z from 19: touches a's top face only
    assert overlap_bounds(a, volume_from_array(np.zeros((10, 10, 10)), touching)) is None


# --- input checks ------------------------------------------------------------------------------------------------


def test_a_good_pair_loads_and_nothing_on_disk_changes(pair):
    pet_path, ct_path = pair("LPS")
    before = {p: p.read_bytes() for p in (pet_path, ct_path)}
    pet, ct = load_pet_ct(pet_path, ct_path)
    grid = working_grid(pet, ct, divisor=8)
    to_working_grid(pet, grid, fill=0.0)
    labels = to_working_grid(ct, grid, fill=-1000.0) > 300
    to_ct_grid(labels.astype(np.uint8), grid, ct)
    assert {p: p.read_bytes() for p in (pet_path, ct_path)} == before


def test_pet_and_ct_that_do_not_overlap_are_refused_with_both_boxes(pair, tmp_path):
    pet_path, _ = pair()
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    affine[:3, 3] = [500, 0, 0]
    ct_path = write(tmp_path / "far_ct.nii.gz", ct_phantom(CT_SHAPE, affine), affine)
    with pytest.raises(InputError) as err:
        load_pet_ct(pet_path, ct_path)
    message = str(err.value)
    assert "\n" not in message and "do not overlap" in message
    assert "x [-40.0, 40.0] y [-36.0, 36.0] z [-32.0, 32.0] mm" in message  # the PET's box
    assert "x [499.0, 563.0] y [-1.0, 55.0] z [-1.0, 51.0] mm" in message  # the CT's box


@pytest.mark.parametrize(
    "pet, words",
    [
        (lambda s, a: 5000.0 * pet_phantom(s, a), ["Bq/ml", "SUV = activity concentration", "injected dose"]),
        (lambda s, a: pet_phantom(s, a) - 5.0, ["below -1", "SUV"]),
        (lambda s, a: ct_phantom(s, a), ["swapped"]),
    ],
    ids=["bq-per-ml", "negative", "a-ct"],
)
def test_a_pet_not_in_suv_is_refused(pair, pet, words):
    pet_path, ct_path = pair(pet=pet)
    with pytest.raises(InputError) as err:
        load_pet_ct(pet_path, ct_path)
    assert "\n" not in str(err.value) and all(w in str(err.value) for w in words), str(err.value)


@pytest.mark.parametrize(
    "ct, words",
    [
        (lambda s, a: np.clip((ct_phantom(s, a) + 1000) / 2000, 0, 1), ["Hounsfield", "maximum", "normalised"]),
        (lambda s, a: ct_phantom(s, a) + 1024, ["Hounsfield", "minimum", "rescale intercept"]),
    ],
    ids=["normalised", "no-intercept"],
)
def test_a_ct_not_in_hu_is_refused(pair, ct, words):
    pet_path, ct_path = pair(ct=ct)
    with pytest.raises(InputError) as err:
        load_pet_ct(pet_path, ct_path)
    assert "\n" not in str(err.value) and all(w in str(err.value) for w in words), str(err.value)


def test_a_tiny_ct_crop_is_not_held_to_the_hu_rules(pair, tmp_path):
    pet_path, _ = pair()
    soft_tissue = 40.0 + np.arange(512.0).reshape(8, 8, 8) % 7  # 40-46 HU: no bone, no air
    ct_path = write(tmp_path / "crop.nii.gz", soft_tissue, np.diag([2.0, 2.0, 2.0, 1.0]))  # 16 mm
    pet, ct = load_pet_ct(pet_path, ct_path)
    assert ct.shape == (8, 8, 8)


@pytest.mark.parametrize("which", ["pet", "ct"])
def test_a_constant_pet_or_ct_is_refused(pair, tmp_path, which):
    """An all-zero PET (an empty export) would give an empty label map; a constant CT is no CT."""
    pet_path, ct_path = pair()
    ref = load_volume(pet_path if which == "pet" else ct_path)
    flat = write(tmp_path / "flat.nii.gz", np.zeros(ref.shape), ref.affine)
    args = (flat, ct_path) if which == "pet" else (pet_path, flat)
    with pytest.raises(InputError, match=f"{which.upper()} .*flat.nii.gz is all zeros"):
        load_pet_ct(*args)


def test_2d_and_nan_inputs_are_refused(pair, tmp_path):
    pet_path, ct_path = pair()
    flat = write(tmp_path / "flat.nii.gz", np.zeros((8, 8)), np.eye(4))
    with pytest.raises(InputError, match="expected a 3D image"):
        load_pet_ct(flat, ct_path)
    data = load_volume(pet_path).data.copy()
    data[1, 2, 3] = np.nan
    nan_path = write(tmp_path / "nan.nii.gz", data, load_volume(pet_path).affine)
    with pytest.raises(InputError, match="NaN"):
        load_pet_ct(nan_path, ct_path)


def test_bad_options_are_refused(pair):
    pet, ct = load_pet_ct(*pair())
    for kwargs in ({"spacing": -2.0}, {"spacing": (2.0, 2.0)}, {"divisor": 0}, {"box_mm": 0.0}):
        with pytest.raises(InputError):
            working_grid(pet, ct, **kwargs)


# --- the working grid --------------------------------------------------------------------------------------------


def test_the_default_grid_is_the_overlap_at_2_mm(pair):
    pet, ct = load_pet_ct(*pair("permuted"))
    grid = working_grid(pet, ct)
    assert isinstance(grid, WorkingGrid) and grid.spacing == (2.0, 2.0, 2.0)
    assert grid.shape == CT_SHAPE  # the overlap is the CT's box
    lo, hi = world_bounds(grid)
    np.testing.assert_allclose(lo, CT_LO, atol=1e-9)
    np.testing.assert_allclose(hi, CT_HI, atol=1e-9)
    with pytest.raises(AttributeError):
        grid.shape = (1, 1, 1)


@pytest.mark.parametrize("divisor", [1, 3, 8, 16])
@pytest.mark.parametrize("spacing", [2.0, (1.5, 2.5, 3.0)])
def test_divisor_makes_multiples_and_the_grid_still_covers_the_overlap(pair, divisor, spacing):
    pet, ct = load_pet_ct(*pair())
    grid = working_grid(pet, ct, spacing=spacing, divisor=divisor)
    assert all(n % divisor == 0 for n in grid.shape)
    lo, hi = world_bounds(grid)
    assert np.all(lo <= CT_LO + 1e-6) and np.all(hi >= CT_HI - 1e-6)
    np.testing.assert_allclose((lo + hi) / 2, (CT_LO + CT_HI) / 2, atol=1e-9)  # grown symmetrically
    assert np.all(hi - lo < CT_HI - CT_LO + np.asarray(grid.spacing) * divisor + 1e-6)


def _head_neck_pet(shape, affine, brain=True):
    """SUV: body cylinder (radius 60 mm, axis at x = 10, y = -8) of 1; a brain ellipsoid of 8 at (10, -8, 80) with
    semi-axes (50, 55, 35) mm, so its bottom is at z = 45; a bigger hot blob (SUV 10, radius 50 mm) low down."""
    w = world_of_voxels(shape, affine)
    pet = np.where(np.hypot(w[..., 0] - 10, w[..., 1] + 8) < 60, 1.0, 0.0)
    if brain:
        pet[(((w - [10.0, -8.0, 80.0]) / [50.0, 55.0, 35.0]) ** 2).sum(-1) < 1] = 8.0
    pet[np.linalg.norm(w - [10.0, -8.0, -75.0], axis=-1) < 50] = 10.0
    return pet


@pytest.fixture
def head_neck(tmp_path):
    def make(brain=True):
        lo, hi = np.array([-96.0, -96.0, -128.0]), np.array([96.0, 96.0, 128.0])
        pet_shape, pet_affine = oriented(lo, hi, 4.0, "LPS")
        ct_shape, ct_affine = oriented(lo + [0, 0, 2], hi - [0, 0, 2], 3.0, "RAS")
        w = world_of_voxels(ct_shape, ct_affine)
        ct_data = np.where(np.hypot(w[..., 0] - 10, w[..., 1] + 8) < 60, 40.0, -1000.0)
        ct_data[np.hypot(w[..., 0] - 10, w[..., 1] + 40) < 10] = 700.0  # the spine
        pet_path = write(tmp_path / "hn_pet.nii.gz", _head_neck_pet(pet_shape, pet_affine, brain), pet_affine)
        return load_pet_ct(pet_path, write(tmp_path / "hn_ct.nii.gz", ct_data, ct_affine))

    return make


@pytest.mark.parametrize("divisor", [1, 16])
def test_the_box_sits_below_the_brain_centred_on_the_body(head_neck, divisor):
    pet, ct = head_neck()
    grid = working_grid(pet, ct, box_mm=144, divisor=divisor)
    lo, hi = world_bounds(grid)
    assert all(n % divisor == 0 for n in grid.shape)
    grow = (np.asarray(grid.shape) * 2.0 - 144.0) / 2  # mm added on each side for the divisor
    assert abs(hi[2] - grow[2] - 45.0) <= 4.0, (lo, hi)  # the box's top at the brain's bottom (z = 45)
    np.testing.assert_allclose(hi - lo - 2 * grow, 144.0, atol=1e-9)  # a 144 mm box
    np.testing.assert_allclose((lo + hi)[:2] / 2, [10.0, -8.0], atol=2.0)  # centred on the body


def test_without_a_brain_the_box_falls_back_to_the_overlap_centre_with_a_warning(head_neck, caplog):
    pet, ct = head_neck(brain=False)
    with caplog.at_level(logging.WARNING, logger="medfusion.apps.petct.headneck_box"):
        grid = working_grid(pet, ct, box_mm=(100.0, 120.0, 144.0))
    assert "no brain-like region" in caplog.text
    lo, hi = world_bounds(grid)
    np.testing.assert_allclose(hi - lo, [100.0, 120.0, 144.0], atol=1e-9)
    ov_lo, ov_hi = overlap_bounds(pet, ct)
    np.testing.assert_allclose((lo + hi) / 2, (ov_lo + ov_hi) / 2, atol=1e-9)


# --- resampling --------------------------------------------------------------------------------------------------


def ramp(world):
    return 5.0 + 0.01 * world[..., 0] + 0.02 * world[..., 1] - 0.015 * world[..., 2]


def test_a_linear_ramp_resamples_exactly_onto_the_working_grid(pair):
    pet, ct = load_pet_ct(*pair("LPS", pet=lambda s, a: ramp(world_of_voxels(s, a))))
    grid = working_grid(pet, ct, spacing=(1.5, 2.5, 3.0), divisor=8)
    out = to_working_grid(pet, grid, fill=0.0)
    assert out.dtype == np.float32 and out.shape == grid.shape
    world = world_of_voxels(grid.shape, grid.affine)
    inv = np.linalg.inv(pet.affine)
    in_pet = world @ inv[:3, :3].T + inv[:3, 3]  # PET voxel coordinates of the working voxel centres
    inside = np.all((in_pet >= 0) & (in_pet <= np.asarray(pet.shape) - 1), axis=-1)
    assert inside.sum() > 0.5 * inside.size
    np.testing.assert_allclose(out[inside], ramp(world)[inside], atol=1e-3)


def test_outside_the_input_the_working_grid_takes_the_fill_value(pair):
    pet, ct = load_pet_ct(*pair())
    grid = working_grid(pet, ct, divisor=8)  # (32, 32, 32): 3 slices beyond the CT at the top and at the bottom
    out = to_working_grid(ct, grid, fill=-1000.0)
    world = world_of_voxels(grid.shape, grid.affine)
    beyond = np.any((world < CT_LO) | (world > CT_HI), axis=-1)
    assert beyond.sum() == 32 * 32 * 6 + 32 * 4 * 26
    assert np.all(out[beyond] == -1000.0) and np.all(out[~beyond] > -1000.5)
    assert np.any(out[~beyond] == 700.0)


@pytest.mark.parametrize("orientation", list(ORIENTATIONS))
@pytest.mark.parametrize("divisor", [1, 8])
def test_labels_go_to_the_working_grid_and_back_exactly(pair, tmp_path, orientation, divisor):
    pet, ct = load_pet_ct(*pair(orientation))
    labels = np.random.default_rng(0).integers(0, 3, size=ct.shape).astype(np.uint8)
    label_vol = load_volume(write(tmp_path / "labels.nii.gz", labels, ct.affine))
    grid = working_grid(pet, ct, divisor=divisor)  # the CT grid up to an integer shift (and re-orientation)
    on_grid = to_working_grid(label_vol, grid, order=0, fill=0.0)
    back = to_ct_grid(on_grid.astype(np.uint8), grid, ct)
    assert back.dtype == np.uint8 and back.shape == ct.shape
    np.testing.assert_array_equal(back, labels)
    # the same world position: each working voxel's label is the CT label at its centre (found via the affines)
    world = world_of_voxels(grid.shape, grid.affine)
    inv = np.linalg.inv(ct.affine)
    ijk = np.rint(world @ inv[:3, :3].T + inv[:3, 3]).astype(int)
    inside = np.all((ijk >= 0) & (ijk < np.asarray(ct.shape)), axis=-1)
    np.testing.assert_array_equal(on_grid[inside], labels[tuple(ijk[inside].T)])
    assert np.all(on_grid[~inside] == 0) and inside.sum() == labels.size


def test_a_label_lands_at_the_same_world_position_from_a_flipped_ct(pair):
    pet, ct = load_pet_ct(*pair("LPS"))
    grid = working_grid(pet, ct, spacing=(4.0, 4.0, 4.0), divisor=4)  # coarser than the CT
    label = np.zeros(CT_SHAPE, dtype=np.uint8)
    label[20:26, 4:10, 15:21] = 1  # an LPS block: world x, y negative-ish, z above the middle
    tumour = world_of_voxels(ct.shape, ct.affine)[label == 1]
    on_grid = to_working_grid(volume_from_array(label, ct.affine), grid, order=0)
    found = world_of_voxels(grid.shape, grid.affine)[on_grid == 1]
    np.testing.assert_allclose(found.mean(axis=0), tumour.mean(axis=0), atol=1.0)
    back = to_ct_grid(on_grid.astype(np.uint8), grid, ct)
    np.testing.assert_allclose(world_of_voxels(ct.shape, ct.affine)[back == 1].mean(axis=0), tumour.mean(axis=0),
                               atol=1.0)


def test_probabilities_go_back_linearly_and_are_zero_outside_the_working_grid(pair):
    pet, ct = load_pet_ct(*pair("permuted"))
    grid = working_grid(pet, ct, box_mm=(40.0, 32.0, 28.0), spacing=(2.0, 2.0, 2.0))  # a crop: no brain → centre
    world = world_of_voxels(grid.shape, grid.affine)
    p1 = np.clip(0.5 + 0.01 * world[..., 0], 0, 1).astype(np.float32)
    probs = np.stack([1 - p1, p1])
    back = to_ct_grid(probs, grid, ct, order=1)
    assert back.shape == (2, *ct.shape) and back.dtype == np.float32
    ct_world = world_of_voxels(ct.shape, ct.affine)
    g_lo, g_hi = world_bounds(grid)
    inside = np.all((ct_world >= g_lo + 2.0) & (ct_world <= g_hi - 2.0), axis=-1)
    outside = np.any((ct_world < g_lo) | (ct_world > g_hi), axis=-1)
    np.testing.assert_allclose(back[1][inside], 0.5 + 0.01 * ct_world[inside][:, 0], atol=1e-5)
    np.testing.assert_allclose(back.sum(axis=0)[~outside], 1.0, atol=1e-5)
    assert outside.any() and np.all(back[:, outside] == 0)
    with pytest.raises(ValueError):
        to_ct_grid(probs[:, :-1], grid, ct)


def test_ct_voxels_in_the_outer_half_voxel_of_a_coarser_working_grid_get_its_labels(pair):
    pet, ct = load_pet_ct(*pair("LPS"))
    grid = working_grid(pet, ct, spacing=4.0)  # (16, 14, 13), exactly the CT's box: its edge CT voxels lie 1 mm
    assert grid.shape == (16, 14, 13)  # inside the outer faces, beyond the working grid's edge voxel centres
    back = to_ct_grid(np.full(grid.shape, 2, dtype=np.int16), grid, ct)
    assert back.dtype == np.int16 and np.all(back == 2)
    probs = to_ct_grid(np.full((1, *grid.shape), 0.25, dtype=np.float32), grid, ct, order=1)
    np.testing.assert_allclose(probs, 0.25, atol=1e-6)
