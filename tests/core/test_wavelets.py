"""Haar DWT/IDWT (medfusion.wavelets), the wavelet transforms (medfusion.transforms) and the pytorch-wavelets
import work-around (medfusion.utils.compat). Tiny tensors, CPU; CUDA tests skip without a GPU."""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import pywt
import torch
from monai.data import MetaTensor

from medfusion.transforms import HaarDWT, HaarDWTd, HaarIDWT, HaarIDWTd, WaveletDWT2D, WaveletIDWT2D
from medfusion.wavelets import haar_dwt, haar_filters, haar_idwt, subband_names

TOL = {torch.float32: 1e-6, torch.float64: 1e-12}
SHAPES = {2: (6, 10), 3: (4, 6, 8)}
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def rand(*shape, dtype=torch.float64, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def pywt_reference(x: np.ndarray, d: int) -> np.ndarray:
    """(B, C, *S) -> (B, C * 2**d, *S/2) from pywt.dwtn, sub-band k of channel c at c * 2**d + k."""
    b, c = x.shape[:2]
    out = []
    for i in range(b):
        for j in range(c):
            bands = pywt.dwtn(x[i, j], "haar")
            out.extend(bands[name] for name in subband_names(d))
    return np.stack(out).reshape(b, c * 2**d, *bands["a" * d].shape)


# --- the functions against PyWavelets and their algebra --------------------------------------------------


@pytest.mark.parametrize("d", [2, 3])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_matches_pywavelets_dwtn(d, dtype):
    x = rand(2, 3, *SHAPES[d], dtype=dtype)  # batch and channels: layout c * 2**d + k
    y = haar_dwt(x, d)
    assert y.dtype == dtype and y.shape == (2, 3 * 2**d, *(s // 2 for s in SHAPES[d]))
    np.testing.assert_allclose(y.numpy(), pywt_reference(x.double().numpy(), d), atol=TOL[dtype], rtol=0)
    x_back = haar_idwt(y, d)
    assert x_back.dtype == dtype
    np.testing.assert_allclose(x_back.numpy(), x.numpy(), atol=TOL[dtype], rtol=0)


def test_subband_names_follow_pywt_key_order():
    assert subband_names(2) == ["aa", "ad", "da", "dd"]
    assert subband_names(3) == ["aaa", "aad", "ada", "add", "daa", "dad", "dda", "ddd"]
    assert sorted(pywt.dwtn(np.zeros((2, 2, 2)), "haar")) == subband_names(3)
    w = haar_filters(3, torch.float64)
    assert w.shape == (8, 1, 2, 2, 2)
    torch.testing.assert_close(w.flatten(1) @ w.flatten(1).T, torch.eye(8, dtype=torch.float64))


@pytest.mark.parametrize("d", [2, 3])
def test_orthonormal_and_inverse_is_adjoint(d):
    x, v = rand(2, 2, *SHAPES[d]), rand(2, 2 * 2**d, *(s // 2 for s in SHAPES[d]), seed=1)
    y = haar_dwt(x, d)
    torch.testing.assert_close(y.square().sum(), x.square().sum(), rtol=1e-12, atol=0)  # Parseval
    torch.testing.assert_close((y * v).sum(), (x * haar_idwt(v, d)).sum(), rtol=1e-12, atol=0)  # <Wx,v>=<x,W'v>
    torch.testing.assert_close(haar_dwt(haar_idwt(v, d), d), v, rtol=0, atol=1e-12)  # W W' = I
    torch.testing.assert_close(haar_idwt(y, d), x, rtol=0, atol=1e-14)  # W'W = I


@pytest.mark.parametrize("d", [2, 3])
def test_gradcheck(d):
    x = rand(1, 2, *(2,) * (d - 1), 4).requires_grad_()
    y = rand(1, 2 * 2**d, *(1,) * (d - 1), 2).requires_grad_()
    assert torch.autograd.gradcheck(lambda t: haar_dwt(t, d), (x,))
    assert torch.autograd.gradcheck(lambda t: haar_idwt(t, d), (y,))
    assert torch.autograd.gradgradcheck(lambda t: haar_dwt(t, d), (x,))


def test_lll_range_for_unit_interval_images():
    x = torch.rand(1, 1, 8, 8, 8, dtype=torch.float64)
    x[0, 0, :2, :2, :2] = 1.0  # a full block of ones -> LLL = 2 sqrt 2
    x[0, 0, 2:4, :2, :2] = torch.tensor([1.0, 0.0]).view(2, 1, 1)  # 1 on a, 0 on the other -> |HLL| = sqrt 2
    y = haar_dwt(x, 3)[0]
    lll, details = y[0], y[1:]
    assert lll.min() >= 0 and lll.max() <= 2 * math.sqrt(2) + 1e-12
    assert details.abs().max() <= math.sqrt(2) + 1e-12
    assert math.isclose(lll.max().item(), 2 * math.sqrt(2)) and math.isclose(details.abs().max().item(), math.sqrt(2))


@pytest.mark.parametrize(
    "x, d, match",
    [
        (torch.zeros(1, 1, 5, 4, 4), 3, "even spatial sizes"),
        (torch.zeros(1, 4, 4), 3, "shape"),
        (torch.zeros(1, 1, 4, 4, dtype=torch.int64), 2, "floating"),
        (torch.zeros(1, 1, 4, 4), 4, "spatial_dims"),
    ],
)
def test_forward_rejects_bad_input(x, d, match):
    with pytest.raises(ValueError, match=match):
        haar_dwt(x, d)


def test_inverse_rejects_bad_channel_count():
    with pytest.raises(ValueError, match="multiple of 8"):
        haar_idwt(torch.zeros(1, 6, 2, 2, 2), 3)


# --- the MONAI transforms -------------------------------------------------------------------------------


@pytest.mark.parametrize("d", [2, 3])
@pytest.mark.parametrize("kind", ["numpy", "torch"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_array_transforms_keep_kind_and_dtype(d, kind, dtype):
    x = np.random.default_rng(0).random((2, *SHAPES[d])).astype(dtype)
    img = x if kind == "numpy" else torch.from_numpy(x)
    y = HaarDWT(spatial_dims=d)(img)
    assert type(y) is type(img) and y.shape == (2 * 2**d, *(s // 2 for s in SHAPES[d]))
    assert str(y.dtype).endswith(np.dtype(dtype).name)
    np.testing.assert_allclose(np.asarray(y), pywt_reference(x[None].astype(np.float64), d)[0], atol=1e-6)
    back = HaarIDWT(spatial_dims=d)(y)
    assert type(back) is type(img) and back.dtype == img.dtype
    np.testing.assert_allclose(np.asarray(back), x, atol=1e-6)


def test_transforms_reject_bad_input_with_a_clear_message():
    with pytest.raises(ValueError, match="DivisiblePad"):
        HaarDWT(3)(np.zeros((1, 5, 4, 4), np.float32))
    with pytest.raises(ValueError, match="channel-first"):
        HaarDWT(3)(np.zeros((4, 4, 4), np.float32))
    with pytest.raises(ValueError, match="floating"):
        HaarDWT(2)(np.zeros((1, 4, 4), np.int16))
    with pytest.raises(ValueError, match="spatial_dims"):
        HaarIDWT(1)


def test_metatensor_keeps_meta_and_gets_the_coarse_grid_affine():
    affine = torch.tensor(
        [[-2.0, 0, 0, 10], [0, 1.5, 0, -20], [0, 0, 1.0, 5], [0, 0, 0, 1]], dtype=torch.float64
    )
    img = MetaTensor(rand(1, 4, 4, 6, dtype=torch.float32), affine=affine, meta={"filename_or_obj": "t1n.nii.gz"})
    y = HaarDWT(3)(img)
    assert isinstance(y, MetaTensor) and y.meta["filename_or_obj"] == "t1n.nii.gz"
    # coarse voxel 0 is centred between fine voxels 0 and 1; spacing doubles
    expected = affine @ torch.tensor(
        [[2.0, 0, 0, 0.5], [0, 2, 0, 0.5], [0, 0, 2, 0.5], [0, 0, 0, 1]], dtype=torch.float64
    )
    torch.testing.assert_close(y.affine, expected)
    back = HaarIDWT(3)(y)
    assert isinstance(back, MetaTensor) and torch.equal(back.affine, affine)
    torch.testing.assert_close(back.as_tensor(), img.as_tensor(), atol=1e-6, rtol=0)


def test_dictionary_transforms_only_map_keys():
    data = {"image": rand(2, 4, 4, 4, dtype=torch.float32), "seg": np.ones((1, 4, 4, 4), np.float32), "id": "c1"}
    out = HaarDWTd(keys=["image", "seg"], spatial_dims=3)(data)
    assert out["image"].shape == (16, 2, 2, 2) and isinstance(out["seg"], np.ndarray) and out["id"] == "c1"
    assert "image" in data and data["image"].shape == (2, 4, 4, 4)  # input mapping untouched
    back = HaarIDWTd(keys=["image", "seg", "absent"], spatial_dims=3, allow_missing_keys=True)(out)
    torch.testing.assert_close(back["image"], data["image"], atol=1e-6, rtol=0)
    np.testing.assert_allclose(back["seg"], data["seg"], atol=1e-6)
    with pytest.raises(KeyError):
        HaarDWTd(keys="absent")(data)


# --- other 2D wavelets via pytorch-wavelets -------------------------------------------------------------


@pytest.mark.parametrize("mode", ["zero", "symmetric", "periodic", "reflect", "periodization"])
@pytest.mark.parametrize("shape", [(12, 10), (11, 9)])
def test_pytorch_wavelets_db2_matches_pywt_dwt2(mode, shape):
    x = np.random.default_rng(1).standard_normal((2, *shape))
    y = WaveletDWT2D("db2", mode)(x)  # float64 in, float64 out; filters are float32 inside pytorch-wavelets
    assert isinstance(y, np.ndarray) and y.dtype == np.float64
    for c in range(2):
        ca, (ch, cv, cd) = pywt.dwt2(x[c], "db2", mode=mode)
        np.testing.assert_allclose(y[4 * c : 4 * c + 4], np.stack([ca, ch, cv, cd]), atol=1e-6, rtol=0)
    back = WaveletIDWT2D("db2", mode)(y)
    assert back.shape == (2, shape[0] + shape[0] % 2, shape[1] + shape[1] % 2)  # odd sizes come back even
    np.testing.assert_allclose(back[:, : shape[0], : shape[1]], x, atol=1e-6, rtol=0)


def test_pytorch_wavelets_haar_is_haar_dwt_with_the_mixed_bands_swapped():
    x = rand(3, 8, 6, dtype=torch.float32)
    y = WaveletDWT2D("haar", "periodization")(x)
    assert isinstance(y, torch.Tensor) and y.dtype == torch.float32
    torch.testing.assert_close(y.view(3, 4, 4, 3)[:, [0, 2, 1, 3]].reshape(12, 4, 3), HaarDWT(2)(x))


def test_wavelet_transforms_reject_bad_arguments():
    with pytest.raises(ValueError, match="mode"):
        WaveletDWT2D("db2", "replicate")
    with pytest.raises(ValueError, match="wavelet"):
        WaveletIDWT2D("db99", "zero")
    with pytest.raises(ValueError, match="multiple of 4"):
        WaveletIDWT2D()(np.zeros((3, 4, 4)))
    with pytest.raises(ValueError, match="channel-first"):
        WaveletDWT2D()(np.zeros((1, 4, 4, 4)))


@pytest.mark.slow
def test_pytorch_wavelets_imports_without_pkg_resources():
    """setuptools >= 82 has no pkg_resources, which pytorch-wavelets imports: block it in a fresh interpreter."""
    script = textwrap.dedent(
        """
        import sys
        sys.modules["pkg_resources"] = None  # makes `import pkg_resources` raise ModuleNotFoundError
        import medfusion, medfusion.transforms
        assert "torch" not in sys.modules and "pytorch_wavelets" not in sys.modules, "imports must stay lazy"
        from medfusion.utils.compat import import_pytorch_wavelets
        ptwt = import_pytorch_wavelets()
        assert sys.modules["pkg_resources"] is None, "the stand-in must not outlive the import"
        import numpy as np, pywt, torch
        x = np.random.default_rng(0).standard_normal((10, 8)).astype(np.float32)
        low, (high,) = ptwt.DWTForward(J=1, wave="db2", mode="zero")(torch.from_numpy(x)[None, None])
        ca, (ch, cv, cd) = pywt.dwt2(x, "db2", mode="zero")
        assert np.abs(low[0, 0].numpy() - ca).max() < 1e-5 and np.abs(high[0, 0, 2].numpy() - cd).max() < 1e-5
        from pytorch_wavelets.dtcwt.coeffs import biort
        assert len(biort("near_sym_a")) == 4  # the stand-in's resource_stream read a bundled .npz file
        print("ok")
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, encoding="utf-8", timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-2000:]


def test_wavelet_transform_works_where_pkg_resources_is_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "pkg_resources", None)
    for name in [m for m in sys.modules if m.split(".")[0] == "pytorch_wavelets"]:
        monkeypatch.delitem(sys.modules, name)  # forces a fresh import; restored afterwards
    x = np.random.default_rng(2).standard_normal((1, 8, 6))
    y = WaveletDWT2D("db2", "symmetric")(x)
    ca, (ch, cv, cd) = pywt.dwt2(x[0], "db2", mode="symmetric")
    np.testing.assert_allclose(y, np.stack([ca, ch, cv, cd]), atol=1e-6, rtol=0)
    assert sys.modules["pkg_resources"] is None


# --- CUDA -----------------------------------------------------------------------------------------------


@cuda
@pytest.mark.parametrize("d", [2, 3])
def test_cuda_matches_cpu(d):
    x = rand(2, 3, *SHAPES[d], dtype=torch.float32)
    y = haar_dwt(x.cuda(), d)
    assert y.is_cuda
    torch.testing.assert_close(y.cpu(), haar_dwt(x, d), atol=1e-6, rtol=0)
    torch.testing.assert_close(haar_idwt(y, d).cpu(), x, atol=1e-6, rtol=0)


@cuda
def test_cuda_transforms():
    x = rand(2, 4, 6, 8, dtype=torch.float32).cuda()
    y = HaarDWT(3)(x)
    assert y.is_cuda and torch.allclose(HaarIDWT(3)(y), x, atol=1e-6)
    z = WaveletDWT2D("db2", "periodization")(x[0])
    assert z.is_cuda and torch.allclose(WaveletIDWT2D("db2", "periodization")(z), x[0], atol=1e-5)
