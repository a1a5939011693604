"""Entry points of the ``totalseg_mask_to_ct_mr`` MONAI bundle.

The configs build ``network_def`` (MONAI ``DiffusionModelUNet``), ``noise_schedule``, ``space`` and ``diffusion``
(:class:`~medfusion.core.diffusion.ConditionalDiffusion`) as components; :func:`assemble` joins them with a
checkpoint's weights, windows and tasks, so the sampler, steps or windows can be overridden on the command line.

A case folder for inference holds ``mask.nii.gz`` (TotalSegmentator ``total`` labels) and optionally
``body.nii.gz`` and ``tissues.nii.gz`` (TotalSegmentator ``tissue_types``); for conversion, ``<source>.nii.gz``
(``ct``, ``t1`` or ``t2``; with ``mask.nii.gz``, its label map, for the authors' way).  Outputs are
``<output_dir>/<case>_<target>.nii.gz`` in the input's geometry.
"""

from __future__ import annotations

import os

from ...core.bundle import BundleEntry, format_scores, load_weights
from ...errors import InputError
from .model import DEFAULT_SAMPLER, DEFAULT_STEPS, KIND, Seg2MedModel

__all__ = ["assemble", "Seg2MedGenerator", "Seg2MedEvaluator"]


def assemble(diffusion, checkpoint: str, windows: dict | None = None) -> Seg2MedModel:
    """A :class:`Seg2MedModel` from the bundle's components and the weights in ``checkpoint``.

    Args:
        diffusion: a :class:`~medfusion.core.diffusion.ConditionalDiffusion` around ``network_def``.
        checkpoint: a medfusion seg2med checkpoint (its weights must fit ``network_def``).
        windows: modality → ``[lo, hi]`` overriding the checkpoint's intensity windows (``None``: the checkpoint's).
    """
    ckpt = load_weights(diffusion, checkpoint, KIND)
    pre = dict(ckpt.preprocessing)
    if windows:
        pre["windows"] = {**pre["windows"], **{k: [float(v) for v in w] for k, w in windows.items()}}
    diffusion.network.eval()
    return Seg2MedModel(diffusion=diffusion, network_config=ckpt.network, preprocessing=pre,
                        settings=dict(ckpt.settings), info=ckpt.info)


def _case_folders(dataset_dir, needed: str) -> list[tuple[str, str, str | None, str | None]]:
    """``(case, input file, body file or None, tissue map or None)`` for every sub-folder of ``dataset_dir`` holding
    ``needed``."""
    root = os.fspath(dataset_dir)
    if not os.path.isdir(root):
        raise InputError(f"dataset folder not found: {root}")
    cases = []
    for name in sorted(os.listdir(root)):
        found = [os.path.join(root, name, f"{needed}{ext}") for ext in (".nii.gz", ".nii")]
        found = [f for f in found if os.path.isfile(f)]
        if found:
            extra = [os.path.join(root, name, f"{key}.nii.gz") for key in ("body", "tissues")]
            cases.append((name, found[0], *(f if os.path.isfile(f) else None for f in extra)))
    if not cases:
        raise InputError(f"no case folders with {needed}.nii.gz in {root}")
    return cases


def _mask_of(path: str) -> str:
    """The ``mask.nii.gz`` beside a case's source image (a conversion the authors' way needs it)."""
    mask = os.path.join(os.path.dirname(path), "mask.nii.gz")
    if not os.path.isfile(mask):
        raise InputError(f"conversion via the prior needs the source's label map {mask} (TotalSegmentator; "
                         "`medfusion masks`), or set via to image")
    return mask


