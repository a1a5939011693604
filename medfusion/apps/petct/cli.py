"""The PET/CT sub-command of ``medfusion``: ``segment`` (one case, or a folder of HECKTOR-named cases), and the
``headneck`` phantoms of ``medfusion phantoms``."""

from __future__ import annotations

import argparse

from ...core.cli_options import add_sampling, add_skip_bad, add_weights, check_device, positive_int, weights_path

BUNDLE = "hecktor_petct_diffseg"


def load_segmenter(path: str):
    """The diffusion model or the SegResNet baseline in a checkpoint file or bundle folder, by its kind."""
    from ...core.checkpoint import load_model_by_kind
    from .baseline import SegResNetBaseline
    from .model import PetCtSegModel

    return load_model_by_kind(path, (PetCtSegModel, SegResNetBaseline))


def cmd_segment(args: argparse.Namespace) -> int:
    from ...errors import InputError
    from ...outputs import writing
    from ...utils.progress import progress_bar
    from .geometry import load_pet_ct

    if (args.images is None) == (args.pet is None or args.ct is None) or (args.images and (args.pet or args.ct)):
        raise InputError("give --pet and --ct (one case) or --images (a folder of <case>__PT/__CT.nii.gz files)")
    if args.skip_bad and args.images is None:
        raise InputError("--skip-bad applies to a folder (--images)")
    opts = {"overwrite": args.overwrite, "device": args.device, "samples": args.samples, "steps": args.steps,
            "sampler": args.sampler, "seed": args.seed, "precision": args.precision,
            "progress": None if args.quiet else progress_bar(args.command)}  # the baseline ignores sampling
    if args.images is not None:
        from .files import hecktor_files, segment_folder

        hecktor_files(args.images)  # a folder without cases fails before the model is loaded
        check_device(args.device)
        written = segment_folder(load_segmenter(weights_path(args, BUNDLE)), args.images, args.out,
                                 probabilities_dir=args.probabilities, uncertainty_dir=args.uncertainty,
                                 skip_bad=args.skip_bad, **opts)
    else:
        with writing([args.out, args.probabilities, args.uncertainty], overwrite=args.overwrite,
                     inputs=[args.pet, args.ct]):  # checked before anything is loaded
            load_pet_ct(args.pet, args.ct)  # the inputs are checked before the model is loaded
            check_device(args.device)
            from .files import segment_case

            written = segment_case(load_segmenter(weights_path(args, BUNDLE)), args.pet, args.ct, args.out,
                                   probabilities=args.probabilities, uncertainty=args.uncertainty, **opts)
    print("\n".join(written))
    return 0


def register(sub) -> None:
    """Add ``segment`` to the ``medfusion`` sub-commands."""
    p = sub.add_parser("segment", help="segment head-and-neck tumours (GTVp, GTVn) on PET/CT with a diffusion "
                       "ensemble, with uncertainty maps",
                       description="Segment the primary tumour (1 GTVp) and lymph nodes (2 GTVn) on FDG PET/CT: "
                       "PET (SUV) and CT (HU) are resampled onto one working grid, a 3D diffusion model draws "
                       "--samples masks, and their mean, label map and uncertainty are written on the CT grid "
                       "(as HECKTOR evaluates). One case (--pet, --ct, --out FILE) or a folder of HECKTOR-named "
                       "cases (--images DIR --out DIR).")
    p.add_argument("--pet", help="PET volume in SUV (NIfTI, NRRD, MHA or DICOM folder)")
    p.add_argument("--ct", help="CT volume in HU, sharing the PET's world space")
    p.add_argument("--images", help="a folder of <case>__PT.nii.gz and <case>__CT.nii.gz files (HECKTOR naming)")
    p.add_argument("--out", required=True, help="label map (.nii.gz; uint8 0/1 GTVp/2 GTVn, CT grid), or the "
                   "output folder with --images (<case>.nii.gz)")
    # 10 samples × 5 steps = model.DEFAULT_SAMPLES / DEFAULT_STEPS (chosen on validation phantoms; not imported here
    # so that `medfusion --help` stays light)
    p.add_argument("--samples", type=positive_int, default=10, help="ensemble size (default 10)")
    p.add_argument("--probabilities", help="also write the mean GTVp and GTVn probabilities (4D float32, CT grid); "
                   "a folder with --images")
    p.add_argument("--uncertainty", help="also write the uncertainty: 4D float32 on the CT grid, volumes predictive "
                   "entropy (nats), variance of GTVp, variance of GTVn over the samples; a folder with --images")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs (never an input)")
    add_skip_bad(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_sampling(p, 5)
    add_weights(p, BUNDLE)
    p.set_defaults(func=cmd_segment)
