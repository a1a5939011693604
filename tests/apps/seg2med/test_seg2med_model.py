"""seg2med model, generation, conversion and training on the core, with tiny random-weight networks.

These check geometry, determinism, task handling, checkpoints and errors — never image quality (the shipped
weights are measured by ``benchmarks/quality/bench_seg2med.py``).
"""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
import torch

from conftest import run_cli
from medfusion.apps.seg2med import tissues
from medfusion.apps.seg2med.files import generate_file
from medfusion.apps.seg2med.inference import convert, from_ras, generate, to_ras
from medfusion.apps.seg2med.model import ALL_TASKS, Seg2MedModel, load_model
from medfusion.cli.main import main
from medfusion.errors import InputError

TINY = {"channels": [8, 16], "norm_num_groups": 8, "num_head_channels": 8}
TOTAL = {name: label for label, name in tissues.class_names("total").items()}


def tiny_model(dims: int, **kwargs) -> Seg2MedModel:
    torch.manual_seed(0)
    return Seg2MedModel.create(TINY, dims=dims, info={"description": "tiny random-weight test model"}, **kwargs)


@pytest.fixture(scope="module")
def tiny_2d_weights(tmp_path_factory):
    path = tmp_path_factory.mktemp("s2m") / "tiny2d.pt"
    tiny_model(2).save(path)
    return str(path)


def labels(shape=(21, 19, 9)):
    lab = np.zeros(shape, dtype=np.int64)
    lab[5:12, 4:10, 2:6] = TOTAL["liver"]
    lab[13:16, 6:9, 1:4] = TOTAL["spleen"]
    lab[9:11, 2:4, :] = TOTAL["vertebrae_L1"]
    return lab


# ---- the model ----------------------------------------------------------------------------------------------------

def test_published_2d_and_full_volume_3d_shapes():
    m2, m3 = tiny_model(2), tiny_model(3)
    assert m2.diffusion.prediction == "epsilon" and m2.diffusion.space.config["kind"] == "identity"
    assert m3.diffusion.prediction == "sample" and m3.diffusion.space.config["kind"] == "haar"
    assert m2.network_config["in_channels"] == 2 and m3.network_config["in_channels"] == 16
    assert m2.network_config["num_class_embeds"] == len(ALL_TASKS)
    assert m2.divisor == 2 and m3.divisor == 4
    assert m2.window("ct") == (-1000.0, 1000.0)  # as published
    assert m2.diffusion.schedule.num_train_timesteps == 1000


def test_residual_3d_model_keeps_the_prior_and_refuses_conversion_tasks(tmp_path):
    gen = [("prior", "ct"), ("prior", "t1")]
    m = tiny_model(3, tasks=gen, residual=True, prediction="v")
    assert m.diffusion.reference == 0
    m.save(tmp_path / "r.pt")
    back = load_model(tmp_path / "r.pt")
    assert back.diffusion.reference == 0 and back.diffusion.prediction == "v"
    assert tiny_model(3).diffusion.reference is None
    with pytest.raises(InputError, match="mask→image tasks only; got ct→t1"):
        tiny_model(3, tasks=gen + [("ct", "t1")], residual=True)


def test_bundle_refuses_weights_trained_with_another_diffusion(tmp_path):
    """The bundle's configs build the diffusion; weights trained with another prediction type or reference channel
    are refused in one line, not silently misused."""
    from medfusion.apps.seg2med.bundle import assemble

    gen = [("prior", "ct")]
    tiny_model(3, tasks=gen, residual=True, prediction="v").save(tmp_path / "r.pt")
    plain = tiny_model(3, tasks=gen)
    with pytest.raises(InputError, match=r"trained with prediction 'v', reference 0 but the configs build "
                                         r"prediction 'sample', reference None") as err:
        assemble(plain.diffusion, str(tmp_path / "r.pt"))
    assert "\n" not in str(err.value)
    same = tiny_model(3, tasks=gen, residual=True, prediction="v")
    assert assemble(same.diffusion, str(tmp_path / "r.pt")).diffusion.reference == 0
    # a "skip" model's sigma_data is part of its diffusion (it scales every x̂₀); other types ignore it
    tiny_model(3, tasks=gen, residual=True, prediction="skip", sigma_data=0.035).save(tmp_path / "s.pt")
    with pytest.raises(InputError, match=r"trained with sigma_data 0.035 but the configs build sigma_data 0.5"):
        assemble(tiny_model(3, tasks=gen, residual=True, prediction="skip").diffusion, str(tmp_path / "s.pt"))
    assert load_model(tmp_path / "s.pt").diffusion.sigma_data == 0.035
    assert assemble(tiny_model(3, tasks=gen, residual=True, prediction="v", sigma_data=0.1).diffusion,
                    str(tmp_path / "r.pt")).diffusion.prediction == "v"
    # the bundle's `windows` overrides one modality's window of the checkpoint's, the rest as saved
    saved = load_model(tmp_path / "r.pt")
    got = assemble(tiny_model(3, tasks=gen, residual=True, prediction="v").diffusion, str(tmp_path / "r.pt"),
                   windows={"t2": [0, 600]})
    assert got.window("t2") == (0.0, 600.0) and got.window("ct") == saved.window("ct")
    assert got.preprocessing["prior_table"] == saved.preprocessing["prior_table"] and got.info == saved.info


