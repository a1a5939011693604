"""The MONAI bundle ``bundles/totalseg_mask_to_ct_mr`` through the real ``python -m monai.bundle`` command line:
metadata, configs, training, inference (2D and 3D), conversion and evaluation — with tiny networks and tiny abdomen
phantoms (plumbing: files, geometry, exit codes; never image quality)."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from bundle_helpers import assert_ok, run_bundle

BUNDLE = "bundles/totalseg_mask_to_ct_mr"
TINY = {"channels": [8, 16], "norm_num_groups": 8, "num_head_channels": 8, "num_res_blocks": 1}
TINY_DEF = [arg for k, v in TINY.items() for arg in (f"--network_def#{k}", repr(v))] + [
    "--network_def#attention_levels", "[False,True]"]


def _cfg(*names: str) -> str:
    paths = [f"{BUNDLE}/configs/{n}" for n in names]
    return paths[0] if len(paths) == 1 else "[" + ",".join(f"'{p}'" for p in paths) + "]"


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    from medfusion.phantoms.abdomen import write_abdomen_dataset

    out = tmp_path_factory.mktemp("abdomen_bundle")
    write_abdomen_dataset(out, 2, shape=(24, 20, 12), seed0=21)
    return out


@pytest.mark.slow
def test_bundle_train_generate_convert_evaluate(cases, tmp_path):
    run = tmp_path / "run"
    assert_ok(run_bundle("run", "--config_file", _cfg("train.json"), "--bundle_root", BUNDLE,
                         "--dataset_dir", str(cases), "--val_dir", str(cases), "--output_dir", str(run),
                         "--device", "cpu", "--network_config", repr(TINY), "--max_steps", "2", "--batch_size", "2",
                         "--trainer#val_every", "2", "--trainer#val_cases", "1", "--trainer#val_sampling_steps", "2",
                         "--trainer#log_every", "1", "--organ_weight", "1.0"))  # the training set keeps label maps
    ckpt = run / "model.pt"
    assert ckpt.is_file()

    common = ["--bundle_root", BUNDLE, "--checkpoint", str(ckpt), "--dataset_dir", str(cases), "--steps", "2",
              "--device", "cpu", *TINY_DEF]
    out = tmp_path / "ct"
    first = run_bundle("run", "--config_file", _cfg("inference.json"), "--output_dir", str(out), *common)
    assert_ok(first)
    names = sorted(p.name for p in cases.iterdir() if p.is_dir())
    assert sorted(p.name for p in out.iterdir()) == [f"{n}_ct.nii.gz" for n in names]
    for n in names:
        pred, ref = nib.load(out / f"{n}_ct.nii.gz"), nib.load(cases / n / "mask.nii.gz")
        assert pred.shape == ref.shape and np.allclose(pred.affine, ref.affine)
        assert -1000 <= pred.get_fdata().min() and pred.get_fdata().max() <= 1000
    again = run_bundle("run", "--config_file", _cfg("inference.json"), "--output_dir", str(out), *common)
    assert again.returncode == 2 and "Traceback" not in again.stderr
    assert [ln for ln in again.stderr.splitlines() if "error" in ln][-1].startswith(
        "totalseg_mask_to_ct_mr inference: error: output already exists")

    conv = tmp_path / "t2"
    assert_ok(run_bundle("run", "--config_file", _cfg("inference.json"), "--output_dir", str(conv), "--source", "ct",
                         "--target", "t2", *common))
    assert sorted(p.name for p in conv.iterdir()) == [f"{n}_t2.nii.gz" for n in names]
    by_image = tmp_path / "t2_image"
    assert_ok(run_bundle("run", "--config_file", _cfg("inference.json"), "--output_dir", str(by_image),
                         "--source", "ct", "--target", "t2", "--via", "image", *common))
    assert sorted(p.name for p in by_image.iterdir()) == [f"{n}_t2.nii.gz" for n in names]

    report = tmp_path / "eval" / "evaluation.json"
    assert_ok(run_bundle("run", "--config_file", _cfg("inference.json", "evaluate.json"), "--report", str(report),
                         "--tasks", "[['prior','ct'],['t1','ct']]", "--max_cases", "1", *common))
    summary = json.loads(report.read_text())["summary"]
    assert set(summary) == {"prior→ct", "t1→ct", "t1→ct (image)"}  # conversion both ways, side by side
    assert summary["t1→ct"]["baseline_name"] == "prior image" and "oracle" in summary["t1→ct (image)"]["baseline_name"]
    assert {"ssim", "psnr", "mae", "interslice_ratio", "organ_abs_mean_error"} <= set(summary["prior→ct"]["model"])


@pytest.mark.slow
def test_bundle_3d_inference(cases, tmp_path):
    import torch

    from medfusion.apps.seg2med.model import Seg2MedModel

    torch.manual_seed(0)
    generation = [("prior", "ct"), ("prior", "t1"), ("prior", "t2")]  # the 3D bundle model's tasks
    ckpt = Seg2MedModel.create(TINY, dims=3, tasks=generation, residual=True).save(tmp_path / "tiny3d.pt")
    out = tmp_path / "out"
    tiny_3d = [arg for k, v in TINY.items() for arg in (f"--network_def#{k}", repr(v))] + [
        "--network_def#attention_levels", "[False,False]"]
    assert_ok(run_bundle("run", "--config_file", _cfg("inference.json", "inference_3d.json"), "--bundle_root", BUNDLE,
                         "--checkpoint", ckpt, "--dataset_dir", str(cases), "--output_dir", str(out), "--steps", "2",
                         "--device", "cpu", "--target", "t1", *tiny_3d))
    assert len(list(out.glob("*_t1.nii.gz"))) == 2


@pytest.mark.slow
def test_published_configs_train_and_sample(cases, tmp_path):
    """train.json + train_published.json trains (a tiny network in place of theirs, two steps) a model with the
    authors' settings — no class label, epsilon, T = 500, x0 clipped to [-1, 1], their windows, the CT target masked
    by the body — and inference_published.json samples from it with 500-step DDPM's fixed_small variance."""
    from medfusion.core.checkpoint import load_checkpoint

    run = tmp_path / "run"
    tiny = {**TINY, "attention_levels": [False, True], "resblock_updown": False}
    assert_ok(run_bundle("run", "--config_file", _cfg("train.json", "train_published.json"), "--bundle_root", BUNDLE,
                         "--dataset_dir", str(cases), "--val_dir", str(cases), "--output_dir", str(run),
                         "--device", "cpu", "--network_config", repr(tiny), "--spacing", "[16.0, 16.0]",
                         "--size", "[32, 32]", "--max_steps", "2", "--batch_size", "2", "--trainer#val_every", "2",
                         "--trainer#val_cases", "1", "--trainer#val_sampling_steps", "2"))
    ckpt = load_checkpoint(run / "model.pt", kind="seg2med")
    assert ckpt.settings["class_conditioning"] is False and ckpt.network["num_class_embeds"] is None
    assert ckpt.diffusion["prediction"] == "epsilon" and ckpt.diffusion["clip_range"] == [-1.0, 1.0]
    assert ckpt.diffusion["schedule"]["num_train_timesteps"] == 500
    assert ckpt.preprocessing["windows"]["t2"] == [0.0, 160.0] and ckpt.preprocessing["prior_windows"]["t2"] == [0, 28]
    assert ckpt.preprocessing["size"] == [32, 32] and "authors' settings" in ckpt.info["description"]
    out = tmp_path / "ct"
    assert_ok(run_bundle("run", "--config_file", _cfg("inference.json", "inference_published.json"),
                         "--bundle_root", BUNDLE, "--checkpoint", str(run / "model.pt"), "--dataset_dir", str(cases),
                         "--output_dir", str(out), "--steps", "3", "--device", "cpu",
                         *[arg for k, v in tiny.items() for arg in (f"--network_def#{k}", repr(v))]))
    assert len(list(out.iterdir())) == len([p for p in cases.iterdir() if p.is_dir()])
