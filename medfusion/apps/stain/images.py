"""Image files of the stain application: 8-bit RGB slides (H&E in, IHC out) and 16-bit cell label images.

Reading: :func:`load_he` is :func:`medfusion.io.load_rgb` (8-bit RGB only) with a hint on how to convert what it
refuses (RGBA, grey, palette, 16-bit); :func:`load_labels` reads a label image (0 background, 1..N cells) as
``uint16`` and refuses colour or floating-point files. Writing: :func:`save_rgb` and :func:`save_labels` encode the
image in memory (the format follows the file name's ending), then :func:`medfusion.io.write_atomic` puts it in
place through a temporary file in the same folder and :func:`os.replace`, so a failed run never leaves a partial
file; an existing file is refused (:func:`medfusion.io.ensure_absent`) unless ``overwrite``. Label images are PNG
or TIFF only (JPEG would change the labels) and round-trip exactly, values above 255 included.

A training case is a folder ``<name>/`` with ``he.png``, ``ihc.png`` (8-bit RGB, pixel-aligned) and ``cells.png``
(16-bit nucleus labels): :func:`case_paths` names the files, :func:`write_case` writes them (all checked first).
"""

from __future__ import annotations

import io
import os
from typing import Sequence

import numpy as np

from ...errors import InputError
from ...io import PathLike, ensure_absent, load_label_image, load_rgb, write_atomic

__all__ = ["RGB_FORMATS", "LABEL_FORMATS", "CASE_FILES", "stain_datalist", "load_he", "save_rgb", "load_labels",
           "save_labels", "check_min_size", "case_paths", "write_case"]

#: file name ending → PIL format, for RGB images
RGB_FORMATS = {".png": "PNG", ".tif": "TIFF", ".tiff": "TIFF", ".jpg": "JPEG", ".jpeg": "JPEG"}
#: file name ending → PIL format, for label images (lossless only)
LABEL_FORMATS = {".png": "PNG", ".tif": "TIFF", ".tiff": "TIFF"}

#: the files of a training case folder: ``he.png``, ``ihc.png`` (8-bit RGB) and ``cells.png`` (16-bit labels)
CASE_FILES = ("he", "ihc", "cells")


def _hint(mode: str) -> str:
    """How to turn an image of PIL ``mode`` into the 8-bit RGB this application reads."""
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        return "flatten the alpha channel first, e.g. PIL's Image.open(path).convert('RGB')"
    if mode.startswith("I") or mode == "F":
        return "rescale it to 8 bits per channel and save it as RGB"
    return "convert it to 8-bit RGB first, e.g. PIL's Image.open(path).convert('RGB')"


def load_he(path: PathLike) -> np.ndarray:
    """Read an H&E image as ``(H, W, 3)`` uint8.

    Raises:
        InputError: the file is missing or unreadable, or not 8-bit RGB (RGBA, grey, palette, 16-bit: the
            message says how to convert it).
    """
    try:
        return load_rgb(path)
    except InputError as exc:
        mode = _mode(path)
        if mode is None or mode == "RGB":
            raise
        raise InputError(f"{exc}; only 8-bit RGB H&E images are accepted: {_hint(mode)}") from None


def _mode(path: PathLike) -> str | None:
    """The PIL mode of an image file, or ``None`` if it cannot be opened."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            return img.mode
    except (UnidentifiedImageError, OSError, ValueError):
        return None


def _format(path: PathLike, formats: dict[str, str], what: str) -> str:
    """The PIL format for ``path``'s ending, or an :class:`InputError` listing the accepted endings."""
    target = os.fspath(path)
    ext = os.path.splitext(target)[1].lower()
    if ext not in formats:
        raise InputError(f"{what} must end in {', '.join(formats)}: {target}")
    if os.path.isdir(target):
        raise InputError(f"output path is a folder: {target}")
    return formats[ext]


def _write_image(path: PathLike, image, fmt: str) -> str:
    """Encode a PIL image in memory and write it atomically; returns ``path`` as a string."""
    buffer = io.BytesIO()
    options = {"quality": 95} if fmt == "JPEG" else {}
    if fmt == "TIFF":
        options["compression"] = "tiff_deflate"
    image.save(buffer, format=fmt, **options)
    return write_atomic(path, buffer.getvalue())


def save_rgb(path: PathLike, array: np.ndarray, *, overwrite: bool = False) -> str:
    """Write a ``(H, W, 3)`` uint8 image as PNG, TIFF or JPEG (by the ending of ``path``), atomically.

    Returns:
        ``path`` as a string.

    Raises:
        ValueError: ``array`` is not ``(H, W, 3)`` uint8.
        InputError: the ending is not one of :data:`RGB_FORMATS`, or ``path`` is a folder.
        OutputExistsError: ``path`` exists and ``overwrite`` is false (nothing is written).
    """
    from PIL import Image

    array = np.asarray(array)
    if array.ndim != 3 or array.shape[2] != 3 or array.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 image, got {array.dtype} {array.shape}")
    fmt = _format(path, RGB_FORMATS, "RGB image file")
    ensure_absent([path], overwrite)
    return _write_image(path, Image.fromarray(np.ascontiguousarray(array)), fmt)


