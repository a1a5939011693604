"""BraTS case folders: the missing contrast, explicit files, dataset listing and output names."""

import os

import numpy as np
import pytest

from medfusion.apps.cwdm.layout import CONTRASTS, BraTSCase, case_from_files, find_case, list_cases, load_case
from medfusion.errors import InputError
from medfusion.io import save_like, volume_from_array

CASE = "BraTS-GLI-00001-000"


def _make_case(root, name=CASE, kinds=("t1n", "t1c", "t2f", "seg"), ext=".nii.gz", shape=(4, 5, 6)):
    folder = root / name
    ref = volume_from_array(np.zeros(shape), np.diag([1.0, 1.0, 1.0, 1.0]))
    for kind in kinds:
        save_like(np.ones(shape), ref, folder / f"{name}-{kind}{ext}")
    return folder


def test_missing_contrast_is_found(tmp_path):
    folder = _make_case(tmp_path)
    case = find_case(folder)
    assert case.name == CASE
    assert case.missing == "t2w"
    assert list(case.paths) == ["t1n", "t1c", "t2f"]
    assert case.seg == str(folder / f"{CASE}-seg.nii.gz")
    assert case.folder == str(folder)
    assert case.output_path(tmp_path / "out") == str(tmp_path / "out" / f"{CASE}-t2w.nii.gz")


def test_uncompressed_files_and_hidden_files(tmp_path):
    folder = _make_case(tmp_path, kinds=("t1c", "t2w", "t2f"), ext=".nii")
    (folder / f".{CASE}-t1n.nii.gz.abc.tmp").write_bytes(b"")  # e.g. an interrupted write
    (folder / "notes.txt").write_text("hello")
    case = find_case(folder)
    assert case.missing == "t1n" and case.seg is None


def test_zero_missing_is_an_error_unless_allowed(tmp_path):
    folder = _make_case(tmp_path, kinds=CONTRASTS)
    with pytest.raises(InputError, match="nothing to synthesise"):
        find_case(folder)
    case = find_case(folder, require_missing=False)
    assert case.missing is None and list(case.paths) == list(CONTRASTS)
    with pytest.raises(ValueError):
        case.output_path(tmp_path)


def test_two_missing_is_an_error(tmp_path):
    folder = _make_case(tmp_path, kinds=("t1n", "t2f"))
    with pytest.raises(InputError, match="2 contrasts are missing.*t1c, t2w"):
        find_case(folder)
    with pytest.raises(InputError, match="missing"):
        find_case(folder, require_missing=False)


def test_bad_folders(tmp_path):
    with pytest.raises(InputError, match="not found"):
        find_case(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no BraTS contrast files"):
        find_case(tmp_path / "empty")
    folder = _make_case(tmp_path)
    save_like(np.ones((4, 5, 6)), volume_from_array(np.ones((4, 5, 6)), np.eye(4)), folder / f"{CASE}-t1n.nii")
    with pytest.raises(InputError, match="more than one file for t1n"):
        find_case(folder)


def test_mixed_cases_in_one_folder(tmp_path):
    folder = _make_case(tmp_path, kinds=("t1n", "t1c"))
    ref = volume_from_array(np.ones((4, 5, 6)), np.eye(4))
    save_like(ref.data, ref, folder / "BraTS-GLI-00002-000-t2f.nii.gz")
    with pytest.raises(InputError, match="different cases"):
        find_case(folder)


def test_case_from_explicit_files(tmp_path):
    folder = _make_case(tmp_path, kinds=CONTRASTS)
    files = {c: folder / f"{CASE}-{c}.nii.gz" for c in CONTRASTS}
    case = case_from_files(t1n=files["t1n"], t2w=files["t2w"], t2f=files["t2f"])
    assert case.missing == "t1c" and case.name == CASE and case.folder is None
    assert case.output_path("out") == os.path.join("out", f"{CASE}-t1c.nii.gz")
    assert case_from_files(files["t1n"], files["t1c"], files["t2w"], name="mine").name == "mine"

    with pytest.raises(InputError, match="left out: none"):
        case_from_files(**files)
    with pytest.raises(InputError, match="left out: t1c, t2w"):
        case_from_files(t1n=files["t1n"], t2f=files["t2f"])
    with pytest.raises(InputError, match="t2f file not found"):
        case_from_files(t1n=files["t1n"], t1c=files["t1c"], t2f=tmp_path / "nope.nii.gz")


def test_case_name_falls_back_to_the_first_stem(tmp_path):
    ref = volume_from_array(np.ones((2, 2, 2)), np.eye(4))
    paths = [save_like(ref.data, ref, tmp_path / f"{n}.nii.gz") for n in ("scan_a", "scan_b", "scan_c")]
    case = case_from_files(t1c=paths[0], t2w=paths[1], t2f=paths[2])
    assert case.name == "scan_a" and case.missing == "t1n"


def test_list_cases_sorted(tmp_path):
    _make_case(tmp_path, name="BraTS-GLI-00002-000", kinds=("t1n", "t1c", "t2w"))
    _make_case(tmp_path, name="BraTS-GLI-00001-000", kinds=("t1c", "t2w", "t2f"))
    (tmp_path / "unrelated").mkdir()
    cases = list_cases(tmp_path)
    assert [c.name for c in cases] == ["BraTS-GLI-00001-000", "BraTS-GLI-00002-000"]
    assert [c.missing for c in cases] == ["t1n", "t2f"]
    with pytest.raises(InputError, match="no BraTS case folders"):
        list_cases(tmp_path / "unrelated")
    with pytest.raises(InputError, match="not found"):
        list_cases(tmp_path / "nope")


def test_load_case_checks_geometry(tmp_path):
    folder = _make_case(tmp_path)
    volumes = load_case(find_case(folder))
    assert list(volumes) == ["t1n", "t1c", "t2f"]
    assert all(v.shape == (4, 5, 6) for v in volumes.values())

    other = tmp_path / "other"
    ref = volume_from_array(np.ones((4, 5, 6)), np.eye(4))
    save_like(ref.data, ref, other / "x-t1n.nii.gz")
    save_like(ref.data, ref, other / "x-t1c.nii.gz")
    moved = volume_from_array(ref.data, np.diag([1.0, 1.0, 2.0, 1.0]))
    save_like(ref.data, moved, other / "x-t2w.nii.gz")
    with pytest.raises(InputError, match="t1n.*t2w.*affines"):
        load_case(find_case(other))


def test_brats_case_is_plain_data():
    case = BraTSCase(name="c", paths={"t1n": "a"}, missing="t1c")
    assert case.seg is None and case.folder is None
