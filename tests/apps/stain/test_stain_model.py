"""StainDiffuser model, network, tiled translation and the U-Net baseline, with tiny networks.

These check the architecture's contracts, geometry, determinism, checkpoints and errors — never image quality (the
shipped weights are measured by the benchmark)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medfusion.apps.stain.baseline import UNetBaseline, baseline_loss
from medfusion.apps.stain.inference import cell_labels, translate
from medfusion.apps.stain.model import StainModel, load_model, stain_loss, unit_to_rgb
from medfusion.apps.stain.transforms import scaled
from medfusion.errors import InputError

TINY = {"channels": [8, 16], "norm_num_groups": 8, "num_head_channels": 8}


def tiny(tasks=("ihc", "cells"), tile=16, **kwargs) -> StainModel:
    torch.manual_seed(0)
    return StainModel.create(TINY, tasks=tasks, encoder_channels=8, tile=tile, **kwargs)


def batch(size=16, n=2, seed=0) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {"he": torch.rand(n, 3, size, size, generator=g) * 2 - 1,
            "ihc": torch.rand(n, 3, size, size, generator=g) * 2 - 1,
            "cells": (torch.rand(n, 1, size, size, generator=g) > 0.6).float() * 3}


# ---- network and model -----------------------------------------------------------------------------------------
def test_branches_interact_only_through_the_shared_encoder():
    m = tiny()
    net = m.network.eval()
    assert net.split == [12, 4] and m.diffusion.target_channels == 4  # Haar: 4 sub-bands per image channel
    x = torch.randn(1, 16 + 12, 8, 8)
    t = torch.tensor([10])
    with torch.no_grad():  # zero-initialised output layers: make the branches respond before comparing
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.05)
        out = net(x, t)
        y = x.clone()
        y[:, 12:16] += 1.0  # change only the noisy cell mask
        out2 = net(y, t)
        z = x.clone()
        z[:, 16:] += 1.0  # change the H&E
        out3 = net(z, t)
    assert out.shape == (1, 16, 8, 8)
    torch.testing.assert_close(out2[:, :12], out[:, :12])  # the IHC branch does not see the cell branch's input
    assert not torch.allclose(out2[:, 12:], out[:, 12:])
    assert not torch.allclose(out3[:, :12], out[:, :12]) and not torch.allclose(out3[:, 12:], out[:, 12:])


@pytest.mark.parametrize("tasks, channels", [(("ihc", "cells"), 4), (("ihc",), 3), (("cells",), 1)])
def test_single_task_variants_and_checkpoint_round_trip(tmp_path, tasks, channels):
    m = tiny(tasks)
    assert m.tasks == tasks and m.diffusion.target_channels == channels and m.divisor == 4
    b = batch()
    target = m.targets(b["ihc"], b["cells"])
    assert target.shape[1] == channels
    if "cells" in tasks:
        assert set(torch.unique(m.split(target)["cells"]).tolist()) == {-1.0, 1.0}
    m.save(tmp_path / "m.pt")
    back = load_model(tmp_path / "m.pt")
    assert back.tasks == tasks and back.tile == 16
    for a, c in zip(m.network.state_dict().values(), back.network.state_dict().values()):
        torch.testing.assert_close(a, c)


def test_create_refuses_bad_tasks_and_tiles():
    with pytest.raises(InputError, match="tasks must be one of"):
        tiny(("cells", "ihc"))
    with pytest.raises(InputError, match="tile must be a positive multiple of 4"):
        tiny(tile=18)
    with pytest.raises(InputError, match="need ihc"):
        tiny().targets(None, torch.zeros(1, 1, 4, 4))


def test_rgb_unit_round_trip_is_exact_for_every_8_bit_value():
    rgb = np.stack(np.meshgrid(np.arange(256), np.arange(3), indexing="ij"), -1)[..., :1].repeat(3, -1)
    rgb = rgb.astype(np.uint8)  # (256, 3, 3): every value in every channel
    x = scaled(rgb)
    assert x.shape == (3, 256, 3) and x.min() == -1.0 and x.max() == 1.0
    np.testing.assert_array_equal(unit_to_rgb(x), rgb)


@pytest.mark.slow
@pytest.mark.parametrize("tasks", [("ihc", "cells"), ("cells",)])
def test_stain_loss_trains(tasks):
    m = tiny(tasks)
    b = batch()
    opt = torch.optim.Adam(m.network.parameters(), lr=3e-3)
    losses = []
    for _ in range(15):
        loss = stain_loss(m, b, generator=torch.Generator().manual_seed(0), device="cpu", precision="float32")
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.isfinite(losses).all() and losses[-1] < 0.8 * losses[0]


# ---- translation -----------------------------------------------------------------------------------------------
class _CopyHE(torch.nn.Module):
    """A perfect x₀-predictor of 'IHC = the H&E' and 'cells = where the H&E's red channel is dark'."""

    def __init__(self, space) -> None:
        super().__init__()
        self.space = space
        self.dummy = torch.nn.Parameter(torch.zeros(()))

    def forward(self, x, t, class_labels=None):
        he = self.space.decode(x[:, 16:])
        cells = (he[:, :1] < 0).float() * 2 - 1
        return self.space.encode(torch.cat([he, cells], 1))


