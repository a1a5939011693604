"""Exceptions that mean "the user's input is wrong" (as opposed to a bug), and signals as exceptions (or held).

The ``medfusion`` command turns :class:`InputError` into a one-line reason and exit status 2, and
:class:`KeyboardInterrupt` (Ctrl-C, or SIGTERM through :func:`signals_as_exceptions`) into one line and exit
status 130 or 143, after every ``with``/``finally`` block has removed what the run had half-written.
"""

from __future__ import annotations

import signal
from contextlib import contextmanager


def first_line(err: BaseException) -> str:
    """The first non-empty line of an exception's message (torch's messages run over many lines)."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return lines[0] if lines else type(err).__name__


def one_line(err: BaseException) -> str:
    """An exception's whole message on one line, as the command line and the bundles print it."""
    return " ".join(line.strip() for line in str(err).splitlines() if line.strip())


class InputError(ValueError):
    """Bad user input: unreadable or inconsistent files, wrong dimensionality, non-finite voxels, ..."""


class OutputExistsError(InputError):
    """Outputs already exist and overwriting was not requested; ``paths`` lists them.  The command line adds how
    to replace them (its ``--overwrite``), or to choose another output where a command has no such option."""

    def __init__(self, paths) -> None:
        self.paths = [str(p) for p in paths]
        super().__init__(f"output already exists: {', '.join(self.paths)}")


class BadCasesError(InputError):
    """Cases of a folder run that failed their checks.

    Attributes:
        bad: case name → one-line reason.
        total: the number of cases in the run.
        written: the files written for the other cases (only when ``skipped``).
        skipped: ``True`` when the good cases were processed anyway (``skip_bad``), ``False`` when nothing was
            written.
    """

    def __init__(self, bad: dict, total: int, *, written=(), skipped: bool = False) -> None:
        self.bad, self.total, self.written, self.skipped = dict(bad), total, list(written), skipped
        listed = "; ".join(f"{name}: {reason}" for name, reason in self.bad.items())
        n = len(self.bad)
        done = (f"skipped {'it' if n == 1 else 'them'} and wrote the other {total - n}" if skipped
                else "nothing was written")
        super().__init__(f"{n} of {total} cases {'is' if n == 1 else 'are'} bad ({done}): {listed}")


class Terminated(KeyboardInterrupt):
    """SIGTERM (what schedulers such as Slurm send before they stop a job), raised like Ctrl-C's
    :class:`KeyboardInterrupt` so that a run cleans up the same way."""


def _raise_terminated(signum, frame):
    raise Terminated()


@contextmanager
def signals_as_exceptions():
    """While inside, SIGTERM raises :class:`Terminated` (SIGINT already raises :class:`KeyboardInterrupt`), so
    partial outputs are removed by the ``with`` blocks that staged them; both handlers are as before afterwards
    (also after :func:`ignore_signals`).  Outside the main thread, where Python cannot set signal handlers, nothing
    changes."""
    try:
        previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
        signal.signal(signal.SIGTERM, _raise_terminated)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def ignore_signals() -> None:
    """Ignore SIGINT and SIGTERM from now on (inside :func:`signals_as_exceptions`): a run that is already stopping
    finishes its last message."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            signal.signal(signum, signal.SIG_IGN)
        except ValueError:  # not the main thread
            pass


@contextmanager
def signals_held():
    """SIGINT and SIGTERM wait while inside (files being moved into place or removed, a checkpoint and the step it
    holds), so such a step is never cut in half; they take effect when it ends."""
    held = {signal.SIGINT, signal.SIGTERM}
    try:
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    except (AttributeError, ValueError, OSError):  # no POSIX signal masks (Windows)
        yield
        return
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