class Seg2MedGenerator(BundleEntry):
    """``inference.json``: generate ``target`` for every case folder in ``dataset_dir`` — from ``mask.nii.gz``
    (``source="prior"``) or by converting ``<source>.nii.gz``: ``via="prior"`` (the authors' way) through the case's
    ``mask.nii.gz``, the source's label map (``task``: ``total`` for a CT, ``total_mr`` for an MR when ``null``),
    ``via="image"`` by the image-conditioned model."""

    name = "totalseg_mask_to_ct_mr inference"

    def __init__(self, model, dataset_dir, output_dir, *, target="ct", source="prior", task=None, via="prior",
                 steps=DEFAULT_STEPS, sampler=DEFAULT_SAMPLER, variance="fixed_large", seed=0, device="cpu",
                 precision="float32", batch_size=16, overwrite=False, skip_bad=False):
        from .inference import SOURCE_TASK

        self.model, self.dataset_dir, self.output_dir, self.overwrite = model, dataset_dir, output_dir, overwrite
        self.source, self.target, self.via, self.skip_bad = source, target, via, skip_bad
        self.task = task or SOURCE_TASK.get(source, "total")
        self.kwargs = dict(steps=steps, sampler=sampler, variance=variance, seed=seed, device=device,
                           precision=precision, batch_size=batch_size)

    def _run(self) -> list[str]:
        from ...core.runner import run_cases
        from ...io import load_volume, refuse_constant
        from .files import convert_file, generate_file
        from .files import load_labels

        by_prior = self.source == "prior" or self.via == "prior"
        self.model.task_index("prior" if by_prior else self.source, self.target)  # the model does it, before any work
        cases = _case_folders(self.dataset_dir, "mask" if self.source == "prior" else self.source)
        if self.source != "prior" and self.via == "prior":  # the source's label map beside it
            cases = [(name, path, body, tissues, _mask_of(path)) for name, path, body, tissues in cases]
        outs = [[os.path.join(os.fspath(self.output_dir), f"{case[0]}_{self.target}.nii.gz")] for case in cases]
        inputs = [p for case in cases for p in case[1:] if p]

        def one(case, out):
            _, path, body, tissues, *mask = case
            if self.source == "prior":
                return generate_file(self.model, path, self.target, out[0], task=self.task, body=body,
                                     tissues=tissues, overwrite=self.overwrite, **self.kwargs)
            return convert_file(self.model, path, self.source, self.target, out[0], via=self.via,
                                mask=mask[0] if mask else None, task=self.task, body=body,
                                tissues=tissues if mask else None, overwrite=self.overwrite, **self.kwargs)

        def check(case):
            _, path, body, tissues, *mask = case
            if self.source == "prior":
                load_labels(path, self.task, body=body, tissues=tissues)
                return
            refuse_constant(load_volume(path).data, path, "there is nothing to convert")
            if mask:
                load_labels(mask[0], self.task, body=body, tissues=tissues)

        return run_cases(cases, outs, one, overwrite=self.overwrite, inputs=inputs, validate=check,
                         names=[case[0] for case in cases], skip_bad=self.skip_bad)


class Seg2MedEvaluator(BundleEntry):
    """``evaluate.json``: every task of the model on every complete case (mask, ct, t1, t2) — conversions each way
    in ``via`` — scored with the ``synthrad`` protocol of :mod:`medfusion.metrics`, model against the no-learning
    baseline; ``tissues``: give the cases' tissue maps."""

    name = "totalseg_mask_to_ct_mr evaluate"

    def __init__(self, model, dataset_dir, report, *, tasks=None, via=("prior", "image"), tissues=False,
                 steps=DEFAULT_STEPS, sampler=DEFAULT_SAMPLER, seed=0, device="cpu", precision="float32",
                 batch_size=16, max_cases=None, overwrite=False):
        self.model, self.dataset_dir, self.report, self.overwrite = model, dataset_dir, report, overwrite
        self.tasks, self.max_cases, self.via, self.tissues = tasks, max_cases, tuple(via), bool(tissues)
        self.kwargs = dict(steps=steps, sampler=sampler, seed=seed, device=device, precision=precision,
                           batch_size=batch_size)

    def _run(self) -> list[str]:
        import logging

        from ...core.runner import check_outputs
        from .evaluation import evaluate_heldout

        check_outputs([self.report], overwrite=self.overwrite, extensions=(".json",))
        result = evaluate_heldout(self.model, self.dataset_dir, tasks=self.tasks, via=self.via, tissues=self.tissues,
                                  max_cases=self.max_cases, report=self.report, **self.kwargs)
        log = logging.getLogger("medfusion.bundle")
        for task, s in result["summary"].items():
            log.info("%s (n=%d): model %s | baseline (%s) %s", task, s["n"], format_scores(s["model"]), s["baseline_name"],
                     format_scores(s["baseline"]))
        return [self.report]
