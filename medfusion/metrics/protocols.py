"""Named evaluation protocols: the published pipelines, from the arrays of one case to its metric values.

A protocol fixes what is done to the images before a metric sees them (percentile scaling, a HU window, 8-bit
RGB), which metrics it reports and under which names, and the set-level metrics that need all cases at once
(HECKTOR's aggregated Dice).  File handling (pairing, geometry, resampling) lives in :mod:`medfusion.evaluate`;
this module works on numpy arrays only.

=============  =========================================================================================
``brasyn``     BraSyn 2023/24 missing-modality MRI, as the organisers' ``ssim.py`` scores it: each image clipped
               at its own 0.5/99.5 percentiles (lower bound ≥ 0) and scaled to [0, 1]; with a tumour label map
               as mask, 3D SSIM of the tumour (pred·m vs ref·m, m = seg > 0) and of the non-tumour region
               (pred·(1−m) vs ref·(1−m)), each with torchmetrics' default data range (max − min of the two
               masked volumes) and mean over the whole volume (mirrored border, torchmetrics ≥ 1.4.2).
               Additions of ours, not BraSyn scores: SSIM of the whole scaled volumes (data range 1), PSNR and
               MSE of the scaled volumes.
``synthrad``   SynthRAD2023 CT synthesis, as the organisers' ``functions/image_metrics.py`` scores it: MAE of
               the raw HU inside the body mask; PSNR of both clipped to [−1024, 3000] HU (data range 4024, MSE
               inside the mask); SSIM: both clipped, outside the mask set to −1024, shifted to ≥ 0, one 3D
               scikit-image SSIM (7×7×7 uniform window, sample covariance) averaged over the mask voxels at
               least 3 voxels from the border.  MR with a stated ``window``; FSIM per axial slice on request.
``hecktor``    HECKTOR 2022 head-and-neck PET/CT tumours, as the organisers' notebook scores them: labels 1 GTVp
               and 2 GTVn; per case Dice and HD95 (mm) per class; over the set the aggregated Dice per class in
               mm³ (voxel counts times each case's voxel volume) and its mean (the ranking value).
``bci``        BCI H&E→IHC virtual staining: 8-bit RGB images, PSNR (data range 255) and SSIM as the BCI
               evaluation script computes them (scikit-image defaults: 7×7 uniform window, sample covariance,
               mean over the RGB channels), averaged over images; FID/KID of the image sets on request
               (Inception-v3 features of the RGB images).
``image``      Generic image similarity: SSIM (3D, or per slice), PSNR, MAE, MSE, FSIM with an explicit data
               range (or ``"ref"``: the reference's max − min per case) and an optional clipping window.
``labels``     Generic segmentation: Dice and HD95 per label (labels given, or the union found in the files)
               and the aggregated Dice over the set.
``brats-*``    The BraTS challenges' lesion-wise metrics (``brats-gli``, ``-mets``, ``-ped``, ``-menpre``,
               ``-menrt``, ``-goat``): panoptica with the organisers' configurations, per region
               ``<region>_<field>`` — see :mod:`medfusion.metrics.brats` (optional extra ``brats``).
=============  =========================================================================================

Undefined values are ``nan``: Dice of a label absent from both prediction and reference when
``empty_dice=nan`` (the default counts it as 1.0), HD95 when exactly one of them is empty (unless
``hd95_empty`` gives a number to use instead, e.g. BraTS' 373.13 mm), SSIM over an empty mask, BraSyn's
tumour SSIM of a case without tumour (data range 0: 0/0, never 1.0), HD95 of a label absent from both sides.
Summaries count the undefined values beside the mean; the label protocols also count, per label, the cases where
it is absent from both sides, from the prediction only and from the reference only.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..errors import InputError
from .brats import BRATS_PROTOCOLS
from .protocol_base import (IMAGE_METRICS, INSTANCE_METRICS, LABEL_METRICS, LOWER_IS_BETTER,  # noqa: F401
                            CaseResult, Protocol, Settings)

__all__ = ["Settings", "Protocol", "PROTOCOLS", "get_protocol", "LOWER_IS_BETTER", "IMAGE_METRICS", "LABEL_METRICS"]


# ----------------------------------------------------------------------------------------------- images
class ImageProtocol(Protocol):
    name = "image"
    available = IMAGE_METRICS
    default = ("ssim", "psnr", "mae")
    description = ("generic image similarity with an explicit data range (SSIM Gaussian σ 1.5, 11-wide window; "
                   "PSNR; MAE/MSE in the images' unit; FSIM per slice)")
    conventions = {"ssim_border": "valid: mean over the voxels at least half a window (5) from the border, as "
                                  "scikit-image and MONAI"}

    def _check(self, s: Settings) -> Settings:
        if s.data_range is None and s.window is None and set(s.metrics) & {"ssim", "ssim_slice", "psnr", "fsim"}:
            raise InputError("give the data range of the images (--data-range R, e.g. 1 for [0, 1] images, or "
                             "--data-range ref for each reference's max - min), or a window (--window LO HI)")
        if isinstance(s.data_range, (int, float)) and not s.data_range > 0:
            raise InputError(f"the data range must be positive, got {s.data_range}")
        if s.window is not None and not s.window[1] > s.window[0]:
            raise InputError(f"the window must be LO HI with LO < HI, got {s.window}")
        return s

    def prepare(self, pred, ref, s: Settings):
        """Clip/shift to the window; return the images and the data range R."""
        pred, ref = self.display(pred, ref, s.window)
        if s.data_range == "ref":
            r = float(ref.max() - ref.min())
            if r <= 0:
                raise InputError("the reference is constant: --data-range ref is undefined for it")
        elif s.data_range is not None:
            r = float(s.data_range)
        elif s.window is not None:
            r = float(s.window[1] - s.window[0])
        else:
            r = None
        return pred, ref, r

    def display(self, pred, ref, window=None):
        if window is None:
            return pred, ref
        lo, hi = window
        return np.clip(pred, lo, hi) - lo, np.clip(ref, lo, hi) - lo

    def case(self, pred, ref, mask, spacing, s):
        from . import image

        pred, ref, r = self.prepare(pred, ref, s)
        out = {}
        for m in s.metrics:
            if m == "ssim":
                out["ssim"] = image.ssim(pred, ref, data_range=r, mask=mask)
            elif m == "ssim_slice":
                out["ssim_slice"] = image.ssim(pred, ref, data_range=r, mask=mask, per_slice=True, axis=s.slice_axis)
            elif m == "psnr":
                out["psnr"] = image.psnr(pred, ref, data_range=r, mask=mask)
            elif m == "mae":
                out["mae"] = image.mae(pred, ref, mask=mask)
            elif m == "mse":
                out["mse"] = image.mse(pred, ref, mask=mask)
            elif m == "fsim":
                out["fsim"] = _fsim(pred, ref, r, mask, s.slice_axis)
        return CaseResult(out)


def _fsim(pred, ref, r, mask, axis) -> float:
    from .fsim import fsim_volume

    return fsim_volume(pred, ref, data_range=r, axis=axis, mask=mask)


class BraSynProtocol(Protocol):
    name = "brasyn"
    available = ("ssim", "psnr", "mse")
    default = ("ssim", "psnr", "mse")
    mask_needed = "the tumour label map (BraTS seg) for its two scores, SSIM in and outside the tumour"
    description = ("BraSyn (the organisers' ssim.py): each image clipped at its own 0.5/99.5 percentiles (lower "
                   "bound >= 0) and scaled to [0, 1]; with a tumour label map as --mask, ssim_tumour = 3D SSIM of "
                   "pred*m vs ref*m (m = seg > 0) and ssim_non_tumour = 3D SSIM of pred*(1-m) vs ref*(1-m), each "
                   "with torchmetrics' default data range (max - min of the two masked volumes; an empty tumour "
                   "is undefined) and mean over the whole volume (mirrored border, torchmetrics >= 1.4.2). "
                   "Additions, not BraSyn scores: ssim (whole scaled volume, data range 1), psnr and mse of the "
                   "scaled volumes")
    conventions = {
        "brasyn_scores": ["ssim_tumour", "ssim_non_tumour"],
        "additions_not_brasyn": ["ssim", "psnr", "mse"],
        "ssim_data_range": "ssim_tumour/ssim_non_tumour: max(max - min) of the two masked volumes (torchmetrics "
                           "default); ssim, psnr: 1",
        "ssim_border": "full: mean over every voxel, image mirrored at the border (torchmetrics >= 1.4.2)",
    }

    def display(self, pred, ref, window=None):
        from .image import percentile_scale

        return percentile_scale(pred), percentile_scale(ref)

    def case(self, pred, ref, mask, spacing, s):
        from . import image

        p, r = self.display(pred, ref)
        out = image.brasyn_ssim(p, r, mask, scaled=True) if "ssim" in s.metrics else {}
        if "psnr" in s.metrics:
            out["psnr"] = image.psnr(p, r, data_range=1.0)
        if "mse" in s.metrics:
            out["mse"] = image.mse(p, r)
        return CaseResult(out)


class SynthRADProtocol(ImageProtocol):
    name = "synthrad"
    available = ("ssim", "psnr", "mae", "fsim")
    default = ("ssim", "psnr", "mae")
    mask_needed = "the body mask (its MAE and PSNR are taken inside the body)"
    description = ("SynthRAD2023 (the organisers' functions/image_metrics.py): MAE of the raw values (HU) inside "
                   "the mask; PSNR of both images clipped to the window (default [-1024, 3000] HU), data range = "
                   "window width, MSE inside the mask; SSIM: both clipped, voxels outside the mask set to the "
                   "window's low end, shifted to >= 0, one 3D scikit-image SSIM (7x7x7 uniform window, sample "
                   "covariance, data range = width) averaged over the mask voxels at least 3 voxels from the border; "
                   "voxel spacing unused. For MR give the window (--window LO HI); FSIM per axial slice on request "
                   "(not SynthRAD's)")
    window = (-1024.0, 3000.0)
    conventions = {"ssim": "one 3D SSIM, scikit-image defaults, mean over mask voxels >= 3 voxels from the border",
                   "mae": "raw values, not clipped", "psnr": "clipped to the window, data range = its width"}

    def _check(self, s: Settings) -> Settings:
        if s.data_range is not None:
            raise InputError("synthrad takes its data range from the HU window: use --window LO HI, not "
                             "--data-range")
        if s.window is None:
            s = replace(s, window=self.window)
        return super()._check(s)

    def case(self, pred, ref, mask, spacing, s):
        from . import image

        lo, hi = s.window
        out = {}
        if "ssim" in s.metrics:
            out["ssim"] = image.synthrad_ssim(pred, ref, window=(lo, hi), mask=mask)
        if "psnr" in s.metrics:
            out["psnr"] = image.psnr(np.clip(pred, lo, hi), np.clip(ref, lo, hi), data_range=hi - lo, mask=mask)
        if "mae" in s.metrics:
            out["mae"] = image.mae(pred, ref, mask=mask)
        if "fsim" in s.metrics:
            clipped_pred, clipped_ref = self.display(pred, ref, s.window)
            out["fsim"] = _fsim(clipped_pred, clipped_ref, hi - lo, mask, s.slice_axis)
        return CaseResult(out)


class BCIProtocol(Protocol):
    name = "bci"
    inputs = "rgb"
    available = ("psnr", "ssim")
    default = ("psnr", "ssim")
    uses_mask = False
    description = ("BCI virtual staining: 8-bit RGB images; PSNR with data range 255 and SSIM with scikit-image "
                   "defaults (7x7 uniform window, sample covariance, mean over the RGB channels), as the BCI "
                   "evaluation script computes them")

    def case(self, pred, ref, mask, spacing, s):
        from skimage.metrics import structural_similarity

        from . import image

        out = {}
        if "psnr" in s.metrics:
            out["psnr"] = image.psnr(pred, ref, data_range=255.0)
        if "ssim" in s.metrics:
            out["ssim"] = float(structural_similarity(pred, ref, data_range=255.0, channel_axis=-1))
        return CaseResult(out)


# ----------------------------------------------------------------------------------------------- labels
class LabelProtocol(Protocol):
    name = "labels"
    inputs = "labels"
    available = LABEL_METRICS + INSTANCE_METRICS
    default = LABEL_METRICS
    uses_mask = False
    description = ("generic segmentation: Dice and HD95 (mm, max of the two directed 95th percentiles of the "
                   "surface distances; undefined when the label is absent from either side) per label, and over "
                   "the set the aggregated Dice per label in mm³ (each case's voxel counts times its voxel volume) "
                   "with the numbers of cases where the label is absent from both sides, from the prediction only, "
                   "and from the reference only")

    def _check(self, s: Settings) -> Settings:
        if s.foreground and s.labels:
            raise InputError("--foreground scores every positive label as one; leave out --labels")
        if set(s.metrics) & set(INSTANCE_METRICS) and not s.foreground:
            raise InputError("aji and pq score instance label maps (objects numbered 1..N): add --foreground")
        return replace(s, labels={1: "foreground"}) if s.foreground else s

    def case(self, pred, ref, mask, spacing, s):
        from . import segmentation as seg
        from .instances import aji, panoptic_quality

        out = {}
        if "aji" in s.metrics:
            out["aji"] = aji(pred, ref)
        if "pq" in s.metrics:
            out.update({k: v for k, v in panoptic_quality(pred, ref).items() if k in ("pq", "sq", "rq")})
        if s.foreground:
            pred, ref = (pred > 0).view(np.uint8), (ref > 0).view(np.uint8)
        labels = s.labels or {int(v): str(int(v)) for v in np.union1d(np.unique(pred), np.unique(ref)) if v != 0}
        counts = seg.label_counts(pred, ref, tuple(labels))
        for label, name in labels.items():
            if "dice" in s.metrics:
                out[f"dice_{name}"] = seg.dice_from_counts(*counts[label], empty=s.empty_dice)
            if "hd95" in s.metrics:
                out[f"hd95_{name}"] = _hd95(pred == label, ref == label, spacing, counts[label], s)
        return CaseResult(out, counts, voxel_volume=float(np.prod(spacing)))

    def fill_absent(self, results: list[CaseResult], s: Settings) -> dict[int, str]:
        """With inferred labels, a label missing from a case (both ways) gets the empty-mask conventions."""
        if s.labels:
            return s.labels
        found = sorted({lab for r in results for lab in r.label_counts})
        names = {lab: str(lab) for lab in found}
        for r in results:
            for lab, name in names.items():
                if lab not in r.label_counts:
                    r.label_counts[lab] = (0, 0, 0)
                    if "dice" in s.metrics:
                        r.values[f"dice_{name}"] = float(s.empty_dice)
                    if "hd95" in s.metrics:
                        r.values[f"hd95_{name}"] = float("nan")  # absent from both sides: undefined
        return names

    def set_metrics(self, results, s):
        from .segmentation import AggregatedDice

        names = self.fill_absent(results, s)
        if not names:
            return {}
        out: dict[str, float] = {}
        if "dsc_agg" in s.metrics:
            agg = AggregatedDice(labels=tuple(names))
            for r in results:
                agg.update_counts(r.label_counts, r.voxel_volume)
            out.update({f"dsc_agg_{names[lab]}": float(v) for lab, v in agg.aggregate().items()})
            out["dsc_agg_mean"] = agg.mean()  # undefined if any class is
        for lab, name in names.items():  # where a distance is undefined, counted rather than hidden
            sizes = [r.label_counts[lab][1:] for r in results]
            out[f"cases_both_empty_{name}"] = sum(p == 0 and g == 0 for p, g in sizes)
            out[f"cases_empty_pred_{name}"] = sum(p == 0 < g for p, g in sizes)
            out[f"cases_empty_ref_{name}"] = sum(g == 0 < p for p, g in sizes)
        return out


def _hd95(pred, ref, spacing, counts, s) -> float:
    """HD95 (mm) of one label; absent from both sides: undefined; from one side: undefined or ``s.hd95_empty``."""
    from .segmentation import hd95

    _, n_pred, n_ref = counts
    if n_pred == 0 and n_ref == 0:
        return float("nan")
    if n_pred == 0 or n_ref == 0:
        return float("nan") if s.hd95_empty is None else float(s.hd95_empty)
    return hd95(pred, ref, spacing)


class HecktorProtocol(LabelProtocol):
    name = "hecktor"
    available = LABEL_METRICS
    description = ("HECKTOR 2022 (the organisers' evaluate_segmentation2022 notebook): labels 1 GTVp, 2 GTVn; per "
                   "case Dice and HD95 (mm; undefined when a class is absent from either side) per class; over the "
                   "set the aggregated Dice per class in mm³, 2*sum v|P&G| / sum v(|P|+|G|) with v each case's voxel "
                   "volume, and their mean (the ranking value), with the cases counted where a class is absent")
    labels = {1: "GTVp", 2: "GTVn"}

    def _check(self, s: Settings) -> Settings:
        if s.foreground:
            raise InputError("hecktor scores GTVp and GTVn apart; --foreground is for --protocol labels")
        if s.labels and s.labels != self.labels:
            raise InputError("hecktor fixes the labels (1 GTVp, 2 GTVn); use --protocol labels for others")
        return replace(s, labels=dict(self.labels))


PROTOCOLS: dict[str, Protocol] = {p.name: p for p in (BraSynProtocol(), SynthRADProtocol(), HecktorProtocol(),
                                                      BCIProtocol(), ImageProtocol(), LabelProtocol(),
                                                      *BRATS_PROTOCOLS)}


def get_protocol(name: str) -> Protocol:
    """The protocol called ``name`` (see :data:`PROTOCOLS`)."""
    try:
        return PROTOCOLS[name]
    except KeyError:
        raise InputError(f"unknown protocol {name!r}; choose one of {', '.join(PROTOCOLS)}") from None
