"""Files in, files out: one H&E image, or a folder of them, to virtual IHC images (and cell label images).

Every output is checked before any work (extension, folder, not an input, absent unless ``overwrite``); an image
is written only whole (atomically), and the inputs are never modified.  Folders are split across ``torchrun``
processes by :func:`medfusion.core.runner.run_cases`.

Images over :data:`STREAM_PIXELS` pixels and whole-slide files are *streamed* (:mod:`.stream`): read, translated and
written band by band into TIFF outputs, in memory bounded by the image's width; ``stream=True`` asks for that mode
for any image at least a tile large.
"""

from __future__ import annotations

import os
from typing import Callable

import numpy as np

from ...core.runner import run_cases
from ...errors import InputError
from ...outputs import OutputPlan
from .images import LABEL_FORMATS, RGB_FORMATS
from .inference import translate
from .slides import STREAM_EXTENSIONS, STREAM_PIXELS, check_he, check_stream_outputs, image_size, streamed

__all__ = ["stain_file", "stain_folder", "RGB_EXTENSIONS", "LABEL_EXTENSIONS", "list_images", "STREAM_PIXELS",
           "image_size", "streamed", "check_he"]


#: what images are read from and written to (8-bit RGB), and what cell label images are written to (16-bit; JPEG
#: would change the labels): the endings :mod:`.images` writes
RGB_EXTENSIONS = tuple(RGB_FORMATS)
LABEL_EXTENSIONS = tuple(LABEL_FORMATS)


def stain_file(model, he: str, out: str | None, *, cells: str | None = None, overwrite: bool = False,
               progress: Callable[[int, int], None] | None = None, stream: bool | None = None, **kwargs) -> list[str]:
    """Translate one H&E image file to an IHC image ``out`` (and a cell label image ``cells``); returns the written
    paths.  ``stream``: ``None`` streams images over :data:`STREAM_PIXELS` pixels and whole-slide files,
    ``True`` any image, ``False`` none.  Keyword arguments: :func:`.inference.translate` (steps, seed, tile,
    overlap, device, ...)."""
    from .images import load_he, save_labels, save_rgb

    if out is None and cells is None:
        raise InputError("nothing to write: give --out (IHC image) and/or --cells (cell labels)")
    if out is not None and "ihc" not in model.tasks:
        raise InputError("this model only segments cells; give --cells for its output, not --out")
    if cells is not None and "cells" not in model.tasks:
        raise InputError("this model was trained without the cell task; leave out --cells")
    if stream is None:
        stream = streamed(he)
    if stream:
        check_stream_outputs(he, [out, cells])
    with OutputPlan(overwrite=overwrite, inputs=[he]).add(out, STREAM_EXTENSIONS if stream else RGB_EXTENSIONS) \
            .add(cells, STREAM_EXTENSIONS if stream else LABEL_EXTENSIONS):
        if stream:
            return _stream_file(model, he, out, cells, overwrite=overwrite, progress=progress, **kwargs)
        result = translate(model, load_he(he), progress=progress, **kwargs)
        written = []
        if out is not None:
            written.append(save_rgb(out, result["ihc"], overwrite=overwrite))
        if cells is not None:
            written.append(save_labels(cells, result["cells"], overwrite=overwrite))
        return written


def _stream_file(model, he: str, out: str | None, cells: str | None, *, overwrite: bool, **kwargs) -> list[str]:
    """:func:`stain_file` in the streaming mode: TIFF outputs written band by band (8-bit RGB, 32-bit labels)."""
    from contextlib import ExitStack

    from .slides import TiffRowWriter, open_rows
    from .stream import translate_rows

    targets = [p for p in (out, cells) if p is not None]
    with ExitStack() as stack:
        source = stack.enter_context(open_rows(he))
        shape = source.shape
        writers = {}
        if out is not None:
            writers["ihc"] = stack.enter_context(TiffRowWriter(out, (*shape, 3), np.uint8, overwrite=overwrite))
        if cells is not None:
            writers["cells"] = stack.enter_context(TiffRowWriter(cells, shape, np.uint32, overwrite=overwrite))
        translate_rows(model, source, on_ihc=writers["ihc"].write if out else None,
                       on_cells=writers["cells"].write if cells else None, **kwargs)
    return targets


def list_images(folder: str) -> list[str]:
    """The RGB image files (by extension) directly in ``folder``, sorted."""
    if not os.path.isdir(folder):
        raise InputError(f"input folder not found: {folder}")
    from .slides import SLIDE_ENDINGS

    endings = RGB_EXTENSIONS + SLIDE_ENDINGS
    names = sorted(n for n in os.listdir(folder) if n.lower().endswith(endings))
    if not names:
        raise InputError(f"no images ({', '.join(endings)}) in {folder}")
    return [os.path.join(folder, n) for n in names]


def stain_folder(model, images: str, out_dir: str | None, *, cells_dir: str | None = None, overwrite: bool = False,
                 stream: bool | None = None, skip_bad: bool = False, **kwargs) -> list[str]:
    """Every image of the folder ``images`` → ``out_dir/<name>.png`` (IHC) and/or ``cells_dir/<name>.png`` (cell
    labels) — ``<name>.tif`` for streamed images (see :func:`stain_file`).  Every image is read and checked
    (:func:`check_he`) and every output checked first: a bad image stops the run with nothing written, or with
    ``skip_bad`` is skipped and listed at the end; this process's share under ``torchrun``.  Keyword arguments:
    :func:`stain_file`."""
    inputs = list_images(images)
    stems = [os.path.splitext(os.path.basename(p))[0] for p in inputs]
    if len(set(stems)) != len(stems):
        raise InputError(f"two images in {images} share a name (e.g. a.png and a.tif); outputs would collide")
    if out_dir is None and cells_dir is None:
        raise InputError("nothing to write: give --out (IHC folder) and/or --cells (cell label folder)")
    modes = [streamed(p) if stream is None else stream for p in inputs]
    outs = [[os.path.join(d, s + (".tif" if m else ".png")) for d in (out_dir, cells_dir) if d is not None]
            for s, m in zip(stems, modes)]
    mode_of = dict(zip(inputs, modes))

    def process(path: str, paths) -> list[str]:
        it = iter(paths)
        out = next(it) if out_dir is not None else None
        cells = next(it) if cells_dir is not None else None
        return stain_file(model, path, out, cells=cells, overwrite=overwrite, stream=mode_of[path], **kwargs)

    return run_cases(inputs, outs, process, overwrite=overwrite, inputs=inputs, extensions=(".png", ".tif"),
                     validate=lambda path: check_he(path, mode_of[path]), names=[os.path.basename(p) for p in inputs],
                     skip_bad=skip_bad)
