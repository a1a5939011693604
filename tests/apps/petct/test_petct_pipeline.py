"""PET/CT files → working grid → segmenter → files on the CT grid: `medfusion segment` (one case and a HECKTOR
folder), the baseline through the same command, `medfusion evaluate --protocol hecktor` on what it wrote, bad input
(one line, exit 2, nothing written), and the training set and trainer on tiny phantoms.

The networks are tiny and random: these tests check files, geometry, exit codes and plumbing, never quality.
"""

from __future__ import annotations

import hashlib
import json
import math

import nibabel as nib
import numpy as np
import pytest
import torch

from conftest import run_cli

SHAPE = (32, 32, 16)  # CT voxels (2 × 2 × 3 mm): the phantom's anatomy scales to the small field of view
TINY = {"channels": [8, 8], "norm_num_groups": 4, "num_head_channels": 4}


@pytest.fixture(scope="module")
def hn(tmp_path_factory):
    from medfusion.phantoms.headneck import write_headneck_dataset

    root = tmp_path_factory.mktemp("headneck")
    write_headneck_dataset(root, 3, shape=SHAPE, seed0=40)
    return root


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    from medfusion.apps.petct.baseline import SegResNetBaseline
    from medfusion.apps.petct.model import PetCtSegModel

    root = tmp_path_factory.mktemp("petct_weights")
    torch.manual_seed(0)
    diff = PetCtSegModel.create(TINY).save(root / "diffusion.pt")
    base = SegResNetBaseline.create({"init_filters": 4, "blocks_down": [1, 1], "blocks_up": [1],
                                     "norm": ["group", {"num_groups": 2}]}).save(root / "segresnet.pt")
    return {"diffusion": diff, "segresnet": base}


def _case(hn, i=0):
    name = f"HN-PHANTOM-{i:05d}"
    return hn / "imagesTr" / f"{name}__PT.nii.gz", hn / "imagesTr" / f"{name}__CT.nii.gz", name


def _digest(*paths):
    return [hashlib.sha256(open(p, "rb").read()).hexdigest() for p in paths]


@pytest.mark.slow
def test_segment_one_case_writes_labels_probabilities_and_uncertainty_on_the_ct_grid(hn, weights, tmp_path):
    pet, ct, _ = _case(hn)
    before = _digest(pet, ct)
    out, prob, unc = tmp_path / "seg.nii.gz", tmp_path / "prob.nii.gz", tmp_path / "unc.nii.gz"
    r = run_cli("segment", "--pet", pet, "--ct", ct, "--out", out, "--probabilities", prob, "--uncertainty", unc,
                "--weights", weights["diffusion"], "--samples", 2, "--steps", 2, "--quiet")
    assert r.returncode == 0, r.stderr
    ct_img = nib.load(ct)
    seg, p, u = (nib.load(f) for f in (out, prob, unc))
    assert seg.shape == ct_img.shape and seg.get_data_dtype() == np.uint8
    assert p.shape == ct_img.shape + (2,) and u.shape == ct_img.shape + (3,)
    for img in (seg, p, u):
        np.testing.assert_allclose(img.affine, ct_img.affine, atol=1e-5)
    labels = np.asarray(seg.dataobj)
    assert set(np.unique(labels)) <= {0, 1, 2}
    pv, uv = p.get_fdata(), u.get_fdata()
    assert pv.min() >= 0 and pv.max() <= 1 and uv[..., 1:].min() >= 0
    assert uv[..., 0].min() >= 0 and uv[..., 0].max() <= math.log(3) + 1e-5
    assert _digest(pet, ct) == before  # inputs untouched


@pytest.mark.slow
def test_folder_form_and_hecktor_evaluation_pair_by_case_name(hn, weights, tmp_path):
    out, prob = tmp_path / "pred", tmp_path / "prob"
    r = run_cli("segment", "--images", hn / "imagesTr", "--out", out, "--probabilities", prob,
                "--weights", weights["segresnet"], "--quiet")
    assert r.returncode == 0, r.stderr
    names = sorted(p.name for p in out.iterdir())
    assert names == [f"HN-PHANTOM-{i:05d}.nii.gz" for i in range(3)] and len(list(prob.iterdir())) == 3
    r = run_cli("evaluate", "--protocol", "hecktor", "--pred", out, "--ref", hn / "labelsTr", "--out",
                tmp_path / "report.json")
    assert r.returncode == 0, r.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    assert len(report["cases"]) == 3, report.keys()


