"""Entry points of the ``he_to_ihc_staindiffuser`` MONAI bundle.

The configs build ``network_def`` (:class:`~.network.DualBranchDenoiser`), ``noise_schedule``, ``space`` and
``diffusion`` (:class:`~medfusion.core.diffusion.ConditionalDiffusion`) as components; :func:`assemble` joins them
with a checkpoint's weights and settings, so steps, tiles or the network can be overridden on the command line.
The ``preprocessing`` (MONAI ``ScaleIntensityRanged``: H&E 0 … 255 → −1 … 1) and ``postprocessing`` (empty) are
``Compose`` lists that the ``predictor`` (:class:`~.files.Translator`) runs around the model, per band for a
streamed image (:mod:`.transforms`); ``--preprocessing#transforms#0#a_max 240`` changes the images written.

Inference reads a folder of H&E images (8-bit RGB PNG, TIFF or JPEG) and writes ``<output_dir>/<name>.png`` (the
virtual IHC image) and, when ``cells_dir`` is set, ``<cells_dir>/<name>.png`` (16-bit cell labels).  Evaluation
scores the diffusion model, the U-Net baseline and the no-learning references on a folder of case folders
(``he.png``, ``ihc.png``, ``cells.png``): the IHC image with the ``bci`` protocol, the cells by Dice.
"""

from __future__ import annotations

from ...core.bundle import BundleEntry, format_scores, model_from_checkpoint
from .model import StainModel

__all__ = ["assemble", "StainEvaluator"]


def assemble(diffusion, checkpoint: str) -> StainModel:
    """A :class:`StainModel` from the bundle's components and the weights and settings in ``checkpoint``."""
    return model_from_checkpoint(StainModel, diffusion, checkpoint)


class StainEvaluator(BundleEntry):
    """``evaluate.json``: the diffusion model, the U-Net baseline (``baseline_checkpoint``) — both with
    inference.json's ``preprocessing`` and ``postprocessing`` — and the no-learning references on held-out case
    folders, every number from :mod:`medfusion.metrics`; a JSON report."""

    name = "he_to_ihc_staindiffuser evaluate"

    def __init__(self, model, dataset_dir, report, *, baseline_checkpoint=None, steps=10, sampler="ddim", seed=0,
                 tile=None, overlap=None, device="cpu", precision="float32", max_cases=None, overwrite=False,
                 preprocessing=None, postprocessing=None):
        self.model, self.dataset_dir, self.report, self.overwrite = model, dataset_dir, report, overwrite
        self.baseline_checkpoint, self.max_cases = baseline_checkpoint, max_cases
        self.kwargs = dict(steps=steps, sampler=sampler, seed=seed, tile=tile, overlap=overlap, device=device,
                           precision=precision, preprocessing=preprocessing, postprocessing=postprocessing)

    def _run(self) -> list[str]:
        import logging

        from ...core.runner import check_outputs
        from .baseline import UNetBaseline
        from .evaluation import evaluate_heldout

        check_outputs([self.report], overwrite=self.overwrite, extensions=(".json",))
        models = {"diffusion": self.model}
        if self.baseline_checkpoint:
            models["unet"] = UNetBaseline.load(self.baseline_checkpoint)
        result = evaluate_heldout(models, self.dataset_dir, max_cases=self.max_cases, report=self.report,
                                  **self.kwargs)
        log = logging.getLogger("medfusion.bundle")
        for name, m in result["models"].items():
            scores = {**{f"ihc_{k}": v for k, v in m.get("ihc", {}).items() if k != "per_case"},
                      **{f"cells_{k}": v for k, v in m.get("cells", {}).items() if k != "per_case"}}
            log.info("%s (n=%d): %s", name, result["n_cases"], format_scores(scores))
        return [self.report]
