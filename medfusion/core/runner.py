"""Running a model over many cases: every case and every output checked before any work, all written or none, cases
split across processes.

:func:`run_cases` plans every output of a cohort (:class:`medfusion.outputs.OutputPlan`: extension, folder, not an
input, not named twice, writable, absent unless ``overwrite``) and runs the caller's ``validate`` on every case —
reading its files and the cheap checks — before the first case is processed.  If any case is bad, nothing is
written and :class:`~medfusion.errors.BadCasesError` lists them all; with ``skip_bad`` the good cases are processed
and written, and the same error, raised at the end, lists the bad ones.  The outputs of the processed cases are
staged and put in place together when the run ends; an error, Ctrl-C or SIGTERM on the way leaves none of them.

Started under ``torchrun`` (``RANK``/``WORLD_SIZE`` set), process ``r`` of ``W`` takes cases ``r, r + W, r + 2W, …``
once every process has checked every output and validated its share (the results are shared, so a problem any
process finds stops them all) — a cohort of thousands of cases spreads over several GPUs or nodes as MONAI
bundles' multi-GPU evaluation does, with no other communication between the processes.
"""

from __future__ import annotations

import os
from typing import Callable, Iterable, Sequence, TypeVar

from ..errors import BadCasesError, InputError, one_line
from ..outputs import NIFTI, OutputPlan, check_outputs

__all__ = ["check_outputs", "run_cases", "process_rank"]

T = TypeVar("T")


def process_rank() -> tuple[int, int]:
    """``(rank, world_size)`` of this process: from ``torchrun``'s environment, else ``(0, 1)``."""
    try:
        return int(os.environ.get("RANK", 0)), max(1, int(os.environ.get("WORLD_SIZE", 1)))
    except ValueError:
        raise InputError("RANK and WORLD_SIZE must be integers (as torchrun sets them)") from None


def _gather(value) -> list:
    """Every process's ``value`` (a gloo process group over torchrun's rendezvous, made if needed); doubles as the
    barrier between checking and writing."""
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group(backend="gloo")
    found: list = [None] * dist.get_world_size()
    dist.all_gather_object(found, value)
    return found


def _validate(items: Sequence, names: Sequence[str], mine: Iterable[int], validate) -> dict[str, str]:
    """``{case name: reason}`` of the cases among ``mine`` that ``validate`` refuses."""
    bad = {}
    if validate is not None:
        for i in mine:
            try:
                validate(items[i])
            except InputError as e:
                bad[names[i]] = one_line(e)
    return bad


def run_cases(items: Sequence[T], outputs: Sequence[Sequence[str]], process: Callable[[T, Sequence[str]], object], *,
              overwrite: bool = False, inputs: Iterable[str] = (), extensions: Sequence[str] = NIFTI,
              validate: Callable[[T], object] | None = None, names: Sequence[str] | None = None,
              skip_bad: bool = False) -> list[str]:
    """Check every case and its outputs, then ``process(item, its_outputs)`` for this process's share of the cases.

    Args:
        items: the cases (anything ``process`` understands).
        outputs: per case, the files it will write.
        process: does the work of one case and writes its outputs.
        inputs: every input file of the cohort (no output may name one).
        validate: reads a case and raises :class:`~medfusion.errors.InputError` if it is bad (run on every case
            before any is processed).
        names: what to call each case in messages (default: ``str(item)``).
        skip_bad: process the good cases when some are bad (bad cases found while processing are skipped too);
            the bad ones are listed at the end.
    Returns:
        the outputs this process wrote, in case order.
    Raises:
        BadCasesError: some cases are bad (with ``skip_bad``: after the good ones were written).
    """
    if len(items) != len(outputs):
        raise ValueError("one list of outputs per case is needed")
    names = [str(x) for x in (names if names is not None else items)]
    rank, world = process_rank()
    mine = range(rank, len(items), world)
    plan = OutputPlan(overwrite=overwrite, inputs=inputs).add([o for outs in outputs for o in outs], extensions)
    error = None
    try:
        plan.check()
        bad = _validate(items, names, mine, validate)
    except InputError as e:
        error, bad = e, {}
    if world > 1:  # every process must have checked everything before any process writes
        shared = _gather((None if error is None else one_line(error), bad))
        problem = next((p for p, _ in shared if p), None)
        bad = {k: v for _, b in shared for k, v in b.items()}
        if problem and error is None:
            error = InputError(problem)
    if error is not None:
        raise error
    if bad and not skip_bad:
        raise BadCasesError(bad, len(items))
    written: list[str] = []
    with plan:
        for i in mine:
            if names[i] in bad:
                continue
            try:
                process(items[i], outputs[i])
            except InputError as e:
                if not skip_bad:
                    raise
                plan.discard(outputs[i])
                bad[names[i]] = one_line(e)
                continue
            written += list(outputs[i])
    if bad:
        raise BadCasesError(bad, len(items), written=written, skipped=True)
    return written
