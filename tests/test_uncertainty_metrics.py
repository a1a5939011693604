"""Uncertainty-vs-error measures against closed forms and an independent rank statistic (scipy's Mann-Whitney U)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import mannwhitneyu

from medfusion.metrics import dice, dice_after_removing_uncertain, error_auroc


def test_error_auroc_closed_forms_and_mann_whitney():
    ref = np.array([1, 1, 1, 0, 0, 2, 2, 0])
    pred = np.array([1, 0, 1, 1, 0, 2, 1, 0])  # errors at 1, 3, 6
    perfect = np.array([0.1, 0.9, 0.2, 0.8, 0.0, 0.1, 0.7, 0.0])
    assert error_auroc(perfect, pred, ref) == 1.0
    assert error_auroc(-perfect + 1, pred, ref, region=np.ones(8, bool)) == 0.0
    assert error_auroc(np.full(8, 0.3), pred, ref) == 0.5  # all tied
    rng = np.random.default_rng(0)
    u = rng.random(500)
    err = rng.random(500) < 0.3 + 0.4 * u  # errors more likely where uncertain
    p, r = err.astype(int), np.zeros(500, int)
    stat = mannwhitneyu(u[err], u[~err]).statistic
    assert error_auroc(u, p, r, region=np.ones(500, bool)) == pytest.approx(stat / (err.sum() * (~err).sum()))
    assert math.isnan(error_auroc(u, r, r, region=np.ones(500, bool)))  # no errors
    with pytest.raises(ValueError, match="shapes differ"):
        error_auroc(u[:3], p, r)


def test_dice_after_removing_uncertain_voxels():
    ref = np.zeros((10, 10), bool)
    ref[2:7, 2:7] = True
    pred = ref.copy()
    pred[7, 2:7] = True  # 5 false positives ...
    unc = np.where(pred & ~ref, 1.0, 0.1)  # ... that are the most uncertain voxels
    out = dice_after_removing_uncertain(unc, pred, ref, fractions=(0.0, 1 / 6, 1.0))
    assert out[0.0] == pytest.approx(dice(pred, ref)) and out[0.0] < 1
    assert out[1 / 6] == 1.0  # the 5 errors of the 30 union voxels removed
    assert math.isnan(out[1.0])
    with pytest.raises(ValueError, match="fractions"):
        dice_after_removing_uncertain(unc, pred, ref, fractions=(1.5,))
