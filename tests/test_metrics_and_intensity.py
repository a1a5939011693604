"""SSIM/PSNR/BraSyn SSIM against independent references; the intensity transforms against closed forms."""

import numpy as np
import pytest
import torch

from medfusion.metrics import brasyn_ssim, psnr, ssim
from medfusion.metrics.image import percentile_scale
from medfusion.transforms.intensity import PercentileNormalize, PercentileNormalized, ZeroBackground, foreground_of


@pytest.fixture
def pair():
    rng = np.random.default_rng(0)
    ref = rng.random((24, 20, 16))
    from scipy.ndimage import gaussian_filter

    ref = gaussian_filter(ref, 2)
    ref = (ref - ref.min()) / (ref.max() - ref.min())
    pred = np.clip(ref + 0.05 * rng.standard_normal(ref.shape), 0, 1)
    return pred, ref


def test_ssim_agrees_with_monai(pair):
    from monai.metrics import SSIMMetric

    pred, ref = pair
    monai_value = SSIMMetric(spatial_dims=3, data_range=1.0, kernel_type="gaussian", win_size=11,
                             kernel_sigma=1.5)(torch.tensor(pred)[None, None], torch.tensor(ref)[None, None])
    assert ssim(pred, ref, data_range=1.0) == pytest.approx(float(monai_value), abs=1e-3)
    assert ssim(ref, ref, data_range=1.0) == pytest.approx(1.0)


def test_psnr_closed_form(pair):
    pred, ref = pair
    mse = np.mean((pred - ref) ** 2)
    assert psnr(pred, ref, data_range=1.0) == pytest.approx(10 * np.log10(1 / mse))
    assert psnr(pred * 255, ref * 255, data_range=255.0) == pytest.approx(10 * np.log10(1 / mse))
    assert psnr(ref, ref, data_range=1.0) == float("inf")
    with pytest.raises(ValueError):
        psnr(pred[:-1], ref, data_range=1.0)


def test_brasyn_ssim_protocol(pair):
    pred, ref = pair
    seg = np.zeros(ref.shape, dtype=np.uint8)
    seg[8:14, 6:12, 5:10] = 2
    out = brasyn_ssim(pred * 800, ref * 1200 + 5, seg)  # any intensity unit: each is percentile-scaled itself
    p, r = percentile_scale(pred * 800), percentile_scale(ref * 1200 + 5)
    lo, hi = np.percentile(ref * 1200 + 5, [0.5, 99.5])
    np.testing.assert_allclose(r, (np.clip(ref * 1200 + 5, lo, hi) - lo) / (hi - lo))
    m = (seg > 0).astype(float)
    assert out["ssim_tumour"] == pytest.approx(ssim(p * m, r * m, data_range=1.0))
    assert out["ssim_non_tumour"] == pytest.approx(ssim(p * (1 - m), r * (1 - m), data_range=1.0))
    assert set(brasyn_ssim(pred, ref)) == {"ssim"}


def test_percentile_scale_lower_bound_not_negative():
    x = np.linspace(-100, 100, 1001)
    y = percentile_scale(x)
    assert y.min() == 0 and y.max() == 1
    assert np.all(y[x <= 0] == 0)  # the lower bound is forced to be >= 0


def test_percentile_normalize_closed_form_per_channel():
    rng = np.random.default_rng(1)
    x = np.stack([rng.gamma(2.0, 100.0, (10, 12, 8)), rng.normal(5.0, 2.0, (10, 12, 8))]).astype(np.float32)
    before = x.copy()
    y = np.asarray(PercentileNormalize(0.1, 99.9)(x))
    for c in range(2):
        lo, hi = np.percentile(x[c], [0.1, 99.9])
        np.testing.assert_allclose(y[c], (np.clip(x[c], lo, hi) - lo) / (hi - lo), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(x, before)  # input untouched
    d = PercentileNormalized(keys=["a"])({"a": x, "b": 1})
    np.testing.assert_allclose(np.asarray(d["a"]), y)
    assert d["b"] == 1


def test_zero_background():
    img = np.full((1, 4, 4, 4), 0.5, dtype=np.float32)
    img[0, 0, 0, 0] = 0.03
    fg = np.ones((4, 4, 4), dtype=bool)
    fg[3] = False
    out = ZeroBackground(0.04)(img, fg)
    assert out[0, 0, 0, 0] == 0 and np.all(out[0, 3] == 0) and out[0, 1, 1, 1] == 0.5
    assert img[0, 0, 0, 0] == np.float32(0.03)  # input untouched
    t = ZeroBackground(None)(torch.tensor(img), fg)
    assert torch.all(t[0, 3] == 0) and t[0, 0, 0, 0] == pytest.approx(0.03)
    np.testing.assert_array_equal(foreground_of([np.array([0, 1, 0]), np.array([0, 0, 2])]), [False, True, True])
