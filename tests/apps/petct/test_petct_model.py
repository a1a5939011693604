"""PET/CT segmentation model: settings, normalisation, mask encoding, the loss, and ensemble segmentation with an
oracle network (exact answers) and a tiny random one (plumbing, seeds, shapes)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import entropy as scipy_entropy

from medfusion.apps.petct.model import (
    CLASSES, PetCtSegModel, encode_labels, probabilities, segmentation_loss,
)
from medfusion.apps.petct.inference import class_distribution, label_map, predictive_entropy, segment
from medfusion.apps.petct.transforms import preprocess, stacked_pet_ct
from medfusion.errors import InputError

TINY = {"channels": [8, 8], "norm_num_groups": 4, "num_head_channels": 4}


def tiny(space="haar", **kw) -> PetCtSegModel:
    torch.manual_seed(0)
    return PetCtSegModel.create(TINY, space=space, **kw)


def test_create_settings_and_checkpoint_round_trip(tmp_path):
    m = tiny()
    assert m.network_config["in_channels"] == 32 and m.network_config["out_channels"] == 16  # 8 sub-bands × (4, 2)
    assert m.divisor == 4 and tiny("identity").divisor == 2
    assert m.diffusion.prediction == "sample" and m.diffusion.clip_range == (-1.0, 1.0)
    assert tiny(prediction="epsilon").diffusion.prediction == "epsilon"
    path = m.save(tmp_path / "m.pt")
    back = PetCtSegModel.load(path)
    assert back.preprocessing == m.preprocessing and back.network_config == m.network_config
    for a, b in zip(m.network.state_dict().values(), back.network.state_dict().values()):
        torch.testing.assert_close(a, b)
    from medfusion.apps.seg2med.model import Seg2MedModel

    with pytest.raises(InputError, match="holds a 'petct' model, not a 'seg2med' model"):
        Seg2MedModel.load(path)
    with pytest.raises(InputError, match="space must be"):
        PetCtSegModel.create(TINY, space="fourier")


def test_conditions_normalise_suv_and_hu():
    m = tiny()
    pet = np.array([0.0, 5.0, 30.0, 45.0, -0.5], dtype=np.float32).reshape(5, 1, 1)
    ct = np.array([-1000.0, -250.0, 0.0, 250.0, 900.0], dtype=np.float32).reshape(5, 1, 1)
    c = m.conditions(pet, ct)
    np.testing.assert_allclose(c[0].ravel(), [0.0, 0.5, 3.0, 3.0, 0.0])  # SUV / 10, clipped to SUV 0 … 30
    np.testing.assert_allclose(c[1].ravel(), [-1.0, -1.0, 0.0, 1.0, 1.0])  # −250 … 250 HU → −1 … 1
    with pytest.raises(InputError, match="one grid"):
        m.conditions(pet, ct[:4])


def test_mask_encoding_and_label_map_round_trip():
    labels = np.random.default_rng(0).integers(0, 3, size=(5, 6, 7))
    enc = encode_labels(labels)
    assert enc.shape == (2, 5, 6, 7) and set(torch.unique(enc).tolist()) == {-1.0, 1.0}
    np.testing.assert_array_equal(label_map(probabilities(enc).numpy()), labels)
    batch = encode_labels(torch.as_tensor(labels)[None, None])
    assert batch.shape == (1, 2, 5, 6, 7)
    assert list(CLASSES) == [1, 2]


def test_class_distribution_and_entropy_against_closed_forms():
    p = np.array([[0.0, 1.0, 0.0, 1 / 3, 0.3, 0.8, 0.5], [0.0, 0.0, 1.0, 1 / 3, 0.3, 0.6, 0.0]], dtype=np.float32)
    q = class_distribution(p)
    np.testing.assert_allclose(q.sum(axis=0), 1.0, atol=1e-6)
    np.testing.assert_allclose(q[:, 4], [0.4, 0.3, 0.3], atol=1e-6)
    np.testing.assert_allclose(q[:, 5], [0.0, 0.8 / 1.4, 0.6 / 1.4], atol=1e-6)  # p₁ + p₂ > 1: renormalised
    h = predictive_entropy(p)
    np.testing.assert_allclose(h[:3], 0.0, atol=1e-7)
    np.testing.assert_allclose(h[3], math.log(3), atol=1e-6)
    np.testing.assert_allclose(h, scipy_entropy(q.astype(np.float64), axis=0), atol=1e-6)
    np.testing.assert_array_equal(label_map(p)[[0, 1, 2, 4, 5, 6]], [0, 1, 2, 0, 1, 0])  # a tie → the lower label


class _Oracle(torch.nn.Module):
    """A perfect x₀-network for the rule "GTVp where SUV > 2.5, GTVn where HU > 125 (and not GTVp)": reads the
    conditions out of its input (in the model's space) and answers the encoded true mask."""

    def __init__(self, space) -> None:
        super().__init__()
        self.space = space
        self.dummy = torch.nn.Parameter(torch.zeros(()))

    def forward(self, x, t, class_labels=None):
        n = x.shape[1] // 4  # channels per image in the space
        cond = self.space.decode(x[:, 2 * n:])
        labels = torch.where(cond[:, 0] > 0.25, 1, torch.where(cond[:, 1] > 0.5, 2, 0))
        return self.space.encode(encode_labels(labels[:, None]))


@pytest.mark.parametrize("space", ["haar", "identity"])
def test_oracle_network_gives_the_exact_mask_with_zero_uncertainty(space):
    m = tiny(space)
    m.diffusion.network = _Oracle(m.diffusion.space)
    rng = np.random.default_rng(1)
    shape = (13, 10, 7)  # odd sizes: padded to the divisor and cropped back
    pet = rng.uniform(0, 5, shape).astype(np.float32)
    ct = rng.uniform(-300, 300, shape).astype(np.float32)
    truth = np.where(pet > 2.5, 1, np.where(ct > 125, 2, 0))
    calls = []
    seg = segment(m, pet, ct, samples=3, steps=4, progress=lambda i, n: calls.append((i, n)))
    np.testing.assert_array_equal(seg.labels, truth)
    assert seg.labels.dtype == np.uint8 and seg.probabilities.shape == (2, *shape)
    np.testing.assert_allclose(seg.probabilities, probabilities(encode_labels(truth)).numpy(), atol=1e-5)
    np.testing.assert_allclose(seg.variance, 0.0, atol=1e-8)
    np.testing.assert_allclose(seg.entropy, 0.0, atol=1e-5)
    assert calls[-1] == (12, 12) and seg.samples == 3  # one bar over 3 samples × 4 steps


def test_random_network_ensemble_statistics_and_seeds():
    m = tiny()
    with torch.no_grad():  # MONAI zero-initialises the output layer: perturb every weight so samples differ
        for p in m.network.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    rng = np.random.default_rng(2)
    pet, ct = rng.uniform(0, 5, (8, 8, 8)).astype(np.float32), rng.uniform(-300, 300, (8, 8, 8)).astype(np.float32)
    a = segment(m, pet, ct, samples=3, steps=2, seed=5)
    b = segment(m, pet, ct, samples=3, steps=2, seed=5)
    np.testing.assert_array_equal(a.probabilities, b.probabilities)
    one = [segment(m, pet, ct, samples=1, steps=2, seed=s).probabilities for s in (5, 6, 7)]
    np.testing.assert_allclose(a.probabilities, np.mean(one, axis=0), atol=1e-6)
    np.testing.assert_allclose(a.variance, np.var(one, axis=0), atol=1e-6)
    assert (a.variance > 0).any() and (one[0] != one[1]).any()
    with pytest.raises(InputError, match="samples must be an integer"):
        segment(m, pet, ct, samples=0)
    with pytest.raises(InputError, match="steps must be"):
        segment(m, pet, ct, steps=0)


@pytest.mark.slow
@pytest.mark.parametrize("prediction", ["sample", "epsilon"])
def test_loss_is_finite_and_training_lowers_it(prediction):
    m = tiny(prediction=prediction)
    labels = torch.zeros(1, 1, 8, 8, 8)
    labels[..., 2:5, 2:5, 2:5] = 1
    labels[..., 5:7, 5:7, 1:3] = 2
    cond = torch.stack([labels[:, 0] == 1, labels[:, 0] == 2], dim=1).float() * 2 - 1
    batch = {"image": cond, "label": labels}
    opt = torch.optim.Adam(m.network.parameters(), 3e-3)

    def loss_at(seed):
        return segmentation_loss(m, batch, generator=torch.Generator().manual_seed(seed), device="cpu",
                                 precision="float32")

    with torch.no_grad():
        before = np.mean([loss_at(s).item() for s in range(8)])
    for step in range(40):
        loss = loss_at(100 + step)
        assert torch.isfinite(loss)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        after = np.mean([loss_at(s).item() for s in range(8)])
    assert after < 0.8 * before


def test_segresnet_baseline_checkpoint_prediction_and_training(tmp_path):
    from medfusion.apps.petct.baseline import SegResNetBaseline, segresnet_loss

    torch.manual_seed(0)
    b = SegResNetBaseline.create({"init_filters": 4, "blocks_down": [1, 1], "blocks_up": [1],
                                  "norm": ["group", {"num_groups": 2}]})
    assert b.divisor == 2
    rng = np.random.default_rng(3)
    pet, ct = rng.uniform(0, 5, (9, 8, 7)).astype(np.float32), rng.uniform(-300, 300, (9, 8, 7)).astype(np.float32)
    prob = b.predict(pet, ct)
    assert prob.shape == (2, 9, 8, 7) and (prob >= 0).all() and (prob.sum(axis=0) <= 1 + 1e-6).all()
    back = SegResNetBaseline.load(b.save(tmp_path / "b.pt"))
    np.testing.assert_allclose(back.predict(pet, ct), prob, atol=1e-6)
    with pytest.raises(InputError, match="holds a 'petct-segresnet' model, not a 'petct' model"):
        PetCtSegModel.load(tmp_path / "b.pt")
    pet, ct = pet[:8, :8, :6], ct[:8, :8, :6]  # training patches are multiples of the divisor
    labels = torch.as_tensor(np.where(pet > 2.5, 1, np.where(ct > 125, 2, 0)))[None, None]
    batch = {"image": torch.from_numpy(preprocess(stacked_pet_ct(pet, ct), b.preprocessing))[None], "label": labels}
    opt = torch.optim.Adam(b.network.parameters(), 1e-2)
    first = None
    for _ in range(30):
        loss = segresnet_loss(b, batch, generator=torch.Generator(), device="cpu", precision="float32")
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.7 * first


# ---- preprocessing and postprocessing: MONAI dictionary transforms that segmentation runs --------------------
def _bundle_processing(**overrides):
    """The ``preprocessing`` and ``postprocessing`` of the bundle's ``inference.json`` (``overrides``: as the command
    line gives them)."""
    from bundle_helpers import bundle_processing

    return bundle_processing("hecktor_petct_diffseg", **overrides)


def _lively() -> PetCtSegModel:
    m = tiny()
    with torch.no_grad():  # MONAI zero-initialises the output layer: perturb every weight so samples differ
        for p in m.network.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    return m


def _assert_same(a, b):
    for field in ("labels", "probabilities", "variance", "entropy"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field), err_msg=field)
    assert a.labels.dtype == b.labels.dtype == np.uint8 and a.samples == b.samples


