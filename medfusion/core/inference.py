"""Inference modes: plain functions over a "condition → sample" callable.

Each mode takes a callable that maps a batch of conditioning images to samples (usually a closure around
:meth:`ConditionalDiffusion.sample`) and arranges the data around it:

- :func:`whole_volume` — the whole image at once, padded to the network's divisor (MONAI ``DivisiblePad``) and
  cropped back by the pad's own inverse (MONAI's invertible transforms), so no voxel is lost or shifted;
- :func:`ensemble` — N samples with seeds ``seed … seed + N − 1`` → mean, variance and (optionally) the samples;
- :func:`slicewise` — a 2D model over a volume's slices along one axis, in batches;
- :func:`sliding_window` — overlapping tiles blended with Gaussian weights (MONAI ``sliding_window_inference``),
  for images too large for one pass (whole-slide histology).

Shapes: images are channel-first without batch, ``(C, *S)``; the callables see batches ``(B, C, *S)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch

__all__ = ["whole_volume", "ensemble", "EnsembleResult", "slicewise", "sliding_window", "progress_over"]

Sampler = Callable[[torch.Tensor], torch.Tensor]


def whole_volume(sample_fn: Sampler, image: torch.Tensor, divisor: int | Sequence[int], *,
                 mode: str = "constant") -> torch.Tensor:
    """Run ``sample_fn`` once on the whole image, zero-padded symmetrically (the odd voxel after) to multiples of
    ``divisor``, and crop its output back with the inverse of that padding.

    Args:
        sample_fn: ``(1, C, *S') → (1, C_out, *S')``.
        image: ``(C, *S)`` tensor (any device).
        divisor: every padded spatial size is a multiple of it (e.g. :attr:`CWDMModel.divisor`), or one divisor
            per spatial axis (e.g. ``(16, 16, 1)`` for a 2D model run slice by slice).
        mode: padding mode (``"constant"`` pads zeros).
    Returns:
        ``(C_out, *S)``, on the device ``sample_fn`` returned.
    """
    from monai.data import MetaTensor
    from monai.transforms import DivisiblePad

    k = int(divisor) if isinstance(divisor, int) else [int(d) for d in divisor]
    pad = DivisiblePad(k, method="symmetric", mode=mode)
    padded = pad(MetaTensor(torch.as_tensor(image)))
    out = sample_fn(padded.as_tensor()[None])
    if out.ndim != padded.ndim + 1 or tuple(out.shape[2:]) != tuple(padded.shape[1:]):
        raise ValueError(f"sample_fn returned shape {tuple(out.shape)} for input {(1, *padded.shape)}")
    restored = pad.inverse(MetaTensor(out[0], applied_operations=list(padded.applied_operations)))
    return restored.as_tensor()


@dataclass
class EnsembleResult:
    """Per-voxel statistics of ``n`` samples: ``mean`` and population ``variance`` (ddof 0; 0 for one sample),
    and the samples themselves when kept (a list of ``n`` tensors)."""

    mean: torch.Tensor
    variance: torch.Tensor
    n: int
    samples: list[torch.Tensor] | None = None


def ensemble(sample_fn: Callable[[int], torch.Tensor], n: int, *, seed: int = 0,
             keep_samples: bool = False) -> EnsembleResult:
    """Draw ``n`` samples, ``sample_fn(seed + i)`` for ``i < n``, and accumulate mean and variance in float64
    (Welford's algorithm: the samples need not be held in memory).

    Args:
        sample_fn: seed → one sample (any shape, the same for every seed).
        n: number of samples (≥ 1).
        seed: seed of the first sample.
        keep_samples: also return every sample.
    """
    if n < 1:
        raise ValueError(f"an ensemble needs at least one sample, got {n}")
    mean = m2 = None
    kept = [] if keep_samples else None
    for i in range(n):
        x = sample_fn(seed + i)
        if kept is not None:
            kept.append(x)
        x = x.double()
        if mean is None:
            mean, m2 = x.clone(), torch.zeros_like(x)
            continue
        delta = x - mean
        mean += delta / (i + 1)
        m2 += delta * (x - mean)
    return EnsembleResult(mean=mean.float(), variance=(m2 / n).float(), n=n, samples=kept)


def slicewise(fn2d: Sampler, volume: torch.Tensor, *, axis: int = 2, batch_size: int = 16) -> torch.Tensor:
    """Apply a 2D callable to every slice of a volume along spatial ``axis``, ``batch_size`` slices at a time.

    Args:
        fn2d: ``(B, C, H, W) → (B, C_out, H, W)``.
        volume: ``(C, X, Y, Z)``.
        axis: the spatial axis the slices are taken across (0, 1 or 2; 2 = axial for RAS volumes).
    Returns:
        ``(C_out, X, Y, Z)``.
    """
    if volume.ndim != 4:
        raise ValueError(f"expected a volume (C, X, Y, Z), got shape {tuple(volume.shape)}")
    if axis not in (0, 1, 2):
        raise ValueError(f"axis must be 0, 1 or 2, got {axis}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    slices = volume.movedim(axis + 1, 0)  # (N, C, H, W)
    outs = [fn2d(slices[i: i + batch_size]) for i in range(0, slices.shape[0], batch_size)]
    return torch.cat(outs, dim=0).movedim(0, axis + 1)


def sliding_window(fn: Sampler, image: torch.Tensor, roi_size: Sequence[int], *, overlap: float = 0.25,
                   batch_size: int = 4, mode: str = "gaussian", device: str | torch.device | None = None,
                   progress: bool = False) -> torch.Tensor:
    """Apply ``fn`` to overlapping tiles of ``roi_size`` and blend them (MONAI ``sliding_window_inference``).

    Tiles run on ``fn``'s device; the blended output is accumulated on ``device`` (default: the image's), so a
    large image can stay in CPU memory while tiles run on a GPU — memory on the GPU is bounded by
    ``batch_size`` tiles.

    Args:
        fn: ``(B, C, *roi) → (B, C_out, *roi)``.
        image: ``(C, *S)``.
        roi_size: tile size; smaller images are padded.
        overlap: fraction of a tile shared with its neighbour (0 … < 1).
        mode: ``"gaussian"`` (weights fall off towards tile borders, no seams) or ``"constant"``.
    Returns:
        ``(C_out, *S)``.
    """
    from monai.inferers import sliding_window_inference

    out = sliding_window_inference(
        torch.as_tensor(image)[None], roi_size=list(roi_size), sw_batch_size=batch_size, predictor=fn,
        overlap=overlap, mode=mode, device=device, progress=progress,
    )
    return torch.as_tensor(out)[0]


def progress_over(progress: Callable[[int, int], None], parts: int) -> Callable[[int, int], None]:
    """One progress callback ``(done, total)`` over ``parts`` runs of a loop that each report ``(i, n)`` up to
    ``(n, n)`` (e.g. the sampling loop over batches of slices, or over the samples of an ensemble)."""
    done = 0

    def update(i: int, n: int) -> None:
        nonlocal done
        progress(done * n + i, parts * n)
        if i >= n:
            done += 1

    return update
