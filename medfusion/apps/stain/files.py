"""Files in, files out: one H&E image, or a folder of them, to virtual IHC images (and cell label images).

Every output is checked before any work (extension, folder, not an input, absent unless ``overwrite``); an image
is written only whole (atomically), and the inputs are never modified.  Folders are split across ``torchrun``
processes by :func:`medfusion.core.runner.run_cases`.

Images over :data:`STREAM_PIXELS` pixels and whole-slide files are *streamed* (:mod:`.stream`): read, translated and
written band by band into TIFF outputs, in memory bounded by the image's width; ``stream=True`` asks for that mode
for any image at least a tile large.
"""

from __future__ import annotations

import functools
import os
from typing import Callable

import numpy as np

from ...core.inferers import inferer_for
from ...core.processing import check_processing
from ...errors import InputError
from ...outputs import OutputPlan
from .images import LABEL_FORMATS, RGB_FORMATS
from .inference import default_inferer, settings_of, translate
from .slides import STREAM_EXTENSIONS, STREAM_PIXELS, check_he, check_stream_outputs, image_size, streamed

__all__ = ["stain_file", "stain_folder", "ImageFolder", "Translator", "StainSaver", "check_outputs_for",
           "RGB_EXTENSIONS", "LABEL_EXTENSIONS", "list_images", "STREAM_PIXELS",
           "image_size", "streamed", "check_he"]


#: what images are read from and written to (8-bit RGB), and what cell label images are written to (16-bit; JPEG
#: would change the labels): the endings :mod:`.images` writes
RGB_EXTENSIONS = tuple(RGB_FORMATS)
LABEL_EXTENSIONS = tuple(LABEL_FORMATS)


def stain_file(model, he: str, out: str | None, *, cells: str | None = None, overwrite: bool = False,
               progress: Callable[[int, int], None] | None = None, stream: bool | None = None, inferer=None,
               **sampling) -> list[str]:
    """Translate one H&E image file to an IHC image ``out`` (and a cell label image ``cells``); returns the written
    paths.  ``stream``: ``None`` streams images over :data:`STREAM_PIXELS` pixels and whole-slide files,
    ``True`` any image, ``False`` none.  ``inferer`` or ``sampling``: :class:`Translator`."""
    check_outputs_for(model, out, cells)
    if stream is None:
        stream = streamed(he)
    if stream:
        check_stream_outputs(he, [out, cells])
    translator = Translator(model, inferer, progress=progress, **sampling)
    with OutputPlan(overwrite=overwrite, inputs=[he]).add(out, STREAM_EXTENSIONS if stream else RGB_EXTENSIONS) \
            .add(cells, STREAM_EXTENSIONS if stream else LABEL_EXTENSIONS):
        return _write(translator({"path": he, "stream": stream}), out, cells, overwrite)


def check_outputs_for(model, out: str | None, cells: str | None) -> None:
    """Refuse outputs the model cannot fill (an IHC image from a cells-only model, cell labels from an IHC-only
    one) and a run with no output at all."""
    if out is None and cells is None:
        raise InputError("nothing to write: give --out (IHC image) and/or --cells (cell labels)")
    if out is not None and "ihc" not in model.tasks:
        raise InputError("this model only segments cells; give --cells for its output, not --out")
    if cells is not None and "cells" not in model.tasks:
        raise InputError("this model was trained without the cell task; leave out --cells")


def _write(result: dict, out: str | None, cells: str | None, overwrite: bool) -> list[str]:
    """Write a :class:`Translator` result: the IHC image to ``out`` and the cell labels to ``cells`` — whole
    images, or, for a streamed image, TIFF files band by band as its ``bands`` function translates them."""
    from .images import save_labels, save_rgb

    if "bands" in result:
        return _write_bands(result["bands"], result["shape"], out, cells, overwrite)
    written = []
    if out is not None:
        written.append(save_rgb(out, result["ihc"], overwrite=overwrite))
    if cells is not None:
        written.append(save_labels(cells, result["cells"], overwrite=overwrite))
    return written


def _write_bands(bands: Callable, shape, out: str | None, cells: str | None, overwrite: bool) -> list[str]:
    """A streamed image's outputs: TIFF files written band by band (8-bit RGB, 32-bit labels)."""
    from contextlib import ExitStack

    from .slides import TiffRowWriter

    with ExitStack() as stack:
        writers = {}
        if out is not None:
            writers["ihc"] = stack.enter_context(TiffRowWriter(out, (*shape, 3), np.uint8, overwrite=overwrite))
        if cells is not None:
            writers["cells"] = stack.enter_context(TiffRowWriter(cells, shape, np.uint32, overwrite=overwrite))
        bands(on_ihc=writers["ihc"].write if out else None, on_cells=writers["cells"].write if cells else None)
    return [p for p in (out, cells) if p is not None]


