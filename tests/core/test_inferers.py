"""The inferers hold the sampling settings and arrange the image around the network: whole volume, slice by slice,
an ensemble of seeds, sliding window. Checked with a stand-in model whose "sampler" is a known function of its
input, the seed's first random number and the class label."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medfusion.core.inferers import (
    EnsembleInferer, SliceInferer, SlidingWindowInferer, WholeVolumeInferer, inferer_for,
)
from medfusion.errors import InputError


class _Diffusion:
    def __init__(self):
        self.calls = []

    def sample(self, batch, class_labels=None, *, sampler, steps, generator, progress, precision, **kwargs):
        self.calls.append({"shape": tuple(batch.shape), "labels": class_labels, "sampler": sampler, "steps": steps})
        noise = torch.rand((), generator=generator)  # one draw per call: the seed reaches the sampler
        lab = 0.0 if class_labels is None else class_labels.float().view(-1, *[1] * (batch.ndim - 1))
        return 2 * batch + lab + noise


class _Model:
    """What an inferer needs of an application model: check_sampling, divisor, to(), network, diffusion."""

    def __init__(self, divisor=4):
        self.divisor, self.diffusion, self.checked = divisor, _Diffusion(), []
        self.network = torch.nn.Identity()

    def check_sampling(self, **settings):
        if settings["steps"] < 1:
            raise InputError("steps must be at least 1")
        self.checked.append(settings)
        return torch.device("cpu")

    def to(self, device):
        return self


def _noise(seed: int) -> float:
    return float(torch.rand((), generator=torch.Generator().manual_seed(seed)))


def test_whole_volume_pads_to_the_divisor_and_crops_back_with_the_settings_checked_first():
    model, x = _Model(divisor=4), torch.arange(2 * 5 * 6 * 7, dtype=torch.float32).reshape(2, 5, 6, 7)
    y = WholeVolumeInferer(steps=7, sampler="ddpm", seed=3)(x, model, torch.tensor([2]))
    assert model.checked[0]["steps"] == 7 and model.checked[0]["sampler"] == "ddpm"
    (call,) = model.diffusion.calls
    assert call["shape"] == (1, 2, 8, 8, 8) and (call["sampler"], call["steps"]) == ("ddpm", 7)
    torch.testing.assert_close(y, 2 * x + 2 + _noise(3))
    with pytest.raises(InputError, match="steps"):
        WholeVolumeInferer(steps=0)(x, model)


def test_slices_go_in_batches_with_one_label_per_slice_and_one_seed_for_the_volume():
    model = _Model(divisor=4)
    x = torch.rand(1, 6, 6, 5)
    y = SliceInferer(batch_size=2, seed=1)(x, model, torch.tensor([4]))
    shapes = [c["shape"] for c in model.diffusion.calls]
    assert shapes == [(2, 1, 8, 8), (2, 1, 8, 8), (1, 1, 8, 8)]  # 5 slices, in-plane padding only
    assert [c["labels"].tolist() for c in model.diffusion.calls] == [[4, 4], [4, 4], [4]]
    g = torch.Generator().manual_seed(1)
    draws = [float(torch.rand((), generator=g)) for _ in range(3)]  # one generator across the batches
    expected = torch.cat([2 * x[..., i:i + n] + 4 + d for i, n, d in zip((0, 2, 4), (2, 2, 1), draws)], dim=-1)
    torch.testing.assert_close(y, expected)
    with pytest.raises(InputError, match="batch_size"):
        SliceInferer(batch_size=0)


def test_an_ensemble_uses_consecutive_seeds_and_transforms_each_sample_before_its_statistics():
    model, x = _Model(divisor=1), torch.zeros(1, 3, 3, 3)
    result = EnsembleInferer(samples=3, seed=10)(x, model, None, transform=lambda y: y.clamp(max=0.5))
    samples = np.array([min(_noise(s), 0.5) for s in (10, 11, 12)])
    assert result.n == 3 and len(model.diffusion.calls) == 3
    np.testing.assert_allclose(result.mean.numpy(), samples.mean(), rtol=1e-6)
    np.testing.assert_allclose(result.variance.numpy(), samples.var(), rtol=1e-4, atol=1e-9)
    with pytest.raises(InputError, match="samples"):
        EnsembleInferer(samples=0)


def test_sliding_window_runs_a_small_image_whole_and_a_large_one_in_tiles():
    model = _Model(divisor=4)
    small = torch.rand(3, 10, 12)
    y = SlidingWindowInferer(roi_size=(16, 16), padding_mode="reflect")(small, model)
    assert [c["shape"] for c in model.diffusion.calls] == [(1, 3, 12, 12)]
    torch.testing.assert_close(y, 2 * small + _noise(0))
    model = _Model(divisor=4)
    large = torch.rand(3, 40, 24)
    SlidingWindowInferer(roi_size=(16, 16), overlap=0.25, batch_size=2)(large, model)
    shapes = {c["shape"][1:] for c in model.diffusion.calls}
    assert shapes == {(3, 16, 16)} and sum(c["shape"][0] for c in model.diffusion.calls) > 4
    with pytest.raises(InputError, match="overlap"):
        SlidingWindowInferer(overlap=1.0)


def test_settings_go_to_the_inferer_or_to_the_default_never_both():
    default = inferer_for(None, lambda **kw: WholeVolumeInferer(**{"steps": 9, **kw}), seed=4)
    assert (default.steps, default.seed) == (9, 4)
    mine = SliceInferer(steps=2)
    assert inferer_for(mine, WholeVolumeInferer) is mine
    with pytest.raises(InputError, match="not beside it: steps"):
        inferer_for(mine, WholeVolumeInferer, steps=3)
    with pytest.raises(InputError, match="DiffusionInferer"):
        inferer_for("ddim", WholeVolumeInferer)
