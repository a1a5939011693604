"""H&E → IHC (+ cell labels) for an image of any size: whole image or overlapping tiles, then 8-bit outputs.

The data flow::

    H&E uint8 RGB (H, W, 3) → channels first (3, H, W), 0 … 255
      → the preprocessing (default: transforms.inference_preprocessing, → [−1, 1])
      → the inferer (medfusion.core.inferers.SlidingWindowInferer): an image ≤ tile whole (mirror-padded to the
        model's divisor), a larger one in tiles of ``tile`` pixels overlapping by ``overlap`` pixels, blended with
        Gaussian weights (MONAI ``sliding_window_inference``), ``batch_size`` tiles per network call
      → ConditionalDiffusion.sample (DDIM ``steps``, one seeded generator)
      → the postprocessing (default: transforms.inference_postprocessing, none)
      → IHC: uint8 RGB of the input's size; cells: probability (x + 1) / 2 → threshold 0.5 → touching nuclei
        split by a distance-transform watershed → uint16 labels 1..N.
"""

from __future__ import annotations

import functools
from typing import Callable

import numpy as np
import torch

from ...core.inference import sliding_window, whole_volume
from ...core.inferers import SlidingWindowInferer, inferer_for
from ...core.losses import mask_probabilities
from ...core.processing import as_numpy, check_processing, postprocessed
from ...errors import InputError
from .model import StainModel, split_tasks, unit_to_rgb
from .transforms import channels_first, inference_postprocessing, scaled

__all__ = ["translate", "postprocess", "default_inferer", "settings_of", "cell_labels", "check_tiling", "tile_edges"]


def check_tiling(model: StainModel, tile: int | None, overlap: int | None) -> tuple[int, int]:
    """The tile size and overlap in pixels to use (default: the model's training tile, a quarter of it), checked."""
    tile = model.tile if tile is None else tile
    if isinstance(tile, bool) or not isinstance(tile, int) or tile < model.divisor or tile % model.divisor:
        raise InputError(f"--tile must be a positive multiple of {model.divisor} pixels, got {tile}")
    overlap = tile // 4 if overlap is None else overlap
    if isinstance(overlap, bool) or not isinstance(overlap, int) or not 0 <= overlap < tile:
        raise InputError(f"--overlap must be from 0 to less than --tile ({tile}) pixels, got {overlap}")
    return tile, overlap


def _check_he(he: np.ndarray, divisor: int) -> np.ndarray:
    from .images import check_min_size

    he = np.asarray(he)
    if he.ndim != 3 or he.shape[-1] != 3 or he.dtype != np.uint8:
        raise InputError(f"expected an 8-bit RGB image (H, W, 3) uint8, got shape {he.shape} {he.dtype}")
    check_min_size(he, divisor, "H&E")
    return he


def default_inferer(model: StainModel, *, tile: int | None = None, overlap: int | None = None, batch_size: int = 4,
                    steps: int = 10, sampler: str = "ddim", seed: int = 0, device="cpu",
                    precision: str = "float32") -> SlidingWindowInferer:
    """The inferer :func:`translate` samples with unless given another (and the bundle's ``inferer``): images no
    larger than ``tile`` (default: the training tile) whole, mirror-padded to the divisor; larger ones tile by tile,
    neighbours sharing ``overlap`` pixels (default: a quarter tile), ``batch_size`` tiles per network call; 10 DDIM
    steps."""
    tile, overlap = check_tiling(model, tile, overlap)
    return SlidingWindowInferer(steps=steps, sampler=sampler, seed=seed, device=device, precision=precision,
                                roi_size=(tile, tile), overlap=overlap / tile, batch_size=batch_size,
                                padding_mode="reflect")


def translate(model, he: np.ndarray, *, inferer: SlidingWindowInferer | None = None,
              progress: Callable[[int, int], None] | None = None, preprocessing=None, postprocessing=None,
              **sampling) -> dict:
    """Virtual IHC stain and/or cell labels for one H&E image (uint8 RGB ``(H, W, 3)``), by a
    :class:`~.model.StainModel` sampled by ``inferer`` (default: :func:`default_inferer` of ``sampling``: ``steps``,
    ``sampler``, ``seed``, ``tile``, ``overlap``, ``batch_size``, ``device``, ``precision``) or by a
    :class:`~.baseline.UNetBaseline` (tiled the same way; the sampling settings do not apply to it).

    ``preprocessing``: a MONAI dictionary transform (a ``Compose``) from ``{"image": the H&E (3, H, W) float32,
    0 … 255}`` to the network's input, same shape (default: :func:`.transforms.inference_preprocessing`, [−1, 1]);
    ``postprocessing``: one from ``{"pred": the output (C, H, W) in [−1, 1], "inputs": the H&E (3, H, W)}`` to the
    final ``"pred"`` (default: :func:`.transforms.inference_postprocessing`, none). Both apply to either model.

    Returns ``{"ihc": uint8 (H, W, 3)}`` and/or ``{"cells": uint16 (H, W), "cell_probability": float32 (H, W)}``
    by the model's tasks.
    """
    he = _check_he(he, model.divisor)
    check_processing(postprocessing, "postprocessing")
    x = torch.from_numpy(scaled(he, preprocessing))
    if isinstance(model, StainModel):
        inferer = inferer_for(inferer, functools.partial(default_inferer, model), **sampling)
        y = inferer(x, model, None, progress)
    else:
        y = _predict_baseline(model, x, **sampling)
    y = torch.from_numpy(postprocess(y, channels_first(he), postprocessing))
    out = {}
    parts = split_tasks(model.tasks, y[None].float())
    if "ihc" in parts:
        out["ihc"] = unit_to_rgb(parts["ihc"][0].numpy())
    if "cells" in parts:
        prob = mask_probabilities(parts["cells"][0, 0]).numpy().astype(np.float32)
        out["cell_probability"], out["cells"] = prob, cell_labels(prob)
    return out


