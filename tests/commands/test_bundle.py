"""The MONAI bundle ``bundles/brats_mri_cwdm``: metadata against the model-zoo schema, configs against the
package, and the real ``python -m monai.bundle`` command line (inference, evaluation, training, resume, DDP).

Everything runs offline on the CPU with the tiny random-weight checkpoint and tiny phantoms of ``conftest``:
these tests check plumbing (files, shapes, geometry, exit codes, logs), never image quality. What they share with
the other bundles' tests (running a bundle command, the offline metadata check and why it works offline, the
config-component check) is in ``bundle_helpers``.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import pytest

from bundle_helpers import SCHEMA, SCHEMA_MD5, assert_ok, bundle_env, run_bundle, run_in_repo
from conftest import PYTHON, REPO, TINY_NETWORK

BUNDLE = "bundles/brats_mri_cwdm"  # relative to REPO (every subprocess runs with cwd=REPO)
CONFIGS = REPO / BUNDLE / "configs"
SCHEMA_URL = "https://github.com/Project-MONAI/MONAI-extra-test-data/releases/download/0.8.1/meta_schema_20240725.json"
#: the tiny test network as command-line overrides of the inference configs' network_def
TINY_NETWORK_DEF = [arg for k in ("channels", "norm_num_groups", "num_head_channels", "num_res_blocks")
                    for arg in (f"--network_def#{k}", repr(TINY_NETWORK[k]))]


#: what README.md tells users who trust these configs to set, so that MONAI's notice that a bundle config can run
#: code is not printed on every run
QUIET_CONFIG_NOTICE = "ignore:parsing config_file:UserWarning"


def _cfg(*names: str) -> str:
    """``--config_file`` value: one file, or a list merged left to right."""
    paths = [f"{BUNDLE}/configs/{n}" for n in names]
    return paths[0] if len(paths) == 1 else "[" + ",".join(f"'{p}'" for p in paths) + "]"


def _log_records(output_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (output_dir / "log.jsonl").read_text().splitlines() if line.strip()]


def _tiny_train_args(dataset: Path, out: Path, *, max_steps: int, val_dir: Path | None) -> list[str]:
    return [
        "--bundle_root", BUNDLE,
        "--dataset_dir", str(dataset),
        "--output_dir", str(out),
        # `monai.bundle run` drops overrides whose value is None (fire turns `None` into None), so "no
        # validation" is the config expression "$None"
        "--val_dir", str(val_dir) if val_dir is not None else "$None",
        "--device", "cpu",
        "--network_config", repr(TINY_NETWORK),
        "--patch_size", "[16,16,16]",
        "--trainer#max_steps", str(max_steps),
        "--trainer#val_every", "2",
        "--trainer#val_cases", "1",
        "--trainer#val_sampling_steps", "2",
        "--trainer#log_every", "1",
    ]


# ---- metadata ------------------------------------------------------------------------------------------------
def test_schema_copy_is_monais_file():
    assert hashlib.md5((REPO / SCHEMA).read_bytes()).hexdigest() == SCHEMA_MD5
    meta = json.loads((CONFIGS / "metadata.json").read_text())
    assert meta["schema"] == SCHEMA_URL


@pytest.mark.slow
def test_metadata_verifies_offline(tmp_path):
    proc = run_bundle("verify_metadata", "--meta_file", f"{BUNDLE}/configs/metadata.json", "--filepath", SCHEMA,
                      "--hash_val", SCHEMA_MD5)
    assert_ok(proc)
    assert "metadata is verified with no error" in proc.stdout + proc.stderr

    # a broken copy fails (in-process: same function, no second interpreter start-up)
    from monai.bundle import verify_metadata

    meta = json.loads((CONFIGS / "metadata.json").read_text())
    del meta["network_data_format"]["outputs"]
    meta["version"] = 1
    broken = tmp_path / "metadata.json"
    broken.write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="Failed validating"):
        verify_metadata(meta_file=str(broken), filepath=str(REPO / SCHEMA), hash_val=SCHEMA_MD5)


def test_metadata_matches_network_layout():
    """metadata.json describes the network's own input and output: wavelet channels at half the padded size."""
    from medfusion.networks import spatial_divisor

    meta = json.loads((CONFIGS / "metadata.json").read_text())
    net = json.loads((CONFIGS / "inference.json").read_text())["network_def"]
    k = spatial_divisor(net["channels"])
    fmt = meta["network_data_format"]
    assert fmt["inputs"]["image"]["spatial_shape"] == [f"{k // 2}*n"] * 3
    assert fmt["outputs"]["pred"]["spatial_shape"] == [f"{k // 2}*n"] * 3
    assert fmt["inputs"]["image"]["num_channels"] == 8 * (1 + net["n_conditions"]) == 32
    assert fmt["outputs"]["pred"]["num_channels"] == 8
    assert fmt["inputs"]["class_labels"]["value_range"] == [0, net["num_class_embeds"] - 1]
    train = json.loads((CONFIGS / "train.json").read_text())
    assert train["network_config"] == {k: v for k, v in net.items() if k != "_target_"}


