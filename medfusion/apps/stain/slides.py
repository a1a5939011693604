"""Large images read and written by rows, so a slide never has to fit in memory.

Reading (:func:`open_rows`, each source gives ``shape`` ``(H, W)`` and ``read(y0, y1)`` → ``(y1 − y0, W, 3)``
uint8):

- TIFF (``.tif``/``.tiff``), tiled or in strips, any compression tifffile decodes: only the tiles or strips that
  hold the rows asked for are read and decoded (tifffile's ``TiffPage.decode``), those of the last read kept for
  the next (the rows of neighbouring tile rows overlap); an uncompressed image is read straight from the file;
- whole-slide formats (``.svs``, ``.ndpi``, ``.scn``, ``.mrxs``, ``.bif``, ``.vms``, ``.vmu``, ``.svslide``):
  level 0 through tiffslide, the optional extra ``wsi`` (``pip install 'medfusion[wsi]'``);
- PNG and JPEG: decoded whole (their codecs cannot read part of an image), then served by rows.

Writing (:class:`TiffRowWriter`): an uncompressed TIFF of the final size is laid out in a hidden temporary file
in the target's folder, rows are written into it as they come, and only a complete image is moved into place
(:func:`os.replace`); an error or interruption removes the temporary file.
"""

from __future__ import annotations

import os

import numpy as np

from ...errors import InputError
from ...io import PathLike, ensure_absent
from ...outputs import destination, reserve_sibling

__all__ = ["SLIDE_ENDINGS", "open_rows", "RowSource", "ArrayRows", "TiffRows", "SlideRows", "TiffRowWriter",
           "STREAM_PIXELS", "STREAM_EXTENSIONS", "image_size", "streamed", "check_he", "check_stream_outputs"]

#: whole-slide formats read through tiffslide (the ``wsi`` extra)
SLIDE_ENDINGS = (".svs", ".ndpi", ".scn", ".mrxs", ".bif", ".vms", ".vmu", ".svslide")


class RowSource:
    """What every row source gives: ``shape`` ``(H, W)``, ``read(y0, y1)`` → ``(y1 − y0, W, 3)`` uint8, ``close()``;
    a context manager."""

    shape: tuple[int, int]

    def read(self, y0: int, y1: int) -> np.ndarray:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class ArrayRows(RowSource):
    """An image in memory, ``(H, W, 3)`` uint8, served by rows."""

    def __init__(self, array: np.ndarray) -> None:
        self.array = np.asarray(array)
        self.shape = tuple(int(n) for n in self.array.shape[:2])

    def read(self, y0: int, y1: int) -> np.ndarray:
        return self.array[y0:y1]