def test_one_task_needs_no_class_label():
    m = tiny_model(2, tasks=[("prior", "ct")])
    assert m.network_config["num_class_embeds"] is None and m.class_labels("prior", "ct") is None
    with pytest.raises(InputError, match="not trained for mask→t1; it does mask→ct$"):
        m.class_labels("prior", "t1")
    with pytest.raises(InputError, match="not trained for ct→t1; it does mask→ct .*--model 2d, also converts"):
        m.class_labels("ct", "t1")


@pytest.mark.parametrize("task, match", [(("ct", "ct"), "nothing to convert"), (("prior", "pet"), "unknown target"),
                                         (("xray", "ct"), "unknown source")])
def test_bad_tasks(task, match):
    with pytest.raises(InputError, match=match):
        tiny_model(2, tasks=[task])


def test_windowing_round_trip():
    m = tiny_model(2)
    hu = np.array([-1500.0, -1000.0, 0.0, 500.0, 1000.0, 3000.0], dtype=np.float32)
    n = m.normalize(hu, "ct")
    assert np.allclose(n, [0, 0, 0.5, 0.75, 1, 1])
    assert np.allclose(m.denormalize(n, "ct"), np.clip(hu, -1000, 1000))


def test_checkpoint_round_trip_and_kind(tmp_path, tiny_checkpoint):
    m = tiny_model(3)
    m.save(tmp_path / "m.pt")
    back = load_model(tmp_path / "m.pt")
    assert back.dims == 3 and back.tasks == m.tasks and back.preprocessing == m.preprocessing
    for a, b in zip(m.network.state_dict().values(), back.network.state_dict().values()):
        assert torch.equal(a, b)
    with pytest.raises(InputError, match="'cwdm'"):
        load_model(tiny_checkpoint)  # a cWDM checkpoint is not a seg2med model


# ---- generation and conversion in memory ---------------------------------------------------------------------

@pytest.mark.parametrize("dims", [2, 3])
def test_generate_shapes_air_and_seed(dims):
    m = tiny_model(dims, prediction="epsilon")  # a random x₀-predictor's output is clipped to 0 whatever the seed
    lab = labels()
    body = np.zeros(lab.shape, bool)
    body[3:19, 1:17, :] = True
    a = generate(m, lab, "ct", body=body, steps=3, seed=1)
    b = generate(m, lab, "ct", body=body, steps=3, seed=1)
    c = generate(m, lab, "ct", body=body, steps=3, seed=2)
    assert a.shape == lab.shape and a.dtype == np.float32
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert np.all(a[~body] == -1000) and a.min() >= -1000 and a.max() <= 1000


@pytest.mark.parametrize("dims", [2, 3])
def test_default_sampling(dims):
    """No sampler given: DDIM with uniform timesteps for both models (the shipped weights' measured settings); the
    command's defaults are the same."""
    m = tiny_model(dims, prediction="epsilon")
    lab = labels()
    default = generate(m, lab, "ct", steps=3, seed=1)
    assert np.array_equal(default, generate(m, lab, "ct", steps=3, seed=1, sampler="ddim", timestep_spacing="uniform"))
    from medfusion.apps.seg2med.model import DEFAULT_SAMPLER, DEFAULT_STEPS
    from medfusion.cli.main import build_parser

    args = build_parser().parse_args(["generate", "--mask", "m.nii.gz", "--modality", "ct", "--out", "o.nii.gz"])
    assert (args.steps, args.sampler) == (DEFAULT_STEPS, DEFAULT_SAMPLER) == (20, "ddim")
    for other in ({"sampler": "ddpm"}, {"timestep_spacing": "quadratic"}):
        assert not np.array_equal(default, generate(m, lab, "ct", steps=3, seed=1, **other))
    with pytest.raises(InputError, match="timestep spacing"):
        generate(m, lab, "ct", steps=3, timestep_spacing="cosine")


