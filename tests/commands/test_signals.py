"""Ctrl-C (SIGINT) and SIGTERM (what Slurm and other schedulers send) mid-run, to every long command in a real
process: one line, exit status 130 / 143, no output, no temporary file, the inputs unchanged.

Each command runs with a tiny random-weight model and many sampling steps, and gets the signal once its progress
bar shows that sampling has started (the streamed stain run: once its output TIFF is being filled; ``phantoms``:
once its first case is staged; ``evaluate``, scoring in two worker processes: once its first case is scored).
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time

import pytest

from conftest import PYTHON, hashes, run_env

pytestmark = pytest.mark.slow

SIGNALS = {"SIGINT": (signal.SIGINT, 130, "interrupted"), "SIGTERM": (signal.SIGTERM, 143, "terminated (SIGTERM)")}


def snapshot(folder) -> dict[str, str]:  # every file and folder, hidden ones included
    return hashes(folder, folders=True)


def _child_defaults():  # Ctrl-C works in the child even if this test run ignores it (a background job)
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Run:
    """``medfusion ARGS`` in a real process, its stderr collected as it comes."""

    def __init__(self, args) -> None:
        self.proc = subprocess.Popen([PYTHON, "-m", "medfusion.cli.main", *map(str, args)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=run_env(),
                                     preexec_fn=_child_defaults)
        self.chunks: list[bytes] = []
        self.reader = threading.Thread(target=lambda: self.chunks.extend(iter(lambda: self.proc.stderr.read1(4096),
                                                                              b"")), daemon=True)
        self.reader.start()

    @property
    def stderr(self) -> str:
        return b"".join(self.chunks).decode("utf-8", "replace")


def interrupt(runs: dict, timeout=180) -> dict:
    """Send each run (signal number → (:class:`Run`, ``ready``)) its signal as soon as ``ready(its stderr so far)``;
    the runs go on side by side.  Returns signal number → (exit status, stderr)."""
    deadline, waiting = time.monotonic() + timeout, dict(runs)
    try:
        while waiting:
            for signum, (run, ready) in list(waiting.items()):
                if ready(run.stderr):
                    run.proc.send_signal(signum)
                    del waiting[signum]
                else:
                    assert run.proc.poll() is None, f"ended before it was signalled: {run.stderr}"
            assert time.monotonic() < deadline, "never got under way"
            time.sleep(0.05)
        for run, _ in runs.values():
            run.proc.wait(timeout=60)
    finally:
        for run, _ in runs.values():
            if run.proc.poll() is None:
                run.proc.kill()
    for run, _ in runs.values():
        run.reader.join(timeout=10)
    return {signum: (run.proc.returncode, run.stderr) for signum, (run, _) in runs.items()}


def sampling(stderr: str) -> bool:
    return "%|" in stderr  # the progress bar is up: the model is loaded and sampling


def staged(folder):
    return lambda _: os.path.isdir(folder) and any(n.startswith(".") for _, _, f in os.walk(folder) for n in f)


def _commands(kit, out):
    brats = next(p for p in (kit / "brats").iterdir() if p.is_dir())
    abdomen = next(p for p in (kit / "abdomen").iterdir() if p.is_dir())
    hn = kit / "headneck"
    pet, ct = (sorted((hn / "imagesTr").glob(f"*__{m}.nii.gz"))[0] for m in ("PT", "CT"))
    steps = ["--steps", "1000"]
    return {
        "synthesize": (["synthesize", brats, "--out", out / "t2f.nii.gz", "--weights", kit / "cwdm.pt", *steps],
                       sampling),
        "demo": (["demo", "--data", kit / "brats_full", "--out", out / "demo", "--weights", kit / "cwdm.pt", *steps],
                 sampling),
        "generate": (["generate", "--mask", abdomen / "mask.nii.gz", "--body", abdomen / "body.nii.gz", "--modality",
                      "ct", "--out", out / "ct.nii.gz",
                      "--weights", kit / "seg2med.pt", *steps], sampling),
        "convert": (["convert", "--image", abdomen / "t1.nii.gz", "--from", "t1", "--to", "ct", "--via", "image",
                     "--out", out / "ct.nii.gz", "--weights", kit / "seg2med.pt", *steps], sampling),
        "segment": (["segment", "--pet", pet, "--ct", ct, "--out", out / "labels.nii.gz", "--uncertainty",
                     out / "u.nii.gz", "--weights", kit / "petct.pt", *steps], sampling),
        "stain": (["stain", "--he", kit / "he.png", "--out", out / "ihc.png", "--cells", out / "cells.png",
                   "--weights", kit / "stain.pt", *steps], sampling),
        "stain --stream": (["stain", "--he", kit / "he.tif", "--stream", "--out", out / "ihc.tif", "--cells",
                            out / "cells.tif", "--weights", kit / "stain.pt", *steps], staged(out)),
        "phantoms": (["phantoms", "--kind", "brats", "--n", "40", "--shape", "48", "48", "48", "--out", out / "ph"],
                     staged(out / "ph")),
        "evaluate": (["evaluate", "--pred", kit / "eval" / "pred", "--ref", kit / "eval" / "ref", "--metrics", "fsim",
                      "--data-range", "1", "--workers", "2", "--out", out / "r.json", "--plot", out / "plots"],
                     sampling),
    }


COMMANDS = ["synthesize", "demo", "generate", "convert", "segment", "stain", "stain --stream", "phantoms", "evaluate"]


@pytest.mark.parametrize("name", COMMANDS)
def test_a_signal_mid_run_leaves_nothing(kit, tmp_path, name):
    """SIGINT and SIGTERM, each to its own run of the command (the two runs side by side)."""
    before = snapshot(kit), snapshot(tmp_path)
    runs = {}
    for sig, (signum, _, _) in SIGNALS.items():
        args, ready = _commands(kit, tmp_path / sig)[name]
        runs[signum] = (Run(args), ready)
    results = interrupt(runs)
    command = name.split()[0]
    for sig, (signum, status, how) in SIGNALS.items():
        rc, stderr = results[signum]
        assert rc == status, (sig, stderr)
        assert stderr.count("\n") == 1, (sig, stderr)
        assert stderr.rstrip("\n").split("\r")[-1] == f"medfusion {command}: {how}; nothing was written", (sig, stderr)
    assert (snapshot(kit), snapshot(tmp_path)) == before  # no output, no temporary file, inputs unchanged


def test_sigterm_stops_training_and_its_last_checkpoint_resumes_it(kit, tmp_path):
    """A bundle training run (what a scheduler stops most often): one line naming the checkpoint that resumes it,
    exit status 143, no temporary file, and that checkpoint whole, at the step the line names."""
    import json

    from conftest import REPO, TINY_NETWORK

    out = tmp_path / "run"
    args = ["-m", "monai.bundle", "run", "--config_file", "configs/train.json", "--dataset_dir", kit / "brats_full",
            "--output_dir", out, "--val_dir", "$None", "--device", "cpu", "--network_config", repr(TINY_NETWORK),
            "--patch_size", "[16,16,16]", "--trainer#max_steps", "100000", "--trainer#save_every", "1",
            "--trainer#log_every", "1"]
    proc = subprocess.Popen([PYTHON, *map(str, args)], cwd=REPO / "bundles" / "brats_mri_cwdm", env=run_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, preexec_fn=_child_defaults)
    try:
        deadline = time.monotonic() + 180
        while not (out / "last.pt").exists():
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read().decode()
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        err = proc.communicate(timeout=60)[1].decode()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, err
    stopped = json.loads((out / "log.jsonl").read_text().splitlines()[-1])
    assert stopped["event"] == "stopped" and stopped["signal"] == "SIGTERM" and stopped["resumes_from"] >= 1
    assert err.splitlines()[-1] == (f"brats_mri_cwdm training: terminated (SIGTERM); {out / 'last.pt'} (step "
                                    f"{stopped['resumes_from']}) resumes it")
    assert sorted(os.listdir(out)) == ["last.pt", "log.jsonl"]  # no half-written checkpoint beside them
    from medfusion.core.checkpoint import load_torch

    assert load_torch(out / "last.pt")["step"] == stopped["resumes_from"]
