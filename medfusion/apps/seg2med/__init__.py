"""seg2med: CT and MR generated from TotalSegmentator label maps, and CT↔MR conversion.

    from medfusion.apps import seg2med
    model = seg2med.load_model("bundles/totalseg_mask_to_ct_mr/models/model.pt")     # 2D, as published
    seg2med.generate_file(model, "data/abdomen_phantom/ABD-SAMPLE-00000/mask.nii.gz", "ct", "outputs/ct.nii.gz")

Reference: Yang et al., "seg2med: a segmentation-based medical image generation framework using denoising
diffusion probabilistic models", arXiv 2504.09182.  The condition is a grey-level prior image (:mod:`.prior`;
its values in :mod:`.prior_tables` — the authors' own tables by default — and :mod:`.tissues`); volumes go to the
network's spacing and window and back (:mod:`.model_grid`); label maps come from TotalSegmentator (:mod:`.masks`, an optional extra) or
from the abdomen phantoms (:mod:`medfusion.phantoms.abdomen`).
Modules: :mod:`.model` (2D slice model and 3D wavelet model), :mod:`.inference`, :mod:`.files` (the prior
command), :mod:`.transforms` (training ``Compose``), :mod:`.cases` (case folders), :mod:`.train`, :mod:`.baseline`, :mod:`.evaluation`,
:mod:`.bundle`, :mod:`.cli`.  Names below load their module on first use, so importing this package is cheap.
"""

from __future__ import annotations

from ...utils.lazy import lazy_exports

_EXPORTS: dict[str, tuple[str, ...]] = {
    "tissues": ("class_names", "tissue_value", "mr_signal", "label_values", "MODALITIES"),
    "prior": ("make_prior", "body_from_ct", "body_from_mr", "body_from_labels", "check_label_map"),
    "prior_tables": ("prior_lookup", "map_labels", "PRIOR_TABLES"),
    "model": ("Seg2MedModel", "load_model", "ALL_TASKS", "TARGETS"),
    "inference": ("generate", "convert"),
    "files": ("generate_file", "convert_file", "write_prior"),
    "cases": ("case_datalist", "load_case"),
    "evaluation": ("evaluate_heldout", "run_task", "score", "organ_errors"),
    "train": ("Seg2MedTrainer", "Seg2MedTrainingSet"),
    "masks": ("segment", "check_totalsegmentator"),
}

__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
