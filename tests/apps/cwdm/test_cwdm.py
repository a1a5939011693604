"""The cWDM Python API: padding, checkpoints, synthesis contract, and a tiny end-to-end train → sample run."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
import torch

from conftest import TINY_NETWORK
from medfusion.apps.cwdm.evaluation import evaluate_heldout
from medfusion.apps.cwdm.layout import list_cases, load_case
from medfusion.apps.cwdm.model import CWDMModel, load_model
from medfusion.apps.cwdm.inference import synthesize
from medfusion.apps.cwdm.train import BraTSTrainingSet, CWDMTrainer, cwdm_loss, split_missing
from medfusion.core.checkpoint import FORMAT
from medfusion.errors import InputError
from medfusion.transforms.intensity import PercentileNormalize

CASE = "BraTS-PHANTOM-00000-000"


def lively(model: CWDMModel, seed: int = 0) -> CWDMModel:
    """MONAI zero-initialises the U-Net's output convolution, so an untrained model predicts x̂₀ = 0 and every
    sample is exactly 0.  Random output weights (and an LLL bias of ≈ 0.5 in image space) give samples that
    depend on the conditions and the noise, which the contract tests below need."""
    conv = [m for m in model.network.out.modules() if isinstance(m, torch.nn.Conv3d)][-1]
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        conv.weight.copy_(torch.randn(conv.weight.shape, generator=g) * 0.05)
        conv.bias.zero_()
        conv.bias[0] = 0.5 * np.sqrt(8) / model.diffusion.space.lll_scale
    return model


@pytest.fixture(scope="module")
def case_volumes(tiny_dataset) -> dict[str, np.ndarray]:
    """The four contrasts of one tiny phantom case (20×24×18), raw intensities."""
    case = list_cases(tiny_dataset, require_missing=False)[0]
    return {c: v.data for c, v in load_case(case).items()}


def normalised(volume: np.ndarray) -> np.ndarray:
    return np.asarray(PercentileNormalize()(volume[None]))[0]


# ---- checkpoints ------------------------------------------------------------------------------------------------
def test_checkpoint_round_trip(tmp_path, case_volumes):
    torch.manual_seed(1)
    model = lively(CWDMModel.create(TINY_NETWORK, info={"description": "round trip"}))
    path = tmp_path / "ckpt" / "model.pt"
    model.save(path)
    assert sorted(p.name for p in path.parent.iterdir()) == ["model.pt"]  # no temporary file left

    state = torch.load(path, map_location="cpu", weights_only=True)  # plain data, no code
    assert state["format"] == FORMAT and state["kind"] == "cwdm"
    assert state["network"]["channels"] == TINY_NETWORK["channels"]
    assert state["diffusion"]["space"] == {"kind": "haar", "spatial_dims": 3, "lll_scale": 3.0}
    assert state["diffusion"]["prediction"] == "sample"
    assert state["preprocessing"] == {"lower": 0.1, "upper": 99.9}
    assert state["info"]["description"] == "round trip"

    for where in (path, tmp_path):  # a .pt file or a bundle-like folder holding models/model.pt
        if where == tmp_path:
            (tmp_path / "models").mkdir()
            (tmp_path / "models" / "model.pt").write_bytes(path.read_bytes())
        loaded = load_model(where)
        assert not loaded.network.training
        assert loaded.target is None and loaded.info == model.info
        assert (loaded.lower, loaded.upper, loaded.background_threshold) == (
            model.lower, model.upper, model.background_threshold)
        a, b = model.network.state_dict(), loaded.network.state_dict()
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)

        inputs = {c: v for c, v in case_volumes.items() if c != "t1c"}
        y0 = synthesize(model, inputs, "t1c", steps=2, seed=3)
        y1 = synthesize(loaded, inputs, "t1c", steps=2, seed=3)
        assert y0.any()
        np.testing.assert_array_equal(y0, y1)


def test_load_model_rejects_bad_checkpoints(tmp_path):
    with pytest.raises(InputError, match="weights not found"):
        load_model(tmp_path / "absent.pt")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"\x1f\x8b" + bytes(range(256)) * 4)
    with pytest.raises(InputError, match="cannot read weights") as err:
        load_model(garbage)
    assert "\n" not in str(err.value)
    other = tmp_path / "other.pt"
    torch.save({"state_dict": {}}, other)
    with pytest.raises(InputError, match="not a medfusion checkpoint"):
        load_model(other)
    tensor = tmp_path / "tensor.pt"
    torch.save(torch.zeros(3), tensor)
    with pytest.raises(InputError, match="not a medfusion checkpoint"):
        load_model(tensor)
    foreign = CWDMModel.create(TINY_NETWORK).checkpoint().to_dict()
    foreign["kind"] = "seg2med"
    torch.save(foreign, tmp_path / "foreign.pt")
    with pytest.raises(InputError, match="'seg2med' model, not a 'cwdm' model"):
        load_model(tmp_path / "foreign.pt")
    state = CWDMModel.create(TINY_NETWORK).checkpoint().to_dict()
    state["state_dict"].pop(next(iter(state["state_dict"])))
    broken = tmp_path / "broken.pt"
    torch.save(state, broken)
    with pytest.raises(InputError, match="do not fit") as err:
        load_model(broken)
    assert "\n" not in str(err.value)


# ---- synthesis --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def lively_model() -> CWDMModel:
    torch.manual_seed(0)
    return lively(CWDMModel.create(TINY_NETWORK))


def test_synthesize_is_seeded(lively_model, case_volumes):
    inputs = {c: v for c, v in case_volumes.items() if c != "t2f"}
    for sampler in ("ddim", "ddpm"):
        a = synthesize(lively_model, inputs, "t2f", steps=3, sampler=sampler, seed=5)
        b = synthesize(lively_model, inputs, "t2f", steps=3, sampler=sampler, seed=5)
        np.testing.assert_array_equal(a, b)
    c = synthesize(lively_model, inputs, "t2f", steps=3, sampler="ddpm", seed=6)
    assert a.any() and not np.array_equal(a, c)


@pytest.mark.parametrize("dtype", [np.float32, np.int16])
def test_synthesize_output_contract(lively_model, case_volumes, dtype):
    # an odd-sized crop (not a multiple of the network's divisor 4) in the file's intensity unit
    inputs = {c: np.asarray(v[1:20, :23, 2:17] * 1000, dtype=dtype) for c, v in case_volumes.items() if c != "t2w"}
    copies = {c: v.copy() for c, v in inputs.items()}
    y = synthesize(lively_model, inputs, "t2w", steps=2, seed=0)
    assert y.dtype == np.float32 and y.shape == (19, 23, 15) and y.flags.c_contiguous
    assert np.isfinite(y).all() and y.min() >= 0.0 and y.max() <= 1.0
    background = np.all([v == 0 for v in inputs.values()], axis=0)
    assert background.any() and np.all(y[background] == 0) and y[~background].any()
    for c in inputs:  # the caller's arrays are untouched
        assert inputs[c].dtype == dtype
        np.testing.assert_array_equal(inputs[c], copies[c])


def test_synthesize_input_errors(case_volumes):
    per_contrast = CWDMModel.create({**TINY_NETWORK, "num_class_embeds": None}, target="t2f")
    assert per_contrast.network_config["num_class_embeds"] is None
    inputs = {c: v for c, v in case_volumes.items() if c != "t2f"}
    y = synthesize(per_contrast, inputs, "t2f", steps=1)  # its own contrast works (no class label)
    assert y.shape == case_volumes["t2f"].shape
    with pytest.raises(InputError, match="synthesizes t2f only"):
        synthesize(per_contrast, {c: v for c, v in case_volumes.items() if c != "t1n"}, "t1n", steps=1)

    model = CWDMModel.create(TINY_NETWORK)
    with pytest.raises(InputError, match="unknown contrast"):
        synthesize(model, inputs, "flair", steps=1)
    with pytest.raises(InputError, match="t1c"):
        synthesize(model, {"t1n": inputs["t1n"], "t2w": inputs["t2w"]}, "t2f", steps=1)
    with pytest.raises(InputError, match="3D"):
        synthesize(model, {c: v[:, :, 0] for c, v in inputs.items()}, "t2f", steps=1)
    with pytest.raises(InputError, match="unknown contrast"):
        CWDMModel.create(TINY_NETWORK, target="pd")
    zero = dict(inputs, t1n=np.zeros_like(inputs["t1n"]))
    with pytest.raises(InputError, match="t1n is all zeros"):
        synthesize(model, zero, "t2f", steps=1)


@pytest.mark.parametrize("options, message", [
    ({"steps": 0}, "steps must be an integer from 1 to 1000"), ({"steps": 1001}, "from 1 to 1000"),
    ({"steps": -5}, "from 1 to 1000"), ({"seed": 2**64}, "seed must be an integer"), ({"seed": -1}, "seed"),
    ({"device": "foo"}, "unknown device"), ({"sampler": "euler"}, "unknown sampler"),
    ({"precision": "float8"}, "unknown precision"), ({"precision": "float16"}, "CUDA devices only"),
])
def test_synthesize_option_errors(lively_model, case_volumes, options, message):
    inputs = {c: v for c, v in case_volumes.items() if c != "t2f"}
    with pytest.raises(InputError, match=message):
        synthesize(lively_model, inputs, "t2f", **{"steps": 1, **options})


def test_cuda_on_a_cpu_only_torch(lively_model, case_volumes):
    if torch.cuda.is_available():
        pytest.skip("this torch sees a GPU")
    inputs = {c: v for c, v in case_volumes.items() if c != "t2f"}
    with pytest.raises(InputError, match="sees no CUDA GPU"):
        synthesize(lively_model, inputs, "t2f", steps=1, device="cuda")


def test_bfloat16_sampling_on_cpu_is_close_to_float32(lively_model, case_volumes):
    inputs = {c: v for c, v in case_volumes.items() if c != "t2f"}
    a = synthesize(lively_model, inputs, "t2f", steps=2, seed=0)
    b = synthesize(lively_model, inputs, "t2f", steps=2, seed=0, precision="bfloat16")
    assert not np.array_equal(a, b)  # the network really ran in bfloat16
    assert np.abs(a - b).max() < 0.05


# ---- training -----------------------------------------------------------------------------------------------------
def test_split_missing():
    image = torch.stack([torch.full((3, 4, 5), 10.0 * (i + 1)) for i in range(4)])[None].repeat(4, 1, 1, 1, 1)
    image[1] += 0.5  # tell the batch items apart
    labels = torch.tensor([2, 0, 3, 1])
    target, conds = split_missing(image, labels)
    assert target.shape == (4, 1, 3, 4, 5) and conds.shape == (4, 3, 3, 4, 5)
    for b, k in enumerate(labels.tolist()):
        offset = 0.5 if b == 1 else 0.0
        assert torch.all(target[b, 0] == 10.0 * (k + 1) + offset)
        others = [j for j in range(4) if j != k]  # canonical order t1n, t1c, t2w, t2f without the target
        for i, j in enumerate(others):
            assert torch.all(conds[b, i] == 10.0 * (j + 1) + offset)


@pytest.mark.slow
def test_train_then_sample(tmp_path, tiny_dataset, case_volumes):
    """A few dozen steps on 16³ patches: the loss falls clearly and samples get closer to the truth."""
    torch.manual_seed(0)
    model = CWDMModel.create(TINY_NETWORK)
    untrained = CWDMModel.from_checkpoint(model.checkpoint())
    data = BraTSTrainingSet(tiny_dataset, patch_size=(16, 16, 16), divisor=model.divisor, seed=0)
    patch = data[0]["image"]
    assert type(patch) is torch.Tensor and patch.dtype == torch.float32  # plain tensors, not MetaTensors
    assert len(data) == 2 and tuple(patch.shape) == (4, 16, 16, 16) and 0 <= patch.min() <= patch.max() <= 1

    out = tmp_path / "run"
    trainer = CWDMTrainer(model, data, out, max_steps=60, lr=1e-3, log_every=1, save_every=30, device="cpu",
                          seed=0, info={"data": "tiny phantoms"})
    record = trainer.run()
    assert record["step"] == 60
    assert sorted(p.name for p in out.iterdir()) == ["last.pt", "log.jsonl", "model.pt"]
    losses = [r["loss"] for r in map(json.loads, (out / "log.jsonl").read_text().splitlines()) if "loss" in r]
    assert len(losses) == 60 and np.isfinite(losses).all()
    first, last = np.mean(losses[:5]), np.mean(losses[-5:])
    assert last < 0.6 * first, (first, last)

    trained = load_model(out / "model.pt")
    assert trained.info["train_steps"] == 60 and trained.info["data"] == "tiny phantoms"
    for missing in ("t2f", "t1n"):
        inputs = {c: v for c, v in case_volumes.items() if c != missing}
        truth = normalised(case_volumes[missing])
        mse = {name: float(np.mean((synthesize(m, inputs, missing, steps=4, seed=0) - truth) ** 2))
               for name, m in (("trained", trained), ("untrained", untrained))}
        assert mse["trained"] < 0.7 * mse["untrained"], (missing, mse)

    report = tmp_path / "eval.json"
    scores = {name: evaluate_heldout(m, tiny_dataset, missing=["t2f"], steps=4, max_cases=1, report=report)
              for name, m in (("untrained", untrained), ("trained", trained))}
    saved = json.loads(report.read_text())
    assert saved["summary"]["t2f"]["n"] == 1 and saved["cases"][0]["case"] == CASE
    assert scores["trained"]["summary"]["t2f"]["model"]["psnr"] > scores["untrained"]["summary"]["t2f"]["model"]["psnr"]


def test_resume_reaches_the_same_weights(tmp_path, tiny_dataset):
    """A run interrupted after step 7 (last.pt saved at 6) and resumed to 12 ends with bit for bit the weights
    of an uninterrupted 12-step run (cosine schedule with warm-up, random crops, random missing contrasts)."""
    def trainer(out):
        torch.manual_seed(0)
        model = CWDMModel.create(TINY_NETWORK)
        data = BraTSTrainingSet(tiny_dataset, patch_size=(8, 8, 8), divisor=model.divisor, seed=0)
        return model, CWDMTrainer(model, data, out, max_steps=12, lr=1e-3, save_every=6, log_every=6, device="cpu",
                                  seed=0, lr_schedule="cosine", warmup_steps=2)

    whole, t = trainer(tmp_path / "whole")
    t.run()
    _, t = trainer(tmp_path / "parts")
    calls = []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 8:
            raise KeyboardInterrupt  # killed during step 8
        return cwdm_loss(*args, **kwargs)

    t.loss_fn = interrupted
    with pytest.raises(KeyboardInterrupt):
        t.run()
    resumed, t = trainer(tmp_path / "parts")
    t.run()  # picks up last.pt of step 6
    a, b = whole.network.state_dict(), resumed.network.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    log = [json.loads(line) for line in (tmp_path / "parts" / "log.jsonl").read_text().splitlines()]
    assert {"event": "resumed", "step": 6} in log


@pytest.mark.slow
def test_moving_average_is_what_model_pt_holds_and_resumes_exactly(tmp_path, tiny_dataset):
    """ema_decay: model.pt holds the exponential moving average of the weights after each step (its closed form
    from the weights each step left: e₁ = w₁, eₖ = d·eₖ₋₁ + (1 − d)·wₖ), not the last weights; and a run interrupted
    during step 8 and resumed from last.pt ends with bit for bit the same average."""
    def trainer(out):
        torch.manual_seed(0)
        model = CWDMModel.create(TINY_NETWORK)
        data = BraTSTrainingSet(tiny_dataset, patch_size=(8, 8, 8), divisor=model.divisor, seed=0)
        return model, CWDMTrainer(model, data, out, max_steps=12, lr=1e-3, save_every=6, log_every=6, device="cpu",
                                  seed=0, ema_decay=0.5)

    model, t = trainer(tmp_path / "whole")
    seen = []

    def recording(m, *args, **kwargs):
        seen.append({k: v.detach().clone() for k, v in m.network.state_dict().items()})
        return cwdm_loss(m, *args, **kwargs)

    t.loss_fn = recording
    t.run()
    after = seen[1:] + [model.network.state_dict()]  # the weights each of the 12 steps left
    expected = dict(after[0])
    for w in after[1:]:
        expected = {k: 0.5 * expected[k] + 0.5 * w[k] for k in w}
    saved = load_model(tmp_path / "whole" / "model.pt")
    assert saved.info["ema_decay"] == 0.5
    got = saved.network.state_dict()
    assert all(torch.allclose(got[k], expected[k], atol=1e-6) for k in got)
    assert not all(torch.equal(got[k], after[-1][k]) for k in got)  # not the last weights

    _, t = trainer(tmp_path / "parts")
    calls = []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 8:
            raise KeyboardInterrupt
        return cwdm_loss(*args, **kwargs)

    t.loss_fn = interrupted
    with pytest.raises(KeyboardInterrupt):
        t.run()
    trainer(tmp_path / "parts")[1].run()
    resumed = load_model(tmp_path / "parts" / "model.pt").network.state_dict()
    whole = load_model(tmp_path / "whole" / "model.pt").network.state_dict()
    assert all(torch.equal(whole[k], resumed[k]) for k in whole)


def test_init_weights_starts_a_new_run_from_a_checkpoint(tmp_path, tiny_dataset):
    """init_weights (fine-tuning): a new run starts from the checkpoint's network weights (and says so in the log);
    another network's or another application's checkpoint is refused with one line when the trainer is made, before
    any output."""
    torch.manual_seed(1)
    source = CWDMModel.create(TINY_NETWORK)
    source.save(tmp_path / "source.pt")
    torch.manual_seed(0)
    model = CWDMModel.create(TINY_NETWORK)
    data = BraTSTrainingSet(tiny_dataset, patch_size=(8, 8, 8), divisor=model.divisor, seed=0)
    CWDMTrainer(model, data, tmp_path / "run", max_steps=0, device="cpu", init_weights=tmp_path / "source.pt").run()
    a, b = source.network.state_dict(), model.network.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert {"event": "initialised", "from": "source.pt", "train_steps": None} in log
    wider = CWDMModel.create({**TINY_NETWORK, "channels": [c * 2 for c in TINY_NETWORK["channels"]]})
    with pytest.raises(InputError, match="has another network"):
        CWDMTrainer(wider, data, tmp_path / "wider", max_steps=1, device="cpu", init_weights=tmp_path / "source.pt")
    from medfusion.apps.seg2med.model import Seg2MedModel

    Seg2MedModel.create(dims=3, tasks=[["prior", "ct"]]).save(tmp_path / "seg2med.pt")
    with pytest.raises(InputError, match="holds a 'seg2med' model"):
        CWDMTrainer(model, data, tmp_path / "other", max_steps=1, device="cpu", init_weights=tmp_path / "seg2med.pt")
    assert not (tmp_path / "wider").exists() and not (tmp_path / "other").exists()  # refused before any output


def test_learning_rate_schedules_closed_form(tmp_path, tiny_dataset):
    model = CWDMModel.create(TINY_NETWORK)
    data = BraTSTrainingSet(tiny_dataset, patch_size=(8, 8, 8), divisor=model.divisor)
    const = CWDMTrainer(model, data, tmp_path, max_steps=100, lr=2e-4, device="cpu")
    assert [const.learning_rate(s) for s in (0, 50, 99)] == [2e-4] * 3
    cos = CWDMTrainer(model, data, tmp_path, max_steps=110, lr=2e-4, lr_schedule="cosine", warmup_steps=10,
                      device="cpu")
    assert cos.learning_rate(0) == pytest.approx(2e-5) and cos.learning_rate(9) == pytest.approx(2e-4)
    assert cos.learning_rate(60) == pytest.approx(1e-4)  # half way through the decay
    assert cos.learning_rate(110) == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="lr_schedule"):
        CWDMTrainer(model, data, tmp_path, lr_schedule="step", device="cpu")


def test_full_volume_training_pads_odd_sizes(tmp_path):
    """patch_size None: whole volumes with odd sizes (as BraTS's 155 slices) are padded to the divisor."""
    from medfusion.phantoms.brain_files import write_brats_dataset

    write_brats_dataset(tmp_path / "odd", 1, shape=(15, 17, 13), seed0=3)
    model = CWDMModel.create(TINY_NETWORK)
    data = BraTSTrainingSet(tmp_path / "odd", patch_size=None, divisor=model.divisor)
    assert tuple(data[0]["image"].shape) == (4, 16, 20, 16)
    record = CWDMTrainer(model, data, tmp_path / "run", max_steps=2, log_every=1, device="cpu").run()
    assert record["step"] == 2 and np.isfinite(record["loss"])


def test_entry_points_take_the_model_first_and_name_the_old_order(tmp_path, tiny_checkpoint, tiny_missing_dataset):
    """synthesize_case(model, case, out) and synthesize_folder(model, folder, out), as every application's entry
    points; the order of earlier versions (case or folder first) ends with a TypeError that says so, writing
    nothing."""
    from medfusion.apps.cwdm import find_case, load_model, synthesize_case, synthesize_folder

    model = load_model(tiny_checkpoint, "cpu")
    case = find_case(sorted(p for p in tiny_missing_dataset.iterdir() if p.is_dir())[0])
    out = synthesize_case(model, case, tmp_path / "one.nii.gz", steps=2, seed=0)
    assert nib.load(out).shape == nib.load(case.inputs()[0]).shape
    written = synthesize_folder(model, tiny_missing_dataset, tmp_path / "all", steps=2, seed=0)
    assert len(written) == 2
    with pytest.raises(TypeError, match="the model comes first"):
        synthesize_case(case, model, tmp_path / "old.nii.gz", steps=2)
    with pytest.raises(TypeError, match="the model comes first"):
        synthesize_folder(tiny_missing_dataset, tmp_path / "old", model, steps=2)
    assert not (tmp_path / "old.nii.gz").exists() and not (tmp_path / "old").exists()


def test_trainer_takes_an_optimizer_and_clips_the_gradient_norm(tmp_path, tiny_dataset):
    """optimizer: any torch optimizer built from the parameters (here plain SGD, as a bundle config's
    ``"_mode_": "callable"`` component gives it); grad_clip_norm: one SGD step at learning rate 1 then moves the weights by
    exactly the clipped gradient, whose global L2 norm is the clip value."""
    import functools

    torch.manual_seed(0)
    model = CWDMModel.create(TINY_NETWORK)
    before = {k: v.detach().clone() for k, v in model.network.named_parameters()}
    data = BraTSTrainingSet(tiny_dataset, patch_size=(8, 8, 8), divisor=model.divisor, seed=0)
    trainer = CWDMTrainer(model, data, tmp_path / "run", max_steps=1, lr=1.0, device="cpu", seed=0, log_every=1,
                          optimizer=functools.partial(torch.optim.SGD, lr=123.0), grad_clip_norm=1e-3)
    trainer.run()
    moved = torch.sqrt(sum(((p.detach() - before[k]) ** 2).sum() for k, p in model.network.named_parameters()))
    assert float(moved) == pytest.approx(1e-3, rel=1e-3)  # the schedule's lr (1), not the one it was built with
    with pytest.raises(ValueError, match="grad_clip_norm"):
        CWDMTrainer(model, data, tmp_path / "bad", grad_clip_norm=-1.0)


@pytest.mark.parametrize("missing", ["t1n", "t2f"])
def test_training_and_inference_give_the_network_the_same_conditions(tiny_checkpoint, tiny_dataset, missing,
                                                                     monkeypatch):
    """The three conditions the sampler receives at inference (files read, normalised, padded to the divisor) are
    exactly those the training Compose gives the loss for that missing contrast (whole volume, no crop)."""
    from medfusion.apps.cwdm import CONTRASTS

    model = load_model(tiny_checkpoint, "cpu")
    image = BraTSTrainingSet(tiny_dataset, divisor=model.divisor, lower=model.lower, upper=model.upper)[0]["image"]
    _, trained = split_missing(image[None], torch.tensor([CONTRASTS.index(missing)]))
    seen = {}

    def capture(batch, class_labels=None, **kwargs):
        seen["conditions"] = batch.clone()
        return torch.zeros((1, 1, *batch.shape[2:]))

    monkeypatch.setattr(model.diffusion, "sample", capture)
    case = list_cases(tiny_dataset, require_missing=False)[0]
    volumes = {c: v.data for c, v in load_case(case).items() if c != missing}
    synthesize(model, volumes, missing, steps=2)
    torch.testing.assert_close(seen["conditions"], trained, rtol=0, atol=1e-6)


def test_the_trainer_takes_its_loss_as_a_component(tmp_path, tiny_dataset):
    """``loss_fn`` (the bundle's ``loss``) is the loss every step computes; without it, cWDM's own."""
    model = CWDMModel.create(TINY_NETWORK)
    data = BraTSTrainingSet(tiny_dataset, patch_size=(8, 8, 8), divisor=model.divisor, seed=0)
    assert CWDMTrainer(model, data, tmp_path / "default", device="cpu").loss_fn is cwdm_loss
    calls = []

    def counted(*args, **kwargs):
        calls.append(1)
        return 2.0 * cwdm_loss(*args, **kwargs)

    CWDMTrainer(model, data, tmp_path / "mine", loss_fn=counted, max_steps=2, device="cpu", log_every=1).run()
    assert len(calls) == 2


# ---- preprocessing and postprocessing: MONAI dictionary transforms that synthesis runs -----------------------
def _bundle_processing(**overrides):
    """The ``preprocessing`` and ``postprocessing`` of the bundle's ``inference.json`` (``overrides``: as the command
    line gives them)."""
    from bundle_helpers import bundle_processing

    return bundle_processing("brats_mri_cwdm", **overrides)


def test_the_bundles_processing_is_the_models_own_and_a_changed_setting_reaches_the_voxels(lively_model,
                                                                                            case_volumes):
    inputs = {c: v for c, v in case_volumes.items() if c != "t2f"}
    assert (lively_model.lower, lively_model.upper, lively_model.background_threshold) == (0.1, 99.9, 0.04)
    default = synthesize(lively_model, inputs, "t2f", steps=2, seed=0)
    pre, post = _bundle_processing()
    np.testing.assert_array_equal(
        synthesize(lively_model, inputs, "t2f", steps=2, seed=0, preprocessing=pre, postprocessing=post), default)

    pre90, _ = _bundle_processing(**{"preprocessing#transforms#0#upper": 90.0})
    renormalised = synthesize(lively_model, inputs, "t2f", steps=2, seed=0, preprocessing=pre90)
    assert renormalised.any() and not np.array_equal(renormalised, default)
    _, post_high = _bundle_processing(**{"postprocessing#transforms#0#threshold": 0.5})
    cut = synthesize(lively_model, inputs, "t2f", steps=2, seed=0, postprocessing=post_high)
    assert np.count_nonzero(cut) < np.count_nonzero(default)
    np.testing.assert_array_equal(cut[cut > 0.5], default[cut > 0.5])


def test_the_predictor_runs_the_processing_it_is_given(lively_model, tiny_missing_dataset):
    from monai.transforms import Compose, Lambdad

    from medfusion.apps.cwdm.files import BraTSFolder, Synthesizer
    from medfusion.apps.cwdm.transforms import inference_postprocessing, inference_preprocessing

    case = BraTSFolder(tiny_missing_dataset).cases()[0]
    data = BraTSFolder.load(case)
    default = Synthesizer(lively_model, steps=2)(data)["image"]
    halved = Compose([*inference_postprocessing(0.04).transforms, Lambdad(keys="pred", func=lambda x: x / 2)])
    predictor = Synthesizer(lively_model, steps=2, preprocessing=inference_preprocessing(0.1, 99.9),
                            postprocessing=halved)
    assert predictor.postprocessing is halved
    np.testing.assert_array_equal(predictor(data)["image"], default / 2)
    with pytest.raises(InputError, match="preprocessing must be a MONAI transform"):
        Synthesizer(lively_model, preprocessing=0.5)


def test_processing_that_breaks_the_contract_is_an_input_error(lively_model, case_volumes):
    from monai.transforms import Compose, Lambdad

    from medfusion.transforms import PercentileNormalized

    inputs = {c: v for c, v in case_volumes.items() if c != "t2f"}
    with pytest.raises(InputError, match="preprocessing: Key `img` .* missing .* keys 'image'"):
        synthesize(lively_model, inputs, "t2f", steps=1, preprocessing=Compose([PercentileNormalized(keys="img")]))
    cropped = Compose([Lambdad(keys="image", func=lambda x: x[:, 1:])])
    with pytest.raises(InputError, match=r"preprocessing must keep 'image' of shape \(3, 20, 24, 18\)"):
        synthesize(lively_model, inputs, "t2f", steps=1, preprocessing=cropped)
    with pytest.raises(InputError, match="postprocessing returned no 'pred' .*'other'"):
        synthesize(lively_model, inputs, "t2f", steps=1, postprocessing=lambda d: {"other": d["pred"]})
    with pytest.raises(InputError, match="postprocessing must return a dict, got ndarray"):
        synthesize(lively_model, inputs, "t2f", steps=1, postprocessing=lambda d: d["pred"])
