"""Training seg2med models: the training set, the loss of a batch, validation, and the bundle's trainer
(:class:`Seg2MedTrainer`, the core :class:`~medfusion.core.training.Trainer` with those pieces).

Cases are folders of NIfTI files (:mod:`.cases`), the layout ``medfusion phantoms --kind abdomen`` writes.  Every
step draws, per batch element, one of the model's tasks (its class label), so one network learns mask → CT/T1/T2
and the conversions between them.
"""

from __future__ import annotations

import functools
from typing import Sequence

import numpy as np
import torch

from ...core.data import TransformDataset
from ...core.training import Trainer
from .cases import case_datalist
from .model import Seg2MedModel
from .transforms import CHANNELS, training_preprocessing

__all__ = ["case_datalist", "Seg2MedTrainingSet", "task_channels", "seg2med_loss", "organ_mean_loss",
           "Seg2MedValidation", "Seg2MedTrainer"]


class Seg2MedTrainingSet(TransformDataset):
    """Case folders through :func:`~.transforms.training_preprocessing` (loaded, prior images made and windowed
    once, cached; a random axial slice (2D) or patch (3D) per access)."""

    def __init__(self, dataset_dir, *, dims: int, divisor: int, preprocessing: dict, task: str = "total",
                 patch_size: Sequence[int] | None = None, tissue_dropout: float = 0.5, fov_augment: float = 0.0,
                 fov_scale: str = "linear", mask_targets: Sequence[str] = (), keep_labels: bool = False,
                 seed: int = 0, cache: bool = True):
        items = case_datalist(dataset_dir)
        transform = training_preprocessing(preprocessing, dims=dims, divisor=divisor, task=task,
                                           patch_size=patch_size, has_body="body" in items[0],
                                           has_tissues="tissues" in items[0], tissue_dropout=tissue_dropout,
                                           fov_augment=fov_augment, fov_scale=fov_scale,
                                           mask_targets=mask_targets, keep_labels=keep_labels, seed=seed)
        super().__init__(items, transform, cache=cache)

    @classmethod
    def for_model(cls, model: Seg2MedModel, dataset_dir, *, task: str = "total",
                  patch_size: Sequence[int] | None = None, tissue_dropout: float = 0.5, fov_augment: float = 0.0,
                  fov_scale: str = "linear", mask_targets: Sequence[str] = (), keep_labels: bool = False, seed: int = 0,
                  cache: bool = True) -> "Seg2MedTrainingSet":
        """The training set with ``model``'s dimensionality, divisor, windows and prior table (``keep_labels``: each
        item also has its label map, for :func:`seg2med_loss`'s ``organ_weight``)."""
        return cls(dataset_dir, dims=model.dims, divisor=model.divisor, preprocessing=model.preprocessing,
                   task=task, patch_size=patch_size, tissue_dropout=tissue_dropout, fov_augment=fov_augment,
                   fov_scale=fov_scale, mask_targets=mask_targets, keep_labels=keep_labels, seed=seed, cache=cache)



def task_channels(source: str, target: str) -> tuple[int, int]:
    """Indices in :data:`~.transforms.CHANNELS` of a task's condition and target."""
    cond = f"prior_{target}" if source == "prior" else source
    return CHANNELS.index(cond), CHANNELS.index(target)


