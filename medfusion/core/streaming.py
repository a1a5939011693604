"""Sliding-window inference over a 2D image too large for memory: one row of tiles at a time.

:func:`medfusion.core.inference.sliding_window` (MONAI) holds the whole image, its output and the weights in memory.
:func:`stream_tiles` computes the same blend — MONAI's tile grid (``dense_patch_slices``, the last tile flush with
the border) and Gaussian importance map (``compute_importance_map``) — but reads the input one row of tiles at a
time and hands back each band of output rows as soon as no later tile can touch it.  What it holds is a band of
``tile + step`` rows of the image's width: memory grows with the width, not the height, and an image of
10,000 × 10,000 pixels needs what a strip of 10,000 × (tile + step) pixels needs.

Tiles that ``skip`` rejects (e.g. slide background) are not run: they blend in a constant ``fill`` instead.
"""

from __future__ import annotations

from typing import Callable, Iterator, Sequence

import torch

__all__ = ["stream_tiles", "tile_starts"]


def tile_starts(size: int, tile: int, overlap: int) -> list[int]:
    """Where tiles start along an axis of ``size`` ≥ ``tile`` pixels: every ``tile − overlap`` pixels, the last
    one flush with the end (MONAI ``dense_patch_slices``, as ``sliding_window_inference`` places them)."""
    from monai.data.utils import dense_patch_slices

    if size < tile:
        raise ValueError(f"an axis of {size} pixels is shorter than the tile ({tile})")
    if not 0 <= overlap < tile:
        raise ValueError(f"overlap must be from 0 to less than the tile ({tile}), got {overlap}")
    return sorted({int(s[0].start) for s in dense_patch_slices((size,), (tile,), (tile - overlap,))})


def stream_tiles(fn: Callable[[torch.Tensor], torch.Tensor], read_rows: Callable[[int, int], torch.Tensor],
                 shape: Sequence[int], tile: int, overlap: int, out_channels: int, *, batch_size: int = 4,
                 skip: Callable[[torch.Tensor], bool] | None = None, fill: Sequence[float] | None = None,
                 sigma_scale: float = 0.125, progress: Callable[[int, int], None] | None = None,
                 ) -> Iterator[tuple[int, torch.Tensor]]:
    """Blend ``fn`` over overlapping ``tile`` × ``tile`` tiles of an image of ``shape`` ``(H, W)``, top to bottom.

    Args:
        fn: ``(B, C, tile, tile) → (B, out_channels, tile, tile)``, tiles in the order they are read (row by row,
            left to right), at most ``batch_size`` per call.
        read_rows: ``(y0, y1) → (C, y1 − y0, W)`` float tensor, the input rows ``y0 … y1 − 1``.
        skip: ``(C, tile, tile) tile → True`` to leave the tile out and blend ``fill`` (one value per output
            channel) in its place.
        progress: called ``(tiles done, tiles in all)``.
    Yields:
        ``(y0, rows)``: ``rows`` ``(out_channels, h, W)`` float32 are the final output rows ``y0 … y0 + h − 1``;
        the bands follow each other without gap until row ``H``.
    """
    from monai.data.utils import compute_importance_map

    height, width = (int(s) for s in shape)
    ys, xs = tile_starts(height, tile, overlap), tile_starts(width, tile, overlap)
    if skip is not None and (fill is None or len(fill) != out_channels):
        raise ValueError(f"skipping tiles needs one fill value per output channel ({out_channels})")
    weight = compute_importance_map((tile, tile), mode="gaussian", sigma_scale=sigma_scale, device="cpu").float()
    filled = None if fill is None else torch.as_tensor(fill, dtype=torch.float32)[:, None, None] * weight
    top, acc, wsum = 0, torch.zeros(out_channels, 0, width), torch.zeros(1, 0, width)
    done, total = 0, len(ys) * len(xs)
    for i, y in enumerate(ys):
        rows = read_rows(y, y + tile)
        grow = y + tile - top - acc.shape[1]  # the accumulator reaches row y + tile
        if grow > 0:
            acc = torch.cat([acc, torch.zeros(out_channels, grow, width)], dim=1)
            wsum = torch.cat([wsum, torch.zeros(1, grow, width)], dim=1)
        tiles = [rows[:, :, x: x + tile] for x in xs]
        run = [k for k, t in enumerate(tiles) if skip is None or not skip(t)]
        outs = {}
        for b in range(0, len(run), batch_size):
            batch = run[b: b + batch_size]
            result = fn(torch.stack([tiles[k] for k in batch])).float().cpu()
            outs.update(zip(batch, result))
            done += len(batch)
            if progress is not None:
                progress(done, total)
        done += len(tiles) - len(run)
        for k, x in enumerate(xs):
            out = outs[k] * weight if k in outs else filled
            acc[:, y - top: y - top + tile, x: x + tile] += out
            wsum[:, y - top: y - top + tile, x: x + tile] += weight
        end = ys[i + 1] if i + 1 < len(ys) else height  # no later tile reaches above this row
        yield top, acc[:, : end - top] / wsum[:, : end - top]
        acc, wsum, top = acc[:, end - top:], wsum[:, end - top:], end
