"""The stain application's data layer: image files, real pairs from scikit-image's IHC image, synthetic tiles."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from skimage.color import hed2rgb, rgb2hed
from skimage.draw import disk

from conftest import REPO
from medfusion.apps.stain import data, images
from medfusion.phantoms import histology as tissue
from medfusion.errors import InputError, OutputExistsError
from medfusion.io import load_rgb

def _render(h: np.ndarray, d: np.ndarray) -> np.ndarray:
    """8-bit RGB of haematoxylin and DAB concentration maps (no eosin)."""
    stains = np.stack([h, np.zeros_like(h), d], axis=-1)
    return np.round(255 * np.clip(hed2rgb(stains), 0, 1)).astype(np.uint8)


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.fixture(scope="module")
def ihc_crop() -> np.ndarray:
    """96×96 of the real IHC image with brown epithelium, blue nuclei and pale stroma."""
    return data.skimage_ihc()[160:256, 96:192]


# ------------------------------------------------------------------------------------------------- he_from_ihc


def test_he_from_ihc_is_deterministic_rgb_of_the_input_shape(ihc_crop):
    he = data.he_from_ihc(ihc_crop, seed=3)
    assert he.dtype == np.uint8 and he.shape == ihc_crop.shape
    assert np.array_equal(he, data.he_from_ihc(ihc_crop, seed=3))
    assert not np.array_equal(he, data.he_from_ihc(ihc_crop, seed=4))
    odd = data.he_from_ihc(ihc_crop[:45, :67])
    assert odd.shape == (45, 67, 3)
    with pytest.raises(InputError):
        data.he_from_ihc(ihc_crop[..., :2])


def test_he_from_ihc_keeps_haematoxylin_and_drops_dab(ihc_crop):
    he_hed, ihc_hed = rgb2hed(data.he_from_ihc(ihc_crop)), rgb2hed(ihc_crop)
    brown = ihc_hed[..., 2] > 0.1
    assert brown.sum() > 500  # the crop does hold DAB-stained tissue
    assert he_hed[..., 2][brown].mean() < 0.05 * ihc_hed[..., 2][brown].mean()
    assert np.corrcoef(he_hed[..., 0].ravel(), ihc_hed[..., 0].ravel())[0, 1] > 0.9
    assert he_hed[..., 1].mean() > 0.01  # eosin was added: pink tissue


def test_he_from_ihc_does_not_depend_on_the_dab(ihc_crop):
    hed = rgb2hed(ihc_crop)
    with_dab = _render(hed[..., 0], np.minimum(hed[..., 2], 0.4))
    without = _render(hed[..., 0], np.zeros(hed.shape[:2]))
    assert np.abs(with_dab.astype(int) - without).mean() > 50  # very different IHC images ...
    diff = np.abs(data.he_from_ihc(with_dab).astype(int) - data.he_from_ihc(without))
    assert diff.mean() < 1.5 and np.percentile(diff, 99) <= 6  # ... the same H&E (up to 8-bit rounding)


# ----------------------------------------------------------------------------------------------- nuclei_labels


def _disks(shape=(96, 96), radius=6):
    centres = [(18, 18), (18, 50), (20, 80), (60, 25), (62, 60), (80, 84)]
    truth = np.zeros(shape, dtype=bool)
    for c in centres:
        truth[disk(c, radius, shape=shape)] = True
    h = np.where(truth, 0.08, 0.004)
    return _render(h, np.zeros(shape)), h, truth, len(centres)


@pytest.mark.parametrize("as_rgb", [True, False])
def test_nuclei_labels_find_separate_disks(as_rgb):
    rgb, h, truth, n = _disks()
    labels = data.nuclei_labels(rgb if as_rgb else h)
    assert labels.dtype == np.uint16 and labels.shape == truth.shape
    assert abs(int(labels.max()) - n) <= 1
    assert set(np.unique(labels)) == set(range(int(labels.max()) + 1))
    assert labels[0, 0] == 0 and (labels[~truth] > 0).mean() < 0.02  # 0 is the background
    found = labels > 0
    assert 2 * (found & truth).sum() / (found.sum() + truth.sum()) > 0.8


def test_nuclei_labels_of_a_blank_image_are_empty():
    blank = np.full((40, 40, 3), 250, dtype=np.uint8)
    assert not data.nuclei_labels(blank).any()


# ------------------------------------------------------------------------------------------------ spatial split


def _overlap(a, b) -> bool:
    return a[0] < b[1] and b[0] < a[1] and a[2] < b[3] and b[2] < a[3]


def test_split_regions_are_disjoint_boxes_of_the_image():
    boxes = list(data.REGIONS.values())
    for i, a in enumerate(boxes):
        assert 0 <= a[0] < a[1] <= 512 and 0 <= a[2] < a[3] <= 512
        assert not any(_overlap(a, b) for b in boxes[i + 1:])


def test_tiles_stay_inside_their_region():
    ihc = data.skimage_ihc()
    seen = {}
    for split, (r0, r1, c0, c1) in data.REGIONS.items():
        cut = data.tiles(split, size=64, stride=64 if split == "train" else 32)
        assert cut
        for he, tile_ihc, cells, (r, c) in cut:
            assert r0 <= r and r + 64 <= r1 and c0 <= c and c + 64 <= c1
            assert he.shape == tile_ihc.shape == (64, 64, 3) and cells.shape == (64, 64)
            assert he.dtype == tile_ihc.dtype == np.uint8 and cells.dtype == np.uint16
            assert np.array_equal(tile_ihc, ihc[r:r + 64, c:c + 64])
            assert set(np.unique(cells)) == set(range(int(cells.max()) + 1))
        seen[split] = [(r, r + 64, c, c + 64) for *_, (r, c) in cut]
    assert len(seen["train"]) == 8 * 5
    for a in seen["train"]:
        assert not any(_overlap(a, b) for b in seen["val"] + seen["test"])
    assert sum(int(t[2].max()) for t in data.tiles("test", 64)) > 50  # nuclei are found


def test_tiles_refuse_bad_requests():
    with pytest.raises(InputError, match="unknown split"):
        data.tiles("holdout")
    with pytest.raises(InputError, match="does not fit"):
        data.tiles("val", size=65)
    with pytest.raises(InputError):
        data.tiles("val", size=32, stride=0)


# ------------------------------------------------------------------------------------------- synthetic tiles


def test_tissue_tile_is_seeded():
    a, b = tissue.make_tissue_tile((64, 80), seed=5), tissue.make_tissue_tile((64, 80), seed=5)
    assert set(a) == {"he", "ihc", "cells", "positive"}
    for key in a:
        assert np.array_equal(a[key], b[key])
    c = tissue.make_tissue_tile((64, 80), seed=6)
    assert not np.array_equal(a["he"], c["he"]) and not np.array_equal(a["cells"], c["cells"])
    assert a["he"].shape == a["ihc"].shape == (64, 80, 3) and a["he"].dtype == a["ihc"].dtype == np.uint8
    assert a["cells"].dtype == np.uint16 and a["positive"].dtype == bool
    assert set(np.unique(a["cells"])) == set(range(int(a["cells"].max()) + 1))


def test_tissue_tile_pair_is_aligned_and_positive_cells_are_brown_only_in_ihc():
    t = tissue.make_tissue_tile((128, 128), seed=1, positive_fraction=0.5)
    he, ihc, cells, positive = rgb2hed(t["he"]), rgb2hed(t["ihc"]), t["cells"], t["positive"]
    nuclei = cells > 0
    assert cells.max() > 20 and positive.any() and (nuclei & ~positive).any()
    for hed in (he, ihc):  # nuclei carry the haematoxylin in both images
        assert hed[..., 0][nuclei].mean() > 2 * hed[..., 0][~nuclei].mean()
    assert np.corrcoef(he[..., 0].ravel(), ihc[..., 0].ravel())[0, 1] > 0.8
    grey_he, grey_ihc = t["he"].mean(-1), t["ihc"].mean(-1)
    negative = nuclei & ~positive
    assert grey_he[nuclei].mean() < grey_he[~nuclei].mean() - 20
    assert grey_ihc[negative].mean() < grey_ihc[~nuclei & ~positive].mean() - 20
    dab_positive = ihc[..., 2][positive].mean()
    assert dab_positive > 5 * ihc[..., 2][negative].mean()
    assert he[..., 2][positive].mean() < 0.1 * dab_positive


def test_positive_fraction_is_about_the_share_of_positive_cells():
    for fraction in (0.0, 0.5):
        t = tissue.make_tissue_tile((128, 128), seed=2, positive_fraction=fraction)
        cells = t["cells"]
        share = len(np.unique(cells[t["positive"] & (cells > 0)])) / cells.max()
        assert abs(share - fraction) < 0.2


def test_tissue_tile_sizes():
    t = tissue.make_tissue_tile((45, 67), seed=0)
    assert t["he"].shape == (45, 67, 3) and t["cells"].shape == t["positive"].shape == (45, 67)
    for bad in [(31, 64), (64, 16), (64,), (32.5, 40)]:
        with pytest.raises(InputError):
            tissue.make_tissue_tile(bad)
    with pytest.raises(InputError):
        tissue.make_tissue_tile((32, 32), positive_fraction=1.5)


# ------------------------------------------------------------------------------------------------------ files


def test_save_and_load_labels_round_trip_16_bit(tmp_path):
    labels = np.array([[0, 1, 255, 256], [300, 4095, 65535, 7]], dtype=np.int32)
    for name in ("cells.png", "cells.tif"):
        path = images.save_labels(tmp_path / name, labels)
        back = images.load_labels(path)
        assert back.dtype == np.uint16 and np.array_equal(back, labels)
        with pytest.raises(OutputExistsError):
            images.save_labels(path, labels)
        images.save_labels(path, labels[::-1], overwrite=True)
        assert np.array_equal(images.load_labels(path), labels[::-1])
    with pytest.raises(ValueError):
        images.save_labels(tmp_path / "big.png", labels + 65535)
    with pytest.raises(InputError):
        images.save_labels(tmp_path / "cells.jpg", labels)
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".")]  # no temporary files left


def test_rgb_files_and_refusals(tmp_path):
    from PIL import Image

    rgb = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    for name in ("a.png", "a.tif"):
        assert np.array_equal(images.load_he(images.save_rgb(tmp_path / name, rgb)), rgb)
    assert images.load_he(images.save_rgb(tmp_path / "a.jpg", rgb)).shape == rgb.shape
    with pytest.raises(OutputExistsError):
        images.save_rgb(tmp_path / "a.png", rgb)
    with pytest.raises(InputError, match="must end in"):
        images.save_rgb(tmp_path / "a.bmp", rgb)
    with pytest.raises(ValueError):
        images.save_rgb(tmp_path / "b.png", rgb.astype(np.float32))
    Image.fromarray(np.zeros((8, 8, 4), dtype=np.uint8)).save(tmp_path / "rgba.png")
    with pytest.raises(InputError, match="only 8-bit RGB.*flatten the alpha"):
        images.load_he(tmp_path / "rgba.png")
    with pytest.raises(InputError, match="PIL mode .RGB.: labels must be a single-channel"):
        images.load_labels(tmp_path / "a.png")
    Image.fromarray(np.zeros((8, 8), dtype=np.float32)).save(tmp_path / "float.tif")
    with pytest.raises(InputError, match="floating-point"):
        images.load_labels(tmp_path / "float.tif")


def test_check_min_size():
    images.check_min_size(np.zeros((64, 64, 3)), 64, "he.png")
    with pytest.raises(InputError, match=r"he.png: image is 40×80, smaller than the network's minimum 64×64"):
        images.check_min_size(np.zeros((40, 80, 3)), 64, "he.png")


def test_tissue_dataset_round_trip_and_no_partial_writes(tmp_path):
    folders = tissue.write_tissue_dataset(tmp_path, 2, shape=(40, 48), seed0=7, prefix="T")
    assert [Path(f).name for f in folders] == ["T-00000", "T-00001"]
    for i, folder in enumerate(folders):
        tile = tissue.make_tissue_tile((40, 48), seed=7 + i)
        assert np.array_equal(load_rgb(os.path.join(folder, "he.png")), tile["he"])
        assert np.array_equal(load_rgb(os.path.join(folder, "ihc.png")), tile["ihc"])
        assert np.array_equal(images.load_labels(os.path.join(folder, "cells.png")), tile["cells"])
    before = _files(tmp_path)
    with pytest.raises(OutputExistsError):
        tissue.write_tissue_dataset(tmp_path, 3, shape=(40, 48), seed0=7, prefix="T")
    assert _files(tmp_path) == before  # the third case was not written either
    tissue.write_tissue_dataset(tmp_path, 2, shape=(40, 48), seed0=9, prefix="T", overwrite=True)
    assert not np.array_equal(load_rgb(os.path.join(folders[0], "he.png")),
                              tissue.make_tissue_tile((40, 48), seed=7)["he"])
    with pytest.raises(InputError):
        tissue.write_tissue_dataset(tmp_path / "small", 1, shape=(16, 16))
    assert not (tmp_path / "small").exists()


def test_skimage_dataset_round_trip_and_no_partial_writes(tmp_path):
    blocker = tmp_path / "V-00007" / "cells.png"
    blocker.parent.mkdir()
    blocker.write_bytes(b"")
    with pytest.raises(OutputExistsError):
        data.write_skimage_dataset(tmp_path, "val", size=64, prefix="V")
    assert _files(tmp_path) == {"V-00007", os.path.join("V-00007", "cells.png")}
    folders = data.write_skimage_dataset(tmp_path, "val", size=64, prefix="V", overwrite=True)
    cut = data.tiles("val", 64)
    assert len(folders) == len(cut) == 8
    for folder, (he, ihc, cells, _) in zip(folders, cut):
        assert np.array_equal(load_rgb(os.path.join(folder, "he.png")), he)
        assert np.array_equal(load_rgb(os.path.join(folder, "ihc.png")), ihc)
        assert np.array_equal(images.load_labels(os.path.join(folder, "cells.png")), cells)


@pytest.mark.slow
def test_importing_the_data_layer_is_light():
    code = ("import sys, medfusion.apps.stain, medfusion.apps.stain.images, medfusion.apps.stain.data, "
            "medfusion.phantoms.histology; print('torch' in sys.modules)")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, env=env, check=True)
    assert out.stdout.strip() == "False"
