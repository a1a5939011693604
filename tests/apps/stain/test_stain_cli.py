"""``medfusion stain`` end to end on tiny PNGs with a tiny random-weight checkpoint: outputs of the input's size,
the folder form, and bad input → one line, exit 2, nothing written."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import run_cli
from medfusion.apps.stain.model import StainModel
from medfusion.cli.main import main

TINY = {"channels": [8, 16], "norm_num_groups": 8, "num_head_channels": 8}


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("stain") / "tiny.pt"
    StainModel.create(TINY, encoder_channels=8, tile=16,
                      info={"description": "tiny random-weight test model"}).save(path)
    return str(path)


def he_png(path, shape=(37, 29), mode="RGB"):
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    img = Image.fromarray(arr)
    if mode != "RGB":
        img = img.convert(mode)
    img.save(path)
    return str(path)


@pytest.mark.slow
def test_stain_one_image_and_a_folder(tmp_path, weights):
    he = he_png(tmp_path / "he.png")
    r = run_cli("stain", "--he", he, "--out", tmp_path / "ihc.png", "--cells", tmp_path / "cells.png",
                "--weights", weights, "--steps", "2", "--tile", "16", "--overlap", "4", "--quiet")
    assert r.returncode == 0, r.stderr
    with Image.open(tmp_path / "ihc.png") as ihc, Image.open(tmp_path / "cells.png") as cells:
        assert ihc.mode == "RGB" and ihc.size == (29, 37)
        assert cells.mode.startswith("I;16") and cells.size == (29, 37)
    folder = tmp_path / "slides"
    folder.mkdir()
    he_png(folder / "a.png", (20, 24))
    he_png(folder / "b.png", (17, 33))
    r = run_cli("stain", "--images", folder, "--out", tmp_path / "out", "--weights", weights, "--steps", "1",
                "--quiet")
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png", "b.png"]
    with Image.open(tmp_path / "out" / "b.png") as b:
        assert b.size == (33, 17)


@pytest.mark.parametrize("case, message", [
    ("grey", "only 8-bit RGB H&E images are accepted"),
    ("rgba", "flatten the alpha channel first"),
    ("corrupt", "he.png"),
    ("tiny", "smaller than the network's minimum"),
    ("overlap", "--overlap must be from 0 to less than --tile (16) pixels, got 16"),
    ("exists", "exists"),
])
def test_bad_input_is_one_line_exit_2_and_nothing_written(tmp_path, weights, capsys, case, message):
    he = tmp_path / "he.png"
    extra = []
    if case == "grey":
        he_png(he, mode="L")
    elif case == "rgba":
        he_png(he, mode="RGBA")
    elif case == "corrupt":
        he.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    elif case == "tiny":
        he_png(he, (3, 40))
    else:
        he_png(he)
    if case == "overlap":
        extra = ["--tile", "16", "--overlap", "16"]
    out = tmp_path / "ihc.png"
    if case == "exists":
        out.write_bytes(b"keep me")
    before = he.read_bytes()
    capsys.readouterr()
    rc = main(["stain", "--he", str(he), "--out", str(out), "--weights", weights, "--steps", "1", "--quiet", *extra])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and err.startswith("medfusion stain: error:"), err
    assert message in err, err
    assert he.read_bytes() == before
    assert (out.read_bytes() == b"keep me") if case == "exists" else not out.exists()
