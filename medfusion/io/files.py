"""Writing files safely: an existing output is refused before any work (:func:`ensure_absent`), and a file is
written whole or not at all (:func:`write_atomic`, staged by an active :class:`~medfusion.outputs.OutputPlan`)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Union

from ..errors import OutputExistsError
from ..outputs import destination, planned, reserve_sibling

__all__ = ["PathLike", "ensure_absent", "write_atomic"]

PathLike = Union[str, "os.PathLike[str]"]


def ensure_absent(paths: Iterable[PathLike], overwrite: bool) -> None:
    """Refuse to go on if any output already exists (call it before doing any work).

    Args:
        paths: every output the caller is about to write.
        overwrite: if true, existing outputs are allowed (they will be replaced) and nothing is checked.

    Raises:
        OutputExistsError: listing all the outputs that exist (those of an active
            :class:`~medfusion.outputs.OutputPlan` were checked by the plan and are skipped here: a folder it
            replaces holds the files of the run before).
    """
    if overwrite:
        return
    existing = [os.fspath(p) for p in paths if os.path.lexists(p) and not planned(p)]
    if existing:
        raise OutputExistsError(existing)


def write_atomic(path: PathLike, payload: bytes | str) -> str:
    """Write ``payload`` (bytes, or text as UTF-8) to ``path`` through a hidden temporary file in the same folder
    and :func:`os.replace`, so readers see the old file or the whole new one, never a partial file; the folder is
    created if needed.  Checking for an existing file is the caller's job (:func:`ensure_absent`).  Inside an
    :class:`~medfusion.outputs.OutputPlan` the file is staged, and put in place when the whole run succeeds."""
    target = os.fspath(path)
    data = payload.encode("utf-8") if isinstance(payload, str) else payload
    final = destination(target)
    folder = os.path.dirname(final) or "."
    os.makedirs(folder, exist_ok=True)
    # same file system, so os.replace is atomic; created exclusively, so removing it removes only our own
    tmp = None
    try:
        tmp = reserve_sibling(final, "tmp")
        with open(tmp, "wb") as fh:
            fh.write(data)
        os.replace(tmp, final)
    except BaseException:
        if tmp is not None and os.path.lexists(tmp):
            os.remove(tmp)
        raise
    return target
