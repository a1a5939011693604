"""Running a model over many cases: every output checked before any work, cases split across processes.

:func:`check_outputs` refuses, before anything is computed, an output that exists (unless ``overwrite``), that
names one of the inputs (inputs are never modified, even with ``overwrite``), that is a folder, that does not end
in the expected extension, or whose folder cannot be created or written.  :func:`run_cases` does that for a whole
cohort and then processes the cases; started under ``torchrun`` (``RANK``/``WORLD_SIZE`` set), process ``r`` of
``W`` takes cases ``r, r + W, r + 2W, …`` once every process has checked every output (the results are shared,
so a problem any process finds stops them all) — a cohort of thousands of cases spreads over several GPUs or nodes as
MONAI bundles' multi-GPU evaluation does, with no communication between the processes.
"""

from __future__ import annotations

import os
from typing import Callable, Iterable, Sequence, TypeVar

from ..errors import InputError
from ..io import ensure_absent

__all__ = ["check_outputs", "run_cases", "process_rank"]

T = TypeVar("T")


def process_rank() -> tuple[int, int]:
    """``(rank, world_size)`` of this process: from ``torchrun``'s environment, else ``(0, 1)``."""
    try:
        return int(os.environ.get("RANK", 0)), max(1, int(os.environ.get("WORLD_SIZE", 1)))
    except ValueError:
        raise InputError("RANK and WORLD_SIZE must be integers (as torchrun sets them)") from None


def _first_problem(problem: str | None) -> str | None:
    """Share each process's check result (a gloo process group over torchrun's rendezvous, made if needed) and
    return the first problem any process found; doubles as the barrier between checking and writing."""
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group(backend="gloo")
    found: list = [None] * dist.get_world_size()
    dist.all_gather_object(found, problem)
    return next((p for p in found if p), None)


def _writable_folder(path: str) -> str | None:
    """Why the folder of ``path`` cannot receive a file, or ``None`` if it can (it may not exist yet)."""
    folder = os.path.dirname(os.path.abspath(path))
    probe = folder
    while not os.path.exists(probe):
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    if not os.path.isdir(probe):
        return f"{probe} is not a folder"
    if not os.access(probe, os.W_OK | os.X_OK):
        return f"folder {probe} is not writable"
    return None


def check_outputs(outputs: Iterable[str | os.PathLike], *, overwrite: bool = False,
                  inputs: Iterable[str | os.PathLike] = (), extensions: Sequence[str] = (".nii.gz", ".nii")) -> None:
    """Check every output path before any work (see the module docstring); raises :class:`InputError`."""
    outputs = [os.fspath(p) for p in outputs]
    protected = {os.path.realpath(os.fspath(p)) for p in inputs}
    seen: dict[str, str] = {}
    for out in outputs:
        if extensions and not out.lower().endswith(tuple(extensions)):
            raise InputError(f"output file must end in {' or '.join(extensions)}: {out}")
        if os.path.isdir(out):
            raise InputError(f"output path is a folder: {out}")
        real = os.path.realpath(out)
        if real in protected:
            raise InputError(f"output {out} is one of the inputs; inputs are never overwritten")
        if real in seen:
            raise InputError(f"two outputs go to the same file: {seen[real]} and {out}")
        seen[real] = out
        reason = _writable_folder(out)
        if reason:
            raise InputError(f"cannot write {out}: {reason}")
    ensure_absent(outputs, overwrite)


def run_cases(items: Sequence[T], outputs: Sequence[Sequence[str]], process: Callable[[T, Sequence[str]], object], *,
              overwrite: bool = False, inputs: Iterable[str] = (), extensions: Sequence[str] = (".nii.gz", ".nii"),
              ) -> list[str]:
    """Check every case's outputs, then ``process(item, its_outputs)`` for this process's share of the cases.

    Args:
        items: the cases (anything ``process`` understands).
        outputs: per case, the files it will write.
        process: does the work of one case and writes its outputs.
        inputs: every input file of the cohort (no output may name one).
    Returns:
        the outputs this process wrote, in case order.
    """
    if len(items) != len(outputs):
        raise ValueError("one list of outputs per case is needed")
    rank, world = process_rank()
    try:
        check_outputs([o for outs in outputs for o in outs], overwrite=overwrite, inputs=inputs, extensions=extensions)
        problem = None
    except InputError as e:
        problem = str(e)
    if world > 1:  # every process must have checked everything before any process writes
        problem = _first_problem(problem)
    if problem:
        raise InputError(problem)
    written: list[str] = []
    for i in range(rank, len(items), world):
        process(items[i], outputs[i])
        written += list(outputs[i])
    return written