def copy_model(tile=16) -> StainModel:
    m = tiny(tile=tile)
    m.diffusion.network = _CopyHE(m.diffusion.space)
    return m


@pytest.mark.parametrize("shape, tile, overlap", [((16, 16), None, None), ((13, 21), 32, None),
                                                  ((45, 67), 16, 4), ((40, 33), 16, 0)])
def test_translate_whole_and_tiled_keeps_geometry(shape, tile, overlap):
    """With a network that copies the H&E, whole-image and tiled outputs give the H&E back, any size."""
    rng = np.random.default_rng(1)
    he = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    out = translate(copy_model(), he, steps=3, tile=tile, overlap=overlap)
    assert out["ihc"].shape == he.shape and out["ihc"].dtype == np.uint8
    assert np.abs(out["ihc"].astype(int) - he).max() <= 1
    np.testing.assert_array_equal(out["cell_probability"] > 0.5, he[..., 0] < 127.5)
    assert out["cells"].shape == shape and out["cells"].dtype == np.uint16


def test_translate_is_seeded_and_checks_its_input():
    m = tiny()
    he = np.random.default_rng(0).integers(0, 256, (20, 24, 3), dtype=np.uint8)
    a, b = translate(m, he, steps=2, seed=3), translate(m, he, steps=2, seed=3)
    np.testing.assert_array_equal(a["ihc"], b["ihc"])
    with pytest.raises(InputError, match="8-bit RGB"):
        translate(m, he[..., 0], steps=2)
    with pytest.raises(InputError, match="smaller than the network's minimum 4×4"):
        translate(m, he[:3], steps=2)
    with pytest.raises(InputError, match="--overlap must be from 0 to less than --tile"):
        translate(m, he, steps=2, tile=16, overlap=16)
    with pytest.raises(InputError, match="--tile must be a positive multiple of 4"):
        translate(m, he, steps=2, tile=10)


def test_cell_labels_split_touching_nuclei_and_drop_specks():
    yy, xx = np.mgrid[:40, :60]
    prob = np.zeros((40, 60), np.float32)
    prob[(yy - 20) ** 2 + (xx - 20) ** 2 < 64] = 1  # two touching disks
    prob[(yy - 20) ** 2 + (xx - 34) ** 2 < 64] = 1
    prob[2:4, 55:57] = 1  # a 4-pixel speck
    labels = cell_labels(prob, min_area=6)
    assert labels.dtype == np.uint16 and labels.max() == 2
    assert labels[20, 20] != labels[20, 34] and labels[2, 55] == 0
    assert not cell_labels(np.zeros((8, 8))).any()