@pytest.mark.parametrize("via", ["image", "prior"])
def test_convert_ct_to_mr_takes_the_ct_body(via):
    m = tiny_model(2)
    ct = np.full((20, 18, 5), -1000.0, np.float32)
    ct[4:16, 3:15, :] = 40.0
    lab = np.zeros(ct.shape, np.int64)
    lab[6:12, 5:10, :] = 5  # the CT's label map (total: liver)
    out = convert(m, ct, "ct", "t2", via=via, labels=lab if via == "prior" else None, steps=2)
    assert out.shape == ct.shape and np.all(out[ct < -500] == 0) and out.max() <= 800
    with pytest.raises(InputError, match="use generate"):
        convert(m, ct, "prior", "t2")


def test_convert_the_authors_way_is_generation_from_the_mapped_labels():
    """An MR's total_mr label map → the CT prior of the same anatomy → the mask→CT model: the same output as
    generating from the equivalent total map, whatever the MR's intensities; without a label map, one line."""
    from medfusion.apps.seg2med.tissues import class_names

    m = tiny_model(2)
    total_mr = {n: k for k, n in class_names("total_mr").items()}
    lab_mr = np.zeros((20, 18, 5), np.int64)
    lab_mr[4:16, 3:15, :] = total_mr["liver"]
    lab_mr[8:11, 7:10, :] = total_mr["vertebrae"]
    lab_total = np.where(lab_mr == total_mr["vertebrae"], TOTAL["vertebrae_S1"], np.where(lab_mr > 0, TOTAL["liver"], 0))
    body = np.zeros(lab_mr.shape, bool)
    body[2:18, 1:17, :] = True
    t1 = np.random.default_rng(0).random(lab_mr.shape).astype(np.float32) * 100
    via_prior = convert(m, t1, "t1", "ct", labels=lab_mr, body=body, steps=2, seed=3)
    generated = generate(m, lab_total, "ct", body=body, steps=2, seed=3)
    assert np.allclose(via_prior, generated)
    with pytest.raises(InputError, match="needs the t1 image's label map"):
        convert(m, t1, "t1", "ct", body=body, steps=2)


def test_ras_round_trip_for_any_orientation():
    a = np.arange(2 * 3 * 4).reshape(2, 3, 4)
    affine = np.array([[0, 0, -2.0, 0], [1.0, 0, 0, 0], [0, -3.0, 0, 0], [0, 0, 0, 1]])  # axes permuted and flipped
    ras = to_ras(a, affine)
    assert ras.shape == (4, 2, 3)
    assert np.array_equal(from_ras(ras, affine), a)


# ---- files and the command ---------------------------------------------------------------------------------------

def _save(path, data, affine):
    nib.save(nib.Nifti1Image(data, affine), str(path))
    return str(path)


def test_generate_file_is_orientation_independent(tmp_path, tiny_2d_weights):
    """The same anatomy stored RAS and stored with permuted, flipped axes (PLI, made by nibabel) gives the same
    voxels in world space."""
    import nibabel.orientations as nio

    m = load_model(tiny_2d_weights)
    ras = nib.Nifti1Image(labels().astype(np.uint8), np.diag([2.0, 2.0, 4.0, 1.0]))
    to_pli = nio.ornt_transform(nio.axcodes2ornt("RAS"), nio.axcodes2ornt("PLI"))
    pli = ras.as_reoriented(to_pli)
    assert nib.aff2axcodes(pli.affine) == ("P", "L", "I")
    nib.save(ras, str(tmp_path / "ras.nii.gz"))
    nib.save(pli, str(tmp_path / "pli.nii.gz"))
    a = generate_file(m, tmp_path / "ras.nii.gz", "ct", tmp_path / "a.nii.gz", steps=2)
    b = generate_file(m, tmp_path / "pli.nii.gz", "ct", tmp_path / "b.nii.gz", steps=2)
    out_a, out_b = nib.load(a), nib.load(b)
    assert np.allclose(out_b.affine, pli.affine) and out_b.shape == pli.shape
    back = out_b.as_reoriented(nio.ornt_transform(nio.axcodes2ornt("PLI"), nio.axcodes2ornt("RAS")))
    assert np.allclose(back.affine, ras.affine)
    assert np.allclose(back.get_fdata(), out_a.get_fdata(), atol=1e-3)


