"""petct head-and-neck phantoms: seeded PET/CT cases with HECKTOR labels, each image on its own grid."""

from __future__ import annotations

import dataclasses
import os

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from medfusion.phantoms.headneck import (
    CT_SPACING_MM, PET_SPACING_MM, SUV_CAP, HeadNeckPhantomCase, make_headneck_phantom, write_headneck_case,
    write_headneck_dataset,
)
from medfusion.errors import InputError, OutputExistsError
from medfusion.io import load_volume

TINY = (32, 32, 16)
ARRAYS = ("ct", "pet", "labels", "body", "tissue", "pet_labels")


@pytest.fixture(scope="module")
def tiny():
    return make_headneck_phantom(TINY, seed=0)


@pytest.fixture(scope="module")
def tinies():
    """Eight tiny cases (about 0.1 s each)."""
    return [make_headneck_phantom(TINY, seed=s) for s in range(8)]


@pytest.fixture(scope="module")
def full():
    """Three cases at the default size, 96 × 96 × 48 (about half a second each)."""
    return [make_headneck_phantom(seed=s) for s in range(3)]


def _world(affine: np.ndarray, index) -> np.ndarray:
    """World mm of voxel indices (n × 3)."""
    return np.asarray(index, dtype=float) @ affine[:3, :3].T + affine[:3, 3]


def _voxel(affine: np.ndarray, world) -> np.ndarray:
    """Continuous voxel coordinates of world points (n × 3)."""
    return (np.atleast_2d(world) - affine[:3, 3]) @ np.linalg.inv(affine[:3, :3]).T


def _pet_at(case: dict, mask: np.ndarray) -> np.ndarray:
    """PET SUVs at the world positions of the CT voxels in ``mask`` (nearest PET voxel, those inside the PET)."""
    p = np.rint(_voxel(case["pet_affine"], _world(case["ct_affine"], np.argwhere(mask)))).astype(int)
    inside = np.all((p >= 0) & (p < case["pet"].shape), axis=1)
    return case["pet"][tuple(p[inside].T)]


def _tissue(case: dict, *names: str) -> np.ndarray:
    return np.isin(case["tissue"], [case["tissue_names"].index(n) for n in names])


def test_same_seed_same_case_other_seed_other_case(tiny):
    again = make_headneck_phantom(TINY, seed=0)
    other = make_headneck_phantom(TINY, seed=1)
    for key in (*ARRAYS, "ct_affine", "pet_affine", "gtvp_centre", "gtvn_centres"):
        np.testing.assert_array_equal(again[key], tiny[key])
    for key in ("ct", "pet", "labels", "ct_affine", "pet_affine", "gtvp_centre"):
        assert not np.array_equal(other[key], tiny[key])


def test_types_shapes_and_value_ranges(tiny):
    assert tiny["ct"].dtype == np.float32 and tiny["pet"].dtype == np.float32
    assert tiny["labels"].dtype == np.uint8 and tiny["body"].dtype == bool and tiny["tissue"].dtype == np.uint8
    assert tiny["ct"].shape == tiny["labels"].shape == tiny["body"].shape == TINY
    assert tiny["pet"].shape == tiny["pet_labels"].shape != TINY
    for key in ("ct_affine", "pet_affine"):
        assert tiny[key].shape == (4, 4) and tiny[key].dtype == np.float64
    assert np.all(np.isfinite(tiny["ct"])) and np.all(np.isfinite(tiny["pet"]))
    assert tiny["ct"].min() >= -1024.0 and tiny["ct"].max() <= 3071.0
    assert tiny["pet"].min() >= 0.0 and tiny["pet"].max() <= SUV_CAP
    outside = tiny["ct"][~ndimage.binary_dilation(tiny["body"], iterations=2)]
    assert abs(float(np.median(outside)) + 1000.0) < 30.0
    bone = _tissue(tiny, "cortical_bone", "marrow")
    assert bone.any() and np.median(tiny["ct"][bone]) > 250.0


