"""H&E → IHC virtual staining with joint cell segmentation (StainDiffuser, Kataria et al., arXiv 2403.11340) on
medfusion's diffusion core: from an H&E tile, one model generates the IHC stain and the nucleus instances.

Data: real pairs come from scikit-image's immunohistochemistry image (:mod:`.data`): the IHC image is the target,
the input is an H&E-like image made from its haematoxylin channel with a synthetic eosin (no DAB), and the coarse
nucleus labels come from the haematoxylin by watershed; a column-wise spatial split keeps train, val and test
tiles apart. Synthetic, seeded, pixel-aligned H&E/IHC tissue tiles with exact nucleus labels come from
:mod:`medfusion.phantoms.histology`. Files (8-bit RGB images, 16-bit label images, case folders ``he.png``/``ihc.png``/``cells.png``)
are read and written by :mod:`.images`.

    from medfusion.apps import stain
    model = stain.load_model("bundles/he_to_ihc_staindiffuser/models/model.pt")
    stain.stain_file(model, "data/stain_sample/he/SKIMAGE-TEST-REGION.png", "outputs/ihc.png",
                     cells="outputs/cells.png")

Modules: :mod:`.network` (shared H&E encoder, one gated branch per task), :mod:`.model` (multi- or single-task),
:mod:`.inference` (whole image or tiled; cell labels), :mod:`.stream` and :mod:`.slides` (large images and slides
band by band), :mod:`.files` (files and folders), :mod:`.images`, :mod:`.baseline` (U-Net), :mod:`.train`,
:mod:`.evaluation`, :mod:`.bundle`, :mod:`.cli`, and the data (:mod:`.data`).  Names below load
their module on first use, so importing this package is cheap.
"""

from __future__ import annotations

from ...utils.lazy import lazy_exports

_EXPORTS: dict[str, tuple[str, ...]] = {
    "model": ("StainModel", "load_model", "TASKS"),
    "baseline": ("UNetBaseline",),
    "inference": ("translate", "cell_labels"),
    "stream": ("translate_rows",),
    "files": ("stain_file", "stain_folder"),
    "images": ("load_he", "save_rgb", "load_labels", "save_labels"),
    "evaluation": ("evaluate_heldout",),
    "train": ("StainTrainer", "StainTrainingSet"),
    "data": ("skimage_pairs", "write_skimage_dataset"),
}

__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
