"""The shared core against independent references: PyWavelets for the spaces, closed forms for the prediction
types, numpy/MONAI for the inference modes; plus the runner's checks and the checkpoint format."""

from __future__ import annotations

import os

import numpy as np
import pytest
import pywt
import torch

from medfusion.core.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from medfusion.core.diffusion import ConditionalDiffusion
from medfusion.core.inference import ensemble, slicewise, sliding_window, whole_volume
from medfusion.core.runner import check_outputs, run_cases
from medfusion.core.schedule import DiffusionSchedule
from medfusion.core.spaces import HaarSpace, ImageSpace, WaveletSpace2D, make_space
from medfusion.errors import InputError


# ---- spaces ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dims", [2, 3])
def test_haar_space_matches_pywavelets(dims):
    rng = np.random.default_rng(dims)
    img = rng.random((2, 3) + (8,) * dims)
    space = HaarSpace(dims, lll_scale=3.0)
    enc = space.encode(torch.from_numpy(img)).numpy()
    keys = ["".join(k) for k in __import__("itertools").product("ad", repeat=dims)]
    for b in range(2):
        for c in range(3):
            ref = pywt.dwtn(img[b, c], "haar")
            for k, key in enumerate(keys):
                scale = 3.0 if key == "a" * dims else 1.0
                np.testing.assert_allclose(enc[b, c * 2**dims + k], ref[key] / scale, atol=1e-12)
    np.testing.assert_allclose(space.decode(torch.from_numpy(enc)).numpy(), img, atol=1e-12)


@pytest.mark.parametrize("wave", ["haar", "db2", "sym4"])
def test_wavelet_space_2d_matches_pywavelets_periodization(wave):
    rng = np.random.default_rng(0)
    img = rng.random((1, 2, 16, 12))
    space = WaveletSpace2D(wave, ll_scale=2.0)
    enc = space.encode(torch.from_numpy(img).float()).numpy()
    assert enc.shape == (1, 8, 8, 6)
    for c in range(2):
        cA, (cH, cV, cD) = pywt.dwt2(img[0, c], wave, mode="periodization")
        for k, ref in enumerate((cA / 2.0, cH, cV, cD)):
            np.testing.assert_allclose(enc[0, 4 * c + k], ref, atol=2e-6)
    back = space.decode(torch.from_numpy(enc)).numpy()
    np.testing.assert_allclose(back, img, atol=2e-6)
    # orthonormal: the energy of the (unscaled) coefficients equals the image's
    unscaled = enc.copy()
    unscaled[:, ::4] *= 2.0
    assert (unscaled**2).sum() == pytest.approx((img**2).sum(), rel=1e-5)


def test_wavelet_space_rejects_non_orthogonal_wavelets_and_odd_sizes():
    with pytest.raises(ValueError, match="orthogonal"):
        WaveletSpace2D("bior2.2")
    with pytest.raises(ValueError, match="even"):
        WaveletSpace2D("db2").encode(torch.zeros(1, 1, 7, 8))


def test_space_config_round_trip_and_image_space_clip():
    for space in (ImageSpace(2), HaarSpace(3, 2.0), WaveletSpace2D("db2")):
        again = make_space(**space.config)
        assert type(again) is type(space) and again.config == space.config
    x = torch.linspace(-2, 2, 64, dtype=torch.float64).reshape(1, 1, 4, 4, 4)
    torch.testing.assert_close(ImageSpace(3).clip(x, 0, 1), x.clamp(0, 1))
    haar = HaarSpace(3)
    img = haar.decode(haar.clip(haar.encode(x), 0.0, 1.0))
    torch.testing.assert_close(img, x.clamp(0, 1))
    with pytest.raises(ValueError, match="unknown image space"):
        make_space("fourier")


# ---- prediction types ------------------------------------------------------------------------------------------
class _Oracle(torch.nn.Module):
    """Knows x₀ and answers what a perfect network of the given prediction type would answer."""

    def __init__(self, diffusion_ref: list, x0: torch.Tensor) -> None:
        super().__init__()
        self.ref, self.x0 = diffusion_ref, x0
        self.dummy = torch.nn.Parameter(torch.zeros(()))

    def forward(self, x, t, class_labels=None):
        d: ConditionalDiffusion = self.ref[0]
        x_t = x[:, : self.x0.shape[1]]
        a, s = d._coefficients(t, x_t)
        eps = (x_t - a * self.x0) / s
        return {"sample": self.x0, "epsilon": eps, "v": a * eps - s * self.x0,
                "skip": _skip_output(self.x0, x_t / a, s / a, d.sigma_data)}[d.prediction].expand_as(x_t)


