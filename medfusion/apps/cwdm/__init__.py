"""Missing-modality BraTS MRI synthesis with a conditional wavelet diffusion model (cWDM).

    from medfusion.apps import cwdm
    model = cwdm.load_model("bundles/brats_mri_cwdm")
    case = cwdm.find_case("data/brats_phantom_missing/BraTS-SAMPLE-MISSING-00000-000")
    cwdm.synthesize_case(model, case, "outputs/synth.nii.gz", steps=50, seed=0)

Modules: :mod:`.layout` (BraTS case folders), :mod:`.model`, :mod:`.transforms` (pre/post-processing),
:mod:`.inference`, :mod:`.train`, :mod:`.evaluation`, :mod:`.baseline`, :mod:`.demo`,
:mod:`.bundle`, :mod:`.cli`.  Names below load their module on first use, so importing this package is cheap.
"""

from __future__ import annotations

from ...utils.lazy import lazy_exports

_EXPORTS: dict[str, tuple[str, ...]] = {
    "layout": ("CONTRASTS", "BraTSCase", "find_case", "case_from_files", "list_cases", "load_case"),
    "model": ("CWDMModel", "load_model"),
    "inference": ("synthesize",),
    "files": ("synthesize_case", "synthesize_folder"),
    "evaluation": ("evaluate_heldout", "hide_and_synthesize"),
    "train": ("CWDMTrainer", "BraTSTrainingSet"),
    "demo": ("run_demo",),
}

__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
