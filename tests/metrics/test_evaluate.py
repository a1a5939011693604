"""`medfusion evaluate` end to end: protocols against independent references, reports, pairing, geometry, errors.

Volumes are tiny NIfTI files with a real (anisotropic, oblique-free) affine; every expected value is computed in
the test with scikit-image, MONAI or by hand, never taken from medfusion itself.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest

from medfusion.errors import InputError
from medfusion.evaluate import evaluate, pair_cases

SPACING = (1.2, 1.0, 2.5)
AFFINE = np.diag(SPACING + (1.0,))
AFFINE[:3, 3] = (-20.0, 10.0, 5.0)


def write(path, data, affine=AFFINE, dtype=np.float32):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    nib.save(nib.Nifti1Image(np.asarray(data, dtype=dtype), affine), str(path))
    return str(path)


def smooth_volume(rng, shape=(24, 22, 20)):
    from scipy.ndimage import gaussian_filter

    v = gaussian_filter(rng.random(shape), 2.0)
    return (v - v.min()) / (v.max() - v.min())


def blob_labels(shape, centres, radii, labels):
    grid = np.indices(shape)
    out = np.zeros(shape, dtype=np.uint8)
    for c, r, lab in zip(centres, radii, labels):
        d2 = sum(((g - ci) * s) ** 2 for g, ci, s in zip(grid, c, SPACING))
        out[d2 <= r * r] = lab
    return out


@pytest.fixture
def image_folders(tmp_path):
    rng = np.random.default_rng(0)
    truth, preds = {}, {}
    for i in range(3):
        ref = smooth_volume(rng) * 900 + 50
        pred = ref + rng.normal(0, 20 + 10 * i, ref.shape)
        truth[f"case{i}"], preds[f"case{i}"] = ref, pred
        write(tmp_path / "ref" / f"case{i}.nii.gz", ref)
        write(tmp_path / "pred" / f"case{i}.nii.gz", pred)
    write(tmp_path / "ref" / "extra.nii.gz", truth["case0"])  # a reference with no prediction
    return tmp_path, truth, preds


def read_back(path):
    return np.asarray(nib.load(path).get_fdata(dtype=np.float32), dtype=np.float64)


def test_image_protocol_matches_skimage(image_folders):
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    root, truth, preds = image_folders
    report = evaluate(str(root / "pred"), str(root / "ref"), protocol="image", metrics=["ssim", "psnr", "mae", "mse"],
                      data_range=1000.0)
    assert [c["case"] for c in report.cases] == ["case0", "case1", "case2"]
    assert report.unpaired == {"pred_only": [], "ref_only": ["extra"]}
    for c in report.cases:
        p, r = read_back(c["pred"]), read_back(c["ref"])
        expected = structural_similarity(p, r, data_range=1000.0, gaussian_weights=True, sigma=1.5,
                                         use_sample_covariance=False)
        assert c["ssim"] == pytest.approx(expected, abs=1e-3)
        assert c["psnr"] == pytest.approx(peak_signal_noise_ratio(r, p, data_range=1000.0), abs=1e-3)
        assert c["mae"] == pytest.approx(np.mean(np.abs(p - r)), rel=1e-9)
        assert c["mse"] == pytest.approx(np.mean((p - r) ** 2), rel=1e-9)
    ssims = [c["ssim"] for c in report.cases]
    s = report.summary["ssim"]
    assert s["mean"] == pytest.approx(np.mean(ssims)) and s["std"] == pytest.approx(np.std(ssims))
    assert s["median"] == pytest.approx(np.median(ssims)) and (s["n"], s["undefined"]) == (3, 0)
    assert ssims[0] > ssims[1] > ssims[2]  # more noise, lower SSIM


def test_image_protocol_mask_and_per_slice(image_folders, tmp_path):
    from skimage.metrics import structural_similarity

    root, truth, preds = image_folders
    mask = np.zeros(truth["case0"].shape, dtype=np.uint8)
    mask[6:18, 5:15, 4:16] = 1
    mask_file = write(tmp_path / "mask.nii.gz", mask, dtype=np.uint8)
    report = evaluate(str(root / "pred" / "case0.nii.gz"), str(root / "ref" / "case0.nii.gz"), mask=mask_file,
                      metrics=["ssim", "ssim_slice", "mae"], data_range=1000.0)
    (c,) = report.cases
    p, r = read_back(c["pred"]), read_back(c["ref"])
    _, full = structural_similarity(p, r, data_range=1000.0, gaussian_weights=True, sigma=1.5,
                                    use_sample_covariance=False, full=True)
    inner = (slice(5, -5),) * 3
    assert c["ssim"] == pytest.approx(full[inner][mask[inner] > 0].mean(), abs=1e-4)
    per_slice = []
    for z in range(p.shape[2]):
        _, f2 = structural_similarity(p[..., z], r[..., z], data_range=1000.0, gaussian_weights=True, sigma=1.5,
                                      use_sample_covariance=False, full=True)
        m = mask[5:-5, 5:-5, z] > 0
        if m.any():
            per_slice.append(f2[5:-5, 5:-5][m].mean())
    assert c["ssim_slice"] == pytest.approx(np.mean(per_slice), abs=1e-4)
    assert c["mae"] == pytest.approx(np.abs(p - r)[mask > 0].mean(), rel=1e-9)


def test_brasyn_protocol_pairs_seg_masks_by_case(tmp_path):
    """BraSyn's tumour/non-tumour SSIM against torchmetrics called as the organisers' ssim.py calls it (default
    data range of the masked volumes); whole-volume SSIM (data range 1), PSNR and MSE are labelled additions."""
    from test_metrics_and_intensity import _tm_ssim

    from medfusion.metrics.image import percentile_scale

    rng = np.random.default_rng(1)
    shape = (24, 22, 20)
    for i in range(2):
        ref = smooth_volume(rng, shape) * 1200
        seg = blob_labels(shape, [(12, 11, 10)], [8.0], [2])
        write(tmp_path / "truth" / f"BraTS-{i:03d}" / f"BraTS-{i:03d}-t2f.nii.gz", ref)
        write(tmp_path / "truth" / f"BraTS-{i:03d}" / f"BraTS-{i:03d}-seg.nii.gz", seg, dtype=np.uint8)
        write(tmp_path / "synth" / f"BraTS-{i:03d}-t2f.nii.gz", ref * 0.7 + rng.normal(0, 30, shape))
    report = evaluate(str(tmp_path / "synth"), str(tmp_path / "truth"), protocol="brasyn",
                      mask=str(tmp_path / "truth"), pattern="*-t2f.nii.gz")
    assert len(report.cases) == 2 and report.unpaired == {"pred_only": [], "ref_only": []}
    for c in report.cases:
        assert c["mask"].endswith(c["case"].replace("t2f", "seg") + ".nii.gz")
        p, r = percentile_scale(read_back(c["pred"])), percentile_scale(read_back(c["ref"]))
        m = read_back(c["mask"]) > 0
        assert c["ssim_tumour"] == pytest.approx(_tm_ssim(p * m, r * m), abs=1e-4)
        assert c["ssim_non_tumour"] == pytest.approx(_tm_ssim(p * ~m, r * ~m), abs=1e-4)
        assert c["ssim"] == pytest.approx(_tm_ssim(p, r, data_range=1.0), abs=1e-4)
        assert c["psnr"] == pytest.approx(10 * np.log10(1 / np.mean((p - r) ** 2)), abs=1e-6)
    conventions = report.settings["conventions"]
    assert conventions["brasyn_scores"] == ["ssim_tumour", "ssim_non_tumour"]
    assert conventions["additions_not_brasyn"] == ["ssim", "psnr", "mse"]
    assert "Additions, not BraSyn scores" in report.description


def test_synthrad_protocol_is_the_organisers_definition(tmp_path):
    """MAE of the raw HU (values beyond the window count in full), PSNR of the clipped images, and one 3D SSIM whose
    map is averaged over the mask voxels >= 3 voxels from the border (tests/metrics/test_organiser_values.py compares
    the same with the organisers' own code on harder cases)."""
    from skimage.metrics import structural_similarity

    rng = np.random.default_rng(2)
    ref = smooth_volume(rng, (24, 24, 12)) * 3000 - 1500  # reaches below the −1024 HU floor
    pred = ref + rng.normal(0, 60, ref.shape)
    body = np.zeros(ref.shape, dtype=np.uint8)
    body[3:21, 3:21, :] = 1
    f = {k: write(tmp_path / f"{k}.nii.gz", v) for k, v in (("pred", pred), ("ref", ref))}
    mask = write(tmp_path / "body.nii.gz", body, dtype=np.uint8)
    (c,) = evaluate(f["pred"], f["ref"], protocol="synthrad", mask=mask).cases
    raw_p, raw_r, m = read_back(f["pred"]), read_back(f["ref"]), body > 0
    assert c["mae"] == pytest.approx(np.abs(raw_p - raw_r)[m].mean(), rel=1e-6)  # not clipped
    p, r = np.clip(raw_p, -1024, 3000), np.clip(raw_r, -1024, 3000)
    assert c["psnr"] == pytest.approx(10 * np.log10(4024.0**2 / np.mean((p - r)[m] ** 2)), abs=1e-4)
    p, r = np.where(m, p, -1024.0) + 1024, np.where(m, r, -1024.0) + 1024
    _, full = structural_similarity(r.astype(np.float32), p.astype(np.float32), data_range=4024.0, full=True)
    assert c["ssim"] == pytest.approx(full[3:-3, 3:-3, 3:-3][m[3:-3, 3:-3, 3:-3]].mean(), abs=1e-6)


@pytest.fixture
def hecktor_folders(tmp_path):
    shape = (32, 30, 16)
    cases = {
        # (reference, prediction)
        "P1": (blob_labels(shape, [(10, 10, 8), (22, 20, 8)], [7, 5], [1, 2]),
               blob_labels(shape, [(11, 10, 8), (22, 21, 8)], [7, 4], [1, 2])),
        "P2": (blob_labels(shape, [(16, 15, 8)], [8], [1]),  # no GTVn anywhere
               blob_labels(shape, [(15, 15, 7)], [9], [1])),
        "P3": (blob_labels(shape, [(10, 12, 8), (24, 18, 9)], [6, 5], [1, 2]),
               blob_labels(shape, [(10, 12, 8)], [6], [1])),  # GTVn missed
    }
    for name, (ref, pred) in cases.items():
        write(tmp_path / "gt" / f"{name}.nii.gz", ref, dtype=np.uint8)
        write(tmp_path / "pr" / f"{name}.nii.gz", pred, dtype=np.uint8)
    return tmp_path, cases


def test_hecktor_protocol_dice_hd95_and_aggregated_dice(hecktor_folders):
    from monai.metrics import compute_hausdorff_distance

    root, cases = hecktor_folders
    report = evaluate(str(root / "pr"), str(root / "gt"), protocol="hecktor")
    by_case = {c["case"]: c for c in report.cases}
    inter = {1: 0, 2: 0}
    total = {1: 0, 2: 0}
    for name, (ref, pred) in cases.items():
        for lab, cls in ((1, "GTVp"), (2, "GTVn")):
            p, g = pred == lab, ref == lab
            inter[lab] += int((p & g).sum())
            total[lab] += int(p.sum() + g.sum())
            expected = 1.0 if not (p.any() or g.any()) else 2 * (p & g).sum() / (p.sum() + g.sum())
            assert by_case[name][f"dice_{cls}"] == expected  # exact
            if p.any() and g.any():
                hd = compute_hausdorff_distance(p[None, None], g[None, None], percentile=95, spacing=SPACING)
                assert by_case[name][f"hd95_{cls}"] == pytest.approx(float(hd), abs=1e-6)
    assert math.isnan(by_case["P2"]["hd95_GTVn"])  # absent from both: undefined, not a perfect 0 in the mean
    assert math.isnan(by_case["P3"]["hd95_GTVn"])  # missed entirely: undefined
    agg = {lab: 2 * inter[lab] / total[lab] for lab in (1, 2)}  # one spacing: voxel counts and mm³ agree
    assert report.set_metrics["dsc_agg_GTVp"] == pytest.approx(agg[1], rel=1e-12)
    assert report.set_metrics["dsc_agg_GTVn"] == pytest.approx(agg[2], rel=1e-12)
    assert report.set_metrics["dsc_agg_mean"] == pytest.approx((agg[1] + agg[2]) / 2, rel=1e-12)
    assert report.summary["hd95_GTVn"]["undefined"] == 2 and report.summary["hd95_GTVn"]["n"] == 1
    counts = {k: v for k, v in report.set_metrics.items() if k.startswith("cases_")}
    assert counts == {"cases_both_empty_GTVp": 0, "cases_empty_pred_GTVp": 0, "cases_empty_ref_GTVp": 0,
                      "cases_both_empty_GTVn": 1, "cases_empty_pred_GTVn": 1, "cases_empty_ref_GTVn": 0}
    data = json.loads(report.to_json())
    assert data["cases"][2]["hd95_GTVn"] is None
    assert data["settings"]["hd95_empty"] == "undefined" and data["settings"]["empty_dice"] == 1.0


def test_labels_protocol_empty_conventions_and_inferred_labels(hecktor_folders):
    root, cases = hecktor_folders
    report = evaluate(str(root / "pr"), str(root / "gt"), metrics=["dice", "hd95"], empty_dice=float("nan"),
                      hd95_empty=373.13)
    assert report.protocol == "labels"
    by_case = {c["case"]: c for c in report.cases}
    assert np.isnan(by_case["P2"]["dice_2"])  # absent both ways, reported as undefined on request
    assert by_case["P3"]["hd95_2"] == 373.13
    assert report.summary["dice_2"]["undefined"] == 1


def test_bci_protocol_rgb_pngs(tmp_path):
    from PIL import Image
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    rng = np.random.default_rng(3)
    for i in range(2):
        ref = (smooth_volume(rng, (40, 48, 3)) * 255).astype(np.uint8)
        pred = np.clip(ref.astype(int) + rng.integers(-25, 26, ref.shape), 0, 255).astype(np.uint8)
        for folder, img in (("real", ref), ("fake", pred)):
            os.makedirs(tmp_path / folder, exist_ok=True)
            Image.fromarray(img).save(tmp_path / folder / f"{i:05d}_test_2+.png")
    report = evaluate(str(tmp_path / "fake"), str(tmp_path / "real"), protocol="bci")
    for c in report.cases:
        p, r = np.asarray(Image.open(c["pred"])), np.asarray(Image.open(c["ref"]))
        assert c["psnr"] == pytest.approx(peak_signal_noise_ratio(r, p), abs=1e-9)  # uint8: data range 255
        assert c["ssim"] == pytest.approx(structural_similarity(p, r, channel_axis=-1), abs=1e-9)


def test_bci_fid_kid_on_rgb_images(tmp_path, monkeypatch):
    """Plumbing of FID/KID for RGB image sets, with a stand-in Inception network (not an FID result): the
    set-level values equal FID/KID of the extractor's features of the same images."""
    from PIL import Image
    from test_fid import TinyInception, install_stand_in_torchvision

    from medfusion.metrics.distribution import fid, kid
    from medfusion.metrics.features import make_extractor

    install_stand_in_torchvision(monkeypatch)
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    weights = tmp_path / "inception_v3_google-0cc3c7bd.pth"
    torch.save(TinyInception().state_dict(), weights)
    rng = np.random.default_rng(4)
    images = {"real": [], "fake": []}
    for i in range(4):
        for folder in images:
            img = rng.integers(0, 256, (24, 20, 3), dtype=np.uint8)
            os.makedirs(tmp_path / folder, exist_ok=True)
            Image.fromarray(img).save(tmp_path / folder / f"{i:05d}_test.png")
            images[folder].append(img)
    report = evaluate(str(tmp_path / "fake"), str(tmp_path / "real"), protocol="bci", metrics=["psnr", "fid", "kid"],
                      fid={"extractor": "inception2d", "weights": str(weights)})
    ex = make_extractor("inception2d", str(weights))
    fa, fb = ex.rgb(np.stack(images["fake"])), ex.rgb(np.stack(images["real"]))
    assert report.set_metrics["fid"] == pytest.approx(fid(fa, fb), rel=1e-6)
    assert report.set_metrics["kid"] == pytest.approx(kid(fa, fb)[0], rel=1e-6, abs=1e-12)
    assert report.metric_names == ["psnr"]
    with pytest.raises(InputError, match="inception2d"):
        evaluate(str(tmp_path / "fake"), str(tmp_path / "real"), protocol="bci", metrics=["fid"],
                 fid={"extractor": "medicalnet3d", "weights": str(weights)})


def test_geometry_mismatch_is_refused_or_resampled(tmp_path):
    shape = (20, 20, 12)
    ref = blob_labels(shape, [(10, 10, 6)], [7], [1])
    write(tmp_path / "ref.nii.gz", ref, dtype=np.uint8)
    shifted = AFFINE.copy()
    shifted[0, 3] += 0.5
    write(tmp_path / "pred.nii.gz", ref, affine=shifted, dtype=np.uint8)
    with pytest.raises(InputError, match="--resample"):
        evaluate(str(tmp_path / "pred.nii.gz"), str(tmp_path / "ref.nii.gz"), metrics=["dice"])
    # a prediction on a grid twice as fine in x, same physical object: nearest-neighbour resampling recovers it
    fine = AFFINE.copy()
    fine[0, 0] = SPACING[0] / 2
    fine[0, 3] = AFFINE[0, 3] - SPACING[0] / 4
    write(tmp_path / "fine.nii.gz", np.repeat(ref, 2, axis=0), affine=fine, dtype=np.uint8)
    (c,) = evaluate(str(tmp_path / "fine.nii.gz"), str(tmp_path / "ref.nii.gz"), metrics=["dice", "hd95"],
                    resample=True).cases
    assert c["dice_1"] == 1.0 and c["hd95_1"] == 0.0


def test_unexpected_label_is_an_error(hecktor_folders):
    root, _ = hecktor_folders
    with pytest.raises(InputError, match="3"):
        bad = blob_labels((32, 30, 16), [(10, 10, 8)], [5], [3])
        write(root / "pr" / "P1.nii.gz", bad, dtype=np.uint8)
        evaluate(str(root / "pr"), str(root / "gt"), protocol="hecktor")


def test_pairing_rules(tmp_path):
    for side in ("a", "b"):
        for name in ("x-t2f", "y-t2f"):
            write(tmp_path / side / f"{name}.nii.gz", np.zeros((4, 4, 4)))
    write(tmp_path / "a" / "z-t2f.nii", np.zeros((4, 4, 4)))
    write(tmp_path / "m" / "x-seg.nii.gz", np.zeros((4, 4, 4)))
    write(tmp_path / "m" / "y_mask.nii.gz", np.zeros((4, 4, 4)))
    cases, unpaired = pair_cases(str(tmp_path / "a"), str(tmp_path / "b"), str(tmp_path / "m"))
    assert [c.name for c in cases] == ["x-t2f", "y-t2f"]
    assert [os.path.basename(c.mask) for c in cases] == ["x-seg.nii.gz", "y_mask.nii.gz"]
    assert unpaired == {"pred_only": ["z-t2f"], "ref_only": []}
    with pytest.raises(InputError, match="no prediction"):
        pair_cases(str(tmp_path / "a"), str(tmp_path / "m"))
    os.makedirs(tmp_path / "empty")
    with pytest.raises(InputError, match="holds no"):
        pair_cases(str(tmp_path / "empty"), str(tmp_path / "b"))
    # BraTS layout: the truth BraTS-GLI-00001-000-seg pairs with the submitted BraTS-GLI-00001-000, unless a
    # reference of the prediction's own name exists (then that one, and the -seg file stays unpaired)
    for name in ("BraTS-GLI-00001-000", "BraTS-GLI-00002-000"):
        write(tmp_path / "sub" / f"{name}.nii.gz", np.zeros((4, 4, 4)))
        write(tmp_path / "truth" / f"{name}-seg.nii.gz", np.zeros((4, 4, 4)))
    write(tmp_path / "truth" / "BraTS-GLI-00002-000.nii.gz", np.zeros((4, 4, 4)))
    cases, unpaired = pair_cases(str(tmp_path / "sub"), str(tmp_path / "truth"))
    assert [(c.name, os.path.basename(c.ref)) for c in cases] == [
        ("BraTS-GLI-00001-000", "BraTS-GLI-00001-000-seg.nii.gz"), ("BraTS-GLI-00002-000", "BraTS-GLI-00002-000.nii.gz")]
    assert unpaired == {"pred_only": [], "ref_only": ["BraTS-GLI-00002-000-seg"]}


def test_parallel_workers_give_the_same_report(image_folders):
    root, _, _ = image_folders
    args = (str(root / "pred"), str(root / "ref"))
    one = evaluate(*args, data_range=1000.0, workers=1)
    two = evaluate(*args, data_range=1000.0, workers=2)
    assert one.cases == two.cases


def test_csv_report_and_plots(image_folders, tmp_path):
    root, _, _ = image_folders
    report = evaluate(str(root / "pred"), str(root / "ref"), data_range=1000.0)
    path = report.write(str(tmp_path / "r.csv"))
    rows = list(csv.DictReader(open(path)))
    assert [r["case"] for r in rows] == ["case0", "case1", "case2"] + [f"summary:{s}" for s in
                                                                       ("mean", "std", "median", "min", "max", "n",
                                                                        "undefined")]
    assert float(rows[3]["ssim"]) == pytest.approx(np.mean([float(r["ssim"]) for r in rows[:3]]))
    with pytest.raises(InputError, match="exists"):
        report.write(path)
    files = report.plot(str(tmp_path / "plots"))
    assert [os.path.basename(f) for f in files] == ["metrics.png", "worst_case.png"]
    for f in files:
        assert open(f, "rb").read(8) == b"\x89PNG\r\n\x1a\n"


# ------------------------------------------------------------------------------------------ the command
def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "medfusion.cli.main", "evaluate", *args], capture_output=True,
                          text=True, encoding="utf-8", cwd=cwd)


