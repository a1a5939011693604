"""The research notebooks run top to bottom (code cells executed in order, few sampling steps)."""

import json
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


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
    if "pred" in namespace:  # the cWDM notebook: a synthesized volume in [0, 1] of the input shape
        assert namespace["pred"].shape == namespace["ref"].shape
        assert 0 <= namespace["pred"].min() and namespace["pred"].max() <= 1
