"""Reading and writing images so that the geometry survives: medfusion's one door to files.

- :mod:`.volumes` — :class:`Volume` (data, affine, header), :func:`load_volume` (NIfTI; DICOM series, NRRD and
  MetaImage through :mod:`.sitk`) and :func:`save_like` (NIfTI on the input's grid), with the checks every
  application shares (3D, finite, co-registered);
- :mod:`.images` — 2D RGB and label images (H&E, IHC, cell nuclei);
- :mod:`.resample` — a volume onto another grid;
- :mod:`.files` — outputs refused when they exist and written whole or not at all.

Every application reads its inputs with :func:`load_volume` and writes its outputs with :func:`save_like`, so
"where does the output get its affine back?" has one answer: from the :class:`Volume` it was computed from.
Bad input raises :class:`~medfusion.errors.InputError` with a one-line message that names the file.
"""

from __future__ import annotations

from .files import PathLike, ensure_absent, write_atomic
from .images import LABEL_IMAGE_EXTENSIONS, load_label_image, load_rgb
from .resample import resample_array, resample_like
from .volumes import (
    NIFTI_EXTENSIONS, SITK_EXTENSIONS, VOLUME_EXTENSIONS, Volume, check_same_geometry, load_volume, refuse_constant,
    save_like, volume_from_array,
)

__all__ = ["Volume", "load_volume", "check_same_geometry", "refuse_constant", "save_like", "ensure_absent",
           "volume_from_array", "NIFTI_EXTENSIONS", "SITK_EXTENSIONS", "VOLUME_EXTENSIONS", "write_atomic",
           "resample_like", "resample_array", "load_rgb", "load_label_image", "LABEL_IMAGE_EXTENSIONS", "PathLike"]