def test_skip_bad_writes_the_good_cases_and_warnings_name_the_command(hn, weights, tmp_path, capsys):
    """A folder with one PET without uptake: --skip-bad segments the others, lists the bad one in one line and exits
    2; a PET with no brain-like region gives a warning prefixed like every message of the command."""
    import shutil

    from medfusion.cli.main import main

    images = tmp_path / "images"
    shutil.copytree(hn / "imagesTr", images)
    pets = sorted(images.glob("*__PT.nii.gz"))
    _write_like(pets[0], pets[0], data=np.zeros(nib.load(pets[0]).shape, np.float32))
    low = 0.5 + 0.1 * np.random.default_rng(0).random(nib.load(pets[1]).shape, np.float32)
    _write_like(pets[1], pets[1], data=low)  # no brain-like uptake
    rc = main(["segment", "--images", str(images), "--out", str(tmp_path / "pred"), "--weights", weights["segresnet"],
               "--skip-bad", "--quiet"])
    out, err = capsys.readouterr()
    assert rc == 2 and sorted(p.name for p in (tmp_path / "pred").iterdir()) == [f"HN-PHANTOM-0000{i}.nii.gz"
                                                                                 for i in (1, 2)]
    assert out.split() == [str(tmp_path / "pred" / f"HN-PHANTOM-0000{i}.nii.gz") for i in (1, 2)]
    lines = err.splitlines()
    assert lines[-1].startswith("medfusion segment: error: 1 of 3 cases is bad (skipped it and wrote the other 2):")
    assert "HN-PHANTOM-00000" in lines[-1] and "all zeros" in lines[-1]
    assert lines[:-1] and all(line.startswith("medfusion segment: warning: no brain-like region") for line in lines[:-1])


def _write_like(src, dst, data=None, affine=None):
    img = nib.load(src)
    arr = np.asarray(img.dataobj, dtype=np.float32) if data is None else data
    nib.save(nib.Nifti1Image(arr, img.affine if affine is None else affine), dst)
    return dst


@pytest.mark.parametrize("problem", ["far_away", "bq_per_ml", "nan", "two_d", "exists"])
def test_bad_input_is_refused_before_anything_is_written(hn, weights, tmp_path, problem):
    from medfusion.apps.petct.cli import load_segmenter
    from medfusion.apps.petct.files import segment_case
    from medfusion.errors import InputError

    pet, ct, _ = _case(hn)
    out = tmp_path / "seg.nii.gz"
    pet_data = np.asarray(nib.load(pet).dataobj, dtype=np.float32)
    if problem == "far_away":
        moved = nib.load(pet).affine.copy()
        moved[:3, 3] += 1000.0
        pet = _write_like(pet, tmp_path / "pet.nii.gz", affine=moved)
    elif problem == "bq_per_ml":
        pet = _write_like(pet, tmp_path / "pet.nii.gz", data=pet_data * 5000.0)
    elif problem == "nan":
        bad = pet_data.copy()
        bad[3, 3, 3] = np.nan
        pet = _write_like(pet, tmp_path / "pet.nii.gz", data=bad)
    elif problem == "two_d":
        pet = _write_like(pet, tmp_path / "pet.nii.gz", data=pet_data[:, :, 0])
    elif problem == "exists":
        out.write_bytes(b"keep me")
    expected = {"far_away": "do not overlap", "bq_per_ml": "SUV", "nan": "NaN", "two_d": "3D",
                "exists": "exists"}[problem]
    with pytest.raises(InputError, match=expected):
        segment_case(load_segmenter(weights["diffusion"]), pet, ct, out, uncertainty=tmp_path / "u.nii.gz",
                     steps=1, samples=1)
    assert (out.read_bytes() == b"keep me") if problem == "exists" else not out.exists()
    assert not (tmp_path / "u.nii.gz").exists()


@pytest.mark.slow
@pytest.mark.parametrize("args, expected", [(["--samples", "0"], "--samples: must be at least 1"),
                                            (["--images", "."], "give --pet and --ct"),
                                            ([], "exists")])
def test_command_line_errors_are_one_line_exit_2(hn, weights, tmp_path, args, expected):
    pet, ct, _ = _case(hn)
    out = tmp_path / "seg.nii.gz"
    out.write_bytes(b"keep me")
    r = run_cli("segment", "--pet", pet, "--ct", ct, "--out", out, "--weights", weights["diffusion"], *args)
    assert r.returncode == 2 and expected in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and out.read_bytes() == b"keep me"


def test_training_set_patches_and_a_few_training_steps_of_both_models(hn, tmp_path):
    from medfusion.apps.petct.baseline import SegResNetBaseline
    from medfusion.apps.petct.model import PetCtSegModel
    from medfusion.apps.petct.train import PetCtTrainer, PetCtTrainingSet

    torch.manual_seed(0)
    for model in (PetCtSegModel.create(TINY),
                  SegResNetBaseline.create({"init_filters": 4, "blocks_down": [1, 1], "blocks_up": [1],
                                            "norm": ["group", {"num_groups": 2}]})):
        data = PetCtTrainingSet.for_model(model, hn, patch_size=[16, 16, 16], seed=1)
        item = data[0]
        assert item["image"].shape == (2, 16, 16, 16) and item["label"].shape == (1, 16, 16, 16)
        assert set(torch.unique(item["label"]).tolist()) <= {0.0, 1.0, 2.0}
        out = tmp_path / model.kind
        result = PetCtTrainer(model, data, out, val_dir=hn, val_cases=1, val_sampling_steps=1, max_steps=2,
                              batch_size=2, lr=1e-3, val_every=2, log_every=1, device="cpu").run()
        assert result["step"] == 2 and (out / "model.pt").is_file()
        log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
        val = [r for r in log if "val_dice_agg" in r]
        assert val and 0.0 <= val[0]["val_dice_agg"] <= 1.0
        assert type(model).load(out / "model.pt").info["train_steps"] == 2


