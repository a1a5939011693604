"""Real H&E-like / IHC pairs with coarse nucleus labels, from scikit-image's immunohistochemistry image.

``skimage.data.immunohistochemistry()`` is a real 512×512 8-bit RGB IHC image (brown DAB on epithelial cell
membranes, blue haematoxylin counterstain on nuclei) that ships with scikit-image. The data flow:

1. **Target**: the IHC image as it is.
2. **Input** (:func:`he_from_ihc`): colour deconvolution (:func:`skimage.color.rgb2hed`) gives the haematoxylin
   concentration H; the DAB channel is discarded and an eosin channel is synthesised from H alone, so the H&E-like
   image is a deterministic function of (H, seed) and carries no DAB information by construction.
3. **Coarse labels** (:func:`nuclei_labels`): nucleus instances from H by background subtraction, Otsu threshold
   and a distance-transform watershed — training labels only, not a ground truth.
4. **Spatial split** (:data:`REGIONS`, :func:`tiles`): the image's columns are cut into three disjoint strips
   (train 0–319, val 320–383, test 384–511, full height); each strip's H&E image and labels are computed from that
   strip alone (smoothing reflects at its edges, the Otsu threshold is the strip's own), and tiles are cut only
   inside their strip, so no held-out pixel reaches training.
5. **Files** (:func:`write_skimage_dataset`): one case folder per tile with ``he.png``, ``ihc.png`` (8-bit RGB)
   and ``cells.png`` (16-bit labels), the layout of :mod:`.images` and of the synthetic tiles of :mod:`medfusion.phantoms.histology`.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy import ndimage as ndi

from ...errors import InputError
from ...io import PathLike, ensure_absent
from .images import case_paths, write_case

__all__ = ["REGIONS", "split_nuclei", "HE_HAEMATOXYLIN_GAIN", "HE_EOSIN", "GLASS_HAEMATOXYLIN", "NUCLEAR_HAEMATOXYLIN",
           "haematoxylin", "he_from_ihc", "nuclei_labels", "skimage_ihc", "skimage_pairs", "split_pairs",
           "tiles", "write_skimage_dataset"]

#: disjoint boxes ``(row0, row1, col0, col1)`` (end-exclusive) of the 512×512 image: column strips, full height
REGIONS: dict[str, tuple[int, int, int, int]] = {
    "train": (0, 512, 0, 320),
    "val": (0, 512, 320, 384),
    "test": (0, 512, 384, 512),
}

#: the H&E-like image's haematoxylin is the IHC counterstain times this (H&E nuclei are darker)
HE_HAEMATOXYLIN_GAIN = 1.5
#: eosin concentration (``rgb2hed`` units) of tissue away from nuclei
HE_EOSIN = 0.025
#: smoothed haematoxylin (σ = 6 px) below which a pixel is glass or lumen (no eosin)
GLASS_HAEMATOXYLIN = 0.009
#: haematoxylin at which a pixel counts as fully nuclear (eosin halved there)
NUCLEAR_HAEMATOXYLIN = 0.05

_TISSUE_SIGMA = 6.0  # px, smoothing of H before the glass threshold
_EDGE_SIGMA = 2.0  # px, soft edge of the tissue mask
_NUCLEAR_DIMMING = 0.5  # eosin factor 1 - 0.5 * nuclear fraction
_NOISE_SIGMA = 1.5  # px, grain of the eosin texture
_NOISE_AMPLITUDE = 0.25  # relative standard deviation of the eosin texture


def _check_rgb(image: np.ndarray, what: str) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise InputError(f"{what} must be an (H, W, 3) uint8 RGB image, got {image.dtype} {image.shape}")
    return image


def haematoxylin(rgb: np.ndarray) -> np.ndarray:
    """Haematoxylin concentration (``rgb2hed`` channel 0, negative values clipped to 0) of an 8-bit RGB image,
    ``(H, W)`` float64."""
    from skimage.color import rgb2hed

    return np.maximum(rgb2hed(_check_rgb(rgb, "the image"))[..., 0], 0.0)


def haematoxylin_as_ihc(he_rgb: np.ndarray) -> np.ndarray:
    """A no-learning IHC: the H&E image's own haematoxylin (:func:`haematoxylin`) rendered alone, as an IHC
    counterstain without any DAB (``round(255 · hed2rgb(stack(H, 0, 0)))``, uint8).  It uses no knowledge of how the
    data were made; a model that cannot beat it has learned nothing about the DAB."""
    from skimage.color import hed2rgb

    h = haematoxylin(he_rgb)
    rgb = hed2rgb(np.stack([h, np.zeros_like(h), np.zeros_like(h)], axis=-1))
    return np.clip(np.rint(255.0 * rgb), 0, 255).astype(np.uint8)


def he_from_ihc(ihc_rgb: np.ndarray, seed: int = 0) -> np.ndarray:
    """An H&E-like image of the tissue of an IHC image: its haematoxylin, a synthetic eosin, no DAB.

    The recipe (concentrations in ``rgb2hed`` units; σ are Gaussian filters in pixels, reflecting at the edges):

    1. ``H = max(rgb2hed(ihc)[..., 0], 0)``; channels 1 (eosin, ≈ 0 in IHC) and 2 (DAB) are discarded.
    2. Tissue: ``T = fill_holes(gaussian(H, 6) > GLASS_HAEMATOXYLIN)`` (0.009: the counterstain of even pale stroma
       is above it, glass and lumen below), softened to ``t = gaussian(T, 2)``.
    3. Nuclear fraction ``f = clip(H / NUCLEAR_HAEMATOXYLIN, 0, 1)`` (0.05).
    4. Texture: ``n`` = ``gaussian(z, 1.5)`` scaled to unit standard deviation, ``z`` standard normal noise from
       ``numpy.random.default_rng(seed)``.
    5. Eosin ``E = HE_EOSIN · t · (1 − 0.5 f) · max(1 + 0.25 n, 0)`` (0.025: pink stroma and cytoplasm).
    6. ``he = round(255 · hed2rgb(stack(1.5 H, E, 0)))`` as uint8 (blue-purple nuclei, pink tissue, white glass).

    Everything after step 1 depends on ``H`` and ``seed`` only, so the DAB stain (the translation target) cannot
    leak into the input, apart from haematoxylin/DAB cross-talk of the colour deconvolution itself.

    Args:
        ihc_rgb: ``(H, W, 3)`` uint8 IHC image.
        seed: seed of the eosin texture.

    Returns:
        ``(H, W, 3)`` uint8 H&E-like image.
    """
    from skimage.color import hed2rgb

    h = haematoxylin(_check_rgb(ihc_rgb, "the IHC image"))
    tissue = ndi.binary_fill_holes(ndi.gaussian_filter(h, _TISSUE_SIGMA) > GLASS_HAEMATOXYLIN)
    soft = ndi.gaussian_filter(tissue.astype(np.float64), _EDGE_SIGMA)
    nuclear = np.clip(h / NUCLEAR_HAEMATOXYLIN, 0.0, 1.0)
    noise = ndi.gaussian_filter(np.random.default_rng(seed).standard_normal(h.shape), _NOISE_SIGMA)
    noise /= max(float(noise.std()), 1e-12)
    texture = np.maximum(1.0 + _NOISE_AMPLITUDE * noise, 0.0)
    eosin = HE_EOSIN * soft * (1.0 - _NUCLEAR_DIMMING * nuclear) * texture
    rgb = hed2rgb(np.stack([HE_HAEMATOXYLIN_GAIN * h, eosin, np.zeros_like(h)], axis=-1))
    return np.round(255.0 * np.clip(rgb, 0.0, 1.0)).astype(np.uint8)


def _drop_small(mask: np.ndarray, min_area: int) -> np.ndarray:
    """``mask`` without its connected components (4-connected) smaller than ``min_area`` pixels."""
    components, _ = ndi.label(mask)
    keep = np.bincount(components.ravel()) >= min_area
    keep[0] = False
    return keep[components]


def nuclei_labels(image: np.ndarray, *, min_area: int = 20, min_distance: int = 4,
                  background_sigma: float = 16.0, min_contrast: float = 0.004) -> np.ndarray:
    """Coarse nucleus instance labels from the haematoxylin channel (training labels, not a ground truth).

    Steps: ``H`` (:func:`haematoxylin` of an RGB image, or the given concentration map) → local contrast
    ``gaussian(H, 1) − gaussian(H, background_sigma)`` (removes the counterstain's slow background, e.g. the
    cross-talk inside DAB-stained epithelium) → foreground where the contrast exceeds both its Otsu threshold and
    ``min_contrast`` → components under ``min_area`` pixels dropped, holes filled → Euclidean distance transform,
    smoothed (σ = 1) → one marker per :func:`skimage.feature.peak_local_max` peak (``min_distance`` apart) →
    :func:`skimage.segmentation.watershed` of the negated distance inside the foreground.

    Args:
        image: ``(H, W, 3)`` uint8 RGB image (H&E or IHC), or an ``(H, W)`` haematoxylin concentration map.

    Returns:
        ``(H, W)`` uint16 labels: 0 background, 1..N nuclei (consecutive).
    """
    from skimage.filters import threshold_otsu

    image = np.asarray(image)
    h = haematoxylin(image) if image.ndim == 3 else np.asarray(image, dtype=np.float64)
    if h.ndim != 2:
        raise InputError(f"expected an RGB image or a 2D haematoxylin map, got shape {image.shape}")
    contrast = ndi.gaussian_filter(h, 1.0) - ndi.gaussian_filter(h, background_sigma)
    if not np.ptp(contrast) > 1e-9:
        return np.zeros(h.shape, dtype=np.uint16)
    fg = (contrast > threshold_otsu(contrast)) & (contrast > min_contrast)
    return split_nuclei(fg, min_area=min_area, min_distance=min_distance)


def split_nuclei(foreground: np.ndarray, *, min_area: int = 20, min_distance: int = 4) -> np.ndarray:
    """A nucleus foreground mask → uint16 instance labels 1..N: components under ``min_area`` pixels dropped, holes
    filled, touching nuclei split by a :func:`skimage.segmentation.watershed` of the negated, smoothed (σ = 1)
    distance transform from :func:`skimage.feature.peak_local_max` markers ``min_distance`` apart; a component
    without a peak keeps one label."""
    from skimage.feature import peak_local_max
    from skimage.segmentation import relabel_sequential, watershed

    fg = ndi.binary_fill_holes(_drop_small(np.asarray(foreground, dtype=bool), min_area))
    if not fg.any():
        return np.zeros(fg.shape, dtype=np.uint16)
    components = ndi.label(fg)[0]
    distance = ndi.gaussian_filter(ndi.distance_transform_edt(fg), 1.0)
    peaks = peak_local_max(distance, min_distance=min_distance, labels=components, exclude_border=False)
    markers = np.zeros(fg.shape, dtype=np.int32)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    labels = watershed(-distance, markers, mask=fg)
    missed = fg & (labels == 0)
    labels[missed] = components[missed] + labels.max()
    labels = relabel_sequential(labels)[0]
    if labels.max() > 65535:
        raise InputError(f"{labels.max()} nuclei do not fit a 16-bit label image")
    return labels.astype(np.uint16)


@lru_cache(maxsize=1)
def _skimage_ihc() -> np.ndarray:
    from skimage import data

    image = np.ascontiguousarray(data.immunohistochemistry(), dtype=np.uint8)
    image.setflags(write=False)
    return image


def skimage_ihc() -> np.ndarray:
    """scikit-image's 512×512 IHC image, ``(512, 512, 3)`` uint8 (a fresh copy)."""
    return _skimage_ihc().copy()