def test_labels_nodes_and_a_visible_primary_at_tiny_sizes(tinies):
    nodes = []
    for case in tinies:
        labels = case["labels"]
        assert set(np.unique(labels).tolist()) <= {0, 1, 2}
        assert (labels == 1).sum() > 0, f"seed {case['seed']}: no GTVp"
        n = case["n_nodes"]
        assert 0 <= n <= 3 and case["gtvn_centres"].shape == (n, 3)
        assert ((labels == 2).any()) == (n > 0)
        assert ndimage.label(labels == 2)[1] <= n
        assert not np.any(labels[~case["body"]]), "tumour outside the body"
        nodes.append(n)
    assert max(nodes) >= 1 and len(set(nodes)) > 1  # the number of nodes varies


def test_odd_sizes_and_any_spacing_work():
    case = make_headneck_phantom((33, 31, 17), spacing=(1.7, 2.3, 2.9), seed=5, pet_spacing=(3.5, 3.5, 5.0))
    assert case["ct"].shape == case["labels"].shape == (33, 31, 17)
    np.testing.assert_allclose(np.linalg.norm(case["ct_affine"][:3, :3], axis=0), (1.7, 2.3, 2.9))
    np.testing.assert_allclose(np.linalg.norm(case["pet_affine"][:3, :3], axis=0), (3.5, 3.5, 5.0))
    assert (case["labels"] == 1).any()
    assert make_headneck_phantom((7, 5, 3), seed=0)["ct"].shape == (7, 5, 3)


@pytest.mark.parametrize("bad", [dict(shape=(0, 32, 16)), dict(shape=(32, 32)), dict(shape=(32.5, 32, 16)),
                                 dict(spacing=(-1.0, 2.0, 3.0)), dict(spacing=(2.0, np.nan, 3.0)),
                                 dict(pet_spacing=(4.0, 4.0))])
def test_bad_shapes_and_spacings_are_input_errors(bad):
    kwargs = {"shape": TINY, **bad}
    with pytest.raises(InputError):
        make_headneck_phantom(kwargs.pop("shape"), **kwargs)


def test_the_tumours_are_hot_on_pet_and_subtle_on_ct(full, tiny):
    for case in [*full, tiny]:
        brain = _tissue(case, "grey_matter", "white_matter")
        tumour = case["labels"] > 0
        rest = case["body"] & ~ndimage.binary_dilation(tumour | brain, iterations=3)
        gtvp, background = _pet_at(case, case["labels"] == 1), _pet_at(case, rest)
        assert gtvp.size and gtvp.mean() > 2.0 * background.mean(), f"seed {case['seed']}"
        assert case["suv_max_tumour"] >= gtvp.mean()
        assert _pet_at(case, brain).mean() > max(4.0, 3.0 * background.mean())
        if case is not tiny:  # tiny grids are all partial volume
            hu = np.median(case["ct"][_tissue(case, "gtvp")]) - np.median(case["ct"][_tissue(case, "muscle")])
            assert 0.0 < hu < 40.0, f"seed {case['seed']}: GTVp − muscle {hu:.1f} HU"


def test_physiological_uptake_that_is_not_tumour(full):
    case = full[0]
    muscle = _pet_at(case, _tissue(case, "muscle")).mean()
    for tissue in ("lymphoid", "parotid", "submandibular"):
        where = _tissue(case, tissue)
        assert where.any() and not case["labels"][where].any()
        assert _pet_at(case, where).mean() > 1.5 * muscle, tissue
    assert _pet_at(case, _tissue(case, "fat")).mean() < 0.6 * muscle
    assert case["hot_muscle"] is not None and _pet_at(case, _tissue(case, "hot_muscle")).mean() > 2.0 * muscle


