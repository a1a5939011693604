"""The no-learning baselines the seg2med model must beat.

* Generation (label map → image): the **prior image itself** (:func:`~.prior.make_prior`), the condition the model
  starts from, read in the target's units through the model's windows — what a lookup table of tissue values
  gives.
* Conversion (image → other modality): the input **histogram-matched** to the target inside the body
  (``skimage.exposure.match_histograms``), air outside. Matching to the true target's histogram is an oracle (it
  sees the answer's intensity distribution), so this baseline is generous.
"""

from __future__ import annotations

import numpy as np

from .model import AIR
from .prior import make_prior

__all__ = ["prior_baseline", "histogram_baseline"]


def prior_baseline(model, labels: np.ndarray, target: str, *, body: np.ndarray, task: str = "total",
                   tissues: np.ndarray | None = None) -> np.ndarray:
    """The prior image of ``labels`` for ``target`` as the model sees it, read back in the target's units: its table
    (``model.prior_table``), windowed by its prior window and un-windowed by the target's — for CT the prior in HU
    itself; for an MR table in its own units, the prior rescaled onto the target's window. Float32."""
    prior = make_prior(labels, target, task=task, body=body, tissues=tissues, table=model.prior_table)
    out = model.denormalize(model.normalize_prior(prior, target), target)
    out[~np.asarray(body, dtype=bool)] = AIR[target]
    return out


def histogram_baseline(source: np.ndarray, reference: np.ndarray, *, body: np.ndarray, target: str) -> np.ndarray:
    """``source`` inside ``body`` with its histogram matched to ``reference``'s inside ``body``; air outside."""
    from skimage.exposure import match_histograms

    body = np.asarray(body, dtype=bool)
    out = np.full(np.shape(source), AIR[target], dtype=np.float32)
    out[body] = match_histograms(np.asarray(source, np.float32)[body], np.asarray(reference, np.float32)[body])
    return out