def digest(folder):
    h = hashlib.sha256()
    for root, _, files in sorted(os.walk(folder)):
        for f in sorted(files):
            h.update(open(os.path.join(root, f), "rb").read())
    return h.hexdigest()


@pytest.mark.slow
def test_cli_writes_json_report_and_leaves_inputs_alone(hecktor_folders, tmp_path):
    root, _ = hecktor_folders
    before = digest(root / "pr") + digest(root / "gt")
    out = tmp_path / "out" / "report.json"
    res = run_cli("--pred", str(root / "pr"), "--ref", str(root / "gt"), "--protocol", "hecktor", "--out", str(out),
                  "--plot", str(tmp_path / "plots"), "--quiet")
    assert res.returncode == 0, res.stderr
    assert "dsc_agg_mean" in res.stdout and "hd95_GTVn" in res.stdout
    data = json.loads(out.read_text())
    assert data["n_cases"] == 3 and set(data["summary"]) == {"dice_GTVp", "dice_GTVn", "hd95_GTVp", "hd95_GTVn"}
    assert data["set_metrics"]["dsc_agg_mean"] > 0.5
    assert sorted(os.listdir(tmp_path / "plots")) == ["metrics.png", "worst_case.png"]
    assert digest(root / "pr") + digest(root / "gt") == before


