"""The ``medfusion`` command: synthesize, phantoms and demo, run for real (subprocess for the main paths,
``main([...])`` in-process for the many bad inputs).

The tiny checkpoint has random weights: these tests check files, geometry, exit codes and messages, never
image quality.
"""

from __future__ import annotations

import json
import os
import shutil

import nibabel as nib
import numpy as np
import pytest

from conftest import REPO, hashes, run_cli
from medfusion.cli.main import main
from medfusion.outputs import MARKER

CASE = "BraTS-PHANTOM-00000-000"  # first case of the tiny_missing_dataset fixture (t2f missing)
ERROR_PREFIX = "medfusion synthesize: error:"


# ---- helpers ---------------------------------------------------------------------------------------------------
def call(capsys, *args) -> tuple[int, str, str]:
    """``main([...])`` in this process: exit code, stdout, stderr (argparse errors give their exit code)."""
    capsys.readouterr()
    try:
        rc = main([str(a) for a in args])
    except SystemExit as e:
        rc = e.code
    out, err = capsys.readouterr()
    return rc, out, err


def contrast_file(case_dir, contrast: str, name: str = CASE) -> str:
    return os.path.join(case_dir, f"{name}-{contrast}.nii.gz")


@pytest.fixture(scope="module")
def lively_checkpoint(tmp_path_factory):
    """A tiny random checkpoint whose samples are not all zero (MONAI zero-initialises the U-Net's output
    convolution, so the plain tiny checkpoint gives exactly 0 everywhere): random output weights and an LLL
    bias of about 0.5 in image space, so background zeroing and foreground values can both be checked."""
    import torch

    from conftest import TINY_NETWORK
    from medfusion.apps.cwdm.model import CWDMModel

    torch.manual_seed(0)
    model = CWDMModel.create(TINY_NETWORK)
    conv = [m for m in model.network.out.modules() if isinstance(m, torch.nn.Conv3d)][-1]
    with torch.no_grad():
        conv.weight.copy_(torch.randn(conv.weight.shape) * 0.05)
        conv.bias.zero_()
        conv.bias[0] = 0.5 * np.sqrt(8) / model.diffusion.space.lll_scale
    path = tmp_path_factory.mktemp("lively") / "lively.pt"
    model.save(path)
    return path


@pytest.fixture
def case_dir(tmp_path, tiny_missing_dataset):
    """A private copy of a tiny phantom case with t2f missing (t1n, t1c, t2w and seg present)."""
    dst = tmp_path / "inputs" / CASE
    shutil.copytree(tiny_missing_dataset / CASE, dst)
    return dst


def rewrite(path, fn=None, *, data=None, affine=None) -> None:
    """Replace a NIfTI file by ``fn(data)`` (or ``data``) and/or a new affine."""
    img = nib.load(str(path))
    arr = np.asarray(img.get_fdata(dtype=np.float32))
    if fn is not None:
        arr = fn(arr)
    if data is not None:
        arr = data
    nib.save(nib.Nifti1Image(np.asarray(arr, dtype=np.float32), img.affine if affine is None else affine),
             str(path))


def assert_same_geometry(out_path, ref_path) -> None:
    out, ref = nib.load(str(out_path)), nib.load(str(ref_path))
    assert out.shape == ref.shape
    np.testing.assert_allclose(out.affine, ref.affine, rtol=0, atol=1e-6)
    assert nib.aff2axcodes(out.affine) == nib.aff2axcodes(ref.affine)
    np.testing.assert_allclose(out.header.get_zooms(), ref.header.get_zooms(), rtol=0, atol=1e-6)
    assert int(out.header["qform_code"]) == int(ref.header["qform_code"])
    assert int(out.header["sform_code"]) == int(ref.header["sform_code"])
    np.testing.assert_allclose(out.header.get_qform(), ref.header.get_qform(), rtol=0, atol=1e-5)
    np.testing.assert_allclose(out.header.get_sform(), ref.header.get_sform(), rtol=0, atol=1e-6)


