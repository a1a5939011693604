"""Seeded synthetic cases of every application, with their ground truth: for tests, demos, training and benchmarks.

One kind per application (:data:`KINDS`, the registry that ``medfusion phantoms --kind`` lists):

- ``brats`` (:mod:`.brain`, with :mod:`.brain_template`, :mod:`.brain_anatomy`, :mod:`.brain_render` and
  :mod:`.brain_files`): four MR contrasts and a tumour label map on the MNI152 brain, BraTS's file layout —
  cWDM's data;
- ``abdomen`` (:mod:`.abdomen`, with :mod:`.abdomen_frame`, :mod:`.abdomen_anatomy` and :mod:`.abdomen_geometry`):
  TotalSegmentator label maps, body mask, tissue map, CT, T1 and T2 — seg2med's;
- ``headneck`` (:mod:`.headneck`, with :mod:`.headneck_parts` and :mod:`.headneck_anatomy`): PET and CT on their
  own grids with HECKTOR labels — PET/CT segmentation's;
- ``stain`` (:mod:`.histology`): pixel-aligned H&E / IHC tiles with nucleus labels — StainDiffuser's.

They share :mod:`.shapes` (solids drawn on a voxel grid) and :mod:`.seeded` (case names, seeds, the output
check). This package sits above the applications: it uses their layouts and tables, and no inference path of an
application imports it. Names below load their module on first use.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

from ..utils.lazy import lazy_exports


@dataclass(frozen=True)
class PhantomKind:
    """One kind of phantom case: what ``medfusion phantoms`` says of it and which writer makes a dataset of it.

    ``writer(out_dir, n, shape=..., seed0=..., prefix=..., overwrite=..., **options)`` in module ``module``;
    ``family``: the generator's modules (``<family>*.py``); ``options``: the writer's keyword arguments beyond those
    (e.g. ``drop`` for missing-modality BraTS cases)."""

    help: str
    shape: tuple[int, ...]
    prefix: str
    family: str
    module: str
    writer: str
    options: tuple[str, ...] = ()

    def dataset_writer(self):
        """The dataset writer (its module is imported now)."""
        return getattr(importlib.import_module(f"{__name__}.{self.module}"), self.writer)

    def sources(self) -> list[Path]:
        """The generator's source files, e.g. to tell a cached dataset of an older generator."""
        return sorted(Path(__file__).parent.glob(f"{self.family}*.py"))


KINDS: dict[str, PhantomKind] = {
    "brats": PhantomKind("BraTS-like MRI cases (MNI152 anatomy + tumour, four contrasts and labels)", (96, 96, 64),
                         "BraTS-PHANTOM", "brain", "brain_files", "write_brats_dataset", options=("drop",)),
    "abdomen": PhantomKind("abdomen/thorax cases with TotalSegmentator labels, body mask, tissue map, CT (HU), T1 "
                           "and T2 MR", (96, 96, 64), "ABD-PHANTOM", "abdomen", "abdomen", "write_abdomen_dataset"),
    "headneck": PhantomKind("head-and-neck PET (SUV) / CT (HU) cases on their own grids with HECKTOR labels (1 GTVp, "
                            "2 GTVn) in imagesTr/ and labelsTr/", (96, 96, 48), "HN-PHANTOM", "headneck", "headneck",
                            "write_headneck_dataset"),
    "stain": PhantomKind("synthetic H&E / IHC tissue tiles (he.png, ihc.png: 8-bit RGB, pixel-aligned) with nucleus "
                         "labels (cells.png, 16-bit)", (128, 128), "STAIN-PHANTOM", "histology", "histology",
                         "write_tissue_dataset"),
}

_EXPORTS: dict[str, tuple[str, ...]] = {
    "brain": ("make_brats_phantom",),
    "brain_files": ("write_brats_case", "write_brats_dataset"),
    "abdomen": ("make_abdomen_phantom", "write_abdomen_case", "write_abdomen_dataset"),
    "headneck": ("make_headneck_phantom", "write_headneck_case", "write_headneck_dataset"),
    "histology": ("make_tissue_tile", "write_tissue_case", "write_tissue_dataset"),
}

_lazy_names, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
__all__ = ["KINDS", "PhantomKind", *_lazy_names]
