"""seg2med on files: label maps (with an optional body mask and tissue map) read and checked, and the commands
that write a file in the input's geometry.

* :func:`load_labels` — a label map file checked against its TotalSegmentator task, and a body mask on its grid;
* :func:`generate_file` (``medfusion generate``), :func:`convert_file` (``medfusion convert``) — through
  :mod:`.inference` (arrays in, arrays out);
* :func:`write_prior` (``medfusion prior``) — a label map file → a prior image file (:mod:`.prior`);
* the bundle's components: :class:`Seg2MedFolder` (``dataset``), :class:`Generator` (``predictor``: the model, its
  inferer, the ``preprocessing`` and the ``postprocessing``), :class:`ImageSaver` (``saver``), run by
  :class:`~medfusion.core.runner.CaseInference`.

The training ``Compose`` is in :mod:`.transforms`.
"""

from __future__ import annotations

import functools
import os

import numpy as np

from ...core.inferers import inferer_for
from ...core.processing import check_processing
from ...errors import InputError
from ...io import PathLike, check_same_geometry, load_volume, save_like
from ...outputs import writing
from .inference import SOURCE_TASK, convert, default_inferer, from_ras, generate, ras_spacing, to_ras
from .model import Seg2MedModel, check_task

__all__ = ["load_labels", "load_body", "generate_volume", "convert_volume", "generate_file", "convert_file",
           "write_prior", "Seg2MedFolder", "Generator", "ImageSaver"]


def load_labels(path: PathLike, task: str = "total", *, body: PathLike | None = None,
                tissues: PathLike | None = None):
    """A label map file (checked against ``task``) and, if given, a body mask and a tissue map on the same grid.

    Returns:
        ``(volume, labels, body, tissues)``: the label map's :class:`~medfusion.io.Volume` (its geometry), the labels
        as an int array, the body mask as a bool array or ``None``, the tissue map (TotalSegmentator
        ``tissue_types``: 1 subcutaneous fat, 2 torso fat, 3 skeletal muscle) as an int array or ``None``.
    """
    from ...io import check_same_geometry, load_volume
    from .prior import check_label_map, check_tissue_map

    volume = load_volume(path)
    labels = check_label_map(volume.data, task, what=f"mask {volume.path}")
    mask = None if body is None else load_body(body, volume, "mask")
    tissue_map = None
    if tissues is not None:
        tissue_volume = load_volume(tissues)
        check_same_geometry({"mask": volume, "tissues": tissue_volume})
        tissue_map = check_tissue_map(tissue_volume.data, labels.shape, what=f"tissue map {tissues}")
    return volume, labels, mask, tissue_map


def load_body(path: PathLike, reference, what: str):
    """A body mask file (non-zero = body) as a bool array, after checking it is on the grid of ``reference`` (a
    :class:`~medfusion.io.Volume`, named ``what`` in messages) and not empty."""
    import numpy as np

    from ...io import check_same_geometry, load_volume

    body_volume = load_volume(path)
    check_same_geometry({what: reference, "body": body_volume})
    mask = np.asarray(body_volume.data > 0)
    if not mask.any():
        raise InputError(f"body mask {path} is empty")
    return mask


def write_prior(mask: PathLike, modality: str, out: PathLike, *, task: str = "total", body: PathLike | None = None,
                tissues: PathLike | None = None, table: str = "seg2med", overwrite: bool = False) -> str:
    """Write the prior image of a label map (float32, the mask's geometry) from ``table``; see :mod:`.prior`."""
    import numpy as np

    from ...io import save_like
    from ...outputs import writing
    from .prior import make_prior
    from .prior_tables import check_table
    from .tissues import MODALITIES

    if modality not in MODALITIES:
        raise InputError(f"unknown modality {modality!r}; choose one of {', '.join(MODALITIES)}")
    check_table(table)
    with writing([out], overwrite=overwrite, inputs=[mask, body, tissues]):
        volume, labels, body_mask, tissue_map = load_labels(mask, task, body=body, tissues=tissues)
        prior = make_prior(labels, modality, task=task, body=body_mask, tissues=tissue_map, spacing=volume.spacing,
                           table=table, warn_body=True)
        return save_like(prior, volume, out, overwrite=overwrite, dtype=np.float32)


