"""Large images band by band: the core's streamed sliding window against MONAI's, row sources against tifffile
and tiffslide, the band-wise cell labels against whole-image labels, and the streamed command end to end."""

from __future__ import annotations

import os

import numpy as np
import pytest
import tifffile
import torch

from medfusion.apps.stain.model import StainModel
from medfusion.apps.stain.files import stain_file
from medfusion.apps.stain.slides import ArrayRows, SlideRows, TiffRows, TiffRowWriter, open_rows
from medfusion.apps.stain.stream import BandLabels, translate_rows
from medfusion.apps.stain.inference import cell_labels, translate
from medfusion.core.inference import sliding_window
from medfusion.cli.main import main
from medfusion.core.streaming import stream_tiles, tile_starts
from medfusion.errors import InputError, OutputExistsError

TINY = {"channels": [8, 16], "norm_num_groups": 8, "num_head_channels": 8}


def tiny_model() -> StainModel:
    torch.manual_seed(0)
    return StainModel.create(TINY, encoder_channels=8, tile=16)


def streamed(fn, image, tile, overlap, out_channels, **kwargs) -> tuple[torch.Tensor, list]:
    bands = list(stream_tiles(fn, lambda a, b: image[:, a:b], image.shape[1:], tile, overlap, out_channels, **kwargs))
    return torch.cat([rows for _, rows in bands], dim=1), bands


# ---- core ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape, tile, overlap, batch", [((103, 77), 32, 8, 3), ((32, 45), 32, 0, 1),
                                                         ((57, 61), 16, 15, 4)])
def test_stream_tiles_blends_as_monai_sliding_window_band_by_band(shape, tile, overlap, batch):
    torch.manual_seed(0)
    image = torch.rand(3, *shape)
    conv = torch.nn.Conv2d(3, 2, 3, padding=1)

    def fn(b):
        with torch.no_grad():
            return conv(b)

    ref = sliding_window(fn, image, (tile, tile), overlap=overlap / tile, batch_size=batch, mode="gaussian")
    out, bands = streamed(fn, image, tile, overlap, 2, batch_size=batch)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-6)
    starts = [y for y, _ in bands]
    assert starts[0] == 0 and starts == [0] + list(np.cumsum([r.shape[1] for _, r in bands])[:-1])
    assert max(r.shape[1] for _, r in bands) <= tile  # a band is at most a tile of rows


def test_stream_tiles_skips_tiles_and_blends_their_fill():
    """Skipped tiles blend the fill value exactly as if the network had returned it there."""
    torch.manual_seed(1)
    image = torch.rand(1, 100, 120)
    image[:, :50, :60] = 2.0  # "glass"
    glass = lambda t: bool((t > 1.5).float().mean() > 0.99)  # noqa: E731
    calls = []

    def fn(b):
        calls.append(len(b))
        return b * 3

    def as_if(b):  # what the network would have to return for the skipped tiles
        return torch.stack([torch.full_like(t, -1.0) if glass(t) else t * 3 for t in b])

    ref = sliding_window(as_if, image, (32, 32), overlap=0.25, batch_size=1, mode="gaussian")
    out, _ = streamed(fn, image, 32, 8, 1, batch_size=2, skip=glass, fill=[-1.0])
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-6)
    n_tiles = len(tile_starts(100, 32, 8)) * len(tile_starts(120, 32, 8))
    assert 0 < sum(calls) < n_tiles
    with pytest.raises(ValueError, match="fill value"):
        streamed(fn, image, 32, 8, 1, skip=glass)


def test_tile_starts_are_monai_grid_and_refuse_bad_sizes():
    assert tile_starts(100, 32, 8) == [0, 24, 48, 68]
    assert tile_starts(32, 32, 0) == [0]
    with pytest.raises(ValueError, match="shorter"):
        tile_starts(20, 32, 8)
    with pytest.raises(ValueError, match="overlap"):
        tile_starts(100, 32, 32)


