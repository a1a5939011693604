"""Metrics with the field's published protocols (see :mod:`medfusion.metrics.protocols`).

* image similarity — :func:`ssim` (2D/3D, per slice, masked), :func:`psnr`, :func:`mae`, :func:`mse`,
  :func:`brasyn_ssim` / :func:`region_ssim` (as the BraSyn organisers compute them), :func:`fsim` /
  :func:`fsim_volume`;
* segmentation — :func:`dice`, :func:`hd95` (mm), :func:`surface_distances`, :class:`AggregatedDice`
  (HECKTOR DSCagg, mm³), :func:`label_counts`, :func:`check_label_map`; instances (cells) — :func:`aji`,
  :func:`panoptic_quality` (PQ, SQ, RQ);
* distributions — :func:`fid`, :func:`kid`, :func:`frechet_distance` from feature vectors; feature networks in
  :mod:`medfusion.metrics.features` (weights supplied by the user);
* uncertainty — :func:`error_auroc`, :func:`dice_after_removing_uncertain`, :func:`evaluation_region`,
  :func:`boundary_uncertainty`, :func:`calibration` (does uncertainty mark errors; is it calibrated?);
* protocols and reports — :data:`PROTOCOLS`, :func:`get_protocol`, :class:`Report`; the BraTS challenges'
  lesion-wise protocols run the organisers' engine (:mod:`medfusion.metrics.brats`, optional extra ``brats``).

Names resolve lazily: ``from medfusion.metrics import ssim`` imports scikit-image only when called.
"""

from __future__ import annotations

from ..utils.lazy import lazy_exports

_EXPORTS: dict[str, tuple[str, ...]] = {
    "image": ("ssim", "psnr", "mae", "mse", "region_ssim", "brasyn_ssim", "synthrad_ssim", "percentile_scale",
              "default_data_range"),
    "segmentation": ("dice", "hd95", "surface_distances", "label_counts", "AggregatedDice"),
    "label_maps": ("check_label_map",),
    "instances": ("aji", "panoptic_quality"),
    "fsim": ("fsim", "fsim_volume"),
    "distribution": ("fid", "kid", "frechet_distance", "feature_statistics"),
    "protocols": ("PROTOCOLS", "get_protocol", "Settings"),
    "report": ("Report",),
    "uncertainty": ("error_auroc", "dice_after_removing_uncertain", "evaluation_region", "boundary_uncertainty",
                    "calibration", "generalised_energy_distance"),
}

__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
