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


def test_evaluation_region_is_a_band_in_mm():
    from medfusion.metrics import evaluation_region

    pred = np.zeros((9, 9, 9), int)
    pred[4, 4, 4] = 1
    ref = np.zeros_like(pred)
    assert evaluation_region(pred, ref, band_mm=2.0).sum() == 33  # integer points with x² + y² + z² <= 4
    idx = np.indices(pred.shape) - 4
    ball = (2 * idx[0]) ** 2 + idx[1] ** 2 + idx[2] ** 2 <= 4  # 2 mm along the first axis
    assert np.array_equal(evaluation_region(pred, ref, (2.0, 1.0, 1.0), band_mm=2.0), ball)
    assert not evaluation_region(ref, ref).any()


def test_boundary_uncertainty_is_minus_the_distance_to_the_predicted_boundary():
    from medfusion.metrics import boundary_uncertainty

    pred = np.array([0, 0, 1, 1, 1, 0])
    assert boundary_uncertainty(pred).tolist() == [-2.0, -1.0, -1.0, -2.0, -1.0, -1.0]
    assert boundary_uncertainty(pred, (0.5,)).tolist() == [-1.0, -0.5, -0.5, -1.0, -0.5, -0.5]
    assert not boundary_uncertainty(np.zeros(4, int)).any()


def test_calibration_closed_forms():
    from medfusion.metrics import calibration

    ref = np.array([0, 1, 2, 1])
    onehot = np.eye(3)[ref].T
    assert calibration(onehot, ref) == {"brier": 0.0, "ece": 0.0}
    uniform = np.full((3, 4), 1 / 3)
    assert calibration(uniform, ref)["brier"] == pytest.approx(2 / 3)  # (2/3)² + 2·(1/3)²
    probs = np.array([[0.8, 0.1, 0.1, 0.8], [0.1, 0.8, 0.1, 0.1], [0.1, 0.1, 0.8, 0.1]])  # 3 of 4 right at 0.8
    assert calibration(probs, ref)["ece"] == pytest.approx(abs(0.75 - 0.8))
    assert math.isnan(calibration(probs, ref, region=np.zeros(4, bool))["brier"])


def test_generalised_energy_distance_by_hand():
    from medfusion.metrics import generalised_energy_distance

    a = np.array([1, 1, 0, 0])
    b = np.array([1, 1, 1, 0])  # IoU(a, b) = 2/3
    c = np.array([0, 0, 1, 1])  # IoU(a, c) = 0, IoU(b, c) = 1/4
    same = generalised_energy_distance([a, b], [a, b])  # every mean over the 4 pairs (0, 1/3, 1/3, 0): 1/6
    assert same["ged"] == pytest.approx(0.0)  # 2/6 − 1/6 − 1/6: the same distribution
    one = generalised_energy_distance([a], [a, b])  # a model that always gives a: pays for the annotations' spread
    assert one == pytest.approx({"ged": 2 / 6 - 0 - 1 / 6, "cross": 1 / 6, "sample_diversity": 0.0,
                                 "annotation_diversity": 1 / 6})
    far = generalised_energy_distance([c, c], [a, b])
    assert far["cross"] == pytest.approx((1 + 3 / 4) / 2) and far["ged"] > one["ged"]
    empty = np.zeros(4, int)
    assert generalised_energy_distance([empty], [empty])["ged"] == 0.0  # nothing anywhere: no distance
    with pytest.raises(ValueError, match="one shape"):
        generalised_energy_distance([a], [a[:3]])
