"""``medfusion`` command line.

Each subcommand parses its arguments and calls one function of the Python API; heavy modules are imported
inside the command.  Bad input ends with a one-line reason on stderr and exit status 2, and nothing written.
"""

from __future__ import annotations

import argparse
import sys

from ..errors import InputError
from ..progress import progress_bar

CONTRASTS = ("t1n", "t1c", "t2w", "t2f")  # duplicated here only to keep `medfusion --help` free of heavy imports


def cmd_synthesize(args: argparse.Namespace) -> int:
    from .. import cwdm
    from ..data.brats import case_from_files, find_case

    files = {c: getattr(args, c) for c in CONTRASTS if getattr(args, c)}
    if args.case and files:
        raise InputError("give either a case folder or --t1n/--t1c/--t2w/--t2f files, not both")
    if args.case:
        case = find_case(args.case)
    elif files:
        case = case_from_files(**files)
    else:
        raise InputError("give a BraTS case folder or three of --t1n/--t1c/--t2w/--t2f")
    out = args.out
    if out.endswith("/") or not out.endswith((".nii", ".nii.gz")):
        out = case.output_path(out)  # a folder: <out>/<case>-<missing>.nii.gz
    from ..io import ensure_absent

    ensure_absent([out], args.overwrite)  # before loading the model: fail fast, write nothing
    model = cwdm.load_model(args.weights or args.bundle or _default_bundle(), args.device)
    path = cwdm.synthesize_case(
        case, model, out, overwrite=args.overwrite, steps=args.steps, sampler=args.sampler, seed=args.seed,
        device=args.device, progress=None if args.quiet else progress_bar(f"{case.name}: {case.missing}"),
    )
    print(path)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from ..demo import run_demo

    run_demo(out_dir=args.out, case=args.case, missing=args.missing, steps=args.steps, sampler=args.sampler,
             seed=args.seed, device=args.device, weights=args.weights or args.bundle, data_dir=args.data,
             quiet=args.quiet)
    return 0


def cmd_phantoms(args: argparse.Namespace) -> int:
    from ..data.phantom import write_phantom_dataset

    cases = write_phantom_dataset(args.out, args.n, shape=tuple(args.shape), seed0=args.seed, drop=args.drop,
                                  prefix=args.prefix)
    print(f"wrote {len(cases)} cases to {args.out}")
    return 0


def _default_bundle() -> str:
    from ..paths import bundle_dir

    return str(bundle_dir("brats_mri_cwdm"))


def _add_sampling(p: argparse.ArgumentParser, steps: int) -> None:
    p.add_argument("--steps", type=int, default=steps, help=f"sampling steps (default {steps}; 1000 with ddpm = "
                   "the published sampler)")
    p.add_argument("--sampler", choices=("ddim", "ddpm"), default="ddim", help="default ddim")
    p.add_argument("--seed", type=int, default=0, help="seed of the sampling noise (default 0)")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu, cuda, cuda:1 (default cpu)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--bundle", help="a MONAI bundle folder (uses its models/model.pt); default: the shipped "
                   "bundles/brats_mri_cwdm")
    g.add_argument("--weights", help="a medfusion cWDM checkpoint (.pt)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="medfusion",
        description="Diffusion models for medical imaging: missing-modality BraTS MRI synthesis (cWDM), phantoms.",
    )
    from .. import __version__

    parser.add_argument("--version", action="version", version=f"medfusion {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("synthesize", help="fill in the missing contrast of a BraTS case (cWDM)",
                       description="Synthesize the one missing contrast of a BraTS case, written in the input "
                       "geometry as <case>-<missing>.nii.gz.")
    p.add_argument("case", nargs="?", help="BraTS case folder with exactly one contrast file absent")
    for c in CONTRASTS:
        p.add_argument(f"--{c}", metavar="FILE", help=f"{c} NIfTI file (give three, leave the missing one out)")
    p.add_argument("--out", required=True, help="output file (.nii.gz), or a folder for <case>-<missing>.nii.gz")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_sampling(p, 50)
    p.set_defaults(func=cmd_synthesize)

    p = sub.add_parser("demo", help="synthesize a hidden contrast of an embedded sample case and score it",
                       description="Hide one contrast of an embedded sample case, synthesize it with the shipped "
                       "weights, and write the NIfTI, a PNG montage and a metrics file.")
    p.add_argument("--out", default="outputs/demo", help="output folder, replaced on each run (default "
                   "outputs/demo)")
    p.add_argument("--case", help="sample case name (default: the first)")
    p.add_argument("--missing", choices=CONTRASTS, default="t2f", help="contrast to hide (default t2f)")
    p.add_argument("--data", help="folder of complete BraTS-layout case folders to take the case from (default: "
                   "the embedded data/brats_phantom)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_sampling(p, 50)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("phantoms", help="write BraTS-like phantom cases (MNI152 anatomy + tumour)")
    p.add_argument("--out", required=True, help="dataset folder")
    p.add_argument("--n", type=int, default=4, help="number of cases")
    p.add_argument("--shape", type=int, nargs=3, default=(96, 96, 64), metavar=("X", "Y", "Z"))
    p.add_argument("--seed", type=int, default=0, help="seed of the first case (case i uses seed + i)")
    p.add_argument("--drop", choices=CONTRASTS, help="leave this contrast out (missing-modality cases)")
    p.add_argument("--prefix", default="BraTS-PHANTOM", help="case name prefix")
    p.set_defaults(func=cmd_phantoms)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except InputError as e:
        reason = " ".join(line.strip() for line in str(e).splitlines() if line.strip())  # always one line
        print(f"medfusion {args.command}: error: {reason}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"medfusion {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
