"""H&E → IHC (+ cell labels) for images too large for memory: slides and TIFFs of any size, row band by row band.

The data flow::

    row source (:mod:`.slides`: TIFF tiles/strips, whole-slide level 0, or a decoded PNG/JPEG)
      → the preprocessing (:mod:`.transforms`) of each band of rows read
      → one row of overlapping tiles at a time (:func:`medfusion.core.streaming.stream_tiles`: MONAI's tile grid
        and Gaussian blend, the same numbers :func:`.inference.translate` gives with ``batch_size=1``)
        — background tiles (under 1 % tissue pixels, mean RGB < 220) are not run: they blend in white and no cells
      → each finished band of rows: the postprocessing (with the band's H&E rows as its inputs), then IHC uint8
        RGB, cell probability → :class:`BandLabels` → uint32 labels
      → written into the output TIFFs (:class:`.slides.TiffRowWriter`) as they come.

Memory is bounded by the image's width, not its area: the tile band, the blend accumulator (tile + step rows) and a
few label rows.  Cell labels come from the same watershed as :func:`.inference.cell_labels`, run on each band with
``halo`` rows of context on either side; a nucleus is numbered by the band that holds its top row, so none is
counted twice and none is cut at a band border (unless it is taller than ``halo``).
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from scipy import ndimage as ndi

from ...core.losses import mask_probabilities
from ...core.streaming import stream_tiles
from .model import TASK_CHANNELS, split_tasks, unit_to_rgb
from .transforms import channels_first, inference_postprocessing, scaled

__all__ = ["translate_rows", "BandLabels", "TISSUE_LEVEL", "TISSUE_FRACTION"]

#: a pixel whose mean over R, G, B (8-bit) is below this is tissue; brighter is glass
TISSUE_LEVEL = 220
#: tiles with a smaller share of tissue pixels are background and are not run
TISSUE_FRACTION = 0.01


class BandLabels:
    """Cell probabilities arriving band by band (top to bottom) → instance labels band by band, numbered 1, 2, …
    over the whole image.

    A band ``[a, b)`` is labelled once rows up to ``b + halo`` have arrived: :func:`.inference.cell_labels` of the
    rows ``[a − halo, b + halo)``; each nucleus whose top row lies in ``[a, b)`` gets the next number, on the
    pixels no earlier nucleus holds (below ``b`` too — those rows are handed back with the next band).
    """

    def __init__(self, height: int, width: int, *, halo: int = 32, **cell_options) -> None:
        self.height, self.width, self.halo, self.options = height, width, halo, cell_options
        self.prob, self.p0 = np.zeros((0, width), np.float32), 0  # probability rows p0 … p0 + len − 1
        self.labels = np.zeros((0, width), np.uint32)  # labels of rows a … (stamped ahead of a band's end)
        self.bands: list[tuple[int, int]] = []  # arrived, not yet labelled
        self.next_id = 1

    def push(self, y0: int, prob: np.ndarray) -> list[tuple[int, np.ndarray]]:
        """Add the probability rows ``y0 …`` (the next ones); returns ``[(y, labels)]`` of the bands now final."""
        if y0 != self.p0 + len(self.prob):
            raise ValueError(f"rows must arrive in order: expected {self.p0 + len(self.prob)}, got {y0}")
        self.prob = np.concatenate([self.prob, np.asarray(prob, np.float32)])
        self.bands.append((y0, y0 + len(prob)))
        end = self.p0 + len(self.prob)
        out = []
        while self.bands and (end >= self.bands[0][1] + self.halo or end == self.height):
            a, b = self.bands.pop(0)
            out.append((a, self._label(a, b)))
        return out

    def _label(self, a: int, b: int) -> np.ndarray:
        from .inference import cell_labels

        end = self.p0 + len(self.prob)
        w0, w1 = max(self.p0, a - self.halo), min(end, b + self.halo)
        local = cell_labels(self.prob[w0 - self.p0: w1 - self.p0], **self.options)
        if len(self.labels) < w1 - a:
            self.labels = np.concatenate([self.labels, np.zeros((w1 - a - len(self.labels), self.width), np.uint32)])
        boxes = ndi.find_objects(local)
        numbers = np.zeros(len(boxes) + 1, np.uint32)
        for k, box in enumerate(boxes, start=1):
            if box is not None and a <= w0 + box[0].start < b:
                numbers[k] = self.next_id
                self.next_id += 1
        stamped = numbers[local[a - w0:]]
        region = self.labels[: w1 - a]
        free = region == 0
        region[free] = stamped[free]
        done, self.labels = self.labels[: b - a].copy(), self.labels[b - a:]
        keep = max(self.p0, b - self.halo)
        self.prob, self.p0 = self.prob[keep - self.p0:], keep
        return done


def _is_background(tile: torch.Tensor) -> bool:
    """A ``(3, h, w)`` H&E tile in [−1, 1] with under :data:`TISSUE_FRACTION` tissue pixels."""
    level = TISSUE_LEVEL / 127.5 - 1.0
    return float((tile.mean(0) < level).float().mean()) < TISSUE_FRACTION


def _is_empty(postprocessing) -> bool:
    """An empty ``Compose`` (as the model's own postprocessing is): nothing to run on a band."""
    return not getattr(postprocessing, "transforms", True)


def translate_rows(model, source, *, on_ihc: Callable[[int, np.ndarray], None] | None = None,
                   on_cells: Callable[[int, np.ndarray], None] | None = None, steps: int = 10, sampler: str = "ddim",
                   seed: int = 0, tile: int | None = None, overlap: int | None = None, batch_size: int = 4,
                   device="cpu", precision: str = "float32", skip_background: bool = True,
                   progress: Callable[[int, int], None] | None = None, preprocessing=None,
                   postprocessing=None) -> dict:
    """Translate the image of a row ``source`` (:func:`.slides.open_rows`) band by band.

    ``on_ihc(y0, uint8 (h, W, 3))`` and ``on_cells(y0, uint32 (h, W))`` receive the output rows in order, top to
    bottom.  ``preprocessing`` and ``postprocessing`` (:func:`.inference.translate`'s) run on each band of rows.
    Returns ``{"tiles": run, "skipped": background tiles, "cells": nuclei}``.
    """
    from ...core.processing import check_processing
    from ...errors import InputError
    from .inference import _tile_function, check_tiling, postprocess

    tile, overlap = check_tiling(model, tile, overlap)
    check_processing(preprocessing, "preprocessing")
    check_processing(postprocessing, "postprocessing")
    post = inference_postprocessing() if postprocessing is None else postprocessing
    height, width = source.shape
    if height < tile or width < tile:
        raise InputError(f"image is {height}×{width}, smaller than a tile ({tile}): use the whole-image mode")
    fn, _ = _tile_function(model, steps=steps, sampler=sampler, seed=seed, device=device, precision=precision,
                           progress=None)
    counts = {"tiles": 0, "skipped": 0}

    def run(batch: torch.Tensor) -> torch.Tensor:
        counts["tiles"] += len(batch)
        with torch.no_grad():
            return fn(batch)

    def skip(t: torch.Tensor) -> bool:
        hit = skip_background and _is_background(t)
        counts["skipped"] += hit
        return hit

    fill = [v for t in model.tasks for v in [1.0 if t == "ihc" else -1.0] * TASK_CHANNELS[t]]  # white, no cells
    out_channels = sum(TASK_CHANNELS[t] for t in model.tasks)
    labels = BandLabels(height, width) if "cells" in model.tasks else None
    bands = stream_tiles(run, lambda y0, y1: torch.from_numpy(scaled(source.read(y0, y1), preprocessing)),
                         (height, width), tile, overlap, out_channels, batch_size=batch_size, skip=skip, fill=fill,
                         progress=progress)
    for y0, rows in bands:
        if not _is_empty(post):  # the band's H&E rows read again for the postprocessing's inputs
            inputs = channels_first(source.read(y0, y0 + rows.shape[1]))
            rows = torch.from_numpy(postprocess(rows, inputs, post))
        parts = split_tasks(model.tasks, rows[None])
        if "ihc" in parts and on_ihc is not None:
            on_ihc(y0, unit_to_rgb(parts["ihc"][0].numpy()))
        if labels is not None:
            for y, lab in labels.push(y0, mask_probabilities(parts["cells"][0, 0]).numpy()):
                if on_cells is not None:
                    on_cells(y, lab)
    return {**counts, "cells": 0 if labels is None else labels.next_id - 1}