class Translator:
    """The bundle's ``predictor``: an H&E image (``{"path", "stream"}``) → ``{"ihc", "cells", "cell_probability"}``
    by :func:`~.inference.translate` — sampled by ``inferer`` (default: :func:`~.inference.default_inferer` of
    ``sampling``: ``steps``, ``sampler``, ``seed``, ``tile``, ``overlap``, ``batch_size``, ``device``,
    ``precision``); the U-Net baseline takes the tiling and device settings only. Either model runs with
    ``preprocessing`` and ``postprocessing`` (MONAI dictionary transforms; default: the model's own,
    :mod:`.transforms`). A streamed
    image's result is ``{"bands": function, "shape"}``: the function translates it band by band
    (:func:`.stream.translate_rows`, both lists run on each band) into the ``on_ihc`` / ``on_cells`` writers it is
    given."""

    def __init__(self, model, inferer=None, preprocessing=None, postprocessing=None, *,
                 progress: Callable[[int, int], None] | None = None, **sampling) -> None:
        from .model import StainModel

        check_processing(preprocessing, "preprocessing")
        check_processing(postprocessing, "postprocessing")
        self.preprocessing, self.postprocessing = preprocessing, postprocessing
        self.model, self.progress, self.inferer = model, progress, None
        if isinstance(model, StainModel):
            self.inferer = inferer_for(inferer, functools.partial(default_inferer, model), **sampling)
            self.inferer.check(model)  # a bad setting ends before any image is read
            self.settings = settings_of(self.inferer)
        else:
            self.settings = sampling if inferer is None else settings_of(inferer)

    @property
    def processing(self) -> dict:
        """The keyword arguments ``preprocessing`` and ``postprocessing`` of every translation."""
        return {"preprocessing": self.preprocessing, "postprocessing": self.postprocessing}

    def __call__(self, data: dict) -> dict:
        from .images import load_he

        if data["stream"]:
            return {"bands": functools.partial(self._bands, data["path"]), "shape": image_size(data["path"])}
        if self.inferer is not None:
            return translate(self.model, load_he(data["path"]), inferer=self.inferer, progress=self.progress,
                             **self.processing)
        return translate(self.model, load_he(data["path"]), **self.settings, **self.processing)

    def _bands(self, path: str, *, on_ihc, on_cells) -> None:
        from .slides import open_rows
        from .stream import translate_rows

        with open_rows(path) as source:
            translate_rows(self.model, source, on_ihc=on_ihc, on_cells=on_cells, progress=self.progress,
                           **self.settings, **self.processing)


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


class ImageFolder:
    """The H&E images of a folder (:func:`list_images`), for :class:`~medfusion.core.runner.CaseInference` (the
    bundle's ``dataset``): each ``(path, streamed)`` — ``stream``: ``None`` streams images over
    :data:`STREAM_PIXELS` pixels and whole-slide files, ``True`` any image, ``False`` none."""

    def __init__(self, dataset_dir: str, stream: bool | None = None) -> None:
        self.dataset_dir, self.stream = dataset_dir, stream

    def cases(self) -> list[tuple[str, bool]]:
        inputs = list_images(self.dataset_dir)
        stems = [_stem(p) for p in inputs]
        if len(set(stems)) != len(stems):
            raise InputError(f"two images in {self.dataset_dir} share a name (e.g. a.png and a.tif); outputs would "
                             "collide")
        return [(p, streamed(p) if self.stream is None else bool(self.stream)) for p in inputs]

    @staticmethod
    def name(case) -> str:
        return os.path.basename(case[0])

    @staticmethod
    def inputs(case) -> list[str]:
        return [case[0]]

    @staticmethod
    def validate(case) -> None:
        check_he(*case)

    @staticmethod
    def load(case) -> dict:
        return {"path": case[0], "stream": case[1]}


class StainSaver:
    """The bundle's ``saver``: ``<output_dir>/<name>.png`` (IHC) and/or ``<cells_dir>/<name>.png`` (cell labels),
    ``<name>.tif`` for streamed images."""

    extensions = (".png", ".tif")

    def __init__(self, output_dir: str | None = None, cells_dir: str | None = None, overwrite: bool = False) -> None:
        if output_dir is None and cells_dir is None:
            raise InputError("nothing to write: give --out (IHC folder) and/or --cells (cell label folder)")
        self.dirs, self.overwrite = (output_dir, cells_dir), bool(overwrite)

    def outputs(self, case) -> list[str]:
        ext = ".tif" if case[1] else ".png"
        return [os.path.join(os.fspath(d), _stem(case[0]) + ext) for d in self.dirs if d is not None]

    def save(self, result: dict, case, outputs) -> list[str]:
        it = iter(outputs)
        out, cells = (next(it) if d is not None else None for d in self.dirs)
        return _write(result, out, cells, self.overwrite)


def _stem(path: str) -> str:
    return os.path.splitext(os.path.basename(path))[0]


def stain_folder(model, images: str, out_dir: str | None, *, cells_dir: str | None = None, overwrite: bool = False,
                 stream: bool | None = None, skip_bad: bool = False, inferer=None, **sampling) -> list[str]:
    """Every image of the folder ``images`` → ``out_dir/<name>.png`` (IHC) and/or ``cells_dir/<name>.png`` (cell
    labels) — ``<name>.tif`` for streamed images (see :func:`stain_file`): the
    :class:`~medfusion.core.runner.CaseInference` of :class:`ImageFolder`, :class:`Translator` and
    :class:`StainSaver`, as the bundle composes them.  Every image is read and checked (:func:`check_he`) and
    every output checked first: a bad image stops the run with nothing written, or with ``skip_bad`` is skipped
    and listed at the end; this process's share under ``torchrun``.  ``inferer`` or ``sampling``:
    :class:`Translator`."""
    from ...core.runner import CaseInference

    saver = StainSaver(out_dir, cells_dir, overwrite)
    check_outputs_for(model, out_dir, cells_dir)
    return CaseInference(ImageFolder(images, stream), Translator(model, inferer, **sampling), saver,
                         skip_bad=skip_bad)()
