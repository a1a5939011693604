"""medfusion's ``synthrad`` and ``hecktor`` protocols against the organisers' own code, on hard cases.

The cases come from the seeded generator of ``tests/metrics/organiser_cases.py``; the values are those of SynthRAD2023's
``functions/image_metrics.py`` and of HECKTOR 2022's ``evaluate_segmentation2022.ipynb`` for the same files,
computed by ``tests/metrics/organiser_values.py`` from checkouts of their repositories (command, commits and versions in
``tests/data/organiser_values.json``).  Hard parts: values beyond the HU window, a mask tighter than the body and one
reaching the border, no mask, an MR window; five voxel spacings with oblique float32 affines, a class absent from
the prediction, from the reference, from both and from every case, a prediction on a cropped grid.
"""

from __future__ import annotations

import json
import math
import shutil

import pytest

from conftest import REPO
from medfusion.evaluate import evaluate
from organiser_cases import HECKTOR_CROPPED, hecktor_cases, synthrad_cases

VALUES = json.loads((REPO / "tests" / "data" / "organiser_values.json").read_text())


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    root = tmp_path_factory.mktemp("organisers")
    return synthrad_cases(root), hecktor_cases(root), root


@pytest.mark.parametrize("name", list(VALUES["synthrad"]["cases"]))
def test_synthrad_equals_the_organisers_code(cases, name):
    case = cases[0][name]
    expected = VALUES["synthrad"]["cases"][name]
    kwargs = {"metrics": ["mae", "psnr", "ssim"]} if case["mask"] is None else {"mask": str(case["mask"])}
    report = evaluate(str(case["pred"]), str(case["ref"]), protocol="synthrad", window=case["window"], **kwargs)
    got = report.cases[0]
    assert got["mae"] == pytest.approx(expected["mae"], rel=1e-9)
    assert got["psnr"] == pytest.approx(expected["psnr"], rel=1e-6)
    assert got["ssim"] == pytest.approx(expected["ssim"], abs=1e-6)


def test_hecktor_aggregated_dice_equals_the_organisers_notebook(cases):
    """Five spacings weigh the cases by physical volume (mm³); the cropped prediction is resampled by nearest
    neighbour onto the reference grid (``--resample``), as the notebook does after checking the spacing."""
    hecktor, root = cases[1], cases[2]
    expected = VALUES["hecktor"]["aggregated_dice"]
    report = evaluate(str(root / "hecktor" / "pred"), str(root / "hecktor" / "ref"), protocol="hecktor",
                      resample=True)
    for key, value in expected["all"].items():
        name = "dsc_agg_mean" if key == "mean" else f"dsc_agg_{key}"
        assert report.set_metrics[name] == pytest.approx(value, rel=1e-9), name
    counts = {k: v for k, v in report.set_metrics.items() if k.startswith("cases_")}
    assert counts["cases_empty_pred_GTVp"] == 1 and counts["cases_empty_ref_GTVn"] == 1
    assert counts["cases_both_empty_GTVn"] == 1

    with pytest.raises(Exception, match="--resample"):  # without it, a prediction on another grid is refused
        evaluate(str(hecktor[HECKTOR_CROPPED]["pred"]), str(hecktor[HECKTOR_CROPPED]["ref"]), protocol="hecktor")


def test_hecktor_a_class_absent_from_every_case_is_undefined_as_in_the_notebook(cases, tmp_path):
    hecktor = cases[1]
    (names,) = [v for k, v in VALUES["hecktor"]["sets"].items() if k == "no_gtvn_anywhere"]
    for side in ("pred", "ref"):
        (tmp_path / side).mkdir()
        for name in names:
            shutil.copy(hecktor[name][side], tmp_path / side)
    expected = VALUES["hecktor"]["aggregated_dice"]["no_gtvn_anywhere"]
    report = evaluate(str(tmp_path / "pred"), str(tmp_path / "ref"), protocol="hecktor")
    assert report.set_metrics["dsc_agg_GTVp"] == pytest.approx(expected["GTVp"], rel=1e-9)
    assert expected["GTVn"] is None and math.isnan(report.set_metrics["dsc_agg_GTVn"])
    assert expected["mean"] is None and math.isnan(report.set_metrics["dsc_agg_mean"])
