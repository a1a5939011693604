"""Entry points of the ``totalseg_mask_to_ct_mr`` MONAI bundle.

The configs build ``network_def`` (MONAI ``DiffusionModelUNet``), ``noise_schedule``, ``space`` and ``diffusion``
(:class:`~medfusion.core.diffusion.ConditionalDiffusion`) as components; :func:`assemble` joins them with a
checkpoint's weights, windows and tasks, so the sampler, steps or windows can be overridden on the command line.

A case folder for inference holds ``mask.nii.gz`` (TotalSegmentator ``total`` labels) and optionally
``body.nii.gz`` and ``tissues.nii.gz`` (TotalSegmentator ``tissue_types``); for conversion, ``<source>.nii.gz``
(``ct``, ``t1`` or ``t2``; with ``mask.nii.gz``, its label map, for the authors' way).  Outputs are
``<output_dir>/<case>_<target>.nii.gz`` in the input's geometry. Inference is composed of components: the
``dataset`` (:class:`~.files.Seg2MedFolder`), the ``inferer`` (:class:`~medfusion.core.inferers.SliceInferer` for
the 2D model, :class:`~medfusion.core.inferers.WholeVolumeInferer` for the 3D one), the ``preprocessing`` and
``postprocessing`` (MONAI ``Compose`` lists of ``ScaleIntensityRanged`` on the model's grid: the condition windowed
to [0, 1], the sample back to HU or MR units, their limits read from the model's windows for the configured task,
as :mod:`.transforms` builds them), the ``predictor`` (:class:`~.files.Generator`: the model, the inferer and the
two lists, which it runs) and the ``saver`` (:class:`~.files.ImageSaver`), run by
:class:`~medfusion.core.runner.CaseInference`; ``--postprocessing#transforms#0#b_max 1200`` changes the voxels
written.
"""

from __future__ import annotations

from ...core.bundle import BundleEntry, format_scores, model_from_checkpoint
from .model import DEFAULT_SAMPLER, DEFAULT_STEPS, Seg2MedModel

__all__ = ["assemble", "Seg2MedEvaluator"]


def assemble(diffusion, checkpoint: str, windows: dict | None = None) -> Seg2MedModel:
    """A :class:`Seg2MedModel` from the bundle's components and the weights in ``checkpoint``.

    Args:
        diffusion: a :class:`~medfusion.core.diffusion.ConditionalDiffusion` around ``network_def``.
        checkpoint: a medfusion seg2med checkpoint (its weights must fit ``network_def``).
        windows: modality → ``[lo, hi]`` overriding the checkpoint's intensity windows (``None``: the checkpoint's).
    """
    model = model_from_checkpoint(Seg2MedModel, diffusion, checkpoint)
    if windows:
        pre = model.preprocessing
        pre["windows"] = {**pre["windows"], **{k: [float(v) for v in w] for k, w in windows.items()}}
    return model


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
