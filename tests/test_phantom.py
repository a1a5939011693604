"""BraTS-like phantoms: reproducible, plausible contrasts and labels, written as BraTS case folders."""

import nibabel as nib
import numpy as np
import pytest

from medfusion.apps.cwdm.layout import CONTRASTS, find_case, list_cases
from medfusion.apps.cwdm.phantom import make_brats_phantom, write_phantom_case, write_phantom_dataset
from medfusion.errors import InputError, OutputExistsError
from medfusion.io import load_volume

SHAPE = (32, 32, 24)


@pytest.fixture(scope="module")
def phantom():
    # The first phantom of a process loads the MNI152 maps from nilearn (about a second).
    return make_brats_phantom(SHAPE, seed=0, return_tissues=True)


def test_same_seed_same_case_other_seed_other_case(phantom):
    again = make_brats_phantom(SHAPE, seed=0)
    other = make_brats_phantom(SHAPE, seed=1)
    for key in (*CONTRASTS, "seg", "affine"):
        np.testing.assert_array_equal(again[key], phantom[key])
    for key in (*CONTRASTS, "seg"):
        assert not np.array_equal(other[key], phantom[key])


def test_value_ranges_and_types(phantom):
    for c in CONTRASTS:
        image = phantom[c]
        assert image.shape == SHAPE and image.dtype == np.float32
        assert np.all(np.isfinite(image))
        assert image.min() == 0.0 and 0.7 < image.max() < 1.5
    assert phantom["seg"].dtype == np.uint8 and phantom["seg"].shape == SHAPE


def test_affine_is_a_ras_grid_centred_on_the_origin(phantom):
    affine = phantom["affine"]
    spacing = (240 / SHAPE[0], 240 / SHAPE[1], 155 / SHAPE[2])
    np.testing.assert_allclose(affine[:3, :3], np.diag(spacing))
    centre = affine @ np.array([(n - 1) / 2 for n in SHAPE] + [1.0])
    np.testing.assert_allclose(centre[:3], 0.0, atol=1e-9)
    assert nib.aff2axcodes(affine) == ("R", "A", "S")


def test_brats_labels_all_present(phantom):
    labels = set(np.unique(phantom["seg"]).tolist())
    assert labels <= {0, 1, 2, 3}
    assert {1, 2, 3} <= labels


def test_tumour_contrasts(phantom):
    seg = phantom["seg"]
    et, ed, ncr = seg == 3, seg == 2, seg == 1
    assert phantom["t1c"][et].mean() > phantom["t1n"][et].mean() + 0.2  # enhancement
    assert phantom["t2f"][ed].mean() > phantom["t2f"][phantom["wm"] > 0.9].mean() + 0.2  # oedema bright
    assert phantom["t1n"][ncr].mean() < phantom["t1n"][phantom["wm"] > 0.9].mean()


def test_tissue_contrasts(phantom):
    healthy = phantom["seg"] == 0
    csf = (phantom["csf"] > 0.8) & healthy
    wm = (phantom["wm"] > 0.8) & healthy
    assert csf.sum() > 5 and wm.sum() > 50
    assert phantom["t1n"][csf].mean() < phantom["t1n"][wm].mean() - 0.2
    assert phantom["t2w"][csf].mean() > phantom["t2w"][wm].mean() + 0.2
    assert phantom["t2f"][csf].mean() < phantom["t2f"][wm].mean()


def test_background_is_exactly_zero(phantom):
    brain = (phantom["gm"] + phantom["wm"] + phantom["csf"]) >= 0.5
    assert 0.15 < brain.mean() < 0.6  # the brain fills much of the field of view, with a margin
    assert not brain[0].any() and not brain[-1].any() and not brain[:, 0].any() and not brain[:, -1].any()
    for c in CONTRASTS:
        assert np.all(phantom[c][~brain] == 0.0)
        assert np.all(phantom[c][brain] > 0.0)
    assert np.all(phantom["seg"][~brain] == 0)


@pytest.mark.parametrize("shape", [(17, 23, 15), (21, 16, 19)])
def test_odd_shapes(shape):
    p = make_brats_phantom(shape, seed=3)
    assert all(p[c].shape == shape for c in CONTRASTS)
    assert {1, 2, 3} <= set(np.unique(p["seg"]).tolist())


def test_explicit_spacing():
    p = make_brats_phantom((20, 20, 20), spacing=(6.0, 6.0, 6.0), seed=2)
    np.testing.assert_allclose(np.diag(p["affine"])[:3], 6.0)
    with pytest.raises(InputError, match="shape"):
        make_brats_phantom((20, 20))
    with pytest.raises(InputError, match="spacing"):
        make_brats_phantom((20, 20, 20), spacing=(1.0, 0.0, 1.0))


def test_written_case_loads_back(tmp_path):
    case = write_phantom_case(tmp_path, "BraTS-PHANTOM-00007-000", shape=(20, 22, 16), seed=7, drop="t2w")
    found = find_case(tmp_path / "BraTS-PHANTOM-00007-000")
    assert found.missing == case.missing == "t2w"
    assert found.paths == case.paths and found.seg == case.seg and found.name == case.name
    expected = make_brats_phantom((20, 22, 16), seed=7)
    for c, path in found.paths.items():
        vol = load_volume(path)
        np.testing.assert_array_equal(vol.data, expected[c])
        np.testing.assert_allclose(vol.affine, expected["affine"], atol=1e-6)
    seg = nib.load(found.seg)
    assert seg.get_data_dtype() == np.uint8
    np.testing.assert_array_equal(np.asarray(seg.dataobj), expected["seg"])
    with pytest.raises(OutputExistsError):
        write_phantom_case(tmp_path, "BraTS-PHANTOM-00007-000", shape=(20, 22, 16), seed=7, drop="t2w")
    with pytest.raises(InputError, match="drop"):
        write_phantom_case(tmp_path, "x", shape=(20, 22, 16), seed=7, drop="flair")


def test_written_dataset(tmp_path):
    cases = write_phantom_dataset(tmp_path, 2, shape=(16, 16, 12), seed0=5, drop="random")
    assert [c.name for c in cases] == ["BraTS-PHANTOM-00000-000", "BraTS-PHANTOM-00001-000"]
    listed = list_cases(tmp_path)
    assert [(c.name, c.missing) for c in listed] == [(c.name, c.missing) for c in cases]
    assert all(c.missing in CONTRASTS for c in listed)
    with pytest.raises(OutputExistsError):
        write_phantom_dataset(tmp_path, 3, shape=(16, 16, 12), seed0=5, drop="random")
    assert len(list_cases(tmp_path)) == 2  # nothing was written by the refused call
