"""Feature networks for FID, each built from a weights file that the user supplies.

The three FID protocols of the field (2D seg2med, 2.5D MAISI, 3D WDM) each use a different
pretrained network. None ships inside a pip package, and this module never downloads anything and never
falls back to random weights: every extractor takes the path of a weights file, checks that it exists before
building anything, loads it with ``torch.load(path, map_location="cpu", weights_only=True)`` and refuses a
file whose keys or shapes do not match the network exactly (a wrong file must not silently give a
half-random network).

=====================  =======================================  ==========================================
name                   network / weights file                   features
=====================  =======================================  ==========================================
``inception2d``        ImageNet Inception-v3 (torchvision),     2048-d pool features of every axial slice
                       ``inception_v3_google-0cc3c7bd.pth``     (2D FID, seg2med)
``radimagenet2.5d``    RadImageNet ResNet-50,                   2048-d pooled features of the slices along
                       ``RadImageNet-ResNet50_notop.pth`` or    each axis; one FID per plane, averaged
                       RadImageNet's ``ResNet50.pt``            (2.5D FID, MAISI)
``medicalnet3d``       MedicalNet 3D ResNet-50,                 one 2048-d vector per volume
                       ``resnet_50_23dataset.pth``              (3D FID, WDM)
=====================  =======================================  ==========================================

Every extractor maps one volume, a numpy array of shape (X, Y, Z) (axial slices along the last axis), to
float64 feature vectors. ``extractor.planes`` names the groups whose FIDs are averaged: ``("xy",)`` for the
2D extractor, ``("xy", "yz", "zx")`` for the 2.5D one, ``("volume",)`` for the 3D one;
``extractor.extract_planes(volume)`` returns ``{plane: (N, 2048) array}`` for every extractor, and
:func:`fid_from_volumes` computes the protocol's FID from two sets of volumes.

Numbers are comparable only with numbers from the same network file, the same preprocessing, the same
sample sizes and the same intensity conventions; FID values of different protocols are not on one scale.

Where things live: this module holds the registry (:data:`EXTRACTORS`, :func:`make_extractor`) and FID/KID over
sets of volumes (:func:`extract_features`, :func:`fid_from_volumes`, :func:`plane_distances`, :func:`fid_25d`);
the base class and the weights-file checks are in :mod:`.features_base`, and each network family, with its
preprocessing, in its own module: :mod:`.features_inception`, :mod:`.features_radimagenet`,
:mod:`.features_medicalnet`. Every name listed in ``__all__`` is importable from here.
"""

from __future__ import annotations

from typing import Iterable, Mapping

import numpy as np

from ..errors import InputError
from .distribution import fid as _fid
from .features_base import ExtractorInfo, FeatureExtractor
from .features_inception import (
    IMAGENET_RGB_MEAN,
    IMAGENET_RGB_STD,
    Inception2DExtractor,
    inception_preprocess,
    inception_preprocess_rgb,
)
from .features_medicalnet import MedicalNet3DExtractor, medicalnet_preprocess
from .features_radimagenet import IMAGENET_BGR_MEAN, RadImageNet25DExtractor, radimagenet_preprocess

__all__ = [
    "FeatureExtractor",
    "Inception2DExtractor",
    "RadImageNet25DExtractor",
    "MedicalNet3DExtractor",
    "ExtractorInfo",
    "EXTRACTORS",
    "make_extractor",
    "inception_preprocess",
    "inception_preprocess_rgb",
    "radimagenet_preprocess",
    "medicalnet_preprocess",
    "extract_features",
    "fid_from_volumes",
    "plane_distances",
    "fid_25d",
    "IMAGENET_RGB_MEAN",
    "IMAGENET_RGB_STD",
    "IMAGENET_BGR_MEAN",
]

# --------------------------------------------------------------------------------------------------------------
# Registry