def test_pet_and_ct_have_their_own_grids_in_one_world(full, tinies):
    codes = set()
    for case in [*full, *tinies]:
        ct_a, pet_a = case["ct_affine"], case["pet_affine"]
        assert not np.allclose(ct_a, pet_a)
        np.testing.assert_allclose(np.linalg.norm(ct_a[:3, :3], axis=0), CT_SPACING_MM)
        np.testing.assert_allclose(np.linalg.norm(pet_a[:3, :3], axis=0), PET_SPACING_MM)
        codes.add(nib.aff2axcodes(ct_a))
        boxes = []
        for a, shape in ((ct_a, case["ct"].shape), (pet_a, case["pet"].shape)):
            ends = [(0, n - 1) for n in shape]
            corners = _world(a, [(i, j, k) for i in ends[0] for j in ends[1] for k in ends[2]])
            boxes.append((corners.min(axis=0), corners.max(axis=0)))
        (ct_lo, ct_hi), (pet_lo, pet_hi) = boxes
        assert np.all(np.maximum(ct_lo, pet_lo) < np.minimum(ct_hi, pet_hi)), "fields of view do not overlap"
        ratio = (pet_hi - pet_lo + PET_SPACING_MM) / (ct_hi - ct_lo + CT_SPACING_MM)
        assert np.all((ratio > 1.09) & (ratio < 1.3)), ratio
        for centre in [case["gtvp_centre"], *case["gtvn_centres"]]:
            for a, shape in ((ct_a, case["ct"].shape), (pet_a, case["pet"].shape)):
                v = _voxel(a, centre)[0]
                assert np.all((v > -0.5) & (v < np.array(shape) - 0.5))
        v = np.rint(_voxel(ct_a, case["gtvp_centre"])[0]).astype(int)
        assert case["labels"][tuple(v)] == 1
    assert {("L", "P", "S"), ("R", "A", "S")} <= codes  # DICOM-like (LPS) storage in some seeds


def test_the_anatomy_is_where_the_affines_say(full):
    for case in full:
        a = case["ct_affine"]
        centroid = _world(a, np.argwhere(case["labels"] == 1)).mean(axis=0)
        assert np.linalg.norm(centroid - case["gtvp_centre"]) < 15.0
        brain = _world(a, np.argwhere(_tissue(case, "grey_matter"))).mean(axis=0)
        spine = _world(a, np.argwhere(_tissue(case, "cord"))).mean(axis=0)
        airway = _world(a, np.argwhere(_tissue(case, "airway") & case["body"])).mean(axis=0)
        assert brain[2] > centroid[2] - 10.0 and brain[2] > spine[2]  # the brain is superior (S)
        assert airway[1] > spine[1]  # the airway is anterior to the cord (A)
        pet_brain = _pet_at(case, _tissue(case, "grey_matter"))
        assert pet_brain.mean() > 4.0  # the PET's brain lies where the CT's does


def test_written_case_reads_back_in_the_hecktor_layout(tmp_path, tiny):
    case = write_headneck_case(tmp_path, "HN-TEST-001", shape=TINY, seed=0)
    assert isinstance(case, HeadNeckPhantomCase) and case.name == "HN-TEST-001"
    assert case.ct == os.path.join(tmp_path, "imagesTr", "HN-TEST-001__CT.nii.gz")
    assert case.pet == os.path.join(tmp_path, "imagesTr", "HN-TEST-001__PT.nii.gz")
    assert case.label == os.path.join(tmp_path, "labelsTr", "HN-TEST-001.nii.gz")
    with pytest.raises(dataclasses.FrozenInstanceError):
        case.name = "other"  # type: ignore[misc]
    for path, dtype in ((case.ct, np.int16), (case.pet, np.float32), (case.label, np.uint8)):
        assert nib.load(path).get_data_dtype() == dtype
    ct, pet, label = load_volume(case.ct), load_volume(case.pet), load_volume(case.label)
    np.testing.assert_array_equal(ct.data, np.rint(tiny["ct"]))
    np.testing.assert_array_equal(pet.data, tiny["pet"])
    np.testing.assert_array_equal(label.data, tiny["labels"])
    np.testing.assert_allclose(ct.affine, tiny["ct_affine"], atol=1e-5)
    np.testing.assert_allclose(label.affine, tiny["ct_affine"], atol=1e-5)
    np.testing.assert_allclose(pet.affine, tiny["pet_affine"], atol=1e-5)


