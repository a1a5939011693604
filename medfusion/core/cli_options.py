"""Options the applications' sub-commands share (sampling, device, precision, weights) and their checks.

In the core, below the applications, so that an application's ``cli.py`` imports nothing from the ``medfusion``
command's own package (:mod:`medfusion.cli`, which imports the applications). Light on purpose: ``medfusion
--help`` imports this module, so nothing heavy (torch, MONAI) is imported here.
"""

from __future__ import annotations

import argparse

from .constants import PRECISIONS


__all__ = ["add_sampling", "add_weights", "add_skip_bad", "positive_int", "seed_int", "weights_path", "check_device"]



def positive_int(text: str) -> int:
    """argparse type: an integer ≥ 1 (a clear usage error, exit 2, otherwise)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def seed_int(text: str) -> int:
    """argparse type: a seed from 0 to 2^63 − 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if not 0 <= value <= 2**63 - 1:
        raise argparse.ArgumentTypeError(f"must be from 0 to {2**63 - 1}, got {value}")
    return value


def add_sampling(p: argparse.ArgumentParser, steps: int, sampler: str | None = "ddim",
                 sampler_help: str = "default ddim") -> None:
    """``--steps --sampler --seed --device --precision`` (``sampler=None``: the command picks one per model)."""
    p.add_argument("--steps", type=positive_int, default=steps,
                   help=f"sampling steps, 1 to the model's training timesteps (default {steps}; 1000 with ddpm = "
                   "the published sampler)")
    p.add_argument("--sampler", choices=("ddim", "ddpm"), default=sampler, help=sampler_help)
    p.add_argument("--seed", type=seed_int, default=0, help="seed of the sampling noise (default 0)")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu, cuda, cuda:1 (default cpu)")
    p.add_argument("--precision", choices=PRECISIONS, default="float32",
                   help="precision of the network: float32 (default), bfloat16 (GPUs, fast), float16 (CUDA only)")


def add_weights(p: argparse.ArgumentParser, bundle: str) -> None:
    """``--bundle DIR`` or ``--weights FILE`` (default: the shipped bundle)."""
    g = p.add_mutually_exclusive_group()
    g.add_argument("--bundle", help=f"a MONAI bundle folder (uses its models/model.pt); default: the shipped "
                   f"bundles/{bundle}")
    g.add_argument("--weights", help="a medfusion checkpoint (.pt)")


def add_skip_bad(p: argparse.ArgumentParser) -> None:
    """``--skip-bad``: a folder run goes on past bad cases (default: it writes nothing if any case is bad)."""
    p.add_argument("--skip-bad", action="store_true", help="with a folder: write the good cases when some are bad, "
                   "list the bad ones in one line and exit with status 2 (default: every case is checked first and "
                   "nothing is written if any is bad)")


def weights_path(args: argparse.Namespace, bundle: str) -> str:
    """The checkpoint or bundle folder the user chose, else the shipped bundle."""
    if args.weights or args.bundle:
        return args.weights or args.bundle
    from ..paths import bundle_dir

    return str(bundle_dir(bundle))


def check_device(name: str) -> None:
    """Fail early, before any model is loaded, on a device this machine does not have."""
    from ..core.precision import resolve_device

    resolve_device(name)