def postprocess(pred: torch.Tensor, inputs: np.ndarray, postprocessing=None) -> np.ndarray:
    """The model's output ``(C, H, W)`` (or a band of its rows) through ``postprocessing`` (default:
    :func:`.transforms.inference_postprocessing`), ``inputs`` the H&E rows ``(3, H, W)``, 0 … 255: float32."""
    post = inference_postprocessing() if postprocessing is None else postprocessing
    return postprocessed(post, np.asarray(as_numpy(pred), dtype=np.float32), inputs)[0]


def _predict_baseline(model, x: torch.Tensor, *, tile: int | None = None, overlap: int | None = None,
                      batch_size: int = 4, device="cpu", precision: str = "float32", **ignored) -> torch.Tensor:
    """The U-Net baseline on an H&E image ``(3, H, W)`` in [−1, 1], whole or tiled as :func:`default_inferer`."""
    tile, overlap = check_tiling(model, tile, overlap)
    if batch_size < 1:
        raise InputError(f"batch_size must be at least 1, got {batch_size}")
    fn, dev = _tile_function(model, steps=1, sampler="ddim", seed=0, device=device, precision=precision,
                             progress=None)
    with torch.no_grad():
        if max(x.shape[1:]) <= tile:
            return whole_volume(fn, x.to(dev), model.divisor, mode="reflect").cpu()
        return sliding_window(fn, x, (tile, tile), overlap=overlap / tile, batch_size=batch_size, mode="gaussian",
                              device="cpu")


def _tile_function(model, *, steps, sampler, seed, device, precision, progress):
    """``(B, 3, h, w)`` H&E tiles → ``(B, C, h, w)`` outputs in [−1, 1] on the tiles' device, and the device the
    network runs on."""
    if isinstance(model, StainModel):
        dev = model.check_sampling(steps=steps, sampler=sampler, seed=seed, device=device, precision=precision)
        generator = torch.Generator().manual_seed(seed)
        model.to(dev).network.eval()

        def sample(batch: torch.Tensor) -> torch.Tensor:
            return model.diffusion.sample(batch.to(dev), sampler=sampler, steps=steps, generator=generator,
                                          progress=progress, precision=precision).to(batch.device)
        return sample, dev
    from ...core.precision import autocast, check_precision, resolve_device

    dev = resolve_device(device)
    check_precision(precision, dev)
    model.to(dev).network.eval()

    def predict(batch: torch.Tensor) -> torch.Tensor:
        with autocast(dev, precision):
            return model.forward_tiles(batch.to(dev)).float().to(batch.device)
    return predict, dev


def settings_of(inferer: SlidingWindowInferer) -> dict:
    """An inferer's settings as :func:`translate`'s (and the streaming mode's) keyword arguments."""
    tile = int(inferer.roi_size[0])
    return {"steps": inferer.steps, "sampler": inferer.sampler, "seed": inferer.seed, "device": inferer.device,
            "precision": inferer.precision, "tile": tile, "overlap": int(round(inferer.overlap * tile)),
            "batch_size": inferer.batch_size}


def tile_edges(size: int, tile: int, overlap: int) -> list[int]:
    """Where tiles start or end along an axis of ``size`` pixels when :func:`translate` tiles it: MONAI's grid
    (starts every ``tile − overlap`` pixels, the last tile flush with the end; ``monai.data.utils.dense_patch_slices``),
    for :func:`medfusion.metrics.image.seam_ratio`."""
    from monai.data.utils import dense_patch_slices

    if size <= tile:
        return []
    interval = int(tile * (1 - overlap / tile))  # as sliding_window_inference turns the overlap into a step
    starts = {s[0].start for s in dense_patch_slices((size,), (tile,), (interval,))}
    return sorted(e for e in starts | {s + tile for s in starts} if 0 < e < size)


def cell_labels(probability: np.ndarray, *, threshold: float = 0.5, min_area: int = 6,
               min_distance: int = 3) -> np.ndarray:
    """Cell (nucleus) probabilities ``(H, W)`` → uint16 instance labels: pixels above ``threshold``, then
    :func:`.data.split_nuclei` (small objects dropped, touching nuclei split by a distance-transform watershed)."""
    from .data import split_nuclei

    return split_nuclei(np.asarray(probability) > threshold, min_area=min_area, min_distance=min_distance)