@pytest.mark.slow
@pytest.mark.parametrize("problem", ["missing", "nan", "label", "empty", "exists", "shape", "range", "nopair"])
def test_cli_bad_input_one_line_error_no_report(hecktor_folders, tmp_path, problem):
    root, cases = hecktor_folders
    pred, ref = root / "pr", root / "gt"
    extra = ["--protocol", "hecktor"]
    out = tmp_path / "r.json"
    if problem == "missing":
        pred = root / "nowhere"
    elif problem == "nan":
        bad = cases["P2"][1].astype(np.float32)
        bad[0, 0, 0] = np.nan
        write(pred / "P2.nii.gz", bad)
    elif problem == "label":
        write(pred / "P2.nii.gz", cases["P2"][1] * 3, dtype=np.uint8)
    elif problem == "empty":
        pred = tmp_path / "empty"
        os.makedirs(pred)
    elif problem == "exists":
        out.write_text("keep me")
    elif problem == "shape":
        write(pred / "P3.nii.gz", cases["P3"][1][:-2], dtype=np.uint8)
    elif problem == "range":
        extra = ["--metrics", "ssim"]  # image metric without a data range
    elif problem == "nopair":
        ref = tmp_path / "other"
        write(ref / "Q1.nii.gz", cases["P1"][0], dtype=np.uint8)
    res = run_cli("--pred", str(pred), "--ref", str(ref), "--out", str(out), "--quiet", *extra)
    assert res.returncode == 2
    assert res.stderr.count("\n") == 1 and res.stderr.startswith("medfusion evaluate: error:")
    if problem == "exists":
        assert out.read_text() == "keep me"
    else:
        assert not out.exists()