# ---- configs -------------------------------------------------------------------------------------------------
# ---- the real command line -----------------------------------------------------------------------------------
@pytest.mark.slow
def test_inference_cli(tiny_checkpoint, tiny_missing_dataset, tmp_path):
    import nibabel as nib
    import numpy as np

    out = tmp_path / "out"
    args = ["--config_file", _cfg("inference.json"), "--bundle_root", BUNDLE, "--checkpoint", str(tiny_checkpoint),
            "--dataset_dir", str(tiny_missing_dataset), "--output_dir", str(out), "--steps", "2", "--device", "cpu",
            *TINY_NETWORK_DEF]
    first = run_bundle("run", *args, PYTHONWARNINGS=QUIET_CONFIG_NOTICE)
    assert_ok(first)
    # the bundle's configs/logging.conf was found and accepted by MONAI's logging-config checks
    assert "Setting logging properties based on config" in first.stdout + first.stderr
    assert "Warning" not in first.stderr, first.stderr  # the filter README.md gives silences MONAI's notice

    cases = sorted(p for p in tiny_missing_dataset.iterdir() if p.is_dir())
    assert len(cases) == 2
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{c.name}-t2f.nii.gz" for c in cases)
    before = {}
    for case in cases:
        pred = nib.load(out / f"{case.name}-t2f.nii.gz")
        ref = nib.load(case / f"{case.name}-t1n.nii.gz")
        assert pred.shape == ref.shape
        np.testing.assert_allclose(pred.affine, ref.affine, atol=1e-5)
        data = np.asarray(pred.dataobj)
        assert np.isfinite(data).all() and data.min() >= 0 and data.max() <= 1
        before[case.name] = (out / f"{case.name}-t2f.nii.gz").read_bytes()

    assert all(f"wrote {out / (c.name + '-t2f.nii.gz')}" in first.stdout for c in cases)  # what went where
    again = run_bundle("run", *args)
    assert again.returncode == 2
    errors = [line for line in again.stderr.splitlines() if "error" in line.lower()]
    assert errors[-1].startswith("brats_mri_cwdm inference: error: output already exists"), again.stderr[-2000:]
    assert errors[-1].endswith("(run with --overwrite true to replace it)")
    assert "parsing config_file" in again.stderr  # MONAI's notice, without the filter
    assert "Traceback" not in again.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{n}-t2f.nii.gz" for n in before)
    for name, content in before.items():
        assert (out / f"{name}-t2f.nii.gz").read_bytes() == content

    # the shipped weights, then one transform and the inferer swapped from the command line: the inputs normalised
    # to their 90th percentile, tiles of 8 voxels instead of the whole volume — each reaches the run
    def shipped(folder: str, *extra: str) -> dict:
        result = run_bundle("run", "--config_file", _cfg("inference.json"), "--bundle_root", BUNDLE,
                            "--dataset_dir", str(tiny_missing_dataset), "--output_dir", str(tmp_path / folder),
                            "--steps", "2", "--device", "cpu", *extra)
        assert_ok(result)
        return {c.name: np.asarray(nib.load(tmp_path / folder / f"{c.name}-t2f.nii.gz").dataobj) for c in cases}

    default = shipped("default")
    renormalised = shipped("renormalised", "--preprocessing#transforms#0#upper", "90.0")
    tiled = shipped("tiled", "--inferer#_target_", "medfusion.core.inferers.SlidingWindowInferer",
                    "--inferer#roi_size", "[8, 8, 8]")
    for case in cases:
        assert np.count_nonzero(default[case.name]) and np.count_nonzero(renormalised[case.name])
        assert not np.array_equal(default[case.name], renormalised[case.name])
        assert np.count_nonzero(tiled[case.name]) and not np.array_equal(default[case.name], tiled[case.name])


@pytest.mark.slow
def test_evaluate_cli(tiny_checkpoint, tiny_dataset, tmp_path):
    report = tmp_path / "eval" / "report.json"
    assert_ok(run_bundle("run", "--config_file", _cfg("inference.json", "evaluate.json"), "--bundle_root", BUNDLE,
                         "--checkpoint", str(tiny_checkpoint), "--dataset_dir", str(tiny_dataset),
                         "--report", str(report), "--steps", "2", "--missing", "['t2f']", "--device", "cpu",
                         *TINY_NETWORK_DEF))
    result = json.loads(report.read_text())
    assert {r["missing"] for r in result["cases"]} == {"t2f"} and len(result["cases"]) == 2
    for group in ("t2f", "all"):
        summary = result["summary"][group]
        assert summary["n"] == 2
        for who in ("model", "baseline"):
            assert {"ssim_tumour", "ssim_non_tumour", "psnr"} <= set(summary[who])