def generate_volume(model: Seg2MedModel, mask: PathLike, target: str, *, task: str = "total",
                    body: PathLike | None = None, tissues: PathLike | None = None, **kwargs):
    """A label map file (with optional body mask and tissue map files on its grid) → ``(image, volume)``: the
    generated CT/MR (float32, the mask's voxel order) and the mask's :class:`~medfusion.io.Volume` (its geometry).
    Keyword arguments: :func:`.inference.generate`."""
    volume, labels, body_mask, tissue_map = load_labels(mask, task, body=body, tissues=tissues)
    ras = [None if a is None else to_ras(a, volume.affine) for a in (body_mask, tissue_map)]
    y = generate(model, to_ras(labels, volume.affine), target, task=task, body=ras[0], tissues=ras[1],
                 spacing=ras_spacing(volume.spacing, volume.affine), **kwargs)
    return from_ras(y, volume.affine), volume


def convert_volume(model: Seg2MedModel, image: PathLike, source: str, target: str, *, via: str = "prior",
                   mask: PathLike | None = None, task: str | None = None, tissues: PathLike | None = None,
                   body: PathLike | None = None, **kwargs):
    """An image file of ``source`` → ``(image, volume)``: ``target`` (float32, the input's voxel order) and the
    input's :class:`~medfusion.io.Volume`; ``mask``, ``tissues``, ``body``: files on the image's grid (see
    :func:`.inference.convert`)."""
    check_task(source, target)
    volume = load_volume(image)
    arrays = {"labels": None, "tissues": None, "body": None}
    if mask is not None:
        labelled, arrays["labels"], arrays["body"], arrays["tissues"] = load_labels(
            mask, task or SOURCE_TASK[source], body=body, tissues=tissues)
        check_same_geometry({"image": volume, "mask": labelled})
    elif tissues is not None:
        raise InputError("a tissue map goes with the source's label map (mask)")
    elif body is not None:
        arrays["body"] = load_body(body, volume, "image")
    ras = {k: None if a is None else to_ras(a, volume.affine) for k, a in arrays.items()}
    y = convert(model, to_ras(volume.data, volume.affine), source, target, via=via, task=task,
                spacing=ras_spacing(volume.spacing, volume.affine), **ras, **kwargs)
    return from_ras(y, volume.affine), volume


def generate_file(model: Seg2MedModel, mask: PathLike, target: str, out: PathLike, *, task: str = "total",
                  body: PathLike | None = None, tissues: PathLike | None = None, overwrite: bool = False,
                  **kwargs) -> str:
    """``medfusion generate``: a label map file (with optional body mask and tissue map files on its grid) → a CT/MR
    file (float32) in the mask's geometry (:func:`generate_volume`)."""
    with writing([out], overwrite=overwrite, inputs=[mask, body, tissues]):
        y, volume = generate_volume(model, mask, target, task=task, body=body, tissues=tissues, **kwargs)
        return save_like(y, volume, out, overwrite=overwrite, dtype=np.float32)


def convert_file(model: Seg2MedModel, image: PathLike, source: str, target: str, out: PathLike, *,
                 via: str = "prior", mask: PathLike | None = None, task: str | None = None,
                 tissues: PathLike | None = None, body: PathLike | None = None, overwrite: bool = False,
                 **kwargs) -> str:
    """``medfusion convert``: an image file of ``source`` → ``target`` (float32) in the input's geometry
    (:func:`convert_volume`)."""
    check_task(source, target)
    with writing([out], overwrite=overwrite, inputs=[image, mask, tissues, body]):
        y, volume = convert_volume(model, image, source, target, via=via, mask=mask, task=task, tissues=tissues,
                                   body=body, **kwargs)
        return save_like(y, volume, out, overwrite=overwrite, dtype=np.float32)


