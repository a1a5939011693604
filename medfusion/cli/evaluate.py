"""``medfusion evaluate``: the command over :func:`medfusion.evaluate.evaluate` (registered like an application's
sub-commands)."""

from __future__ import annotations

import argparse
import os

from ..errors import InputError
from ..core.cli_options import positive_int
from ..metrics.constants import BRATS_CHALLENGES

#: the BraTS lesion-wise protocols (kept here so that --help needs no import of the metrics)
BRATS = tuple(BRATS_CHALLENGES)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from ..outputs import OutputPlan

    if args.out and not args.out.lower().endswith((".json", ".csv")):
        raise InputError(f"--out must end in .json or .csv: {args.out}")
    plan = OutputPlan(overwrite=args.overwrite, inputs=[args.pred, args.ref, args.mask]).add(args.out, ())
    if args.plot:
        plan.add([os.path.join(args.plot, f) for f in ("metrics.png", "worst_case.png")], (".png",))
    with plan:  # every output checked before any work; the report and figures are written together, or none
        report = _evaluate(args)
        if args.out:
            report.write(args.out, overwrite=args.overwrite)
        if args.plot:
            report.plot(args.plot, overwrite=args.overwrite)
    print(report.table())
    for path in ([args.out] if args.out else []) + ([args.plot] if args.plot else []):
        print(f"wrote {path}")
    return 0


def _evaluate(args: argparse.Namespace):
    from ..evaluate import evaluate

    fid = None
    if args.fid_extractor or args.fid_weights:
        if not (args.fid_extractor and args.fid_weights):
            raise InputError("FID needs both --fid-extractor and --fid-weights")
        fid = {"extractor": args.fid_extractor, "weights": args.fid_weights, "device": args.device}
        if args.fid_normalise:
            if args.fid_extractor != "medicalnet3d":
                raise InputError("--fid-normalise applies to the medicalnet3d extractor")
            fid["options"] = {"normalise": args.fid_normalise}
    return evaluate(
        args.pred, args.ref, protocol=args.protocol, metrics=args.metrics, mask=args.mask,
        labels=_parse_labels(args.labels), data_range=_parse_range(args.data_range),
        window=tuple(args.window) if args.window else None, empty_dice=float(args.empty_dice),
        hd95_empty=args.hd95_empty, resample=args.resample, pattern=args.glob, workers=_cores() if args.workers is None else args.workers, fid=fid,
        progress=not args.quiet, foreground=args.foreground,
    )


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


def register(sub) -> None:
    """Add ``evaluate`` to the ``medfusion`` sub-commands."""
    p = sub.add_parser(
        "evaluate", help="score predictions against references (Dice, HD95, DSCagg, SSIM, PSNR, MAE, FSIM, FID)",
        description="Score predicted volumes (or images) against references with a published protocol. Files in "
        "folders are paired by name (without extension); unpaired files are listed. Prints a table; --out writes "
        "a JSON or CSV report (one record per case and a summary per metric), --plot writes PNG figures.",
        epilog="protocols: brasyn (BraSyn MRI SSIM, tumour/non-tumour with --mask SEG), synthrad (CT in HU: "
        "window, per-slice SSIM, PSNR, MAE in the body --mask), hecktor (labels 1 GTVp 2 GTVn: Dice, HD95, "
        "aggregated Dice), bci (8-bit RGB PSNR/SSIM), image (generic: needs --data-range or --window), labels "
        "(generic Dice/HD95/aggregated Dice), brats-* (the BraTS challenges' lesion-wise Dice, NSD, HD95 and "
        "lesion counts per region, by the organisers' panoptica configurations: pip install 'medfusion[brats]').",
    )
    p.add_argument("--pred", required=True, help="predicted file, or folder of them")
    p.add_argument("--ref", required=True, help="reference file, or folder of them")
    p.add_argument("--mask", help="mask file for all cases, or a folder (brasyn: tumour label map; synthrad: body "
                   "mask; image: region to average over)")
    p.add_argument("--protocol", choices=("brasyn", "synthrad", "hecktor", "bci", "image", "labels", *BRATS),
                   metavar="PROTOCOL", help="brasyn, synthrad, hecktor, bci, image, labels, or a BraTS challenge's "
                   "lesion-wise metrics: " + ", ".join(BRATS) + " (optional extra brats); default: labels if only "
                   "dice/hd95/dsc_agg are asked for or --labels is given, else image")
    p.add_argument("--metrics", nargs="+", metavar="M", help="subset of the protocol's metrics: ssim ssim_slice "
                   "psnr mae mse fsim | dice hd95 dsc_agg, and for instance maps (--foreground) aji pq (with its sq, "
                   "rq); fid kid (need --fid-extractor/--fid-weights) | brats-*: "
                   "panoptica's fields, e.g. sq_dsc sq_hd95 sq_nsd pq_dsc tp fp fn global_bin_dsc (default all)")
    p.add_argument("--foreground", action="store_true", help="labels protocol: every positive value is one label "
                   "'foreground' (instance label maps, e.g. cell nuclei numbered 1..N; 2D PNG/TIFF label images are "
                   "read as they are, HD95 in pixels)")
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
    p.add_argument("--workers", type=positive_int, help="processes scoring cases in parallel (default: the CPU cores this "
                   "process may use, at most 8)")
    p.add_argument("--out", help="report file ending in .json or .csv")
    p.add_argument("--plot", metavar="DIR", help="write metrics.png and worst_case.png into DIR")
    p.add_argument("--overwrite", action="store_true", help="replace existing report/plot files")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_evaluate)