@pytest.mark.slow
def test_train_cli_and_resume(tiny_dataset, tmp_path):
    out = tmp_path / "train"
    assert_ok(run_bundle("run", "--config_file", _cfg("train.json"),
                         *_tiny_train_args(tiny_dataset, out, max_steps=2, val_dir=tiny_dataset)))
    assert (out / "model.pt").is_file() and (out / "last.pt").is_file()
    records = _log_records(out)
    assert records[0] == {"event": "start", "world_size": 1, "device": "cpu", "precision": "float32"}
    assert any("val_ssim" in r and r["step"] == 2 for r in records)

    import torch

    assert torch.load(out / "last.pt", map_location="cpu", weights_only=True)["step"] == 2
    proc = run_bundle("run", "--config_file", _cfg("train.json"),
                      *_tiny_train_args(tiny_dataset, out, max_steps=3, val_dir=tiny_dataset))
    assert_ok(proc)
    assert "event=resumed step=2" in proc.stdout
    records = _log_records(out)
    assert {"event": "resumed", "step": 2} in records
    assert any(r.get("step") == 3 and "loss" in r for r in records)
    assert torch.load(out / "last.pt", map_location="cpu", weights_only=True)["step"] == 3


@pytest.mark.slow
def test_train_swaps_the_optimizer_and_clips_from_the_command_line(tiny_dataset, tmp_path):
    """The optimizer is a config component (``optimizer``, a torch optimizer with ``"_mode_": "callable"``) and gradient clipping a
    value: both changed by overrides alone."""
    out = tmp_path / "sgd"
    proc = run_bundle("run", "--config_file", _cfg("train.json"),
                      *_tiny_train_args(tiny_dataset, out, max_steps=2, val_dir=None),
                      "--optimizer#_target_", "torch.optim.SGD", "--grad_clip_norm", "0.5")
    assert_ok(proc)
    import torch

    state = torch.load(out / "last.pt", map_location="cpu", weights_only=True)["optimizer"]
    assert state["param_groups"][0].get("momentum") == 0  # SGD's state, not AdamW's (betas)
    assert "betas" not in state["param_groups"][0]


@pytest.mark.slow
def test_train_swaps_the_lr_scheduler_from_the_command_line_and_resumes_it(tiny_dataset, tmp_path):
    """A torch LR scheduler as the ``lr_scheduler`` component replaces the built-in schedule; its state travels in
    ``last.pt``, so a resumed run goes on halving where it stopped (the log records each step's rate)."""
    out = tmp_path / "steplr"
    halving = "{'_target_': 'torch.optim.lr_scheduler.StepLR', '_mode_': 'callable', 'step_size': 1, 'gamma': 0.5}"
    for max_steps in (2, 3):
        proc = run_bundle("run", "--config_file", _cfg("train.json"),
                          *_tiny_train_args(tiny_dataset, out, max_steps=max_steps, val_dir=None),
                          "--lr", "0.001", "--lr_scheduler", halving)
        assert_ok(proc)
    rates = {r["step"]: r["lr"] for r in _log_records(out) if "lr" in r}
    assert rates == pytest.approx({1: 1e-3, 2: 5e-4, 3: 2.5e-4})


@pytest.mark.slow
def test_train_ddp_two_processes(tiny_dataset, tmp_path):
    out = tmp_path / "ddp"
    proc = run_in_repo([PYTHON, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                        "-m", "monai.bundle", "run", "--config_file", _cfg("train.json", "multi_gpu_train.json"),
                        *_tiny_train_args(tiny_dataset, out, max_steps=2, val_dir=None)], timeout=180)
    assert_ok(proc)
    records = _log_records(out)
    starts = [r for r in records if r.get("event") == "start"]
    assert starts == [{"event": "start", "world_size": 2, "device": "cpu", "precision": "float32"}]  # rank 0 only
    assert proc.stdout.count("event=start") == 1
    assert any(r.get("step") == 2 and "loss" in r for r in records)
    assert (out / "model.pt").is_file() and (out / "last.pt").is_file()
    assert sorted(p.name for p in out.glob("*.pt")) == ["last.pt", "model.pt"]

    import torch

    state = torch.load(out / "model.pt", map_location="cpu", weights_only=True)
    assert state["info"]["train_steps"] == 2
    last = torch.load(out / "last.pt", map_location="cpu", weights_only=True)
    assert last["step"] == 2 and len(last["generator"]) == 2  # one sampling-RNG state per rank


