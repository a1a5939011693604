"""Schedule and sampler behaviour against closed forms and against MONAI's schedulers as a reference."""

import numpy as np
import pytest
import torch
from monai.networks.schedulers import DDIMScheduler, DDPMScheduler

from medfusion.core.diffusion import ConditionalDiffusion
from medfusion.core.schedule import DiffusionSchedule, sample_loop
from medfusion.core.spaces import HaarSpace


def WaveletConditionalDiffusion(network, lll_scale=3.0):
    """cWDM's diffusion: x0-prediction in 3D Haar space, clipped to [0, 1]."""
    return ConditionalDiffusion(network, space=HaarSpace(3, lll_scale))

T = 1000


@pytest.fixture(scope="module")
def sched():
    return DiffusionSchedule(T, 1e-4, 0.02)


def test_linear_schedule_closed_form(sched):
    betas = 1e-4 + (0.02 - 1e-4) * np.arange(T) / (T - 1)
    np.testing.assert_allclose(sched.betas, betas, rtol=1e-12)
    np.testing.assert_allclose(sched.alphas_cumprod, np.exp(np.cumsum(np.log1p(-betas))), rtol=1e-10)
    assert sched.alphas_cumprod.dtype == np.float64
    monai = DDPMScheduler(T, schedule="linear_beta", beta_start=1e-4, beta_end=0.02)
    np.testing.assert_allclose(sched.alphas_cumprod, monai.alphas_cumprod.double().numpy(), rtol=1e-5)


