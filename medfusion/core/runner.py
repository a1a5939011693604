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

__all__ = ["check_outputs", "run_cases", "process_rank", "CaseInference"]

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


class CaseInference:
    """A model run over a dataset, composed of three components — the ``run`` of every bundle's ``inference.json``
    and of the applications' folder functions:

    - ``dataset``: the cases — ``cases()`` (a folder that is not a case may be listed as its
      :class:`~medfusion.errors.InputError`), ``name(case)``, ``inputs(case)`` (no output may replace one),
      ``validate(case)`` (reads and checks it; raises :class:`~medfusion.errors.InputError`) and ``load(case)``
      (its data, for the predictor);
    - ``predictor``: the model and its inferer (:mod:`medfusion.core.inferers`) — loaded data in, results out;
    - ``saver``: ``outputs(case)`` (the files a case writes), ``overwrite``, ``save(result, case, outputs)`` and
      optionally ``extensions`` (the output endings it writes; default NIfTI).

    Calling it checks every output and validates every case before the first prediction (:func:`run_cases`:
    nothing is written when a case is bad, unless ``skip_bad``; under ``torchrun`` each process takes its share)
    and returns the files written.
    """

    def __init__(self, dataset, predictor, saver, *, skip_bad: bool = False) -> None:
        self.dataset, self.predictor, self.saver, self.skip_bad = dataset, predictor, saver, bool(skip_bad)

    def __call__(self) -> list[str]:
        cases = list(self.dataset.cases())
        outputs = [self.saver.outputs(case) for case in cases]

        def one(case, paths) -> None:
            self.saver.save(self.predictor(self.dataset.load(case)), case, paths)

        return run_cases(cases, outputs, one, overwrite=bool(self.saver.overwrite),
                         extensions=getattr(self.saver, "extensions", NIFTI),
                         inputs=[p for case in cases for p in self.dataset.inputs(case)],
                         validate=self.dataset.validate, names=[self.dataset.name(case) for case in cases],
                         skip_bad=self.skip_bad)