@pytest.mark.slow
def test_bundle_copy_outside_the_repository(tiny_checkpoint, tiny_missing_dataset, tmp_path):
    """A copy of the bundle folder on its own runs inference from its own folder with --dataset_dir; a wrong
    --dataset_dir is one readable line and exit 2."""
    import shutil

    copy = tmp_path / "brats_mri_cwdm"
    shutil.copytree(REPO / BUNDLE, copy, ignore=shutil.ignore_patterns("eval", "runs", "data"))
    shutil.copy(tiny_checkpoint, copy / "models" / "model.pt")
    base = [PYTHON, "-m", "monai.bundle", "run", "--config_file", "configs/inference.json", "--steps", "1",
            "--device", "cpu", *TINY_NETWORK_DEF]
    proc = subprocess.run(base + ["--dataset_dir", str(tiny_missing_dataset)], cwd=copy, env=bundle_env(),
                          capture_output=True, text=True, encoding="utf-8", timeout=120)
    assert_ok(proc)
    assert len(list((copy / "eval").glob("*-t2f.nii.gz"))) == 2
    bad = subprocess.run(base + ["--dataset_dir", str(tmp_path / "nowhere")], cwd=copy, env=bundle_env(),
                         capture_output=True, text=True, encoding="utf-8", timeout=120)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert f"brats_mri_cwdm inference: error: dataset folder not found: {tmp_path / 'nowhere'}" in bad.stderr


@pytest.mark.slow
def test_inference_under_torchrun_splits_the_cases(tiny_checkpoint, tiny_missing_dataset, tmp_path):
    """Two processes fill in the two cases, one each, and every output is checked by both before any work."""
    out = tmp_path / "out"
    proc = run_in_repo([PYTHON, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                        "-m", "monai.bundle", "run", "--config_file", _cfg("inference.json"), "--bundle_root", BUNDLE,
                        "--checkpoint", str(tiny_checkpoint), "--dataset_dir", str(tiny_missing_dataset),
                        "--output_dir", str(out), "--steps", "1", "--device", "cpu", *TINY_NETWORK_DEF], timeout=180)
    assert_ok(proc)
    cases = sorted(p.name for p in tiny_missing_dataset.iterdir() if p.is_dir())
    assert sorted(p.name for p in out.iterdir()) == [f"{c}-t2f.nii.gz" for c in cases]
    wrote = [line for line in proc.stdout.splitlines() if "wrote" in line]
    assert len(wrote) == 2 and len({line.split("wrote", 1)[1] for line in wrote}) == 2  # one case per process


def test_inference_checks_every_case_first_or_skips_the_bad_ones(tiny_checkpoint, tiny_missing_dataset, tmp_path,
                                                                  capsys):
    """A dataset with a case whose t1n holds NaN: nothing is written (exit 2, one line naming the case and the
    option), or with skip_bad the good cases are written and the bad one is listed."""
    import shutil

    import nibabel as nib
    import numpy as np

    from medfusion.apps.cwdm.files import BraTSFolder, SynthesisSaver, Synthesizer
    from medfusion.apps.cwdm.model import load_model
    from medfusion.core.bundle import Inference
    from medfusion.core.inferers import WholeVolumeInferer
    from medfusion.core.runner import CaseInference

    data = tmp_path / "data"
    shutil.copytree(tiny_missing_dataset, data)
    bad = sorted(p for p in data.iterdir() if p.is_dir())[0]
    t1n = next(bad.glob("*-t1n.nii.gz"))
    img = nib.load(t1n)
    values = np.asarray(img.dataobj, np.float32)
    values[1, 1, 1] = np.nan
    nib.save(nib.Nifti1Image(values, img.affine), t1n)
    model = load_model(tiny_checkpoint)
    for skip_bad, written in ((False, []), (True, [p.name + "-t2f.nii.gz" for p in sorted(data.iterdir())[1:]])):
        capsys.readouterr()
        with pytest.raises(SystemExit) as exit_:
            inference = CaseInference(BraTSFolder(data), Synthesizer(model, WholeVolumeInferer(steps=1)),
                                      SynthesisSaver(tmp_path / f"out{skip_bad}"), skip_bad=skip_bad)
            Inference(inference, "brats_mri_cwdm inference").run()
        err = capsys.readouterr().err
        assert exit_.value.code == 2 and err.count("\n") == 1, err
        assert err.startswith("brats_mri_cwdm inference: error: 1 of 2 cases is bad") and bad.name in err
        assert ("--skip_bad true" in err) != skip_bad
        out = tmp_path / f"out{skip_bad}"
        assert sorted(p.name for p in out.iterdir()) == written if written else not out.exists()