def test_fid_and_kid_through_evaluate(tmp_path):
    """Plumbing of the FID path with a random-weight file in MedicalNet's release layout (not an FID result):
    the set-level values equal FID/KID of the extractor's features of the same files."""
    import torch
    from test_fid import _resnet50_state

    from medfusion.metrics.distribution import fid, kid
    from medfusion.metrics.features import extract_features, make_extractor

    sd = _resnet50_state(3, 1, conv_bias=False, seed=3)
    weights = tmp_path / "resnet_50_23dataset.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in sd.items()}}, weights)
    rng = np.random.default_rng(5)
    for i in range(3):
        write(tmp_path / "ref" / f"v{i}.nii.gz", rng.random((16, 16, 16)))
        write(tmp_path / "pred" / f"v{i}.nii.gz", rng.random((16, 16, 16)) ** 2)
    report = evaluate(str(tmp_path / "pred"), str(tmp_path / "ref"), metrics=["fid", "kid"],
                      fid={"extractor": "medicalnet3d", "weights": str(weights)})
    assert report.metric_names == [] and set(report.set_metrics) == {"fid", "kid"}
    ex = make_extractor("medicalnet3d", str(weights))
    fa = extract_features([read_back(str(tmp_path / "pred" / f"v{i}.nii.gz")) for i in range(3)], ex)["volume"]
    fb = extract_features([read_back(str(tmp_path / "ref" / f"v{i}.nii.gz")) for i in range(3)], ex)["volume"]
    assert report.set_metrics["fid"] == pytest.approx(fid(fa, fb), rel=1e-6)
    assert report.set_metrics["kid"] == pytest.approx(kid(fa, fb)[0], rel=1e-6, abs=1e-12)
    minmax = evaluate(str(tmp_path / "pred"), str(tmp_path / "ref"), metrics=["fid"],
                      fid={"extractor": "medicalnet3d", "weights": str(weights), "options": {"normalise": "minmax"}})
    ex = make_extractor("medicalnet3d", str(weights), normalise="minmax")
    fa = extract_features([read_back(str(tmp_path / "pred" / f"v{i}.nii.gz")) for i in range(3)], ex)["volume"]
    fb = extract_features([read_back(str(tmp_path / "ref" / f"v{i}.nii.gz")) for i in range(3)], ex)["volume"]
    assert minmax.set_metrics["fid"] == pytest.approx(fid(fa, fb), rel=1e-6)
    assert minmax.set_metrics["fid"] != pytest.approx(report.set_metrics["fid"], rel=1e-3)