def _skip_output(x0, x_tilde, sigma, sigma_data):
    """EDM's F for x̃ = x₀ + σε, written out: (x₀ − c_skip x̃)/c_out (c_out without EDM's factor σ_d)."""
    c_skip = sigma_data**2 / (sigma**2 + sigma_data**2)
    c_out = sigma / (sigma**2 + sigma_data**2) ** 0.5
    return (x0 - c_skip * x_tilde) / c_out


@pytest.mark.parametrize("prediction", ["sample", "epsilon", "v", "skip"])
@pytest.mark.parametrize("sampler", ["ddim", "ddpm"])
def test_every_prediction_type_recovers_x0(prediction, sampler):
    x0 = torch.rand(1, 1, 8, 8, dtype=torch.float64)
    ref: list = []
    d = ConditionalDiffusion(None, DiffusionSchedule(), ImageSpace(2), prediction=prediction, clip_range=None)
    d.network = _Oracle(ref, x0)
    ref.append(d)
    out = d.sample(torch.zeros(1, 1, 8, 8, dtype=torch.float64), steps=5, sampler=sampler,
                   generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, x0, atol=1e-6, rtol=0)


@pytest.mark.parametrize("prediction", ["sample", "epsilon", "v", "skip"])
def test_residual_diffusion_adds_the_reference_back(prediction):
    """reference=1: the network diffuses target − condition channel 1; a perfect network of the residual gives the
    target back after sampling, in a wavelet space too, and clipping applies to the sum."""
    g = torch.Generator().manual_seed(3)
    x0, cond = torch.rand(1, 1, 8, 8, 8, generator=g, dtype=torch.float64), torch.rand(1, 2, 8, 8, 8, generator=g,
                                                                                        dtype=torch.float64)
    space = HaarSpace(3)
    ref: list = []
    d = ConditionalDiffusion(None, DiffusionSchedule(), space, prediction=prediction, clip_range=(0.0, 1.0),
                             reference=1)
    residual = space.encode(x0) - space.encode(cond[:, 1:2])
    d.network = _Oracle(ref, residual)
    ref.append(d)
    out = d.sample(cond, steps=4, sampler="ddim", generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, x0, atol=1e-6, rtol=0)
    o = d.forward_train(x0, cond, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(o.x0, residual)
    # x̂₀ beyond the range is clipped as x̂₀ + reference, in image space
    big = space.encode(torch.full_like(x0, 2.0)) - space.encode(cond[:, 1:2])
    clipped = space.decode(d.clip(big, space.encode(cond[:, 1:2])) + space.encode(cond[:, 1:2]))
    torch.testing.assert_close(clipped, torch.ones_like(x0))
    assert ConditionalDiffusion(None, reference=1).config["reference"] == 1
    with pytest.raises(ValueError, match="reference needs one target channel"):
        ConditionalDiffusion(None, reference=0, target_channels=2)
    with pytest.raises(ValueError, match="needs condition channel 1"):
        d.loss(x0, cond[:, :1])


@pytest.mark.parametrize("prediction", ["sample", "epsilon", "v", "skip"])
def test_training_target_and_to_x0_are_inverse_closed_forms(prediction):
    d = ConditionalDiffusion(torch.nn.Identity(), prediction=prediction, sigma_data=0.2)
    g = torch.Generator().manual_seed(1)
    x0, noise = torch.randn(3, 1, 4, 4, 4, generator=g, dtype=torch.float64), torch.randn(3, 1, 4, 4, 4, generator=g,
                                                                                          dtype=torch.float64)
    t = torch.tensor([0, 500, 999])
    ab = torch.as_tensor(d.schedule.alphas_cumprod)[t].reshape(-1, 1, 1, 1, 1)
    x_t = ab.sqrt() * x0 + (1 - ab).sqrt() * noise
    target = d.training_target(x0, noise, t)
    sigma = ((1 - ab) / ab).sqrt()
    expected = {"sample": x0, "epsilon": noise, "v": ab.sqrt() * noise - (1 - ab).sqrt() * x0,
                "skip": _skip_output(x0, x0 + sigma * noise, sigma, 0.2)}[prediction]
    torch.testing.assert_close(target, expected)
    torch.testing.assert_close(d.to_x0(target, x_t, t), x0)


def test_skip_prediction_passes_the_input_at_low_noise_and_is_x0_at_high_noise():
    """EDM preconditioning: at t = 0 a network that outputs nothing still passes 96 % of x̃ = x_t/√ᾱ_t through;
    x̂₀ ≈ F at t = T − 1 (so a "sample" network is its warm start); F's target has the data's spread σ_d at every
    t; sigma_data is checked, and saved with "skip" only (the one type that uses it)."""
    d = ConditionalDiffusion(None, prediction="skip", sigma_data=0.05)
    g = torch.Generator().manual_seed(2)
    x0 = 0.05 * torch.randn(3, 1, 16, 16, 16, generator=g, dtype=torch.float64)
    noise, out = (torch.randn(3, 1, 16, 16, 16, generator=g, dtype=torch.float64) for _ in range(2))
    t = torch.tensor([0, 0, 0])
    x_t = d.schedule.q_sample(x0, t, noise)
    ab0 = float(d.schedule.alphas_cumprod[0])
    # a network that outputs 0 still returns c_skip(0) x̃, c_skip(0) = 0.05²/(β₀/(1−β₀) + 0.05²) = 0.9615
    kept = d.to_x0(torch.zeros_like(out), x_t, t) / (x_t / ab0**0.5)
    torch.testing.assert_close(kept, torch.full_like(kept, 0.0025 / (1e-4 / (1 - 1e-4) + 0.0025)))
    late = torch.full((3,), 999)
    torch.testing.assert_close(d.to_x0(out, d.schedule.q_sample(x0, late, noise), late), out, atol=2e-3, rtol=0)
    for step in (0, 50, 300, 999):
        tt = torch.full((3,), step)
        assert d.training_target(x0, noise, tt).std().item() == pytest.approx(0.05, rel=0.02)
    assert d.config["sigma_data"] == 0.05 and "sigma_data" not in ConditionalDiffusion(None, sigma_data=0.05).config
    with pytest.raises(ValueError, match="sigma_data must be > 0"):
        ConditionalDiffusion(None, prediction="skip", sigma_data=0.0)


def test_loss_is_float32_under_autocast_and_prediction_is_validated():
    net = torch.nn.Conv3d(2, 1, 1)
    d = ConditionalDiffusion(lambda x, t, class_labels=None: net(x), prediction="epsilon")
    loss = d.loss(torch.rand(1, 1, 4, 4, 4), torch.rand(1, 1, 4, 4, 4), generator=torch.Generator().manual_seed(0),
                  precision="bfloat16")
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    with pytest.raises(ValueError, match="unknown prediction"):
        ConditionalDiffusion(net, prediction="score")


# ---- inference modes -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape, k", [((7, 9, 5), 4), ((16, 16, 16), 8), ((3, 20, 11), 8), ((1, 1, 1), 2)])
def test_whole_volume_pads_symmetrically_and_inverts(shape, k):
    from monai.transforms import DivisiblePad

    x = torch.from_numpy(np.random.default_rng(0).random((2,) + shape).astype(np.float32))
    seen = []

    def fn(batch):
        seen.append(batch.clone())
        return batch[:, :1] * 2 + 1  # another channel count, and a visible change

    out = whole_volume(fn, x, k)
    expected_pad = np.asarray(DivisiblePad(k, method="symmetric")(x.numpy()))
    np.testing.assert_array_equal(seen[0][0].numpy(), expected_pad)
    assert all(s % k == 0 for s in seen[0].shape[2:])
    torch.testing.assert_close(out, x[:1] * 2 + 1)


def test_ensemble_mean_and_variance_match_numpy():
    def draw(seed):
        return torch.from_numpy(np.random.default_rng(seed).normal(size=(2, 5, 4)).astype(np.float32))

    r = ensemble(draw, 7, seed=10, keep_samples=True)
    stack = np.stack([draw(10 + i).numpy() for i in range(7)]).astype(np.float64)
    np.testing.assert_allclose(r.mean.numpy(), stack.mean(0), atol=1e-6)
    np.testing.assert_allclose(r.variance.numpy(), stack.var(0), atol=1e-6)
    assert r.n == 7 and len(r.samples) == 7
    one = ensemble(draw, 1)
    assert torch.all(one.variance == 0) and one.samples is None
    with pytest.raises(ValueError):
        ensemble(draw, 0)


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_slicewise_applies_a_2d_function_per_slice(axis):
    vol = torch.rand(2, 5, 6, 7)
    calls = []

    def fn2d(b):
        calls.append(b.shape[0])
        assert b.ndim == 4 and b.shape[1] == 2
        return b.sum(dim=1, keepdim=True) * torch.arange(1, b.shape[-1] + 1)  # depends on the in-slice position

    out = slicewise(fn2d, vol, axis=axis, batch_size=2)
    moved = vol.movedim(axis + 1, 0)
    expected = (moved.sum(1, keepdim=True) * torch.arange(1, moved.shape[-1] + 1)).movedim(0, axis + 1)
    torch.testing.assert_close(out, expected)
    assert sum(calls) == vol.shape[axis + 1] and max(calls) <= 2


def test_sliding_window_equals_a_pointwise_function_and_bounds_the_tile():
    img = torch.rand(3, 37, 50)
    sizes = []

    def fn(tiles):
        sizes.append(tuple(tiles.shape))
        return tiles[:, :2] * 3 - 1

    out = sliding_window(fn, img, (16, 16), overlap=0.25, batch_size=2)
    torch.testing.assert_close(out, img[:2] * 3 - 1, atol=1e-5, rtol=1e-5)
    assert all(s[0] <= 2 and s[2:] == (16, 16) for s in sizes)


# ---- runner ----------------------------------------------------------------------------------------------------
def test_check_outputs_refuses_before_any_work(tmp_path):
    inp = tmp_path / "in.nii.gz"
    inp.write_bytes(b"x")
    with pytest.raises(InputError, match="one of the inputs"):
        check_outputs([inp], overwrite=True, inputs=[inp])
    link = tmp_path / "alias.nii.gz"
    link.symlink_to(inp)
    with pytest.raises(InputError, match="one of the inputs"):
        check_outputs([link], overwrite=True, inputs=[inp])
    with pytest.raises(InputError, match="must end in"):
        check_outputs([tmp_path / "x.png"])
    with pytest.raises(InputError, match="already exists"):
        check_outputs([inp])
    with pytest.raises(InputError, match="same file"):
        check_outputs([tmp_path / "a.nii.gz", tmp_path / "sub" / ".." / "a.nii.gz"])
    (tmp_path / "folder.nii.gz").mkdir()
    with pytest.raises(InputError, match="is a folder"):
        check_outputs([tmp_path / "folder.nii.gz"])
    if os.geteuid() != 0:  # root may write anywhere
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o555)
        with pytest.raises(InputError, match="not writable"):
            check_outputs([ro / "out.nii.gz"])
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(InputError, match="not a folder"):
        check_outputs([blocker / "out.nii.gz"])
    check_outputs([tmp_path / "new" / "deeper" / "out.nii.gz"])  # folders to be created are fine


