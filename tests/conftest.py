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
    from medfusion.phantoms.brain_files import write_brats_dataset

    out = tmp_path_factory.mktemp("phantoms")
    write_brats_dataset(out, 2, shape=(20, 24, 18), seed0=7)
    return out


@pytest.fixture(scope="session")
def tiny_missing_dataset(tmp_path_factory) -> Path:
    """Two phantom cases of 20×24×18 voxels with t2f missing."""
    from medfusion.phantoms.brain_files import write_brats_dataset

    out = tmp_path_factory.mktemp("phantoms_missing")
    write_brats_dataset(out, 2, shape=(20, 24, 18), seed0=11, drop="t2f")
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


@pytest.fixture(scope="session")
def kit(tmp_path_factory):
    """Inputs of every application and a tiny random-weight model of each, in one folder (never written to by the
    tests that use it)."""
    import nibabel as nib
    import numpy as np
    import torch
    from PIL import Image

    from medfusion.apps.cwdm.model import CWDMModel
    from medfusion.phantoms.brain_files import write_brats_dataset
    from medfusion.apps.petct.model import PetCtSegModel
    from medfusion.phantoms.headneck import write_headneck_dataset
    from medfusion.apps.seg2med.model import Seg2MedModel
    from medfusion.phantoms.abdomen import write_abdomen_dataset as write_abdomen
    from medfusion.apps.stain.model import StainModel

    root = tmp_path_factory.mktemp("kit")
    torch.manual_seed(0)
    small = {"channels": [8, 8], "norm_num_groups": 4, "num_head_channels": 4}
    CWDMModel.create(TINY_NETWORK).save(root / "cwdm.pt")
    Seg2MedModel.create(small, dims=2).save(root / "seg2med.pt")
    PetCtSegModel.create(small).save(root / "petct.pt")
    StainModel.create(small, encoder_channels=8, tile=16).save(root / "stain.pt")
    write_brats_dataset(root / "brats", 1, shape=(16, 16, 16), seed0=3, drop="t2f")
    write_brats_dataset(root / "brats_full", 1, shape=(16, 16, 16), seed0=4)
    write_abdomen(root / "abdomen", 1, shape=(24, 24, 8), seed0=5)
    write_headneck_dataset(root / "headneck", 2, shape=(32, 32, 16), seed0=6)
    rng = np.random.default_rng(0)
    for i in range(16):  # pairs for a long evaluation
        for side in ("pred", "ref"):
            (root / "eval" / side).mkdir(parents=True, exist_ok=True)
            nib.save(nib.Nifti1Image(rng.random((64, 64, 48), dtype=np.float32), np.eye(4)),
                     str(root / "eval" / side / f"c{i:02d}.nii"))
    rgb = rng.integers(0, 255, (48, 48, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(root / "he.png")
    Image.fromarray(rgb).save(root / "he.tif")
    return root


def hashes(folder, *, folders: bool = False) -> dict[str, str]:
    """relative path → sha256 of every file under ``folder`` (hidden files included; a broken link as its target),
    and with ``folders`` every folder too (→ '')."""
    import hashlib

    result = {}
    for root, dirs, files in os.walk(folder):
        for d in dirs if folders else ():
            result[os.path.relpath(os.path.join(root, d), folder) + "/"] = ""
        for name in files:
            path = os.path.join(root, name)
            if os.path.islink(path) and not os.path.exists(path):
                result[os.path.relpath(path, folder)] = "link -> " + os.readlink(path)
                continue
            with open(path, "rb") as fh:
                result[os.path.relpath(path, folder)] = hashlib.sha256(fh.read()).hexdigest()
    return result


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
