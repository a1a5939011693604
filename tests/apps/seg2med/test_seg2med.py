"""seg2med: TotalSegmentator classes, tissue values, prior images and the ``prior``/``masks`` commands.

References: TotalSegmentator's own class map and weight table (its Python files, installed without dependencies
by ``dev.sh``), the values the seg2med paper publishes, and the MR signal equations written out here.
"""

from __future__ import annotations

import warnings

import nibabel as nib
import numpy as np
import pytest

from medfusion.apps.seg2med import tissues
from medfusion.apps.seg2med.prior import body_from_ct, body_from_labels, check_label_map, make_prior
from medfusion.errors import InputError
from conftest import run_cli

TOTAL = {name: label for label, name in tissues.class_names("total").items()}


# ---- class names and tissue values --------------------------------------------------------------------------

@pytest.mark.parametrize("task", ["total", "total_mr"])
def test_class_names_equal_totalsegmentators(task):
    map_to_binary = pytest.importorskip("totalsegmentator.map_to_binary")
    assert tissues.class_names(task) == dict(map_to_binary.class_map[task])
    assert len(tissues.class_names(task)) == {"total": 117, "total_mr": 50}[task]


@pytest.mark.parametrize("task", ["total", "total_mr"])
@pytest.mark.parametrize("modality", tissues.MODALITIES)
def test_every_class_has_a_listed_tissue(task, modality):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a class falling back to the default tissue would warn
        lut = tissues.label_values(modality, task)
    assert lut.shape == (max(tissues.class_names(task)) + 1,) and np.all(np.isfinite(lut))


def test_unlisted_class_gets_the_default_tissue_with_a_warning():
    with pytest.warns(UserWarning, match="not in medfusion's tissue table"):
        assert tissues.tissue_name("some_new_structure") == "soft_tissue"


def test_published_ct_values():
    """The Hounsfield values the seg2med paper names."""
    lut = tissues.label_values("ct")
    published = {"liver": 50, "spleen": 40, "kidney_left": 30, "kidney_right": 30, "gallbladder": -5,
                 "lung_lower_lobe_left": -800, "trachea": -1000, "vertebrae_L1": 300, "rib_left_3": 700,
                 "hip_right": 700, "femur_left": 700, "gluteus_maximus_left": 60, "iliopsoas_right": 60}
    assert {name: float(lut[TOTAL[name]]) for name in published} == published
    assert lut[0] == 0  # unlabelled body
    assert tissues.tissue_value("air", "ct") == -1000


def _spgr(pd, t1, t2, tr, te, flip_deg):
    a = np.deg2rad(flip_deg)
    e1 = np.exp(-tr / t1)
    return pd * np.sin(a) * (1 - e1) / (1 - np.cos(a) * e1) * np.exp(-te / t2)


def test_mr_signal_water_tissue_is_the_textbook_equation():
    scale = tissues.tissue_table().mr_scale
    got_t1 = tissues.mr_signal(0.7, 586.0, 46.0, 0.0, "t1")
    got_t2 = tissues.mr_signal(0.7, 586.0, 46.0, 0.0, "t2")
    assert got_t1 == pytest.approx(scale * _spgr(0.7, 586.0, 46.0, 7.25, 4.54, 10.0), rel=1e-12)
    assert got_t2 == pytest.approx(scale * 0.7 * (1 - np.exp(-4000 / 586)) * np.exp(-90 / 46), rel=1e-12)


