"""From PET/CT files to label, probability and uncertainty files on the CT grid, one case or a HECKTOR folder.

A case flows through:

  PET (SUV) + CT (HU) files → :func:`~.geometry.load_pet_ct` (checks: overlap, SUV, HU, NaN, 3D)
  → :func:`~.geometry.working_grid` (the model's spacing; the head-and-neck box or the CT∩PET overlap; sizes a
    multiple of the model's divisor) → PET (linear, 0 outside) and CT (linear, −1000 HU outside) on it
    (:func:`~.geometry.prepare_case`)
  → :func:`~.inference.run_segmenter`: the preprocessing, the diffusion ensemble or the baseline's ``predict``,
    the postprocessing (:mod:`.transforms`)
  → :func:`~.geometry.to_ct_grid`: labels by nearest neighbour, probabilities and uncertainty linearly; CT voxels
    outside the working grid are background
  → files on the CT grid (the CT's affine and header): labels uint8 (0, 1 GTVp, 2 GTVn), probabilities 4D float32
    (GTVp, GTVn), uncertainty 4D float32 (predictive entropy in nats, variance of GTVp, variance of GTVn).

Every output is checked before any work, and the outputs are written together at the end or not at all.
"""

from __future__ import annotations

import os
import re

import numpy as np

from ...core.inferers import inferer_for
from ...core.processing import check_processing
from ...errors import InputError
from ...io import PathLike, save_like
from .geometry import WorkingCase, load_pet_ct, prepare_case, to_ct_grid
from .inference import Segmentation, default_inferer, run_segmenter

__all__ = ["WorkingCase", "prepare_case", "segment_case", "segment_folder", "write_outputs", "HecktorFolder",
           "Segmenter", "SegmentationSaver",
           "list_hecktor_cases", "hecktor_files", "UNCERTAINTY_MAPS"]

#: the volumes of an uncertainty file, in order
UNCERTAINTY_MAPS = ("entropy", "variance_gtvp", "variance_gtvn")
_CASE = re.compile(r"^(?P<case>.+)__(?P<kind>CT|PT)\.nii(\.gz)?$")


def write_outputs(seg: Segmentation, case: WorkingCase, out: PathLike, *, probabilities: PathLike | None = None,
                  uncertainty: PathLike | None = None, overwrite: bool = False) -> list[str]:
    """Write the label map (and the probability / uncertainty maps when asked) on the CT grid; returns the
    paths written."""
    labels = to_ct_grid(seg.labels, case.grid, case.ct, order=0).astype(np.uint8)
    arrays = [(out, labels, np.uint8)]
    if probabilities is not None:
        prob = to_ct_grid(seg.probabilities, case.grid, case.ct, order=1)
        arrays.append((probabilities, np.moveaxis(prob, 0, -1), np.float32))
    if uncertainty is not None:
        maps = np.concatenate([seg.entropy[None], seg.variance])
        arrays.append((uncertainty, np.moveaxis(to_ct_grid(maps, case.grid, case.ct, order=1), 0, -1), np.float32))
    written = []
    for path, data, dtype in arrays:
        written.append(save_like(data, case.ct, path, overwrite=overwrite, dtype=dtype))
    return written


def segment_case(model, pet_path: PathLike, ct_path: PathLike, out: PathLike, *,
                 probabilities: PathLike | None = None, uncertainty: PathLike | None = None,
                 overwrite: bool = False, **kwargs) -> list[str]:
    """Segment one PET/CT pair with a diffusion model (:class:`~.model.PetCtSegModel`) or the SegResNet baseline
    (keyword arguments: :func:`~.inference.run_segmenter`) and write the outputs on the CT grid.

    Outputs are checked first (:class:`medfusion.outputs.OutputPlan`: not an input, writable, absent unless
    ``overwrite``) and written together at the end, or not at all; returns the paths written.
    """
    from ...outputs import writing

    with writing([out, probabilities, uncertainty], overwrite=overwrite, inputs=[pet_path, ct_path]):
        return _segment_and_write(model, pet_path, ct_path, out, probabilities, uncertainty, overwrite, **kwargs)


def _segment_and_write(model, pet_path, ct_path, out, probabilities, uncertainty, overwrite, **kwargs) -> list[str]:
    result = Segmenter(model, **kwargs)({"pet": pet_path, "ct": ct_path})
    return write_outputs(result["segmentation"], result["case"], out, probabilities=probabilities,
                         uncertainty=uncertainty, overwrite=overwrite)


def hecktor_files(folder: PathLike) -> dict[str, dict[str, str]]:
    """``{case: {"PT": pet, "CT": ct}}`` of the HECKTOR-named files (``<case>__PT.nii.gz``, ``<case>__CT.nii.gz``;
    ``.nii`` too) in ``folder``, sorted by case; a case may lack one of the two.  A folder without any is an
    error."""
    root = os.fspath(folder)
    if not os.path.isdir(root):
        raise InputError(f"not a folder: {root}")
    found: dict[str, dict[str, str]] = {}
    for name in sorted(os.listdir(root)):
        m = _CASE.match(name)
        if m:
            found.setdefault(m["case"], {})[m["kind"]] = os.path.join(root, name)
    if not found:
        raise InputError(f"no HECKTOR-named cases (<case>__CT.nii.gz with <case>__PT.nii.gz) in {root}")
    return found


