"""``medfusion phantoms``: seeded synthetic cases of every application (``--kind``), for tests, demos and training.

The kinds are :data:`medfusion.phantoms.KINDS`; a generator is imported only when its kind is written, so the
parser stays light.
"""

from __future__ import annotations

import argparse

from ..core.cli_options import positive_int, seed_int
from ..errors import InputError
from ..phantoms import KINDS

__all__ = ["register"]


def cmd_phantoms(args: argparse.Namespace) -> int:
    kind = KINDS[args.kind]
    shape = kind.shape if args.shape is None else tuple(args.shape)
    if len(shape) != len(kind.shape):
        raise InputError(f"--shape takes {len(kind.shape)} sizes for --kind {args.kind} "
                         f"(e.g. {' '.join(map(str, kind.shape))}), got {len(shape)}")
    options = {"drop": args.drop} if args.drop is not None else {}
    if not set(options) <= set(kind.options):
        raise InputError(f"--drop is for --kind brats; {args.kind} cases always hold every image")
    cases = kind.dataset_writer()(args.out, args.n, shape=shape, seed0=args.seed, prefix=args.prefix or kind.prefix,
                                  **options)
    print(f"wrote {len(cases)} {args.kind} cases to {args.out}")
    return 0


def register(sub) -> None:

    default = next(iter(KINDS))
    p = sub.add_parser("phantoms", help="write seeded phantom cases: " + "; ".join(
                       f"{k}: {v.help}" for k, v in KINDS.items()),
                       description="Write seeded synthetic cases with their ground truth. Kinds: " + "; ".join(
                           f"{k} — {v.help} (default shape {' '.join(map(str, v.shape))})"
                           for k, v in KINDS.items()) + ".")
    p.add_argument("--kind", choices=list(KINDS), default=default, help=f"default {default}")
    p.add_argument("--out", required=True, help="dataset folder")
    p.add_argument("--n", type=positive_int, default=4, help="number of cases (default 4)")
    p.add_argument("--shape", type=positive_int, nargs="+", metavar="N",
                   help="voxels X Y Z (pixels H W for stain tiles; default: the kind's)")
    p.add_argument("--seed", type=seed_int, default=0, help="seed of the first case (case i uses seed + i)")
    p.add_argument("--prefix", help="case name prefix (default: the kind's)")
    p.add_argument("--drop", help="brats only: leave this contrast out of every case (t1n, t1c, t2w or t2f), or "
                   "'random' for one per case, as BraSyn (missing-modality cases)")
    p.set_defaults(func=cmd_phantoms)
