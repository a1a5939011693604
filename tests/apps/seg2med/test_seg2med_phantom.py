"""seg2med abdomen phantoms: reproducible label maps with CT and MR that hold more than the prior image."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from medfusion.phantoms.abdomen import (
    ABDOMEN_FOV_MM, make_abdomen_phantom, write_abdomen_case, write_abdomen_dataset,
)
from medfusion.apps.seg2med.tissues import class_names, label_values, mr_signal, tissue_name, tissue_table
from medfusion.errors import InputError, OutputExistsError
from medfusion.io import load_volume

SMALL = (32, 32, 24)
NAMES = class_names("total")
LABEL = {name: value for value, name in NAMES.items()}


@pytest.fixture(scope="module")
def default():
    """One phantom at the default size (96 × 96 × 64, about a third of a second)."""
    return make_abdomen_phantom(seed=0)


@pytest.fixture(scope="module")
def small():
    return make_abdomen_phantom(SMALL, seed=0)


def _tissue(label: int):
    return tissue_table().tissues[tissue_name(NAMES[label])]


def test_same_seed_same_case_other_seed_other_case(small):
    again = make_abdomen_phantom(SMALL, seed=0)
    other = make_abdomen_phantom(SMALL, seed=1)
    for key in ("labels", "body", "ct", "t1", "t2", "affine"):
        np.testing.assert_array_equal(again[key], small[key])
    for key in ("labels", "body", "ct", "t1", "t2"):
        assert not np.array_equal(other[key], small[key])


def test_types_shapes_and_a_ras_grid_with_the_default_field_of_view(small):
    assert small["labels"].dtype == np.uint8 and small["body"].dtype == bool
    for key in ("ct", "t1", "t2"):
        assert small[key].dtype == np.float32 and small[key].shape == SMALL
        assert np.all(np.isfinite(small[key]))
    affine = small["affine"]
    np.testing.assert_allclose(affine[:3, :3], np.diag([f / n for f, n in zip(ABDOMEN_FOV_MM, SMALL)]))
    centre = affine @ np.array([(n - 1) / 2 for n in SMALL] + [1.0])
    np.testing.assert_allclose(centre[:3], 0.0, atol=1e-9)
    assert nib.aff2axcodes(affine) == ("R", "A", "S")


def test_labels_are_total_classes_and_the_main_organs_are_there(default):
    labels = default["labels"]
    present = set(np.unique(labels).tolist())
    assert present <= {0, *NAMES}
    wanted = ["liver", "spleen", "kidney_right", "kidney_left", "gallbladder", "stomach", "pancreas",
              "lung_lower_lobe_left", "lung_lower_lobe_right", "heart", "aorta", "inferior_vena_cava",
              "portal_vein_and_splenic_vein", "small_bowel", "colon", "duodenum", "esophagus", "spinal_cord",
              "autochthon_left", "autochthon_right", "iliopsoas_left", "iliopsoas_right", "vertebrae_L3",
              "vertebrae_T12", "rib_left_10", "rib_right_10", "hip_left", "hip_right"]
    assert {LABEL[n] for n in wanted} <= present, sorted(NAMES[v] for v in {LABEL[n] for n in wanted} - present)
    assert not np.any(labels[~default["body"]])
    # organs on the patient's side: x grows to the patient's right (RAS)
    x = np.arange(labels.shape[0])[:, None, None]
    side = {n: float(np.mean(np.broadcast_to(x, labels.shape)[labels == LABEL[n]])) for n in ("liver", "spleen")}
    assert side["liver"] > labels.shape[0] / 2 > side["spleen"]
    # vertebrae stack in order, lumbar below thoracic
    z = np.arange(labels.shape[2])[None, None, :]
    heights = [float(np.mean(np.broadcast_to(z, labels.shape)[labels == LABEL[f"vertebrae_{v}"]]))
               for v in ("L4", "L2", "T12", "T10")]
    assert heights == sorted(heights)


@pytest.mark.parametrize("organ", ["liver", "spleen", "kidney_left", "kidney_right", "autochthon_left",
                                   "iliopsoas_right", "heart", "aorta"])
def test_ct_organ_medians_are_near_the_tissue_values(default, organ):
    values = default["ct"][default["labels"] == LABEL[organ]]
    assert abs(np.median(values) - _tissue(LABEL[organ]).hu) <= 15.0


def test_ct_holds_fat_muscle_bone_structure_and_bowel_gas(default):
    ct, labels, body = default["ct"], default["labels"], default["body"]
    unlabelled = ct[body & (labels == 0)]
    assert np.mean(unlabelled < -60) > 0.2  # subcutaneous and visceral fat
    assert np.mean((unlabelled > 20) & (unlabelled < 100)) > 0.05  # muscle wall, diaphragm, discs
    vertebrae = ct[(labels >= LABEL["vertebrae_S1"]) & (labels <= LABEL["vertebrae_C1"])]
    assert 150 < np.median(vertebrae) < 450 and np.percentile(vertebrae, 95) > 350  # marrow in a cortical shell
    for bowel in ("colon", "stomach"):
        assert np.any(ct[labels == LABEL[bowel]] < -600), f"no gas in the {bowel}"
    outside = ndimage.binary_dilation(body, iterations=2)
    assert abs(np.median(ct[~outside]) + 1000) < 5


@pytest.mark.parametrize("sequence", ["t1", "t2"])
def test_mr_organ_medians_are_near_the_sequence_signal(default, sequence):
    image, labels = default[sequence], default["labels"]
    for organ in ("liver", "spleen", "kidney_left", "autochthon_right", "heart"):
        t = _tissue(LABEL[organ])
        expected = float(mr_signal(t.pd, t.t1_ms, t.t2_ms, t.fat_fraction, sequence))
        measured = float(np.median(image[labels == LABEL[organ]]))
        assert abs(measured / expected - 1.0) < 0.25, (organ, measured, expected)
    outside = ~ndimage.binary_dilation(default["body"], iterations=2)
    assert np.median(image[outside]) < 0.1 * np.median(image[default["body"]])  # only noise out there


def _body_from_ct(ct: np.ndarray) -> np.ndarray:
    """CT > −500 HU, the largest connected component, holes filled slice by slice."""
    components, n = ndimage.label(ct > -500)
    largest = components == 1 + int(np.argmax(np.bincount(components.ravel())[1:]))
    return np.stack([ndimage.binary_fill_holes(largest[..., k]) for k in range(ct.shape[2])], axis=-1)


@pytest.mark.parametrize("fixture", ["default", "small"])
def test_the_body_contour_rule_gives_the_body_mask(fixture, request):
    phantom = request.getfixturevalue(fixture)
    found, body = _body_from_ct(phantom["ct"]), phantom["body"]
    assert 2 * np.sum(found & body) / (found.sum() + body.sum()) > 0.97


def test_the_prior_image_is_a_baseline_not_the_truth(default):
    labels, body = default["labels"], default["body"]
    prior_ct = label_values("ct", warn=False)[labels]
    assert np.mean(np.abs(prior_ct - default["ct"])[body]) > 15.0
    prior_t2 = label_values("t2", warn=False)[labels]
    error = np.mean(np.abs(prior_t2 - default["t2"])[body]) / np.mean(default["t2"][body])
    assert error > 0.1


@pytest.mark.parametrize("shape, spacing", [((33, 27, 19), (4.1, 6.3, 9.7)), ((16, 16, 16), None),
                                            ((41, 35, 17), (1.5, 1.5, 5.0))])
def test_odd_shapes_and_anisotropic_spacing(shape, spacing):
    phantom = make_abdomen_phantom(shape, spacing=spacing, seed=3)
    want = spacing if spacing is not None else tuple(f / n for f, n in zip(ABDOMEN_FOV_MM, shape))
    np.testing.assert_allclose(np.diag(phantom["affine"])[:3], want)
    for key in ("labels", "body", "ct", "t1", "t2"):
        assert phantom[key].shape == shape
    assert set(np.unique(phantom["labels"]).tolist()) <= {0, *NAMES}
    assert phantom["body"].any() and np.all(np.isfinite(phantom["ct"]))


@pytest.mark.parametrize("shape, spacing", [((0, 8, 8), None), ((8, 8), None), ((8, 8, 8), (1.0, -1.0, 1.0)),
                                            ((8, 8, 8), (1.0, 1.0))])
def test_bad_shape_or_spacing_is_an_input_error(shape, spacing):
    with pytest.raises(InputError):
        make_abdomen_phantom(shape, spacing=spacing)


def test_written_cases_read_back_with_the_phantom_affine(tmp_path):
    shape = (20, 18, 16)
    cases = write_abdomen_dataset(tmp_path, 2, shape=shape, seed0=5)
    assert [c.name for c in cases] == ["ABD-PHANTOM-00000", "ABD-PHANTOM-00001"]
    phantom = make_abdomen_phantom(shape, seed=6)
    case = cases[1]
    dtypes = {"mask": np.uint8, "body": np.uint8, "ct": np.int16, "t1": np.int16, "t2": np.int16}
    step = {k: float(np.ptp(phantom[k])) / 65535 for k in ("t1", "t2")}  # int16 scaled by nibabel
    tolerance = {"mask": 0, "body": 0, "ct": 0.5, "t1": step["t1"], "t2": step["t2"]}
    for kind, key in (("mask", "labels"), ("body", "body"), ("ct", "ct"), ("t1", "t1"), ("t2", "t2")):
        path = getattr(case, kind)
        assert path == str(tmp_path / case.name / f"{kind}.nii.gz")
        volume = load_volume(path)
        np.testing.assert_allclose(volume.affine, phantom["affine"], atol=1e-5)
        np.testing.assert_allclose(volume.data, phantom[key].astype(np.float32), atol=tolerance[kind] + 1e-4)
        assert nib.load(path).get_data_dtype() == dtypes[kind]


def test_existing_output_raises_before_anything_is_written(tmp_path):
    write_abdomen_case(tmp_path, "ABD-PHANTOM-00001", shape=(16, 16, 16), seed=1)
    with pytest.raises(OutputExistsError):
        write_abdomen_dataset(tmp_path, 2, shape=(16, 16, 16))
    assert not (tmp_path / "ABD-PHANTOM-00000").exists()
    with pytest.raises(OutputExistsError):
        write_abdomen_case(tmp_path, "ABD-PHANTOM-00001", shape=(16, 16, 16), seed=1)
    write_abdomen_case(tmp_path, "ABD-PHANTOM-00001", shape=(16, 16, 16), seed=2, overwrite=True)


def test_number_of_cases(tmp_path):
    with pytest.raises(InputError):
        write_abdomen_dataset(tmp_path, -1, shape=(16, 16, 16))
    assert write_abdomen_dataset(tmp_path, 0, shape=(16, 16, 16)) == []
    assert list(tmp_path.iterdir()) == []