def list_hecktor_cases(folder: PathLike) -> list[tuple[str, str, str]]:
    """``(case, pet, ct)`` for every ``<case>__PT.nii.gz`` / ``<case>__CT.nii.gz`` pair in ``folder`` (HECKTOR
    naming; ``.nii`` too), sorted by case; a case with only one of the two is an error, as is a folder without
    cases."""
    found = hecktor_files(folder)
    lonely = [f"{c} (no {'PT' if 'PT' not in k else 'CT'})" for c, k in found.items() if len(k) != 2]
    if lonely:
        raise InputError(f"cases without their PET/CT partner in {os.fspath(folder)}: {', '.join(lonely)}")
    return [(c, k["PT"], k["CT"]) for c, k in found.items()]


class HecktorFolder:
    """The HECKTOR-named cases of a folder (:func:`hecktor_files`), for :class:`~medfusion.core.runner.CaseInference`
    (a bundle's ``dataset``); a case without its PET/CT partner is reported with the other bad cases."""

    def __init__(self, dataset_dir: PathLike) -> None:
        self.dataset_dir = dataset_dir

    def cases(self) -> list[tuple[str, dict[str, str]]]:
        return list(hecktor_files(self.dataset_dir).items())

    @staticmethod
    def name(case) -> str:
        return case[0]

    @staticmethod
    def inputs(case) -> list[str]:
        return list(case[1].values())

    @staticmethod
    def validate(case) -> None:
        kinds = case[1]
        if len(kinds) != 2:
            raise InputError(f"no {'PT' if 'PT' not in kinds else 'CT'} file beside "
                             f"{os.path.basename(next(iter(kinds.values())))}")
        load_pet_ct(kinds["PT"], kinds["CT"])

    @staticmethod
    def load(case) -> dict[str, str]:
        return {"pet": case[1]["PT"], "ct": case[1]["CT"]}


class Segmenter:
    """The bundle's ``predictor``: a PET/CT pair → its :class:`WorkingCase` and :class:`~.inference.Segmentation`,
    by the diffusion ensemble (``inferer``, default: :func:`~.inference.default_inferer` of ``sampling``) or the
    SegResNet baseline (``device`` only), with ``preprocessing`` and ``postprocessing`` (MONAI dictionary
    transforms run on the working grid; default: the model's own, :mod:`.transforms`)."""

    def __init__(self, model, inferer=None, preprocessing=None, postprocessing=None, **sampling) -> None:
        from .model import PetCtSegModel

        self.model, self.inferer, self.device = model, None, None
        if isinstance(model, PetCtSegModel):
            self.inferer = inferer_for(inferer, default_inferer, **sampling)
            self.inferer.check(model)  # a bad setting ends before any case is read
        else:
            self.device = sampling.get("device") or getattr(inferer, "device", "cpu")
        check_processing(preprocessing, "preprocessing")
        check_processing(postprocessing, "postprocessing")
        self.preprocessing, self.postprocessing = preprocessing, postprocessing

    def __call__(self, data: dict) -> dict:
        case = prepare_case(data["pet"], data["ct"], self.model.preprocessing, self.model.divisor)
        seg = run_segmenter(self.model, case.pet_suv, case.ct_hu, inferer=self.inferer, device=self.device,
                            preprocessing=self.preprocessing, postprocessing=self.postprocessing)
        return {"segmentation": seg, "case": case}


class SegmentationSaver:
    """The bundle's ``saver``: ``<output_dir>/<case>.nii.gz`` (labels) and, when their folders are given,
    ``<probabilities_dir>/<case>.nii.gz`` and ``<uncertainty_dir>/<case>.nii.gz`` on the CT grid
    (:func:`write_outputs`), so that ``medfusion evaluate --protocol hecktor`` pairs them by name."""

    def __init__(self, output_dir: PathLike, probabilities_dir: PathLike | None = None,
                 uncertainty_dir: PathLike | None = None, overwrite: bool = False) -> None:
        self.dirs = [output_dir, probabilities_dir, uncertainty_dir]
        self.overwrite = bool(overwrite)

    def outputs(self, case) -> list[str]:
        if len(case[1]) != 2:
            return []
        return [os.path.join(os.fspath(d), f"{case[0]}.nii.gz") for d in self.dirs if d is not None]

    def save(self, result: dict, case, outputs) -> list[str]:
        rest = iter(outputs[1:])
        prob, unc = (next(rest) if d is not None else None for d in self.dirs[1:])
        return write_outputs(result["segmentation"], result["case"], outputs[0], probabilities=prob,
                             uncertainty=unc, overwrite=self.overwrite)


def segment_folder(model, folder: PathLike, out_dir: PathLike, *, probabilities_dir: PathLike | None = None,
                   uncertainty_dir: PathLike | None = None, overwrite: bool = False, skip_bad: bool = False,
                   inferer=None, **sampling) -> list[str]:
    """Segment every HECKTOR-named case of ``folder`` (:func:`hecktor_files`) into ``<out_dir>/<case>.nii.gz``
    (and ``<probabilities_dir>/<case>.nii.gz``, ``<uncertainty_dir>/<case>.nii.gz`` when given), so that
    ``medfusion evaluate --protocol hecktor`` pairs them with the reference labels by name: the
    :class:`~medfusion.core.runner.CaseInference` of :class:`HecktorFolder`, :class:`Segmenter` and
    :class:`SegmentationSaver`, as the bundle composes them.  Every case is read and checked
    (:func:`~.geometry.load_pet_ct`) and every output checked before the first one is segmented: a bad case
    stops the run with nothing written, or with ``skip_bad`` is skipped and listed at the end; under ``torchrun``
    each process takes its share (:func:`medfusion.core.runner.run_cases`).  ``inferer`` or ``sampling``:
    :class:`Segmenter`."""
    from ...core.runner import CaseInference

    return CaseInference(HecktorFolder(folder), Segmenter(model, inferer, **sampling),
                         SegmentationSaver(out_dir, probabilities_dir, uncertainty_dir, overwrite),
                         skip_bad=skip_bad)()
