"""FID/KID from feature vectors, and the FID feature extractors' loading and plumbing.

The distance tests check the numbers against independent implementations (``scipy.linalg.sqrtm`` on the
textbook formula, MONAI's ``FIDMetric``, closed forms, a brute-force MMD loop).

The extractor tests use state dicts of *random* tensors written in the file layout of each real release:
they check file handling, key mapping, strict loading, preprocessing, shapes and dtypes, and that the
network computes what the original architecture computes for the same tensors (a functional re-implementation
below). They are **not** FID results: no real weights are involved.
"""

from __future__ import annotations

import importlib.util
import sys
import types

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from medfusion.errors import InputError
from medfusion.metrics.distribution import feature_statistics, fid, frechet_distance, kid
from medfusion.metrics.features import (
    EXTRACTORS,
    IMAGENET_BGR_MEAN,
    IMAGENET_RGB_MEAN,
    IMAGENET_RGB_STD,
    Inception2DExtractor,
    MedicalNet3DExtractor,
    RadImageNet25DExtractor,
    extract_features,
    fid_25d,
    fid_from_volumes,
    inception_preprocess,
    inception_preprocess_rgb,
    make_extractor,
    medicalnet_preprocess,
    radimagenet_preprocess,
)

# ----------------------------------------------------------------------------------------------------------
# FID


def _textbook_fid(a: np.ndarray, b: np.ndarray) -> float:
    """‖μa − μb‖² + Tr(Σa + Σb − 2 sqrtm(Σa Σb)) with scipy's general matrix square root."""
    from scipy import linalg

    mu_a, mu_b = a.mean(0), b.mean(0)
    sa, sb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = linalg.sqrtm(sa @ sb)
    covmean = np.real(covmean)
    d = mu_a - mu_b
    return float(d @ d + np.trace(sa) + np.trace(sb) - 2 * np.trace(covmean))


def _two_feature_sets(n: int, f: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(n, f)) @ rng.normal(size=(f, f)) / np.sqrt(f)
    b = 0.3 + 1.2 * rng.normal(size=(n, f)) @ rng.normal(size=(f, f)) / np.sqrt(f)
    return a, b


@pytest.mark.parametrize("f", [16, 64])
def test_fid_matches_textbook_formula_with_scipy_sqrtm(f):
    a, b = _two_feature_sets(200, f, seed=f)
    ours, ref = fid(a, b), _textbook_fid(a, b)
    assert ref > 1.0
    assert ours == pytest.approx(ref, rel=1e-6)
    assert fid(b, a) == pytest.approx(ours, rel=1e-9)


def test_fid_of_a_set_with_itself_is_zero():
    a, _ = _two_feature_sets(200, 64)
    scale = np.trace(np.cov(a, rowvar=False))
    assert 0.0 <= fid(a, a) < 1e-9 * scale


def test_frechet_distance_closed_form_for_diagonal_gaussians():
    rng = np.random.default_rng(3)
    mu1, mu2 = rng.normal(size=10), rng.normal(size=10)
    s1, s2 = rng.uniform(0.1, 3, size=10), rng.uniform(0.1, 3, size=10)  # standard deviations
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((s1 - s2) ** 2)
    got = frechet_distance(mu1, np.diag(s1**2), mu2, np.diag(s2**2))
    assert got == pytest.approx(expected, rel=1e-12)
    assert frechet_distance(mu1, np.diag(s1**2), mu1, np.diag(s1**2)) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.filterwarnings("ignore:The `disp` argument is deprecated:DeprecationWarning")  # inside MONAI
def test_fid_matches_monai_fidmetric():
    from monai.metrics import FIDMetric

    a, b = _two_feature_sets(200, 32, seed=7)
    ta, tb = torch.from_numpy(a).float(), torch.from_numpy(b).float()
    try:
        monai_value = float(FIDMetric()(ta, tb))
    except TypeError as e:  # MONAI ≤ 1.6 passes sqrtm(disp=False), which SciPy ≥ 1.18 no longer accepts
        if "disp" not in str(e):
            raise
        pytest.skip(f"MONAI's FIDMetric does not run with this SciPy: {e}")
    ours = fid(ta, tb)  # tensors are accepted as arrays (float32 values, computed in float64)
    assert ours == pytest.approx(monai_value, rel=1e-6)