def test_scaled_linear_and_bad_arguments():
    s = DiffusionSchedule(10, 1e-4, 0.02, schedule="scaled_linear")
    np.testing.assert_allclose(np.sqrt(s.betas), np.linspace(1e-2, 0.02**0.5, 10))
    with pytest.raises(ValueError):
        DiffusionSchedule(10, schedule="cosine-ish")
    with pytest.raises(ValueError):
        DiffusionSchedule(10, 0.5, 1.5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_q_sample_closed_form_keeps_dtype_and_schedule(sched, dtype):
    x0 = torch.randn(3, 2, 4, 4, dtype=dtype)
    eps = torch.randn_like(x0)
    t = torch.tensor([0, 500, 999])
    xt = sched.q_sample(x0, t, eps)
    assert xt.dtype == dtype
    for i, ti in enumerate(t.tolist()):
        ab = sched.alphas_cumprod[ti]
        np.testing.assert_allclose(xt[i].double().numpy(), (np.sqrt(ab) * x0[i] + np.sqrt(1 - ab) * eps[i]).double().numpy(),
                                   rtol=1e-5 if dtype == torch.float32 else 1e-12, atol=1e-6)
    assert sched.alphas_cumprod.dtype == np.float64  # no hidden state change with the input dtype


@pytest.mark.parametrize("n", [1, 2, 3, 7, 50, 999, 1000])
def test_timesteps_any_number(sched, n):
    ts = sched.timesteps(n)
    assert len(ts) == n == len(set(ts))
    assert ts[0] == T - 1 and all(a > b for a, b in zip(ts, ts[1:]))
    if n > 1:
        assert ts[-1] == 0
    if n == T:
        assert ts == list(range(T - 1, -1, -1))
    with pytest.raises(ValueError):
        sched.timesteps(0)
    with pytest.raises(ValueError):
        sched.timesteps(T + 1)


@pytest.mark.parametrize("n", [1, 2, 3, 20, 50, 200, 999, 1000])
def test_quadratic_timesteps(sched, n):
    """The DDIM paper's quadratic selection: (T − 1)(k/(n − 1))², distinct, from T − 1 down to 0."""
    ts = sched.timesteps(n, "quadratic")
    assert len(ts) == n == len(set(ts))
    assert ts[0] == T - 1 and all(a > b for a, b in zip(ts, ts[1:]))
    if n > 1:
        closed = np.round((T - 1) * (np.arange(n - 1, -1, -1) / (n - 1)) ** 2).astype(int)
        assert ts[-1] == 0
        if len(set(closed.tolist())) == n:  # no repeats to move: exactly the closed form
            assert ts == closed.tolist()
        else:  # repeats near 0 moved up: never below the closed form, no more than needed to be distinct
            assert all(a >= b for a, b in zip(ts, closed)) and all(a <= b + n - 1 - k for k, (a, b) in
                                                                  enumerate(zip(ts, closed)))
            if n <= 200:  # with few steps only the crowded end near t = 0 moves
                assert ts[:n // 2] == closed[:n // 2].tolist()
    if n == 20:  # most steps where the noise is weak: 9 of 20 at t <= 177 (uniform: 4)
        assert ts[-5:] == [44, 25, 11, 3, 0] and sum(t <= 177 for t in ts) == 9
    if n == T:
        assert ts == list(range(T - 1, -1, -1))
    with pytest.raises(ValueError, match="spacing"):
        sched.timesteps(n, "cosine")


def test_training_timesteps_small_t_emphasis(sched):
    """Without emphasis: torch.randint over [0, T) (the same draws as before); with it, that share of the batch is
    uniform over [0, small_t_max) instead."""
    uniform = sched.sample_timesteps(64, generator=torch.Generator().manual_seed(3))
    assert torch.equal(uniform, torch.randint(0, T, (64,), generator=torch.Generator().manual_seed(3)))
    every = sched.sample_timesteps(1000, generator=torch.Generator().manual_seed(0), small_t_fraction=1.0,
                                   small_t_max=7)
    assert every.min() == 0 and every.max() == 6 and len(every.unique()) == 7
    half = sched.sample_timesteps(40000, generator=torch.Generator().manual_seed(1), small_t_fraction=0.5,
                                  small_t_max=100)
    assert abs((half < 100).float().mean().item() - (0.5 + 0.5 * 100 / T)) < 0.01  # 0.55 expected
    assert half.max() > 900
    for bad in ({"small_t_fraction": 1.5}, {"small_t_fraction": -0.1}, {"small_t_fraction": 0.5, "small_t_max": 0},
                {"small_t_fraction": 0.5, "small_t_max": T + 1}):
        with pytest.raises(ValueError, match="small_t"):
            sched.sample_timesteps(4, **bad)


@pytest.mark.parametrize("variance", ["fixed_small", "fixed_large"])
@pytest.mark.parametrize("t", [1, 10, 500, 999])
def test_ddpm_step_matches_monai(sched, variance, t):
    ref = DDPMScheduler(T, schedule="linear_beta", beta_start=1e-4, beta_end=0.02, variance_type=variance,
                        clip_sample=False, prediction_type="sample")
    x_t, x0 = torch.randn(2, 3, 5, 5, dtype=torch.float64), torch.randn(2, 3, 5, 5, dtype=torch.float64)
    ref.alphas_cumprod, ref.alphas, ref.betas = (torch.as_tensor(v) for v in
                                                 (sched.alphas_cumprod, 1 - sched.betas, sched.betas))
    expected, _ = ref.step(x0, t, x_t, generator=torch.Generator().manual_seed(3))
    ours = sched.ddpm_step(x_t, x0, t, t - 1, variance=variance, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(ours, expected, rtol=1e-10, atol=1e-10)


def test_ddpm_posterior_closed_form(sched):
    t, s = 600, 400  # a skipped step: the posterior of the respaced chain
    ab_t, ab_s = sched.alphas_cumprod[t], sched.alphas_cumprod[s]
    b = 1 - ab_t / ab_s
    cx0, cxt, vs, vl = sched.posterior(t, s)
    assert cx0 == pytest.approx(np.sqrt(ab_s) * b / (1 - ab_t))
    assert cxt == pytest.approx(np.sqrt(ab_t / ab_s) * (1 - ab_s) / (1 - ab_t))
    assert vs == pytest.approx(b * (1 - ab_s) / (1 - ab_t)) and vl == pytest.approx(b)
    # the posterior mean and variance reproduce the marginal of x_s: cx0 + cxt*sqrt(ab_t) = sqrt(ab_s), and
    # cxt^2 (1 - ab_t) + var_small = 1 - ab_s
    assert cx0 + cxt * np.sqrt(ab_t) == pytest.approx(np.sqrt(ab_s))
    assert cxt**2 * (1 - ab_t) + vs == pytest.approx(1 - ab_s)
    with pytest.raises(ValueError):
        sched.posterior(10, 10)


@pytest.mark.parametrize("eta", [0.0, 0.5])
@pytest.mark.parametrize("n", [10, 50])
def test_ddim_step_matches_monai(sched, eta, n):
    ref = DDIMScheduler(T, schedule="linear_beta", beta_start=1e-4, beta_end=0.02, clip_sample=False,
                        prediction_type="sample", set_alpha_to_one=True)
    ref.alphas_cumprod = torch.as_tensor(sched.alphas_cumprod)
    ref.num_inference_steps = n
    gap = T // n
    x_t, x0 = torch.randn(2, 4, 6, dtype=torch.float64), torch.randn(2, 4, 6, dtype=torch.float64)
    for t in (T - 1, 3 * gap, gap):
        expected, _ = ref.step(x0, t, x_t, eta=eta, generator=torch.Generator().manual_seed(5))
        ours = sched.ddim_step(x_t, x0, t, t - gap, eta=eta, generator=torch.Generator().manual_seed(5))
        torch.testing.assert_close(ours, expected, rtol=1e-10, atol=1e-10)


def test_ddim_eta_one_is_ddpm_fixed_small(sched):
    x_t, x0 = torch.randn(1, 2, 8, dtype=torch.float64), torch.randn(1, 2, 8, dtype=torch.float64)
    a = sched.ddim_step(x_t, x0, 700, 650, eta=1.0, generator=torch.Generator().manual_seed(0))
    b = sched.ddpm_step(x_t, x0, 700, 650, variance="fixed_small", generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("steps", [1, 3, 17, 50])
def test_deterministic_ddim_with_oracle_follows_the_marginal(sched, steps):
    """With the true x0, DDIM (eta 0) keeps x_s = sqrt(ab_s) x0 + sqrt(1 - ab_s) eps for the same eps and ends at x0."""
    x0 = torch.randn(1, 1, 16, dtype=torch.float64)
    eps = torch.randn_like(x0)
    ts = sched.timesteps(steps)
    x = sched.q_sample(x0, torch.tensor([ts[0]]), eps)
    seen = []

    def oracle(x_t, t):
        ab = sched.alpha_bar(t)
        torch.testing.assert_close(x_t, np.sqrt(ab) * x0 + np.sqrt(1 - ab) * eps, rtol=1e-9, atol=1e-9)
        seen.append(t)
        return x0

    out = sample_loop(oracle, x, sched, sampler="ddim", steps=steps)
    assert seen == ts
    torch.testing.assert_close(out, x0)


def test_sample_loop_reproducible_and_seeded(sched):
    x0 = torch.rand(1, 1, 32, dtype=torch.float64)
    run = lambda seed, sampler: sample_loop(lambda x, t: 0.5 * x0 + 0.5 * x.clamp(0, 1),  # noqa: E731
                                            torch.zeros_like(x0), sched, sampler=sampler, steps=20,
                                            eta=1.0, generator=torch.Generator().manual_seed(seed))
    for sampler in ("ddpm", "ddim"):
        torch.testing.assert_close(run(1, sampler), run(1, sampler), rtol=0, atol=0)
        assert not torch.equal(run(1, sampler), run(2, sampler))
    with pytest.raises(ValueError):
        run(1, "euler")


def test_sample_loop_reports_progress(sched):
    calls = []
    sample_loop(lambda x, t: x, torch.zeros(1, 1, 2), sched, steps=5, progress=lambda i, n: calls.append((i, n)))
    assert calls == [(i, 5) for i in range(1, 6)]


class _Echo(torch.nn.Module):
    """A fake denoiser returning a fixed wavelet tensor, to test the wrapper's plumbing, not learning."""

    def __init__(self, out):
        super().__init__()
        self.out = out
        self.calls = []

    def forward(self, x, t, class_labels=None):
        self.calls.append((x.shape, t.clone(), class_labels))
        return self.out.expand(x.shape[0], *self.out.shape[1:])


def test_wavelet_encode_decode_and_lll_scale():
    img = torch.rand(2, 3, 8, 8, 8, dtype=torch.float64)
    for scale in (3.0, 8**0.5):
        d = WaveletConditionalDiffusion(torch.nn.Identity(), lll_scale=scale)
        w = d.space.encode(img)
        assert w.shape == (2, 24, 4, 4, 4)
        torch.testing.assert_close(d.space.decode(w), img)
        lll = w[:, ::8]
        assert lll.max() <= 2 * 2**0.5 / scale + 1e-12 and lll.min() >= 0
        # the details are not scaled
        d1 = WaveletConditionalDiffusion(torch.nn.Identity(), lll_scale=1.0)
        torch.testing.assert_close(w[:, 1:8], d1.space.encode(img)[:, 1:8])
    with pytest.raises(ValueError):
        HaarSpace(3, lll_scale=0)


def test_clip_is_in_image_space_not_coefficient_wise():
    d = WaveletConditionalDiffusion(torch.nn.Identity())
    w = torch.randn(1, 8, 4, 4, 4, dtype=torch.float64) * 2
    img = d.space.decode(d.clip(w))
    assert img.min() >= -1e-12 and img.max() <= 1 + 1e-12
    coef_clipped = d.space.decode(w.clamp(-1, 1))  # what MONAI's clip_sample would do
    assert coef_clipped.min() < -1e-6 or coef_clipped.max() > 1 + 1e-6


def test_wavelet_sampling_conditions_every_step_and_returns_image():
    target = torch.rand(1, 1, 8, 8, 8, dtype=torch.float64)
    d = WaveletConditionalDiffusion(torch.nn.Identity())
    net = _Echo(d.space.encode(target))
    d.network = net
    cond = torch.rand(1, 3, 8, 8, 8, dtype=torch.float64)
    out = d.sample(cond, torch.tensor([2]), steps=4, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, target)  # the prediction is returned, clipped, in image space
    assert len(net.calls) == 4
    for shape, t, labels in net.calls:
        assert shape == (1, 32, 4, 4, 4) and labels.tolist() == [2]
    assert [c[1].item() for c in net.calls] == d.schedule.timesteps(4)
    net.calls.clear()
    d.sample(cond, torch.tensor([2]), steps=6, timestep_spacing="quadratic", generator=torch.Generator().manual_seed(0))
    assert [c[1].item() for c in net.calls] == d.schedule.timesteps(6, "quadratic") == [999, 639, 360, 160, 40, 0]


def test_forward_train_small_t_emphasis():
    """forward_train draws its timesteps through the schedule's small-t option; 0 leaves the uniform draw as it was."""
    target, cond = torch.rand(64, 1, 4, 4, 4), torch.rand(64, 3, 4, 4, 4)
    d = WaveletConditionalDiffusion(torch.nn.Identity())
    d.network = _Echo(d.space.encode(target))
    plain = d.forward_train(target, cond, generator=torch.Generator().manual_seed(5)).timesteps
    assert torch.equal(plain, d.schedule.sample_timesteps(64, generator=torch.Generator().manual_seed(5)))
    low = d.forward_train(target, cond, generator=torch.Generator().manual_seed(5), small_t_fraction=1.0,
                          small_t_max=10).timesteps
    assert low.max() < 10 and plain.max() >= 10


def test_loss_is_mse_on_all_coefficients():
    target = torch.rand(2, 1, 8, 8, 8)
    cond = torch.rand(2, 3, 8, 8, 8)
    d = WaveletConditionalDiffusion(torch.nn.Identity())
    zero = torch.zeros(1, 8, 4, 4, 4)
    d.network = _Echo(zero)
    loss = d.loss(target, cond, generator=torch.Generator().manual_seed(0))
    assert loss.item() == pytest.approx(float((d.space.encode(target) ** 2).mean()), rel=1e-5)
    d.network = _Echo(d.space.encode(target[:1]))
    assert d.loss(target[:1], cond[:1]).item() == pytest.approx(0.0, abs=1e-10)