def test_heldout_evaluation_scores_both_segmenters_through_the_metrics(hn, weights, tmp_path):
    from medfusion.apps.petct.baseline import SegResNetBaseline
    from medfusion.apps.petct.evaluation import evaluate_heldout, predict_case
    from medfusion.apps.petct.model import PetCtSegModel
    from medfusion.apps.petct.train import hecktor_datalist
    from medfusion.metrics import AggregatedDice

    models = {"diffusion": PetCtSegModel.load(weights["diffusion"]), "segresnet":
              SegResNetBaseline.load(weights["segresnet"])}
    with torch.no_grad():  # MONAI zero-initialises the output layer: perturb so the prediction is not constant
        for p in models["diffusion"].network.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    out = evaluate_heldout(models, hn, max_cases=2, samples=2, steps=2, report=tmp_path / "r.json")
    assert out["n_cases"] == 2 and set(out["models"]) == {"diffusion", "segresnet"}
    assert json.loads((tmp_path / "r.json").read_text())["protocol"] == "hecktor"
    agg = AggregatedDice((1, 2))
    for item in hecktor_datalist(hn)[:2]:
        r = predict_case(models["segresnet"], item)
        assert r["labels"].shape == r["truth"].shape == nib.load(item["ct"]).shape
        agg.update(r["labels"], r["truth"])
    assert out["models"]["segresnet"]["set_metrics"]["dsc_agg_mean"] == pytest.approx(agg.mean(ignore_nan=True))
    unc = out["models"]["diffusion"]["uncertainty"]
    assert len(unc["cases"]) == 2 and "uncertainty" not in out["models"]["segresnet"]
    assert set(unc["tumour_dice_after_removing"]) == {"0.0", "0.05", "0.1", "0.25"}
    for key in ("auroc_ensemble_entropy", "auroc_one_sample_entropy", "auroc_boundary_distance", "brier_ensemble",
                "ece_ensemble", "brier_one_sample", "ece_one_sample"):  # each scored over the same stated region
        assert key in unc and all(key in c for c in unc["cases"])
    assert unc["region"] == "voxels within 5 mm of the prediction or the truth"
    assert all(0 <= c["brier_ensemble"] <= 2 and 0 <= c["ece_ensemble"] <= 1 for c in unc["cases"])


def test_default_sampling_is_the_validated_choice_everywhere():
    """5 DDIM steps × 10 samples (chosen on validation phantoms, bundle docs): the API, the command and the bundle."""

    from conftest import REPO
    from medfusion.apps.petct.model import DEFAULT_SAMPLES, DEFAULT_STEPS
    from medfusion.apps.petct.inference import default_inferer
    from medfusion.cli.main import build_parser

    assert (DEFAULT_STEPS, DEFAULT_SAMPLES) == (5, 10)
    inferer = default_inferer()
    assert (inferer.steps, inferer.samples, inferer.sampler) == (DEFAULT_STEPS, DEFAULT_SAMPLES, "ddim")
    args = build_parser().parse_args(["segment", "--pet", "p", "--ct", "c", "--out", "o"])
    assert (args.steps, args.samples) == (DEFAULT_STEPS, DEFAULT_SAMPLES)
    config = json.loads((REPO / "bundles" / "hecktor_petct_diffseg" / "configs" / "inference.json").read_text())
    assert (config["steps"], config["samples"]) == (DEFAULT_STEPS, DEFAULT_SAMPLES)


def test_training_and_inference_give_the_network_the_same_conditions(hn, weights, tmp_path, monkeypatch):
    """What the sampler receives when a case is segmented from its files (the working grid, normalised PET and CT,
    padded to the divisor) is exactly the training Compose's first step for that case (before crops and flips)."""
    from medfusion.apps.petct.files import segment_case
    from medfusion.apps.petct.model import load_model
    from medfusion.apps.petct.train import hecktor_datalist
    from medfusion.apps.petct.transforms import WorkingGridd

    model = load_model(weights["diffusion"])
    pet, ct, name = _case(hn)
    item = next(i for i in hecktor_datalist(hn) if i["name"] == name)
    trained = torch.as_tensor(WorkingGridd(model.preprocessing, model.divisor)(item)["image"])
    seen = {}

    def capture(batch, class_labels=None, **kwargs):
        seen["conditions"] = batch.clone()
        return torch.full((1, 2, *batch.shape[2:]), -1.0)

    monkeypatch.setattr(model.diffusion, "sample", capture)
    segment_case(model, pet, ct, tmp_path / "seg.nii.gz", samples=1, steps=2)
    torch.testing.assert_close(seen["conditions"][0].float(), trained.float(), rtol=0, atol=1e-6)
