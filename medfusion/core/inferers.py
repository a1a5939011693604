"""Inferers: how a trained diffusion model is sampled for one image — MONAI ``Inferer`` components of the bundles.

An inferer holds what a user swaps at inference time: the sampler (``ddim`` or ``ddpm``), its ``steps``, the seed,
the device and the precision, and how the image is arranged around the network (:mod:`.inference`):

- :class:`WholeVolumeInferer` — the whole image at once, padded to the network's divisor (cWDM, PET/CT, 3D seg2med);
- :class:`SliceInferer` — a 2D model over a volume's axial slices, a batch at a time (2D seg2med);
- :class:`EnsembleInferer` — ``samples`` whole-volume samples with seeds ``seed … seed + samples − 1``, their mean
  and variance (PET/CT's uncertainty);
- :class:`SlidingWindowInferer` — overlapping tiles blended with Gaussian weights, for images larger than the
  network was trained on (whole-slide histology).

Every inferer is called as ``inferer(inputs, model, labels=None)``: ``inputs`` is the condition ``(C, *S)`` in the
network's units, ``model`` an application's :class:`~medfusion.core.model.DiffusionModel` (its sampling options are
checked against it before any work), ``labels`` the class labels of a class-conditioned network (one per image);
it returns the sample ``(C_out, *S)`` as a float32 CPU tensor (:class:`EnsembleInferer`: an
:class:`~.inference.EnsembleResult`). The applications' ``inference`` functions take an inferer, and the bundles'
``inference.json`` build one (``--inferer#steps 100``, ``--inferer#_target_ medfusion.core.inferers.SliceInferer``).
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from monai.inferers import Inferer

from ..errors import InputError
from .inference import EnsembleResult, ensemble, progress_over, sliding_window, slicewise, whole_volume

__all__ = ["DiffusionInferer", "WholeVolumeInferer", "SliceInferer", "EnsembleInferer", "SlidingWindowInferer",
           "inferer_for"]

Progress = Callable[[int, int], None]


class DiffusionInferer(Inferer):
    """Base class: the sampling settings, checked against the model, and one sample of the whole image
    (subclasses arrange the image differently by overriding :meth:`arrange`)."""

    def __init__(self, sampler: str = "ddim", steps: int = 50, seed: int = 0, device="cpu",
                 precision: str = "float32", timestep_spacing: str = "uniform", variance: str = "fixed_large",
                 padding_mode: str = "constant", progress: Progress | None = None) -> None:
        super().__init__()
        self.padding_mode = padding_mode  # of the padding to the divisor: "constant" (zeros) or e.g. "reflect"
        self.sampler, self.steps, self.seed, self.device = sampler, steps, seed, device
        self.precision, self.timestep_spacing, self.variance = precision, timestep_spacing, variance
        self.progress = progress  # (done, total) over every step: e.g. the command's progress bar

    def check(self, model) -> torch.device:
        """Check the settings against ``model`` (:meth:`~medfusion.core.model.DiffusionModel.check_sampling`);
        the torch device."""
        return model.check_sampling(steps=self.steps, sampler=self.sampler, seed=self.seed, device=self.device,
                                    precision=self.precision, timestep_spacing=self.timestep_spacing)

    def sample_function(self, model, labels: torch.Tensor | None, generator: torch.Generator,
                        progress: Progress | None) -> Callable[[torch.Tensor], torch.Tensor]:
        """``(B, C, *S) → (B, C_out, *S)``: one sample per image of a batch, on the batch's device."""
        def sample(batch: torch.Tensor) -> torch.Tensor:
            lab = None if labels is None else labels.to(batch.device).reshape(-1)[:1].expand(batch.shape[0])
            return model.diffusion.sample(batch, class_labels=lab, sampler=self.sampler, steps=self.steps,
                                          timestep_spacing=self.timestep_spacing, variance=self.variance,
                                          generator=generator, progress=progress, precision=self.precision)
        return sample

    def __call__(self, inputs, model, labels: torch.Tensor | None = None, progress: Progress | None = None,
                 **kwargs):
        """Sample ``model`` for ``inputs`` ``(C, *S)`` (the settings checked first); ``progress``: ``(done, total)``
        over every step (default: the inferer's); ``kwargs`` go to :meth:`arrange` (:class:`EnsembleInferer`:
        ``transform``)."""
        dev = self.check(model)
        model.to(dev).network.eval()
        x = torch.as_tensor(inputs, dtype=torch.float32).to(dev)
        with torch.no_grad():
            return self.arrange(x, model, labels, dev, progress if progress is not None else self.progress,
                                **kwargs)

    def arrange(self, x: torch.Tensor, model, labels, dev, progress: Progress | None):
        sample = self.sample_function(model, labels, torch.Generator().manual_seed(self.seed), progress)
        return whole_volume(sample, x, model.divisor, mode=self.padding_mode).float().cpu()


