"""Generating CT/MR from a label map and converting between CT and MR, arrays in and arrays out (files:
:mod:`.files`).

The data flow of one volume::

    load_labels / load_volume (medfusion.io: 3D, finite, the file's affine)
      → to RAS+ voxel order (nibabel orientations; undone at the end), so axial slices are the last axis
      → the model's grid (model_grid: its spacing and window, centred on the body; a field of view that cuts the
        body set in a body of the training bodies' size, ModelGrid.body_context)
      → condition: prior.make_prior (mask [+ tissue map] → HU or MR signal, the model's prior table) or the source
        image
      → the preprocessing (default: transforms.inference_preprocessing, the condition windowed to [0, 1] by the
        model's prior window of the target, or the source's window)
      → the inferer: 2D model core.inferers.SliceInferer (in-plane padding to the divisor, batches of slices),
        3D model core.inferers.WholeVolumeInferer (padding to the divisor, the whole volume at once)
      → ConditionalDiffusion.sample (class label = the task), clipped to [0, 1]
      → the postprocessing (default: transforms.inference_postprocessing, the target's window undone)
      → back onto the input grid, air outside the model's window and outside the body
      → io.save_like(reference = the input): same shape, affine, orientation and spacing; float32.

The preprocessing and postprocessing are MONAI dictionary transforms (:mod:`medfusion.core.processing`; which steps
they hold and why the others stay here: :mod:`.transforms`).
"""

from __future__ import annotations

import functools
from typing import Callable

import numpy as np
import torch

from ...core.inferers import DiffusionInferer, SliceInferer, WholeVolumeInferer, inferer_for
from ...core.processing import check_processing, postprocessed, preprocessed
from ...errors import InputError
from ...io import refuse_constant
from .model import AIR, DEFAULT_SAMPLER, DEFAULT_STEPS, Seg2MedModel, check_task
from .transforms import inference_postprocessing, inference_preprocessing

__all__ = ["translate", "default_inferer", "generate", "convert", "to_ras", "from_ras", "ras_spacing", "CONVERSIONS",
           "SOURCE_TASK"]


