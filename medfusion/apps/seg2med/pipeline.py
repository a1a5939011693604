"""Reading label maps (with an optional body mask) from files, and the ``medfusion prior`` command.

* :func:`load_labels` — a label map file checked against its TotalSegmentator task, and a body mask on its grid;
* :func:`write_prior` — a label map file → a prior image file (:mod:`.prior`).

The training ``Compose`` is in :mod:`.transforms`; generation and conversion in :mod:`.generation`.
"""

from __future__ import annotations

from ...errors import InputError
from ...io import PathLike

__all__ = ["load_labels", "write_prior"]


def load_labels(path: PathLike, task: str = "total", *, body: PathLike | None = None):
    """A label map file (checked against ``task``) and, if given, a body mask on the same grid.

    Returns:
        ``(volume, labels, body)``: the label map's :class:`~medfusion.io.Volume` (its geometry), the labels as an
        int array, and the body mask as a bool array or ``None``.
    """
    import numpy as np

    from ...io import check_same_geometry, load_volume
    from .prior import check_label_map

    volume = load_volume(path)
    labels = check_label_map(volume.data, task, what=f"mask {volume.path}")
    mask = None
    if body is not None:
        body_volume = load_volume(body)
        check_same_geometry({"mask": volume, "body": body_volume})
        mask = body_volume.data > 0
        if not mask.any():
            raise InputError(f"body mask {body} is empty")
    return volume, labels, mask if mask is None else np.asarray(mask)


def write_prior(mask: PathLike, modality: str, out: PathLike, *, task: str = "total", body: PathLike | None = None,
                overwrite: bool = False) -> str:
    """Write the prior image of a label map (float32, the mask's geometry); see :mod:`.prior`."""
    import numpy as np

    from ...io import save_like
    from ...outputs import writing
    from .prior import make_prior
    from .tissues import MODALITIES

    if modality not in MODALITIES:
        raise InputError(f"unknown modality {modality!r}; choose one of {', '.join(MODALITIES)}")
    with writing([out], overwrite=overwrite, inputs=[mask, body]):
        volume, labels, body_mask = load_labels(mask, task, body=body)
        prior = make_prior(labels, modality, task=task, body=body_mask, spacing=volume.spacing)
        return save_like(prior, volume, out, overwrite=overwrite, dtype=np.float32)