@pytest.mark.slow
def test_generate_command(tmp_path, tiny_2d_weights):
    lab = labels().astype(np.uint8)
    affine = np.array([[0, -1.5, 0, 30], [1.2, 0, 0, -20], [0, 0, 3.0, 5], [0, 0, 0, 1]])
    mask = _save(tmp_path / "mask.nii.gz", lab, affine)
    out = tmp_path / "ct.nii.gz"
    r = run_cli("generate", "--mask", mask, "--modality", "ct", "--out", out, "--weights", tiny_2d_weights,
                "--steps", "2", "--quiet")
    assert r.returncode == 0, r.stderr
    img = nib.load(str(out))
    assert img.shape == lab.shape and np.allclose(img.affine, affine) and img.get_data_dtype() == np.float32
    # conversion in this process (generation above ran the real command line)
    assert main(["convert", "--image", str(out), "--from", "ct", "--to", "t1", "--out", str(tmp_path / "t1.nii.gz"),
                 "--via", "image", "--weights", str(tiny_2d_weights), "--steps", "2", "--quiet"]) == 0
    assert main(["convert", "--image", str(out), "--from", "ct", "--to", "t2", "--out", str(tmp_path / "t2.nii.gz"),
                 "--mask", mask, "--weights", str(tiny_2d_weights), "--steps", "2", "--quiet"]) == 0
    assert np.allclose(nib.load(str(tmp_path / "t1.nii.gz")).affine, affine)


@pytest.mark.parametrize("case", ["same_modality", "exists", "bad_labels", "body_grid", "nan_image", "4d", "no_mask",
                                  "mask_grid"])