@pytest.mark.parametrize("n_a, n_b", [(10, 10), (12, 30), (60, 68)])
def test_fid_few_samples_path_matches_covariance_path(n_a, n_b):
    """With N_a·N_b ≤ F², fid() uses the nuclear norm of the centred cross-Gram matrix instead of F×F
    covariances; both must agree (here the covariances are singular for the first two cases)."""
    a, _ = _two_feature_sets(n_a, 64, seed=1)
    _, b = _two_feature_sets(n_b, 64, seed=2)
    via_covariances = frechet_distance(*feature_statistics(a), *feature_statistics(b))
    value = fid(a, b)
    assert np.isfinite(value) and value > 0
    assert value == pytest.approx(via_covariances, rel=1e-6)
    assert fid(a, a) == pytest.approx(0.0, abs=1e-9 * np.trace(np.cov(a, rowvar=False)))


def test_feature_statistics():
    a, _ = _two_feature_sets(50, 8)
    mu, sigma = feature_statistics(a)
    assert mu.dtype == np.float64 and sigma.shape == (8, 8)
    np.testing.assert_allclose(mu, a.mean(0), rtol=1e-14)
    np.testing.assert_allclose(sigma, np.cov(a, rowvar=False), rtol=1e-14)
    with pytest.raises(InputError, match="at least 2"):
        feature_statistics(a[:1])


@pytest.mark.parametrize(
    "a, b, message",
    [
        (np.zeros(10), np.zeros((10, 3)), "2D array"),
        (np.zeros((4, 3, 2)), np.zeros((10, 3)), "2D array"),
        (np.ones((10, 3)), np.ones((10, 4)), "widths differ"),
        (np.full((10, 3), np.nan), np.ones((10, 3)), "non-finite"),
        (np.ones((10, 3)), np.full((10, 3), np.inf), "non-finite"),
        (np.ones((1, 3)), np.ones((10, 3)), "at least 2"),
    ],
)
def test_distance_input_errors(a, b, message):
    for func in (fid, kid):
        with pytest.raises(InputError, match=message) as info:
            func(a, b)
        assert isinstance(info.value, ValueError)
        assert "\n" not in str(info.value)


def test_frechet_distance_shape_errors():
    with pytest.raises(InputError, match="same length"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))
    with pytest.raises(InputError, match="covariances"):
        frechet_distance(np.zeros(3), np.eye(2), np.zeros(3), np.eye(3))


# ----------------------------------------------------------------------------------------------------------
# KID


def _brute_force_mmd2(x, y, degree=3, gamma=None, coef0=1.0) -> float:
    f = x.shape[1]
    g = 1.0 / f if gamma is None else gamma

    def k(u, v):
        return (g * sum(u[i] * v[i] for i in range(f)) + coef0) ** degree

    m = len(x)
    kxx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j)
    kyy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j)
    kxy = sum(k(x[i], y[j]) for i in range(m) for j in range(m))
    return kxx / (m * (m - 1)) + kyy / (m * (m - 1)) - 2 * kxy / (m * m)


@pytest.mark.parametrize("kwargs", [{}, {"degree": 2, "gamma": 0.3, "coef0": 0.5}])
def test_kid_matches_brute_force_on_all_rows(kwargs):
    rng = np.random.default_rng(11)
    x, y = rng.normal(size=(12, 5)), rng.normal(0.5, 1.0, size=(12, 5))
    expected = _brute_force_mmd2(x, y, **kwargs)
    mean, std = kid(x, y, subset_size=1000, subsets=3, seed=5, **kwargs)  # every subset = all rows
    assert mean == pytest.approx(expected, rel=1e-10, abs=1e-12)
    assert std == pytest.approx(0.0, abs=1e-10)


