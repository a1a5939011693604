"""What every medfusion bundle promises, checked the same way for all four: the model zoo's layout, metadata that
verifies against MONAI's schema offline and whose version has a changelog entry, configs that parse (each override
merged onto its base, as ``--config_file "['configs/train.json','configs/X.json']"`` merges them) with every
``_target_`` a medfusion callable (or a MONAI transform) that takes the component's arguments, pre- and
post-processing that are ``Compose`` lists the predictor runs (cWDM, PET/CT, stain, seg2med), shipped weights that load as data
(``weights_only``), and a data licence that names the data.

Each bundle's own test module runs its commands for real (train, inference, evaluation, DDP); the shared
helpers are in ``bundle_helpers``.
"""

from __future__ import annotations

import json

import pytest

from bundle_helpers import check_components, verify_metadata_in_process
from conftest import REPO

BUNDLES = ["brats_mri_cwdm", "totalseg_mask_to_ct_mr", "hecktor_petct_diffseg", "he_to_ihc_staindiffuser"]


def _base(name: str) -> list[str]:
    """The config an override is merged onto: train.json for training variants, inference.json for the others."""
    if name in ("train.json", "inference.json"):
        return []
    return ["train.json"] if name.startswith(("train", "multi_gpu")) else ["inference.json"]


def _configs():
    for bundle in BUNDLES:
        for path in sorted((REPO / "bundles" / bundle / "configs").glob("*.json")):
            if path.name != "metadata.json":
                yield bundle, path.name


def test_every_bundle_is_listed():
    assert sorted(p.name for p in (REPO / "bundles").iterdir() if p.is_dir()) == sorted(BUNDLES)


@pytest.mark.parametrize("bundle", BUNDLES)
def test_layout_of_the_model_zoo(bundle):
    root = REPO / "bundles" / bundle
    for f in ("configs/metadata.json", "configs/inference.json", "configs/train.json", "configs/logging.conf",
              "docs/README.md", "docs/data_license.txt", "models/model.pt", "LICENSE"):
        assert (root / f).is_file(), f"{bundle}: {f} is missing"


@pytest.mark.slow
@pytest.mark.parametrize("bundle", BUNDLES)
def test_metadata_verifies_offline_and_its_version_has_a_changelog_entry(bundle):
    verify_metadata_in_process(f"bundles/{bundle}")
    meta = json.loads((REPO / "bundles" / bundle / "configs" / "metadata.json").read_text())
    assert meta["version"] in meta["changelog"], f"{bundle}: no changelog entry for {meta['version']}"


@pytest.mark.parametrize("bundle, name", list(_configs()), ids=lambda v: v)
def test_config_parses_and_every_target_resolves(bundle, name):
    from monai.bundle import ConfigParser

    files = [REPO / "bundles" / bundle / "configs" / n for n in _base(name) + [name]]
    parser = ConfigParser()
    parser.read_config([str(f) for f in files])
    parser.parse()
    assert parser.get("run") is not None, f"{bundle}/{name}: a bundle config needs a `run` key"
    assert parser.get_parsed_content("bundle_root") == "."
    for f in files:
        for imp in ConfigParser.load_config_file(str(f)).get("imports", []):
            assert imp == "$import torch" or "medfusion" in imp, f"{bundle}/{f.name}: unexpected import {imp!r}"
    check_components(parser.get(), f"{bundle}/{name}")


@pytest.mark.parametrize("bundle", BUNDLES)
def test_shipped_weights_load_as_data(bundle):
    """Every file in models/ is a medfusion checkpoint that ``torch.load(weights_only=True)`` reads, with its
    provenance (``info``: what it is and what it was trained on)."""
    import torch

    for path in sorted((REPO / "bundles" / bundle / "models").glob("*.pt")):
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        assert ckpt["format"].startswith("medfusion.checkpoint/"), path.name
        assert ckpt["info"].get("description") and ckpt["info"].get("training_data"), f"{bundle}/{path.name}"


@pytest.mark.parametrize("bundle", BUNDLES)
def test_data_licence_names_the_data(bundle):
    text = (REPO / "bundles" / bundle / "docs" / "data_license.txt").read_text().lower()
    assert "medfusion phantoms" in text or "phantom" in text, bundle


