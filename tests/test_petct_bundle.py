"""The PET/CT bundle's training configs (``bundles/hecktor_petct_diffseg``) through the real ``python -m monai.bundle``
command line: the diffusion model and the SegResNet baseline each train two steps on tiny head-and-neck phantoms
with validation, and write checkpoints of their kinds (plumbing only, never quality)."""

from __future__ import annotations

import json

import pytest

from conftest import REPO
from test_bundle import _bundle, _ok

BUNDLE = "bundles/hecktor_petct_diffseg"


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    from medfusion.apps.petct.phantom import write_headneck_dataset

    out = tmp_path_factory.mktemp("hn_bundle")
    write_headneck_dataset(out, 2, shape=(32, 32, 16), seed0=70)
    return out


@pytest.mark.parametrize("configs, kind", [(["train.json"], "petct"),
                                           (["train.json", "train_baseline.json"], "petct-segresnet")])
def test_bundle_trains_both_segmenters(cases, tmp_path, configs, kind):
    from medfusion.core.checkpoint import load_checkpoint

    files = "[" + ",".join(f"'{BUNDLE}/configs/{c}'" for c in configs) + "]"
    run = tmp_path / "run"
    _ok(_bundle("run", "--config_file", files, "--bundle_root", BUNDLE, "--dataset_dir", str(cases),
                "--val_dir", str(cases), "--output_dir", str(run), "--device", "cpu", "--max_steps", "2",
                "--batch_size", "1", "--val_every", "2", "--val_cases", "1", "--patch_size", "[16,16,16]",
                "--network_config#channels", "[16,16]", "--logging_file", f"{BUNDLE}/configs/logging.conf",
                *(["--baseline_network_config#init_filters", "8"] if kind != "petct" else [])))
    ckpt = load_checkpoint(run / "model.pt", kind=kind)
    assert ckpt.info["train_steps"] == 2 and "val_dice_agg" in (run / "log.jsonl").read_text()
    assert ckpt.preprocessing["spacing"] == [2.0, 2.0, 2.0] and ckpt.preprocessing["box_mm"] == 144.0
    assert json.loads((REPO / BUNDLE / "configs" / "train.json").read_text())["patch_size"] == [48, 48, 48]
