"""The README's Quick start: exactly two commands, and both work (in the current environment)."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO


def quickstart_commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    section = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    return [line.split("#", 1)[0].strip() for line in block.splitlines() if line.split("#", 1)[0].strip()]


def test_readme_has_exactly_two_quickstart_commands():
    assert quickstart_commands() == ["bash dev.sh demo", "bash dev.sh test"]
    assert "bash dev.sh test" in (REPO / ".ci" / "run").read_text()


def _env():
    env = dict(os.environ, VIRTUAL_ENV=sys.prefix, OMP_NUM_THREADS="1")
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env["PATH"]
    return env


@pytest.mark.slow
def test_demo_command_runs(tmp_path, tiny_checkpoint, tiny_dataset):
    out = tmp_path / "demo"
    r = subprocess.run(["bash", "dev.sh", "demo", "--weights", str(tiny_checkpoint), "--data", str(tiny_dataset),
                        "--steps", "2", "--out", str(out), "--quiet"], cwd=REPO, env=_env(), capture_output=True,
                       text=True, encoding="utf-8", timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert (out / "metrics.json").is_file() and (out / "montage.png").is_file()
    assert "SSIM" in r.stdout

    # the README's evaluation example on the demo's output gives the demo's own BraSyn numbers
    report = tmp_path / "brasyn.json"
    r = subprocess.run([sys.executable, "-m", "medfusion.cli.main", "evaluate", "--pred", str(out), "--ref",
                        str(tiny_dataset), "--mask", str(tiny_dataset), "--glob", "*-t2f.nii.gz", "--protocol",
                        "brasyn", "--out", str(report), "--quiet"], cwd=REPO, capture_output=True, text=True, encoding="utf-8")
    assert r.returncode == 0, r.stderr[-2000:]
    import json

    demo = json.loads((out / "metrics.json").read_text())["model"]
    (case,) = json.loads(report.read_text())["cases"]
    keys = ("ssim", "ssim_tumour", "ssim_non_tumour", "psnr", "mse")
    assert all(demo[k] is not None for k in keys)
    assert {k: case[k] for k in keys} == {k: demo[k] for k in keys}  # one scoring path: exactly the same numbers


@pytest.mark.slow
def test_test_command_collects_the_suite():
    r = subprocess.run(["bash", "dev.sh", "test", "--collect-only"], cwd=REPO, env=_env(),
                       capture_output=True, text=True, encoding="utf-8", timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert re.search(r"\d+ tests? collected", r.stdout)
    assert "test_quickstart.py" in r.stdout


def test_every_relative_link_of_the_readme_and_docs_points_to_a_file():
    pages = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    assert len(pages) > 5
    broken = []
    for page in pages:
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", page.read_text()):
            if not (page.parent / target).exists():
                broken.append(f"{page.relative_to(REPO)} -> {target}")
    assert not broken, broken