class TiffRows(RowSource):
    """Rows of the first page of an 8-bit RGB TIFF, decoding only the tiles or strips they touch."""

    def __init__(self, path: PathLike) -> None:
        import tifffile

        self.path = os.fspath(path)
        self._tif = None
        try:
            self._tif = tifffile.TiffFile(self.path)
            page = self._tif.pages[0]
        except Exception as exc:  # tifffile raises several types for damaged files
            self.close()
            raise InputError(f"cannot read {self.path} as a TIFF image: {exc}") from None
        if page.dtype != np.uint8 or page.samplesperpixel != 3 or page.planarconfig != 1 or len(page.shape) != 3:
            self.close()
            raise InputError(f"{self.path} is not an 8-bit RGB image (TIFF page {page.shape} {page.dtype}, "
                             f"{page.samplesperpixel} samples per pixel); rescale it to 8 bits per channel and "
                             "save it as RGB")
        self.page, self.shape = page, (int(page.shape[0]), int(page.shape[1]))
        self._raw = page.is_contiguous and page.compression == 1
        self._cache: dict[int, tuple[int, int, np.ndarray]] = {}

    def read(self, y0: int, y1: int) -> np.ndarray:
        height, width = self.shape
        y0, y1 = max(0, y0), min(height, y1)
        fh = self._tif.filehandle
        if self._raw:
            fh.seek(self.page.dataoffsets[0] + y0 * width * 3)
            return np.frombuffer(fh.read((y1 - y0) * width * 3), np.uint8).reshape(y1 - y0, width, 3)
        seg_h, seg_w = (int(n) for n in self.page.chunks[:2])
        across = -(-width // seg_w)
        wanted = [r * across + c for r in range(y0 // seg_h, -(-y1 // seg_h)) for c in range(across)]
        keep = set(wanted)
        self._cache = {i: v for i, v in self._cache.items() if i in keep}
        out = np.empty((y1 - y0, width, 3), np.uint8)
        for index in wanted:
            if index not in self._cache:
                self._cache[index] = self._decode(index)
            sy, sx, seg = self._cache[index]
            top, bottom = max(y0, sy), min(y1, sy + seg.shape[0])
            right = min(width, sx + seg.shape[1])
            out[top - y0: bottom - y0, sx:right] = seg[top - sy: bottom - sy, : right - sx]
        return out

    def _decode(self, index: int) -> tuple[int, int, np.ndarray]:
        fh = self._tif.filehandle
        fh.seek(self.page.dataoffsets[index])
        data = fh.read(self.page.databytecounts[index])
        try:
            segment, where, _ = self.page.decode(data, index, jpegtables=self.page.jpegtables)
        except Exception as exc:
            raise InputError(f"cannot decode part {index} of {self.path}: {exc}") from None
        if segment is None:
            raise InputError(f"{self.path} has an empty part {index} (a damaged file?)")
        return int(where[2]), int(where[3]), segment[0]

    def close(self) -> None:
        if self._tif is not None:
            self._tif.close()


class SlideRows(RowSource):
    """Level 0 of a whole-slide image through tiffslide (RGBA composed onto white)."""

    def __init__(self, path: PathLike) -> None:
        try:
            import tiffslide
        except ImportError:
            raise InputError(f"reading whole-slide images ({', '.join(SLIDE_ENDINGS)}) needs the optional extra: "
                             "pip install 'medfusion[wsi]' (tiffslide)") from None
        self.path = os.fspath(path)
        try:
            self._slide = tiffslide.TiffSlide(self.path)
        except Exception as exc:
            raise InputError(f"cannot open {self.path} as a whole-slide image: {exc}") from None
        width, height = self._slide.dimensions
        self.shape = (int(height), int(width))

    def read(self, y0: int, y1: int) -> np.ndarray:
        region = np.asarray(self._slide.read_region((0, y0), 0, (self.shape[1], y1 - y0), as_array=True))
        if region.shape[-1] == 4:
            alpha = region[..., 3:].astype(np.float32) / 255
            region = np.rint(region[..., :3] * alpha + 255 * (1 - alpha))
        return region[..., :3].astype(np.uint8)

    def close(self) -> None:
        self._slide.close()


def open_rows(path: PathLike):
    """A row source for an H&E image file (see the module's docstring for what each format costs)."""
    from .images import load_he

    where = os.fspath(path)
    if not os.path.isfile(where):
        raise InputError(f"image not found: {where}")
    ending = os.path.splitext(where)[1].lower()
    if ending in SLIDE_ENDINGS:
        return SlideRows(where)
    if ending in (".tif", ".tiff"):
        return TiffRows(where)
    return ArrayRows(load_he(where))


#: images with more pixels than this (5,000 × 5,000) are streamed
STREAM_PIXELS = 25_000_000


def image_size(path: str) -> tuple[int, int]:
    """``(H, W)`` of an image file from its header (nothing decoded)."""
    if path.lower().endswith((".png", ".jpg", ".jpeg")):
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(path) as img:
                return img.height, img.width
        except (UnidentifiedImageError, OSError):
            return 0, 0  # unreadable: the reader gives the error
    try:
        with open_rows(path) as source:
            return source.shape
    except InputError:  # unreadable: the reader gives the error
        return 0, 0


def streamed(path: str) -> bool:
    """Whether :func:`.files.stain_file` streams this image by default: a whole-slide file, or over :data:`STREAM_PIXELS`."""
    return path.lower().endswith(SLIDE_ENDINGS) or int(np.prod(image_size(path))) > STREAM_PIXELS


#: what streamed outputs are written as
STREAM_EXTENSIONS = (".tif", ".tiff")


def check_stream_outputs(he: str, outputs) -> None:
    """Refuse outputs of a streamed image that are not TIFF files (the only format written band by band)."""
    for path in (os.fspath(p) for p in outputs if p is not None):
        if not path.lower().endswith(STREAM_EXTENSIONS):
            raise InputError(f"{he} is streamed (over {STREAM_PIXELS // 1_000_000} megapixels, a slide, or --stream): "
                             f"its outputs are written band by band into TIFF files; end {path} in .tif")


def check_he(path: str, stream: bool) -> None:
    """Read an H&E image as :func:`.files.stain_file` will (whole, or only its header when it is streamed);
    :class:`~medfusion.errors.InputError` if it cannot be used."""
    from .images import load_he

    if stream:
        with open_rows(path):
            return
    load_he(path)


class TiffRowWriter:
    """An uncompressed TIFF of ``shape`` ``(H, W)`` or ``(H, W, 3)`` and ``dtype``, written by rows in any order.

    Use as a context manager: the file appears at ``path`` only when the block ends without an error.
    """

    def __init__(self, path: PathLike, shape, dtype, *, overwrite: bool = False) -> None:
        import tifffile

        self.path = os.fspath(path)
        ensure_absent([self.path], overwrite)
        self.shape, self.dtype = tuple(int(n) for n in shape), np.dtype(dtype)
        self._final = destination(self.path)  # staged inside an OutputPlan (medfusion.outputs)
        folder = os.path.dirname(self._final) or "."
        os.makedirs(folder, exist_ok=True)
        nbytes = int(np.prod(self.shape)) * self.dtype.itemsize
        self._tmp = None
        try:  # the context manager does not own the file yet: an error or a signal here must not leave it behind
            self._tmp = reserve_sibling(self._final, "tmp")  # ours alone: removing it removes nothing else
            tifffile.imwrite(self._tmp, shape=self.shape, dtype=self.dtype, bigtiff=nbytes > 2**31, byteorder="<",
                             photometric="rgb" if len(self.shape) == 3 else "minisblack")
            with tifffile.TiffFile(self._tmp) as tif:
                self._offset = int(tif.pages[0].dataoffsets[0])
            self._fh = open(self._tmp, "r+b")
        except BaseException:
            if self._tmp is not None and os.path.lexists(self._tmp):
                os.remove(self._tmp)
            raise
        self._row_bytes = nbytes // self.shape[0]

    def write(self, y0: int, rows: np.ndarray) -> None:
        """Put ``rows`` (``(h, W[, 3])``) at rows ``y0 … y0 + h − 1``."""
        rows = np.ascontiguousarray(rows, dtype=self.dtype.newbyteorder("<"))  # as the file was laid out
        if rows.shape[1:] != self.shape[1:] or y0 < 0 or y0 + rows.shape[0] > self.shape[0]:
            raise ValueError(f"rows {rows.shape} at {y0} do not fit an image of {self.shape}")
        self._fh.seek(self._offset + y0 * self._row_bytes)
        self._fh.write(rows.tobytes())

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *exc) -> None:
        self._fh.close()
        if exc_type is None:
            os.replace(self._tmp, self._final)
        else:
            os.remove(self._tmp)
