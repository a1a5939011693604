"""``medfusion`` command line: the sub-commands of every application (``medfusion.apps.<name>.cli``) and of
``evaluate``, each a thin shell over the Python API.

A sub-command module has ``register(subparsers)``; the commands it adds set ``func``.  Heavy modules are imported
inside the commands, so ``medfusion --help`` is quick.  Bad input ends with a one-line reason on stderr and exit
status 2, and nothing written.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from ..errors import InputError, one_line


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
        description="Diffusion models for medical imaging: missing-modality BraTS MRI synthesis (cWDM), CT/MR "
        "generation from TotalSegmentator label maps and CT↔MR conversion (seg2med), evaluation with published "
        "protocols, phantoms.",
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
    try:
        return args.func(args)
    except InputError as e:
        print(f"medfusion {args.command}: error: {one_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"medfusion {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `medfusion evaluate ... | head`: the reader left, nothing to report
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