def test_kid_subsets_match_brute_force_on_the_same_draws():
    rng = np.random.default_rng(12)
    x, y = rng.normal(size=(15, 4)), rng.normal(0.2, 1.0, size=(11, 4))
    draws = np.random.default_rng(9)
    values = []
    for _ in range(4):
        ix = draws.choice(15, 6, replace=False)
        iy = draws.choice(11, 6, replace=False)
        values.append(_brute_force_mmd2(x[ix], y[iy]))
    mean, std = kid(x, y, subset_size=6, subsets=4, seed=9)
    assert mean == pytest.approx(np.mean(values), rel=1e-10)
    assert std == pytest.approx(np.std(values), rel=1e-8)


def test_kid_near_zero_for_same_distribution_positive_for_shifted():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(300, 16)), rng.normal(size=(300, 16))
    shifted = rng.normal(0.5, 1.0, size=(300, 16))
    same, _ = kid(a, b, subset_size=100, subsets=50)
    diff, diff_std = kid(a, shifted, subset_size=100, subsets=50)
    assert diff > 0 and diff > 5 * diff_std
    assert abs(same) < 0.05 * diff


def test_kid_subset_size_is_capped_and_errors():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(5, 3)), rng.normal(size=(8, 3))
    assert np.isfinite(kid(a, b, subset_size=1000, subsets=2)[0])
    with pytest.raises(InputError, match="at least 2"):
        kid(a, b, subset_size=1)


# ----------------------------------------------------------------------------------------------------------
# Extractors: state dicts in the layout of each real release (random tensors: plumbing only, not FID)

STAGES = ((3, 64), (4, 128), (6, 256), (3, 512))


def _resnet50_state(dims: int, in_channels: int, *, conv_bias: bool, seed: int) -> dict[str, torch.Tensor]:
    """A ResNet-50 trunk state dict written from the architecture's description (torchvision/MedicalNet key
    names), with random weights and random batch-norm statistics."""
    g = torch.Generator().manual_seed(seed)
    sd: dict[str, torch.Tensor] = {}

    def conv(name, c_in, c_out, k):
        fan_in = c_in * k**dims
        sd[f"{name}.weight"] = torch.randn((c_out, c_in) + (k,) * dims, generator=g) * (1.0 / fan_in) ** 0.5
        if conv_bias:
            sd[f"{name}.bias"] = 0.1 * torch.randn(c_out, generator=g)

    def bn(name, c):
        sd[f"{name}.weight"] = 1 + 0.1 * torch.randn(c, generator=g)
        sd[f"{name}.bias"] = 0.1 * torch.randn(c, generator=g)
        sd[f"{name}.running_mean"] = 0.1 * torch.randn(c, generator=g)
        sd[f"{name}.running_var"] = 0.5 + torch.rand(c, generator=g)
        sd[f"{name}.num_batches_tracked"] = torch.tensor(7)

    conv("conv1", in_channels, 64, 7)
    bn("bn1", 64)
    c_in = 64
    for li, (n_blocks, width) in enumerate(STAGES, 1):
        for b in range(n_blocks):
            p = f"layer{li}.{b}"
            conv(f"{p}.conv1", c_in, width, 1)
            bn(f"{p}.bn1", width)
            conv(f"{p}.conv2", width, width, 3)
            bn(f"{p}.bn2", width)
            conv(f"{p}.conv3", width, 4 * width, 1)
            bn(f"{p}.bn3", 4 * width)
            if b == 0:
                conv(f"{p}.downsample.0", c_in, 4 * width, 1)
                bn(f"{p}.downsample.1", 4 * width)
            c_in = 4 * width
    return sd


