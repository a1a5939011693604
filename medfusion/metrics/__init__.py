"""Image-similarity and segmentation metrics with the field's protocols (see ``../shared/specs/evaluation.md``).

Submodules load lazily; ``from medfusion.metrics import ssim`` imports scikit-image only when called.
"""

from .image import brasyn_ssim, psnr, ssim

__all__ = ["ssim", "psnr", "brasyn_ssim"]
