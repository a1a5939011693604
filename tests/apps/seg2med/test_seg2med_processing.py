"""seg2med's ``preprocessing`` and ``postprocessing``: MONAI dictionary ``Compose`` lists that inference runs on the
model's grid (the condition windowed to [0, 1]; the sample back in the target's units), the model's own by default
and the bundle's read from its inference.json giving the same voxels."""

from __future__ import annotations

import pathlib
import warnings

import nibabel as nib
import numpy as np
import pytest

from medfusion.apps.seg2med.files import Generator
from medfusion.apps.seg2med.inference import convert, generate
from medfusion.errors import InputError
from test_seg2med_model import labels, tiny_model

CONFIGS = pathlib.Path(__file__).resolve().parents[3] / "bundles" / "totalseg_mask_to_ct_mr" / "configs"
SAMPLING = {"steps": 2, "seed": 1}


def bundle_processing(model, *, target: str, source: str = "prior", via: str = "prior", dims: int = 2,
                      **overrides):
    """The bundle's ``preprocessing`` and ``postprocessing`` as inference.json (with inference_3d.json for ``dims``
    3) builds them for ``model`` (in place of the checkpoint's) and the task; ``overrides`` as on the command line."""
    from monai.bundle import ConfigParser

    files = [str(CONFIGS / "inference.json")] + ([str(CONFIGS / "inference_3d.json")] if dims == 3 else [])
    parser = ConfigParser()
    parser.read_config(files)
    parser.update({"bundle_root": str(CONFIGS.parent), "device": "cpu", "model": model, "target": target,
                   "source": source, "via": via, **overrides})
    parser.parse()
    return parser.get_parsed_content("preprocessing"), parser.get_parsed_content("postprocessing")


def case():
    lab = labels()
    body = np.zeros(lab.shape, bool)
    body[3:19, 1:17, :] = True
    return lab, body


def model(dims: int = 2):
    # windows unlike the defaults, so that the bundle's lists must read the model's; a grid that resamples
    import torch

    grid = {"spacing": (2.0, 2.0), "size": (16, 16)} if dims == 2 else {}
    m = tiny_model(dims, prediction="epsilon", windows={"t2": [0.0, 600.0], "ct": [-900.0, 1100.0]}, **grid)
    with torch.no_grad():  # a new network's last layer is zero: its output would not depend on the condition
        for p in m.network.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return m


@pytest.mark.parametrize("dims, target", [(2, "ct"), (2, "t2"), (3, "t2")])
def test_the_bundle_lists_give_the_default_output_bit_for_bit(dims, target):
    m, (lab, body) = model(dims), case()
    pre, post = bundle_processing(m, target=target, dims=dims)
    default = generate(m, lab, target, body=body, spacing=(1.5, 1.5, 2.0), **SAMPLING)
    listed = generate(m, lab, target, body=body, spacing=(1.5, 1.5, 2.0), preprocessing=pre, postprocessing=post,
                      **SAMPLING)
    assert np.array_equal(default, listed)
    assert np.ptp(default[body]) > 0  # not a constant: the comparison means something


def test_conversion_by_the_image_windows_the_source_by_its_window():
    m, (lab, body) = model(), case()
    image = np.random.default_rng(0).uniform(-1000, 1000, lab.shape).astype(np.float32)
    pre, post = bundle_processing(m, target="t2", source="ct", via="image")
    assert pre.transforms[0].scaler.a_min == -900.0 and pre.transforms[0].scaler.a_max == 1100.0
    assert post.transforms[0].scaler.b_max == 600.0
    run = dict(via="image", body=body, spacing=(1.5, 1.5, 2.0), **SAMPLING)
    default = convert(m, image, "ct", "t2", **run)
    assert np.array_equal(default, convert(m, image, "ct", "t2", preprocessing=pre, postprocessing=post, **run))


@pytest.mark.parametrize("override", [{"preprocessing#transforms#0#a_max": 400.0},
                                      {"postprocessing#transforms#0#b_max": 900.0}])
def test_a_changed_setting_changes_the_output(override):
    m, (lab, body) = model(), case()
    default = generate(m, lab, "ct", body=body, spacing=(1.5, 1.5, 2.0), **SAMPLING)
    pre, post = bundle_processing(m, target="ct", **override)
    changed = generate(m, lab, "ct", body=body, spacing=(1.5, 1.5, 2.0), preprocessing=pre, postprocessing=post,
                       **SAMPLING)
    assert not np.array_equal(default, changed)
    assert np.all(changed[~body] == -1000)  # air outside the body stays in code


@pytest.mark.filterwarnings("ignore:no voxel spacing given")
def test_a_missing_key_or_a_wrong_shape_is_an_input_error():
    from monai.transforms import Compose, DeleteItemsd, Lambdad, ScaleIntensityRanged

    m, (lab, body) = model(), case()
    wrong_key = Compose([ScaleIntensityRanged(keys="label", a_min=0.0, a_max=1.0)])
    with pytest.raises(InputError, match="preprocessing: .*label.*'image'"):
        generate(m, lab, "ct", body=body, preprocessing=wrong_key, **SAMPLING)
    cropped = Compose([Lambdad(keys="image", func=lambda x: x[..., :-1])])
    with pytest.raises(InputError, match="preprocessing must keep 'image' of shape"):
        generate(m, lab, "ct", body=body, preprocessing=cropped, **SAMPLING)
    with pytest.raises(InputError, match="postprocessing returned no 'pred'"):
        generate(m, lab, "ct", body=body, postprocessing=Compose([DeleteItemsd(keys="pred")]), **SAMPLING)
    with pytest.raises(InputError, match="postprocessing must be a MONAI transform"):
        Generator(m, postprocessing=[1, 2])


def test_the_predictor_runs_its_lists(tmp_path):
    from monai.transforms import Compose, ShiftIntensityd

    m, (lab, _) = model(), case()
    nib.save(nib.Nifti1Image(lab.astype(np.int16), np.diag([1.5, 1.5, 2.0, 1.0])), str(tmp_path / "mask.nii.gz"))
    data = {"path": str(tmp_path / "mask.nii.gz")}
    pre, post = bundle_processing(m, target="ct")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # no body given: the label map's
        default = Generator(m, "ct", **SAMPLING)(data)["image"]
        listed = Generator(m, "ct", preprocessing=pre, postprocessing=post, **SAMPLING)(data)["image"]
        shifted = Generator(m, "ct", postprocessing=Compose([*post.transforms, ShiftIntensityd(keys="pred", offset=7.0)]),
                            **SAMPLING)(data)["image"]
    assert np.array_equal(default, listed) and not np.array_equal(default, shifted)