def test_opposed_phase_cancels_equal_water_and_fat():
    """At 1.5 T the fat peak (−3.4 ppm ≈ −217 Hz) is opposed to water at TE 2.30 ms and in phase at 4.54 ms: a
    voxel half water, half fat with fat's relaxation times nearly vanishes in the opposed-phase echo."""
    fat = tissues.tissue_table().fat
    args = (1.0, fat["t1_ms"], fat["t2_ms"], 0.5)
    opposed, in_phase = tissues.mr_signal(*args, "t1_opposed"), tissues.mr_signal(*args, "t1")
    assert opposed < 0.02 * in_phase
    # and the marrow of a vertebra (fat fraction 0.5) is far darker opposed than in phase
    lut_in, lut_opp = tissues.label_values("t1"), tissues.label_values("t1_opposed")
    assert lut_opp[TOTAL["vertebrae_L2"]] < 0.3 * lut_in[TOTAL["vertebrae_L2"]]
    assert lut_opp[TOTAL["liver"]] > 0.9 * lut_in[TOTAL["liver"]]


def test_t2_contrast_order():
    lut = tissues.label_values("t2")
    assert lut[TOTAL["urinary_bladder"]] > lut[TOTAL["spleen"]] > lut[TOTAL["liver"]] > lut[TOTAL["lung_upper_lobe_left"]]
    assert lut[TOTAL["trachea"]] == 0


# ---- prior images ---------------------------------------------------------------------------------------------

def _labels(shape=(24, 20, 6)):
    lab = np.zeros(shape, dtype=np.uint8)
    lab[6:14, 5:12, 1:5] = TOTAL["liver"]
    lab[15:19, 8:12, 2:4] = TOTAL["spleen"]
    lab[10:12, 2:4, :] = TOTAL["vertebrae_L1"]
    return lab


def test_prior_ct_as_published():
    lab = _labels()
    body = np.zeros(lab.shape, bool)
    body[3:21, 1:18, :] = True
    prior = make_prior(lab, "ct", body=body)
    assert prior.dtype == np.float32 and prior.shape == lab.shape
    assert np.all(prior[lab == TOTAL["liver"]] == 50) and np.all(prior[lab == TOTAL["spleen"]] == 40)
    assert np.all(prior[(lab == 0) & body] == 0) and np.all(prior[~body] == -1000)


def test_prior_mr_uses_the_sequence_signal():
    lab = _labels()
    prior = make_prior(lab, "t2", spacing=(5.0, 5.0, 5.0), table="medfusion")  # body: labels widened by 3 voxels
    liver = tissues.tissue_table().tissues["liver"]
    expected = tissues.mr_signal(liver.pd, liver.t1_ms, liver.t2_ms, liver.fat_fraction, "t2")
    assert np.allclose(prior[lab == TOTAL["liver"]], expected, rtol=1e-6)
    assert prior[0, 0, 0] == 0  # air outside the body


def test_body_from_labels_covers_the_labels_and_a_margin():
    lab = _labels()
    body = body_from_labels(lab, spacing=(2.0, 2.0, 3.0), margin_mm=4.0)
    assert body[lab > 0].all()
    assert body[4, 8, 2] and not body[0, 0, 2]  # 2 voxels (4 mm) beyond the liver, not the corner
    assert not body[:, :, 0].any() or lab[:, :, 0].any()


def test_body_from_ct_is_the_published_rule():
    x, y, z = np.meshgrid(*(np.arange(n) for n in (40, 36, 8)), indexing="ij")
    ct = np.full((40, 36, 8), -1000.0)
    inside = (x - 20) ** 2 / 15**2 + (y - 18) ** 2 / 12**2 <= 1
    ct[inside] = 40.0
    ct[(x - 15) ** 2 + (y - 18) ** 2 <= 16] = -850.0  # a lung: air inside the body
    ct[1:3, 1:3, :] = 100.0  # a separate blob (the table): not the largest component
    body = body_from_ct(ct)
    assert np.array_equal(body, inside)


@pytest.mark.parametrize("bad, match", [
    (np.full((4, 4), 5), "3D label map"),
    (np.full((4, 4, 4, 2), 5), "3D label map"),
    (np.full((4, 4, 4), 5.5), "non-integer"),
    (np.full((4, 4, 4), -1), "negative"),
    (np.full((4, 4, 4), 200), "200"),
    (np.zeros((4, 4, 4)), "empty"),
    (np.full((4, 4, 4), np.nan), "NaN"),
])
def test_bad_label_maps(bad, match):
    with pytest.raises(InputError, match=match):
        check_label_map(bad)