class Seg2MedFolder:
    """The case folders of a dataset, for :class:`~medfusion.core.runner.CaseInference` (the bundle's ``dataset``):
    every sub-folder of ``dataset_dir`` holding ``mask.nii.gz`` (``source="prior"``) or ``<source>.nii.gz``, with
    its ``body.nii.gz`` and ``tissues.nii.gz`` when present, and — for a conversion ``via="prior"`` — the source's
    label map ``mask.nii.gz`` (``task``: ``total`` for a CT, ``total_mr`` for an MR when ``None``)."""

    def __init__(self, dataset_dir: PathLike, *, source: str = "prior", via: str = "prior",
                 task: str | None = None) -> None:
        self.dataset_dir, self.source, self.via = dataset_dir, source, via
        self.task = task or SOURCE_TASK.get(source, "total")

    def cases(self) -> list[tuple]:
        root = os.fspath(self.dataset_dir)
        if not os.path.isdir(root):
            raise InputError(f"dataset folder not found: {root}")
        needed = "mask" if self.source == "prior" else self.source
        cases = []
        for name in sorted(os.listdir(root)):
            found = [f for f in (os.path.join(root, name, f"{needed}{ext}") for ext in (".nii.gz", ".nii"))
                     if os.path.isfile(f)]
            if found:
                extra = [os.path.join(root, name, f"{key}.nii.gz") for key in ("body", "tissues")]
                mask = _mask_beside(found[0]) if self.source != "prior" and self.via == "prior" else None
                cases.append((name, found[0], *(f if os.path.isfile(f) else None for f in extra), mask))
        if not cases:
            raise InputError(f"no case folders with {needed}.nii.gz in {root}")
        return cases

    @staticmethod
    def name(case) -> str:
        return case[0]

    @staticmethod
    def inputs(case) -> list[str]:
        return [p for p in case[1:] if p]

    def validate(self, case) -> None:
        from ...io import refuse_constant

        _, path, body, tissues, mask = case
        if self.source == "prior":
            load_labels(path, self.task, body=body, tissues=tissues)
            return
        refuse_constant(load_volume(path).data, path, "there is nothing to convert")
        if mask:
            load_labels(mask, self.task, body=body, tissues=tissues)

    @staticmethod
    def load(case) -> dict:
        return dict(zip(("path", "body", "tissues", "mask"), case[1:]))


def _mask_beside(path: str) -> str:
    """The ``mask.nii.gz`` beside a case's source image (a conversion the authors' way needs it)."""
    mask = os.path.join(os.path.dirname(path), "mask.nii.gz")
    if not os.path.isfile(mask):
        raise InputError(f"conversion via the prior needs the source's label map {mask} (TotalSegmentator; "
                         "`medfusion masks`), or set via to image")
    return mask


class Generator:
    """The bundle's ``predictor``: a case's files → ``{"image": target, "reference": the input's volume}`` — from the
    label map (``source="prior"``, :func:`generate_volume`) or by converting the source image
    (:func:`convert_volume`, ``via`` the prior or the image) — sampled by ``inferer`` (default:
    :func:`.inference.default_inferer` of ``sampling``), with ``preprocessing`` and ``postprocessing`` (MONAI
    dictionary transforms on the model's grid, see :func:`.inference.generate`; ``None``: the model's own windows,
    :mod:`.transforms`). Checks that the model does the task before any work."""

    def __init__(self, model: Seg2MedModel, target: str = "ct", *, source: str = "prior", via: str = "prior",
                 task: str | None = None, inferer=None, preprocessing=None, postprocessing=None, **sampling) -> None:
        self.model, self.target, self.source, self.via = model, target, source, via
        self.task = task or SOURCE_TASK.get(source, "total")
        model.task_index("prior" if source == "prior" or via == "prior" else source, target)
        self.inferer = inferer_for(inferer, functools.partial(default_inferer, model), **sampling)
        self.inferer.check(model)  # a bad setting ends before any case is read
        check_processing(preprocessing, "preprocessing")
        check_processing(postprocessing, "postprocessing")
        self.preprocessing, self.postprocessing = preprocessing, postprocessing

    def __call__(self, data: dict) -> dict:
        files = {"task": self.task, "body": data.get("body"), "inferer": self.inferer,
                 "preprocessing": self.preprocessing, "postprocessing": self.postprocessing}
        if self.source == "prior":
            y, volume = generate_volume(self.model, data["path"], self.target, tissues=data.get("tissues"), **files)
        else:
            mask = data.get("mask")
            y, volume = convert_volume(self.model, data["path"], self.source, self.target, via=self.via, mask=mask,
                                       tissues=data.get("tissues") if mask else None, **files)
        return {"image": y, "reference": volume}


class ImageSaver:
    """The bundle's ``saver``: ``<output_dir>/<case>_<target>.nii.gz`` (float32) in the input's geometry."""

    def __init__(self, output_dir: PathLike, target: str = "ct", overwrite: bool = False) -> None:
        self.output_dir, self.target, self.overwrite = output_dir, target, bool(overwrite)

    def outputs(self, case) -> list[str]:
        return [os.path.join(os.fspath(self.output_dir), f"{case[0]}_{self.target}.nii.gz")]

    def save(self, result: dict, case, outputs) -> list[str]:
        return [save_like(result["image"], result["reference"], outputs[0], overwrite=self.overwrite,
                          dtype=np.float32)]
