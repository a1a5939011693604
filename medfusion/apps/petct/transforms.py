"""PET/CT pre- and post-processing as MONAI transforms: one definition for training, inference and the bundle.

Inference (:func:`~.inference.segment`), on PET and CT already on the model's working grid::

    preprocessing   {"image": (2, X, Y, Z) PET (SUV), CT (HU)}
      PetCtNormalized  SUV / suv_scale clipped to [0, suv_clip / suv_scale]; the CT window mapped to [−1, 1]
    postprocessing  {"pred": (2, X, Y, Z) mean GTVp, GTVn probabilities over the ensemble, "inputs": the raw PET/CT}
      LabelMapd        "label" (1, X, Y, Z) uint8: the most probable class (0 background, 1 GTVp, 2 GTVn)

:func:`inference_preprocessing` (of a model's saved settings) and :func:`inference_postprocessing` build the
model's own; the bundle's ``preprocessing`` and ``postprocessing`` are these lists, so a user changes the CT window
(``--preprocessing#transforms#0#ct_window "[-200, 300]"``) or appends a transform (e.g. MONAI's
``KeepLargestConnectedComponentd`` on ``"label"``). A postprocessing without a ``"label"`` gets the label map of
its ``"pred"``; the uncertainty (entropy) is that of the final ``"pred"``, the variance the ensemble's.

Not transforms, for a reason: reading the files and resampling PET and CT onto the working grid
(:func:`~.geometry.prepare_case`: it needs the files' affines, and the working grid sets the network's input size)
before the preprocessing, and bringing the results back onto the CT grid (:func:`~.geometry.to_ct_grid`) after the
postprocessing.

Training: :class:`WorkingGridd` (a case's files onto the working grid, then the same preprocessing) and the training
``Compose`` (patches centred on tumour two times in three, left–right flips, optional augmentations).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
from monai.config import KeysCollection
from monai.transforms import MapTransform, Transform

from ...core.processing import as_numpy, preprocessed
from ...errors import InputError
from ...io import load_volume
from ...transforms._dictionary import KeyWise
from .geometry import prepare_case, to_working_grid

__all__ = ["PetCtNormalize", "PetCtNormalized", "LabelMapd", "inference_preprocessing", "inference_postprocessing",
           "stacked_pet_ct", "preprocess", "class_distribution", "label_map", "WorkingGridd", "working_case",
           "training_preprocessing"]


class PetCtNormalize(Transform):
    """PET (SUV) and CT (HU) stacked ``(2, *S)`` → float32: SUV / ``suv_scale`` clipped to
    [0, ``suv_clip`` / ``suv_scale``], and the CT window ``ct_window`` (HU) mapped to [−1, 1] (clipped)."""

    def __init__(self, suv_scale: float = 10.0, suv_clip: float = 30.0,
                 ct_window: Sequence[float] = (-250.0, 250.0)) -> None:
        if not suv_scale > 0 or not suv_clip > 0 or len(ct_window) != 2 or not ct_window[1] > ct_window[0]:
            raise InputError(f"bad intensity settings: suv_scale {suv_scale}, suv_clip {suv_clip}, "
                             f"ct_window {tuple(ct_window)}")
        self.suv_scale, self.suv_clip = float(suv_scale), float(suv_clip)
        self.ct_window = (float(ct_window[0]), float(ct_window[1]))

    def __call__(self, img) -> np.ndarray:
        x = np.asarray(as_numpy(img), dtype=np.float32)
        if x.ndim != 4 or x.shape[0] != 2:
            raise InputError(f"expected PET and CT stacked as (2, X, Y, Z), got shape {x.shape}")
        lo, hi = self.ct_window
        pet_n = np.clip(x[0], 0.0, self.suv_clip) / self.suv_scale
        ct_n = np.clip((x[1] - lo) / (hi - lo), 0.0, 1.0) * 2.0 - 1.0
        return np.stack([pet_n, ct_n]).astype(np.float32)


class PetCtNormalized(KeyWise):
    """Dictionary wrapper of :class:`PetCtNormalize`."""

    def __init__(self, keys: KeysCollection, suv_scale: float = 10.0, suv_clip: float = 30.0,
                 ct_window: Sequence[float] = (-250.0, 250.0), allow_missing_keys: bool = False) -> None:
        super().__init__(keys, PetCtNormalize(suv_scale, suv_clip, ct_window), allow_missing_keys)


def class_distribution(prob: np.ndarray) -> np.ndarray:
    """Per-voxel distribution over (background, GTVp, GTVn) from the two class probabilities ``(2, *S)``:
    ``(max(1 − p₁ − p₂, 0), p₁, p₂)`` normalised to sum 1 → ``(3, *S)`` float32."""
    p = np.clip(np.asarray(prob, dtype=np.float64), 0.0, 1.0)
    q = np.concatenate([np.clip(1.0 - p.sum(axis=0, keepdims=True), 0.0, 1.0), p])
    q /= np.maximum(q.sum(axis=0, keepdims=True), 1e-12)
    return q.astype(np.float32)


def label_map(prob: np.ndarray) -> np.ndarray:
    """The most probable class per voxel (ties → the lower label), uint8: 0 background, 1 GTVp, 2 GTVn."""
    return np.argmax(class_distribution(prob), axis=0).astype(np.uint8)


class LabelMapd(MapTransform):
    """The GTVp and GTVn probabilities ``(2, *S)`` of ``keys`` → ``label_key``: their :func:`label_map` as
    ``(1, *S)`` uint8 (channels first, as MONAI's label transforms take it)."""

    def __init__(self, keys: KeysCollection = "pred", label_key: str = "label",
                 allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.label_key = label_key

    def __call__(self, data):
        d = dict(data)
        for key in self.key_iterator(d):
            d[self.label_key] = label_map(as_numpy(d[key]))[None]
        return d


def inference_preprocessing(settings: Mapping):
    """The ``Compose`` from ``{"image": PET (SUV), CT (HU) (2, X, Y, Z)}`` to the network's conditions, with the
    intensity settings of a model's ``preprocessing`` (``suv_scale``, ``suv_clip``, ``ct_window``)."""
    from monai.transforms import Compose

    return Compose([PetCtNormalized(keys="image", suv_scale=settings["suv_scale"], suv_clip=settings["suv_clip"],
                                    ct_window=settings["ct_window"])])


def inference_postprocessing():
    """The ``Compose`` from ``{"pred": the ensemble's mean probabilities (2, X, Y, Z), ...}`` to the label map
    ``"label"`` (1, X, Y, Z)."""
    from monai.transforms import Compose

    return Compose([LabelMapd(keys="pred", label_key="label")])


def stacked_pet_ct(pet_suv: np.ndarray, ct_hu: np.ndarray) -> np.ndarray:
    """PET and CT on one grid → ``(2, X, Y, Z)`` float32, the preprocessing's ``"image"``."""
    pet = np.asarray(pet_suv, dtype=np.float32)
    ct = np.asarray(ct_hu, dtype=np.float32)
    if pet.ndim != 3 or pet.shape != ct.shape:
        raise InputError(f"PET and CT must be 3D volumes on one grid, got shapes {pet.shape} and {ct.shape}")
    return np.stack([pet, ct])


def preprocess(raw: np.ndarray, settings: Mapping, preprocessing=None) -> np.ndarray:
    """The network's conditions ``(2, X, Y, Z)`` float32 from :func:`stacked_pet_ct`'s ``raw``, by
    ``preprocessing`` (default: :func:`inference_preprocessing` of ``settings``, a model's)."""
    pre = inference_preprocessing(settings) if preprocessing is None else preprocessing
    return preprocessed(pre, raw)


class WorkingGridd(MapTransform):
    """``{"pet", "ct", "label"}`` file paths → ``{"image": (2, X, Y, Z)`` PET/CT normalised by
    :func:`inference_preprocessing`, ``"label": (1, X, Y, Z)`` uint8} on the working grid of ``preprocessing``
    (sizes a multiple of ``divisor``)."""

    def __init__(self, preprocessing: dict, divisor: int) -> None:
        super().__init__(keys=["pet", "ct", "label"])
        self.preprocessing, self.divisor = dict(preprocessing), int(divisor)
        self.normalise = inference_preprocessing(self.preprocessing)

    def __call__(self, data):
        case, label = working_case(data, self.preprocessing, self.divisor)
        image = self.normalise({"image": stacked_pet_ct(case.pet_suv, case.ct_hu)})["image"]
        return {"image": image, "label": label[None]}


def working_case(item: dict, preprocessing: dict, divisor: int):
    """A case ``{"pet", "ct", "label"}`` on the working grid: its :class:`~.geometry.WorkingCase` and the label
    map (uint8, nearest neighbour, 0 outside the labelled CT)."""
    case = prepare_case(item["pet"], item["ct"], preprocessing, divisor)
    label = to_working_grid(load_volume(item["label"]), case.grid, order=0, fill=0.0)
    return case, np.rint(label).astype(np.uint8)


def _augmentations():
    """What the HECKTOR 2022 winners' MONAI SegResNet training adds (scaled to the phantoms): a random rotation about
    the head's long axis (±15°) and scaling (±10 %), intensity scaling and shift (±10 % of the normalised range) and
    a little Gaussian noise."""
    from monai.transforms import RandAffined, RandGaussianNoised, RandScaleIntensityd, RandShiftIntensityd

    return [RandAffined(keys=["image", "label"], prob=0.5, rotate_range=(0.0, 0.0, 0.26), scale_range=0.1,
                        mode=("bilinear", "nearest"), padding_mode="border"),
            RandScaleIntensityd(keys="image", factors=0.1, prob=0.5),
            RandShiftIntensityd(keys="image", offsets=0.1, prob=0.5),
            RandGaussianNoised(keys="image", prob=0.2, std=0.05)]


def training_preprocessing(preprocessing: dict, divisor: int, patch_size: Sequence[int] | None = None,
                           seed: int | None = None, augment: bool = False):
    """The MONAI ``Compose``: :class:`WorkingGridd` → (``patch_size``: ``RandCropByPosNegLabeld``, 2 tumour : 1
    background) → ``RandFlipd`` left–right → (``augment``: :func:`_augmentations`) → ``EnsureTyped`` float32."""
    from monai.transforms import Compose, EnsureTyped, RandCropByPosNegLabeld, RandFlipd

    steps = [WorkingGridd(preprocessing, divisor)]
    if patch_size is not None:
        if any(int(p) % divisor for p in patch_size):
            raise InputError(f"patch_size {list(patch_size)} must be multiples of the network's divisor {divisor}")
        steps.append(RandCropByPosNegLabeld(keys=["image", "label"], label_key="label",
                                            spatial_size=[int(p) for p in patch_size], pos=2, neg=1,
                                            num_samples=1, allow_smaller=False))
    steps += [RandFlipd(keys=["image", "label"], prob=0.5, spatial_axis=0), *(_augmentations() if augment else []),
              EnsureTyped(keys=["image", "label"], dtype=np.float32, track_meta=False)]
    compose = Compose(steps)
    if seed is not None:
        compose.set_random_state(seed=seed)
    return compose