@pytest.mark.parametrize("bundle", BUNDLES)
def test_inference_is_composed_of_components_a_user_swaps_from_the_command_line(bundle):
    """``run`` is core's runner over the bundle's ``dataset``, ``predictor`` (the model and its ``inferer``) and
    ``saver``; the sampler's settings live in the inferer, and overriding them (as ``--inferer#steps 3`` does) or
    the inferer itself (``--inferer#_target_``) reaches the predictor that runs."""
    from monai.bundle import ConfigParser

    from medfusion.core.bundle import Inference
    from medfusion.core.inferers import DiffusionInferer, EnsembleInferer, SlidingWindowInferer
    from medfusion.core.runner import CaseInference

    configs = REPO / "bundles" / bundle / "configs"
    parser = ConfigParser()
    parser.read_config(str(configs / "inference.json"))
    assert parser.get("run") == ["$@runner.run()"]
    swap = {"brats_mri_cwdm": SlidingWindowInferer, "hecktor_petct_diffseg": EnsembleInferer}.get(bundle)
    parser.update({"bundle_root": str(REPO / "bundles" / bundle), "inferer#steps": 3, "inferer#seed": 7,
                   "inferer#sampler": "ddpm"})
    if swap is not None:
        parser["inferer"]["_target_"] = f"{swap.__module__}.{swap.__name__}"
    parser.parse()
    runner = parser.get_parsed_content("runner")
    assert isinstance(runner, Inference) and isinstance(runner.inference, CaseInference)
    inference = runner.inference
    for part in ("dataset", "predictor", "saver"):
        assert getattr(inference, part) is parser.get_parsed_content(part)
    inferer = inference.predictor.inferer
    assert isinstance(inferer, DiffusionInferer) and inferer is parser.get_parsed_content("inferer")
    assert (inferer.steps, inferer.seed, inferer.sampler) == (3, 7, "ddpm")
    if swap is not None:
        assert type(inferer) is swap


def _processing_sample(bundle: str) -> dict:
    """What a bundle's inference gives its preprocessing (``image``: the raw inputs) and postprocessing (``pred``:
    the sample, ``inputs``: the raw inputs), tiny and random."""
    import numpy as np

    rng = np.random.default_rng(0)
    if bundle == "hecktor_petct_diffseg":  # PET (SUV) and CT (HU) on the working grid; class probabilities
        image = np.stack([rng.uniform(0, 40, (6, 6, 6)), rng.uniform(-1000, 1000, (6, 6, 6))])
        pred = rng.uniform(0, 0.7, (2, 6, 6, 6))
    elif bundle == "he_to_ihc_staindiffuser":  # H&E 0 … 255, channels first; IHC + cells in [-1, 1]
        image, pred = rng.uniform(0, 255, (3, 8, 8)), rng.uniform(-1, 1, (4, 8, 8))
    elif bundle == "totalseg_mask_to_ct_mr":  # the prior CT (HU) on the model's grid; the sample in [0, 1]
        image, pred = rng.uniform(-1000, 1000, (1, 8, 8, 1)), rng.uniform(0, 1, (1, 8, 8, 1))
    else:  # three MR contrasts; the synthesized one in [0, 1]
        image, pred = rng.gamma(2.0, 100.0, (3, 6, 6, 6)), rng.uniform(0, 1, (1, 6, 6, 6))
    return {"image": image.astype(np.float32), "pred": pred.astype(np.float32), "inputs": image.astype(np.float32)}


#: a setting of each changed bundle's preprocessing or postprocessing, overridden as on the command line
#: (``--preprocessing#transforms#0#upper 90.0``)
PROCESSING_OVERRIDES = [
    ("brats_mri_cwdm", "preprocessing#transforms#0#upper", 90.0),
    ("brats_mri_cwdm", "postprocessing#transforms#0#threshold", 0.5),
    ("hecktor_petct_diffseg", "preprocessing#transforms#0#ct_window", [-100.0, 100.0]),
    ("he_to_ihc_staindiffuser", "preprocessing#transforms#0#a_max", 200.0),
    ("totalseg_mask_to_ct_mr", "preprocessing#transforms#0#a_max", 500.0),
    ("totalseg_mask_to_ct_mr", "postprocessing#transforms#0#b_max", 1500.0),
]