def assert_valid_output(out_path, ref_paths, *, nonzero=False) -> np.ndarray:
    """Float32 in [0, 1], zero wherever every input is zero (and, with ``nonzero``, not zero everywhere else)."""
    img = nib.load(str(out_path))
    assert img.get_data_dtype() == np.float32
    y = np.asarray(img.dataobj)
    assert np.isfinite(y).all() and y.min() >= 0.0 and y.max() <= 1.0
    background = np.ones(y.shape, dtype=bool)
    for p in ref_paths:
        background &= np.asarray(nib.load(str(p)).dataobj) == 0
    assert background.any() and (~background).any()
    assert np.all(y[background] == 0)
    if nonzero:
        assert y[~background].any()
    return y


# ---- synthesize: the main paths (real processes) ----------------------------------------------------------------
@pytest.mark.slow
def test_synthesize_case_folder(tmp_path, case_dir, lively_checkpoint):
    before = hashes(case_dir)
    out_dir = tmp_path / "out"
    r = run_cli("synthesize", case_dir, "--out", out_dir, "--weights", lively_checkpoint, "--steps", 2)
    assert r.returncode == 0, r.stderr
    out = out_dir / f"{CASE}-t2f.nii.gz"
    assert r.stdout.strip().splitlines()[-1] == str(out)
    assert sorted(os.listdir(out_dir)) == [out.name]  # no temporary files left behind
    ref = contrast_file(case_dir, "t1n")
    assert_same_geometry(out, ref)
    assert_valid_output(out, [contrast_file(case_dir, c) for c in ("t1n", "t1c", "t2w")], nonzero=True)
    assert hashes(case_dir) == before


@pytest.mark.slow
def test_synthesize_explicit_files(tmp_path, case_dir, tiny_checkpoint):
    before = hashes(case_dir)
    out_dir = tmp_path / "out"
    files = [a for c in ("t1n", "t1c", "t2w") for a in (f"--{c}", contrast_file(case_dir, c))]
    r = run_cli("synthesize", *files, "--out", out_dir, "--weights", tiny_checkpoint, "--steps", 2, "--quiet")
    assert r.returncode == 0, r.stderr
    out = out_dir / f"{CASE}-t2f.nii.gz"
    assert sorted(os.listdir(out_dir)) == [out.name]
    assert_same_geometry(out, contrast_file(case_dir, "t1c"))
    assert hashes(case_dir) == before


def test_synthesize_explicit_files_other_contrast(tmp_path, tiny_dataset, tiny_checkpoint, capsys):
    """The class-conditioned model fills in whichever contrast is left out (here t1c), to an explicit file."""
    case = tiny_dataset / CASE
    out = tmp_path / "sub" / "synth.nii.gz"
    files = [a for c in ("t1n", "t2w", "t2f") for a in (f"--{c}", contrast_file(case, c))]
    rc, stdout, err = call(capsys, "synthesize", *files, "--out", out, "--weights", tiny_checkpoint,
                           "--steps", 2, "--quiet")
    assert rc == 0, err
    assert stdout.strip() == str(out)
    assert_same_geometry(out, contrast_file(case, "t2w"))

    # an output folder instead of a file name: <case>-<missing>.nii.gz inside it
    rc, _, err = call(capsys, "synthesize", *files, "--out", f"{tmp_path / 'dir'}/", "--weights",
                      tiny_checkpoint, "--steps", 2, "--quiet")
    assert rc == 0, err
    assert os.listdir(tmp_path / "dir") == [f"{CASE}-t1c.nii.gz"]


def _rotation(axis: int, degrees: float) -> np.ndarray:
    a = np.deg2rad(degrees)
    c, s = np.cos(a), np.sin(a)
    i, j = [k for k in range(3) if k != axis]
    r = np.eye(3)
    r[i, i], r[i, j], r[j, i], r[j, j] = c, -s, s, c
    return r