def test_existing_outputs_are_refused_before_anything_is_written(tmp_path):
    case = write_headneck_case(tmp_path, "A", shape=TINY, seed=1)
    before = {p: os.path.getmtime(p) for p in (case.ct, case.pet, case.label)}
    first = load_volume(case.pet).data
    with pytest.raises(OutputExistsError):
        write_headneck_case(tmp_path, "A", shape=TINY, seed=2)
    assert {p: os.path.getmtime(p) for p in before} == before
    os.remove(case.label)  # one output missing, two present: still refused, and nothing is written
    with pytest.raises(OutputExistsError):
        write_headneck_case(tmp_path, "A", shape=TINY, seed=2)
    assert not os.path.exists(case.label)
    again = write_headneck_case(tmp_path, "A", shape=TINY, seed=2, overwrite=True)
    assert again == case and not np.array_equal(load_volume(again.pet).data, first)

    out = tmp_path / "dataset"
    (out / "labelsTr").mkdir(parents=True)
    (out / "labelsTr" / "HN-PHANTOM-00001.nii.gz").write_bytes(b"already here")
    with pytest.raises(OutputExistsError):
        write_headneck_dataset(out, 2, shape=TINY)
    assert not (out / "imagesTr").exists() and os.listdir(out / "labelsTr") == ["HN-PHANTOM-00001.nii.gz"]


def test_dataset_names_seeds_and_bad_counts(tmp_path):
    cases = write_headneck_dataset(tmp_path, 2, shape=(20, 22, 11), seed0=3, prefix="HN")
    assert [c.name for c in cases] == ["HN-00000", "HN-00001"]
    expected = make_headneck_phantom((20, 22, 11), seed=4)
    np.testing.assert_array_equal(load_volume(cases[1].label).data, expected["labels"])
    assert sorted(os.listdir(tmp_path / "imagesTr")) == ["HN-00000__CT.nii.gz", "HN-00000__PT.nii.gz",
                                                         "HN-00001__CT.nii.gz", "HN-00001__PT.nii.gz"]
    assert write_headneck_dataset(tmp_path / "empty", 0, shape=TINY) == []
    with pytest.raises(InputError):
        write_headneck_dataset(tmp_path, -1, shape=TINY)


def test_three_raters_draw_nested_borders_around_the_reference(full, tmp_path):
    """Several plausible annotations of one case: a tight rater, the reference label map, a generous rater — the
    same tumours, nested, each border about 2 mm from the next; written beside labelsTr on request."""
    from medfusion.phantoms.headneck import RATERS_FOLDER, write_headneck_dataset

    for case in full:
        raters = case["rater_labels"]
        assert raters.shape == (3, *case["labels"].shape) and np.array_equal(raters[1], case["labels"])
        tight, ref, generous = (r > 0 for r in raters)
        assert not (tight & ~ref).any() and not (ref & ~generous).any()  # nested
        assert 0 < tight.sum() < ref.sum() < generous.sum()
        rim = ndimage.binary_dilation(ref, iterations=2) & ~ndimage.binary_erosion(ref, iterations=2)
        assert not ((generous ^ ref) & ~rim).any()  # they differ only within 2 voxels of the reference border
    write_headneck_dataset(tmp_path, 1, shape=(32, 32, 16), raters=True)
    files = sorted(os.listdir(tmp_path / RATERS_FOLDER))
    assert files == [f"HN-PHANTOM-00000_rater{k}.nii.gz" for k in (1, 2, 3)]
    assert np.array_equal(load_volume(tmp_path / RATERS_FOLDER / files[1]).data,
                          load_volume(tmp_path / "labelsTr" / "HN-PHANTOM-00000.nii.gz").data)
