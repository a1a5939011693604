"""Seeded synthetic tissue tiles: a pixel-aligned H&E / IHC pair of one piece of tissue, with nucleus labels.

The marker behaves like an epithelial cytokeratin (CK8/18): epithelial cells are positive, stromal cells are not,
so which cells turn brown can be told from the H&E morphology, as in the real task. One tile, from one seed:

1. **Layout**: a smooth random field cut at a quantile gives epithelial nests (their area is chosen so that about
   ``positive_fraction`` of the cells are epithelial); the nests' cores are glandular lumen; a second field leaves
   a few empty (glass/fat) patches in the stroma; stroma fibres run along one seeded direction (white noise
   smoothed along a line at that angle, then half-wave rectified).
2. **Cells** (greedy dart throwing, no overlaps): epithelial nuclei in the nests (large, oval, pale vesicular
   chromatin, packed), in the stroma spindle-shaped fibroblast nuclei along the fibres and small round dark
   lymphocytes, partly in one or two aggregates. Each nucleus is an ellipse (size, elongation, orientation
   drawn per cell) with a textured chromatin level.
3. **Cells' cytoplasm**: each nucleus grown by 4 px (epithelium, inside its nest) or 1.5 px (stromal cells);
   epithelial cell borders are the membranes.
4. **Concentrations** (``rgb2hed`` units): haematoxylin in nuclei (plus a faint level in all tissue), eosin in
   cytoplasm and (strongest) stroma fibres, none in nuclei-free lumen and glass; DAB only in positive
   (epithelial) cells: cytoplasm plus stronger membranes.
5. **Rendering** (:func:`skimage.color.hed2rgb`): H&E from (H, E, 0); IHC from (0.55 H + faint counterstain, 0,
   DAB) — no eosin in IHC, no DAB in H&E. Each map is blurred (σ = 0.6 px) before rendering, and each image gets
   its own seeded pixel noise (σ = 1.5 grey levels). Both images show the same tissue, pixel for pixel.

``cells`` are the nuclei as uint16 instance labels (0 background, 1..N); ``positive`` is a bool per-pixel mask of
the positive cells' area (nucleus and cytoplasm). The same seed gives identical arrays; any ``H``, ``W`` ≥ 32 works
(cells keep their size in pixels, a bigger tile holds more of them).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from ..apps.stain.images import case_paths, write_case
from ..errors import InputError
from ..io import PathLike, ensure_absent
from .seeded import write_seeded_cases

__all__ = ["MIN_TILE", "make_tissue_tile", "write_tissue_case", "write_tissue_dataset"]

#: smallest tile side (pixels)
MIN_TILE = 32

_EPI, _LYMPH, _FIBRO = 1, 2, 3
_DENSITY_RATIO = 1.7  # epithelial cells per area ÷ stromal cells per area (sets the nest area for the fraction)
_NEST_SIGMA, _EMPTY_SIGMA = 14.0, 12.0  # px, grain of the nest and empty-patch fields
_LUMEN_SHARE, _EMPTY_SHARE = 0.15, 0.06  # share of the nest area that is lumen; of the tile that is empty
_FIBRE_LENGTH = 9  # px, half-length of the line the fibre noise is smoothed along
_STROMA_AREA = 300.0  # px² of stroma per stromal cell
_CYTOPLASM = {_EPI: 4.0, _LYMPH: 1.5, _FIBRO: 1.5}  # px grown around each nucleus
_OPTICS_SIGMA, _PIXEL_NOISE = 0.6, 1.5  # px blur of the maps; grey levels of pixel noise


@dataclass(frozen=True)
class _Layout:
    nest: np.ndarray  # bool: epithelium
    lumen: np.ndarray  # bool: gland lumen or empty patch (no cells, no stain)
    fibres: np.ndarray  # float in [0, 1]: stroma fibre density
    angle: float  # fibre direction (radians); along (row, col) = (−sin, cos)


def _check(shape, positive_fraction: float) -> tuple[int, int]:
    try:
        size = tuple(int(n) for n in shape)
    except (TypeError, ValueError):
        raise InputError(f"tile shape must be two integers, got {shape!r}") from None
    if len(size) != 2 or any(n != s for n, s in zip(size, shape)) or min(size) < MIN_TILE:
        raise InputError(f"tile shape must be two integers ≥ {MIN_TILE}, got {tuple(shape)}")
    if not 0.0 <= float(positive_fraction) <= 1.0:
        raise InputError(f"positive_fraction must be in [0, 1], got {positive_fraction}")
    return size[0], size[1]


def _field(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    return ndi.gaussian_filter(rng.standard_normal(shape), sigma, mode="reflect")


def _above_share(field: np.ndarray, share: float) -> np.ndarray:
    """The ``share`` of the pixels with the highest values of ``field``."""
    if share <= 0.0:
        return np.zeros(field.shape, dtype=bool)
    if share >= 1.0:
        return np.ones(field.shape, dtype=bool)
    return field > np.quantile(field, 1.0 - share)


def _fibre_field(rng: np.random.Generator, shape: tuple[int, int], angle: float) -> np.ndarray:
    """Streaks along ``angle``: white noise averaged along a line, half-wave rectified, in [0, 1]."""
    from skimage.draw import line

    n = _FIBRE_LENGTH
    dr, dc = -np.sin(angle), np.cos(angle)
    kernel = np.zeros((2 * n + 1, 2 * n + 1))
    rr, cc = line(int(round(n - n * dr)), int(round(n - n * dc)), int(round(n + n * dr)), int(round(n + n * dc)))
    kernel[rr, cc] = 1.0 / len(rr)
    streaks = ndi.gaussian_filter(ndi.convolve(rng.standard_normal(shape), kernel, mode="reflect"), 0.7)
    return np.clip(streaks / max(float(streaks.std()), 1e-12), 0.0, 2.0) / 2.0


def _layout(rng: np.random.Generator, shape: tuple[int, int], positive_fraction: float) -> _Layout:
    p = float(positive_fraction)
    area = p / (p + _DENSITY_RATIO * (1.0 - p)) if p < 1.0 else 1.0
    nest_field = _field(rng, shape, _NEST_SIGMA)
    nest = _above_share(nest_field, area)
    gland = _above_share(nest_field, area * _LUMEN_SHARE)
    empty = _above_share(_field(rng, shape, _EMPTY_SIGMA), _EMPTY_SHARE) & ~ndi.binary_dilation(nest, iterations=3)
    angle = float(rng.uniform(0.0, np.pi))
    return _Layout(nest=nest & ~gland, lumen=gland | empty, fibres=_fibre_field(rng, shape, angle), angle=angle)


def _candidates(rng: np.random.Generator, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Candidate nucleus centres ``(n, 2)`` in random order, uniform plus one or two lymphocyte aggregates, and
    whether each came from an aggregate."""
    h, w = shape
    uniform = rng.uniform((0, 0), (h, w), size=(h * w // 10, 2))
    centres = rng.uniform((0, 0), (h, w), size=(int(rng.integers(1, 3)), 2))
    clustered = np.concatenate([c + rng.normal(0.0, 8.0, size=(h * w // 400 + 8, 2)) for c in centres])
    points = np.concatenate([uniform, clustered])
    from_aggregate = np.arange(len(points)) >= len(uniform)
    inside = (points[:, 0] >= 0) & (points[:, 0] < h) & (points[:, 1] >= 0) & (points[:, 1] < w)
    order = rng.permutation(int(inside.sum()))
    return points[inside][order], from_aggregate[inside][order]


def _cell(rng: np.random.Generator, kind: int, angle: float) -> tuple[float, float, float]:
    """(long semi-axis, short semi-axis, rotation) of a nucleus of ``kind`` (px, px, radians)."""
    if kind == _EPI:
        a = rng.uniform(4.0, 6.0)
        return a, a * rng.uniform(0.65, 0.95), rng.uniform(-np.pi, np.pi)
    if kind == _LYMPH:
        a = rng.uniform(2.5, 3.3)
        return a, a * rng.uniform(0.85, 1.0), rng.uniform(-np.pi, np.pi)
    return rng.uniform(5.0, 8.0), rng.uniform(1.5, 2.3), angle + rng.normal(0.0, 0.25)


def _kind(layout: _Layout, i: int, j: int, from_aggregate: bool, u: float) -> int:
    """The cell type at pixel ``(i, j)`` (``u`` uniform in [0, 1)), or 0 for none (lumen, glass)."""
    if layout.lumen[i, j]:
        return 0
    if layout.nest[i, j]:
        return _EPI
    return _LYMPH if from_aggregate or u < 0.3 else _FIBRO


def _place_cells(rng: np.random.Generator, layout: _Layout) -> list[tuple]:
    """Non-overlapping nuclei ``(row, col, long, short, rotation, kind)`` by greedy dart throwing: a candidate
    is kept if its centre is at least the two long semi-axes plus a gap (1 px, 3 px around fibroblasts) from
    every kept one; the epithelium fills up, the stroma stops at one cell per :data:`_STROMA_AREA` pixels."""
    points, from_aggregate = _candidates(rng, layout.nest.shape)
    stroma_cap = int((~layout.nest & ~layout.lumen).sum() / _STROMA_AREA)
    centres = np.empty((len(points), 2))
    reach = np.empty(len(points))
    cells: list[tuple] = []
    n_stroma = 0
    for (r, c), agg, u in zip(points, from_aggregate, rng.random(len(points))):
        kind = _kind(layout, int(r), int(c), bool(agg), float(u))
        if not kind or (kind != _EPI and n_stroma >= stroma_cap):
            continue
        a, b, rot = _cell(rng, kind, layout.angle)
        n = len(cells)
        gap = 3.0 if kind == _FIBRO else 1.0
        if n and np.any(np.hypot(centres[:n, 0] - r, centres[:n, 1] - c) < reach[:n] + a + gap):
            continue
        centres[n], reach[n] = (r, c), a
        cells.append((r, c, a, b, rot, kind))
        n_stroma += kind != _EPI
    return cells


def _draw_nuclei(shape: tuple[int, int], cells: list[tuple]) -> tuple[np.ndarray, np.ndarray]:
    """Nucleus labels (uint16, 1..N in placement order) and the kind of each label (index 0: background)."""
    from skimage.draw import ellipse

    labels = np.zeros(shape, dtype=np.uint16)
    kinds = [0]
    for r, c, a, b, rot, kind in cells:
        rr, cc = ellipse(r, c, b, a, shape=shape, rotation=rot)
        free = labels[rr, cc] == 0
        if free.sum() < 4:  # clipped away at the tile edge
            continue
        kinds.append(kind)
        labels[rr[free], cc[free]] = len(kinds) - 1
    return labels, np.array(kinds, dtype=np.int8)


def _territories(nuclei: np.ndarray, kinds: np.ndarray, layout: _Layout) -> np.ndarray:
    """Cell labels (nucleus + cytoplasm): epithelial cells grown inside their nest, stromal cells by a thin rim."""
    from skimage.segmentation import expand_labels

    kind_map = kinds[nuclei]
    epi = expand_labels(np.where(kind_map == _EPI, nuclei, 0), _CYTOPLASM[_EPI])
    epi[~(layout.nest | (kind_map == _EPI))] = 0
    stromal = expand_labels(np.where(kind_map > _EPI, nuclei, 0), _CYTOPLASM[_LYMPH])
    cells = np.where(nuclei > 0, nuclei, np.where(epi > 0, epi, stromal))
    cells[layout.lumen & (nuclei == 0)] = 0
    return cells


def _unit_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Smoothed white noise with unit standard deviation."""
    noise = _field(rng, shape, sigma)
    return noise / max(float(noise.std()), 1e-12)


def _per_cell(rng: np.random.Generator, kinds: np.ndarray, ranges: dict[int, tuple[float, float]]) -> np.ndarray:
    """One value per label drawn from its kind's range (index 0, background: 0)."""
    lo = np.array([ranges.get(int(k), (0.0, 0.0))[0] for k in kinds])
    hi = np.array([ranges.get(int(k), (0.0, 0.0))[1] for k in kinds])
    return lo + (hi - lo) * rng.random(len(kinds))


def _haematoxylin(rng, nuclei: np.ndarray, kinds: np.ndarray, tissue: np.ndarray) -> np.ndarray:
    """H&E haematoxylin: textured chromatin in nuclei (dense in lymphocytes, pale in epithelium), faint in tissue."""
    level = _per_cell(rng, kinds, {_EPI: (0.045, 0.06), _LYMPH: (0.09, 0.11), _FIBRO: (0.07, 0.09)})
    texture = np.array([0.0, 0.35, 0.15, 0.15])[kinds][nuclei]
    chromatin = level[nuclei] * np.maximum(1.0 + texture * _unit_noise(rng, nuclei.shape, 0.8), 0.2)
    return np.where(nuclei > 0, chromatin, 0.004 * tissue)


def _eosin(rng, layout: _Layout, nuclei: np.ndarray, cells: np.ndarray, kinds: np.ndarray) -> np.ndarray:
    """Eosin: strongest on stroma fibres, moderate in cytoplasm, faint in nuclei, none in lumen and glass."""
    grain = np.maximum(1.0 + 0.15 * _unit_noise(rng, nuclei.shape, 1.0), 0.0)
    kind_map = kinds[cells]
    eosin = np.where(kind_map == _EPI, 0.022 * grain, 0.015)
    eosin = np.where(cells == 0, 0.012 + 0.028 * layout.fibres, eosin)
    eosin = np.where(nuclei > 0, 0.006, eosin)
    return np.where(layout.lumen & (cells == 0), 0.0, eosin)


def _dab(rng, nuclei: np.ndarray, cells: np.ndarray, kinds: np.ndarray) -> np.ndarray:
    """DAB of the IHC: positive (epithelial) cells' cytoplasm and, stronger, their membranes; nothing else."""
    from skimage.segmentation import find_boundaries

    positive = kinds[cells] == _EPI
    level = _per_cell(rng, kinds, {_EPI: (0.06, 0.1)})[cells]
    grain = np.maximum(1.0 + 0.2 * _unit_noise(rng, cells.shape, 1.0), 0.0)
    membrane = find_boundaries(cells, mode="inner") & positive & (nuclei == 0)
    dab = np.where(positive, level * grain, 0.0) + 0.12 * membrane
    return np.where(positive & (nuclei > 0), 0.01, dab)


def _render(rng: np.random.Generator, h: np.ndarray, e: np.ndarray, d: np.ndarray) -> np.ndarray:
    """8-bit RGB from H, E, DAB concentration maps: blur, :func:`skimage.color.hed2rgb`, pixel noise."""
    from skimage.color import hed2rgb

    stains = np.stack([ndi.gaussian_filter(m, _OPTICS_SIGMA) for m in (h, e, d)], axis=-1)
    rgb = 255.0 * hed2rgb(stains) + rng.normal(0.0, _PIXEL_NOISE, size=h.shape + (3,))
    return np.round(np.clip(rgb, 0.0, 255.0)).astype(np.uint8)


def make_tissue_tile(shape: tuple[int, int] = (128, 128), seed: int = 0,
                     positive_fraction: float = 0.4) -> dict[str, np.ndarray]:
    """One synthetic tissue tile (see the module docstring for the recipe).

    Args:
        shape: ``(H, W)``, both ≥ :data:`MIN_TILE`.
        seed: the tile's seed (same seed, same arrays).
        positive_fraction: about this share of the cells is epithelial, hence IHC-positive (0 to 1).

    Returns:
        ``he`` and ``ihc``: ``(H, W, 3)`` uint8, pixel-aligned; ``cells``: ``(H, W)`` uint16 nucleus labels
        (0 background, 1..N); ``positive``: ``(H, W)`` bool, the area (nucleus and cytoplasm) of positive cells.

    Raises:
        InputError: ``shape`` is not two integers ≥ 32, or ``positive_fraction`` is outside [0, 1].
    """
    shape = _check(shape, positive_fraction)
    rng = np.random.default_rng(seed)
    layout = _layout(rng, shape, positive_fraction)
    nuclei, kinds = _draw_nuclei(shape, _place_cells(rng, layout))
    cells = _territories(nuclei, kinds, layout)
    tissue = ~layout.lumen | (cells > 0)
    h = _haematoxylin(rng, nuclei, kinds, tissue)
    e = _eosin(rng, layout, nuclei, cells, kinds)
    d = _dab(rng, nuclei, cells, kinds)
    he = _render(rng, h, e, np.zeros(shape))
    ihc = _render(rng, 0.55 * h + 0.003 * tissue, np.zeros(shape), d)
    return {"he": he, "ihc": ihc, "cells": nuclei, "positive": kinds[cells] == _EPI}


def write_tissue_case(out_dir: PathLike, name: str, seed: int, shape: tuple[int, int] = (128, 128), *,
                      positive_fraction: float = 0.4, overwrite: bool = False) -> str:
    """Write one tile as the case folder ``out_dir/name`` with ``he.png``, ``ihc.png`` and ``cells.png``
    (16-bit labels); returns the folder.

    Raises:
        InputError: see :func:`make_tissue_tile`.
        OutputExistsError: some file exists and ``overwrite`` is false (checked before anything is computed).
    """
    ensure_absent(case_paths(out_dir, name).values(), overwrite)
    tile = make_tissue_tile(shape, seed=seed, positive_fraction=positive_fraction)
    return write_case(out_dir, name, tile["he"], tile["ihc"], tile["cells"], overwrite=overwrite)


def write_tissue_dataset(out_dir: PathLike, n: int, shape: tuple[int, int] = (128, 128), seed0: int = 0,
                         prefix: str = "STAIN-PHANTOM", *, positive_fraction: float = 0.4,
                         overwrite: bool = False) -> list[str]:
    """Write ``n`` tiles ``<prefix>-00000``, ``<prefix>-00001``, ... with seeds ``seed0``, ``seed0 + 1``, ...
    (see :func:`write_tissue_case`); returns the case folders.

    Raises:
        InputError: ``n`` is negative, or see :func:`make_tissue_tile` (checked before writing anything).
        OutputExistsError: some output exists and ``overwrite`` is false (checked before writing anything).
    """
    _check(shape, positive_fraction)
    return write_seeded_cases(write_tissue_case, case_paths, out_dir, n, prefix=prefix, seed0=seed0,
                              overwrite=overwrite, shape=shape, positive_fraction=positive_fraction)
