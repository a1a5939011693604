"""BraTS-like phantoms: reproducible, plausible contrasts and labels, written as BraTS case folders."""

import nibabel as nib
import numpy as np
import pytest

from medfusion.apps.cwdm.layout import CONTRASTS, find_case, list_cases
from medfusion.phantoms.brain import make_brats_phantom
from medfusion.phantoms.brain_files import write_brats_case, write_brats_dataset
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
    case = write_brats_case(tmp_path, "BraTS-PHANTOM-00007-000", shape=(20, 22, 16), seed=7, drop="t2w")
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
        write_brats_case(tmp_path, "BraTS-PHANTOM-00007-000", shape=(20, 22, 16), seed=7, drop="t2w")
    with pytest.raises(InputError, match="drop"):
        write_brats_case(tmp_path, "x", shape=(20, 22, 16), seed=7, drop="flair")


def test_written_dataset(tmp_path):
    cases = write_brats_dataset(tmp_path, 2, shape=(16, 16, 12), seed0=5, drop="random")
    assert [c.name for c in cases] == ["BraTS-PHANTOM-00000-000", "BraTS-PHANTOM-00001-000"]
    listed = list_cases(tmp_path)
    assert [(c.name, c.missing) for c in listed] == [(c.name, c.missing) for c in cases]
    assert all(c.missing in CONTRASTS for c in listed)
    with pytest.raises(OutputExistsError):
        write_brats_dataset(tmp_path, 3, shape=(16, 16, 12), seed0=5, drop="random")
    assert len(list_cases(tmp_path)) == 2  # nothing was written by the refused call


# ---- structures outside the tumour: where the contrasts differ as real ones do ------------------------------

STRUCTURES = ("vein", "artery", "plexus", "dura", "cap")


@pytest.fixture(scope="module")
def default_phantom():
    """One phantom at the default shape (96×96×64, 2.5 mm), with its tissue and structure maps."""
    return make_brats_phantom(seed=5, return_tissues=True)


def _healthy_brain(p):
    from scipy import ndimage

    return (p["t1n"] > 0) & ~ndimage.binary_dilation(p["seg"] > 0, iterations=2)


def _deep_white_matter(p):
    """Healthy white matter at least a voxel away from every structure."""
    from scipy import ndimage

    near = ndimage.maximum_filter(sum(p[k] for k in STRUCTURES), size=3) >= 0.02
    return _healthy_brain(p) & (p["wm"] > 0.9) & ~near


def test_structure_maps_are_fractions_in_their_places(default_phantom):
    p = default_phantom
    brain = p["t1n"] > 0
    for k in (*STRUCTURES, "ventricles"):
        assert p[k].shape == p["t1n"].shape and p[k].dtype == np.float32
        assert p[k].min() >= 0.0 and p[k].max() <= 1.0
        assert (p[k][brain] > 0.3).sum() > 20, k  # each structure is resolved at 2.5 mm
    assert np.all(p["plexus"] <= p["ventricles"] / np.maximum(p["gm"] + p["wm"] + p["csf"], 1e-6) + 1e-6)
    assert p["wm"][p["cap"] > 0.3].mean() > 0.5  # the caps are periventricular white matter


def test_t1c_differs_from_t1n_in_vessels_plexus_and_dura_not_in_deep_white_matter(default_phantom):
    p, healthy = default_phantom, _healthy_brain(default_phantom)
    deep = _deep_white_matter(p)
    assert deep.sum() > 1000
    # each contrast in units of its own deep white matter (removes the per-contrast gain)
    diff = p["t1c"] / np.median(p["t1c"][deep]) - p["t1n"] / np.median(p["t1n"][deep])
    assert abs(diff[deep].mean()) < 0.01 and diff[deep].std() < 0.06  # noise and bias fields only
    for k, least in (("vein", 0.4), ("artery", 0.2), ("plexus", 0.2), ("dura", 0.1)):
        m = healthy & (p[k] > 0.3)
        assert diff[m].mean() > least, (k, diff[m].mean())


def test_t2w_and_flair_differ_in_csf_plexus_and_caps(default_phantom):
    p, healthy = default_phantom, _healthy_brain(default_phantom)
    deep = _deep_white_matter(p)
    plexus = healthy & (p["plexus"] > 0.3)
    csf = healthy & (p["ventricles"] > 0.8) & (p["plexus"] < 0.02)
    assert p["t2w"][plexus].mean() < p["t2w"][csf].mean() - 0.1  # darker than CSF on T2w
    assert p["t2f"][plexus].mean() > p["t2f"][csf].mean() + 0.1  # brighter than CSF on FLAIR
    caps = healthy & (p["cap"] > 0.4)
    for c in ("t2w", "t2f"):
        assert p[c][caps].mean() > 1.15 * np.median(p[c][deep])  # bright periventricular caps
    veins = healthy & (p["vein"] > 0.5)
    grey = healthy & (p["gm"] > 0.8) & (p["vein"] + p["artery"] < 0.02)
    for c in ("t2w", "t2f"):
        assert p[c][veins].mean() < 0.5 * np.median(p[c][grey])  # flow voids
    assert p["t1c"][veins].mean() > 1.5 * np.median(p["t1c"][grey])  # enhancing on t1c


