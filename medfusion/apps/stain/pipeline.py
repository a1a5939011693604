"""Files in, files out: one H&E image, or a folder of them, to virtual IHC images (and cell label images).

Every output is checked before any work (extension, folder, not an input, absent unless ``overwrite``); an image
is written only whole (atomically), and the inputs are never modified.  Folders are split across ``torchrun``
processes by :func:`medfusion.core.runner.run_cases`.
"""

from __future__ import annotations

import os
from typing import Callable

from ...core.runner import check_outputs, run_cases
from ...errors import InputError
from .images import LABEL_FORMATS, RGB_FORMATS
from .translate import translate

__all__ = ["stain_file", "stain_folder", "RGB_EXTENSIONS", "LABEL_EXTENSIONS", "list_images"]

#: what images are read from and written to (8-bit RGB), and what cell label images are written to (16-bit; JPEG
#: would change the labels): the endings :mod:`.images` writes
RGB_EXTENSIONS = tuple(RGB_FORMATS)
LABEL_EXTENSIONS = tuple(LABEL_FORMATS)


def stain_file(model, he: str, out: str | None, *, cells: str | None = None, overwrite: bool = False,
               progress: Callable[[int, int], None] | None = None, **kwargs) -> list[str]:
    """Translate one H&E image file to an IHC image ``out`` (and a cell label image ``cells``); returns the written
    paths.  Keyword arguments: :func:`.translate.translate` (steps, seed, tile, overlap, device, ...)."""
    from .images import load_he, save_labels, save_rgb

    if out is None and cells is None:
        raise InputError("nothing to write: give --out (IHC image) and/or --cells (cell labels)")
    if out is not None and "ihc" not in model.tasks:
        raise InputError("this model only segments cells; give --cells for its output, not --out")
    if cells is not None and "cells" not in model.tasks:
        raise InputError("this model was trained without the cell task; leave out --cells")
    if out is not None:
        check_outputs([out], overwrite=overwrite, inputs=[he], extensions=RGB_EXTENSIONS)
    if cells is not None:
        check_outputs([cells], overwrite=overwrite, inputs=[he], extensions=LABEL_EXTENSIONS)
    result = translate(model, load_he(he), progress=progress, **kwargs)
    written = []
    if out is not None:
        written.append(save_rgb(out, result["ihc"], overwrite=overwrite))
    if cells is not None:
        written.append(save_labels(cells, result["cells"], overwrite=overwrite))
    return written


def list_images(folder: str) -> list[str]:
    """The RGB image files (by extension) directly in ``folder``, sorted."""
    if not os.path.isdir(folder):
        raise InputError(f"input folder not found: {folder}")
    names = sorted(n for n in os.listdir(folder) if n.lower().endswith(RGB_EXTENSIONS))
    if not names:
        raise InputError(f"no images ({', '.join(RGB_EXTENSIONS)}) in {folder}")
    return [os.path.join(folder, n) for n in names]


def stain_folder(model, images: str, out_dir: str | None, *, cells_dir: str | None = None, overwrite: bool = False,
                 **kwargs) -> list[str]:
    """Every image of the folder ``images`` → ``out_dir/<name>.png`` (IHC) and/or ``cells_dir/<name>.png`` (cell
    labels), all outputs checked first; this process's share under ``torchrun``.  Keyword arguments:
    :func:`stain_file`."""
    inputs = list_images(images)
    stems = [os.path.splitext(os.path.basename(p))[0] for p in inputs]
    if len(set(stems)) != len(stems):
        raise InputError(f"two images in {images} share a name (e.g. a.png and a.tif); outputs would collide")
    for d in (out_dir, cells_dir):
        if d is not None:
            os.makedirs(d, exist_ok=True)
    outs = [[os.path.join(d, s + ".png") for d in (out_dir, cells_dir) if d is not None] for s in stems]

    def process(path: str, paths) -> list[str]:
        it = iter(paths)
        out = next(it) if out_dir is not None else None
        cells = next(it) if cells_dir is not None else None
        return stain_file(model, path, out, cells=cells, overwrite=overwrite, **kwargs)

    return run_cases(inputs, outs, process, overwrite=overwrite, inputs=inputs, extensions=(".png",))