@pytest.mark.slow
def test_cli_fid_without_weights_names_the_file(image_folders, tmp_path):
    root, _, _ = image_folders
    res = run_cli("--pred", str(root / "pred"), "--ref", str(root / "ref"), "--metrics", "fid", "--fid-extractor",
                  "medicalnet3d", "--fid-weights", str(tmp_path / "nowhere.pth"), "--out", str(tmp_path / "r.json"))
    assert res.returncode == 2 and "resnet_50_23dataset.pth" in res.stderr and res.stderr.count("\n") == 1
    assert not (tmp_path / "r.json").exists()


def test_data_range_ref_and_window(image_folders):
    from skimage.metrics import structural_similarity

    root, _, _ = image_folders
    files = (str(root / "pred" / "case1.nii.gz"), str(root / "ref" / "case1.nii.gz"))
    p, r = read_back(files[0]), read_back(files[1])
    (c,) = evaluate(*files, metrics=["ssim"], data_range="ref").cases
    assert c["ssim"] == pytest.approx(structural_similarity(p, r, data_range=r.max() - r.min(), gaussian_weights=True,
                                                            sigma=1.5, use_sample_covariance=False), abs=1e-4)
    (c,) = evaluate(*files, metrics=["ssim", "mae"], window=(200.0, 700.0)).cases
    pw, rw = np.clip(p, 200, 700), np.clip(r, 200, 700)
    assert c["ssim"] == pytest.approx(structural_similarity(pw, rw, data_range=500.0, gaussian_weights=True,
                                                            sigma=1.5, use_sample_covariance=False), abs=1e-4)
    assert c["mae"] == pytest.approx(np.abs(pw - rw).mean(), rel=1e-6)