def test_total_mr_labels_outside_its_50_classes_are_refused():
    lab = np.full((4, 4, 4), 60)
    check_label_map(lab, "total")
    with pytest.raises(InputError, match="'total_mr' classes"):
        check_label_map(lab, "total_mr")


# ---- commands ---------------------------------------------------------------------------------------------------

def _write_mask(path, data, affine=None):
    if affine is None:
        affine = np.array([[0, -1.5, 0, 30], [1.2, 0, 0, -20], [0, 0, 3.0, 5], [0, 0, 0, 1]])  # rotated, anisotropic
    nib.save(nib.Nifti1Image(data, affine), str(path))
    return str(path)


@pytest.mark.slow
def test_prior_command_keeps_the_geometry(tmp_path):
    mask = _write_mask(tmp_path / "mask.nii.gz", _labels(shape=(25, 19, 7)))
    out = tmp_path / "prior.nii.gz"
    r = run_cli("prior", "--mask", mask, "--modality", "ct", "--out", out)
    assert r.returncode == 0, r.stderr
    img, ref = nib.load(str(out)), nib.load(mask)
    assert img.shape == ref.shape and np.allclose(img.affine, ref.affine)
    data = img.get_fdata()
    assert set(np.unique(data)) == {-1000.0, 0.0, 40.0, 50.0, 300.0}


@pytest.mark.slow
def test_prior_command_tables_tissues_and_the_body_warning(tmp_path):
    """--tissues paints fat and muscle under the organs; --table picks the values (the authors' sacrum 700 HU,
    medfusion's 300); without --body one warning line says where the contour came from."""
    lab = _labels(shape=(25, 19, 7))
    lab[2:4, 2:4, :] = TOTAL["sacrum"]
    tissues = np.zeros(lab.shape, np.uint8)
    tissues[5:20, 14:17, :] = 1
    mask = _write_mask(tmp_path / "mask.nii.gz", lab)
    tis = _write_mask(tmp_path / "tissues.nii.gz", tissues)
    values = {}
    for table in ("seg2med", "medfusion"):
        out = tmp_path / f"{table}.nii.gz"
        r = run_cli("prior", "--mask", mask, "--modality", "ct", "--out", out, "--tissues", tis, "--table", table)
        assert r.returncode == 0, r.stderr
        assert r.stderr.count("\n") == 1 and "warning: no body mask given" in r.stderr and "2 mm" in r.stderr
        data = nib.load(str(out)).get_fdata()
        values[table] = (data[2, 2, 0], data[10, 15, 0])
    assert values == {"seg2med": (700.0, -100.0), "medfusion": (300.0, -100.0)}
    bad = _write_mask(tmp_path / "bad.nii.gz", tissues * 5)
    r = run_cli("prior", "--mask", mask, "--modality", "ct", "--out", tmp_path / "x.nii.gz", "--tissues", bad)
    assert r.returncode == 2 and "tissue_types labels 0–3" in r.stderr and not (tmp_path / "x.nii.gz").exists()


@pytest.mark.parametrize("case", ["non_integer", "unknown", "empty", "2d", "exists", "body_grid"])
def test_prior_command_bad_input(tmp_path, case, capsys):
    lab = _labels().astype(np.float32)
    out = tmp_path / "prior.nii.gz"
    extra = []
    if case == "non_integer":
        lab[0, 0, 0] = 0.5
    elif case == "unknown":
        lab[0, 0, 0] = 130
    elif case == "empty":
        lab[:] = 0
    elif case == "2d":
        lab = lab[:, :, 0]
    elif case == "exists":
        out.write_bytes(b"keep")
    elif case == "body_grid":
        extra = ["--body", _write_mask(tmp_path / "body.nii.gz", np.ones((5, 5, 5), np.uint8))]
    mask = _write_mask(tmp_path / "mask.nii.gz", lab)
    from medfusion.cli.main import main

    capsys.readouterr()
    rc = main(["prior", "--mask", mask, "--modality", "t1", "--out", str(out), *extra])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and err.startswith("medfusion prior: error:"), err
    assert (out.read_bytes() == b"keep") if case == "exists" else not out.exists()


