"""Shared fixtures: tiny phantom cases and a tiny (untrained) cWDM checkpoint for plumbing tests.

The tiny checkpoint has random weights: tests that use it check files, shapes, geometry and errors — never
image quality.
"""

from __future__ import annotations

import locale
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

#: A network small enough for seconds-long CPU tests (2 levels → sizes padded to multiples of 4).
TINY_NETWORK = {
    "spatial_dims": 3,
    "n_conditions": 3,
    "num_class_embeds": 4,
    "channels": [8, 16],
    "num_res_blocks": 1,
    "norm_num_groups": 8,
    "num_head_channels": 8,
}


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    import torch

    from medfusion.apps.cwdm.model import CWDMModel

    torch.manual_seed(0)
    model = CWDMModel.create(TINY_NETWORK, info={"description": "tiny random-weight test checkpoint"})
    path = tmp_path_factory.mktemp("weights") / "tiny.pt"
    model.save(path)
    return path


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    """Two complete phantom cases of 20×24×18 voxels (odd-free but not multiples of 4)."""
    from medfusion.apps.cwdm.phantom import write_phantom_dataset

    out = tmp_path_factory.mktemp("phantoms")
    write_phantom_dataset(out, 2, shape=(20, 24, 18), seed0=7)
    return out


@pytest.fixture(scope="session")
def tiny_missing_dataset(tmp_path_factory) -> Path:
    """Two phantom cases of 20×24×18 voxels with t2f missing."""
    from medfusion.apps.cwdm.phantom import write_phantom_dataset

    out = tmp_path_factory.mktemp("phantoms_missing")
    write_phantom_dataset(out, 2, shape=(20, 24, 18), seed0=11, drop="t2f")
    return out


#: the locale the test session started with (see _restore_locale)
_SESSION_LOCALE = locale.setlocale(locale.LC_ALL)


@pytest.fixture(autouse=True)
def _restore_locale():
    """SimpleITK's DICOM writer (GDCM) switches the process to the C locale, after which Python opens text files
    as ASCII; tests and fixtures that write DICOM series would otherwise change the encoding every later test reads
    with.  Every test starts and ends in the session's locale.  (medfusion only reads DICOM, which leaves the
    locale alone.)"""
    locale.setlocale(locale.LC_ALL, _SESSION_LOCALE)
    yield
    locale.setlocale(locale.LC_ALL, _SESSION_LOCALE)


def _refuses_files(folder: Path) -> bool:
    import tempfile

    try:
        fd, name = tempfile.mkstemp(dir=folder)
    except OSError:
        return True
    os.close(fd)
    os.remove(name)
    return False


@pytest.fixture
def read_only_folder(tmp_path) -> Path:
    """A folder that refuses new files: one without write permission, or, where permissions do not bind (root), a
    read-only system folder."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        found = next((f for f in (folder, Path("/sys"), Path("/proc/self")) if f.is_dir() and _refuses_files(f)),
                     None)
        if found is None:
            pytest.skip("no folder here refuses new files")
        yield found
    finally:
        folder.chmod(0o755)


def run_env() -> dict:
    """Environment for subprocesses: this interpreter's packages, no GPU, quiet threads."""
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")
    env["PYTHONIOENCODING"] = "utf-8"  # the tables print ± and other non-ASCII characters
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


PYTHON = sys.executable


def run_cli(*args, cwd=None, env: dict | None = None, timeout=240) -> subprocess.CompletedProcess:
    """``python -m medfusion.cli.main ARGS`` in a fresh process (``env``: extra environment variables)."""
    return subprocess.run(
        [PYTHON, "-m", "medfusion.cli.main", *map(str, args)],
        cwd=cwd, env={**run_env(), **(env or {})}, capture_output=True, text=True, encoding="utf-8", timeout=timeout,
    )