@pytest.mark.slow
def test_cli_named_labels_and_csv(hecktor_folders, tmp_path):
    root, _ = hecktor_folders
    out = tmp_path / "r.csv"
    res = run_cli("--pred", str(root / "pr"), "--ref", str(root / "gt"), "--labels", "1=tumour", "2=node",
                  "--metrics", "dice", "dsc_agg", "--out", str(out), "--workers", "2", "--quiet")
    assert res.returncode == 0, res.stderr
    rows = list(csv.DictReader(open(out)))
    counts = {f"cases_{what}_{name}" for what in ("both_empty", "empty_pred", "empty_ref") for name in ("tumour", "node")}
    assert set(rows[0]) == {"case", "pred", "ref", "dice_tumour", "dice_node", "dsc_agg_tumour", "dsc_agg_node",
                            "dsc_agg_mean"} | counts
    assert rows[-1]["case"] == "set" and float(rows[-1]["dsc_agg_mean"]) > 0.5
    assert rows[-1]["cases_both_empty_node"] == "1" and rows[-1]["cases_empty_pred_node"] == "1"


def test_labels_alone_select_the_labels_protocol(hecktor_folders):
    root, _ = hecktor_folders
    report = evaluate(str(root / "pr"), str(root / "gt"), labels=[1, 2])
    assert report.protocol == "labels" and "dsc_agg_mean" in report.set_metrics


# ------------------------------------------------------------------------------------------ arrays in memory
def _metric_values(report):
    return [{k: v for k, v in c.items() if k not in ("pred", "ref", "mask")} for c in report.cases]


def _same(a, b):
    """Equal numbers, nan equal to nan."""
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.keys() == y.keys()
        for k in x:
            assert (x[k] == y[k]) or (x[k] != x[k] and y[k] != y[k]), (k, x[k], y[k])