# ---- cell labels band by band ----------------------------------------------------------------------------------
def test_band_labels_number_every_nucleus_once_as_whole_image_labels_do():
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:180, :150]
    prob = np.zeros((180, 150), np.float32)
    for cy, cx, r in zip(rng.uniform(5, 175, 60), rng.uniform(5, 145, 60), rng.uniform(3, 7, 60)):
        prob = np.maximum(prob, ((yy - cy) ** 2 + (xx - cx) ** 2 < r * r).astype(np.float32))
    whole = cell_labels(prob)
    labels = BandLabels(180, 150, halo=16)
    out = np.zeros((180, 150), np.uint32)
    y = 0
    for h in [23, 40, 17, 50, 50]:
        for y0, rows in labels.push(y, prob[y: y + h]):
            out[y0: y0 + len(rows)] = rows
        y += h
    # the same partition: every band label is one whole-image label and vice versa
    pairs = {(int(a), int(b)) for a, b in zip(whole.ravel(), out.ravel())}
    assert len(pairs) == len({a for a, _ in pairs}) == len({b for _, b in pairs})
    assert out.max() == labels.next_id - 1 == whole.max() and sorted(np.unique(out)) == list(range(out.max() + 1))
    with pytest.raises(ValueError, match="in order"):
        labels.push(0, prob[:5])


# ---- row sources and the row writer ----------------------------------------------------------------------------
@pytest.mark.parametrize("options", [{"tile": (32, 48), "compression": "zlib"}, {"rowsperstrip": 7,
                                     "compression": "zlib"}, {}, {"tile": (16, 16), "compression": "jpeg"}])
def test_tiff_rows_read_what_tifffile_reads(tmp_path, options):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (101, 83, 3), dtype=np.uint8)
    path = tmp_path / "he.tif"
    tifffile.imwrite(path, image, photometric="rgb", **options)
    whole = tifffile.imread(path)
    with open_rows(path) as source:
        assert isinstance(source, TiffRows) and source.shape == (101, 83)
        for y0, y1 in [(0, 32), (24, 56), (48, 80), (69, 101), (0, 101)]:
            np.testing.assert_array_equal(source.read(y0, y1), whole[y0:y1])


def test_slide_rows_read_level_0_as_tifffile_does(tmp_path):
    image = np.random.default_rng(1).integers(0, 256, (130, 150, 3), dtype=np.uint8)
    path = tmp_path / "slide.svs"
    tifffile.imwrite(path, image, photometric="rgb", tile=(64, 64), compression="jpeg",
                     description="Aperio Image Library v12.0.0\r\n150x130 -> 150x130 |AppMag = 20|MPP = 0.5")
    with open_rows(path) as source, TiffRows(path) as tiff:
        assert isinstance(source, SlideRows) and source.shape == (130, 150)
        np.testing.assert_array_equal(source.read(40, 90), tiff.read(40, 90))


def test_row_sources_refuse_what_they_cannot_read(tmp_path):
    grey = tmp_path / "grey16.tif"
    tifffile.imwrite(grey, np.zeros((40, 40, 3), np.uint16), photometric="rgb")
    with pytest.raises(InputError, match="not an 8-bit RGB"):
        open_rows(grey)
    broken = tmp_path / "broken.tif"
    broken.write_bytes(b"II*\x00garbage")
    with pytest.raises(InputError, match="cannot read"):
        open_rows(broken)
    with pytest.raises(InputError, match="not found"):
        open_rows(tmp_path / "absent.tif")