def test_generate_and_convert_bad_input(tmp_path, tiny_2d_weights, case, capsys):
    affine = np.diag([2.0, 2.0, 3.0, 1.0])
    lab = labels().astype(np.float32)
    out = tmp_path / "out.nii.gz"
    args = ["generate", "--mask", _save(tmp_path / "m.nii.gz", lab, affine), "--modality", "ct"]
    if case == "same_modality":
        args = ["convert", "--image", args[2], "--from", "t1", "--to", "t1"]
    elif case == "exists":
        out.write_bytes(b"keep")
    elif case == "bad_labels":
        lab[0, 0, 0] = 0.5
        args[2] = _save(tmp_path / "bad.nii.gz", lab, affine)
    elif case == "body_grid":
        args += ["--body", _save(tmp_path / "b.nii.gz", np.ones((4, 4, 4), np.uint8), affine)]
    elif case == "nan_image":
        img = np.zeros(lab.shape, np.float32)
        img[1, 1, 1] = np.nan
        args = ["convert", "--image", _save(tmp_path / "nan.nii.gz", img, affine), "--from", "ct", "--to", "t2"]
    elif case == "4d":
        args[2] = _save(tmp_path / "4d.nii.gz", np.stack([lab, lab], -1), affine)
    elif case in ("no_mask", "mask_grid"):  # the authors' way needs the source's label map, on the image's grid
        img = _save(tmp_path / "t1.nii.gz", np.random.default_rng(0).random(lab.shape).astype(np.float32), affine)
        args = ["convert", "--image", img, "--from", "t1", "--to", "ct"]
        if case == "mask_grid":
            args += ["--mask", _save(tmp_path / "m2.nii.gz", lab[:-1], affine), "--task", "total"]
    capsys.readouterr()
    rc = main([*args, "--out", str(out), "--weights", tiny_2d_weights, "--steps", "2", "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and err.startswith(f"medfusion {args[0]}: error:"), err
    assert (out.read_bytes() == b"keep") if case == "exists" else not out.exists()


# ---- training ---------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_abdomen(tmp_path_factory):
    from medfusion.phantoms.abdomen import write_abdomen_dataset

    out = tmp_path_factory.mktemp("abdomen")
    write_abdomen_dataset(out, 2, shape=(24, 20, 12), seed0=3)
    return out


@pytest.mark.parametrize("dropout", [0.0, 1.0])
def test_training_set_channels(tiny_abdomen, dropout):
    """The six training channels are the prior images (the model's table, with the case's tissue map or — dropped —
    without it) and the images of the case, windowed as the model windows: a prior by its prior window."""
    from medfusion.apps.seg2med.prior import make_prior
    from medfusion.apps.seg2med.train import Seg2MedTrainingSet
    from medfusion.io import load_volume

    m = tiny_model(3)
    assert m.prior_table == "seg2med" and m.prior_window("t2") == (0.0, 28.0) and m.prior_window("ct") == m.window("ct")
    data = Seg2MedTrainingSet.for_model(m, tiny_abdomen, tissue_dropout=dropout, cache=False)
    item = data[0]["image"].numpy()
    assert item.shape == (6, 24, 20, 12)  # 3D, whole volume, already a multiple of the divisor (4)
    case = data.items[0]
    mask, body = np.rint(load_volume(case["mask"]).data).astype(int), load_volume(case["body"]).data > 0
    tissues = None if dropout else np.rint(load_volume(case["tissues"]).data).astype(int)
    ct = load_volume(case["ct"]).data
    for channel, modality in ((0, "ct"), (2, "t2")):
        prior = make_prior(mask, modality, body=body, tissues=tissues, table="seg2med")
        assert np.allclose(item[channel], m.normalize_prior(prior, modality), atol=1e-6)
    assert np.allclose(item[3], m.normalize(ct, "ct"), atol=1e-6)
    slices = Seg2MedTrainingSet.for_model(tiny_model(2), tiny_abdomen, cache=False)
    assert slices[1]["image"].shape == (6, 24, 20, 1)


def test_loss_small_t_emphasis_reaches_the_diffusion(tiny_abdomen, monkeypatch):
    """The trainer's small_t_fraction / small_t_max decide the loss's timesteps; 0 leaves the core's uniform draw."""
    from medfusion.apps.seg2med.train import Seg2MedTrainer, Seg2MedTrainingSet

    m = tiny_model(3)
    data = Seg2MedTrainingSet.for_model(m, tiny_abdomen, patch_size=(8, 8, 8), cache=False)
    seen = []
    forward = m.diffusion.forward_train

    def record(*args, **kwargs):
        out = forward(*args, **kwargs)
        seen.append(out.timesteps)
        return out

    monkeypatch.setattr(m.diffusion, "forward_train", record)
    batch = {"image": torch.stack([data[i]["image"] for i in range(2)] * 16)}
    for fraction in (0.0, 1.0):
        trainer = Seg2MedTrainer(m, data, "unused", small_t_fraction=fraction, small_t_max=3, max_steps=1,
                                 device="cpu")
        loss = trainer.loss_fn(m, batch, generator=torch.Generator().manual_seed(0), device="cpu",
                               precision="float32")
        assert torch.isfinite(loss) and seen[-1].shape == (32,)
    assert seen[0].max() >= 3 and seen[1].max() < 3  # uniform over [0, 1000) vs all in [0, 3)


@pytest.mark.parametrize("dims", [2, 3])
def test_trainer_runs_and_saves(tmp_path, tiny_abdomen, dims):
    from medfusion.apps.seg2med.train import Seg2MedTrainer, Seg2MedTrainingSet

    m = tiny_model(dims)
    data = Seg2MedTrainingSet.for_model(m, tiny_abdomen, patch_size=(8, 8, 8) if dims == 3 else None)
    before = [p.detach().clone() for p in m.network.parameters()]
    trainer = Seg2MedTrainer(m, data, tmp_path / "run", val_dir=tiny_abdomen, val_cases=1, val_sampling_steps=2,
                             max_steps=3, batch_size=2, lr=1e-3, val_every=3, log_every=1, device="cpu")
    record = trainer.run()
    assert record["step"] == 3 and np.isfinite(record["best"])
    assert any(not torch.equal(a, b) for a, b in zip(before, m.network.parameters()))
    log = [line for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines() if "val_ssim" in line]
    assert len(log) == 1
    back = load_model(tmp_path / "run" / "model.pt")
    assert back.dims == dims and back.info["train_steps"] == 3


def test_organ_errors_are_organ_means_minus_the_authors_values():
    """Soft-tissue organs of at least 50 voxels: the CT's mean over the organ minus the authors' value (liver 50 HU,
    spleen 40 HU); a vertebra (not soft tissue) and an organ of fewer voxels are left out."""
    from medfusion.apps.seg2med.evaluation import organ_errors

    lab = labels()
    lab[13:18, 6:11, 1:4] = TOTAL["spleen"]  # 75 voxels
    lab[0:2, 0:2, 0:2] = TOTAL["kidney_left"]  # 8 voxels
    ct = np.zeros(lab.shape, np.float32)
    ct[lab == TOTAL["liver"]] = 50.0 + np.linspace(0.0, 60.0, int((lab == TOTAL["liver"]).sum()))  # mean 80
    ct[lab == TOTAL["spleen"]] = 10.0
    errors = organ_errors(tiny_model(2), ct, lab)
    assert errors.keys() == {"liver", "spleen"}
    assert errors["liver"] == pytest.approx(30.0, abs=1e-4) and errors["spleen"] == pytest.approx(-30.0)


def test_validation_by_organ_means_chooses_model_pt_and_keeps_every_step(tmp_path, tiny_abdomen):
    """With an organ tolerance the validation adds the worst organ's distance from the prior (CT from each case's
    label map) and scores SSIM less 0.01 per HU beyond the tolerance; model.pt holds the best of those scores and
    keep_validated leaves every validated network, with its own score."""
    from medfusion.apps.seg2med.cases import case_datalist, load_case
    from medfusion.apps.seg2med.evaluation import organ_errors
    from medfusion.apps.seg2med.train import Seg2MedTrainer, Seg2MedTrainingSet

    m = tiny_model(2)
    data = Seg2MedTrainingSet.for_model(m, tiny_abdomen)
    trainer = Seg2MedTrainer(m, data, tmp_path / "run", val_dir=tiny_abdomen, val_cases=1, val_sampling_steps=2,
                             val_organ_tolerance_hu=50, keep_validated=True, max_steps=4, batch_size=2, lr=1e-3,
                             val_every=2, log_every=2, device="cpu")
    trainer.run()
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    scores = {r["step"]: r for r in log if "val_score" in r}
    assert sorted(scores) == [2, 4]
    for step, r in scores.items():
        assert r["val_score"] == pytest.approx(r["val_ssim"] - max(0.0, r["val_organ_hu"] - 50) / 100)
        kept = load_model(tmp_path / "run" / f"model_step{step}.pt")
        assert kept.info["train_steps"] == step and kept.info["val_score"] == pytest.approx(r["val_score"])
    case = load_case(case_datalist(tiny_abdomen)[0])
    ct = generate(kept, case["labels"], "ct", body=case["body"], spacing=case["spacing"], steps=2, sampler="ddim",
                  seed=0)
    errors = organ_errors(kept, ct, case["labels"])
    assert errors and scores[4]["val_organ_hu"] == pytest.approx(max(abs(v) for v in errors.values()), rel=1e-5)
    best = load_model(tmp_path / "run" / "model.pt")
    assert best.info["best_val_score"] == pytest.approx(max(r["val_score"] for r in scores.values()))


def test_training_and_inference_give_the_network_the_same_prior(tmp_path, monkeypatch):
    """The prior image the slice model gets at inference (the label map on the model's grid and window) is what the
    training Compose gives the loss for the same case (tissue map dropped, whole volume)."""
    from medfusion.apps.seg2med import inference
    from medfusion.apps.seg2med.cases import case_datalist, load_case
    from medfusion.apps.seg2med.transforms import CHANNELS, training_preprocessing
    from medfusion.phantoms.abdomen import write_abdomen_dataset

    write_abdomen_dataset(tmp_path, 1, shape=(96, 96, 8), seed0=3)
    model = tiny_model(2, spacing=(4.1667, 4.1667), size=(96, 96))
    item = case_datalist(tmp_path)[0]
    trained = training_preprocessing(model.preprocessing, dims=3, divisor=1, has_body=True, has_tissues=True,
                                     tissue_dropout=1.0)(item)["image"][CHANNELS.index("prior_ct")].numpy()
    seen = {}

    def capture(model, condition, source, target, **kwargs):
        seen["prior"] = np.array(condition)
        return np.zeros_like(condition)

    monkeypatch.setattr(inference, "translate", capture)
    case = load_case(item)
    inference.generate(model, case["labels"], "ct", body=case["body"], spacing=case["spacing"], steps=2)
    assert seen["prior"].shape == trained.shape
    np.testing.assert_allclose(seen["prior"], trained, atol=1e-6)