def test_synthesize_keeps_oblique_non_ras_anisotropic_odd_geometry(tmp_path, lively_checkpoint, capsys):
    from medfusion.phantoms.brain import make_brats_phantom

    shape, zooms = (23, 19, 15), (0.9, 1.3, 2.7)
    # voxel axes → posterior, superior, left (permuted and flipped), then rotated 20° about x and -20° about y
    permute_flip = np.array([[0.0, 0.0, -1.0], [-1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    affine = np.eye(4)
    affine[:3, :3] = _rotation(0, 20.0) @ _rotation(1, -20.0) @ permute_flip @ np.diag(zooms)
    affine[:3, 3] = (31.5, -12.25, 47.0)
    codes = nib.aff2axcodes(affine)
    assert codes == ("P", "S", "L")

    phantom = make_brats_phantom(shape, seed=3)
    case = tmp_path / "case"
    case.mkdir()
    paths = {}
    for c in ("t1n", "t1c", "t2w"):
        img = nib.Nifti1Image(phantom[c].astype(np.float32), affine)
        img.header.set_qform(affine, code=1)
        img.header.set_sform(affine, code=2)
        paths[c] = case / f"OBL-{c}.nii.gz"
        nib.save(img, str(paths[c]))
    before = hashes(case)

    out_dir = tmp_path / "out"
    rc, _, err = call(capsys, "synthesize", case, "--out", out_dir, "--weights", lively_checkpoint, "--steps", 2,
                      "--quiet")
    assert rc == 0, err
    out = out_dir / "OBL-t2f.nii.gz"
    img = nib.load(str(out))
    assert img.shape == shape
    np.testing.assert_allclose(img.affine, affine, rtol=0, atol=1e-5)
    assert nib.aff2axcodes(img.affine) == codes
    np.testing.assert_allclose(img.header.get_zooms(), zooms, rtol=0, atol=1e-5)
    assert_same_geometry(out, paths["t1n"])
    assert_valid_output(out, paths.values(), nonzero=True)
    assert hashes(case) == before


def test_overwrite(tmp_path, case_dir, tiny_checkpoint, capsys):
    out_dir = tmp_path / "out"
    out = out_dir / f"{CASE}-t2f.nii.gz"
    out_dir.mkdir()
    out.write_bytes(b"previous result")
    args = ["synthesize", case_dir, "--out", out_dir, "--weights", tiny_checkpoint, "--steps", 2, "--quiet"]

    rc, stdout, err = call(capsys, *args)
    assert rc == 2 and stdout == ""
    assert err.count("\n") == 1 and err.startswith(ERROR_PREFIX) and "already exists" in err
    assert out.read_bytes() == b"previous result" and os.listdir(out_dir) == [out.name]

    rc, _, err = call(capsys, *args, "--overwrite")
    assert rc == 0, err
    assert os.listdir(out_dir) == [out.name]
    assert_same_geometry(out, contrast_file(case_dir, "t2w"))


# ---- synthesize: bad input → one line, exit 2, nothing written, inputs untouched ---------------------------------
def _garbage(case):
    with open(contrast_file(case, "t1c"), "wb") as fh:
        fh.write(np.random.default_rng(0).bytes(4096))


def _all_four(case):
    shutil.copyfile(contrast_file(case, "t1n"), contrast_file(case, "t2f"))


def _two_missing(case):
    os.remove(contrast_file(case, "t2w"))


def _shape(case):
    rewrite(contrast_file(case, "t1c"), lambda a: a[:, :, :-1])


def _affine(case):
    path = contrast_file(case, "t2w")
    affine = nib.load(path).affine.copy()
    affine[:3, 3] += (0.0, 2.0, 0.0)
    rewrite(path, affine=affine)


def _set_voxel(value):
    def edit(case):
        def put(a):
            a = a.copy()
            a[3, 4, 5] = value
            return a

        rewrite(contrast_file(case, "t2w"), put)

    return edit


def _two_d(case):
    rewrite(contrast_file(case, "t1n"), lambda a: a[:, :, a.shape[2] // 2])


def _four_d(case):
    rewrite(contrast_file(case, "t1n"), lambda a: np.stack([a] * 4, axis=-1))


def _all_zero(case):
    rewrite(contrast_file(case, "t1c"), np.zeros_like)


def _looping_link(case):
    path = contrast_file(case, "t2w")
    os.remove(path)
    os.symlink(os.path.basename(path), path)  # points at itself


BAD_CASES = {
    "all_zero_contrast": (_all_zero, ("contrast t1c (", "-t1c.nii.gz) is all zeros")),
    "looping_link": (_looping_link, ("not a readable file", "-t2w.nii.gz")),
    # name: (edit of the case folder, expected words in the message)
    "unreadable": (_garbage, ("cannot read", "-t1c.nii.gz")),
    "zero_missing": (_all_four, ("all four contrasts are present",)),
    "two_missing": (_two_missing, ("2 contrasts are missing", "t2w", "t2f")),
    "mismatched_shapes": (_shape, ("different shapes",)),
    "mismatched_affines": (_affine, ("different affines",)),
    "nan": (_set_voxel(np.nan), ("NaN", "-t2w.nii.gz")),
    "inf": (_set_voxel(np.inf), ("Inf", "-t2w.nii.gz")),
    "2d": (_two_d, ("expected a 3D image", "-t1n.nii.gz")),
    "4d": (_four_d, ("expected a 3D image", "4D", "-t1n.nii.gz")),
}


def assert_clean_failure(rc, stdout, stderr, words, out_dir, before, folder) -> None:
    assert rc == 2
    assert stdout == ""
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith(ERROR_PREFIX)
    for w in words:
        assert w in lines[0], (w, lines[0])
    assert not os.path.exists(out_dir)  # nothing written, not even the folder
    assert hashes(folder) == before


@pytest.mark.parametrize("kind", list(BAD_CASES))
def test_bad_case_folder(kind, tmp_path, case_dir, tiny_checkpoint, capsys):
    edit, words = BAD_CASES[kind]
    edit(case_dir)
    before = hashes(case_dir)
    out_dir = tmp_path / "out"
    rc, stdout, err = call(capsys, "synthesize", case_dir, "--out", out_dir, "--weights", tiny_checkpoint,
                           "--steps", 2, "--quiet")
    assert_clean_failure(rc, stdout, err, words, out_dir, before, case_dir)


def _files(case, contrasts=("t1n", "t1c", "t2w")):
    return [a for c in contrasts for a in (f"--{c}", contrast_file(case, c))]


BAD_ARGS = {
    # name: (arguments after "synthesize" given the case folder and weights, expected words)
    "missing_file": (lambda case, w: [*_files(case)[:-1], os.path.join(case, "absent-t2w.nii.gz"), "--weights", w],
                     ("not found", "absent-t2w.nii.gz")),
    "missing_case_folder": (lambda case, w: [os.path.join(case, "no-such-case"), "--weights", w],
                            ("not found", "no-such-case")),
    "zero_missing_files": (lambda case, w: [*_files(case), "--t2f", contrast_file(case, "t1n"), "--weights", w],
                           ("exactly three",)),
    "two_missing_files": (lambda case, w: [*_files(case, ("t1n", "t1c")), "--weights", w],
                          ("exactly three", "t2w, t2f")),
    "weights_missing": (lambda case, w: [case, "--weights", os.path.join(case, "nope.pt")],
                        ("weights not found", "nope.pt")),
    "weights_unreadable": (lambda case, w: [case, "--weights", contrast_file(case, "t1n")], ("cannot read weights",)),
    "folder_and_files": (lambda case, w: [case, *_files(case, ("t1n",)), "--weights", w], ("not both",)),
    "nothing": (lambda case, w: ["--weights", w], ("case folder",)),
}


@pytest.mark.parametrize("kind", list(BAD_ARGS))
def test_bad_arguments(kind, tmp_path, case_dir, tiny_checkpoint, capsys):
    make_args, words = BAD_ARGS[kind]
    before = hashes(case_dir)
    out_dir = tmp_path / "out"
    rc, stdout, err = call(capsys, "synthesize", *make_args(str(case_dir), str(tiny_checkpoint)),
                           "--out", out_dir, "--steps", 2, "--quiet")
    assert_clean_failure(rc, stdout, err, words, out_dir, before, case_dir)


@pytest.mark.parametrize("options, words", [
    (["--steps", "0"], ("--steps", "at least 1")), (["--steps", "-5"], ("--steps", "at least 1")),
    (["--steps", "1000000"], ("steps must be an integer from 1 to 1000",)),
    (["--seed", str(2**64)], ("--seed", "must be from 0")), (["--seed", "x"], ("--seed", "whole number")),
    (["--device", "foo"], ("unknown device 'foo'",)), (["--precision", "float16"], ("CUDA devices only",)),
])
def test_bad_options(options, words, tmp_path, case_dir, tiny_checkpoint, capsys):
    before = hashes(case_dir)
    out_dir = tmp_path / "out"
    rc, stdout, err = call(capsys, "synthesize", case_dir, "--out", out_dir, "--weights", tiny_checkpoint,
                           "--quiet", *options)
    assert_clean_failure(rc, stdout, err, words, out_dir, before, case_dir)


def test_cuda_asked_for_on_a_cpu_only_torch(tmp_path, case_dir, tiny_checkpoint, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this torch sees a GPU")
    rc, stdout, err = call(capsys, "synthesize", case_dir, "--out", tmp_path / "out", "--weights", tiny_checkpoint,
                           "--device", "cuda")
    assert_clean_failure(rc, stdout, err, ("sees no CUDA GPU", "--device cpu"), tmp_path / "out",
                         hashes(case_dir), case_dir)


def test_outputs_are_checked_before_any_work_and_inputs_never_replaced(tmp_path, case_dir, tiny_checkpoint, capsys):
    before = hashes(case_dir)
    t1n = contrast_file(case_dir, "t1n")
    cases = [
        (["--out", t1n, "--overwrite"], ("is one of the inputs",)),
        (["--out", str(tmp_path / "x.png")], ("must end in .nii.gz or .nii", "x.png")),
        (["--out", os.path.join(t1n, "out.nii.gz")], ("is not a folder",)),
    ]
    for args, words in cases:
        rc, stdout, err = call(capsys, "synthesize", case_dir, "--weights", tiny_checkpoint, "--quiet", *args)
        assert_clean_failure(rc, stdout, err, words, tmp_path / "x.png", before, case_dir)
    # one file given as three contrasts
    rc, stdout, err = call(capsys, "synthesize", "--t1n", t1n, "--t1c", t1n, "--t2w", t1n, "--out",
                           tmp_path / "out", "--weights", tiny_checkpoint)
    assert_clean_failure(rc, stdout, err, ("same file",), tmp_path / "out", before, case_dir)


def test_unknown_sampler_is_a_usage_error(tmp_path, case_dir, tiny_checkpoint, capsys):
    rc, _, err = call(capsys, "synthesize", case_dir, "--weights", tiny_checkpoint, "--sampler", "euler",
                      "--out", tmp_path / "out")
    assert rc == 2
    assert "invalid choice" in err and "euler" in err
    assert not os.path.exists(tmp_path / "out")


@pytest.mark.slow
def test_bad_input_in_a_real_process(tmp_path, case_dir, tiny_checkpoint):
    """Nothing else (warnings, tracebacks) reaches stderr in a real process."""
    edit, words = BAD_CASES["unreadable"]
    edit(case_dir)
    before = hashes(case_dir)
    out_dir = tmp_path / "out"
    r = run_cli("synthesize", case_dir, "--out", out_dir, "--weights", tiny_checkpoint, "--steps", 2)
    assert_clean_failure(r.returncode, r.stdout, r.stderr, words, out_dir, before, case_dir)


# ---- phantoms ---------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_phantoms(tmp_path):
    out = tmp_path / "ds"
    r = run_cli("phantoms", "--out", out, "--n", 2, "--shape", 16, 16, 16)
    assert r.returncode == 0, r.stderr
    cases = sorted(os.listdir(out))
    assert cases == ["BraTS-PHANTOM-00000-000", "BraTS-PHANTOM-00001-000"]
    for name in cases:
        files = sorted(os.listdir(out / name))
        assert files == sorted(f"{name}-{k}.nii.gz" for k in ("t1n", "t1c", "t2w", "t2f", "seg"))
        for f in files:
            assert nib.load(str(out / name / f)).shape == (16, 16, 16)

    # a second run refuses to overwrite the dataset and leaves it as it is
    before = hashes(out)
    rc = main(["phantoms", "--out", str(out), "--n", "2", "--shape", "16", "16", "16"])
    assert rc == 2 and hashes(out) == before


@pytest.mark.parametrize("kind, shape", [("brats", (16, 16, 16)), ("abdomen", (20, 18, 12)),
                                         ("headneck", (32, 32, 16)), ("stain", (40, 48))])
def test_phantoms_of_every_kind_come_from_the_one_registry(tmp_path, kind, shape):
    """Every kind of :data:`medfusion.phantoms.KINDS` writes through the same command, with the kind's case-name
    prefix, and the same seed writes the same files; ``--drop random`` (brats) leaves one contrast out per case."""
    from medfusion.phantoms import KINDS

    args = ["phantoms", "--kind", kind, "--n", "1", "--seed", "5", "--shape", *map(str, shape)]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0 and main([*args, "--out", str(tmp_path / "b")]) == 0
    written = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert written and all(KINDS[kind].prefix in str(p) for p in written)
    assert hashes(tmp_path / "a") == hashes(tmp_path / "b")
    if kind == "brats":
        assert main(["phantoms", "--n", "2", "--shape", "16", "16", "16", "--drop", "random",
                     "--out", str(tmp_path / "c")]) == 0
        assert all(len(list(case.iterdir())) == 4 for case in (tmp_path / "c").iterdir())  # 3 contrasts + seg


# ---- demo -------------------------------------------------------------------------------------------------------
def _check_demo_folder(folder, case_name: str, missing: str = "t2f") -> dict:
    written = sorted([f"{case_name}-{missing}.nii.gz", "montage.png", "metrics.json"])
    assert sorted(os.listdir(folder)) == sorted(written + [MARKER])
    assert json.loads((folder / MARKER).read_text()) == {"owner": "medfusion demo", "files": written}
    assert (folder / "montage.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["case"] == case_name and metrics["missing"] == missing
    for who in ("model", "baseline"):
        for key in ("ssim", "psnr"):
            assert np.isfinite(metrics[who][key])
    assert metrics["baseline"]["name"]
    return metrics


@pytest.mark.slow
def test_demo_twice(tmp_path, tiny_checkpoint, tiny_dataset, capsys):
    """The shipped sample case (96×96×64) in a real process, then again on other data: the folder is replaced."""
    out = tmp_path / "demo"
    r = run_cli("demo", "--weights", tiny_checkpoint, "--steps", 2, "--out", out, "--quiet", timeout=300)
    assert r.returncode == 0, r.stderr
    sample = sorted(os.listdir(REPO / "data" / "brats_phantom"))[0]
    metrics = _check_demo_folder(out, sample)
    assert metrics["steps"] == 2
    assert nib.load(str(out / f"{sample}-t2f.nii.gz")).shape == (96, 96, 64)
    assert "SSIM" in r.stdout and "PSNR" in r.stdout
    assert "cWDM" in r.stdout and metrics["baseline"]["name"] in r.stdout

    for _ in range(2):  # other data, then the same again (the same file names in the folder it replaces)
        rc, stdout, err = call(capsys, "demo", "--weights", tiny_checkpoint, "--steps", 2, "--out", out,
                               "--data", tiny_dataset, "--missing", "t1c", "--quiet")
        assert rc == 0, err
        _check_demo_folder(out, CASE, "t1c")  # the previous run's files are gone
    assert_same_geometry(out / f"{CASE}-t1c.nii.gz", contrast_file(tiny_dataset / CASE, "t1c"))
    assert "SSIM" in stdout


def test_demo_refuses_to_replace_a_foreign_folder(tmp_path, tiny_checkpoint, tiny_dataset, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    rc, _, err = call(capsys, "demo", "--weights", tiny_checkpoint, "--steps", 1, "--out", out,
                      "--data", tiny_dataset, "--quiet")
    assert rc == 2 and err.startswith("medfusion demo: error:") and "notes.txt" in err
    assert os.listdir(out) == ["notes.txt"]

    rc, _, err = call(capsys, "demo", "--weights", tiny_checkpoint, "--steps", 1, "--out", tmp_path / "d",
                      "--data", tmp_path / "nowhere", "--quiet")
    assert rc == 2 and "not found" in err and not os.path.exists(tmp_path / "d")


def _write_dicom_series(volume, folder) -> float:
    """``volume`` (a medfusion Volume) as a DICOM series of int16 slices written by SimpleITK (its geometry in
    LPS), intensities multiplied by a scale so they survive as integers; returns the scale."""
    import SimpleITK as sitk

    os.makedirs(folder)
    data = np.transpose(volume.data, (2, 1, 0))  # (z, y, x) as SimpleITK holds it
    flip = np.diag([-1.0, -1.0, 1.0])
    direction = flip @ (volume.affine[:3, :3] / np.array(volume.spacing))
    origin = flip @ volume.affine[:3, 3]
    scale = 1000.0 / max(float(np.abs(data).max()), 1e-6)
    for k in range(data.shape[0]):
        sl = sitk.GetImageFromArray(np.rint(data[k:k + 1] * scale).astype(np.int16))
        pos = origin + direction[:, 2] * volume.spacing[2] * k
        sl.SetSpacing(tuple(float(v) for v in volume.spacing))
        sl.SetOrigin(tuple(float(v) for v in pos))
        sl.SetDirection(tuple(float(v) for v in direction.ravel()))
        tags = {"0008|0060": "MR", "0020|000d": "1.2.3.4", "0020|000e": "1.2.3.4.5", "0020|0013": str(k + 1),
                "0020|0032": "\\".join(f"{v:.6f}" for v in pos),
                "0020|0037": "\\".join(f"{v:.6f}" for v in list(direction[:, 0]) + list(direction[:, 1])),
                "0028|0030": f"{volume.spacing[1]:.6f}\\{volume.spacing[0]:.6f}",
                "0018|0050": f"{volume.spacing[2]:.6f}", "0028|1052": "0", "0028|1053": "1"}
        for key, value in tags.items():
            sl.SetMetaData(key, value)
        writer = sitk.ImageFileWriter()
        writer.KeepOriginalImageUIDOn()
        writer.SetFileName(os.path.join(folder, f"slice{k:03d}.dcm"))
        writer.Execute(sl)
    return scale


def test_synthesize_and_evaluate_take_nrrd_mha_and_dicom_series(tmp_path, case_dir, lively_checkpoint, capsys):
    """Inputs as NRRD, MHA and a DICOM series folder give the output the NIfTI inputs give, on the same grid; and
    `medfusion evaluate` pairs and reads .mha files."""
    import SimpleITK as sitk

    from medfusion.io import load_volume

    nifti = {c: contrast_file(case_dir, c) for c in ("t1n", "t1c", "t2w")}
    conv = tmp_path / "converted"
    conv.mkdir()
    files = {"t1n": str(conv / "a-t1n.nrrd"), "t1c": str(conv / "a-t1c.mha"), "t2w": str(conv / "a-t2w")}
    for c in ("t1n", "t1c"):
        sitk.WriteImage(sitk.ReadImage(nifti[c]), files[c])
    scales = {"t1n": 1.0, "t1c": 1.0, "t2w": _write_dicom_series(load_volume(nifti["t2w"]), files["t2w"])}
    for c, f in files.items():  # the readers agree on geometry (and, but for DICOM's integers, on values)
        a, b = load_volume(f), load_volume(nifti[c])
        np.testing.assert_allclose(a.affine, b.affine, atol=1e-4)
        np.testing.assert_allclose(a.data / scales[c], b.data, atol=2e-3 * float(np.abs(b.data).max()))

    outs = {}
    for kind, inputs in (("nifti", nifti), ("other", files)):
        out = tmp_path / f"{kind}.nii.gz"
        args = [a for c in ("t1n", "t1c", "t2w") for a in (f"--{c}", inputs[c])]
        rc, _, err = call(capsys, "synthesize", *args, "--out", out, "--weights", lively_checkpoint, "--steps", 2,
                          "--quiet")
        assert rc == 0, err
        outs[kind] = nib.load(str(out))
    np.testing.assert_allclose(outs["other"].affine, outs["nifti"].affine, atol=1e-4)
    a, b = (np.asarray(o.dataobj) for o in outs.values())
    assert a.shape == b.shape and np.abs(a - b).mean() < 0.02  # the DICOM input is quantised, nothing else differs

    ref = tmp_path / "ref" / "x-t2f.mha"
    pred = tmp_path / "pred" / "x-t2f.mha"
    for path, img in ((ref, outs["nifti"]), (pred, outs["other"])):
        path.parent.mkdir()
        sitk.WriteImage(sitk.ReadImage(str(tmp_path / ("nifti.nii.gz" if img is outs["nifti"] else "other.nii.gz"))),
                        str(path))
    rc, stdout, err = call(capsys, "evaluate", "--pred", pred.parent, "--ref", ref.parent, "--protocol", "image",
                           "--data-range", "1", "--quiet")
    assert rc == 0, err
    assert "ssim" in stdout and "1 case(s)" in stdout


# ---- help --------------------------------------------------------------------------------------------------------
def test_help_names_every_application_and_every_default():
    import argparse

    from medfusion.cli.main import build_parser

    parser = build_parser()
    text = parser.format_help()
    for words in ("cWDM", "seg2med", "PET/CT", "StainDiffuser", "evaluate", "phantoms"):
        assert words in text, words
    commands = parser._subparsers._group_actions[0].choices
    for name, sub in commands.items():
        for action in sub._actions:
            if action.option_strings and action.default not in (None, False, argparse.SUPPRESS):
                assert "default" in (action.help or ""), (name, action.option_strings)