def test_tiff_row_writer_writes_rows_in_any_order_and_only_a_whole_file(tmp_path):
    rng = np.random.default_rng(2)
    rgb, lab = rng.integers(0, 256, (50, 33, 3), dtype=np.uint8), rng.integers(0, 2**32, (50, 33), dtype=np.uint32)
    for image, name in [(rgb, "ihc.tif"), (lab, "cells.tif")]:
        with TiffRowWriter(tmp_path / name, image.shape, image.dtype) as w:
            for y0, y1 in [(20, 50), (0, 7), (7, 20)]:
                w.write(y0, image[y0:y1])
        np.testing.assert_array_equal(tifffile.imread(tmp_path / name), image)
    with pytest.raises(OutputExistsError):
        TiffRowWriter(tmp_path / "ihc.tif", rgb.shape, np.uint8)
    with pytest.raises(RuntimeError):
        with TiffRowWriter(tmp_path / "partial.tif", rgb.shape, np.uint8) as w:
            w.write(0, rgb[:10])
            raise RuntimeError("interrupted")
    assert sorted(os.listdir(tmp_path)) == ["cells.tif", "ihc.tif"]  # no partial file, no temporary left


# ---- the streamed translation ----------------------------------------------------------------------------------
def test_streamed_translation_equals_the_in_memory_one():
    """One tile per network call draws the same noise in the same order: the same IHC, the same nuclei."""
    model = tiny_model()
    he = np.random.default_rng(3).integers(0, 200, (45, 38, 3), dtype=np.uint8)
    ref = translate(model, he, steps=2, seed=5, tile=16, overlap=4, batch_size=1)
    ihc, cells = np.zeros_like(ref["ihc"]), np.zeros(he.shape[:2], np.uint32)
    reads = []

    class Spy(ArrayRows):
        def read(self, y0, y1):
            reads.append(y1 - y0)
            return super().read(y0, y1)

    stats = translate_rows(model, Spy(he), on_ihc=lambda y, r: ihc.__setitem__(slice(y, y + len(r)), r),
                           on_cells=lambda y, r: cells.__setitem__(slice(y, y + len(r)), r), steps=2, seed=5,
                           tile=16, overlap=4, batch_size=1)
    np.testing.assert_array_equal(ihc, ref["ihc"])
    np.testing.assert_array_equal(cells > 0, ref["cells"] > 0)
    assert stats["cells"] == cells.max() and stats["skipped"] == 0 and set(reads) == {16}  # a tile of rows per read


def test_streamed_translation_runs_the_processing_on_each_band_as_the_in_memory_one_does():
    """A preprocessing and a postprocessing that look at each pixel alone give, run band by band, what they give
    on the whole image; the postprocessing's inputs are the band's H&E rows."""
    from monai.bundle import ConfigParser
    from monai.transforms import Compose, Lambdad, MapTransform

    from conftest import REPO

    class GlassToWhite(MapTransform):  # uses the inputs: pixels of bright H&E become white IHC
        def __call__(self, data):
            d = dict(data)
            glass = np.asarray(d["inputs"]).mean(0) > 150
            d["pred"] = np.where(glass[None], 1.0, np.asarray(d["pred"])).astype(np.float32)
            return d

    parser = ConfigParser()
    parser.read_config(str(REPO / "bundles" / "he_to_ihc_staindiffuser" / "configs" / "inference.json"))
    parser.update({"preprocessing#transforms#0#a_max": 300.0})
    pre = parser.get_parsed_content("preprocessing")
    post = Compose([GlassToWhite(keys="pred"), Lambdad(keys="pred", func=lambda p: p * 0.9)])
    model = tiny_model()
    he = np.random.default_rng(3).integers(0, 200, (45, 38, 3), dtype=np.uint8)
    ref = translate(model, he, steps=2, seed=5, tile=16, overlap=4, batch_size=1, preprocessing=pre,
                    postprocessing=post)
    assert not np.array_equal(ref["ihc"], translate(model, he, steps=2, seed=5, tile=16, overlap=4)["ihc"])
    ihc = np.zeros_like(ref["ihc"])
    stats = translate_rows(model, ArrayRows(he), on_ihc=lambda y, r: ihc.__setitem__(slice(y, y + len(r)), r),
                           steps=2, seed=5, tile=16, overlap=4, batch_size=1, preprocessing=pre, postprocessing=post)
    np.testing.assert_array_equal(ihc, ref["ihc"])
    assert stats["skipped"] == 0 and (ihc[he.mean(-1) > 150] == np.rint(1.9 * 127.5)).all()


