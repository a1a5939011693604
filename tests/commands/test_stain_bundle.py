"""The stain bundle (``bundles/he_to_ihc_staindiffuser``) through the real ``python -m monai.bundle`` command line:
metadata against the schema, configs that agree, training of the diffusion model and the U-Net baseline for two
steps, inference and evaluation on the embedded samples with tiny random networks (plumbing only, never quality)."""

from __future__ import annotations

import json
from functools import partial

import pytest

from bundle_helpers import assert_ok, config_files, run_bundle, run_in_repo
from conftest import PYTHON, REPO

BUNDLE = "bundles/he_to_ihc_staindiffuser"
TINY_UNET = {"channels": [8, 16], "norm_num_groups": 8, "num_head_channels": 8}
_cfg = partial(config_files, BUNDLE)


@pytest.mark.slow
def test_bundle_trains_the_multitask_model_under_torchrun_a_single_task_variant_and_the_baseline(tmp_path):
    from medfusion.phantoms.histology import write_tissue_dataset
    from medfusion.core.checkpoint import load_checkpoint

    data = tmp_path / "tiles"
    write_tissue_dataset(data, 2, shape=(40, 36), seed0=70)
    common = ["--bundle_root", BUNDLE, "--dataset_dir", str(data), "--val_dir", str(data), "--device", "cpu",
              "--max_steps", "2", "--batch_size", "2", "--val_every", "2", "--val_cases", "1", "--tile", "16",
              "--unet", repr(TINY_UNET), "--encoder_channels", "8", "--logging_file", f"{BUNDLE}/configs/logging.conf"]
    torchrun = [PYTHON, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "monai.bundle"]
    for extra, kind, tasks in ((["train.json", "multi_gpu_train.json"], "stain", ["ihc", "cells"]),
                               (["train.json", "train_cells_only.json"], "stain", ["cells"]),
                               (["train.json", "train_baseline.json"], "stain-unet", ["ihc", "cells"])):
        run = tmp_path / "+".join(extra)
        more = ["--baseline_network_config#channels", "[8,16]", "--baseline_network_config#strides", "[2]"] \
            if kind == "stain-unet" else []
        args = ["run", "--config_file", _cfg(*extra), "--output_dir", str(run), *common, *more]
        # the multitask model with real DDP: two processes under torchrun (gloo on a CPU)
        ddp = "multi_gpu_train.json" in extra
        assert_ok(run_in_repo([*torchrun, *args], timeout=180) if ddp else run_bundle(*args))
        ckpt = load_checkpoint(run / "model.pt", kind=kind)
        assert ckpt.info["train_steps"] == 2 and ckpt.settings["tasks"] == tasks and ckpt.settings["tile"] == 16
        log = (run / "log.jsonl").read_text()
        assert "val_score" in log and ('"world_size": 2' in log) == ("multi_gpu_train.json" in extra)


@pytest.mark.slow
def test_bundle_inference_and_evaluation_on_the_samples(tmp_path):
    """inference.json on the embedded H&E images (outputs of the inputs' sizes, tiled where larger than the tile)
    and evaluate.json (diffusion, U-Net and the no-learning references scored), with tiny random networks."""
    import torch
    from PIL import Image

    from medfusion.apps.stain.baseline import UNetBaseline
    from medfusion.apps.stain.model import StainModel

    torch.manual_seed(0)
    ckpt = StainModel.create(TINY_UNET, encoder_channels=8, tile=64).save(tmp_path / "tiny.pt")
    base = UNetBaseline.create({"channels": [8, 16], "strides": [2]}, tile=64).save(tmp_path / "unet.pt")
    tiny_def = [arg for k, v in TINY_UNET.items() for arg in (f"--network_def#unet#{k}", repr(v))] + [
        "--network_def#encoder_channels", "8"]
    common = ["--bundle_root", BUNDLE, "--checkpoint", str(ckpt), "--steps", "1", "--device", "cpu", *tiny_def]
    out, cells = tmp_path / "ihc", tmp_path / "cells"
    assert_ok(run_bundle("run", "--config_file", _cfg("inference.json"), "--output_dir", str(out),
                         "--cells_dir", str(cells), *common))
    for he in sorted((REPO / "data" / "stain_sample" / "he").glob("*.png")):
        with Image.open(he) as a, Image.open(out / he.name) as b, Image.open(cells / he.name) as c:
            assert a.size == b.size == c.size and b.mode == "RGB"
    report = tmp_path / "eval.json"
    assert_ok(run_bundle("run", "--config_file", _cfg("inference.json", "evaluate.json"), "--report", str(report),
                         "--baseline_checkpoint", str(base), *common))
    result = json.loads(report.read_text())
    assert result["n_cases"] == 2
    assert set(result["models"]) == {"diffusion", "unet", "he_as_ihc", "haematoxylin_as_ihc", "haematoxylin_watershed"}
    assert 0.0 <= result["models"]["diffusion"]["cells"]["dice"] <= 1.0
