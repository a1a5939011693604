"""``medfusion`` command line: the sub-commands of every application (``medfusion.apps.<name>.cli``) and of
``evaluate``, each a thin shell over the Python API.

A sub-command module has ``register(subparsers)``; the commands it adds set ``func``.  Heavy modules are imported
inside the commands, so ``medfusion --help`` is quick.  Bad input ends with a one-line reason on stderr and exit
status 2, and nothing written; Ctrl-C (SIGINT) and SIGTERM end with one line and exit status 130 or 143, and
nothing written either (every command writes through a :class:`medfusion.outputs.OutputPlan`).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from contextlib import contextmanager

from ..errors import (BadCasesError, InputError, OutputExistsError, Terminated, ignore_signals, one_line,
                      signals_as_exceptions)
from ..utils.progress import close_bars


def command_modules() -> list[str]:
    """The modules that register sub-commands: every application's ``cli``, then ``phantoms`` (every application's
    phantom kinds) and ``evaluate``."""
    from ..apps import APPS

    return [f"medfusion.apps.{name}.cli" for name in APPS] + ["medfusion.cli.phantoms", "medfusion.cli.evaluate"]


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line (``medfusion synthesize: error: ...``) and exit 2; the
    full usage is one ``--help`` away.  Sub-command parsers are of the same class."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = _Parser(
        prog="medfusion",
        description="Diffusion models for medical imaging, four applications: missing-modality BraTS MRI synthesis "
        "(cWDM: synthesize, demo), CT/MR generation from TotalSegmentator label maps and CT↔MR conversion (seg2med: "
        "generate, convert, prior, masks), PET/CT head-and-neck tumour segmentation with uncertainty (segment), and "
        "H&E → IHC stain translation with cell segmentation (StainDiffuser: stain); evaluation with the field's "
        "published protocols (evaluate) and phantoms of every application (phantoms). Bad input ends with one line "
        "and exit status 2, Ctrl-C with 130 and SIGTERM with 143, and nothing is written in any of these cases.",
    )
    parser.add_argument("--version", action="version", version=f"medfusion {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for module in command_modules():
        importlib.import_module(module).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    for stream in (sys.stdout, sys.stderr):  # a terminal without UTF-8 gets '?' for ± rather than a traceback
        if hasattr(stream, "reconfigure") and (stream.encoding or "").lower().replace("-", "") != "utf8":
            stream.reconfigure(errors="replace")
    args = build_parser().parse_args(argv)
    prefix = f"medfusion {args.command}"
    with signals_as_exceptions(), prefixed_warnings(prefix):
        try:
            return args.func(args)
        except InputError as e:
            close_bars()
            if getattr(e, "written", None):  # --skip-bad: the good cases were written
                print("\n".join(e.written))
            print(f"{prefix}: error: {one_line(e)}{_hint(e, args)}", file=sys.stderr)
            return 2
        except KeyboardInterrupt as e:  # Ctrl-C, or SIGTERM (Terminated): the with blocks removed partial outputs
            ignore_signals()  # a second signal must not cut this message short
            close_bars()
            how = "terminated (SIGTERM)" if isinstance(e, Terminated) else "interrupted"
            print(f"{prefix}: {how}; nothing was written", file=sys.stderr)
            return 143 if isinstance(e, Terminated) else 130
        except BrokenPipeError:  # e.g. `medfusion evaluate ... | head`: the reader left, nothing to report
            import os

            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 141


def _hint(err: InputError, args: argparse.Namespace) -> str:
    """What to do about an error that has a command-line remedy, in the command's own option names."""
    if isinstance(err, OutputExistsError):
        if hasattr(args, "overwrite"):
            return " (use --overwrite to replace it)"
        return " (choose another --out, or move those files away)"
    if isinstance(err, BadCasesError) and not err.skipped and hasattr(args, "skip_bad"):
        return " (--skip-bad writes the good cases)"
    return ""


@contextmanager
def prefixed_warnings(prefix: str):
    """While inside, medfusion's warnings — its loggers' and ``warnings.warn`` from its modules — print as one line
    ``<prefix>: warning: <message>`` on stderr; other packages' warnings are left as they are."""
    import logging
    import os
    import warnings

    class Formatter(logging.Formatter):
        def format(self, record):
            return f"{prefix}: {record.levelname.lower()}: {record.getMessage()}"

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(Formatter())
    log = logging.getLogger("medfusion")
    propagate, log.propagate = log.propagate, False
    log.addHandler(handler)
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    show = warnings.showwarning

    def show_ours(message, category, filename, lineno, file=None, line=None):
        if os.path.abspath(filename).startswith(package + os.sep):
            print(f"{prefix}: warning: {message}", file=sys.stderr)
        else:
            show(message, category, filename, lineno, file, line)

    warnings.showwarning = show_ours
    try:
        yield
    finally:
        warnings.showwarning = show
        log.removeHandler(handler)
        log.propagate = propagate


if __name__ == "__main__":
    sys.exit(main())
