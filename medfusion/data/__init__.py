"""Datasets: on-disk layouts (:mod:`medfusion.data.brats`) and synthetic phantoms (:mod:`medfusion.data.phantom`).

Nothing is imported here, so ``import medfusion.data`` stays cheap; import the submodule you need.
"""