# ---- the U-Net baseline ----------------------------------------------------------------------------------------
def test_unet_baseline_trains_saves_and_translates(tmp_path):
    torch.manual_seed(0)
    m = UNetBaseline.create({"channels": [8, 16], "strides": [2]}, tile=16)
    assert m.divisor == 2
    b = batch()
    opt = torch.optim.Adam(m.network.parameters(), lr=3e-3)
    first = None
    for _ in range(15):
        loss = baseline_loss(m, b, generator=None, device="cpu", precision="float32")
        opt.zero_grad()
        loss.backward()
        opt.step()
        first = loss.item() if first is None else first
    assert loss.item() < 0.8 * first
    m.save(tmp_path / "u.pt")
    back = UNetBaseline.load(tmp_path / "u.pt")
    he = np.random.default_rng(0).integers(0, 256, (21, 35, 3), dtype=np.uint8)
    out, again = translate(m, he, tile=16, overlap=4), translate(back, he, tile=16, overlap=4)
    np.testing.assert_array_equal(out["ihc"], again["ihc"])
    assert out["ihc"].shape == he.shape and out["cells"].shape == he.shape[:2]
    with pytest.raises(InputError, match="holds a 'stain-unet' model, not a 'stain' model"):
        load_model(tmp_path / "u.pt")


# ---- training ----------------------------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("which", ["diffusion", "baseline"])
def test_trainer_runs_on_phantom_tiles_and_validates(tmp_path, which):
    from medfusion.phantoms.histology import write_tissue_dataset
    from medfusion.apps.stain.train import StainTrainer, StainTrainingSet
    from medfusion.core.checkpoint import load_checkpoint

    write_tissue_dataset(tmp_path / "train", 2, shape=(40, 36), seed0=0)
    write_tissue_dataset(tmp_path / "val", 1, shape=(33, 35), seed0=100)
    torch.manual_seed(0)
    model = tiny() if which == "diffusion" else UNetBaseline.create({"channels": [8, 16], "strides": [2]}, tile=16)
    data = StainTrainingSet.for_model(model, tmp_path / "train")
    item = data[0]
    assert item["he"].shape == (3, 16, 16) and item["cells"].shape == (1, 16, 16)
    assert -1.0 <= float(item["ihc"].min()) and float(item["ihc"].max()) <= 1.0
    StainTrainer(model, data, tmp_path / "run", val_dir=tmp_path / "val", val_cases=1, val_sampling_steps=2,
                 max_steps=3, batch_size=2, lr=1e-3, val_every=3, log_every=1, device="cpu").run()
    ckpt = load_checkpoint(tmp_path / "run" / "model.pt")
    assert ckpt.info["train_steps"] == 3 and 0.0 <= ckpt.info["best_val_score"] <= 1.0
    assert ckpt.kind == ("stain" if which == "diffusion" else "stain-unet")


def test_tile_edges_are_where_monai_sliding_window_changes_tiles_and_seam_ratio_finds_seams():
    """Tiles that each return their own constant, blended with constant weights: the output changes only at the
    edges tile_edges lists, and seam_ratio is large there; a smooth image has a seam ratio near 1."""
    from medfusion.apps.stain.inference import tile_edges
    from medfusion.core.inference import sliding_window
    from medfusion.metrics.image import seam_ratio

    g = torch.Generator().manual_seed(0)
    out = sliding_window(lambda b: torch.rand(b.shape[0], 1, 1, 1, generator=g).expand(-1, 1, *b.shape[2:]).clone(),
                         torch.zeros(1, 70, 53), (16, 16), overlap=4 / 16, batch_size=3, mode="constant")[0].numpy()
    rows, cols = tile_edges(70, 16, 4), tile_edges(53, 16, 4)
    assert rows[:3] == [12, 16, 24]  # tiles start every 16 − 4 pixels
    changed_rows = {k for k in range(1, 70) if np.abs(out[k] - out[k - 1]).max() > 1e-6}
    changed_cols = {k for k in range(1, 53) if np.abs(out[:, k] - out[:, k - 1]).max() > 1e-6}
    assert changed_rows and changed_rows <= set(rows) and changed_cols and changed_cols <= set(cols)
    yy, xx = np.mgrid[:70, :53]
    smooth = np.sin(yy / 7.0) + np.cos(xx / 5.0)
    assert seam_ratio(out + 0.01 * smooth, rows, cols) > 10
    assert abs(seam_ratio(smooth, rows, cols) - 1) < 0.2
    assert tile_edges(16, 16, 4) == []