def _pairs(ihc: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    return {"he": he_from_ihc(ihc, seed=seed), "ihc": ihc.copy(), "cells": nuclei_labels(ihc)}


def skimage_pairs(seed: int = 0) -> dict[str, np.ndarray]:
    """The whole image as one pair (for looking at it; training uses :func:`split_pairs` / :func:`tiles`).

    Returns:
        ``{"he": (512, 512, 3) uint8, "ihc": (512, 512, 3) uint8, "cells": (512, 512) uint16}``.
    """
    return _pairs(_skimage_ihc(), seed)


def _region(split: str) -> tuple[int, int, int, int]:
    if split not in REGIONS:
        raise InputError(f"unknown split {split!r}: choose one of {', '.join(REGIONS)}")
    return REGIONS[split]


def split_pairs(split: str, seed: int = 0) -> dict[str, np.ndarray]:
    """The pair of one split's region (:data:`REGIONS`), computed from that region's pixels only."""
    r0, r1, c0, c1 = _region(split)
    return _pairs(_skimage_ihc()[r0:r1, c0:c1], seed)


def tiles(split: str, size: int = 64, stride: int | None = None, seed: int = 0
          ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, tuple[int, int]]]:
    """Square tiles cut inside one split's region, row by row.

    Tile origins are ``r0, r0 + stride, …`` (and likewise for columns) as long as the tile fits in the region;
    a remainder narrower than ``size`` at the region's bottom/right edge is not used.

    Args:
        split: ``"train"``, ``"val"`` or ``"test"``.
        size: tile side (pixels).
        stride: step between tile origins (default ``size``: tiles touch without overlapping).
        seed: seed of the H&E eosin texture (see :func:`he_from_ihc`).

    Returns:
        ``(he, ihc, cells, (row, col))`` per tile: uint8 RGB tiles, uint16 labels renumbered 1..n per tile, and
        the tile's top-left corner in the 512×512 image.

    Raises:
        InputError: unknown split, ``size``/``stride`` < 1, or a tile larger than the region.
    """
    r0, r1, c0, c1 = _region(split)
    stride = size if stride is None else stride
    if size < 1 or stride < 1:
        raise InputError(f"tile size and stride must be ≥ 1, got {size} and {stride}")
    if size > min(r1 - r0, c1 - c0):
        raise InputError(f"tile size {size} does not fit in the {split} region ({r1 - r0}×{c1 - c0})")
    from skimage.segmentation import relabel_sequential

    pair = split_pairs(split, seed)
    out = []
    for r in range(0, r1 - r0 - size + 1, stride):
        for c in range(0, c1 - c0 - size + 1, stride):
            box = (slice(r, r + size), slice(c, c + size))
            cells = relabel_sequential(pair["cells"][box])[0].astype(np.uint16)
            out.append((pair["he"][box].copy(), pair["ihc"][box].copy(), cells, (r0 + r, c0 + c)))
    return out


def write_skimage_dataset(out_dir: PathLike, split: str, size: int = 64, stride: int | None = None, *,
                          prefix: str | None = None, seed: int = 0, overwrite: bool = False) -> list[str]:
    """Write the tiles of one split (:func:`tiles`) as case folders ``<prefix>-00000``, ``<prefix>-00001``, …
    (default prefix ``SKIMAGE-IHC-<SPLIT>``), each with ``he.png``, ``ihc.png`` and ``cells.png``.

    Returns:
        The case folders, in tile order.

    Raises:
        InputError: see :func:`tiles`.
        OutputExistsError: some output exists and ``overwrite`` is false (checked before writing anything).
    """
    prefix = f"SKIMAGE-IHC-{split.upper()}" if prefix is None else prefix
    cut = tiles(split, size, stride, seed)
    names = [f"{prefix}-{i:05d}" for i in range(len(cut))]
    ensure_absent([p for name in names for p in case_paths(out_dir, name).values()], overwrite)
    return [write_case(out_dir, name, he, ihc, cells, overwrite=overwrite)
            for name, (he, ihc, cells, _) in zip(names, cut)]
