"""Missing-contrast synthesis: one case in memory, one case on disk, or a folder of cases.

The data flow of one case::

    layout.load_case (medfusion.io.load_volume; shape/affine checked)   3 contrasts
      → pipeline.normalize (percentiles → [0, 1])
      → core.inference.whole_volume: pad to model.divisor → ConditionalDiffusion.sample (Haar space, DDIM/DDPM,
        class label = missing contrast) → the padding's inverse
      → pipeline.postprocess (zero background)
      → io.save_like(reference = an input contrast): same shape, affine, orientation, spacing.
"""

from __future__ import annotations

import os
from typing import Callable, Mapping

import numpy as np
import torch

from ...core.inference import whole_volume
from ...core.runner import run_cases
from ...errors import InputError
from ...io import refuse_constant, save_like
from ...outputs import writing
from .layout import CONTRASTS, BraTSCase, case_folders, check_case, find_case, load_case
from .model import CWDMModel, check_contrast
from .pipeline import normalize, postprocess

__all__ = ["synthesize", "synthesize_case", "synthesize_folder"]


def synthesize(model: CWDMModel, volumes: Mapping[str, np.ndarray], missing: str, *, steps: int = 50,
               sampler: str = "ddim", seed: int = 0, device: str | torch.device = "cpu", precision: str = "float32",
               progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """Synthesize the ``missing`` contrast from the three others.

    Args:
        model: a trained :class:`CWDMModel`.
        volumes: the three available contrasts, name → 3D array (any intensity unit, one shape).
        missing: the contrast to synthesize (``t1n``, ``t1c``, ``t2w`` or ``t2f``).
        steps, sampler: ``"ddim"`` with any number of steps, or ``"ddpm"`` (1000 steps is the published sampler).
        seed: seeds the sampling noise (a CPU generator: the same seed gives the same result on any device).
        precision: ``"float32"``, ``"bfloat16"`` or ``"float16"`` (CUDA): autocast of the network.
    Returns:
        float32 array of the input shape, intensities in [0, 1], background 0.
    """
    check_contrast(missing)
    if model.target is not None and model.target != missing:
        raise InputError(f"this model synthesizes {model.target} only, but {missing} is missing")
    conds = [c for c in CONTRASTS if c != missing]
    absent = [c for c in conds if c not in volumes]
    if absent:
        raise InputError(f"to synthesize {missing}, contrasts {', '.join(absent)} are needed too")
    raw = [np.asarray(volumes[c], dtype=np.float32) for c in conds]
    if any(r.ndim != 3 or r.shape != raw[0].shape for r in raw):
        raise InputError(f"expected three 3D volumes of one shape, got {[r.shape for r in raw]}")
    for c, r in zip(conds, raw):
        refuse_constant(r, f"contrast {c}", "there is nothing to synthesize from")
    dev = model.check_sampling(steps=steps, sampler=sampler, seed=seed, device=device, precision=precision)
    x = torch.from_numpy(normalize(raw, model.lower, model.upper)).to(dev)
    model.to(dev).network.eval()
    labels = model.class_labels(missing, device=dev)
    generator = torch.Generator().manual_seed(seed)

    def sample(batch: torch.Tensor) -> torch.Tensor:
        return model.diffusion.sample(batch, labels, sampler=sampler, steps=steps, generator=generator,
                                      progress=progress, precision=precision)

    y = whole_volume(sample, x, model.divisor)[0].float().cpu().numpy()
    return postprocess(y, raw, model.background_threshold)


def synthesize_case(model: CWDMModel, case: BraTSCase, out_path: str | os.PathLike, *, overwrite: bool = False,
                    **kwargs) -> str:
    """Load a case, synthesize its missing contrast and write it in the input geometry (the model first, as in
    every application's entry points: ``generate_file(model, ...)``, ``segment_case(model, ...)``).

    The output keeps the shape, affine, orientation and spacing of the case's first available contrast.  The
    output is checked before any work (not an input, writable, absent unless ``overwrite``); nothing is written
    when anything fails.  Keyword arguments: :func:`synthesize`.
    """
    _check_order(model, case)
    if case.missing is None:
        raise InputError(f"case {case.name}: no contrast is missing")
    with writing([out_path], overwrite=overwrite, inputs=case.inputs()):
        vols = load_case(case)
        y = synthesize(model, {k: v.data for k, v in vols.items()}, case.missing, **kwargs)
        return save_like(y, next(iter(vols.values())), out_path, overwrite=overwrite)


def synthesize_folder(model: CWDMModel, dataset_dir: str | os.PathLike, output_dir: str | os.PathLike, *,
                      overwrite: bool = False, skip_bad: bool = False, **kwargs) -> list[str]:
    """Fill in the missing contrast of every BraTS-layout case folder under ``dataset_dir``.

    Writes ``<output_dir>/<case>-<missing>.nii.gz`` per case.  Every case is read and checked (its layout:
    :func:`~.layout.find_case`; its files: :func:`~.layout.check_case`) and every output checked before the first
    synthesis, so a bad case stops the run before anything is written — or, with ``skip_bad``, is skipped and
    listed at the end.  Under ``torchrun`` each process takes its share of the cases
    (:func:`medfusion.core.runner.run_cases`).
    """
    _check_order(model, dataset_dir)
    folders = case_folders(dataset_dir)
    cases: dict[str, BraTSCase | InputError] = {}
    for folder in folders:
        try:
            cases[folder] = find_case(folder)
        except InputError as e:  # a bad case among good ones: reported with the others
            cases[folder] = e

    def validate(folder: str) -> None:
        if isinstance(cases[folder], InputError):
            raise cases[folder]
        check_case(cases[folder])

    outs = [[c.output_path(output_dir)] if isinstance(c, BraTSCase) else [] for c in cases.values()]
    inputs = [p for c in cases.values() if isinstance(c, BraTSCase) for p in c.inputs()]
    return run_cases(folders, outs, lambda f, o: synthesize_case(model, cases[f], o[0], overwrite=overwrite, **kwargs),
                     overwrite=overwrite, inputs=inputs, validate=validate, names=[os.path.basename(f) for f in folders],
                     skip_bad=skip_bad)


def _check_order(model, first) -> None:
    """The model comes first (earlier versions took the case or folder first): a call in that order ends with a clear
    error."""
    if not hasattr(model, "network"):
        raise TypeError(f"the model comes first: synthesize_case(model, case, out) / synthesize_folder(model, folder, "
                        f"out); got a {type(model).__name__} where the model goes")
