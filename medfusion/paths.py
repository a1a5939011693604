"""Where the project's shipped files are: bundles (weights, configs) and embedded sample data.

They live beside the package in a source checkout (``pip install -e .``).  With the package installed elsewhere,
pass ``--bundle``/``--weights``/``--data`` explicitly or set ``MEDFUSION_HOME`` to a checkout.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import InputError

__all__ = ["project_root", "bundle_dir", "sample_data_dir"]


def project_root() -> Path:
    root = os.environ.get("MEDFUSION_HOME")
    candidate = Path(root) if root else Path(__file__).resolve().parents[1]
    if not (candidate / "bundles").is_dir():
        raise InputError(
            "medfusion's bundles and sample data were not found beside the package; "
            "set MEDFUSION_HOME to a medfusion checkout or pass the paths explicitly"
        )
    return candidate


def bundle_dir(name: str = "brats_mri_cwdm") -> Path:
    path = project_root() / "bundles" / name
    if not path.is_dir():
        raise InputError(f"bundle {name!r} not found at {path}")
    return path


def sample_data_dir(name: str = "brats_phantom") -> Path:
    path = project_root() / "data" / name
    if not path.is_dir():
        raise InputError(f"sample data {name!r} not found at {path}")
    return path
