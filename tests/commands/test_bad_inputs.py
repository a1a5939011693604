"""The bad-input corpus: every command, in a real process, on inputs a user gets wrong — one line on stderr naming the
problem (and the option that fixes it), exit status 2, nothing written or deleted, the inputs unchanged (sha256).

Each case builds its bad files in its own folder beside the shared ``kit`` (good inputs and tiny models) and
returns the command line and the words its one line must hold.  The ``kit`` and the case folder are compared
file by file, hidden files included, before and after the run.
"""

from __future__ import annotations

import shutil

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from conftest import hashes, run_cli

pytestmark = pytest.mark.slow


def nii(path, data, affine=None):
    nib.save(nib.Nifti1Image(np.asarray(data, np.float32), np.eye(4) if affine is None else affine), str(path))
    return path


def brats_case(kit):
    case = next(p for p in (kit / "brats").iterdir() if p.is_dir())
    return case, {c: next(case.glob(f"*-{c}.nii.gz")) for c in ("t1n", "t1c", "t2w")}


def contrasts(files, **replace):
    files = {**files, **replace}
    return [a for c in ("t1n", "t1c", "t2w") for a in (f"--{c}", files[c])]


def hn_pair(kit):
    images = kit / "headneck" / "imagesTr"
    return sorted(images.glob("*__PT.nii.gz"))[0], sorted(images.glob("*__CT.nii.gz"))[0]


def abdomen(kit):
    return next(p for p in (kit / "abdomen").iterdir() if p.is_dir())


def volume(path):
    img = nib.load(str(path))
    return np.asarray(img.dataobj, np.float32), img.affine


# ---- synthesize --------------------------------------------------------------------------------------------------
def s_missing_file(kit, ws, ro):
    _, f = brats_case(kit)
    return ["synthesize", *contrasts(f, t1n=ws / "none.nii.gz"), "--out", ws / "o.nii.gz"], ["not found"]


def s_unreadable(kit, ws, ro):
    _, f = brats_case(kit)
    (ws / "bad.nii.gz").write_bytes(b"not a nifti at all")
    return ["synthesize", *contrasts(f, t1n=ws / "bad.nii.gz"), "--out", ws / "o.nii.gz"], ["cannot read"]


def s_two_missing(kit, ws, ro):
    case, f = brats_case(kit)
    folder = ws / case.name
    folder.mkdir()
    for c in ("t1n", "t1c"):
        shutil.copy(f[c], folder)
    return ["synthesize", folder, "--out", ws / "out/"], ["t2w", "t2f"]


def s_shapes(kit, ws, ro):
    _, f = brats_case(kit)
    return ["synthesize", *contrasts(f, t1n=nii(ws / "s.nii.gz", np.ones((8, 8, 8)))), "--out", ws / "o.nii.gz"], \
        ["different shapes"]


def s_affines(kit, ws, ro):
    _, f = brats_case(kit)
    data, affine = volume(f["t1n"])
    moved = affine.copy()
    moved[0, 3] += 5
    return ["synthesize", *contrasts(f, t1n=nii(ws / "m.nii.gz", data, moved)), "--out", ws / "o.nii.gz"], \
        ["different affines"]


def s_nan(kit, ws, ro):
    _, f = brats_case(kit)
    data, affine = volume(f["t1c"])
    data[3, 3, 3] = np.nan
    return ["synthesize", *contrasts(f, t1c=nii(ws / "n.nii.gz", data, affine)), "--out", ws / "o.nii.gz"], ["NaN"]


def s_2d(kit, ws, ro):
    _, f = brats_case(kit)
    return ["synthesize", *contrasts(f, t2w=nii(ws / "f.nii.gz", np.ones((16, 16)))), "--out", ws / "o.nii.gz"], \
        ["expected a 3D image"]


def s_4d(kit, ws, ro):
    _, f = brats_case(kit)
    return ["synthesize", *contrasts(f, t2w=nii(ws / "f.nii.gz", np.ones((16, 16, 16, 2)))), "--out",
            ws / "o.nii.gz"], ["4D"]


def s_all_zero(kit, ws, ro):
    _, f = brats_case(kit)
    data, affine = volume(f["t2w"])
    return ["synthesize", *contrasts(f, t2w=nii(ws / "z.nii.gz", 0 * data, affine)), "--out", ws / "o.nii.gz"], \
        ["all zeros", "nothing to synthesize"]


