"""SSIM/PSNR/BraSyn SSIM against independent references (MONAI, torchmetrics — the library BraSyn's own script
uses); the intensity transforms against closed forms."""

import numpy as np
import pytest
import torch

from medfusion.metrics import brasyn_ssim, psnr, region_ssim, ssim
from medfusion.metrics.image import percentile_scale
from medfusion.transforms.intensity import (
    PercentileNormalize, PercentileNormalized, ZeroBackground, ZeroBackgroundd, foreground_of,
)


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


def _tm_ssim(pred, ref, data_range=None, full=False):
    """torchmetrics' SSIM (Gaussian 11, σ 1.5, K1 0.01, K2 0.03), the independent reference: as BraSyn's
    ``ssim.py`` calls it when ``data_range`` is None; ``full`` also returns its SSIM map."""
    pytest.importorskip("torchmetrics", minversion="1.4.2")  # ≥ 1.4.2: the mean over the whole image
    from torchmetrics.functional.image import structural_similarity_index_measure

    def t(a):
        return torch.tensor(np.asarray(a, dtype=np.float64))[None, None]

    out = structural_similarity_index_measure(t(pred), t(ref), data_range=data_range, return_full_image=full)
    return (float(out[0]), out[1][0, 0].numpy()) if full else float(out)


def phantom(shape=(32, 28, 22), seed=0):
    """``(pred, ref, seg)``: a brain-like ``ref`` (smooth texture inside an ellipsoid, zero outside, a bright
    'tumour' blob), a noisy, slightly blurred 'synthesis' ``pred`` of it, and the tumour label map ``seg``."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    g = np.indices(shape).astype(float)
    c = [(n - 1) / 2 for n in shape]
    head = sum(((gi - ci) / (0.42 * n)) ** 2 for gi, ci, n in zip(g, c, shape)) <= 1
    tumour = sum((gi - ci - 4) ** 2 for gi, ci in zip(g, c)) <= 25
    ref = (300 + 500 * gaussian_filter(rng.random(shape), 2)) * head + 400 * tumour
    pred = gaussian_filter(ref, 0.7) + rng.normal(0, 25, shape) * head
    seg = tumour.astype(np.uint8) * 2
    seg[tumour & (g[0] > c[0] + 4)] = 1
    return np.clip(pred, 0, None), ref, seg


@pytest.mark.parametrize("kind", ["random", "phantom", "2d"])
def test_ssim_agrees_with_torchmetrics(pair, kind):
    """Our SSIM (scipy filters) equals torchmetrics': border="full" its mean over every voxel (mirrored border),
    border="valid" the mean of its SSIM map half a window away from the border (torchmetrics ≤ 1.4.1)."""
    if kind == "random":
        rng = np.random.default_rng(7)
        pred, ref = rng.random((24, 20, 16)), rng.random((24, 20, 16)) * 0.5 + 0.2
    elif kind == "phantom":
        pred, ref, _ = phantom()
        pred, ref = percentile_scale(pred), percentile_scale(ref)
    else:
        pred, ref = pair[0][:, :, 7], pair[1][:, :, 7]
    for r in (1.0, 0.6):
        value, smap = _tm_ssim(pred, ref, data_range=r, full=True)
        assert ssim(pred, ref, data_range=r, border="full") == pytest.approx(value, abs=1e-4)
        inner = (slice(5, -5),) * pred.ndim
        assert ssim(pred, ref, data_range=r) == pytest.approx(smap[inner].mean(), abs=1e-4)
    # the default data range of torchmetrics is max(max - min) of the two images
    assert ssim(pred, ref, data_range=max(np.ptp(pred), np.ptp(ref)), border="full") == pytest.approx(
        _tm_ssim(pred, ref), abs=1e-4)


def test_brasyn_ssim_is_the_organisers_recipe():
    """brasyn_ssim == the BraSyn ssim.py recipe written here with numpy and torchmetrics: each image clipped at
    its own 0.5/99.5 percentiles (lower bound >= 0), scaled to [0, 1]; SSIM(pred*m, ref*m) and
    SSIM(pred*(1-m), ref*(1-m)) with torchmetrics' default data range of the masked volumes."""
    pred, ref, seg = phantom()
    out = brasyn_ssim(pred * 3, ref + 7, seg)  # any intensity unit: each is percentile-scaled itself

    def clip(x):
        lo, hi = np.percentile(x, [0.5, 99.5])
        lo = max(lo, 0)
        return (np.clip(x, lo, hi) - lo) / (hi - lo)

    p, r, m = clip(pred * 3), clip(ref + 7), (seg > 0).astype(float)
    assert out["ssim_tumour"] == pytest.approx(_tm_ssim(p * m, r * m), abs=1e-4)
    assert out["ssim_non_tumour"] == pytest.approx(_tm_ssim(p * (1 - m), r * (1 - m)), abs=1e-4)
    assert out["ssim"] == pytest.approx(_tm_ssim(p, r, data_range=1.0), abs=1e-4)  # our addition, range 1
    # the data range matters here: the tumour's maximum is below 1 in the prediction and the truth
    dimmed = brasyn_ssim(p * np.where(m > 0, 0.5, 1.0), r * np.where(m > 0, 0.5, 1.0), seg, scaled=True)
    p2, r2 = p * np.where(m > 0, 0.5, 1.0), r * np.where(m > 0, 0.5, 1.0)
    assert np.ptp(p2 * m) < 0.6
    assert dimmed["ssim_tumour"] == pytest.approx(_tm_ssim(p2 * m, r2 * m), abs=1e-4)
    with_range_1 = ssim(p2 * m, r2 * m, data_range=1.0, border="full")  # mostly background: close to 1 either way
    assert abs(with_range_1 - dimmed["ssim_tumour"]) > 0.1 * (1 - with_range_1)
    assert set(brasyn_ssim(pred, ref)) == {"ssim"}