@pytest.mark.parametrize("bundle, override, value", PROCESSING_OVERRIDES, ids=lambda v: str(v))
def test_preprocessing_and_postprocessing_are_compose_lists_the_predictor_runs(bundle, override, value):
    """``preprocessing`` and ``postprocessing`` are MONAI ``Compose`` lists given to the ``predictor`` (not to the
    ``model``), and a setting overridden from the command line reaches the transform the predictor runs."""
    import numpy as np
    from monai.bundle import ConfigParser
    from monai.transforms import Compose

    configs = REPO / "bundles" / bundle / "configs"
    raw = ConfigParser.load_config_file(str(configs / "inference.json"))
    assert {raw["predictor"].get(k) for k in ("preprocessing", "postprocessing")} == {"@preprocessing",
                                                                                      "@postprocessing"}
    assert not {"preprocessing", "postprocessing"} & set(raw["model"])
    predictors = {}
    for name, extra in (("default", {}), ("changed", {override: value})):
        parser = ConfigParser()
        parser.read_config(str(configs / "inference.json"))
        parser.update({"bundle_root": str(REPO / "bundles" / bundle), "device": "cpu", **extra})
        parser.parse()
        predictor = parser.get_parsed_content("predictor")
        for part in ("preprocessing", "postprocessing"):
            assert raw[part]["_target_"] == "monai.transforms.Compose"
            assert isinstance(getattr(predictor, part), Compose)
            assert getattr(predictor, part) is parser.get_parsed_content(part)
        predictors[name] = predictor
    part = override.split("#")[0]
    outputs = [getattr(predictors[name], part)(_processing_sample(bundle)) for name in ("default", "changed")]
    key = "image" if part == "preprocessing" else "pred"
    assert not np.array_equal(np.asarray(outputs[0][key]), np.asarray(outputs[1][key]))


@pytest.mark.parametrize("bundle", BUNDLES)
def test_training_names_its_loss_optimizer_and_scheduler_as_components(bundle):
    """``train.json``'s trainer takes its ``loss`` (a medfusion loss with the trainers' signature), ``optimizer`` and
    ``lr_scheduler`` from components of the config, so each is swapped by an override; the loss the trainer gets
    is the component's (a trainer given no ``loss_fn`` falls back to the application's default)."""
    import functools
    import inspect

    from monai.bundle import ConfigParser

    configs = REPO / "bundles" / bundle / "configs"
    raw = ConfigParser.load_config_file(str(configs / "train.json"))
    assert {raw["trainer"][k] for k in ("loss_fn", "optimizer", "lr_scheduler")} == {"@loss", "@optimizer",
                                                                                    "@lr_scheduler"}
    parser = ConfigParser()
    parser.read_config(str(configs / "train.json"))
    parser.parse()
    loss = parser.get_parsed_content("loss")
    params = inspect.signature(loss.func if isinstance(loss, functools.partial) else loss).parameters
    assert list(params)[:2] == ["model", "batch"] and {"generator", "device", "precision"} <= set(params)


#: every training config with the inference config that runs its weights (merged onto their bases)
PAIRS = [(b, "train.json", "inference.json") for b in BUNDLES] + [
    ("totalseg_mask_to_ct_mr", "train_3d.json", "inference_3d.json"),
    ("totalseg_mask_to_ct_mr", "train_published.json", "inference_published.json"),
]


def _parsed(bundle: str, name: str, **overrides):
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config([str(REPO / "bundles" / bundle / "configs" / n) for n in _base(name) + [name]])
    parser.update({"bundle_root": str(REPO / "bundles" / bundle), **overrides})
    return parser


@pytest.mark.parametrize("bundle, train, inference", PAIRS, ids=lambda v: v)
def test_weights_that_train_json_makes_load_where_inference_json_runs_them(bundle, train, inference, tmp_path):
    """Each config runs alone, as the model zoo's do, so train and inference each describe the model; this is what
    keeps them one model: the model train.json builds, saved, goes through inference.json's own loading — its
    ``network_def`` (strict: every tensor must fit) and its check of the schedule, space, prediction type and
    reference channel against the checkpoint — and comes back with the same weights."""
    import torch

    made = _parsed(bundle, train, device="cpu").get_parsed_content("model")
    ckpt = tmp_path / "model.pt"
    made.save(ckpt)
    loaded = _parsed(bundle, inference, checkpoint=str(ckpt), device="cpu").get_parsed_content("model")
    a, b = made.network.state_dict(), loaded.network.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert loaded.diffusion.config == made.diffusion.config