def test_stain_file_streams_tiffs_skips_glass_and_refuses_other_outputs(tmp_path):
    model = tiny_model()
    he = np.random.default_rng(4).integers(0, 200, (70, 90, 3), dtype=np.uint8)
    he[:, 50:] = 245  # glass on the right
    src = tmp_path / "he.tif"
    tifffile.imwrite(src, he, photometric="rgb", tile=(16, 16), compression="zlib")
    before = src.read_bytes()
    written = stain_file(model, str(src), str(tmp_path / "ihc.tif"), cells=str(tmp_path / "cells.tif"), steps=1,
                         stream=True)
    assert written == [str(tmp_path / "ihc.tif"), str(tmp_path / "cells.tif")] and src.read_bytes() == before
    ihc, cells = tifffile.imread(tmp_path / "ihc.tif"), tifffile.imread(tmp_path / "cells.tif")
    assert ihc.shape == he.shape and ihc.dtype == np.uint8 and cells.shape == (70, 90) and cells.dtype == np.uint32
    assert (ihc[:, 70:] == 255).all() and (cells[:, 70:] == 0).all()  # tiles of glass only: white, no cells
    with pytest.raises(InputError, match="TIFF"):
        stain_file(model, str(src), str(tmp_path / "ihc.png"), stream=True)
    assert not (tmp_path / "ihc.png").exists()


def test_stain_command_streams_and_fails_cleanly(tmp_path, capsys):
    path = tmp_path / "tiny.pt"
    tiny_model().save(path)
    he = np.random.default_rng(5).integers(0, 200, (40, 52, 3), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "he.tif", he, photometric="rgb")
    args = ["stain", "--he", str(tmp_path / "he.tif"), "--weights", str(path), "--steps", "1", "--stream",
            "--quiet"]
    capsys.readouterr()
    assert main([*args, "--out", str(tmp_path / "ihc.png")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "TIFF" in err, err
    assert main([*args, "--out", str(tmp_path / "ihc.tif"), "--cells", str(tmp_path / "cells.tif")]) == 0
    assert tifffile.imread(tmp_path / "ihc.tif").shape == he.shape
    assert sorted(os.listdir(tmp_path)) == ["cells.tif", "he.tif", "ihc.tif", "tiny.pt"]


def test_folder_form_streams_each_image_into_tiffs(tmp_path):
    from medfusion.apps.stain.files import stain_folder

    (tmp_path / "he").mkdir()
    rng = np.random.default_rng(6)
    for name in ("a", "b"):
        tifffile.imwrite(tmp_path / "he" / f"{name}.tif", rng.integers(0, 200, (33, 40, 3), dtype=np.uint8),
                         photometric="rgb")
    written = stain_folder(tiny_model(), str(tmp_path / "he"), str(tmp_path / "ihc"), cells_dir=str(tmp_path / "cells"),
                           stream=True, steps=1)
    assert sorted(os.path.relpath(p, tmp_path) for p in written) == [
        os.path.join(d, f"{n}.tif") for d in ("cells", "ihc") for n in ("a", "b")]
    assert tifffile.imread(tmp_path / "cells" / "b.tif").shape == (33, 40)


def test_tiff_row_writer_interrupted_while_it_is_made_leaves_no_file(tmp_path, monkeypatch):
    """A signal (here Ctrl-C) between the temporary file's creation and the writer's return — before any ``with``
    owns it — removes that file (a SIGTERM there once left one behind in a streamed stain run)."""
    import tifffile

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(tifffile, "TiffFile", interrupted)  # after imwrite made the file
    with pytest.raises(KeyboardInterrupt):
        TiffRowWriter(tmp_path / "ihc.tif", (8, 6, 3), np.uint8)
    assert list(tmp_path.iterdir()) == []
