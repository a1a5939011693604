"""seg2med's MONAI transforms: one ``Compose`` from a case's files to the training channels.

Training reads every case through :func:`training_preprocessing`; inference builds the same channels in memory
(:mod:`.inference`) with the same code: the model's grid and window (:class:`ModelGridd` runs
:mod:`.model_grid`), :func:`~.prior.make_prior` and the model's intensity windows.

Inference's ``preprocessing`` and ``postprocessing`` (MONAI dictionary ``Compose`` lists a user or the bundle can
swap; ``None``: the model's own, built here from the windows saved with its weights) are its per-voxel intensity
steps, on the model's grid:

* :func:`inference_preprocessing`: ``{"image": the condition (1, *W)}`` — the prior image (HU or MR signal) or the
  source image, already on the model's grid — → ``"image"`` windowed to [0, 1], clipped (``ScaleIntensityRanged``,
  as training windows each channel): a prior by the model's prior window of the target, an image by its
  modality's window;
* :func:`inference_postprocessing`: ``{"pred": the sample in [0, 1] (1, *W), "inputs": the raw condition}`` →
  ``"pred"`` in the target's units (HU or MR signal) by the target's window (``ScaleIntensityRanged`` from [0, 1]).

Which window a list needs depends on the task (source and target), so the default lists are built per task.
What stays in code (:mod:`.inference`), because it changes the grid or builds the condition rather than mapping
voxel values: the RAS+ reordering, the body contour, the prior image from the label map and table
(:func:`~.prior.make_prior`), the model's grid and its inverse (:mod:`.model_grid`: resampling, the centred window,
the edge continuation), the inferer, and — on the input grid, after the result is resampled back — air outside
the window and outside the body (the body mask is the input's; masking on the model's grid before resampling would
blur the skin and change the output).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from monai.transforms import MapTransform, Randomizable

from .prior import body_from_ct, make_prior
from .prior_tables import DEFAULT_PRIOR_TABLE, UNNAMED_TABLE

__all__ = ["CHANNELS", "CASE_FILES", "ModelGridd", "PriorImaged", "MaskByBodyd", "RandDropTissuesd", "RandFieldOfViewd",
           "training_preprocessing", "inference_preprocessing", "inference_postprocessing"]

#: the channels of a training item, in order: the prior images of the three targets, then the three images
CHANNELS = ("prior_ct", "prior_t1", "prior_t2", "ct", "t1", "t2")
#: the files of a training case (``body`` and ``tissues`` optional: without a body the CT's body contour is used)
CASE_FILES = ("mask", "body", "tissues", "ct", "t1", "t2")
_PLAIN = "_without_tissues"  # suffix of the prior images made without the tissue map
_LABEL_FILES = ("mask", "body", "tissues")
#: the body contour PriorImaged leaves in the item (for ``mask_targets``)
BODY_KEY = "body_contour"


class PriorImaged(MapTransform):
    """``mask`` (+ ``body``, + ``tissues``) → ``prior_ct``, ``prior_t1``, ``prior_t2`` (channel-first, like
    ``mask``): the prior images of :func:`~.prior.make_prior` from ``table``; without a ``body`` the CT's body contour
    (published rule) is used. With a tissue map it also makes each prior without it (``prior_ct_without_tissues``, ...),
    for :class:`RandDropTissuesd`."""

    def __init__(self, task: str = "total", table: str = DEFAULT_PRIOR_TABLE, mask_key: str = "mask", body_key: str = "body",
                 ct_key: str = "ct", tissues_key: str = "tissues"):
        super().__init__(keys=[mask_key])
        self.task, self.table, self.mask_key, self.body_key, self.ct_key = task, table, mask_key, body_key, ct_key
        self.tissues_key = tissues_key

    def __call__(self, data):
        d = dict(data)
        mask = d[self.mask_key]
        labels = np.rint(np.asarray(mask)[0]).astype(np.int64)
        if self.body_key in d:
            body = np.asarray(d[self.body_key])[0] > 0
        else:
            body = body_from_ct(np.asarray(d[self.ct_key])[0])
        tissues = np.rint(np.asarray(d[self.tissues_key])[0]).astype(np.int64) if self.tissues_key in d else None
        d[BODY_KEY] = torch.as_tensor(mask).clone().float()
        d[BODY_KEY][0] = torch.from_numpy(body.astype(np.float32))
        for target in ("ct", "t1", "t2"):
            for suffix, tis in (("", tissues), (_PLAIN, None)) if tissues is not None else (("", None),):
                out = torch.as_tensor(mask).clone().float()  # keeps a MetaTensor's affine
                out[0] = torch.from_numpy(make_prior(labels, target, task=self.task, body=body, tissues=tis,
                                                     table=self.table))
                d[f"prior_{target}{suffix}"] = out
        return d


class MaskByBodyd(MapTransform):
    """Each key (a windowed image, 0 = air) set to 0 outside the body contour that :class:`PriorImaged` left."""

    def __call__(self, data):
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = d[key] * (d[BODY_KEY] > 0)
        return d


class RandDropTissuesd(Randomizable, MapTransform):
    """With probability ``prob``, the prior images made without the tissue map replace those made with it (so a
    model learns both, as users may or may not have TotalSegmentator's ``tissue_types``); the spare copies go."""

    def __init__(self, keys: Sequence[str], prob: float = 0.5):
        MapTransform.__init__(self, keys, allow_missing_keys=True)
        self.prob = float(prob)
        self._drop = False

    def randomize(self, data=None) -> None:
        self._drop = self.R.random_sample() < self.prob

    def __call__(self, data):
        d = dict(data)
        self.randomize()
        for key in self.keys:
            plain = d.pop(f"{key}{_PLAIN}", None)
            if plain is not None and self._drop:
                d[key] = plain
        return d


class ModelGridd(MapTransform):
    """Each key (channel-first, RAS+ voxel order, e.g. after ``Orientationd``) on the model's grid and in its window,
    by :func:`~.model_grid.model_grid` and :meth:`~.model_grid.ModelGrid.to_model` — the code inference runs
    (:func:`.inference.generate`), so that training and inference give the network the same voxels. Label maps
    (``label_keys``) by nearest neighbour, images linearly; the window centred on ``body_key`` (else the CT's body
    contour, the published rule). The voxel spacing is read from the first key's affine. Returns plain tensors
    (the window's affine is not kept: nothing after this step needs it)."""

    def __init__(self, keys: Sequence[str], preprocessing: dict, *, body_key: str = "body", ct_key: str = "ct",
                 label_keys: Sequence[str] = _LABEL_FILES):
        super().__init__(keys)
        self.spacing, self.size = preprocessing.get("spacing"), preprocessing.get("size")
        self.body_key, self.ct_key, self.label_keys = body_key, ct_key, tuple(label_keys)

    def __call__(self, data):
        from .model_grid import model_grid

        d = dict(data)
        first = d[self.keys[0]]
        affine = np.asarray(first.affine, dtype=np.float64)
        spacing = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
        if self.body_key in d:
            body = np.asarray(d[self.body_key])[0] > 0
        else:
            body = body_from_ct(np.asarray(d[self.ct_key])[0])
        grid = model_grid(tuple(first.shape[1:]), spacing, self.spacing, self.size, body)
        for key in self.key_iterator(d):
            out = grid.to_model(np.asarray(d[key])[0], labels=key in self.label_keys)
            d[key] = torch.from_numpy(np.ascontiguousarray(out, dtype=np.float32))[None]
        return d


class RandFieldOfViewd(Randomizable, MapTransform):
    """With probability ``prob``, a slice ``(C, X, Y, 1)`` (in [0, 1], 0 = air) keeps only a random window of it,
    ``min_fraction`` to all of each side (0.15 of a 400 mm slice: 60 mm), moved to the centre with air around — a
    smaller or shifted field of view, the body cut by its edges, as scans other than the training phantoms show
    (:mod:`.model_grid` pads them with air the same way, after continuing the cut 3 voxels, which training does
    not). ``scale``: each side's length drawn uniformly (``"linear"``, as the 0.6.0 weights were trained) or its
    logarithm uniformly (``"log"``: a window below a third of the side as often as one above it)."""

    def __init__(self, keys: Sequence[str], prob: float = 0.5, min_fraction: float = 0.15, scale: str = "linear"):
        MapTransform.__init__(self, keys)
        if scale not in ("linear", "log"):
            raise ValueError(f"scale must be 'linear' or 'log', got {scale!r}")
        self.prob, self.min_fraction, self.scale = float(prob), float(min_fraction), scale
        self._window = None

    def _side(self, n: int) -> int:
        lo = max(1, int(np.ceil(self.min_fraction * n)))
        if self.scale == "linear":
            return int(self.R.randint(lo, n + 1))
        return int(min(n, np.floor(np.exp(self.R.uniform(np.log(lo), np.log(n + 1))))))

    def randomize(self, shape) -> None:
        self._window = None
        if self.R.random_sample() >= self.prob:
            return
        sizes = [self._side(n) for n in shape]
        self._window = [(int(self.R.randint(0, n - w + 1)), w) for n, w in zip(shape, sizes)]

    def __call__(self, data):
        d = dict(data)
        self.randomize(tuple(d[self.keys[0]].shape[1:3]))
        if self._window is None:
            return d
        (x0, w), (y0, h) = self._window
        for key in self.keys:
            img = d[key]
            out = img * 0
            cx, cy = (img.shape[1] - w) // 2, (img.shape[2] - h) // 2
            out[:, cx:cx + w, cy:cy + h] = img[:, x0:x0 + w, y0:y0 + h]
            d[key] = out
        return d


def training_preprocessing(preprocessing: dict, *, dims: int, divisor: int, task: str = "total",
                           patch_size: Sequence[int] | None = None, has_body: bool = True, has_tissues: bool = False,
                           tissue_dropout: float = 0.5, fov_augment: float = 0.0, fov_scale: str = "linear",
                           mask_targets: Sequence[str] = (), keep_labels: bool = False, seed: int | None = None):
    """The MONAI ``Compose`` from a case's files to ``{"image": (6, X, Y, Z')}`` in [0, 1], :data:`CHANNELS` order
    (with ``keep_labels``, also ``"labels"``: the label map ``(1, X, Y, Z')``, cropped and padded with the image).

    ``preprocessing``: a model's (``windows``; ``spacing``, ``size``, ``prior_table`` and ``prior_windows``,
    :class:`~.model.Seg2MedModel`). LoadVolumed → Orientationd RAS → ModelGridd (the model's spacing and window,
    centred on the body: the code inference runs) → PriorImaged → each channel windowed (``ScaleIntensityRanged``,
    clipped; a prior by its prior window) → MaskByBodyd (``mask_targets``) → RandDropTissuesd (with a tissue map:
    ``tissue_dropout``) → ConcatItemsd → random crop (2D: one whole axial slice, ``Z' = 1``, then RandFieldOfViewd
    with probability ``fov_augment`` and side lengths drawn on ``fov_scale``; 3D: ``patch_size`` or the whole
    volume) → DivisiblePadd (2D: in-plane only).
    """
    from monai.transforms import (
        Compose, ConcatItemsd, CopyItemsd, EnsureTyped, Orientationd, ScaleIntensityRanged, SelectItemsd,
    )

    from ...transforms import LoadVolumed

    windows = preprocessing["windows"]
    prior_windows = {**windows, **preprocessing.get("prior_windows", {})}
    files = [k for k in CASE_FILES if (has_body or k != "body") and (has_tissues or k != "tissues")]
    steps = [LoadVolumed(files), Orientationd(keys=files, axcodes="RAS", labels=(("L", "R"), ("P", "A"), ("I", "S"))),
             ModelGridd(files, preprocessing), PriorImaged(task, preprocessing.get("prior_table", UNNAMED_TABLE))]
    for key in CHANNELS:
        modality = key.replace("prior_", "")
        lo, hi = prior_windows[modality] if key.startswith("prior_") else windows[modality]
        keys = [key, f"{key}{_PLAIN}"] if has_tissues and key.startswith("prior_") else [key]
        steps.append(ScaleIntensityRanged(keys=keys, a_min=lo, a_max=hi, b_min=0.0, b_max=1.0, clip=True))
    if mask_targets:  # air (0) outside the body, as the authors' CT model's target
        steps.append(MaskByBodyd(keys=list(mask_targets)))
    if has_tissues:
        steps.append(RandDropTissuesd([k for k in CHANNELS if k.startswith("prior_")], prob=tissue_dropout))
    if keep_labels:
        steps.append(CopyItemsd(keys=["mask"], names=["labels"]))
    kept = ["image", "labels"] if keep_labels else ["image"]
    steps += [ConcatItemsd(keys=list(CHANNELS), name="image", dim=0), SelectItemsd(keys=kept)]
    steps += _crop_steps(kept, dims, divisor, patch_size, fov_augment, fov_scale)
    steps.append(EnsureTyped(keys=kept, dtype=np.float32, track_meta=False))
    compose = Compose(steps)
    if seed is not None:
        compose.set_random_state(seed=seed)
    return compose


def _crop_steps(keys: list[str], dims: int, divisor: int, patch_size: Sequence[int] | None, fov_augment: float,
                fov_scale: str = "linear") -> list:
    """2D: one whole axial slice (``Z' = 1``), then :class:`RandFieldOfViewd` with probability ``fov_augment``,
    padded in-plane to ``divisor``; 3D: ``patch_size`` (or the whole volume) padded to ``divisor``. The same crop for
    every key."""
    from monai.transforms import DivisiblePadd, RandSpatialCropd

    if dims == 2:
        steps = [RandSpatialCropd(keys=keys, roi_size=[-1, -1, 1], random_size=False)]
        if fov_augment > 0:
            steps.append(RandFieldOfViewd(keys=keys, prob=fov_augment, scale=fov_scale))
        return steps + [DivisiblePadd(keys=keys, k=[int(divisor), int(divisor), 1], method="symmetric")]
    steps = [] if patch_size is None else [RandSpatialCropd(keys=keys, roi_size=list(patch_size), random_size=False)]
    return steps + [DivisiblePadd(keys=keys, k=int(divisor), method="symmetric")]


def inference_preprocessing(window: Sequence[float]):
    """The ``Compose`` inference gives the condition on the model's grid: ``{"image": (1, *W)}`` raw (a prior image
    or a source image) → clipped to ``window`` (``[lo, hi]``) and scaled to [0, 1], as training windows it. A
    model's own: its prior window of the target for a prior (:meth:`~.model.Seg2MedModel.prior_window`), else the
    source's window (:meth:`~.model.Seg2MedModel.window`)."""
    from monai.transforms import Compose, ScaleIntensityRanged

    lo, hi = (float(v) for v in window)
    return Compose([ScaleIntensityRanged(keys="image", a_min=lo, a_max=hi, b_min=0.0, b_max=1.0, clip=True)])


def inference_postprocessing(window: Sequence[float]):
    """The ``Compose`` inference gives the sample on the model's grid: ``{"pred": (1, *W)}`` in [0, 1] (and
    ``"inputs"``, the raw condition) → ``"pred"`` in the target's units, [0, 1] mapped onto ``window``
    (``[lo, hi]``; a model's own: the target's window, :meth:`~.model.Seg2MedModel.window`)."""
    from monai.transforms import Compose, ScaleIntensityRanged

    lo, hi = (float(v) for v in window)
    return Compose([ScaleIntensityRanged(keys="pred", a_min=0.0, a_max=1.0, b_min=lo, b_max=hi, clip=False)])
