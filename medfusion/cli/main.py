"""``medfusion`` command line.

Each subcommand parses its arguments and calls one function of the Python API; heavy modules are imported
inside the command.  Bad input ends with a one-line reason on stderr and exit status 2, and nothing written.
"""

from __future__ import annotations

import argparse
import os
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


def cmd_evaluate(args: argparse.Namespace) -> int:
    from ..evaluate import evaluate
    from ..io import ensure_absent

    outputs = ([args.out] if args.out else []) + ([os.path.join(args.plot, f) for f in ("metrics.png", "worst_case.png")]
                                                 if args.plot else [])
    if args.out and not args.out.lower().endswith((".json", ".csv")):
        raise InputError(f"--out must end in .json or .csv: {args.out}")
    ensure_absent(outputs, args.overwrite)  # fail before any work, write nothing
    fid = None
    if args.fid_extractor or args.fid_weights:
        if not (args.fid_extractor and args.fid_weights):
            raise InputError("FID needs both --fid-extractor and --fid-weights")
        fid = {"extractor": args.fid_extractor, "weights": args.fid_weights, "device": args.device}
        if args.fid_normalise:
            if args.fid_extractor != "medicalnet3d":
                raise InputError("--fid-normalise applies to the medicalnet3d extractor")
            fid["options"] = {"normalise": args.fid_normalise}
    report = evaluate(
        args.pred, args.ref, protocol=args.protocol, metrics=args.metrics, mask=args.mask,
        labels=_parse_labels(args.labels), data_range=_parse_range(args.data_range),
        window=tuple(args.window) if args.window else None, empty_dice=float(args.empty_dice),
        hd95_empty=args.hd95_empty, resample=args.resample, pattern=args.glob, workers=args.workers or _cores(), fid=fid,
        progress=not args.quiet,
    )
    if args.out:
        report.write(args.out, overwrite=args.overwrite)
    if args.plot:
        report.plot(args.plot, overwrite=args.overwrite)
    print(report.table())
    for path in ([args.out] if args.out else []) + ([args.plot] if args.plot else []):
        print(f"wrote {path}")
    return 0


def _cores() -> int:
    try:
        return max(1, min(8, len(os.sched_getaffinity(0))))
    except AttributeError:  # not Linux
        return max(1, min(8, os.cpu_count() or 1))


def _parse_labels(items):
    """``1 2`` or ``1=GTVp 2=GTVn`` → {1: "1", 2: "2"} / {1: "GTVp", 2: "GTVn"}."""
    if not items:
        return None
    out = {}
    for item in items:
        value, _, name = item.partition("=")
        try:
            label = int(value)
        except ValueError:
            raise InputError(f"--labels takes integers, optionally with names (1=liver): got {item!r}") from None
        if label <= 0:
            raise InputError(f"labels are positive integers (0 is background): got {label}")
        out[label] = name or str(label)
    return out


def _parse_range(text):
    if text is None or text == "ref":
        return text
    try:
        return float(text)
    except ValueError:
        raise InputError(f"--data-range takes a number or 'ref', got {text!r}") from None


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
        description="Diffusion models for medical imaging: missing-modality BraTS MRI synthesis (cWDM), evaluation "
        "with published protocols, phantoms.",
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

    p = sub.add_parser(
        "evaluate", help="score predictions against references (Dice, HD95, DSCagg, SSIM, PSNR, MAE, FSIM, FID)",
        description="Score predicted volumes (or images) against references with a published protocol. Files in "
        "folders are paired by name (without extension); unpaired files are listed. Prints a table; --out writes "
        "a JSON or CSV report (one record per case and a summary per metric), --plot writes PNG figures.",
        epilog="protocols: brasyn (BraSyn MRI SSIM, tumour/non-tumour with --mask SEG), synthrad (CT in HU: "
        "window, per-slice SSIM, PSNR, MAE in the body --mask), hecktor (labels 1 GTVp 2 GTVn: Dice, HD95, "
        "aggregated Dice), bci (8-bit RGB PSNR/SSIM), image (generic: needs --data-range or --window), labels "
        "(generic Dice/HD95/aggregated Dice).",
    )
    p.add_argument("--pred", required=True, help="predicted file, or folder of them")
    p.add_argument("--ref", required=True, help="reference file, or folder of them")
    p.add_argument("--mask", help="mask file for all cases, or a folder (brasyn: tumour label map; synthrad: body "
                   "mask; image: region to average over)")
    p.add_argument("--protocol", choices=("brasyn", "synthrad", "hecktor", "bci", "image", "labels"),
                   help="default: labels if only dice/hd95/dsc_agg are asked for or --labels is given, else image")
    p.add_argument("--metrics", nargs="+", metavar="M", help="subset of the protocol's metrics: ssim ssim_slice "
                   "psnr mae mse fsim | dice hd95 dsc_agg; fid kid (need --fid-extractor/--fid-weights)")
    p.add_argument("--labels", nargs="+", metavar="L", help="label values, optionally named (1=liver 2=spleen); any "
                   "other value in a label map is an error (default: the labels found)")
    p.add_argument("--data-range", metavar="R", help="SSIM/PSNR data range in the images' unit, or 'ref' (each "
                   "reference's max - min); required by the image protocol unless --window is given")
    p.add_argument("--window", type=float, nargs=2, metavar=("LO", "HI"), help="clip both images to [LO, HI] and "
                   "shift to >= 0 (synthrad default -1024 3000)")
    p.add_argument("--empty-dice", choices=("1", "nan"), default="1", help="Dice of a label absent from both "
                   "prediction and reference: 1 (default) or nan (undefined)")
    p.add_argument("--hd95-empty", type=float, metavar="MM", help="HD95 to use when exactly one of prediction "
                   "and reference is empty (default: undefined, e.g. 373.13 as in BraTS)")
    p.add_argument("--resample", action="store_true", help="resample predictions and masks onto the reference "
                   "grid (nearest neighbour for label maps) instead of refusing a shape/affine mismatch")
    p.add_argument("--glob", metavar="PATTERN", help="only files whose names match, e.g. '*-t2f.nii.gz'")
    p.add_argument("--fid-extractor", help="FID/KID feature network: inception2d, radimagenet25d or medicalnet3d")
    p.add_argument("--fid-weights", metavar="FILE", help="the feature network's weights file (you supply it)")
    p.add_argument("--fid-normalise", choices=("zscore", "minmax", "none"), help="medicalnet3d input normalisation: "
                   "zscore (default, MedicalNet's) or minmax (each volume to [0, 1], as WDM scored)")
    p.add_argument("--device", default="cpu", help="torch device for the FID feature network (default cpu)")
    p.add_argument("--workers", type=int, help="processes scoring cases in parallel (default: the CPU cores this "
                   "process may use, at most 8)")
    p.add_argument("--out", help="report file ending in .json or .csv")
    p.add_argument("--plot", metavar="DIR", help="write metrics.png and worst_case.png into DIR")
    p.add_argument("--overwrite", action="store_true", help="replace existing report/plot files")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_evaluate)

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
