"""The contract every evaluation protocol follows: the settings that change metric values, one case's result,
and the protocol base class (:mod:`medfusion.metrics.protocols` holds the published protocols,
:mod:`medfusion.metrics.brats` the BraTS lesion-wise ones)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..errors import InputError

__all__ = ["Settings", "CaseResult", "Protocol", "LOWER_IS_BETTER", "IMAGE_METRICS", "LABEL_METRICS",
           "INSTANCE_METRICS"]
#: metric families that improve downwards (all others — SSIM, PSNR, FSIM, Dice — improve upwards)
LOWER_IS_BETTER = ("mae", "mse", "hd95", "fid", "kid")

IMAGE_METRICS = ("ssim", "ssim_slice", "psnr", "mae", "mse", "fsim")
LABEL_METRICS = ("dice", "hd95", "dsc_agg")
#: instance label maps (objects numbered 1..N, numbers unrelated between prediction and reference): AJI, and PQ with
#: its segmentation (SQ) and detection (RQ) parts
INSTANCE_METRICS = ("aji", "pq")


@dataclass(frozen=True)
class Settings:
    """Choices that change metric values; all of them are written into the report.

    Attributes:
        metrics: metric families to compute (e.g. ``("ssim", "psnr")`` or ``("dice", "hd95", "dsc_agg")``).
        data_range: SSIM/PSNR data range ``R`` for the generic ``image`` protocol: a number in the images'
            unit, or ``"ref"`` for the reference's max − min of each case.
        window: ``(lo, hi)``: clip both images to it and shift by −lo (then ``R`` defaults to hi − lo).
        labels: label value → name; ``None`` = the union of the labels found (``labels`` protocol).
        empty_dice: Dice when a label is absent from prediction and reference (1.0, or nan = undefined).
        hd95_empty: HD95 (mm) to use when exactly one of them is empty; ``None`` = undefined.
        slice_axis: axis of the 2D slices for per-slice SSIM/FSIM (axial = the last NIfTI axis).
        foreground: label protocols: score every positive value as one label 1 "foreground" (instance label maps,
            e.g. cell nuclei numbered 1..N, whose numbers differ between prediction and reference).
    """

    metrics: tuple[str, ...] = ()
    data_range: float | str | None = None
    window: tuple[float, float] | None = None
    labels: dict[int, str] | None = None
    empty_dice: float = 1.0
    hd95_empty: float | None = None
    slice_axis: int = -1
    foreground: bool = False

    @property
    def file_labels(self) -> dict[int, str] | None:
        """The labels a label map may hold (``None``: any; with ``foreground``, any instance number)."""
        return None if self.foreground else self.labels

    def as_dict(self) -> dict:
        return {
            "metrics": list(self.metrics),
            "data_range": self.data_range,
            "window": list(self.window) if self.window else None,
            "labels": {str(k): v for k, v in self.labels.items()} if self.labels else None,
            "empty_dice": "nan (undefined)" if math.isnan(self.empty_dice) else self.empty_dice,
            "hd95_empty": "undefined" if self.hd95_empty is None else self.hd95_empty,
            "hd95_both_empty": "undefined (counted in set_metrics as cases_both_empty_<label>)",
            "slice_axis": self.slice_axis,
            "foreground": self.foreground,
        }


@dataclass
class CaseResult:
    """Per-case metric values (``nan`` = undefined) and what set-level metrics need from the case."""

    values: dict[str, float] = field(default_factory=dict)
    label_counts: dict[int, tuple[int, int, int]] = field(default_factory=dict)
    #: mm³ per voxel (the product of the spacing), which the aggregated Dice weighs each case's counts by
    voxel_volume: float = 1.0


class Protocol:
    """Base: ``inputs`` says how files are read ("image", "labels" or "rgb"); subclasses compute one case."""

    name = ""
    inputs = "image"
    available: tuple[str, ...] = ()
    default: tuple[str, ...] = ()
    uses_mask = True
    #: what the protocol needs a mask for, if its default metrics cannot be computed as published without one
    mask_needed = ""
    description = ""
    #: protocol-specific conventions written into the report's settings (``settings["conventions"]``)
    conventions: dict = {}

    def settings(self, metrics=None, **kwargs) -> Settings:
        """Validated settings: ``metrics=None`` means the protocol's default; unknown ones are an error."""
        metrics = self.default if metrics is None else tuple(metrics)
        unknown = [m for m in metrics if m not in self.available]
        if unknown:
            raise InputError(f"protocol {self.name} has no metric {', '.join(unknown)}; it offers "
                             f"{', '.join(self.available)}")
        return self._check(Settings(metrics=metrics, **kwargs))

    def _check(self, s: Settings) -> Settings:
        return s

    def case(self, pred: np.ndarray, ref: np.ndarray, mask: np.ndarray | None, spacing, s: Settings) -> CaseResult:
        raise NotImplementedError

    def set_metrics(self, results: list[CaseResult], s: Settings) -> dict[str, float]:
        return {}

    def plotted(self, names: list[str]) -> list[str]:
        """The per-case metrics drawn in the report's distribution figure (default: all of them)."""
        return names

    def display(self, pred: np.ndarray, ref: np.ndarray, window=None) -> tuple[np.ndarray, np.ndarray]:
        """The images as the metrics see them (for plots)."""
        return pred, ref