def to_ras(data: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """``data`` permuted/flipped into RAS+ voxel order (the last axis inferior → superior)."""
    import nibabel.orientations as nio

    return np.ascontiguousarray(nio.apply_orientation(data, nio.io_orientation(affine)))


def from_ras(data: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """The inverse of :func:`to_ras` for the same ``affine``."""
    import nibabel.orientations as nio

    ornt = nio.io_orientation(affine)
    back = nio.ornt_transform(nio.axcodes2ornt(("R", "A", "S")), ornt)
    return np.ascontiguousarray(nio.apply_orientation(data, back))


def default_inferer(model: Seg2MedModel, **sampling) -> DiffusionInferer:
    """The inferer :func:`translate` samples ``model`` with unless given another: a 2D model slice by slice
    (:class:`~medfusion.core.inferers.SliceInferer`, 16 axial slices a batch, one seed for the volume), a 3D model
    on the whole volume; :data:`~.model.DEFAULT_STEPS` steps of :data:`~.model.DEFAULT_SAMPLER`, ``sampling``
    overriding (``steps``, ``sampler``, ``seed``, ``device``, ``precision``, ``timestep_spacing``, ``variance`` —
    ``fixed_small`` is the authors' MONAI scheduler's — and, for a 2D model, ``batch_size``)."""
    settings = {"steps": DEFAULT_STEPS, "sampler": DEFAULT_SAMPLER, **sampling}
    if model.dims == 2:
        return SliceInferer(**{"batch_size": 16, **settings})
    settings.pop("batch_size", None)  # the whole volume is one batch
    return WholeVolumeInferer(**settings)


def translate(model: Seg2MedModel, condition01: np.ndarray, source: str, target: str, *,
              inferer: DiffusionInferer | None = None, progress: Callable[[int, int], None] | None = None,
              **sampling) -> np.ndarray:
    """Sample ``target`` (windowed, [0, 1]) for a condition already windowed to [0, 1], RAS+ voxel order, by
    ``inferer`` (default: :func:`default_inferer` of ``sampling``).

    Returns a float32 array of the input shape in [0, 1].
    """
    check_task(source, target)
    cond = np.asarray(condition01, dtype=np.float32)
    if cond.ndim != 3:
        raise InputError(f"expected a 3D volume, got shape {cond.shape}")
    inferer = inferer_for(inferer, functools.partial(default_inferer, model), **sampling)
    labels = model.class_labels(source, target, batch=1)
    y = inferer(torch.from_numpy(cond)[None], model, labels, progress)
    return y[0].clamp(0, 1).numpy()


def _sample(model: Seg2MedModel, condition: np.ndarray, source: str, target: str, *, preprocessing=None,
            postprocessing=None, **kwargs) -> np.ndarray:
    """``target`` in its units on the model's grid from the raw ``condition`` there (a prior image for
    ``source="prior"``, else the source image): the preprocessing, :func:`translate`, the postprocessing (``None``:
    the model's own, :mod:`.transforms`)."""
    check_processing(preprocessing, "preprocessing")
    check_processing(postprocessing, "postprocessing")
    check_task(source, target)
    if preprocessing is None:
        window = model.prior_window(target) if source == "prior" else model.window(source)
        preprocessing = inference_preprocessing(window)
    if postprocessing is None:
        postprocessing = inference_postprocessing(model.window(target))
    raw = np.asarray(condition, dtype=np.float32)[None]
    y = translate(model, preprocessed(preprocessing, raw)[0], source, target, **kwargs)
    return postprocessed(postprocessing, y[None], raw)[0][0]


def _finish(y: np.ndarray, target: str, body: np.ndarray | None, grid) -> np.ndarray:
    """The result (the target's units, the model's grid) back on the input grid, air outside the body."""
    out = grid.from_model(y, fill=AIR[target]).astype(np.float32, copy=False)
    if body is not None:
        out[~body] = AIR[target]
    return out


def generate(model: Seg2MedModel, labels: np.ndarray, target: str, *, task: str = "total",
             body: np.ndarray | None = None, tissues: np.ndarray | None = None, spacing=None,
             **kwargs) -> np.ndarray:
    """CT (HU) or MR from a TotalSegmentator label map in RAS+ voxel order (float32, same shape).

    ``body``: the body contour (default: :func:`.prior.body_from_labels`, with a warning); air outside it.
    ``tissues``: TotalSegmentator ``tissue_types`` map (fat and muscle; default none: the body outside the organs
    gets the body value). ``spacing``: the voxel size in mm (RAS+ order; ``None``: already the model's). The label
    maps are taken to the model's grid (:meth:`Seg2MedModel.grid`; a field of view that cuts the body is set in a
    body of the training bodies' size there, :meth:`~.model_grid.ModelGrid.body_context`), the prior is made there
    from the model's table, and the result comes back onto the input grid. ``preprocessing``: a MONAI dictionary
    transform from ``{"image": the prior image (1, *W) on the model's grid}`` to ``"image"`` in [0, 1], same shape;
    ``postprocessing``: one from ``{"pred": the sample in [0, 1] (1, *W), "inputs": the prior image}`` to ``"pred"`` in the target's
    units (``None``: the model's own windows, :func:`~.transforms.inference_preprocessing`,
    :func:`~.transforms.inference_postprocessing`). Other keyword arguments: :func:`translate`.
    """
    from .prior import check_label_map, check_tissue_map, make_prior, resolve_body

    lab = check_label_map(labels, task)
    tis = None if tissues is None else check_tissue_map(tissues, lab.shape)
    spacing = model.input_spacing(lab.shape, spacing)
    body = resolve_body(lab, tis, body, spacing, warn=True)
    grid = model.grid(lab.shape, spacing, body)
    on_grid = [None if a is None else grid.to_model(a, labels=True) for a in (lab, tis, body)]
    body_window = grid.body_context(on_grid[2])  # a cut field of view set in a body of the training bodies' size
    prior = make_prior(on_grid[0], target, task=task, body=body_window, tissues=on_grid[1], table=model.prior_table)
    return _finish(_sample(model, prior, "prior", target, **kwargs), target, body, grid)


#: how ``convert`` works: ``prior`` — the authors' way, the source's label map → the target's prior → the mask→image
#: model; ``image`` — medfusion's image-conditioned model (the source image is the condition)
CONVERSIONS = ("prior", "image")
#: the TotalSegmentator task that labels each source modality
SOURCE_TASK = {"ct": "total", "t1": "total_mr", "t2": "total_mr"}


def convert(model: Seg2MedModel, image: np.ndarray, source: str, target: str, *, via: str = "prior",
            labels: np.ndarray | None = None, task: str | None = None, tissues: np.ndarray | None = None,
            body: np.ndarray | None = None, spacing=None, **kwargs) -> np.ndarray:
    """``image`` of modality ``source`` (HU or MR signal, RAS+ voxel order) converted to ``target``.

    ``via="prior"`` (the authors' way): ``labels`` — the source's TotalSegmentator label map (``task``: ``total`` for
    a CT, ``total_mr`` for an MR by default; e.g. from ``medfusion masks``) — becomes the target's prior image
    (classes mapped between ``total`` and ``total_mr``, :mod:`.prior_tables`), from which the mask→``target``
    model generates; ``tissues`` as :func:`generate`. ``via="image"``: the source image itself conditions a model
    trained for ``source``→``target``. ``body``: air outside it (default: for a CT the published rule, CT > −500
    HU, largest component, filled; for an MR :func:`.prior.body_from_mr`). ``spacing``, ``preprocessing`` and
    ``postprocessing``: as :func:`generate` (``via="image"``: the condition is the source image, windowed by default
    by the source's window).
    """
    from .prior import body_from_ct, body_from_mr

    if source == "prior":
        raise InputError("convert takes an image (ct, t1 or t2); use generate for a label map")
    check_task(source, target)
    if via not in CONVERSIONS:
        raise InputError(f"unknown conversion {via!r}; choose one of {', '.join(CONVERSIONS)}")
    image = np.asarray(image, dtype=np.float32)
    refuse_constant(image, f"the {source} image", "there is nothing to convert")
    if body is None:
        body = body_from_ct(image) if source == "ct" else body_from_mr(image)
    if via == "prior":
        if labels is None:
            raise InputError(f"conversion the authors' way needs the {source} image's label map (TotalSegmentator "
                             f"{SOURCE_TASK[source]!r}, e.g. `medfusion masks --task {SOURCE_TASK[source]}`); give "
                             "it, or convert by the image-conditioned model (via image)")
        return generate(model, labels, target, task=task or SOURCE_TASK[source], body=body, tissues=tissues,
                        spacing=spacing, **kwargs)
    grid = model.grid(image.shape, model.input_spacing(image.shape, spacing), body)
    y = _sample(model, grid.to_model(image, labels=False), source, target, **kwargs)
    return _finish(y, target, body, grid)


def ras_spacing(spacing, affine) -> tuple[float, float, float]:
    """The voxel ``spacing`` of a file with ``affine``, reordered as :func:`to_ras` reorders its axes."""
    import nibabel.orientations as nio

    ornt = nio.io_orientation(affine)
    out = [0.0, 0.0, 0.0]
    for i, (axis, _) in enumerate(ornt):
        out[int(axis)] = float(spacing[i])
    return tuple(out)