class WholeVolumeInferer(DiffusionInferer):
    """The whole image at once (no patches), padded to the network's divisor and cropped back."""


class SliceInferer(DiffusionInferer):
    """A 2D model over the axial slices (the last axis) of a volume ``(C, X, Y, Z)``, ``batch_size`` slices at a
    time, one seed for the whole volume; in-plane padding to the divisor."""

    def __init__(self, *args, batch_size: int = 16, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise InputError(f"batch_size must be an integer of at least 1, got {batch_size!r}")
        self.batch_size = batch_size

    def arrange(self, x: torch.Tensor, model, labels, dev, progress: Progress | None):
        if x.ndim != 4:
            raise InputError(f"slice-wise inference needs a volume (C, X, Y, Z), got shape {tuple(x.shape)}")
        if progress is not None:  # one bar over every batch of slices
            progress = progress_over(progress, -(-x.shape[3] // self.batch_size))
        sample = self.sample_function(model, labels, torch.Generator().manual_seed(self.seed), progress)
        d = model.divisor
        return whole_volume(lambda v: slicewise(sample, v[0], axis=2, batch_size=self.batch_size)[None], x,
                            (d, d, 1), mode=self.padding_mode).float().cpu()


class EnsembleInferer(DiffusionInferer):
    """``samples`` whole-image samples, sample ``i`` with seed ``seed + i`` (a CPU generator: the same result on
    any device up to rounding), each through the call's ``transform`` (e.g. the application's mask channels →
    probabilities) before their per-voxel mean and variance are accumulated; returns an
    :class:`~.inference.EnsembleResult` of CPU tensors."""

    def __init__(self, *args, samples: int = 5, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
            raise InputError(f"samples must be an integer ≥ 1, got {samples!r}")
        self.samples = samples

    def arrange(self, x: torch.Tensor, model, labels, dev, progress: Progress | None,
                transform: Callable[[torch.Tensor], torch.Tensor] | None = None) -> EnsembleResult:
        progress = None if progress is None else progress_over(progress, self.samples)

        def one(seed: int) -> torch.Tensor:
            sample = self.sample_function(model, labels, torch.Generator().manual_seed(seed), progress)
            y = whole_volume(sample, x, model.divisor, mode=self.padding_mode).float()
            return (y if transform is None else transform(y)).cpu()

        return ensemble(one, self.samples, seed=self.seed)


class SlidingWindowInferer(DiffusionInferer):
    """Overlapping tiles of ``roi_size`` blended with Gaussian weights (MONAI ``sliding_window_inference``); tiles
    run on the device, the blended image stays in CPU memory. ``overlap``: the fraction of a tile shared with its
    neighbour. An image no larger than one tile runs whole (padded to the divisor by ``padding_mode``)."""

    def __init__(self, *args, roi_size: Sequence[int] = (256, 256), overlap: float = 0.25, batch_size: int = 4,
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if not 0.0 <= float(overlap) < 1.0:
            raise InputError(f"overlap must be a fraction in [0, 1), got {overlap!r}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise InputError(f"batch_size must be an integer of at least 1, got {batch_size!r}")
        self.roi_size, self.overlap, self.batch_size = [int(v) for v in roi_size], float(overlap), int(batch_size)

    def arrange(self, x: torch.Tensor, model, labels, dev, progress: Progress | None):
        if all(s <= r for s, r in zip(x.shape[1:], self.roi_size)):
            return super().arrange(x, model, labels, dev, progress)
        sample = self.sample_function(model, labels, torch.Generator().manual_seed(self.seed), progress)

        def on_device(batch: torch.Tensor) -> torch.Tensor:
            return sample(batch.to(dev)).to(batch.device)

        return sliding_window(on_device, x.cpu(), self.roi_size, overlap=self.overlap, batch_size=self.batch_size,
                              mode="gaussian", device="cpu").float()


def inferer_for(inferer: DiffusionInferer | None, default: Callable[..., DiffusionInferer],
                **settings) -> DiffusionInferer:
    """``inferer`` itself, or — when ``None`` — ``default(**settings)`` (an application's ``default_inferer`` and
    the sampling keyword arguments of its inference functions: ``steps``, ``sampler``, ``seed``, ``device``,
    ``precision``, ...). Giving both an inferer and settings is an error: the inferer holds them."""
    if inferer is None:
        return default(**settings)
    if settings:
        raise InputError(f"give the sampling settings to the inferer, not beside it: {', '.join(sorted(settings))}")
    if not isinstance(inferer, DiffusionInferer):
        raise InputError(f"inferer must be a medfusion.core.inferers.DiffusionInferer, got {type(inferer).__name__}")
    return inferer