def test_brasyn_empty_tumour_is_undefined():
    """No tumour: pred*m and ref*m are all zeros, data range 0, SSIM 0/0 — undefined (nan), as torchmetrics
    gives it, never 1.0."""
    pred, ref, _ = phantom()
    out = brasyn_ssim(pred, ref, np.zeros(ref.shape, dtype=np.uint8))
    assert np.isnan(out["ssim_tumour"]) and np.isnan(_tm_ssim(np.zeros((16, 16, 16)), np.zeros((16, 16, 16))))
    p, r = percentile_scale(pred), percentile_scale(ref)
    assert out["ssim_non_tumour"] == pytest.approx(_tm_ssim(p, r), abs=1e-4)
    assert region_ssim(p, r, np.zeros(ref.shape), data_range=1.0)["ssim_tumour"] == pytest.approx(1.0)


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


def test_zero_background_dictionary_takes_the_foreground_from_another_key():
    """``ZeroBackgroundd`` is :class:`ZeroBackground` of each key with the union of the non-zero voxels of
    ``foreground_key``'s channels (cWDM's postprocessing: ``keys="pred", foreground_key="inputs"``)."""
    rng = np.random.default_rng(0)
    pred = rng.uniform(0, 1, (1, 5, 4, 3)).astype(np.float32)
    inputs = rng.uniform(1, 2, (3, 5, 4, 3)).astype(np.float32)
    inputs[:, 0] = 0
    inputs[1, 1] = 0  # one channel zero is not background: the union counts
    d = ZeroBackgroundd(keys="pred", threshold=0.3, foreground_key="inputs")({"pred": pred, "inputs": inputs})
    expected = ZeroBackground(0.3)(pred, foreground_of(list(inputs)))
    np.testing.assert_array_equal(d["pred"], expected)
    assert np.all(d["pred"][:, 0] == 0) and d["pred"][:, 1].any() and d["inputs"] is inputs
    only = ZeroBackgroundd(keys="pred", threshold=None)({"pred": pred})["pred"]
    np.testing.assert_array_equal(only, pred)
    assert ZeroBackgroundd(keys="pred", threshold=0.3).threshold == 0.3


def test_region_mean_errors_against_scipy_labeled_means():
    from scipy import ndimage

    from medfusion.metrics.image import region_mean_errors

    rng = np.random.default_rng(3)
    labels = rng.integers(0, 4, size=(10, 9, 8))
    pred, ref = rng.normal(size=labels.shape), rng.normal(size=labels.shape)
    got = region_mean_errors(pred, ref, labels, {1: "a", 2: "b", 3: "c", 7: "absent"})
    want = np.asarray(ndimage.mean(pred, labels, [1, 2, 3])) - np.asarray(ndimage.mean(ref, labels, [1, 2, 3]))
    assert list(got) == ["a", "b", "c"] and np.allclose(list(got.values()), want)


def test_interslice_difference():
    from medfusion.metrics.image import interslice_difference

    z = np.arange(5, dtype=float)
    vol = np.broadcast_to(z * 3.0, (4, 4, 5)).copy()  # every slice 3 above the previous one
    assert interslice_difference(vol) == pytest.approx(3.0)
    stripes = vol + np.where(np.arange(5) % 2, 1.0, -1.0)  # alternating ±1 on top: |3 ± 2|, mean 3 → (5+1)/2
    assert interslice_difference(stripes) == pytest.approx(3.0)
    mask = np.zeros(vol.shape, bool)
    mask[:, :, :2] = True  # only the pair of slices 0-1 counts
    assert interslice_difference(stripes, mask=mask) == pytest.approx(5.0)
    assert interslice_difference(vol, axis=0) == 0.0