def test_heldout_evaluation_scores_models_and_references_through_medfusion_metrics(tmp_path):
    """A model that copies the H&E scores exactly as the 'H&E as IHC' reference; Dice and PSNR match
    independent computations (scikit-image's PSNR, a direct Dice)."""
    import json

    from skimage.metrics import peak_signal_noise_ratio

    from medfusion.apps.stain.evaluation import evaluate_heldout
    from medfusion.apps.stain.images import load_labels
    from medfusion.phantoms.histology import write_tissue_dataset
    from medfusion.io import load_rgb

    write_tissue_dataset(tmp_path / "test", 2, shape=(40, 36), seed0=7)
    out = evaluate_heldout({"copy": copy_model()}, tmp_path / "test", steps=2, report=tmp_path / "r.json")
    m, ref = out["models"]["copy"], out["models"]["he_as_ihc"]
    assert out["n_cases"] == 2 and set(out["models"]) == {"copy", "he_as_ihc", "haematoxylin_as_ihc",
                                                          "haematoxylin_watershed"}
    assert abs(m["ihc"]["psnr"] - ref["ihc"]["psnr"]) < 0.2 and abs(m["ihc"]["ssim"] - ref["ihc"]["ssim"]) < 0.01
    case = tmp_path / "test" / "STAIN-PHANTOM-00000"
    he, ihc = load_rgb(case / "he.png"), load_rgb(case / "ihc.png")
    assert ref["ihc"]["per_case"][0]["psnr"] == pytest.approx(peak_signal_noise_ratio(ihc, he, data_range=255))
    cells = load_labels(case / "cells.png") > 0
    from medfusion.apps.stain.data import nuclei_labels

    pred = nuclei_labels(he) > 0
    expected = 2 * (pred & cells).sum() / (pred.sum() + cells.sum())
    watershed = out["models"]["haematoxylin_watershed"]["cells"]
    assert watershed["per_case"][0]["dice"] == pytest.approx(expected)
    from medfusion.metrics import aji, panoptic_quality

    assert watershed["per_case"][0]["aji"] == pytest.approx(aji(nuclei_labels(he), load_labels(case / "cells.png")))
    assert watershed["per_case"][0]["pq"] == pytest.approx(
        panoptic_quality(nuclei_labels(he), load_labels(case / "cells.png"))["pq"])
    from medfusion.apps.stain.data import haematoxylin_as_ihc

    rendered = out["models"]["haematoxylin_as_ihc"]["ihc"]["per_case"][0]["psnr"]
    assert rendered == pytest.approx(peak_signal_noise_ratio(ihc, haematoxylin_as_ihc(he), data_range=255))
    assert json.loads((tmp_path / "r.json").read_text())["n_cases"] == 2


def test_the_cli_loads_either_model_by_its_kind_and_refuses_others(tmp_path):
    from medfusion.apps.seg2med.model import Seg2MedModel
    from medfusion.apps.stain.cli import load_translator

    tiny().save(tmp_path / "d.pt")
    UNetBaseline.create({"channels": [8, 16], "strides": [2]}, tile=16).save(tmp_path / "u.pt")
    assert isinstance(load_translator(str(tmp_path / "d.pt")), StainModel)
    assert isinstance(load_translator(str(tmp_path / "u.pt")), UNetBaseline)
    Seg2MedModel.create({"channels": [8, 16], "norm_num_groups": 8, "num_head_channels": 8}).save(tmp_path / "s.pt")
    with pytest.raises(InputError, match="holds a 'seg2med' model, not one of 'stain', 'stain-unet'"):
        load_translator(str(tmp_path / "s.pt"))


def test_training_and_inference_give_the_network_the_same_h_and_e(tmp_path, monkeypatch):
    """An H&E tile read from its file for inference reaches the sampler exactly as the training Compose's loader
    gives it to the loss (RGB scaled to [−1, 1] the same way), before crops and flips."""
    from medfusion.apps.stain.files import stain_file
    from medfusion.apps.stain.transforms import LoadStainCased
    from medfusion.phantoms.histology import write_tissue_dataset

    model = tiny(tile=32)
    folder = write_tissue_dataset(tmp_path / "tiles", 1, shape=(32, 32), seed0=3)[0]
    trained = LoadStainCased()({"he": f"{folder}/he.png", "ihc": f"{folder}/ihc.png", "cells": f"{folder}/cells.png"})
    seen = {}

    def capture(batch, **kwargs):
        seen["he"] = batch.clone()
        return torch.zeros((batch.shape[0], 4, *batch.shape[2:]))

    monkeypatch.setattr(model.diffusion, "sample", capture)
    stain_file(model, f"{folder}/he.png", str(tmp_path / "ihc.png"), steps=2)
    torch.testing.assert_close(seen["he"][0], trained["he"], rtol=0, atol=1e-6)