def s_exists(kit, ws, ro):
    case, _ = brats_case(kit)
    (ws / "o.nii.gz").write_bytes(b"mine")
    return ["synthesize", case, "--out", ws / "o.nii.gz"], ["already exists", "use --overwrite"]


def s_output_is_input(kit, ws, ro):
    case, f = brats_case(kit)
    return ["synthesize", case, "--out", f["t1n"], "--overwrite"], ["one of the inputs"]


def s_extension(kit, ws, ro):
    case, _ = brats_case(kit)
    return ["synthesize", case, "--out", ws / "o.png"], ["must end in .nii.gz or .nii"]


def s_read_only(kit, ws, ro):
    case, _ = brats_case(kit)
    return ["synthesize", case, "--out", ro / "o.nii.gz"], ["not writable"]


def s_weights_not_a_checkpoint(kit, ws, ro):
    case, _ = brats_case(kit)
    (ws / "text.png").write_text("these are not weights")
    return ["synthesize", case, "--out", ws / "o.nii.gz", "--weights", ws / "text.png"], \
        ["not a PyTorch checkpoint"]


def s_dataset_with_a_bad_case(kit, ws, ro):
    case, f = brats_case(kit)
    shutil.copytree(case, ws / "data" / case.name)
    bad = ws / "data" / "BraTS-BAD-00001-000"
    bad.mkdir()
    for c, path in f.items():
        data, affine = volume(path)
        data[0, 0, 0] = np.nan if c == "t1c" else data[0, 0, 0]
        nii(bad / f"BraTS-BAD-00001-000-{c}.nii.gz", data, affine)
    return ["synthesize", ws / "data", "--out", ws / "out", "--weights", kit / "cwdm.pt", "--steps", "1"], \
        ["1 of 2 cases is bad", "nothing was written", "BraTS-BAD-00001-000", "NaN", "--skip-bad"]


# ---- demo --------------------------------------------------------------------------------------------------------
def d_user_scans(kit, ws, ro):
    (ws / "mine").mkdir()
    for path in (kit / "brats_full").rglob("*.nii.gz"):
        shutil.copy(path, ws / "mine")
    return ["demo", "--out", ws / "mine", "--data", kit / "brats_full", "--weights", kit / "cwdm.pt", "--steps", "1"], \
        ["did not write", "never replaced"]


def d_input_case(kit, ws, ro):
    shutil.copytree(kit / "brats_full", ws / "copy")
    case = next(p for p in (ws / "copy").iterdir())
    return ["demo", "--data", ws / "copy", "--out", case, "--weights", kit / "cwdm.pt", "--steps", "1"], \
        ["holds the input"]


def d_read_only(kit, ws, ro):
    return ["demo", "--out", ro / "demo", "--data", kit / "brats_full", "--weights", kit / "cwdm.pt"], \
        ["not writable"]


def d_out_is_a_file(kit, ws, ro):
    (ws / "demo").write_text("a file")
    return ["demo", "--out", ws / "demo", "--data", kit / "brats_full", "--weights", kit / "cwdm.pt"], \
        ["is not a folder"]


# ---- generate, convert, prior ----------------------------------------------------------------------------------
def _mask_like(kit, ws, name, fill):
    data, affine = volume(abdomen(kit) / "mask.nii.gz")
    return nii(ws / name, fill(data), affine)


def g_empty_mask(kit, ws, ro):
    mask = _mask_like(kit, ws, "m.nii.gz", lambda d: 0 * d)
    return ["generate", "--mask", mask, "--modality", "ct", "--out", ws / "ct.nii.gz"], ["empty"]


def g_float_labels(kit, ws, ro):
    mask = _mask_like(kit, ws, "m.nii.gz", lambda d: d + 0.5 * (d > 0))
    return ["generate", "--mask", mask, "--modality", "ct", "--out", ws / "ct.nii.gz"], ["non-integer"]


def g_unknown_label(kit, ws, ro):
    mask = _mask_like(kit, ws, "m.nii.gz", lambda d: np.where(d > 0, 999, 0))
    return ["generate", "--mask", mask, "--modality", "ct", "--out", ws / "ct.nii.gz"], ["999"]


