"""cWDM pre- and post-processing: one set of MONAI transforms for training, inference and the bundle.

Preprocessing of a case (``{contrast: file}``)::

    LoadVolumed          medfusion.io.load_volume: 3D, finite, the file's voxel order and affine
    PercentileNormalized each contrast clipped at its 0.1/99.9 percentiles and scaled to [0, 1]
    ConcatItemsd         the contrasts stacked as "image" (C, X, Y, Z) in canonical order t1n, t1c, t2w, t2f
    [training: SpatialPadd + RandSpatialCropd to patch_size]
    DivisiblePadd        zero-padded (symmetric) to the network's divisor — inference inverts it

Inference runs the same normalisation on the contrasts in memory as a dictionary ``Compose``
(:func:`inference_preprocessing`: ``{"image": (3, X, Y, Z) raw}`` → ``PercentileNormalized``, channel by channel,
as the training ``Compose`` normalises each contrast) and its postprocessing as another
(:func:`inference_postprocessing`: ``{"pred": (1, X, Y, Z), "inputs": the raw contrasts}`` →
:class:`~medfusion.transforms.ZeroBackgroundd`: voxels ≤ 0.04 and outside the inputs' union set to 0); the
bundle's ``preprocessing`` and ``postprocessing`` are these lists, so a user swaps a transform or a setting there.
The padding to the network's divisor and its inverse stay in the inferer
(:class:`~medfusion.core.inferers.WholeVolumeInferer`): they depend on the network, not on the data.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ...errors import InputError
__all__ = ["preprocessing", "inference_preprocessing", "inference_postprocessing", "normalize"]


def preprocessing(keys: Sequence[str], *, lower: float = 0.1, upper: float = 99.9, divisor: int | None = None,
                  patch_size: Sequence[int] | None = None, seed: int | None = None):
    """The MONAI ``Compose`` from a dict of file paths to ``{"image": (len(keys), *S) float32 tensor}``.

    Args:
        keys: the contrasts to load, in the order they are stacked.
        lower, upper: normalisation percentiles.
        divisor: pad every spatial size to a multiple of this (``None``: no padding; inference pads itself).
        patch_size: random crops of this size (training); ``None`` = whole volumes (padded, so odd sizes such as
            BraTS's 155 slices reach the wavelet transform even).
        seed: seeds the random crops.
    """
    from monai.transforms import (
        Compose, ConcatItemsd, DivisiblePadd, EnsureTyped, RandSpatialCropd, SelectItemsd, SpatialPadd,
    )

    from ...transforms import LoadVolumed, PercentileNormalized

    keys = list(keys)
    steps = [LoadVolumed(keys), PercentileNormalized(keys, lower=lower, upper=upper),
             ConcatItemsd(keys=keys, name="image", dim=0), SelectItemsd(keys=["image"])]
    if patch_size is not None:
        if divisor and any(int(p) % divisor for p in patch_size):
            raise InputError(f"patch_size {list(patch_size)} must be a multiple of the network's divisor {divisor}")
        steps += [SpatialPadd(keys=["image"], spatial_size=list(patch_size)),
                  RandSpatialCropd(keys=["image"], roi_size=list(patch_size), random_size=False)]
    if divisor:
        steps.append(DivisiblePadd(keys=["image"], k=int(divisor), method="symmetric", mode="constant"))
    steps.append(EnsureTyped(keys=["image"], dtype=np.float32, track_meta=False))
    compose = Compose(steps)
    if seed is not None:
        compose.set_random_state(seed=seed)
    return compose


def inference_preprocessing(lower: float = 0.1, upper: float = 99.9):
    """The ``Compose`` inference gives the contrasts in memory: ``{"image": (3, X, Y, Z)}`` raw → each channel
    clipped at its ``lower``/``upper`` percentiles and scaled to [0, 1] (a model's own: its ``lower``, ``upper``)."""
    from monai.transforms import Compose

    from ...transforms import PercentileNormalized

    return Compose([PercentileNormalized(keys="image", lower=lower, upper=upper)])


def inference_postprocessing(threshold: float | None = 0.04):
    """The ``Compose`` inference gives the synthesized contrast: ``{"pred": (1, X, Y, Z), "inputs": the raw
    contrasts (3, X, Y, Z)}`` → ``"pred"`` zeroed at voxels ≤ ``threshold`` and outside the union of the inputs'
    non-zero voxels (a model's own: its ``background_threshold``)."""
    from monai.transforms import Compose

    from ...transforms import ZeroBackgroundd

    return Compose([ZeroBackgroundd(keys="pred", threshold=threshold, foreground_key="inputs")])


def normalize(arrays: Sequence[np.ndarray], lower: float = 0.1, upper: float = 99.9) -> np.ndarray:
    """The preprocessing's normalisation for arrays already in memory (:func:`inference_preprocessing`):
    ``(C, *S)`` float32 in [0, 1]."""
    image = np.stack([np.asarray(a, np.float32) for a in arrays])
    return np.asarray(inference_preprocessing(lower, upper)({"image": image})["image"], dtype=np.float32)