def _reference_resnet50(x, sd, *, dims, stride_on_first_conv, strides, dilations, eps):
    """Functional ResNet-50 trunk + global average pool, written from the original architectures:
    torchvision (stride on the 3×3 conv), Keras v1 (stride on the first 1×1 conv, biased convs), MedicalNet
    (3D, stride 1 and dilation 2/4 in the last two stages)."""
    conv = F.conv2d if dims == 2 else F.conv3d
    pool = F.max_pool2d if dims == 2 else F.max_pool3d

    def bn(t, name):
        return F.batch_norm(
            t, sd[f"{name}.running_mean"], sd[f"{name}.running_var"], sd[f"{name}.weight"], sd[f"{name}.bias"],
            training=False, eps=eps,
        )

    x = conv(x, sd["conv1.weight"], sd.get("conv1.bias"), stride=2, padding=3)
    x = pool(F.relu(bn(x, "bn1")), kernel_size=3, stride=2, padding=1)
    for li, ((n_blocks, _), stride, dil) in enumerate(zip(STAGES, strides, dilations), 1):
        for b in range(n_blocks):
            p = f"layer{li}.{b}"
            s = stride if b == 0 else 1
            s1, s2 = (s, 1) if stride_on_first_conv else (1, s)
            h = F.relu(bn(conv(x, sd[f"{p}.conv1.weight"], sd.get(f"{p}.conv1.bias"), stride=s1), f"{p}.bn1"))
            h = conv(h, sd[f"{p}.conv2.weight"], sd.get(f"{p}.conv2.bias"), stride=s2, padding=dil, dilation=dil)
            h = F.relu(bn(h, f"{p}.bn2"))
            h = bn(conv(h, sd[f"{p}.conv3.weight"], sd.get(f"{p}.conv3.bias")), f"{p}.bn3")
            if f"{p}.downsample.0.weight" in sd:
                x = conv(x, sd[f"{p}.downsample.0.weight"], sd.get(f"{p}.downsample.0.bias"), stride=s)
                x = bn(x, f"{p}.downsample.1")
            x = F.relu(h + x)
    return x.mean(dim=tuple(range(2, x.ndim)))


def _save(obj, path):
    torch.save(obj, path)
    return path