def test_best_other_contrast_is_clearly_imperfect_for_every_contrast(default_phantom):
    """The oracle baseline (best histogram-matched other contrast) against each contrast, 0.1/99.9 percentile
    normalised.  Measured at seed 5: whole volume 0.966 / 0.953 / 0.837 / 0.841, healthy brain 0.896 / 0.847 /
    0.423 / 0.453; without the structures outside the tumour t1n and t1c were 0.983 / 0.976 (0.957 / 0.937)."""
    from medfusion.apps.cwdm.baseline import best_contrast_baseline
    from medfusion.apps.cwdm.transforms import normalize
    from medfusion.metrics import ssim

    p = default_phantom
    norm = dict(zip(CONTRASTS, normalize([p[c] for c in CONTRASTS])))
    healthy = _healthy_brain(p)
    limits = {"t1n": (0.975, 0.93), "t1c": (0.965, 0.90), "t2w": (0.87, 0.55), "t2f": (0.87, 0.55)}
    for c, (whole, inside) in limits.items():
        _, base = best_contrast_baseline({k: v for k, v in norm.items() if k != c}, norm[c])
        assert ssim(base, norm[c], data_range=1.0) < whole, c
        assert ssim(base, norm[c], data_range=1.0, mask=healthy) < inside, c


def test_structures_are_drawn_from_the_seed_and_independent_of_the_grid():
    a = make_brats_phantom((48, 48, 32), seed=8, return_tissues=True)
    again = make_brats_phantom((48, 48, 32), seed=8, return_tissues=True)
    other = make_brats_phantom((48, 48, 32), seed=9, return_tissues=True)
    fine = make_brats_phantom((96, 96, 64), seed=8, return_tissues=True)
    for k in STRUCTURES:
        np.testing.assert_array_equal(again[k], a[k])
    assert not np.array_equal(other["vein"], a["vein"])

    def centre_mm(p, k):  # centre of mass of a structure in world mm
        idx = np.argwhere(p[k] > 0)
        w = p[k][p[k] > 0]
        return (w[:, None] * idx).sum(0) / w.sum() @ p["affine"][:3, :3].T + p["affine"][:3, 3]

    for k in ("vein", "artery", "plexus"):
        assert np.linalg.norm(centre_mm(a, k) - centre_mm(fine, k)) < 3.0, k  # same anatomy at 5 and 2.5 mm
        assert np.linalg.norm(centre_mm(a, k) - centre_mm(other, k)) > 0.0


@pytest.mark.parametrize("shape, spacing", [((5, 4, 3), None), ((40, 36, 30), (1.0, 1.5, 4.0)),
                                            ((9, 70, 11), (12.0, 1.2, 9.0))])
def test_structures_at_any_size_and_spacing(shape, spacing):
    p = make_brats_phantom(shape, spacing=spacing, seed=4, return_tissues=True)
    for k in (*CONTRASTS, *STRUCTURES):
        assert p[k].shape == shape and np.all(np.isfinite(p[k]))
    for k in STRUCTURES:
        assert p[k].min() >= 0.0 and p[k].max() <= 1.0
    for c in CONTRASTS:
        assert p[c].min() >= 0.0 and p[c].max() < 2.0


def test_necrotic_core_has_no_pattern_at_the_nyquist_frequency(default_phantom):
    """The necrotic core is flat plus white noise: no Haar detail band has a coherent (same-sign) part, so a
    2-voxel checkerboard in a synthesized core is not in the data."""
    import pywt

    p = default_phantom
    ncr = p["seg"] == 1
    x, y, z = (n - n % 2 for n in ncr.shape)
    blocks = ncr[:x, :y, :z].reshape(x // 2, 2, y // 2, 2, z // 2, 2).all(axis=(1, 3, 5))
    assert blocks.sum() > 30
    for c in CONTRASTS:
        bands = pywt.dwtn(p[c][:x, :y, :z], "haar")
        for name in ("aad", "ada", "daa", "add", "dad", "dda", "ddd"):
            d = bands[name][blocks]
            assert abs(d.mean()) < 0.35 * np.sqrt(np.mean(d**2)), (c, name)
