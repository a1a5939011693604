"""2D image files: 8-bit RGB images (H&E, IHC) and 2D label images (cell nuclei), read with one-line errors.

:mod:`medfusion.io` re-exports both readers; volumes are in :mod:`.volumes`.
"""

from __future__ import annotations

import os

import numpy as np

from ..errors import InputError

__all__ = ["LABEL_IMAGE_EXTENSIONS", "load_label_image", "load_rgb"]


#: file name endings :func:`load_label_image` reads (2D label images)
LABEL_IMAGE_EXTENSIONS = (".png", ".tif", ".tiff")

_LABEL_MODES = ("1", "L", "I;16", "I;16L", "I;16B", "I")  # integer single-channel PIL modes


def load_label_image(path) -> np.ndarray:
    """Read a 2D label image (single-channel integer PNG or TIFF: 0 background, 1..N objects; TIFFs of up to 32
    bits, as ``medfusion stain --stream`` writes cell labels) as an ``(H, W)`` integer array.

    Raises:
        InputError: the file is missing or unreadable, a colour image, floating-point, or holds negative values.
    """
    from PIL import Image

    where = os.fspath(path)
    if not os.path.isfile(path):
        raise InputError(f"label image not found: {where}")
    try:
        if os.fspath(path).lower().endswith((".tif", ".tiff")):
            import tifffile

            data = tifffile.imread(path)
        else:
            with Image.open(path) as img:
                if img.mode not in _LABEL_MODES:
                    raise InputError(f"{where} is an image of PIL mode {img.mode!r}: labels must be a single-channel "
                                     "integer image (8- or 16-bit grey PNG, or TIFF)")
                data = np.array(img)
    except InputError:
        raise
    except Exception as exc:  # PIL and tifffile raise several types for damaged files
        raise InputError(f"cannot read {where} as a label image: {exc}") from None
    if data.dtype.kind == "f":
        raise InputError(f"{where} holds floating-point data, not integer labels")
    if data.ndim != 2 or not (np.issubdtype(data.dtype, np.integer) or data.dtype == bool):
        raise InputError(f"{where} is not a 2D integer label image ({data.dtype} {data.shape}): labels must be a "
                         "single-channel integer image")
    if data.size and int(data.min()) < 0:
        raise InputError(f"{where} holds negative labels (minimum {data.min()})")
    return data


def load_rgb(path) -> np.ndarray:
    """Read an 8-bit RGB image (PNG, JPEG, TIFF, …) as a ``(H, W, 3)`` uint8 array; anything else (grey,
    RGBA, 16-bit, unreadable) is an :class:`InputError`."""
    from PIL import Image, UnidentifiedImageError

    where = os.fspath(path)
    if not os.path.isfile(path):
        raise InputError(f"input file not found: {where}")
    try:
        with Image.open(path) as img:
            if img.mode != "RGB":
                raise InputError(f"{where} is an image of PIL mode {img.mode!r}, not 8-bit RGB")
            return np.asarray(img, dtype=np.uint8).copy()
    except (UnidentifiedImageError, OSError) as exc:
        raise InputError(f"cannot read {where} as an image: {exc}") from None