EXTRACTORS: dict[str, ExtractorInfo] = {
    cls.name: cls._info for cls in (Inception2DExtractor, RadImageNet25DExtractor, MedicalNet3DExtractor)
}
"""Extractor name → :class:`ExtractorInfo` (protocol, expected weights file, where it comes from, class)."""

_ALIASES = {"radimagenet25d": "radimagenet2.5d"}


def make_extractor(name: str, weights, device="cpu", **kwargs) -> FeatureExtractor:
    """Build the extractor registered as ``name`` (``"inception2d"``, ``"radimagenet2.5d"`` (alias
    ``"radimagenet25d"``), ``"medicalnet3d"``) from the weights file ``weights``; extra keyword arguments go to
    its class (e.g. ``batch_size``, ``window``, ``normalise``)."""
    key = _ALIASES.get(str(name).lower(), str(name).lower())
    if key not in EXTRACTORS:
        raise InputError(f"unknown FID feature extractor {name!r}; choose from {', '.join(EXTRACTORS)}")
    return EXTRACTORS[key].cls(weights, device=device, **kwargs)  # checks the file before building anything


# --------------------------------------------------------------------------------------------------------------
# FID over sets of volumes


def extract_features(volumes: Iterable[np.ndarray], extractor: FeatureExtractor) -> dict[str, np.ndarray]:
    """Features of a set of volumes, ``{plane: (N_total, dims)}``: per plane, the rows of all volumes stacked
    in order (N_total = total slices for the 2D/2.5D extractors, number of volumes for the 3D one)."""
    parts: dict[str, list[np.ndarray]] = {p: [] for p in extractor.planes}
    for volume in volumes:
        for plane, feats in extractor.extract_planes(volume).items():
            parts[plane].append(feats)
    if not any(parts.values()):
        raise InputError("no volumes given")
    return {p: np.concatenate(v, axis=0) for p, v in parts.items()}


def fid_from_volumes(
    volumes_a: Iterable[np.ndarray], volumes_b: Iterable[np.ndarray], extractor: FeatureExtractor
) -> dict[str, float]:
    """The extractor's FID protocol between two sets of volumes (e.g. generated vs real).

    One FID per plane over the pooled features of all volumes of each set, then their mean. Returns
    ``{"fid": mean}`` plus, for extractors with several planes, ``{"fid_xy": …, "fid_yz": …, "fid_zx": …}``.
    """
    return plane_distances(extract_features(volumes_a, extractor), extract_features(volumes_b, extractor))


def plane_distances(features_a: Mapping[str, np.ndarray], features_b: Mapping[str, np.ndarray],
                    which: Iterable[str] = ("fid",)) -> dict[str, float]:
    """FID (and/or KID, the mean over subsets) per plane between two feature sets ``{plane: (N, dims)}``, and
    their mean over the planes under ``"fid"`` / ``"kid"``; with several planes also ``"fid_<plane>"`` …"""
    from .distribution import kid

    out: dict[str, float] = {}
    for metric in which:
        if metric not in ("fid", "kid"):
            raise InputError(f"unknown distribution metric {metric!r}: fid or kid")
        per_plane = {p: _fid(features_a[p], features_b[p]) if metric == "fid" else kid(features_a[p], features_b[p])[0]
                     for p in features_a}
        out[metric] = float(np.mean(list(per_plane.values())))
        if len(per_plane) > 1:
            out.update({f"{metric}_{p}": float(v) for p, v in per_plane.items()})
    return out


def fid_25d(
    volumes_a: Iterable[np.ndarray], volumes_b: Iterable[np.ndarray], extractor: RadImageNet25DExtractor
) -> dict[str, float]:
    """2.5D FID (MAISI): one FID per plane (XY, YZ, ZX) with a :class:`RadImageNet25DExtractor`, and their
    mean under ``"fid"`` (see :func:`fid_from_volumes`)."""
    if not isinstance(extractor, RadImageNet25DExtractor):
        raise InputError(f"fid_25d needs a RadImageNet25DExtractor, got {type(extractor).__name__}")
    return fid_from_volumes(volumes_a, volumes_b, extractor)
