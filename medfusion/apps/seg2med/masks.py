"""Label maps from TotalSegmentator (an optional extra), checked before any work.

TotalSegmentator downloads its weights at first use; medfusion never downloads anything. So
:func:`check_totalsegmentator` first finds the package and the weight folders that ``task`` needs in
TotalSegmentator's own weights folder (``$TOTALSEG_WEIGHTS_PATH``, else ``$TOTALSEG_HOME_DIR/nnunet/results``,
else ``~/.totalsegmentator/nnunet/results``) and, if any is missing, stops with one line that says which and
how to install them. Its anonymous usage statistics are switched off in its ``config.json`` before it runs.
"""

from __future__ import annotations

import os

from ...errors import InputError, first_line
from ...io import PathLike
from .tissues import KNOWN_TASKS, TISSUE_TASKS

__all__ = ["check_totalsegmentator", "segment"]

INSTALL = ("install it with `pip install 'medfusion[totalsegmentator]'` (it pulls nnU-Net and several GB)")


def _weight_folders(task: str, fast: bool) -> list[str]:
    """The weight folder names that TotalSegmentator's ``task`` needs, from its own task table."""
    from totalsegmentator.map_tasks_config import TASK_CONFIGS, TASK_ID_WEIGHTS_CONFIGS

    config = TASK_CONFIGS[task]
    ids = config["sub_modes"]["fast" if fast else "default"]["task_id"] if "sub_modes" in config else \
        config["task_id"]  # a task without a fast model (tissue_types) names its weights directly
    ids = ids if isinstance(ids, list) else [ids]
    return [TASK_ID_WEIGHTS_CONFIGS[i]["foldername"] for i in ids]


def check_totalsegmentator(task: str = "total", *, fast: bool = False) -> str:
    """The weights folder after checking that TotalSegmentator and ``task``'s weights are installed.

    Raises:
        InputError: TotalSegmentator is not installed, or the task's weights are not in its weights folder (the
            message names the missing folders and the command that installs them).
    """
    if task not in KNOWN_TASKS:
        raise InputError(f"unknown TotalSegmentator task {task!r}; choose one of {', '.join(KNOWN_TASKS)}")
    try:
        from totalsegmentator.config import get_weights_dir
    except ImportError as err:
        raise InputError(f"TotalSegmentator is needed to make label maps and is not installed ({err}); "
                         f"{INSTALL}") from None
    try:
        folders = _weight_folders(task, fast)
    except (ImportError, KeyError) as err:
        raise InputError(f"this TotalSegmentator version has no weight table for task {task!r} ({err!r}); "
                         "TotalSegmentator ≥ 2.4 is supported") from None
    weights = get_weights_dir()
    missing = [f for f in folders if not (weights / f).is_dir()]
    if missing:
        name = {"total": "total_fast", "total_mr": "total_fast_mr"}.get(task, task) if fast else task
        licence = (" (a licensed TotalSegmentator task: it also needs TotalSegmentator's licence key)"
                   if task in TISSUE_TASKS.values() else "")
        raise InputError(
            f"TotalSegmentator's weights for task {task!r}{' (fast)' if fast else ''} are not installed: "
            f"{', '.join(missing)} missing in its weights folder (set by TOTALSEG_WEIGHTS_PATH or "
            f"TOTALSEG_HOME_DIR); medfusion downloads nothing: on a machine with internet access run "
            f"`totalseg_download_weights -t {name}` and copy that weights folder here{licence}")
    return os.fspath(weights)


def _quiet_statistics() -> None:
    from totalsegmentator.config import set_config_key, setup_totalseg

    setup_totalseg()
    set_config_key("send_usage_stats", False)


def segment(image: PathLike, out: PathLike, *, task: str = "total", fast: bool = False, device: str = "cpu",
            body_out: PathLike | None = None, tissues_out: PathLike | None = None,
            overwrite: bool = False) -> list[str]:
    """Run TotalSegmentator on ``image`` and write its label map (uint8, the image's geometry) to ``out``.

    Args:
        image: a CT (``task="total"``) or MR (``task="total_mr"``) volume.
        fast: TotalSegmentator's 3 mm model.
        device: ``cpu`` or ``cuda`` (``cuda:N``).
        body_out: also write the body contour of a CT by the published rule (:func:`.prior.body_from_ct`).
        tissues_out: also write the tissue map (``tissue_types`` for a CT, ``tissue_types_mr`` for an MR:
            1 subcutaneous fat, 2 torso fat, 3 skeletal muscle); both tasks' weights are checked first.

    Returns:
        The written paths.
    """
    from ...outputs import writing

    if body_out is not None and task != "total":
        raise InputError("--body needs a CT (task 'total'): the body contour comes from the CT > −500 HU rule")
    with writing([out, body_out, tissues_out], overwrite=overwrite, inputs=[image]):
        return _segment_and_write(image, out, task, fast, device, body_out, tissues_out, overwrite)


def _run_task(volume, task: str, fast: bool, device: str):
    import nibabel as nib
    import numpy as np

    try:
        from totalsegmentator.python_api import totalsegmentator
    except ImportError as err:
        raise InputError(f"TotalSegmentator is installed without what it needs to run ({err}); {INSTALL}") from None
    ts_device = "gpu" if str(device).startswith("cuda") else "cpu"
    nifti = nib.Nifti1Image(volume.data, volume.affine, volume.header)
    try:
        result = totalsegmentator(nifti, None, task=task, fast=fast, device=ts_device, quiet=True)
    except (OSError, ImportError, RuntimeError) as err:  # e.g. a weight it still wanted to download, offline
        raise InputError(f"TotalSegmentator failed: {first_line(err)}") from None
    return np.asarray(result.dataobj)


def _segment_and_write(image, out, task, fast, device, body_out, tissues_out, overwrite) -> list[str]:
    import numpy as np

    from ...io import load_volume, refuse_constant, save_like
    from .prior import body_from_ct, check_label_map, check_tissue_map

    volume = load_volume(image)
    refuse_constant(volume.data, f"image {volume.path}", "there is nothing to segment")
    check_totalsegmentator(task, fast=fast)
    if tissues_out is not None:
        check_totalsegmentator(TISSUE_TASKS[task])
    _quiet_statistics()
    labels = _run_task(volume, task, fast, device)
    check_label_map(labels, task, what="TotalSegmentator's label map")
    written = [save_like(labels, volume, out, overwrite=overwrite, dtype=np.uint8)]
    if body_out is not None:
        written.append(save_like(body_from_ct(volume.data), volume, body_out, overwrite=overwrite, dtype=np.uint8))
    if tissues_out is not None:
        tissues = check_tissue_map(_run_task(volume, TISSUE_TASKS[task], False, device), labels.shape,
                                   what="TotalSegmentator's tissue map")
        written.append(save_like(tissues, volume, tissues_out, overwrite=overwrite, dtype=np.uint8))
    return written