def test_run_cases_splits_cases_across_torchrun_processes(tmp_path, monkeypatch):
    import medfusion.core.runner as runner

    monkeypatch.setattr(runner, "_gather", lambda value: [value])  # no process group in one process
    items = list(range(7))
    outs = [[str(tmp_path / f"{i}.nii.gz")] for i in items]
    done = {}
    for rank in range(3):
        monkeypatch.setenv("RANK", str(rank))
        monkeypatch.setenv("WORLD_SIZE", "3")
        mine = []
        run_cases(items, outs, lambda i, o: mine.append(i))
        done[rank] = mine
    assert done == {0: [0, 3, 6], 1: [1, 4], 2: [2, 5]}
    (tmp_path / "5.nii.gz").write_text("")
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(InputError, match="5.nii.gz"):  # any case's existing output stops every process
        run_cases(items, outs, lambda i, o: pytest.fail("no case may run"))


# ---- checkpoints -----------------------------------------------------------------------------------------------
def test_checkpoint_is_plain_data_written_atomically(tmp_path):
    ck = Checkpoint(kind="demo", network={"channels": (8, 16)}, diffusion={"prediction": "v"},
                    state_dict={"w": torch.ones(2)}, info={"steps": 3})
    path = save_checkpoint(ck, tmp_path / "m" / "model.pt")
    assert os.listdir(tmp_path / "m") == ["model.pt"]
    state = torch.load(path, weights_only=True)
    assert state["network"] == {"channels": [8, 16]} and state["kind"] == "demo"
    back = load_checkpoint(tmp_path / "m" / "model.pt", kind="demo")
    assert back.info == {"steps": 3} and torch.equal(back.state_dict["w"], torch.ones(2))
    with pytest.raises(InputError, match="'demo' model, not a 'cwdm' model"):
        load_checkpoint(path, kind="cwdm")