def test_the_bundles_processing_is_the_models_own():
    from monai.transforms import Compose

    m = _lively()
    rng = np.random.default_rng(2)
    pet, ct = rng.uniform(0, 5, (8, 8, 8)).astype(np.float32), rng.uniform(-300, 300, (8, 8, 8)).astype(np.float32)
    default = segment(m, pet, ct, samples=2, steps=2, seed=5)
    assert default.variance.any()
    pre, post = _bundle_processing()
    _assert_same(segment(m, pet, ct, samples=2, steps=2, seed=5, preprocessing=pre, postprocessing=post), default)
    # a postprocessing that leaves no "label" gets the label map of its probabilities
    _assert_same(segment(m, pet, ct, samples=2, steps=2, seed=5, postprocessing=Compose([])), default)
    np.testing.assert_array_equal(m.conditions(pet, ct), pre({"image": np.stack([pet, ct])})["image"])


def test_a_changed_ct_window_and_an_appended_transform_reach_the_labels():
    from monai.transforms import Compose, KeepLargestConnectedComponentd

    from medfusion.apps.petct.transforms import inference_postprocessing

    m = tiny()
    m.diffusion.network = _Oracle(m.diffusion.space)  # GTVp where SUV > 2.5, GTVn where the normalised CT > 0.5
    rng = np.random.default_rng(1)
    pet = rng.uniform(0, 5, (12, 8, 8)).astype(np.float32)
    ct = rng.uniform(-300, 300, (12, 8, 8)).astype(np.float32)
    pre, _ = _bundle_processing(**{"preprocessing#transforms#0#ct_window": [-100.0, 100.0]})
    seg = segment(m, pet, ct, samples=1, steps=2, preprocessing=pre)
    np.testing.assert_array_equal(seg.labels, np.where(pet > 2.5, 1, np.where(ct > 50, 2, 0)))  # not HU > 125
    largest = Compose([*inference_postprocessing().transforms,
                       KeepLargestConnectedComponentd(keys="label", applied_labels=[1], connectivity=1)])
    default = segment(m, pet, ct, samples=1, steps=2)
    kept = segment(m, pet, ct, samples=1, steps=2, postprocessing=largest)
    assert 0 < np.count_nonzero(kept.labels == 1) < np.count_nonzero(default.labels == 1)
    np.testing.assert_array_equal(kept.probabilities, default.probabilities)
    np.testing.assert_array_equal(kept.labels[kept.labels == 1], default.labels[kept.labels == 1])