def test_arrays_and_files_give_the_same_report(tmp_path):
    """The same volumes scored from NIfTI files (evaluate) and from arrays (evaluate_arrays) give identical
    values — BraSyn with a case without tumour (undefined tumour SSIM), the image protocol with a mask, and
    HECKTOR label maps with an anisotropic spacing."""
    from medfusion.evaluate import evaluate_arrays

    rng = np.random.default_rng(11)
    shape = (24, 22, 20)
    arrays = []
    for i, tumour in enumerate((8.0, 0.0)):
        ref = (smooth_volume(rng, shape) * 900).astype(np.float32)
        pred = (ref * 0.8 + rng.normal(0, 25, shape)).astype(np.float32)
        seg = blob_labels(shape, [(12, 11, 10)], [tumour], [2]) if tumour else np.zeros(shape, np.uint8)
        name = f"BraTS-{i:03d}-t2f"
        write(tmp_path / "pred" / f"{name}.nii.gz", pred)
        write(tmp_path / "ref" / f"{name}.nii.gz", ref)
        write(tmp_path / "ref" / f"BraTS-{i:03d}-seg.nii.gz", seg, dtype=np.uint8)
        arrays.append({"case": name, "pred": pred, "ref": ref, "mask": seg, "spacing": SPACING})
    files = evaluate(str(tmp_path / "pred"), str(tmp_path / "ref"), protocol="brasyn", mask=str(tmp_path / "ref"),
                     pattern="*-t2f.nii.gz")
    mem = evaluate_arrays(arrays, protocol="brasyn")
    _same(_metric_values(files), _metric_values(mem))
    assert np.isnan(mem.cases[1]["ssim_tumour"]) and mem.summary["ssim_tumour"]["undefined"] == 1
    assert json.loads(mem.to_json())["cases"][1]["ssim_tumour"] is None
    assert mem.settings == files.settings and mem.description == files.description
    assert mem.inputs["source"] == "arrays"

    one = {k: arrays[0][k] for k in ("case", "pred", "ref")}
    box = np.zeros(shape, np.uint8)
    box[4:20, 4:18, 3:17] = 1
    write(tmp_path / "box.nii.gz", box, dtype=np.uint8)
    f = evaluate(str(tmp_path / "pred" / "BraTS-000-t2f.nii.gz"), str(tmp_path / "ref" / "BraTS-000-t2f.nii.gz"),
                 mask=str(tmp_path / "box.nii.gz"), metrics=["ssim", "ssim_slice", "psnr", "mae"], data_range=900.0)
    m = evaluate_arrays([{**one, "mask": box.astype(bool)}], metrics=["ssim", "ssim_slice", "psnr", "mae"],
                        data_range=900.0)
    _same(_metric_values(f), _metric_values(m))


def test_label_arrays_and_files_give_the_same_report(hecktor_folders):
    from medfusion.evaluate import evaluate_arrays

    root, cases = hecktor_folders
    from medfusion.io import load_volume

    files = evaluate(str(root / "pr"), str(root / "gt"), protocol="hecktor")
    spacing = load_volume(str(root / "gt" / "P1.nii.gz")).spacing  # SPACING as the header stores it (float32)
    arrays = [{"case": n, "pred": p, "ref": r, "spacing": spacing} for n, (r, p) in sorted(cases.items())]
    mem = evaluate_arrays(arrays, protocol="hecktor", workers=2)
    _same(_metric_values(files), _metric_values(mem))
    assert mem.set_metrics == files.set_metrics
    # without a spacing, HD95 is in voxels
    unit = evaluate_arrays([{k: a[k] for k in ("case", "pred", "ref")} for a in arrays], protocol="hecktor")
    assert unit.cases[0]["hd95_GTVp"] != files.cases[0]["hd95_GTVp"]


@pytest.mark.parametrize("problem", ["empty", "keys", "unknown", "duplicate", "shape", "nan", "2d", "mask",
                                     "label", "spacing", "rgb-mask"])
def test_evaluate_arrays_refuses_bad_cases(problem):
    from medfusion.evaluate import evaluate_arrays

    a = np.random.default_rng(0).random((16, 16, 16)).astype(np.float32)
    case = {"case": "x", "pred": a, "ref": a}
    kwargs = {"protocol": "brasyn"}
    cases = {"empty": [], "keys": [{"case": "x", "pred": a}], "unknown": [{**case, "seg": a}],
             "duplicate": [case, dict(case)], "shape": [{**case, "pred": a[:-1]}],
             "nan": [{**case, "ref": np.where(a > 0.5, np.nan, a)}], "2d": [{**case, "pred": a[0], "ref": a[0]}],
             "mask": [{**case, "mask": a[:-1] > 0.5}], "label": [{**case, "pred": (a > 0.5) * 3, "ref": a > 0.5}],
             "spacing": [{**case, "spacing": (1.0, 0.0, 1.0)}],
             "rgb-mask": [{**case, "mask": a > 0.5}]}[problem]
    if problem == "label":
        kwargs = {"protocol": "hecktor"}
    elif problem == "rgb-mask":
        kwargs = {"protocol": "bci"}
    with pytest.raises(InputError):
        evaluate_arrays(cases, **kwargs)


@pytest.mark.parametrize("workers", [0, -3, 1.5])
def test_workers_must_be_a_whole_number_of_at_least_one(image_folders, workers):
    from medfusion.evaluate import evaluate_arrays

    root, truth, preds = image_folders
    with pytest.raises(InputError, match="workers"):
        evaluate(str(root / "pred"), str(root / "ref"), data_range=1000.0, workers=workers)
    with pytest.raises(InputError, match="workers"):
        evaluate_arrays([{"case": "a", "pred": preds["case0"], "ref": truth["case0"]}], data_range=1000.0,
                        workers=workers)


