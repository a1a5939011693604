"""Entry points of the ``brats_mri_cwdm`` MONAI bundle.

The bundle's configs build the parts as separate components — ``network_def`` (the MONAI ``DiffusionModelUNet``),
``noise_schedule``, ``space`` and ``diffusion`` (:class:`~medfusion.core.diffusion.ConditionalDiffusion`) — and
:func:`assemble` joins them with the checkpoint's weights, so a user can override any of them on the command line
(``--steps 1000 --sampler ddpm``) without editing code. Inference is then composed of components too: a ``dataset``
(:class:`~.files.BraTSFolder`), an ``inferer`` (:class:`~medfusion.core.inferers.WholeVolumeInferer`: sampler,
steps, seed, device, precision), the ``preprocessing`` and ``postprocessing`` (MONAI ``Compose`` lists:
:class:`~medfusion.transforms.PercentileNormalized`, :class:`~medfusion.transforms.ZeroBackgroundd`, as
:mod:`.transforms` builds them), the ``predictor`` (:class:`~.files.Synthesizer`: the model, the inferer and the
two lists, which it runs) and a ``saver`` (:class:`~.files.SynthesisSaver`), run by
:class:`~medfusion.core.runner.CaseInference`; ``--preprocessing#transforms#0#upper 99.5`` changes the voxels
written.
"""

from __future__ import annotations

from ...core.bundle import BundleEntry, format_scores, model_from_checkpoint
from .model import CWDMModel

__all__ = ["assemble", "CWDMEvaluator"]


def assemble(diffusion, checkpoint: str) -> CWDMModel:
    """A :class:`CWDMModel` from the bundle's components and the weights and settings in ``checkpoint``.

    Args:
        diffusion: a :class:`~medfusion.core.diffusion.ConditionalDiffusion` around ``network_def``.
        checkpoint: a medfusion cWDM checkpoint (its weights must fit ``network_def``).
    """
    return model_from_checkpoint(CWDMModel, diffusion, checkpoint)


class CWDMEvaluator(BundleEntry):
    """``evaluate.json``: every contrast of every complete case hidden in turn, synthesized (with inference.json's
    ``preprocessing`` and ``postprocessing``) and scored with the ``brasyn`` protocol of :mod:`medfusion.metrics`,
    model against the no-learning baseline."""

    name = "brats_mri_cwdm evaluate"

    def __init__(self, model, dataset_dir, report, *, missing=None, steps=50, sampler="ddim", seed=0, device="cpu",
                 precision="float32", max_cases=None, overwrite=False, preprocessing=None, postprocessing=None):
        self.model, self.dataset_dir, self.report, self.overwrite = model, dataset_dir, report, overwrite
        self.kwargs = dict(missing=missing, steps=steps, sampler=sampler, seed=seed, device=device,
                           precision=precision, max_cases=max_cases, preprocessing=preprocessing,
                           postprocessing=postprocessing)

    def _run(self) -> list[str]:
        import logging

        from ...core.runner import check_outputs
        from .evaluation import evaluate_heldout

        check_outputs([self.report], overwrite=self.overwrite, extensions=(".json",))
        result = evaluate_heldout(self.model, self.dataset_dir, report=self.report, **self.kwargs)
        log = logging.getLogger("medfusion.bundle")
        for group, s in result["summary"].items():
            m, b = s["model"], s["baseline"]
            log.info("%s (n=%d): model %s | baseline %s", group, s["n"], format_scores(m), format_scores(b))
        return [self.report]