# ---- preprocessing and postprocessing: MONAI dictionary transforms that translation runs ---------------------
def bundle_processing(**overrides):
    """The ``preprocessing`` and ``postprocessing`` of the bundle's ``inference.json`` (``overrides``: as the command
    line gives them)."""
    from bundle_helpers import bundle_processing

    return bundle_processing("he_to_ihc_staindiffuser", **overrides)


def _same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_the_bundles_processing_is_the_models_own_and_a_changed_setting_reaches_the_pixels():
    from monai.transforms import Compose, Lambdad

    he = np.random.default_rng(4).integers(0, 256, (20, 24, 3), dtype=np.uint8)
    pre, post = bundle_processing()
    for model in (tiny(), copy_model()):
        default = translate(model, he, steps=2, seed=3)
        _same(translate(model, he, steps=2, seed=3, preprocessing=pre, postprocessing=post), default)
    np.testing.assert_array_equal(pre({"image": np.moveaxis(he, -1, 0).astype(np.float32)})["image"],
                                  scaled(he))  # the one scaling: training reads its images with it

    default = translate(copy_model(), he, steps=2)  # the network copies the H&E: IHC = H&E
    pre300, _ = bundle_processing(**{"preprocessing#transforms#0#a_max": 300.0})
    darker = translate(copy_model(), he, steps=2, preprocessing=pre300)
    assert np.abs(darker["ihc"].astype(int) - np.rint(he.astype(float) * 255 / 300)).max() <= 1
    assert not np.array_equal(darker["ihc"], default["ihc"])
    inverted = translate(copy_model(), he, steps=2, postprocessing=Compose([Lambdad(keys="pred", func=lambda p: -p)]))
    assert np.abs(inverted["ihc"].astype(int) - (255 - default["ihc"].astype(int))).max() <= 1
    np.testing.assert_array_equal(inverted["cell_probability"], 1 - default["cell_probability"])


def test_the_baseline_and_the_predictor_run_the_processing_they_are_given(tmp_path):
    from monai.transforms import Compose, Lambdad

    from medfusion.apps.stain.files import Translator
    from medfusion.apps.stain.images import save_rgb

    torch.manual_seed(0)
    unet = UNetBaseline.create({"channels": [8, 16], "strides": [2]}, tile=16)
    he = np.random.default_rng(5).integers(0, 256, (16, 20, 3), dtype=np.uint8)
    pre, post = bundle_processing()
    _same(translate(unet, he, preprocessing=pre, postprocessing=post), translate(unet, he))
    pre300, _ = bundle_processing(**{"preprocessing#transforms#0#a_max": 300.0})
    assert not np.array_equal(translate(unet, he, preprocessing=pre300)["ihc"], translate(unet, he)["ihc"])

    path = save_rgb(tmp_path / "he.png", he)
    inverted = Compose([Lambdad(keys="pred", func=lambda p: -p)])
    predictor = Translator(copy_model(), steps=2, preprocessing=pre300, postprocessing=inverted)
    assert predictor.processing == {"preprocessing": pre300, "postprocessing": inverted}
    _same(predictor({"path": str(path), "stream": False}),
          translate(copy_model(), he, steps=2, preprocessing=pre300, postprocessing=inverted))
    with pytest.raises(InputError, match="preprocessing must be a MONAI transform"):
        Translator(copy_model(), preprocessing=[pre300])
    with pytest.raises(InputError, match=r"preprocessing must keep 'image' of shape \(3, 16, 20\)"):
        translate(unet, he, preprocessing=Compose([Lambdad(keys="image", func=lambda x: x[:1])]))
