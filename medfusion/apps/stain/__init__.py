"""H&E → IHC virtual staining with joint cell segmentation (StainDiffuser, Kataria et al., arXiv 2403.11340) on
medfusion's diffusion core: from an H&E tile, one model generates the IHC stain and the nucleus instances.

Data: real pairs come from scikit-image's immunohistochemistry image (:mod:`.data`): the IHC image is the target,
the input is an H&E-like image made from its haematoxylin channel with a synthetic eosin (no DAB), and the coarse
nucleus labels come from the haematoxylin by watershed; a column-wise spatial split keeps train, val and test
tiles apart. Synthetic, seeded, pixel-aligned H&E/IHC tissue tiles with exact nucleus labels come from
:mod:`.tissue`. Files (8-bit RGB images, 16-bit label images, case folders ``he.png``/``ihc.png``/``cells.png``)
are read and written by :mod:`.images`.
"""
