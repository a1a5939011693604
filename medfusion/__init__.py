"""medfusion: diffusion models for medical imaging, as MONAI transforms, networks and bundles.

Importing the package is quick and has no side effects: heavy modules (torch, MONAI) load when a submodule
that needs them is imported, e.g. ``from medfusion.transforms import HaarDWT``.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