def test_array_report_plots_both_figures(tmp_path):
    from medfusion.evaluate import evaluate_arrays

    rng = np.random.default_rng(2)
    cases = []
    for i in range(2):
        ref = smooth_volume(rng)
        cases.append({"case": f"c{i}", "pred": ref + rng.normal(0, 0.05 * (i + 1), ref.shape), "ref": ref})
    report = evaluate_arrays(cases, data_range=1.0)
    files = report.plot(str(tmp_path / "plots"))
    assert [os.path.basename(f) for f in files] == ["metrics.png", "worst_case.png"]
    assert all(open(f, "rb").read(8) == b"\x89PNG\r\n\x1a\n" for f in files)
    report.write(str(tmp_path / "r.csv"))  # no file names in an array report: empty pred/ref columns
    rows = list(csv.DictReader(open(tmp_path / "r.csv")))
    assert rows[0]["case"] == "c0" and rows[0]["pred"] == ""


@pytest.mark.slow
def test_plots_take_arrays_import_no_evaluate_and_keep_the_backend(tmp_path):
    """medfusion.metrics.plots draws from arrays without importing medfusion.evaluate (no import cycle) and without
    pyplot or a backend switch."""
    code = f"""
import sys, matplotlib
matplotlib.use("svg")  # the caller's choice, which plotting must not change
import numpy as np
import medfusion.metrics.plots as plots
assert "medfusion.evaluate" not in sys.modules
v = np.random.default_rng(0).random((20, 18, 16))
plots.plot_worst_case(v, v * 0.9, v > 0.5, (1.0, 1.0, 2.0), path={str(tmp_path / "w.png")!r}, title="t")
plots.plot_worst_case((v > 0.5).astype(np.uint8), (v > 0.4).astype(np.uint8), path={str(tmp_path / "l.png")!r},
                      kind="labels")
plots.plot_distributions({{"ssim": [0.9, None, float("nan")], "psnr": [20.0, 21.0, 22.0]}}, {str(tmp_path / "d.png")!r})
assert "medfusion.evaluate" not in sys.modules and "matplotlib.pyplot" not in sys.modules
assert matplotlib.get_backend() == "svg", matplotlib.get_backend()
print("ok")
"""
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, encoding="utf-8")
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr
    for f in ("w.png", "l.png", "d.png"):
        assert (tmp_path / f).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_no_library_module_switches_the_matplotlib_backend():
    import medfusion.evaluate
    import medfusion.metrics.plots
    import medfusion.metrics.report

    for module in (medfusion.evaluate, medfusion.metrics.plots, medfusion.metrics.report):
        assert "matplotlib.use(" not in open(module.__file__).read()


@pytest.mark.slow
def test_labels_protocol_on_2d_label_images_with_foreground(tmp_path):
    """Cell masks as 2D PNG/TIFF label images: per-instance numbers differ, --foreground scores the union;
    Dice against a hand count, HD95 against scipy's distance transform (in pixels)."""
    from PIL import Image
    from scipy import ndimage as ndi
    import tifffile

    ref = np.zeros((40, 50), np.uint16)
    ref[5:20, 5:20], ref[25:35, 30:45] = 3, 7  # 225 + 150 pixels
    pred = np.zeros((40, 50), np.uint32)
    pred[6:21, 5:20], pred[25:33, 30:45] = 1, 70000  # 225 + 120; overlap 210 + 120
    for d in ("pred", "ref"):
        (tmp_path / d).mkdir()
    Image.fromarray(ref).save(tmp_path / "ref" / "tile.png")
    tifffile.imwrite(tmp_path / "pred" / "tile.tif", pred)  # 32-bit labels, as `medfusion stain --stream` writes
    rep = evaluate(str(tmp_path / "pred"), str(tmp_path / "ref"), protocol="labels", foreground=True)
    case = rep.cases[0]
    assert case["dice_foreground"] == pytest.approx(2 * 330 / (345 + 375))
    assert rep.set_metrics["dsc_agg_foreground"] == pytest.approx(2 * 330 / (345 + 375))

    def surface_distances(a, b):  # distances from a's border pixels to b's border pixels
        border = lambda m: m & ~ndi.binary_erosion(m)  # noqa: E731
        return ndi.distance_transform_edt(~border(b))[border(a)]

    p, r = pred > 0, ref > 0
    expected = max(np.percentile(surface_distances(p, r), 95), np.percentile(surface_distances(r, p), 95))
    assert case["hd95_foreground"] == pytest.approx(expected, abs=1e-6)
    per_label = evaluate(str(tmp_path / "pred"), str(tmp_path / "ref"), protocol="labels")
    assert per_label.cases[0]["dice_3"] == 0.0  # instance numbers do not match without --foreground
    with pytest.raises(InputError, match="foreground"):
        evaluate(str(tmp_path / "pred"), str(tmp_path / "ref"), protocol="hecktor", foreground=True)
    with pytest.raises(InputError, match="leave out --labels"):
        evaluate(str(tmp_path / "pred"), str(tmp_path / "ref"), protocol="labels", foreground=True, labels=[1])
    paths = rep.plot(str(tmp_path / "plots"))
    assert sorted(os.path.basename(p) for p in paths) == ["metrics.png", "worst_case.png"]
    res = run_cli("--pred", str(tmp_path / "pred"), "--ref", str(tmp_path / "ref"), "--protocol", "labels",
                  "--foreground", "--quiet")
    assert res.returncode == 0, res.stderr
    assert "dice_foreground" in res.stdout
