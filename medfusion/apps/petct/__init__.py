"""PET/CT head-and-neck tumour segmentation by a 3D conditional diffusion over the label mask, with uncertainty.

After Dong & Gong (arXiv 2401.17593): a 3D DDPM denoises the tumour mask conditioned on PET (SUV) and CT (HU).
medfusion's version predicts x₀ so a few DDIM steps suffice, draws an ensemble of samples over the whole
head-and-neck region at once, and writes the label map (0 background, 1 GTVp, 2 GTVn), class probabilities and
uncertainty maps on the CT grid, as HECKTOR evaluates them.

Modules: head-and-neck PET/CT phantoms with HECKTOR labels (:mod:`.phantom`), PET/CT geometry (:mod:`.geometry`:
checks, the working grid, back to the CT grid).
"""