def test_the_baseline_runs_the_same_processing(tmp_path):
    from monai.transforms import Compose, Lambdad

    from medfusion.apps.petct.baseline import SegResNetBaseline
    from medfusion.apps.petct.files import Segmenter
    from medfusion.apps.petct.inference import run_segmenter

    torch.manual_seed(0)
    b = SegResNetBaseline.create({"init_filters": 4, "blocks_down": [1, 1], "blocks_up": [1],
                                  "norm": ["group", {"num_groups": 2}]})
    rng = np.random.default_rng(3)
    pet, ct = rng.uniform(0, 5, (8, 8, 6)).astype(np.float32), rng.uniform(-300, 300, (8, 8, 6)).astype(np.float32)
    default = run_segmenter(b, pet, ct)
    pre, post = _bundle_processing()
    _assert_same(run_segmenter(b, pet, ct, preprocessing=pre, postprocessing=post), default)
    pre_narrow, _ = _bundle_processing(**{"preprocessing#transforms#0#ct_window": [-50.0, 50.0]})
    assert not np.array_equal(run_segmenter(b, pet, ct, preprocessing=pre_narrow).probabilities,
                              default.probabilities)
    nothing = Compose([Lambdad(keys="label", func=lambda lab: lab * 0)])
    with pytest.raises(InputError, match="postprocessing: Key `label`"):
        run_segmenter(b, pet, ct, postprocessing=nothing)
    three = Compose([*post.transforms, Lambdad(keys="label", func=lambda lab: lab + 3)])
    with pytest.raises(InputError, match=r"'label' values other than 0, 1 \(GTVp\), 2 \(GTVn\): \[3"):
        run_segmenter(b, pet, ct, postprocessing=three)
    with pytest.raises(InputError, match="postprocessing must be a MONAI transform"):
        Segmenter(b, postprocessing="label")
