"""The PET/CT bundle's training configs (``bundles/hecktor_petct_diffseg``) through the real ``python -m monai.bundle``
command line: the diffusion model and the SegResNet baseline each train two steps on tiny head-and-neck phantoms
with validation, and write checkpoints of their kinds (plumbing only, never quality)."""

from __future__ import annotations

import json
from functools import partial

import pytest

from bundle_helpers import assert_ok, config_files, run_bundle
from conftest import REPO

BUNDLE = "bundles/hecktor_petct_diffseg"
_cfg = partial(config_files, BUNDLE)


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    from medfusion.phantoms.headneck import write_headneck_dataset

    out = tmp_path_factory.mktemp("hn_bundle")
    write_headneck_dataset(out, 2, shape=(32, 32, 16), seed0=70)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("configs, kind", [(["train.json"], "petct"),
                                           (["train.json", "train_baseline.json"], "petct-segresnet")])
def test_bundle_trains_both_segmenters(cases, tmp_path, configs, kind):
    from medfusion.core.checkpoint import load_checkpoint

    run = tmp_path / "run"
    assert_ok(run_bundle("run", "--config_file", _cfg(*configs), "--bundle_root", BUNDLE, "--dataset_dir", str(cases),
                         "--val_dir", str(cases), "--output_dir", str(run), "--device", "cpu", "--max_steps", "2",
                         "--batch_size", "1", "--val_every", "2", "--val_cases", "1", "--patch_size", "[16,16,16]",
                         "--network_config#channels", "[16,16]", "--logging_file", f"{BUNDLE}/configs/logging.conf",
                         *(["--baseline_network_config#init_filters", "8"] if kind != "petct" else [])))
    ckpt = load_checkpoint(run / "model.pt", kind=kind)
    assert ckpt.info["train_steps"] == 2 and "val_dice_agg" in (run / "log.jsonl").read_text()
    assert ckpt.preprocessing["spacing"] == [2.0, 2.0, 2.0] and ckpt.preprocessing["box_mm"] == 144.0
    assert json.loads((REPO / BUNDLE / "configs" / "train.json").read_text())["patch_size"] == [48, 48, 48]


TINY = {"channels": [8, 8], "norm_num_groups": 4, "num_head_channels": 4}
TINY_DEF = [arg for k, v in TINY.items() for arg in (f"--network_def#{k}", repr(v))] + [
    "--network_def#attention_levels", "[False,False]"]


@pytest.mark.slow
def test_bundle_inference_and_evaluation_on_the_sample_case(tmp_path):
    """inference.json on the embedded sample (labels, probabilities and uncertainty on the CT grid) and
    evaluate.json (both segmenters scored), with tiny random networks."""
    import nibabel as nib
    import torch

    from medfusion.apps.petct.baseline import SegResNetBaseline
    from medfusion.apps.petct.model import PetCtSegModel

    torch.manual_seed(0)
    ckpt = PetCtSegModel.create(TINY).save(tmp_path / "tiny.pt")
    base = SegResNetBaseline.create({"init_filters": 4, "blocks_down": [1, 1], "blocks_up": [1],
                                     "norm": ["group", {"num_groups": 2}]}).save(tmp_path / "base.pt")
    common = ["--bundle_root", BUNDLE, "--checkpoint", str(ckpt), "--steps", "1", "--samples", "2", "--device", "cpu",
              *TINY_DEF]
    out, unc = tmp_path / "seg", tmp_path / "unc"
    assert_ok(run_bundle("run", "--config_file", _cfg("inference.json"), "--output_dir", str(out), "--uncertainty_dir",
                         str(unc), *common))
    sample = REPO / "data" / "headneck_phantom"
    ct = nib.load(sample / "imagesTr" / "HN-SAMPLE-00000__CT.nii.gz")
    seg = nib.load(out / "HN-SAMPLE-00000.nii.gz")
    assert seg.shape == ct.shape and nib.load(unc / "HN-SAMPLE-00000.nii.gz").shape == ct.shape + (3,)
    report = tmp_path / "eval.json"
    assert_ok(run_bundle("run", "--config_file", _cfg("inference.json", "evaluate.json"), "--report", str(report),
                         "--baseline_checkpoint", str(base), *common))
    result = json.loads(report.read_text())
    assert set(result["models"]) == {"diffusion", "segresnet"} and result["n_cases"] == 1
