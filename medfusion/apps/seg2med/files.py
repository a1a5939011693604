"""seg2med on files: label maps (with an optional body mask and tissue map) read and checked, and the commands
that write a file in the input's geometry.

* :func:`load_labels` — a label map file checked against its TotalSegmentator task, and a body mask on its grid;
* :func:`generate_file` (``medfusion generate``), :func:`convert_file` (``medfusion convert``) — through
  :mod:`.inference` (arrays in, arrays out);
* :func:`write_prior` (``medfusion prior``) — a label map file → a prior image file (:mod:`.prior`).

The training ``Compose`` is in :mod:`.transforms`.
"""

from __future__ import annotations

import numpy as np

from ...errors import InputError
from ...io import PathLike, check_same_geometry, load_volume, save_like
from ...outputs import writing
from .inference import SOURCE_TASK, convert, from_ras, generate, ras_spacing, to_ras
from .model import Seg2MedModel, check_task

__all__ = ["load_labels", "load_body", "generate_file", "convert_file", "write_prior"]


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


def generate_file(model: Seg2MedModel, mask: PathLike, target: str, out: PathLike, *, task: str = "total",
                  body: PathLike | None = None, tissues: PathLike | None = None, overwrite: bool = False,
                  **kwargs) -> str:
    """``medfusion generate``: a label map file (with optional body mask and tissue map files on its grid) → a CT/MR
    file (float32) in the mask's geometry."""
    with writing([out], overwrite=overwrite, inputs=[mask, body, tissues]):
        volume, labels, body_mask, tissue_map = load_labels(mask, task, body=body, tissues=tissues)
        ras = [None if a is None else to_ras(a, volume.affine) for a in (body_mask, tissue_map)]
        y = generate(model, to_ras(labels, volume.affine), target, task=task, body=ras[0], tissues=ras[1],
                     spacing=ras_spacing(volume.spacing, volume.affine), **kwargs)
        return save_like(from_ras(y, volume.affine), volume, out, overwrite=overwrite, dtype=np.float32)


def convert_file(model: Seg2MedModel, image: PathLike, source: str, target: str, out: PathLike, *,
                 via: str = "prior", mask: PathLike | None = None, task: str | None = None,
                 tissues: PathLike | None = None, body: PathLike | None = None, overwrite: bool = False,
                 **kwargs) -> str:
    """``medfusion convert``: an image file of ``source`` → ``target`` (float32) in the input's geometry; ``mask``,
    ``tissues``, ``body``: files on the image's grid (see :func:`convert`)."""
    check_task(source, target)
    with writing([out], overwrite=overwrite, inputs=[image, mask, tissues, body]):
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
        return save_like(from_ras(y, volume.affine), volume, out, overwrite=overwrite, dtype=np.float32)