def g_body_on_another_grid(kit, ws, ro):
    body = nii(ws / "body.nii.gz", np.ones((5, 5, 5)))
    return ["generate", "--mask", abdomen(kit) / "mask.nii.gz", "--body", body, "--modality", "ct", "--out",
            ws / "ct.nii.gz"], ["different shapes"]


def g_exists(kit, ws, ro):
    (ws / "ct.nii.gz").write_bytes(b"mine")
    return ["generate", "--mask", abdomen(kit) / "mask.nii.gz", "--modality", "ct", "--out", ws / "ct.nii.gz"], \
        ["already exists", "use --overwrite"]


def c_all_zero_mr(kit, ws, ro):
    data, affine = volume(abdomen(kit) / "t1.nii.gz")
    t1 = nii(ws / "t1.nii.gz", 0 * data, affine)
    return ["convert", "--image", t1, "--from", "t1", "--to", "ct", "--out", ws / "ct.nii.gz"], \
        ["all zeros", "nothing to convert"]


def c_same_modality(kit, ws, ro):
    return ["convert", "--image", abdomen(kit) / "t1.nii.gz", "--from", "t1", "--to", "t1", "--out",
            ws / "t1.nii.gz"], ["--from and --to are both t1"]


def p_nan_mask(kit, ws, ro):
    mask = _mask_like(kit, ws, "m.nii.gz", lambda d: np.where(d == d.max(), np.nan, d))
    return ["prior", "--mask", mask, "--modality", "ct", "--out", ws / "p.nii.gz"], ["NaN"]


def p_exists(kit, ws, ro):
    (ws / "p.nii.gz").write_bytes(b"mine")
    return ["prior", "--mask", abdomen(kit) / "mask.nii.gz", "--modality", "t2", "--out", ws / "p.nii.gz"], \
        ["already exists", "use --overwrite"]


# ---- segment -----------------------------------------------------------------------------------------------------
def seg_all_zero_pet(kit, ws, ro):
    pet, ct = hn_pair(kit)
    data, affine = volume(pet)
    zero = nii(ws / "pet.nii.gz", 0 * data, affine)
    return ["segment", "--pet", zero, "--ct", ct, "--out", ws / "l.nii.gz"], ["all zeros", "no tumour to segment"]


def seg_swapped(kit, ws, ro):
    pet, ct = hn_pair(kit)
    return ["segment", "--pet", ct, "--ct", pet, "--out", ws / "l.nii.gz"], ["swapped"]


def seg_one_path_two_outputs(kit, ws, ro):
    pet, ct = hn_pair(kit)
    return ["segment", "--pet", pet, "--ct", ct, "--out", ws / "a.nii.gz", "--uncertainty", ws / "a.nii.gz",
            "--overwrite"], ["two outputs go to the same file"]


def seg_lonely_pet(kit, ws, ro):
    pet, _ = hn_pair(kit)
    shutil.copytree(kit / "headneck" / "imagesTr", ws / "images")
    shutil.copy(pet, ws / "images" / "HN-LONELY__PT.nii.gz")
    return ["segment", "--images", ws / "images", "--out", ws / "labels", "--weights", kit / "petct.pt"], \
        ["1 of 3 cases is bad", "HN-LONELY: no CT file beside HN-LONELY__PT.nii.gz", "--skip-bad"]


def seg_folder_with_a_nan_pet(kit, ws, ro):
    images = ws / "images"
    shutil.copytree(kit / "headneck" / "imagesTr", images)
    pet = sorted(images.glob("*__PT.nii.gz"))[-1]
    data, affine = volume(pet)
    data[1, 1, 1] = np.nan
    nii(pet, data, affine)
    return ["segment", "--images", images, "--out", ws / "labels", "--weights", kit / "petct.pt", "--steps", "1"], \
        ["1 of 2 cases is bad", "nothing was written", "NaN", "--skip-bad"]


# ---- stain -------------------------------------------------------------------------------------------------------
def st_one_path_two_outputs(kit, ws, ro):
    return ["stain", "--he", kit / "he.png", "--out", ws / "c.png", "--cells", ws / "c.png"], \
        ["two outputs go to the same file"]


def st_one_path_two_outputs_overwrite(kit, ws, ro):
    args, words = st_one_path_two_outputs(kit, ws, ro)
    return args + ["--overwrite"], words


