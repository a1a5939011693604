"""The cWDM sub-commands of ``medfusion``: ``synthesize`` and ``demo``, and the ``brats`` phantoms."""

from __future__ import annotations

import argparse

from ...core.cli_options import add_sampling, add_skip_bad, add_weights, check_device, weights_path
from ...errors import InputError
from .constants import CONTRASTS

BUNDLE = "brats_mri_cwdm"


def cmd_synthesize(args: argparse.Namespace) -> int:
    from ...outputs import writing
    from ...utils.progress import progress_bar
    from .layout import case_from_files, check_case, find_case, is_dataset

    files = {c: getattr(args, c) for c in CONTRASTS if getattr(args, c)}
    if args.case and files:
        raise InputError("give either a case folder or --t1n/--t1c/--t2w/--t2f files, not both")
    if not (args.case or files):
        raise InputError("give a BraTS case folder or three of --t1n/--t1c/--t2w/--t2f")
    sampling = dict(steps=args.steps, sampler=args.sampler, seed=args.seed, device=args.device,
                    precision=args.precision)
    if args.case and is_dataset(args.case):
        return _synthesize_folder(args, sampling)
    if args.skip_bad:
        raise InputError("--skip-bad applies to a dataset folder (a folder of case folders)")
    case = find_case(args.case) if args.case else case_from_files(**files)
    out = args.out
    if out.endswith(("/", "\\")) or (not out.lower().endswith((".nii", ".nii.gz")) and "." not in out.rsplit("/", 1)[-1]):
        out = case.output_path(out)  # a folder: <out>/<case>-<missing>.nii.gz
    with writing([out], overwrite=args.overwrite, inputs=case.inputs()):  # checked before anything is loaded
        check_case(case)
        check_device(args.device)
        from .model import load_model
        from .files import synthesize_case

        model = load_model(weights_path(args, BUNDLE), "cpu")
        path = synthesize_case(model, case, out, overwrite=args.overwrite, **sampling,
                               progress=None if args.quiet else progress_bar(f"{case.name}: {case.missing}"))
    print(path)
    return 0


def _synthesize_folder(args: argparse.Namespace, sampling: dict) -> int:
    from ...utils.progress import progress_bar
    from .layout import case_folders
    from .model import load_model
    from .files import synthesize_folder

    case_folders(args.case)  # a folder without cases fails before the model is loaded
    check_device(args.device)
    written = synthesize_folder(load_model(weights_path(args, BUNDLE), "cpu"), args.case, args.out,
                                overwrite=args.overwrite, skip_bad=args.skip_bad, **sampling,
                                progress=None if args.quiet else progress_bar("synthesize"))
    print("\n".join(written))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    run_demo(out_dir=args.out, case=args.case, missing=args.missing, steps=args.steps, sampler=args.sampler,
             seed=args.seed, device=args.device, precision=args.precision, weights=args.weights or args.bundle,
             data_dir=args.data, quiet=args.quiet)
    return 0


def register(sub) -> None:
    """Add ``synthesize`` and ``demo`` to the ``medfusion`` sub-commands."""
    p = sub.add_parser("synthesize", help="fill in the missing contrast of a BraTS case (cWDM)",
                       description="Synthesize the one missing contrast of a BraTS case, written in the input "
                       "geometry as <case>-<missing>.nii.gz; or of every case of a dataset folder, each case checked "
                       "before any is synthesized.")
    p.add_argument("case", nargs="?", help="BraTS case folder with exactly one contrast file absent, or a dataset "
                   "folder of such case folders (every case checked first; --out is then the output folder)")
    for c in CONTRASTS:
        p.add_argument(f"--{c}", metavar="FILE", help=f"{c} image: NIfTI, NRRD, MHA or a DICOM series folder "
                       "(give three, leave the missing one out)")
    p.add_argument("--out", required=True, help="output file (.nii.gz or .nii), or a folder (ending in /, or a "
                   "name without a dot) for <case>-<missing>.nii.gz")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output (never an input)")
    add_skip_bad(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_sampling(p, 50)
    add_weights(p, BUNDLE)
    p.set_defaults(func=cmd_synthesize)

    p = sub.add_parser("demo", help="synthesize a hidden contrast of an embedded sample case and score it",
                       description="Hide one contrast of an embedded sample case, synthesize it with the shipped "
                       "weights, and write the NIfTI, a PNG montage and a metrics file.")
    p.add_argument("--out", default="outputs/demo", help="output folder, replaced on each run; a folder the demo did "
                   "not write is never replaced (default outputs/demo)")
    p.add_argument("--case", help="sample case name (default: the first)")
    p.add_argument("--missing", choices=CONTRASTS, default="t2f", help="contrast to hide (default t2f)")
    p.add_argument("--data", help="folder of complete BraTS-layout case folders to take the case from (default: "
                   "the embedded data/brats_phantom)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_sampling(p, 50)
    add_weights(p, BUNDLE)
    p.set_defaults(func=cmd_demo)
