"""``medfusion phantoms``: seeded synthetic cases of every application (``--kind``), for tests, demos and training.

Each application's ``cli`` module lists its kinds in ``PHANTOMS``: kind → ``{"help", "shape", "prefix", "write"}``,
where ``write(args)`` writes the dataset and returns the cases.  Light on purpose (see :mod:`.common`).
"""

from __future__ import annotations

import argparse
import importlib

from ..core.cli_options import positive_int, seed_int

__all__ = ["register", "phantom_kinds"]


def phantom_kinds() -> dict[str, dict]:
    """Every application's phantom kinds, in the order of :data:`medfusion.apps.APPS`."""
    from ..apps import APPS

    kinds: dict[str, dict] = {}
    for name in APPS:
        kinds.update(getattr(importlib.import_module(f"medfusion.apps.{name}.cli"), "PHANTOMS", {}))
    return kinds


def cmd_phantoms(args: argparse.Namespace) -> int:
    kind = phantom_kinds()[args.kind]
    if args.shape is None:
        args.shape = kind["shape"]
    elif len(args.shape) != len(kind["shape"]):
        from ..errors import InputError

        raise InputError(f"--shape takes {len(kind['shape'])} sizes for --kind {args.kind} "
                         f"(e.g. {' '.join(map(str, kind['shape']))}), got {len(args.shape)}")
    if args.prefix is None:
        args.prefix = kind["prefix"]
    cases = kind["write"](args)
    print(f"wrote {len(cases)} {args.kind} cases to {args.out}")
    return 0


def register(sub) -> None:
    kinds = phantom_kinds()
    default = next(iter(kinds))
    p = sub.add_parser("phantoms", help="write seeded phantom cases: " + "; ".join(
                       f"{k}: {v['help']}" for k, v in kinds.items()),
                       description="Write seeded synthetic cases with their ground truth. Kinds: " + "; ".join(
                           f"{k} — {v['help']} (default shape {' '.join(map(str, v['shape']))})"
                           for k, v in kinds.items()) + ".")
    p.add_argument("--kind", choices=list(kinds), default=default, help=f"default {default}")
    p.add_argument("--out", required=True, help="dataset folder")
    p.add_argument("--n", type=positive_int, default=4, help="number of cases (default 4)")
    p.add_argument("--shape", type=positive_int, nargs="+", metavar="N",
                   help="voxels X Y Z (pixels H W for stain tiles; default: the kind's)")
    p.add_argument("--seed", type=seed_int, default=0, help="seed of the first case (case i uses seed + i)")
    p.add_argument("--prefix", help="case name prefix (default: the kind's)")
    p.add_argument("--drop", help="brats only: leave this contrast out (t1n, t1c, t2w or t2f; missing-modality "
                   "cases)")
    p.set_defaults(func=cmd_phantoms)