def test_masks_without_totalsegmentator(tmp_path, monkeypatch):
    import sys

    from medfusion.cli.main import main

    monkeypatch.setitem(sys.modules, "totalsegmentator", None)  # as if not installed
    monkeypatch.setitem(sys.modules, "totalsegmentator.config", None)
    image = _write_mask(tmp_path / "ct.nii.gz", np.arange(512, dtype=np.float32).reshape(8, 8, 8))
    assert main(["masks", "--image", image, "--out", str(tmp_path / "m.nii.gz")]) == 2
    assert not (tmp_path / "m.nii.gz").exists()


@pytest.mark.slow
@pytest.mark.parametrize("task, fast, folder, command", [
    ("total", False, "Dataset291_TotalSegmentator_part1_organs_1559subj", "-t total"),
    ("total_mr", True, "Dataset852_TotalSegMRI_total_3mm_1088subj", "-t total_fast_mr"),
])
def test_masks_without_weights_says_what_to_install(tmp_path, task, fast, folder, command):
    pytest.importorskip("totalsegmentator.map_tasks_config")
    image = _write_mask(tmp_path / "ct.nii.gz", np.arange(512, dtype=np.float32).reshape(8, 8, 8))
    out = tmp_path / "m.nii.gz"
    env = {"TOTALSEG_HOME_DIR": str(tmp_path / "tshome"), "TOTALSEG_WEIGHTS_PATH": str(tmp_path / "weights")}
    r = run_cli("masks", "--image", image, "--out", out, "--task", task, *(["--fast"] if fast else []), env=env)
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert folder in r.stderr and command in r.stderr and "downloads nothing" in r.stderr
    assert not out.exists()


@pytest.mark.slow
def test_masks_tissues_without_weights_names_the_licensed_task(tmp_path):
    pytest.importorskip("totalsegmentator.map_tasks_config")
    image = _write_mask(tmp_path / "ct.nii.gz", np.arange(512, dtype=np.float32).reshape(8, 8, 8))
    outs = [tmp_path / "m.nii.gz", tmp_path / "t.nii.gz"]
    env = {"TOTALSEG_HOME_DIR": str(tmp_path / "tshome"), "TOTALSEG_WEIGHTS_PATH": str(tmp_path / "weights")}
    from medfusion.apps.seg2med.masks import _weight_folders

    for folder in _weight_folders("total", False):  # the organs' weights are there, the tissues' are not
        (tmp_path / "weights" / folder).mkdir(parents=True)
    r = run_cli("masks", "--image", image, "--out", outs[0], "--tissues", outs[1], env=env)
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert "tissue_types" in r.stderr and "Dataset481" in r.stderr and "licence" in r.stderr
    assert not any(p.exists() for p in outs)


def test_phantoms_command_abdomen(tmp_path, capsys):
    from medfusion.cli.main import main

    out = tmp_path / "abd"
    assert main(["phantoms", "--kind", "abdomen", "--out", str(out), "--n", "2", "--shape", "20", "18", "16"]) == 0
    cases = sorted(p.name for p in out.iterdir())
    assert cases == ["ABD-PHANTOM-00000", "ABD-PHANTOM-00001"]
    assert sorted(p.name for p in (out / cases[0]).iterdir()) == sorted(f"{k}.nii.gz" for k in
                                                                         ("mask", "body", "tissues", "ct", "t1", "t2"))
    capsys.readouterr()
    assert main(["phantoms", "--kind", "abdomen", "--out", str(tmp_path / "x"), "--drop", "t1"]) == 2
    assert "--drop is for --kind brats" in capsys.readouterr().err and not (tmp_path / "x").exists()
