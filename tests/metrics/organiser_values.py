"""The organisers' own values for the hard cases of ``tests/metrics/organiser_cases.py``, computed with their code.

    git clone https://github.com/SynthRAD2023/metrics synthrad-metrics
    git clone https://github.com/voreille/hecktor
    python tests/metrics/organiser_values.py --synthrad synthrad-metrics --hecktor hecktor > tests/data/organiser_values.json

Their code runs from those checkouts and is not copied here (SynthRAD2023's is GPL): SynthRAD2023's
``functions/image_metrics.py`` (``ImageMetrics.mae``, ``psnr(use_population_range=True)`` and ``ssim`` on the
arrays SimpleITK reads, cast to float32 as its ``score_patient`` does; the window of an MR case set through its
``dynamic_range``), and the function cells of HECKTOR's ``notebooks/evaluate_segmentation2022.ipynb``
(``check_prediction``, ``get_intermediate_metrics``, ``compute_agg_dice``), as its last cells call them.
Needs SimpleITK, numpy and scikit-image (medfusion's own dependencies).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import types
from pathlib import Path

import numpy as np
import SimpleITK as sitk

sys.path.insert(0, str(Path(__file__).resolve().parent))
from organiser_cases import HECKTOR_CROPPED, hecktor_cases, synthrad_cases  # noqa: E402

#: the case sets scored as a whole (their aggregated Dice): all cases, and one without any GTVn
HECKTOR_SETS = {"all": None, "no_gtvn_anywhere": ["CHUP-002"]}


def _commit(repo: Path) -> str:
    try:
        return subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _float_array(path) -> np.ndarray:
    caster = sitk.CastImageFilter()
    caster.SetOutputPixelType(sitk.sitkFloat32)
    return sitk.GetArrayFromImage(caster.Execute(sitk.ReadImage(str(path))))


def synthrad_values(repo: Path, root: Path) -> dict:
    sys.modules.setdefault("evalutils", types.ModuleType("evalutils"))  # imported for score_patient, unused here
    loader = types.ModuleType("evalutils.io")
    loader.SimpleITKLoader = object
    sys.modules.setdefault("evalutils.io", loader)
    sys.path.insert(0, str(repo))
    from functions.image_metrics import ImageMetrics

    out = {}
    for name, case in synthrad_cases(root).items():
        metrics = ImageMetrics()
        metrics.dynamic_range = list(case["window"])
        gt, pred = _float_array(case["ref"]), _float_array(case["pred"])
        mask = None if case["mask"] is None else _float_array(case["mask"])
        out[name] = {"mae": metrics.mae(gt, pred, mask), "psnr": metrics.psnr(gt, pred, mask, use_population_range=True),
                     "ssim": float(metrics.ssim(gt, pred, mask))}
    return out


def hecktor_values(repo: Path, root: Path) -> dict:
    notebook = json.loads((repo / "notebooks" / "evaluate_segmentation2022.ipynb").read_text())
    namespace = {"np": np, "sitk": sitk}
    for cell in notebook["cells"]:
        source = "".join(cell["source"])
        if cell["cell_type"] == "code" and source.lstrip().startswith("def "):
            exec(compile(source, "evaluate_segmentation2022.ipynb", "exec"), namespace)  # noqa: S102 - theirs
    cases = hecktor_cases(root)
    out = {}
    for set_name, names in HECKTOR_SETS.items():
        results = []
        for name in names or cases:
            groundtruth = sitk.ReadImage(str(cases[name]["ref"]))
            prediction = namespace["check_prediction"](groundtruth, sitk.ReadImage(str(cases[name]["pred"])))
            results.append(namespace["get_intermediate_metrics"](groundtruth, prediction))
        agg = namespace["compute_agg_dice"](results)["AggregatedDsc"]
        out[set_name] = {k: (None if np.isnan(v) else float(v)) for k, v in agg.items()}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--synthrad", type=Path, required=True, help="a checkout of SynthRAD2023/metrics")
    p.add_argument("--hecktor", type=Path, required=True, help="a checkout of voreille/hecktor")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        values = {
            "command": "python tests/metrics/organiser_values.py --synthrad synthrad-metrics --hecktor hecktor",
            "synthrad": {"repository": "SynthRAD2023/metrics", "commit": _commit(args.synthrad),
                         "code": "functions/image_metrics.py", "cases": synthrad_values(args.synthrad, Path(tmp))},
            "hecktor": {"repository": "voreille/hecktor", "commit": _commit(args.hecktor),
                        "code": "notebooks/evaluate_segmentation2022.ipynb", "cropped_prediction": HECKTOR_CROPPED,
                        "sets": {k: v or "all cases" for k, v in HECKTOR_SETS.items()},
                        "aggregated_dice": hecktor_values(args.hecktor, Path(tmp))},
            "versions": {"SimpleITK": sitk.Version_VersionString(), "numpy": np.__version__,
                         "scikit-image": __import__("skimage").__version__},
        }
    json.dump(values, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
