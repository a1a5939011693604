"""The BraTS lesion-wise protocols (`medfusion evaluate --protocol brats-*`) against the organisers' own package.

The reference is the ``brats-evaluation`` package run as its authors run it (its command on folders of NIfTI files,
or its ``evaluate_single_exam`` on file paths) with its bundled configurations; medfusion must return the same
value for every region and field, on cases with exact, missed, spurious, merged and split lesions and empty regions.
With anisotropic voxels the official route pairs the spacing with the wrong axes (SimpleITK arrays are z, y, x);
there the reference is the same engine and configuration given each axis's own spacing.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from importlib.resources import files

import nibabel as nib
import numpy as np
import pytest
from brats_evaluation.evaluation import evaluate_single_exam
from panoptica import Panoptica_Evaluator

from conftest import run_cli, run_env
from medfusion.errors import InputError
from medfusion.evaluate import evaluate, evaluate_arrays

SHAPE = (40, 36, 28)
#: panoptica warns on every NSD computation it is called for directly here (medfusion's own calls are quiet)
pytestmark = pytest.mark.filterwarnings("ignore:The threshold is set to 0.5:UserWarning")


def config_path(name):
    return str(files("brats_evaluation").joinpath("configs", f"config_{name}.yaml"))


def ball(shape, centre, radius, spacing=(1.0, 1.0, 1.0)):
    grid = np.indices(shape)
    return sum(((g - c) * s) ** 2 for g, c, s in zip(grid, centre, spacing)) <= radius**2


def lesion(vol, centre, radius, spacing=(1.0, 1.0, 1.0), labels=(2, 3, 1)):
    """A glioma-like lesion: oedema (SNFH), an enhancing rim (ET) and a necrotic core (NETC)."""
    for label, r in zip(labels, (radius, 0.7 * radius, 0.35 * radius)):
        vol[ball(vol.shape, centre, r, spacing)] = label
    return vol


def gli_cases():
    """name → (pred, ref): every situation the lesion-wise matching has a convention for."""
    z = lambda: np.zeros(SHAPE, np.uint8)  # noqa: E731
    two = lesion(lesion(z(), (10, 10, 8), 6), (28, 24, 18), 7)
    cases = {"exact": (two.copy(), two)}
    cases["missed"] = (lesion(z(), (10, 10, 8), 6), two)                            # one lesion not found
    spurious = two.copy()
    spurious[ball(SHAPE, (30, 8, 6), 3)] = 3                                         # an ET lesion that is not there
    cases["spurious"] = (spurious, two)
    ref = z()
    ref[ball(SHAPE, (20, 12, 14), 4)] = 3
    ref[ball(SHAPE, (20, 23, 14), 4)] = 3                                            # two ET lesions ...
    merged = ref.copy()
    merged[18:23, 12:24, 12:17] = 3                                                  # ... predicted as one
    cases["merged"] = (merged, ref)
    one = lesion(z(), (20, 18, 14), 8)
    split = one.copy()
    split[:, 17:20, :] = 0                                                           # one lesion predicted as two
    cases["split"] = (split, one)
    cases["empty_prediction"] = (z(), two)
    rc = two.copy()
    rc[ball(SHAPE, (30, 28, 6), 3)] = 4                                              # resection cavity missed
    shifted = np.roll(two, 2, axis=0)
    cases["shifted_rc_missed"] = (shifted, rc)
    return cases


def write_cases(root, cases, affine=np.eye(4), prefix="BraTS-GLI", ref_suffix=""):
    """The official command's layout: ref/ and pred/ with subject-numbered names (``ref_suffix="-seg"``: the
    references named as BraTS distributes them, ``BraTS-GLI-00001-000-seg.nii.gz``)."""
    names = {}
    for i, (key, (pred, ref)) in enumerate(cases.items(), start=1):
        name = f"{prefix}-{i:05d}-000"
        for sub, arr, suffix in (("pred", pred, ""), ("ref", ref, ref_suffix)):
            os.makedirs(root / sub, exist_ok=True)
            nib.save(nib.Nifti1Image(arr.astype(np.uint8), affine), str(root / sub / f"{name}{suffix}.nii.gz"))
        names[key] = name
    return names


def as_float(v):
    if v is None:
        return math.nan
    return float(v)


def same(a, b) -> bool:
    a, b = as_float(a), as_float(b)
    return (math.isnan(a) and math.isnan(b)) or a == b


def assert_matches(ours: dict, official: dict, case: str):
    """Every field the official engine reports, for every region, equals ours; fields it leaves out are NaN."""
    regions = [k for k, v in official.items() if isinstance(v, dict)]
    assert regions, official
    for region in regions:
        ref = {k: v for k, v in official[region].items() if k != "reference_instances"}
        mine = {k[len(region) + 1:]: v for k, v in ours.items() if k.startswith(region + "_")}
        assert set(ref) <= set(mine), (case, region, set(ref) - set(mine))
        for field, value in ref.items():
            assert same(mine[field], value), (case, region, field, mine[field], value)
        for field in set(mine) - set(ref):
            assert math.isnan(as_float(mine[field])), (case, region, field, mine[field])


@pytest.fixture(scope="module")
def gli(tmp_path_factory):
    root = tmp_path_factory.mktemp("gli")
    names = write_cases(root, gli_cases(), ref_suffix="-seg")
    return root, names


@pytest.mark.slow
def test_gli_equals_the_official_command_on_every_case_region_and_field(gli, tmp_path):
    root, names = gli
    summary = tmp_path / "official.json"
    proc = subprocess.run([sys.executable, "-m", "brats_evaluation.evaluation", "--ref_path", str(root / "ref"),
                           "--pred_path", str(root / "pred"), "--config", "gli", "--summary_json", str(summary)],
                          capture_output=True, text=True, env=run_env())
    assert proc.returncode == 0, proc.stderr
    official = {m["subject_name"].removesuffix("-seg.nii.gz"): m for m in json.load(open(summary))["metrics"]}
    assert set(official) == set(names.values()) and not any("error" in m for m in official.values())

    out = tmp_path / "ours.json"
    proc = run_cli("evaluate", "--pred", root / "pred", "--ref", root / "ref", "--protocol", "brats-gli",
                   "--out", out, "--quiet")
    assert proc.returncode == 0, proc.stderr
    report = json.load(open(out))
    ours = {c["case"]: c for c in report["cases"]}
    assert set(ours) == set(official)
    for name in official:
        assert_matches(ours[name], official[name], name)

    # the situations are really there (so the equality above covers them)
    by = {k: ours[v] for k, v in names.items()}
    assert by["exact"]["wt_sq_dsc"] == 1.0 and by["exact"]["wt_fp"] == 0
    assert by["missed"]["wt_fn"] == 1 and by["missed"]["wt_tp"] == 1
    assert by["spurious"]["et_fp"] == 1
    assert by["merged"]["et_n_ref_instances"] == 2 and by["merged"]["et_n_pred_instances"] == 1
    assert by["split"]["wt_n_ref_instances"] == 1 and by["split"]["wt_n_pred_instances"] == 2
    assert by["empty_prediction"]["wt_sq_hd95"] == "inf"       # infinity written as "inf", not dropped
    assert by["exact"]["rc_sq_dsc"] is None                    # no RC on either side: NaN, written as null
    assert by["shifted_rc_missed"]["rc_fn"] == 1
    s = report["summary"]["wt_sq_hd95"]
    assert s["undefined"] == 1 and s["n"] == len(names) - 1   # the infinity is counted, not averaged in
    assert report["settings"]["conventions"]["engine"].startswith("panoptica")


def test_workers_and_csv_give_the_same_values(gli, tmp_path):
    root, _ = gli
    one = evaluate(str(root / "pred"), str(root / "ref"), protocol="brats-gli", workers=1, progress=False)
    two = evaluate(str(root / "pred"), str(root / "ref"), protocol="brats-gli", workers=2, progress=False)
    for a, b in zip(one.cases, two.cases):
        assert a.keys() == b.keys() and all(same(a[k], b[k]) for k in a if k not in ("case", "pred", "ref"))
    csv_text = one.to_csv()
    header = csv_text.splitlines()[0].split(",")
    assert header[3:6] == ["wt_sq_dsc", "wt_sq_hd95", "wt_sq_nsd"]       # merged regions first, lesion-wise first
    assert ",inf," in csv_text


def test_metrics_subset_and_plots(gli, tmp_path):
    root, _ = gli
    rep = evaluate(str(root / "pred"), str(root / "ref"), protocol="brats-gli", metrics=["sq_dsc", "fn"],
                   progress=False)
    assert rep.metric_names == [f"{r}_{f}" for r in ("wt", "tc", "snfh", "et", "netc", "rc") for f in ("sq_dsc", "fn")]
    written = rep.plot(str(tmp_path / "plots"))
    assert [os.path.basename(p) for p in written] == ["metrics.png", "worst_case.png"]
    with pytest.raises(InputError, match="no metric dice"):
        evaluate(str(root / "pred"), str(root / "ref"), protocol="brats-gli", metrics=["dice"], progress=False)


@pytest.mark.parametrize("config,labels", [("mets", (1, 2, 3, 4)), ("ped", (1, 2, 3, 4)), ("MenPre", (1, 2, 3)),
                                           ("MenRT", (1,)), ("GoAT", (1, 2, 3))])
def test_other_challenges_equal_the_official_engine(config, labels, tmp_path):
    lab = (labels + labels)[:3] if len(labels) > 1 else (1, 1, 1)
    ref = lesion(lesion(np.zeros(SHAPE, np.uint8), (12, 12, 9), 6, labels=lab), (28, 24, 18), 5, labels=lab)
    pred = np.roll(ref, 1, axis=1)
    pred[ball(SHAPE, (30, 8, 6), 2)] = labels[-1]               # a spurious lesion
    pred[ball(SHAPE, (28, 24, 18), 6)] = 0                      # a missed one
    if 4 in labels:
        ref[ball(SHAPE, (10, 28, 20), 3)] = 4
    names = write_cases(tmp_path, {"a": (pred, ref), "b": (ref.copy(), ref)}, prefix="BraTS-X")
    ev = Panoptica_Evaluator.load_from_config(config_path(config))
    rep = evaluate(str(tmp_path / "pred"), str(tmp_path / "ref"), protocol=f"brats-{config.lower()}", progress=False)
    ours = {c["case"]: c for c in rep.cases}
    for name in names.values():
        official = evaluate_single_exam(str(tmp_path / "pred" / f"{name}.nii.gz"),
                                        str(tmp_path / "ref" / f"{name}.nii.gz"), name, ev)
        assert "error" not in official
        assert_matches(ours[name], official, name)


def test_anisotropic_spacing_each_axis_with_its_own(tmp_path):
    spacing = (1.0, 1.0, 3.0)
    ref = np.zeros((40, 30, 20), np.uint8)
    ref[5:15, 5:15, 5:10] = 1
    pred = np.zeros_like(ref)
    pred[8:15, 5:15, 5:11] = 1     # 3 voxels short along x (3 mm), one slice too many along z (3 mm)
    write_cases(tmp_path, {"a": (pred, ref)}, affine=np.diag(spacing + (1.0,)), prefix="BraTS-MEN-RT")
    ev = Panoptica_Evaluator.load_from_config(config_path("MenRT"))
    rep = evaluate(str(tmp_path / "pred"), str(tmp_path / "ref"), protocol="brats-menrt", progress=False)
    ours = rep.cases[0]
    paired = ev.evaluate(pred, ref, voxelspacing=spacing)["gtv"].to_dict(True)
    assert_matches(ours, {"gtv": paired}, "anisotropic")
    # what the official command computes from the same files: the (z, y, x) array with the (x, y, z) spacing
    f = lambda sub: str(tmp_path / sub / "BraTS-MEN-RT-00001-000.nii.gz")  # noqa: E731
    official = evaluate_single_exam(f("pred"), f("ref"), "a", ev)["gtv"]
    swapped = ev.evaluate(pred.T.copy(), ref.T.copy(), voxelspacing=spacing)["gtv"].to_dict(True)
    assert official["sq_hd95"] == swapped["sq_hd95"] == 9.0      # 3 voxels × 3 mm: x's shortfall at z's spacing
    assert ours["gtv_sq_hd95"] == paired["sq_hd95"] == 3.0


def test_arrays_api_and_bad_input(tmp_path):
    ref = lesion(np.zeros(SHAPE, np.uint8), (20, 18, 14), 7)
    rep = evaluate_arrays([{"case": "x", "pred": ref, "ref": ref, "spacing": (1.0, 1.0, 1.0)}], protocol="brats-gli")
    assert rep.cases[0]["wt_sq_dsc"] == 1.0
    bad = ref.copy()
    bad[0, 0, 0] = 4
    with pytest.raises(InputError, match="4"):                   # GoAT has no label 4
        evaluate_arrays([{"case": "x", "pred": ref, "ref": bad}], protocol="brats-goat")
    with pytest.raises(InputError, match="3D label maps"):
        evaluate_arrays([{"case": "x", "pred": ref[:, :, 5], "ref": ref[:, :, 5]}], protocol="brats-gli")
    with pytest.raises(InputError, match="--labels"):
        evaluate_arrays([{"case": "x", "pred": ref, "ref": ref}], protocol="brats-gli", labels={1: "a"})
    with pytest.raises(InputError, match="empty"):
        evaluate_arrays([{"case": "x", "pred": ref, "ref": ref}], protocol="brats-gli", hd95_empty=373.0)


@pytest.mark.slow
def test_without_the_extra_one_line_and_exit_2(gli, tmp_path):
    root, _ = gli
    block = tmp_path / "block" / "panoptica"
    block.mkdir(parents=True)
    (block / "__init__.py").write_text("raise ImportError('blocked for this test', name='panoptica')\n")
    out = tmp_path / "r.json"
    env = {"PYTHONPATH": str(tmp_path / "block") + os.pathsep + run_env()["PYTHONPATH"]}
    proc = run_cli("evaluate", "--pred", root / "pred", "--ref", root / "ref", "--protocol", "brats-ped",
                   "--out", out, env=env)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "pip install 'medfusion[brats]'" in proc.stderr
    assert not out.exists()


def test_cli_lists_every_challenge():
    from medfusion.cli.evaluate import BRATS
    from medfusion.metrics.brats import CHALLENGES

    assert BRATS == tuple(CHALLENGES)


def test_geometry_is_checked_and_resample_works(tmp_path):
    ref = lesion(np.zeros(SHAPE, np.uint8), (20, 18, 14), 7)
    moved = np.eye(4)
    moved[:3, 3] = (2.0, 0.0, 0.0)                              # the prediction's grid starts 2 mm further along x
    write_cases(tmp_path / "a", {"x": (ref, ref)})
    pred_file = tmp_path / "a" / "pred" / "BraTS-GLI-00001-000.nii.gz"
    nib.save(nib.Nifti1Image(np.roll(ref, -2, axis=0), moved), str(pred_file))
    with pytest.raises(InputError, match="--resample"):
        evaluate(str(tmp_path / "a" / "pred"), str(tmp_path / "a" / "ref"), protocol="brats-gli", progress=False)
    rep = evaluate(str(tmp_path / "a" / "pred"), str(tmp_path / "a" / "ref"), protocol="brats-gli", resample=True,
                   progress=False)
    # on the reference grid the shifted prediction is the reference again (the lesion is far from the edges)
    assert rep.cases[0]["wt_sq_dsc"] == 1.0 and rep.cases[0]["wt_fp"] == 0
