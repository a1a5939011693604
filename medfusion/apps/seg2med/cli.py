"""The seg2med sub-commands of ``medfusion``: ``generate``, ``convert``, ``prior`` and ``masks``."""

from __future__ import annotations

import argparse

import os

from ...core.cli_options import add_sampling, add_weights, check_device, positive_int, weights_path
from ...errors import InputError
from .constants import MODALITIES, PRIOR_TABLES, TARGETS, TASKS

BUNDLE = "totalseg_mask_to_ct_mr"
_TISSUES_HELP = ("TotalSegmentator tissue_types map on the mask's grid (1 subcutaneous fat, 2 torso fat, 3 skeletal "
                 "muscle), e.g. from `medfusion masks --tissues`; default: none, the body outside the organs gets "
                 "the body's value (0 HU)")


def _model_path(args: argparse.Namespace) -> str:
    """The checkpoint: ``--weights``, else the bundle's ``models/model.pt`` (2D) or ``models/model_3d.pt``."""
    if args.weights:
        return args.weights
    folder = weights_path(args, BUNDLE)
    return os.path.join(folder, "models", "model.pt" if args.model == "2d" else "model_3d.pt")


def _sampling(args: argparse.Namespace) -> dict:
    from ...utils.progress import progress_bar

    return {"steps": args.steps, "sampler": args.sampler, "seed": args.seed, "device": args.device,
            "precision": args.precision, "batch_size": args.batch_size,
            "progress": None if args.quiet else progress_bar(args.command)}