def _volume(shape=(16, 16, 8), seed=0, lo=-1200.0, hi=1500.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.uniform(lo, hi, size=shape)


@pytest.fixture(scope="module")
def resnet2d_state() -> dict[str, torch.Tensor]:
    return _resnet50_state(2, 3, conv_bias=False, seed=1)


@pytest.fixture(scope="module")
def radimagenet_torchvision(tmp_path_factory, resnet2d_state) -> RadImageNet25DExtractor:
    """RadImageNet ResNet-50 in torchvision layout (with the ImageNet-style fc, which must be dropped)."""
    sd = dict(resnet2d_state)
    sd["fc.weight"] = torch.zeros(1000, 2048)
    sd["fc.bias"] = torch.zeros(1000)
    path = _save(sd, tmp_path_factory.mktemp("w") / "ResNet50_torchvision_layout.pth")
    extractor = RadImageNet25DExtractor(path, batch_size=5)
    path.unlink()
    return extractor


def test_missing_weights_name_the_file(tmp_path):
    """A missing file fails before anything is built, naming the file that is needed and its source."""
    for name, info in EXTRACTORS.items():
        with pytest.raises(InputError) as e:
            make_extractor(name, tmp_path / "absent.pth")
        text = str(e.value)
        assert "not found" in text and info.weights_file.split()[0] in text and "\n" not in text
        with pytest.raises(InputError, match="needs a weights file"):
            make_extractor(name, None)
    with pytest.raises(InputError, match="inception_v3_google-0cc3c7bd.pth.*download.pytorch.org"):
        Inception2DExtractor(tmp_path / "absent.pth")
    with pytest.raises(InputError, match="RadImageNet"):
        RadImageNet25DExtractor(tmp_path / "absent.pth")
    with pytest.raises(InputError, match="resnet_50_23dataset.pth.*Tencent MedicalNet"):
        MedicalNet3DExtractor(tmp_path / "absent.pth")


def test_registry_and_make_extractor(tmp_path):
    assert set(EXTRACTORS) == {"inception2d", "radimagenet2.5d", "medicalnet3d"}
    for info in EXTRACTORS.values():
        assert info.weights_file and info.source and info.protocol
    with pytest.raises(InputError, match="unknown FID feature extractor"):
        make_extractor("inception3d", tmp_path / "x.pth")
    with pytest.raises(InputError, match="RadImageNet"):  # the alias reaches the same extractor
        make_extractor("radimagenet25d", tmp_path / "absent.pth")


def test_unreadable_weights_file_is_refused(tmp_path):
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a torch file")
    with pytest.raises(InputError, match="cannot read"):
        MedicalNet3DExtractor(garbage)
    listing = _save([torch.zeros(3)], tmp_path / "list.pth")
    with pytest.raises(InputError, match="not a state dict"):
        MedicalNet3DExtractor(listing)


def test_inception_without_torchvision_asks_for_the_fid_extra(tmp_path, monkeypatch):
    """torchvision is not a core dependency; its absence is an InputError naming the `fid` extra."""
    if importlib.util.find_spec("torchvision") is not None:  # simulate its absence
        for module in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            monkeypatch.setitem(sys.modules, module, None)
        monkeypatch.setitem(sys.modules, "torchvision", None)
        monkeypatch.setitem(sys.modules, "torchvision.models", None)
    weights = tmp_path / "inception_v3_google-0cc3c7bd.pth"
    weights.write_bytes(b"placeholder")
    with pytest.raises(InputError, match=r'install the `fid` extra, pip install "medfusion\[fid\]"') as e:
        Inception2DExtractor(weights)
    assert "torchvision" in str(e.value) and "CUDA" in str(e.value)


def test_inception_preprocess_values():
    s = np.array([[0.0, 10.0], [20.0, 30.0]])
    x = inception_preprocess(np.stack([s, np.full((2, 2), 5.0)]), size=2)  # size 2: no resampling
    assert x.shape == (2, 3, 2, 2) and x.dtype == torch.float32
    scaled = np.array([[0.0, 1 / 3], [2 / 3, 1.0]])
    for c in range(3):
        np.testing.assert_allclose(x[0, c].numpy(), (scaled - IMAGENET_RGB_MEAN[c]) / IMAGENET_RGB_STD[c], atol=1e-6)
        # a constant slice scales to 0
        np.testing.assert_allclose(x[1, c].numpy(), -IMAGENET_RGB_MEAN[c] / IMAGENET_RGB_STD[c], atol=1e-6)
    big = inception_preprocess(np.random.default_rng(0).normal(size=(3, 16, 20)))
    assert big.shape == (3, 3, 299, 299)
    # bilinear interpolation of [0, 1] data stays in [0, 1] before normalisation
    unnorm = big[:, 0] * IMAGENET_RGB_STD[0] + IMAGENET_RGB_MEAN[0]
    assert float(unnorm.min()) >= -1e-6 and float(unnorm.max()) <= 1 + 1e-6


class TinyInception(torch.nn.Module):
    """Stands in for torchvision's Inception-v3 (same interface, 2048-d pooled output, an ``fc`` to drop)."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 2048, 1)
        self.fc = torch.nn.Linear(2048, 1000)

    def forward(self, x):
        return self.fc(self.conv(F.adaptive_avg_pool2d(x, 4)).mean(dim=(2, 3)))

    def features(self, x):
        with torch.inference_mode():
            return self.conv(F.adaptive_avg_pool2d(x, 4)).mean(dim=(2, 3)).double().numpy()


def install_stand_in_torchvision(monkeypatch) -> list[dict]:
    """Put a stand-in ``torchvision.models.inception_v3`` in ``sys.modules``; returns the list of its calls."""
    calls = []

    def inception_v3(**kwargs):
        calls.append(kwargs)
        return TinyInception()

    tv = types.ModuleType("torchvision")
    tv.models = types.ModuleType("torchvision.models")
    tv.models.inception_v3 = inception_v3
    monkeypatch.setitem(sys.modules, "torchvision", tv)
    monkeypatch.setitem(sys.modules, "torchvision.models", tv.models)
    return calls


def test_inception_plumbing_with_a_stand_in_torchvision(tmp_path, monkeypatch):
    """Loading plumbing only (not FID): a stand-in ``torchvision.models.inception_v3`` records how the network
    is requested; the file's AuxLogits/fc tensors are dropped and the rest is loaded strictly."""
    calls = install_stand_in_torchvision(monkeypatch)

    torch.manual_seed(0)
    ref = TinyInception()
    sd = dict(ref.state_dict())
    sd["AuxLogits.fc.weight"] = torch.zeros(1000, 768)
    path = _save(sd, tmp_path / "inception_v3_google-0cc3c7bd.pth")
    ex = Inception2DExtractor(path, batch_size=3)
    assert calls[-1] == {"weights": None, "aux_logits": False, "init_weights": False, "transform_input": True}

    vol = _volume((12, 10, 4), lo=0, hi=1)
    feats = ex(vol)
    assert feats.shape == (4, 2048) and feats.dtype == np.float64
    np.testing.assert_allclose(feats, ref.features(inception_preprocess(np.moveaxis(vol, -1, 0))), rtol=1e-5,
                               atol=1e-6)
    rgb = np.random.default_rng(0).integers(0, 256, (5, 20, 24, 3), dtype=np.uint8)
    np.testing.assert_allclose(ex.rgb(rgb), ref.features(inception_preprocess_rgb(rgb)), rtol=1e-5, atol=1e-6)

    del sd["conv.bias"]
    with pytest.raises(InputError, match="1 missing keys.*conv.bias"):
        Inception2DExtractor(_save(sd, tmp_path / "broken.pth"))


def test_inception_preprocess_rgb_values():
    img = np.zeros((2, 8, 6, 3), dtype=np.uint8)
    img[0, ..., 0] = 255  # pure red
    x = inception_preprocess_rgb(img, size=8).numpy()
    assert x.shape == (2, 3, 8, 8)
    mean, std = np.array(IMAGENET_RGB_MEAN), np.array(IMAGENET_RGB_STD)
    np.testing.assert_allclose(x[0, :, 4, 4], (np.array([1.0, 0, 0]) - mean) / std, rtol=1e-6)
    np.testing.assert_allclose(x[1, :, 4, 4], -mean / std, rtol=1e-6)
    with pytest.raises(InputError, match="8-bit RGB"):
        inception_preprocess_rgb(img.astype(np.float32))


def test_inception_with_torchvision(tmp_path):
    """Loading plumbing only (not FID), with the real torchvision architecture and random weights."""
    models = pytest.importorskip("torchvision.models")
    net = models.inception_v3(weights=None, aux_logits=True, init_weights=False)  # file layout of the release
    path = _save(net.state_dict(), tmp_path / "inception_v3_google-0cc3c7bd.pth")
    ex = Inception2DExtractor(path, batch_size=2)
    feats = ex(_volume((20, 20, 3)))
    assert feats.shape == (3, 2048) and feats.dtype == np.float64
    np.testing.assert_array_equal(feats, ex(_volume((20, 20, 3))))


def test_radimagenet_preprocess_values():
    s = np.array([[-2000.0, -1000.0, 0.0, 1000.0, 3000.0]])
    x = radimagenet_preprocess(s)
    assert x.shape == (1, 3, 1, 5) and x.dtype == torch.float32
    scaled = np.array([0.0, 0.0, 0.5, 1.0, 1.0])
    for c, mean in enumerate((0.406, 0.456, 0.485)):  # BGR order: blue mean first
        np.testing.assert_allclose(x[0, c, 0].numpy(), scaled - mean, atol=1e-7)
    assert IMAGENET_BGR_MEAN == (0.406, 0.456, 0.485)
    y = radimagenet_preprocess(np.array([[0.0, 50.0, 200.0]]), window=(0, 100))
    np.testing.assert_allclose(y[0, 0, 0].numpy(), np.array([0.0, 0.5, 1.0]) - 0.406, atol=1e-7)
    with pytest.raises(InputError, match="low < high"):
        radimagenet_preprocess(s, window=(1000, -1000))


def test_radimagenet_torchvision_layout(radimagenet_torchvision, resnet2d_state):
    """Loading plumbing only (not FID): per-plane shapes, dtype, determinism, and agreement with a functional
    torchvision-style ResNet-50 on the same random tensors."""
    ex = radimagenet_torchvision
    assert ex.layout == "torchvision" and ex.planes == ("xy", "yz", "zx")
    vol = _volume()
    feats = ex(vol)
    assert list(feats) == ["xy", "yz", "zx"]
    assert feats["xy"].shape == (8, 2048) and feats["yz"].shape == (16, 2048) and feats["zx"].shape == (16, 2048)
    assert all(f.dtype == np.float64 and np.all(np.isfinite(f)) for f in feats.values())
    again = ex(vol)
    for p in feats:
        np.testing.assert_array_equal(feats[p], again[p])
    stacks = {"xy": np.moveaxis(vol, 2, 0), "yz": vol, "zx": np.moveaxis(vol, 1, 0)}
    for plane, stack in stacks.items():
        ref = _reference_resnet50(
            radimagenet_preprocess(stack), resnet2d_state, dims=2, stride_on_first_conv=False,
            strides=(1, 2, 2, 2), dilations=(1, 1, 1, 1), eps=1e-5,
        ).double().numpy()
        np.testing.assert_allclose(feats[plane], ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())


def test_radimagenet_release_backbone_layout_maps_to_the_same_network(
    tmp_path, radimagenet_torchvision, resnet2d_state
):
    """RadImageNet's own PyTorch file stores the trunk as ``backbone.<child index>``; it must give the same
    features as the torchvision names (loading plumbing only, not FID)."""
    children = {"conv1": "0", "bn1": "1", "layer1": "4", "layer2": "5", "layer3": "6", "layer4": "7"}
    sd = {}
    for k, v in resnet2d_state.items():
        head, rest = k.split(".", 1)
        sd[f"backbone.{children[head]}.{rest}"] = v
    ex = RadImageNet25DExtractor(_save(sd, tmp_path / "ResNet50.pt"), planes=("yz",))
    assert ex.layout == "torchvision" and ex.planes == ("yz",)
    vol = _volume(seed=4)
    got = ex(vol)
    assert list(got) == ["yz"]
    expected = radimagenet_torchvision(vol)["yz"]  # float32 network, other batch size: not bit-identical
    np.testing.assert_allclose(got["yz"], expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())


def test_radimagenet_keras_layout(tmp_path):
    """``RadImageNet-ResNet50_notop.pth`` (MAISI / MONAI tutorials) is a Keras-style ResNet-50: biased convs,
    stride on the first 1×1 conv, BN eps 1.001e-5. Loading plumbing only (not FID)."""
    sd = _resnet50_state(2, 3, conv_bias=True, seed=2)
    ex = RadImageNet25DExtractor(_save(sd, tmp_path / "RadImageNet-ResNet50_notop.pth"), planes=("xy", "zx"))
    assert ex.layout == "keras"
    vol = _volume(seed=5)
    feats = ex(vol)
    assert feats["xy"].shape == (8, 2048) and feats["zx"].shape == (16, 2048)
    ref = _reference_resnet50(
        radimagenet_preprocess(np.moveaxis(vol, 2, 0)), sd, dims=2, stride_on_first_conv=True,
        strides=(1, 2, 2, 2), dilations=(1, 1, 1, 1), eps=1.001e-5,
    ).double().numpy()
    np.testing.assert_allclose(feats["xy"], ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())


def test_radimagenet_refuses_files_that_do_not_fit(tmp_path, resnet2d_state):
    sd = dict(resnet2d_state)
    del sd["layer3.2.bn2.running_var"]
    with pytest.raises(InputError, match="1 missing keys.*layer3.2.bn2.running_var"):
        RadImageNet25DExtractor(_save(sd, tmp_path / "missing.pth"))
    sd = dict(resnet2d_state)
    sd["classifier.weight"] = torch.zeros(3, 2048)
    with pytest.raises(InputError, match="1 unexpected keys.*classifier.weight"):
        RadImageNet25DExtractor(_save(sd, tmp_path / "extra.pth"))
    sd = dict(resnet2d_state)
    sd["conv1.weight"] = torch.zeros(64, 1, 7, 7)
    with pytest.raises(InputError, match="wrong shape.*conv1.weight"):
        RadImageNet25DExtractor(_save(sd, tmp_path / "shape.pth"))


def test_fid_from_volumes_25d(radimagenet_torchvision):
    """Plumbing of the 2.5D protocol (one FID per plane, averaged) on random weights: not a FID result."""
    ex = radimagenet_torchvision
    vols_a = [_volume(seed=s) for s in (10, 11)]
    vols_b = [_volume(seed=s, lo=-500, hi=800) for s in (12, 13)]
    result = fid_25d(vols_a, vols_b, ex)
    assert set(result) == {"fid", "fid_xy", "fid_yz", "fid_zx"}
    fa, fb = extract_features(vols_a, ex), extract_features(vols_b, ex)
    assert fa["xy"].shape == (16, 2048) and fa["yz"].shape == (32, 2048)
    for p in ("xy", "yz", "zx"):
        assert result[f"fid_{p}"] == pytest.approx(fid(fa[p], fb[p]), rel=1e-9)
    assert result["fid"] == pytest.approx(np.mean([result[f"fid_{p}"] for p in ("xy", "yz", "zx")]), rel=1e-12)
    with pytest.raises(InputError, match="no volumes"):
        extract_features([], ex)
    with pytest.raises(InputError, match="3D volume"):
        ex(np.zeros((4, 4)))
    with pytest.raises(InputError, match="non-finite"):
        ex(np.full((4, 4, 4), np.nan))


def test_medicalnet_preprocess():
    vol = _volume((6, 5, 4), lo=0, hi=300)
    z = medicalnet_preprocess(vol)
    assert z.shape == (1, 1, 6, 5, 4) and z.dtype == torch.float32
    expected = (vol - vol.mean()) / (vol.std(ddof=1) + 1e-5)
    np.testing.assert_allclose(z[0, 0].numpy(), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(medicalnet_preprocess(vol, "none")[0, 0].numpy(), vol, rtol=1e-6)
    mm = medicalnet_preprocess(vol, "minmax")[0, 0].numpy()
    np.testing.assert_allclose(mm, (vol - vol.min()) / (vol.max() - vol.min()), rtol=1e-5, atol=1e-6)
    assert not medicalnet_preprocess(np.full((4, 4, 4), 7.0), "minmax").any()
    with pytest.raises(InputError, match="normalise"):
        medicalnet_preprocess(vol, "unit")


def test_medicalnet_release_layout(tmp_path):
    """``resnet_50_23dataset.pth`` layout: ``{"state_dict": {"module.conv1.weight": …}}``. Loading plumbing
    only (not FID): shape, dtype, determinism, agreement with MedicalNet's dilated 3D ResNet-50, strictness."""
    sd = _resnet50_state(3, 1, conv_bias=False, seed=3)
    release = {"state_dict": {f"module.{k}": v for k, v in sd.items()}, "epoch": 200}
    ex = MedicalNet3DExtractor(_save(release, tmp_path / "resnet_50_23dataset.pth"))
    vol = _volume((16, 16, 16), seed=6, lo=0, hi=1)
    feats = ex(vol)
    assert feats.shape == (1, 2048) and feats.dtype == np.float64 and np.all(np.isfinite(feats))
    np.testing.assert_array_equal(feats, ex(vol))
    ref = _reference_resnet50(
        medicalnet_preprocess(vol), sd, dims=3, stride_on_first_conv=False, strides=(1, 2, 1, 1),
        dilations=(1, 1, 2, 4), eps=1e-5,
    ).double().numpy()
    np.testing.assert_allclose(feats, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())
    assert extract_features([vol, vol], ex)["volume"].shape == (2, 2048)
    others = [_volume((16, 16, 16), seed=s, lo=0, hi=1) for s in (7, 8, 9)]
    result = fid_from_volumes([vol, others[0]], others[1:], ex)  # one plane: only "fid"
    assert set(result) == {"fid"} and np.isfinite(result["fid"])

    # a file saved without the batch-norm counters (older PyTorch) still loads
    no_counters = {k: v for k, v in release["state_dict"].items() if not k.endswith("num_batches_tracked")}
    ex2 = MedicalNet3DExtractor(_save({"state_dict": no_counters}, tmp_path / "old.pth"), normalise="none")
    assert ex2.normalise == "none" and ex2(vol).shape == (1, 2048)

    # a checkpoint with a segmentation head is not the feature network: refused
    release["state_dict"]["module.conv_seg.0.weight"] = torch.zeros(32, 2048, 2, 2, 2)
    with pytest.raises(InputError, match="unexpected keys.*conv_seg"):
        MedicalNet3DExtractor(_save(release, tmp_path / "with_head.pth"))
