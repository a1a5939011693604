"""The research notebooks run top to bottom (code cells executed in order, few sampling steps)."""

import json

import pytest

from conftest import REPO

NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_every_cell_has_an_id(path):
    """nbformat 4.5 requires a unique id per cell (nbformat warns about, and Jupyter rewrites, notebooks without)."""
    import re

    nb = json.loads(path.read_text())
    assert (nb["nbformat"], nb["nbformat_minor"]) >= (4, 5)
    ids = [c.get("id", "") for c in nb["cells"]]
    assert all(re.fullmatch(r"[a-zA-Z0-9_-]{1,64}", i) for i in ids), ids
    assert len(set(ids)) == len(ids), ids


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs(path, monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    monkeypatch.setenv("MEDFUSION_NOTEBOOK_STEPS", "2")
    nb = json.loads(path.read_text())
    cells = [("".join(c["source"]), i) for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code"]
    assert cells, f"{path.name} has no code cells"
    namespace = {"__name__": "__main__"}
    for src, i in cells:
        exec(compile(src, f"{path.name}[cell {i}]", "exec"), namespace)  # noqa: S102 - our own notebook
    CHECKS[path.name](namespace)


def _check_cwdm(ns):
    """A synthesized volume in [0, 1] of the input shape."""
    assert ns["pred"].shape == ns["ref"].shape
    assert 0 <= ns["pred"].min() and ns["pred"].max() <= 1


def _check_evaluation(ns):
    """Both methods scored on every sample case; the 2-voxel shift gives HD95 = 2 voxel spacings along x."""
    import math

    for report in ns["reports"].values():
        assert len(report.cases) == len(ns["cases"]) and "ssim_tumour" in report.summary
    seg = ns["seg_report"]
    spacing_x = ns["load_volume"](ns["cases"][0] / f"{ns['cases'][0].name}-seg.nii.gz").spacing[0]
    for case in seg.cases:
        for name in ("necrosis", "oedema", "enhancing"):
            assert 0 < case[f"dice_{name}"] < 1
            assert math.isclose(case[f"hd95_{name}"], 2 * spacing_x, rel_tol=1e-6)
    assert 0 < seg.set_metrics["dsc_agg_mean"] < 1


def _check_seg2med(ns):
    """Generated CT in HU within the model's window, air outside the body; the file on the mask's grid."""
    import numpy as np

    for result in (ns["ct2d"], ns["ct3d"]):
        pred = result["pred"]
        assert pred.shape == ns["labels"].shape and -1000 <= pred.min() and pred.max() <= 1000
        assert np.all(pred[~ns["body"]] == -1000)
    assert ns["written"].shape == ns["mask"].shape and np.allclose(ns["written"].affine, ns["mask"].affine)
    assert set(ns["rows"]) == {"2D", "3D"} and all(np.isfinite(r["ssim"]) for r in ns["rows"].values())


def _check_petct(ns):
    """Labels and uncertainty on the CT grid; both segmenters scored; AUROC in [0, 1] or undefined."""
    import math

    import numpy as np

    assert ns["pred"].shape == ns["truth"].shape == ns["case"].ct.shape
    assert set(np.unique(ns["pred"])) <= {0, 1, 2}
    assert 0 <= ns["entropy"].min() and ns["entropy"].max() <= math.log(3) + 1e-5
    assert set(ns["reports"]) == {"diffusion", "segresnet"}
    assert math.isnan(ns["auroc"]) or 0 <= ns["auroc"] <= 1


def _check_stain(ns):
    """Outputs of the inputs' sizes (tiled too), 8-bit IHC and 16-bit labels; all four methods scored."""
    import math

    import numpy as np

    assert ns["out"]["ihc"].shape == ns["he"].shape and ns["out"]["ihc"].dtype == np.uint8
    assert ns["out"]["cells"].shape == ns["he"].shape[:2] and ns["out"]["cells"].dtype == np.uint16
    assert ns["tiled"]["ihc"].shape == ns["big"].shape and ns["rows"] and ns["cols"]
    assert math.isfinite(ns["seam_ratio"](ns["tiled"]["ihc"], ns["rows"], ns["cols"]))
    assert set(ns["report"]["models"]) == {"diffusion", "unet", "he_as_ihc", "haematoxylin_as_ihc", "haematoxylin_watershed"}


CHECKS = {"cwdm_missing_modality.ipynb": _check_cwdm, "evaluation.ipynb": _check_evaluation,
          "seg2med_mask_to_ct_mr.ipynb": _check_seg2med, "petct_segmentation.ipynb": _check_petct,
          "stain_he_to_ihc.ipynb": _check_stain}