def st_grey(kit, ws, ro):
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(ws / "grey.png")
    return ["stain", "--he", ws / "grey.png", "--out", ws / "ihc.png"], ["not 8-bit RGB", "convert('RGB')"]


def st_rgba(kit, ws, ro):
    Image.fromarray(np.zeros((32, 32, 4), np.uint8)).save(ws / "rgba.png")
    return ["stain", "--he", ws / "rgba.png", "--out", ws / "ihc.png"], ["alpha"]


def st_nothing_to_write(kit, ws, ro):
    return ["stain", "--he", kit / "he.png"], ["nothing to write"]


def st_jpeg_labels(kit, ws, ro):
    return ["stain", "--he", kit / "he.png", "--cells", ws / "cells.jpg"], ["must end in"]


def st_folder_with_a_grey_image(kit, ws, ro):
    (ws / "images").mkdir()
    shutil.copy(kit / "he.png", ws / "images" / "a.png")
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(ws / "images" / "b.png")
    return ["stain", "--images", ws / "images", "--out", ws / "ihc", "--weights", kit / "stain.pt", "--steps", "1"], \
        ["1 of 2 cases is bad", "b.png", "not 8-bit RGB", "--skip-bad"]


# ---- evaluate ----------------------------------------------------------------------------------------------------
def _pairs(kit, ws):
    case = next(p for p in (kit / "brats_full").iterdir())
    for side in ("pred", "ref"):
        (ws / side).mkdir()
        shutil.copy(next(case.glob("*-t2f.nii.gz")), ws / side / "a.nii.gz")
    return ["evaluate", "--pred", ws / "pred", "--ref", ws / "ref", "--data-range", "1"]


def e_plot_names_a_file(kit, ws, ro):
    args = _pairs(kit, ws)
    (ws / "plots").write_text("a file")
    return args + ["--out", ws / "r.json", "--plot", ws / "plots"], ["plots is not a folder"]


def e_read_only_report(kit, ws, ro):
    return _pairs(kit, ws) + ["--out", ro / "r.json"], ["not writable"]


def e_read_only_plot(kit, ws, ro):
    return _pairs(kit, ws) + ["--plot", ro / "plots"], ["not writable"]


def e_brasyn_without_mask(kit, ws, ro):
    return ["evaluate", "--pred", kit / "brats_full", "--ref", kit / "brats_full", "--protocol", "brasyn"], \
        ["needs the tumour label map", "--mask"]


def e_report_ending(kit, ws, ro):
    return _pairs(kit, ws) + ["--out", ws / "r.txt"], ["must end in .json or .csv"]


def e_report_exists(kit, ws, ro):
    args = _pairs(kit, ws)
    (ws / "r.json").write_text("{}")
    return args + ["--out", ws / "r.json"], ["already exists", "use --overwrite"]


# ---- phantoms ----------------------------------------------------------------------------------------------------
def ph_read_only(kit, ws, ro):
    return ["phantoms", "--kind", "stain", "--n", "1", "--out", ro / "ph"], ["not writable"]


def ph_exists(kit, ws, ro):
    (ws / "ph" / "STAIN-PHANTOM-00000").mkdir(parents=True)
    (ws / "ph" / "STAIN-PHANTOM-00000" / "he.png").write_bytes(b"mine")
    return ["phantoms", "--kind", "stain", "--n", "1", "--out", ws / "ph"], ["already exists", "choose another --out"]


CASES = [f for name, f in sorted(globals().items()) if name.split("_")[0] in
         ("s", "d", "g", "c", "p", "seg", "st", "e", "ph") and callable(f)]


@pytest.mark.parametrize("case", CASES, ids=[f.__name__ for f in CASES])
def test_bad_input_ends_with_one_line_and_nothing_written(kit, tmp_path, read_only_folder, case):
    ws = tmp_path / "ws"
    ws.mkdir()
    args, words = case(kit, ws, read_only_folder)
    before = hashes(kit, folders=True), hashes(ws, folders=True)
    r = run_cli(*args)
    assert r.returncode == 2, r.stderr
    assert r.stderr.count("\n") == 1 and r.stderr.startswith(f"medfusion {args[0]}: error: "), r.stderr
    for word in words:
        assert word in r.stderr, (word, r.stderr)
    assert (hashes(kit, folders=True), hashes(ws, folders=True)) == before  # nothing written or deleted