def cmd_generate(args: argparse.Namespace) -> int:
    from ...outputs import writing
    from .files import load_labels

    with writing([args.out], overwrite=args.overwrite, inputs=[args.mask, args.body, args.tissues]):
        load_labels(args.mask, args.task, body=args.body, tissues=args.tissues)  # checked before the model loads
        check_device(args.device)
        from .files import generate_file
        from .model import load_model

        path = generate_file(load_model(_model_path(args)), args.mask, args.modality, args.out, task=args.task,
                             body=args.body, tissues=args.tissues, overwrite=args.overwrite, **_sampling(args))
    print(path)
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    from ...io import load_volume, refuse_constant
    from ...outputs import writing

    if args.source == args.target:
        raise InputError(f"--from and --to are both {args.source}: nothing to convert")
    inputs = [args.image, args.mask, args.tissues, args.body]
    with writing([args.out], overwrite=args.overwrite, inputs=inputs):  # before anything loads
        refuse_constant(load_volume(args.image).data, args.image, "there is nothing to convert")
        if args.via == "prior" and not args.mask:
            task = "total" if args.source == "ct" else "total_mr"
            raise InputError(f"--via prior (the authors' way) needs the {args.source} image's label map: --mask, e.g. "
                             f"from `medfusion masks --image {args.image} --task {task} --out M.nii.gz`; or use "
                             "--via image")
        check_device(args.device)
        from .files import convert_file
        from .model import load_model

        path = convert_file(load_model(_model_path(args)), args.image, args.source, args.target, args.out,
                            via=args.via, mask=args.mask, task=args.task, tissues=args.tissues, body=args.body,
                            overwrite=args.overwrite, **_sampling(args))
    print(path)
    return 0


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help="output file (.nii.gz or .nii), float32: HU for CT")
    p.add_argument("--model", choices=("2d", "3d"), default="2d", help="2d: the published slice model (default); "
                   "3d: the full-volume wavelet model (no slice-to-slice stripes)")
    p.add_argument("--batch-size", type=positive_int, default=16, help="slices per batch of the 2D model (default 16)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output (never an input)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    # 20 and ddim = model.DEFAULT_STEPS and DEFAULT_SAMPLER, not imported here so that `medfusion --help` stays light
    add_sampling(p, 20, sampler="ddim", sampler_help="default ddim, as the shipped weights were measured")
    add_weights(p, BUNDLE)


def cmd_prior(args: argparse.Namespace) -> int:
    from .files import write_prior

    print(write_prior(args.mask, args.modality, args.out, task=args.task, body=args.body, tissues=args.tissues,
                      table=args.table, overwrite=args.overwrite))
    return 0


def cmd_masks(args: argparse.Namespace) -> int:
    from .masks import segment

    check_device(args.device)
    for path in segment(args.image, args.out, task=args.task, fast=args.fast, device=args.device,
                        body_out=args.body, tissues_out=args.tissues, overwrite=args.overwrite):
        print(path)
    return 0


def _register_generate(sub) -> None:
    p = sub.add_parser("generate", help="generate CT or MR from a TotalSegmentator label map (seg2med)",
                       description="Generate a CT (HU) or MR volume from a TotalSegmentator label map, in the "
                       "mask's geometry: the label map becomes a prior image (see `medfusion prior`) that "
                       "conditions a diffusion model.")
    p.add_argument("--mask", required=True, help="TotalSegmentator label map (NIfTI, NRRD, MHA or DICOM folder)")
    p.add_argument("--modality", required=True, choices=TARGETS, help="what to generate")
    p.add_argument("--task", choices=TASKS, default="total", help="the mask's TotalSegmentator task (default total)")
    p.add_argument("--body", help="body mask (non-zero = body); default: an approximation from the labels, with a "
                   "warning")
    p.add_argument("--tissues", help=_TISSUES_HELP)
    _add_common(p)
    p.set_defaults(func=cmd_generate)


def _register_convert(sub) -> None:
    p = sub.add_parser("convert", help="convert between CT and MR (T1/T2) with a diffusion model (seg2med)",
                       description="Convert a CT to MR or an MR to CT (or T1↔T2), in the input's geometry. By "
                       "default the authors' way: the input's TotalSegmentator label map (--mask) becomes the target's "
                       "prior image, from which the mask→image model generates; --via image conditions on the image "
                       "itself instead.")
    p.add_argument("--image", required=True, help="input volume (NIfTI, NRRD, MHA or DICOM folder)")
    p.add_argument("--from", dest="source", required=True, choices=TARGETS, help="the input's modality")
    p.add_argument("--to", dest="target", required=True, choices=TARGETS, help="the output's modality")
    p.add_argument("--via", choices=("prior", "image"), default="prior", help="prior: through the input's label map "
                   "and the target's prior image (the authors' way, default); image: the image-conditioned model")
    p.add_argument("--mask", help="the input's TotalSegmentator label map on its grid (task total for a CT, total_mr "
                   "for an MR; `medfusion masks`), needed by --via prior")
    p.add_argument("--task", choices=TASKS, help="the mask's task (default: total for a CT, total_mr for an MR)")
    p.add_argument("--tissues", help=_TISSUES_HELP)
    p.add_argument("--body", help="body mask on the input's grid (default: from the image: CT > −500 HU; an MR above "
                   "a tenth of its bright tissue)")
    _add_common(p)
    p.set_defaults(func=cmd_convert)


def _register_prior(sub) -> None:
    p = sub.add_parser("prior", help="turn a TotalSegmentator label map into a CT/MR prior image (seg2med)",
                       description="Replace every TotalSegmentator label by its value in a prior table — "
                       "Hounsfield units for CT, the sequence signal for MR — with fat and muscle from a tissue map, "
                       "inside the body contour (0 HU), air outside: the condition image of seg2med, written in the "
                       "mask's geometry (float32).")
    p.add_argument("--mask", required=True, help="TotalSegmentator label map (NIfTI, NRRD, MHA or DICOM folder)")
    p.add_argument("--modality", required=True, choices=MODALITIES, help="ct (HU), t1 (T1-weighted gradient "
                   "echo), t1_opposed (opposed-phase echo) or t2 (T2-weighted spin echo)")
    p.add_argument("--out", required=True, help="output file (.nii.gz or .nii)")
    p.add_argument("--task", choices=TASKS, default="total", help="the mask's TotalSegmentator task (default total)")
    p.add_argument("--body", help="body mask (non-zero = body), e.g. from `medfusion masks --body`; default: an "
                   "approximation from the labels (per-slice convex hull, widened by 15 mm, or 2 mm with --tissues), "
                   "with a warning")
    p.add_argument("--tissues", help=_TISSUES_HELP)
    p.add_argument("--table", choices=PRIOR_TABLES, default="seg2med", help="seg2med: the authors' values "
                   "(default); medfusion: medfusion's literature table, as before")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output (never an input)")
    p.set_defaults(func=cmd_prior)


def _register_masks(sub) -> None:
    p = sub.add_parser("masks", help="label a CT or MR with TotalSegmentator (optional extra, its own weights)",
                       description="Run TotalSegmentator on an image and write its label map in the image's "
                       "geometry. Needs `pip install 'medfusion[totalsegmentator]'` and the task's weights in "
                       "TotalSegmentator's weights folder; medfusion downloads nothing and switches off "
                       "TotalSegmentator's usage statistics.")
    p.add_argument("--image", required=True, help="CT (task total) or MR (task total_mr) volume")
    p.add_argument("--out", required=True, help="label map output (.nii.gz or .nii, uint8)")
    p.add_argument("--task", choices=TASKS, default="total", help="default total")
    p.add_argument("--fast", action="store_true", help="TotalSegmentator's 3 mm model")
    p.add_argument("--body", help="also write the CT's body contour here (CT > −500 HU, largest component, filled)")
    p.add_argument("--tissues", help="also write the tissue map here (TotalSegmentator tissue_types or "
                   "tissue_types_mr: subcutaneous fat, torso fat, skeletal muscle; needs those weights)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs (never an input)")
    p.set_defaults(func=cmd_masks)


def register(sub) -> None:
    """Add ``generate``, ``convert``, ``prior`` and ``masks`` to the ``medfusion`` sub-commands."""
    for add in (_register_generate, _register_convert, _register_prior, _register_masks):
        add(sub)
