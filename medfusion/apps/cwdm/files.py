"""cWDM on files: one BraTS case folder, or a folder of them, synthesized and written in the input geometry.

    BraTSFolder.load: layout.load_case (medfusion.io.load_volume; shape/affine checked)   3 contrasts
      → Synthesizer: inference.synthesize (arrays in, array out) with the preprocessing, the inferer and the
        postprocessing
      → SynthesisSaver: io.save_like(reference = an input contrast): same shape, affine, orientation, spacing.

A folder is the :class:`~medfusion.core.runner.CaseInference` of these three, as the bundle composes them.

Every output is checked before any work and nothing is written when anything fails (:mod:`medfusion.outputs`);
under ``torchrun`` each process takes its share of a folder's cases (:func:`medfusion.core.runner.run_cases`).
"""

from __future__ import annotations

import os

from ...core.inferers import inferer_for
from ...core.processing import check_processing
from ...core.runner import CaseInference
from ...errors import InputError
from ...io import save_like
from ...outputs import writing
from .inference import default_inferer, synthesize
from .layout import BraTSCase, case_folders, check_case, find_case, load_case
from .model import CWDMModel

__all__ = ["synthesize_case", "synthesize_folder", "BraTSFolder", "Synthesizer", "SynthesisSaver"]


class BraTSFolder:
    """The cases of a BraTS-layout dataset (a folder of case folders), for :class:`~medfusion.core.runner.CaseInference`
    (a bundle's ``dataset``): each case folder's :class:`~.layout.BraTSCase` (:func:`~.layout.find_case`), or the
    :class:`~medfusion.errors.InputError` that says why it is not one, reported with the other bad cases."""

    def __init__(self, dataset_dir: str | os.PathLike) -> None:
        self.dataset_dir = dataset_dir

    def cases(self) -> list[BraTSCase | InputError]:
        found: list[BraTSCase | InputError] = []
        for folder in case_folders(self.dataset_dir):
            try:
                found.append(find_case(folder))
            except InputError as e:
                e.folder = folder
                found.append(e)
        return found

    @staticmethod
    def name(case) -> str:
        return os.path.basename(case.folder)

    @staticmethod
    def inputs(case) -> list[str]:
        return case.inputs() if isinstance(case, BraTSCase) else []

    @staticmethod
    def validate(case) -> None:
        if isinstance(case, InputError):
            raise case
        if case.missing is None:
            raise InputError(f"case {case.name}: no contrast is missing")
        check_case(case)

    @staticmethod
    def load(case: BraTSCase) -> dict:
        return {"volumes": load_case(case), "missing": case.missing}


class Synthesizer:
    """The bundle's ``predictor``: a case's loaded contrasts → ``{"image": the missing contrast, "reference": the
    first input}`` by :func:`~.inference.synthesize` with ``inferer`` (default: its default of ``sampling``),
    ``preprocessing`` and ``postprocessing`` (MONAI dictionary transforms; default: the model's own,
    :mod:`.transforms`)."""

    def __init__(self, model: CWDMModel, inferer=None, preprocessing=None, postprocessing=None, **sampling) -> None:
        _check_order(model, inferer)
        self.model, self.inferer = model, inferer_for(inferer, default_inferer, **sampling)
        self.inferer.check(model)  # a bad setting ends before any case is read
        check_processing(preprocessing, "preprocessing")
        check_processing(postprocessing, "postprocessing")
        self.preprocessing, self.postprocessing = preprocessing, postprocessing

    def __call__(self, data: dict) -> dict:
        vols = data["volumes"]
        image = synthesize(self.model, {k: v.data for k, v in vols.items()}, data["missing"], inferer=self.inferer,
                           preprocessing=self.preprocessing, postprocessing=self.postprocessing)
        return {"image": image, "reference": next(iter(vols.values()))}


class SynthesisSaver:
    """The bundle's ``saver``: ``<output_dir>/<case>-<missing>.nii.gz`` in the input geometry (shape, affine,
    orientation, spacing of the case's first contrast), float32."""

    def __init__(self, output_dir: str | os.PathLike, overwrite: bool = False) -> None:
        self.output_dir, self.overwrite = output_dir, bool(overwrite)

    def outputs(self, case) -> list[str]:
        return [case.output_path(self.output_dir)] if isinstance(case, BraTSCase) and case.missing else []

    def save(self, result: dict, case, outputs) -> list[str]:
        return [save_like(result["image"], result["reference"], outputs[0], overwrite=self.overwrite)]


def synthesize_case(model: CWDMModel, case: BraTSCase, out_path: str | os.PathLike, *, overwrite: bool = False,
                    inferer=None, **sampling) -> str:
    """Load a case, synthesize its missing contrast and write it in the input geometry (the model first, as in
    every application's entry points: ``generate_file(model, ...)``, ``segment_case(model, ...)``).

    The output keeps the shape, affine, orientation and spacing of the case's first available contrast.  The
    output is checked before any work (not an input, writable, absent unless ``overwrite``); nothing is written
    when anything fails.  ``inferer`` or ``sampling``: :func:`.inference.synthesize`.
    """
    _check_order(model, case)
    if case.missing is None:
        raise InputError(f"case {case.name}: no contrast is missing")
    predictor = Synthesizer(model, inferer, **sampling)
    with writing([out_path], overwrite=overwrite, inputs=case.inputs()):
        result = predictor(BraTSFolder.load(case))
        return save_like(result["image"], result["reference"], out_path, overwrite=overwrite)


def synthesize_folder(model: CWDMModel, dataset_dir: str | os.PathLike, output_dir: str | os.PathLike, *,
                      overwrite: bool = False, skip_bad: bool = False, inferer=None, **sampling) -> list[str]:
    """Fill in the missing contrast of every BraTS-layout case folder under ``dataset_dir``: the
    :class:`~medfusion.core.runner.CaseInference` of :class:`BraTSFolder`, :class:`Synthesizer` and
    :class:`SynthesisSaver`, as the bundle composes them.

    Writes ``<output_dir>/<case>-<missing>.nii.gz`` per case.  Every case is read and checked (its layout:
    :func:`~.layout.find_case`; its files: :func:`~.layout.check_case`) and every output checked before the first
    synthesis, so a bad case stops the run before anything is written — or, with ``skip_bad``, is skipped and
    listed at the end.  Under ``torchrun`` each process takes its share of the cases
    (:func:`medfusion.core.runner.run_cases`).
    """
    _check_order(model, dataset_dir)
    return CaseInference(BraTSFolder(dataset_dir), Synthesizer(model, inferer, **sampling),
                         SynthesisSaver(output_dir, overwrite), skip_bad=skip_bad)()


def _check_order(model, first) -> None:
    """The model comes first (earlier versions took the case or folder first): a call in that order ends with a clear
    error."""
    if not hasattr(model, "network"):
        raise TypeError(f"the model comes first: synthesize_case(model, case, out) / synthesize_folder(model, folder, "
                        f"out); got a {type(model).__name__} where the model goes")
