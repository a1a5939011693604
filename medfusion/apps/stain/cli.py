"""The stain-translation sub-command of ``medfusion``: ``stain`` (one H&E image, or a folder), and the ``stain``
phantoms of ``medfusion phantoms`` (synthetic H&E/IHC tissue tiles with cell labels)."""

from __future__ import annotations

import argparse

from ...core.cli_options import add_sampling, add_skip_bad, add_weights, check_device, positive_int, weights_path

BUNDLE = "he_to_ihc_staindiffuser"


def load_translator(path: str):
    """The diffusion model or the U-Net baseline in a checkpoint file or bundle folder, by its kind."""
    from ...core.checkpoint import load_model_by_kind
    from .baseline import UNetBaseline
    from .model import StainModel

    return load_model_by_kind(path, (StainModel, UNetBaseline))


def cmd_stain(args: argparse.Namespace) -> int:
    from ...errors import InputError
    from ...outputs import OutputPlan
    from ...utils.progress import progress_bar
    from .images import LABEL_FORMATS, RGB_FORMATS
    from .slides import STREAM_EXTENSIONS, check_he, check_stream_outputs, streamed

    if (args.he is None) == (args.images is None):
        raise InputError("give --he (one H&E image) or --images (a folder of H&E images)")
    if args.skip_bad and args.images is None:
        raise InputError("--skip-bad applies to a folder (--images)")
    if args.out is None and args.cells is None:
        raise InputError("nothing to write: give --out (IHC image) and/or --cells (cell labels)")
    opts = {"overwrite": args.overwrite, "device": args.device, "steps": args.steps, "sampler": args.sampler,
            "seed": args.seed, "precision": args.precision, "tile": args.tile, "overlap": args.overlap,
            "stream": True if args.stream else None,
            "progress": None if args.quiet else progress_bar(args.command)}  # the baseline ignores sampling
    if args.images is not None:
        from .files import list_images, stain_folder

        list_images(args.images)  # a folder without images fails before the model is loaded
        check_device(args.device)
        written = stain_folder(load_translator(weights_path(args, BUNDLE)), args.images, args.out,
                               cells_dir=args.cells, skip_bad=args.skip_bad, **opts)
    else:  # outputs and input checked before the model is loaded
        stream = args.stream or streamed(args.he)
        if stream:
            check_stream_outputs(args.he, [args.out, args.cells])
        with OutputPlan(overwrite=args.overwrite, inputs=[args.he]) \
                .add(args.out, STREAM_EXTENSIONS if stream else RGB_FORMATS) \
                .add(args.cells, STREAM_EXTENSIONS if stream else LABEL_FORMATS):
            check_he(args.he, stream)
            check_device(args.device)
            from .files import stain_file

            written = stain_file(load_translator(weights_path(args, BUNDLE)), args.he, args.out, cells=args.cells,
                                 **opts)
    print("\n".join(written))
    return 0


def register(sub) -> None:
    """Add ``stain`` to the ``medfusion`` sub-commands."""
    p = sub.add_parser("stain", help="virtual IHC stain and cell labels from an H&E image (StainDiffuser)",
                       description="Translate an H&E image (8-bit RGB PNG, TIFF or JPEG) to a virtual IHC image of "
                       "the same size, and segment its cells, with a multitask diffusion model. Images larger than "
                       "--tile run tile by tile, overlapping tiles blended. One image (--he, --out FILE) or a "
                       "folder (--images DIR --out DIR).")
    p.add_argument("--he", help="H&E image (8-bit RGB: PNG, TIFF or JPEG)")
    p.add_argument("--images", help="a folder of H&E images (outputs <name>.png)")
    p.add_argument("--out", help="virtual IHC image (8-bit RGB, .png/.tif/.jpg), or the output folder with --images")
    p.add_argument("--cells", help="also write the cell labels (16-bit PNG or TIFF, 0 background, 1..N cells); a "
                   "folder with --images")
    p.add_argument("--tile", type=positive_int, help="tile size in pixels (default: the model's training tile)")
    p.add_argument("--overlap", type=int, help="pixels shared by neighbouring tiles (default: a quarter tile)")
    p.add_argument("--stream", action="store_true", help="read, translate and write band by band into TIFF outputs "
                   "(--out .tif: 8-bit RGB, --cells .tif: 32-bit labels), in memory bounded by the image's width; "
                   "automatic for images over 25 megapixels and for whole-slide files (.svs, .ndpi, ...: needs the "
                   "wsi extra); background tiles (glass) are not run")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs (never an input)")
    add_skip_bad(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_sampling(p, 10)
    add_weights(p, BUNDLE)
    p.set_defaults(func=cmd_stain)
