"""cWDM on files: one BraTS case folder, or a folder of them, synthesized and written in the input geometry.

    layout.load_case (medfusion.io.load_volume; shape/affine checked)   3 contrasts
      → inference.synthesize (arrays in, array out)
      → io.save_like(reference = an input contrast): same shape, affine, orientation, spacing.

Every output is checked before any work and nothing is written when anything fails (:mod:`medfusion.outputs`);
under ``torchrun`` each process takes its share of a folder's cases (:func:`medfusion.core.runner.run_cases`).
"""

from __future__ import annotations

import os

from ...core.runner import run_cases
from ...errors import InputError
from ...io import save_like
from ...outputs import writing
from .inference import synthesize
from .layout import BraTSCase, case_folders, check_case, find_case, load_case
from .model import CWDMModel

__all__ = ["synthesize_case", "synthesize_folder"]


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
