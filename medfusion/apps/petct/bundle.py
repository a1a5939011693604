"""Entry points of the ``hecktor_petct_diffseg`` MONAI bundle.

The configs build ``network_def`` (MONAI ``DiffusionModelUNet``), ``noise_schedule``, ``space`` and ``diffusion``
(:class:`~medfusion.core.diffusion.ConditionalDiffusion`) as components; :func:`assemble` joins them with a
checkpoint's weights and settings (the working grid), so the sampler, steps, ensemble size or network can be
overridden on the command line. Inference is composed of components: the ``dataset`` (:class:`~.files.HecktorFolder`),
the ``inferer`` (:class:`~medfusion.core.inferers.EnsembleInferer`: samples, sampler, steps, seed, device,
precision), the ``preprocessing`` and ``postprocessing`` (MONAI ``Compose`` lists:
:class:`~.transforms.PetCtNormalized` with the checkpoint's intensity settings, :class:`~.transforms.LabelMapd`),
the ``predictor`` (:class:`~.files.Segmenter`, which runs them around the ensemble on the working grid) and the
``saver`` (:class:`~.files.SegmentationSaver`), run by :class:`~medfusion.core.runner.CaseInference`;
``--preprocessing#transforms#0#ct_window "[-200, 300]"`` changes the labels written.

Inference reads a folder of HECKTOR-named cases (``<case>__PT.nii.gz`` in SUV, ``<case>__CT.nii.gz`` in HU) and
writes ``<output_dir>/<case>.nii.gz`` (labels on the CT grid), and when asked the probability and uncertainty maps
in their own folders.  Evaluation scores the diffusion ensemble and the SegResNet baseline on a HECKTOR-layout
folder (``imagesTr/``, ``labelsTr/``) with the ``hecktor`` protocol of :mod:`medfusion.metrics`.
"""

from __future__ import annotations

from ...core.bundle import BundleEntry, format_scores, model_from_checkpoint
from .model import DEFAULT_SAMPLES, DEFAULT_STEPS, PetCtSegModel

__all__ = ["assemble", "PetCtEvaluator"]


def assemble(diffusion, checkpoint: str) -> PetCtSegModel:
    """A :class:`PetCtSegModel` from the bundle's components and the weights and preprocessing in ``checkpoint``."""
    return model_from_checkpoint(PetCtSegModel, diffusion, checkpoint)


class PetCtEvaluator(BundleEntry):
    """``evaluate.json``: the diffusion ensemble and the SegResNet baseline (``baseline_checkpoint``) on every case
    of a HECKTOR-layout ``dataset_dir``, both with inference.json's ``preprocessing`` and ``postprocessing``,
    scored with the ``hecktor`` protocol; the report goes to ``report``."""

    name = "hecktor_petct_diffseg evaluate"

    def __init__(self, model, dataset_dir, report, *, baseline_checkpoint=None, samples=DEFAULT_SAMPLES,
                 steps=DEFAULT_STEPS, sampler="ddim", seed=0, device="cpu", precision="float32", max_cases=None,
                 overwrite=False, preprocessing=None, postprocessing=None):
        self.model, self.dataset_dir, self.report, self.overwrite = model, dataset_dir, report, overwrite
        self.baseline_checkpoint, self.max_cases = baseline_checkpoint, max_cases
        self.kwargs = dict(samples=samples, steps=steps, sampler=sampler, seed=seed, device=device,
                           precision=precision, preprocessing=preprocessing, postprocessing=postprocessing)

    def _run(self) -> list[str]:
        import logging

        from ...core.runner import check_outputs
        from .baseline import SegResNetBaseline
        from .evaluation import evaluate_heldout

        check_outputs([self.report], overwrite=self.overwrite, extensions=(".json",))
        models = {"diffusion": self.model}
        if self.baseline_checkpoint:
            models["segresnet"] = SegResNetBaseline.load(self.baseline_checkpoint)
        result = evaluate_heldout(models, self.dataset_dir, max_cases=self.max_cases, report=self.report,
                                  **self.kwargs)
        log = logging.getLogger("medfusion.bundle")
        for name, m in result["models"].items():
            unc = m.get("uncertainty", {}).get("error_auroc_mean")
            scores = {**m["set_metrics"], **({"error_auroc": unc} if unc is not None else {})}
            log.info("%s (n=%d): %s", name, result["n_cases"], format_scores(scores))
        return [self.report]