def save_labels(path: PathLike, labels: np.ndarray, *, overwrite: bool = False) -> str:
    """Write a cell label image (0 background, 1..N cells; integers in [0, 65535]) as a 16-bit PNG or TIFF.

    Returns:
        ``path`` as a string.

    Raises:
        ValueError: ``labels`` is not a 2D integer (or bool) array with values in [0, 65535].
        InputError: the ending is not ``.png``/``.tif``/``.tiff``, or ``path`` is a folder.
        OutputExistsError: ``path`` exists and ``overwrite`` is false (nothing is written).
    """
    from PIL import Image

    labels = np.asarray(labels)
    if labels.ndim != 2 or not (np.issubdtype(labels.dtype, np.integer) or labels.dtype == bool):
        raise ValueError(f"expected a 2D integer label image, got {labels.dtype} {labels.shape}")
    if labels.size and (int(labels.min()) < 0 or int(labels.max()) > 65535):
        raise ValueError(f"labels [{labels.min()}, {labels.max()}] do not fit in 16 bits")
    fmt = _format(path, LABEL_FORMATS, "label image file")
    ensure_absent([path], overwrite)
    data = np.ascontiguousarray(labels, dtype=np.uint16)
    image = Image.frombytes("I;16", (data.shape[1], data.shape[0]), data.astype("<u2").tobytes())
    return _write_image(path, image, fmt)


def load_labels(path: PathLike) -> np.ndarray:
    """Read a cell label image (8- or 16-bit single-channel PNG/TIFF) as ``(H, W)`` uint16
    (:func:`medfusion.io.load_label_image`, values up to 65535).

    Raises:
        InputError: the file is missing or unreadable, a colour image (RGB, RGBA, palette), floating-point, or
            holds values outside [0, 65535].
    """
    data = load_label_image(path)
    if data.size and int(data.max()) > 65535:
        raise InputError(f"{os.fspath(path)} holds labels [{data.min()}, {data.max()}] outside 0..65535")
    return data.astype(np.uint16)


def check_min_size(image: np.ndarray, minimum: int, where: str) -> None:
    """Refuse an image (``(H, W)`` or ``(H, W, C)``) smaller than ``minimum`` × ``minimum`` pixels.

    Raises:
        InputError: "``where``: image is H×W, smaller than the network's minimum M×M".
    """
    h, w = (int(n) for n in np.shape(image)[:2])
    m = int(minimum)
    if h < m or w < m:
        raise InputError(f"{where}: image is {h}×{w}, smaller than the network's minimum {m}×{m}")


def case_paths(out_dir: PathLike, name: str) -> dict[str, str]:
    """The files of case ``name`` in ``out_dir``: ``{"he": .../he.png, "ihc": .../ihc.png, "cells": .../cells.png}``."""
    folder = os.path.join(os.fspath(out_dir), name)
    return {key: os.path.join(folder, f"{key}.png") for key in CASE_FILES}


def write_case(out_dir: PathLike, name: str, he: np.ndarray, ihc: np.ndarray, cells: np.ndarray, *,
               overwrite: bool = False) -> str:
    """Write one case folder ``out_dir/name`` (``he.png``, ``ihc.png``, ``cells.png``); returns the folder.

    Raises:
        ValueError: the three images do not share one ``(H, W)`` size (or have the wrong types).
        OutputExistsError: some file exists and ``overwrite`` is false (checked before writing anything).
    """
    sizes = {np.shape(he)[:2], np.shape(ihc)[:2], np.shape(cells)[:2]}
    if len(sizes) != 1:
        raise ValueError(f"case {name}: he, ihc and cells have different sizes {sorted(sizes)}")
    paths = case_paths(out_dir, name)
    ensure_absent(paths.values(), overwrite)
    save_rgb(paths["he"], he, overwrite=overwrite)
    save_rgb(paths["ihc"], ihc, overwrite=overwrite)
    save_labels(paths["cells"], cells, overwrite=overwrite)
    return os.path.dirname(paths["he"])


def _find(folder: str, stem: str) -> str | None:
    for ext in RGB_FORMATS:
        path = os.path.join(folder, stem + ext)
        if os.path.isfile(path):
            return path
    return None


def stain_datalist(dataset_dir, needed: Sequence[str] = CASE_FILES) -> list[dict]:
    """``{"name", "he", "ihc", "cells"}`` (file paths; the ``needed`` ones must exist) per case folder, sorted."""
    root = os.fspath(dataset_dir)
    if not os.path.isdir(root):
        raise InputError(f"dataset folder not found: {root}")
    items = []
    for name in sorted(os.listdir(root)):
        found = {k: _find(os.path.join(root, name), k) for k in CASE_FILES}
        if all(found[k] for k in needed):
            items.append({"name": name, **{k: v for k, v in found.items() if v}})
    if not items:
        raise InputError(f"no case folders with {', '.join(f'{k}.png' for k in needed)} in {root}")
    return items
