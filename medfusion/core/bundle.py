"""What every application's MONAI bundle entry point shares.

A bundle's ``run`` expression calls an entry point's :meth:`BundleEntry.run`.  Bad input then ends the way it does
in the ``medfusion`` command — one line on stderr naming the problem and exit status 2, not a MONAI traceback
with the reason somewhere inside — and the files written are logged through the ``medfusion.bundle`` logger, which
the bundle's ``logging.conf`` routes (to stdout by default).
"""

from __future__ import annotations

import logging
import os
import sys

from ..errors import (BadCasesError, InputError, OutputExistsError, Terminated, first_line, one_line,
                      signals_as_exceptions)
from .checkpoint import load_checkpoint

__all__ = ["BundleEntry", "Training", "Inference", "load_weights", "model_from_checkpoint", "format_scores"]

logger = logging.getLogger("medfusion.bundle")


class BundleEntry:
    """Base class of bundle entry points: subclasses implement :meth:`_run` and return what they wrote."""

    #: shown before an error message
    name = "medfusion bundle"

    def run(self):
        """Run the entry point; an :class:`InputError` becomes one line on stderr and ``SystemExit(2)``, Ctrl-C and
        SIGTERM one line and ``SystemExit(130)`` / ``SystemExit(143)`` after the partial outputs are removed."""
        try:
            with signals_as_exceptions():
                result = self._run()
        except InputError as e:
            for path in getattr(e, "written", ()):  # skip_bad: the good cases were written
                logger.info("wrote %s", path)
            print(f"{self.name}: error: {one_line(e)}{_hint(e)}", file=sys.stderr, flush=True)
            raise SystemExit(2) from None
        except KeyboardInterrupt as e:
            how = "terminated (SIGTERM)" if isinstance(e, Terminated) else "interrupted"
            if os.environ.get("RANK", "0") == "0":  # once under torchrun
                print(f"{self.name}: {how}; {getattr(e, 'outcome', 'nothing was written')}", file=sys.stderr,
                      flush=True)
            raise SystemExit(143 if isinstance(e, Terminated) else 130) from None
        if isinstance(result, (list, tuple)):
            for path in result:
                logger.info("wrote %s", path)
        return result

    def _run(self):
        raise NotImplementedError


class Training(BundleEntry):
    """``train.json``'s ``run``: the ``trainer`` (:class:`~medfusion.core.training.Trainer`) with the bundle's one-line
    errors, and on Ctrl-C or SIGTERM one line naming the ``last.pt`` that resumes the run (exit 130 / 143)."""

    def __init__(self, trainer, name: str = "medfusion bundle training") -> None:
        self.trainer, self.name = trainer, name

    def _run(self):
        return self.trainer.run()


class Inference(BundleEntry):
    """``inference.json``'s ``run``: a :class:`~medfusion.core.runner.CaseInference` (the bundle's ``dataset``,
    ``predictor`` — the model and its ``inferer`` — and ``saver``) with the bundle's one-line errors."""

    def __init__(self, inference, name: str = "medfusion bundle inference") -> None:
        self.inference, self.name = inference, name

    def _run(self):
        return self.inference()


def _hint(err: InputError) -> str:
    """What to do about an error that a bundle option remedies, in the bundle's own option names."""
    if isinstance(err, OutputExistsError):
        return " (run with --overwrite true to replace it)"
    if isinstance(err, BadCasesError) and not err.skipped:
        return " (run with --skip_bad true to write the good cases)"
    return ""


def load_weights(diffusion, checkpoint: str, kind: str):
    """Load a checkpoint's weights into the bundle's ``network_def`` (strict: every tensor must fit), after checking
    that the configs' ``diffusion`` (schedule, space, prediction type, reference channel, ``sigma_data`` of a
    ``"skip"`` model) is the one the weights were trained with; returns the
    :class:`~medfusion.core.checkpoint.Checkpoint` (settings and provenance)."""
    ckpt = load_checkpoint(checkpoint, kind=kind)
    built, trained = diffusion.config, dict(ckpt.diffusion)
    trained.setdefault("reference", None)  # checkpoints from before residual diffusion
    keys = ("schedule", "space", "prediction", "reference", "sigma_data")
    differ = [k for k in keys if k in trained and built.get(k) != trained[k]]
    if differ:
        raise InputError(f"the weights in {checkpoint} were trained with " + ", ".join(
            f"{k} {trained[k]!r}" for k in differ) + " but the configs build " + ", ".join(
            f"{k} {built[k]!r}" for k in differ) + " (was the diffusion section of the config changed?)")
    try:
        diffusion.network.load_state_dict(ckpt.state_dict)
    except RuntimeError as e:
        raise InputError(f"the weights in {checkpoint} do not fit network_def (was it changed?): {first_line(e)}") \
            from None
    return ckpt


def model_from_checkpoint(model_class, diffusion, checkpoint: str, *, preprocessing: dict | None = None,
                          settings: dict | None = None):
    """``model_class`` (a :class:`~medfusion.core.model.DiffusionModel`) around the bundle's ``diffusion``, in eval
    mode, with the weights of ``checkpoint`` (:func:`load_weights`) and its preprocessing, settings and provenance;
    ``preprocessing`` / ``settings`` override single values of the checkpoint's (an application's bundle options)."""
    ckpt = load_weights(diffusion, checkpoint, model_class.kind)
    diffusion.network.eval()
    return model_class(diffusion=diffusion, network_config=ckpt.network,
                       preprocessing={**ckpt.preprocessing, **(preprocessing or {})},
                       settings={**ckpt.settings, **(settings or {})}, info=ckpt.info)


def format_scores(scores: dict) -> str:
    """``"ssim 0.9512, psnr 27.1034"`` for a bundle's log line (``-`` for a missing or non-numeric value)."""
    return ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} -" for k, v in scores.items())