def _split(model: Seg2MedModel, image: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    pairs = [task_channels(*model.tasks[int(k)]) for k in labels.tolist()]
    idx = torch.tensor(pairs, device=image.device)
    rows = torch.arange(image.shape[0], device=image.device)
    return image[rows, idx[:, 1]][:, None], image[rows, idx[:, 0]][:, None]


def seg2med_loss(model: Seg2MedModel, batch: dict, *, generator: torch.Generator, device, precision: str,
                 small_t_fraction: float = 0.0, small_t_max: int = 100, organ_weight: float = 0.0) -> torch.Tensor:
    """The loss of a batch ``{"image": (B, 6, X, Y, Z')}``: a task per element (drawn at random, told to the
    network as its class label), MSE on the model's prediction type (ε for the published 2D model).
    ``small_t_fraction``, ``small_t_max``: how timesteps are drawn (:meth:`~medfusion.core.diffusion.
    ConditionalDiffusion.forward_train`; 0: uniform, as published).
    ``organ_weight``: plus this times :func:`organ_mean_loss` of ``x̂₀`` (the batch needs ``"labels"``, the label
    maps: :class:`Seg2MedTrainingSet` with ``keep_labels``; 0: none, as published)."""
    image = batch["image"].to(device)
    labels_map = batch.get("labels") if organ_weight else None
    if organ_weight and labels_map is None:
        raise ValueError("organ_weight needs the label maps in the batch: build the training set with keep_labels")
    if model.dims == 2:
        image = image[..., 0]  # (B, 6, X, Y): one axial slice each
        labels_map = None if labels_map is None else labels_map[..., 0]
    labels = torch.randint(0, len(model.tasks), (image.shape[0],), generator=generator).to(device)
    target, cond = _split(model, image, labels)
    class_labels = labels if len(model.tasks) > 1 else None
    o = model.diffusion.forward_train(target, cond, class_labels, generator=generator, precision=precision,
                                      small_t_fraction=small_t_fraction, small_t_max=small_t_max)
    loss = o.mse()
    if organ_weight:
        decode = model.diffusion.space.decode  # to image space (the 3D model diffuses Haar coefficients)
        loss = loss + float(organ_weight) * organ_mean_loss(decode(o.x0_hat.float()), decode(o.x0.float()),
                                                            labels_map.to(device))
    return loss


def organ_mean_loss(x0_hat: torch.Tensor, x0: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The mean, over every labelled structure of every image, of the squared difference between the means of
    ``x0_hat`` and ``x0`` inside it: each organ's mean intensity, small organs counting as much as large ones.
    ``x0_hat``, ``x0``: ``(B, 1, *S)`` in image space; ``labels``: ``(B, 1, *S)`` label maps (0: no structure)."""
    b = x0.shape[0]
    ids = labels.round().long().reshape(b, -1)
    k = int(ids.max()) + 1
    index = (ids + k * torch.arange(b, device=ids.device)[:, None]).reshape(-1)
    diff = (x0_hat - x0).reshape(-1)
    sums = torch.zeros(b * k, dtype=diff.dtype, device=diff.device).index_add_(0, index, diff)
    counts = torch.zeros(b * k, dtype=diff.dtype, device=diff.device).index_add_(0, index, torch.ones_like(diff))
    present = (counts > 0) & (torch.arange(b * k, device=ids.device) % k > 0)
    if not bool(present.any()):
        return diff.new_zeros(())
    return ((sums[present] / counts[present]) ** 2).mean()


class Seg2MedValidation:
    """Mean SSIM (3D, windowed [0, 1], :func:`medfusion.metrics.ssim`) of DDIM samples on the first ``cases`` cases
    of ``val_dir``, task ``i mod len(tasks)`` for case ``i``; cases are read once.

    With ``organ_tolerance_hu``, also CT from every one of those cases' label maps (:func:`.inference.generate`, on
    the case's own grid and body) and ``val_organ_hu``: the largest distance of a soft-tissue organ's mean from its
    prior value (:func:`.evaluation.organ_errors`), the measure of ``benchmarks/quality/bench_seg2med_grids.py``.
    The score that then chooses ``model.pt``, ``val_score``, is the SSIM less 0.01 per HU beyond the tolerance, so
    a checkpoint within it wins over any outside it that is less than that many hundredths of SSIM better."""

    def __init__(self, val_dir, cases: int = 2, steps: int = 10, organ_tolerance_hu: float | None = None) -> None:
        self.val_dir, self.cases, self.steps = val_dir, int(cases), int(steps)
        self.organ_tolerance_hu = None if organ_tolerance_hu is None else float(organ_tolerance_hu)
        self._volumes: list[np.ndarray] | None = None
        self._cases: list[dict] = []

    @property
    def metric(self) -> str:
        """The value that chooses ``model.pt``."""
        return "val_ssim" if self.organ_tolerance_hu is None else "val_score"

    def _load(self, model: Seg2MedModel) -> None:
        from .cases import load_case

        items = case_datalist(self.val_dir)[: self.cases]
        tf = training_preprocessing(model.preprocessing, dims=3, divisor=1, has_body="body" in items[0],
                                    has_tissues="tissues" in items[0], tissue_dropout=0.0)
        self._volumes = [tf(it)["image"].numpy() for it in items]
        if self.organ_tolerance_hu is not None:
            self._cases = [load_case(it) for it in items]

    def __call__(self, model: Seg2MedModel, device) -> dict:
        from ...metrics import ssim
        from .inference import translate

        if self._volumes is None:
            self._load(model)
        scores = []
        for i, image in enumerate(self._volumes):
            source, target = model.tasks[i % len(model.tasks)]
            c, t = task_channels(source, target)
            pred = translate(model, image[c], source, target, steps=self.steps, sampler="ddim", seed=i,
                             device=device)
            scores.append(ssim(pred, image[t], data_range=1.0))
        out = {"val_ssim": float(np.mean(scores)), "val_cases": len(scores)}
        if self.organ_tolerance_hu is not None:
            out["val_organ_hu"] = self._worst_organ(model, device)
            out["val_score"] = out["val_ssim"] - max(0.0, out["val_organ_hu"] - self.organ_tolerance_hu) / 100.0
        return out

    def _worst_organ(self, model: Seg2MedModel, device) -> float:
        import warnings

        from .evaluation import organ_errors
        from .inference import generate

        worst = 0.0
        for i, case in enumerate(self._cases):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # e.g. no tissue map
                ct = generate(model, case["labels"], "ct", body=case["body"], spacing=case["spacing"],
                              steps=self.steps, sampler="ddim", seed=i, device=device)
            errors = organ_errors(model, ct, case["labels"])
            worst = max([worst, *(abs(v) for v in errors.values())])
        return worst


class Seg2MedTrainer(Trainer):
    """The core trainer with the seg2med loss and validation (the bundle's ``train.json`` builds this).

    Args:
        model: a :class:`Seg2MedModel`.
        train_data: e.g. :meth:`Seg2MedTrainingSet.for_model`.
        val_dir: cases for validation (``None``: none; ``model.pt`` is then the last step).
        val_cases, val_sampling_steps: validation size and DDIM steps per sample.
        val_organ_tolerance_hu: also score organ means in CT from the validation label maps and choose ``model.pt``
            by SSIM less the excess beyond this tolerance (:class:`Seg2MedValidation`; ``None``: by SSIM alone).
        small_t_fraction, small_t_max: timestep emphasis of the default loss (:func:`seg2med_loss`; 0: uniform).
        loss_fn: the loss (the bundle's ``loss`` component: :func:`seg2med_loss` with its timestep emphasis).
        Other arguments: :class:`~medfusion.core.training.Trainer`.
    """

    def __init__(self, model: Seg2MedModel, train_data, output_dir, *, val_dir=None, val_cases: int = 2,
                 val_sampling_steps: int = 10, val_organ_tolerance_hu: float | None = None,
                 small_t_fraction: float = 0.0, small_t_max: int = 100, loss_fn=None, **kwargs) -> None:
        validate = None if val_dir is None else Seg2MedValidation(val_dir, val_cases, val_sampling_steps,
                                                                  val_organ_tolerance_hu)
        if loss_fn is not None and small_t_fraction:
            raise ValueError("give the timestep emphasis (small_t_fraction, small_t_max) to the loss_fn itself")
        loss = loss_fn or functools.partial(seg2med_loss, small_t_fraction=small_t_fraction, small_t_max=small_t_max)
        super().__init__(model, train_data, output_dir, loss_fn=loss, validate_fn=validate,
                         val_metric="val_ssim" if validate is None else validate.metric, **kwargs)
