"""PET/CT head-and-neck tumour segmentation by a 3D conditional diffusion over the label mask, with uncertainty.

    from medfusion.apps import petct
    model = petct.load_model("bundles/hecktor_petct_diffseg/models/model.pt")
    petct.segment_case(model, "CASE__PT.nii.gz", "CASE__CT.nii.gz", "outputs/seg.nii.gz",
                       uncertainty="outputs/uncertainty.nii.gz", samples=10, steps=5)

After Dong & Gong (arXiv 2401.17593): a 3D DDPM denoises the tumour mask conditioned on PET (SUV) and CT (HU).
medfusion's version predicts x₀ so a few DDIM steps suffice, draws an ensemble of samples over the whole
head-and-neck region at once, and writes the label map (0 background, 1 GTVp, 2 GTVn), class probabilities and
uncertainty maps on the CT grid, as HECKTOR evaluates them.

Modules: :mod:`.geometry` (checks, the working grid, back to the CT grid) with :mod:`.headneck_box` (the
head-and-neck box placed from the PET), :mod:`.model` (the mask diffusion and its loss), :mod:`.transforms`
(pre/post-processing), :mod:`.inference` (ensemble → probabilities, labels, uncertainty), :mod:`.files` (files and
HECKTOR folders), :mod:`.baseline` (SegResNet), :mod:`.train`, :mod:`.evaluation`, :mod:`.bundle`, :mod:`.cli`,
and the head-and-neck phantoms (:mod:`medfusion.phantoms.headneck`).  Names below load their module on first use.
"""

from __future__ import annotations

from ...utils.lazy import lazy_exports

_EXPORTS: dict[str, tuple[str, ...]] = {
    "model": ("PetCtSegModel", "load_model", "CLASSES"),
    "baseline": ("SegResNetBaseline",),
    "geometry": ("load_pet_ct", "working_grid", "to_working_grid", "to_ct_grid"),
    "inference": ("segment", "Segmentation"),
    "files": ("prepare_case", "segment_case", "segment_folder"),
    "evaluation": ("evaluate_heldout", "predict_case"),
    "train": ("PetCtTrainer", "PetCtTrainingSet"),
    "cli": ("load_segmenter",),
}

__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
