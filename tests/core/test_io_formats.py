"""DICOM series, NRRD and MetaImage inputs load with the NIfTI path's geometry (RAS+ affine, (X, Y, Z) voxels).

Every input is written here with SimpleITK (or nibabel) from one known geometry: an oblique direction
(20° about a tilted axis) and anisotropic spacing. The expected affine is computed in the tests from that
geometry (LPS → RAS: negate the first two rows), never by the code under test.
"""

import hashlib
import os

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from medfusion.errors import InputError
from medfusion.io import SITK_EXTENSIONS, VOLUME_EXTENSIONS, load_volume, save_like

SIZE = (12, 10, 8)  # (X, Y, Z): columns, rows, slices
SPACING = (0.7, 0.9, 2.5)  # mm
ORIGIN_LPS = np.array([-30.0, 12.5, 40.0])  # mm, centre of voxel (0, 0, 0)
SERIES_UID = "1.2.826.0.1.3680043.2.1125.7.1"
STUDY_UID = "1.2.826.0.1.3680043.2.1125.7.2"
BRIGHT = (3, 7, 5)  # the one voxel holding BRIGHT_HU
BRIGHT_HU = 2500


def _direction_lps() -> np.ndarray:
    """Columns = LPS directions of the voxel axes: a 20° rotation about the axis (1, 2, 0.5) (Rodrigues)."""
    axis = np.array([1.0, 2.0, 0.5]) / np.linalg.norm([1.0, 2.0, 0.5])
    t = np.deg2rad(20.0)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(t) * k + (1 - np.cos(t)) * (k @ k)


DIRECTION = _direction_lps()


def _expected_affine() -> np.ndarray:
    """Voxel index → RAS+ mm, from the geometry written: LPS point = origin + D @ diag(spacing) @ ijk."""
    lps_to_ras = np.diag([-1.0, -1.0, 1.0])
    affine = np.eye(4)
    affine[:3, :3] = lps_to_ras @ DIRECTION @ np.diag(SPACING)
    affine[:3, 3] = lps_to_ras @ ORIGIN_LPS
    return affine


def _hounsfield() -> np.ndarray:
    """CT values in HU, int16, shape SIZE (X, Y, Z), with one distinctive voxel at BRIGHT."""
    hu = np.random.default_rng(1).integers(-1024, 2000, size=SIZE).astype(np.int16)
    hu[BRIGHT] = BRIGHT_HU
    return hu


def _ds(values) -> str:
    """A DICOM decimal-string multi-value."""
    return "\\".join(f"{float(v):.10g}" for v in values)


def _write_dicom_series(folder, hu, *, series_uid=SERIES_UID, skip=(), intercept=-1024, slope=1):
    """Write ``hu`` (X, Y, Z) as one CT slice file per k, file names in shuffled order (so the reader must sort
    by position). Pixels are stored as int16 with RescaleIntercept/RescaleSlope (ITK stores
    ``(hu - intercept) / slope``); slices listed in ``skip`` are left out."""
    os.makedirs(folder, exist_ok=True)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    order = np.random.default_rng(2).permutation(hu.shape[2])
    for k in range(hu.shape[2]):
        if k in skip:
            continue
        image = sitk.GetImageFromArray(np.ascontiguousarray(hu[:, :, k].T))  # numpy (rows, columns)
        image.SetSpacing(SPACING[:2])
        position = ORIGIN_LPS + k * SPACING[2] * DIRECTION[:, 2]
        tags = {
            "0008|0060": "CT",
            "0008|0018": f"{series_uid}.{k + 1}",
            "0020|000d": STUDY_UID,
            "0020|000e": series_uid,
            "0020|0013": str(k + 1),
            "0020|0032": _ds(position),
            "0020|0037": _ds([*DIRECTION[:, 0], *DIRECTION[:, 1]]),
            "0028|0030": _ds([SPACING[1], SPACING[0]]),  # row spacing, column spacing
            "0018|0050": _ds([SPACING[2]]),
            "0028|1052": _ds([intercept]),
            "0028|1053": _ds([slope]),
        }
        if hu.dtype.kind == "f":  # float HU: ITK needs the stored type spelled out (signed 16 bit)
            tags.update({"0028|0100": "16", "0028|0101": "16", "0028|0102": "15", "0028|0103": "1"})
        for tag, value in tags.items():
            image.SetMetaData(tag, value)
        writer.SetFileName(os.path.join(folder, f"slice{order[k]:03d}.dcm"))
        writer.Execute(image)
    return str(folder)


def _sitk_image(array_xyz) -> sitk.Image:
    """A 3D SimpleITK image of ``array_xyz`` with the test geometry."""
    image = sitk.GetImageFromArray(np.ascontiguousarray(np.transpose(array_xyz)))
    image.SetSpacing(SPACING)
    image.SetOrigin(tuple(ORIGIN_LPS))
    image.SetDirection(tuple(DIRECTION.ravel()))
    return image


def _write_sitk(path, array_xyz) -> str:
    sitk.WriteImage(_sitk_image(array_xyz), str(path))
    return str(path)


@pytest.fixture(scope="module")
def dicom(tmp_path_factory):
    return _write_dicom_series(tmp_path_factory.mktemp("ct") / "series", _hounsfield())


def test_dicom_series_values_and_oblique_anisotropic_geometry(dicom):
    vol = load_volume(dicom)
    assert vol.path == dicom and vol.shape == SIZE
    assert vol.data.dtype == np.float32 and vol.data.flags.c_contiguous
    np.testing.assert_array_equal(vol.data, _hounsfield())  # rescale applied: HU, not stored values
    np.testing.assert_allclose(vol.affine, _expected_affine(), atol=1e-4)
    np.testing.assert_allclose(vol.spacing, SPACING, atol=1e-4)

    # the stored pixels really are HU + 1024 (the slice's pixel data ends the file)
    k = int(np.argsort(np.random.default_rng(2).permutation(SIZE[2]))[0])  # the slice in slice000.dcm
    with open(os.path.join(dicom, "slice000.dcm"), "rb") as fh:
        stored = np.frombuffer(fh.read()[-SIZE[0] * SIZE[1] * 2:], dtype="<i2").reshape(SIZE[1], SIZE[0]).T
    np.testing.assert_array_equal(stored, _hounsfield()[:, :, k] + 1024)

    # the bright voxel, placed in the world by hand, is found at its index
    lps = ORIGIN_LPS + DIRECTION @ (np.array(SPACING) * BRIGHT)
    ras = np.array([-lps[0], -lps[1], lps[2], 1.0])
    index = np.linalg.solve(vol.affine, ras)[:3]
    np.testing.assert_allclose(index, BRIGHT, atol=1e-3)
    assert vol.data[tuple(np.rint(index).astype(int))] == BRIGHT_HU
    assert np.argmax(vol.data) == np.ravel_multi_index(BRIGHT, SIZE)

    # a fresh NIfTI header carrying the affine
    assert int(vol.header["qform_code"]) == int(vol.header["sform_code"]) == 1
    assert vol.header.get_xyzt_units()[0] == "mm"
    np.testing.assert_allclose(vol.header.get_best_affine(), vol.affine, atol=1e-4)


def test_dicom_fractional_rescale_slope_is_applied_in_float32(tmp_path):
    hu = (np.arange(np.prod(SIZE)).reshape(SIZE) * 0.25 - 700.0).astype(np.float32)  # steps of a quarter HU
    vol = load_volume(_write_dicom_series(tmp_path / "series", hu, intercept=-700, slope=0.25))
    assert vol.data.dtype == np.float32
    np.testing.assert_array_equal(vol.data, hu)
    np.testing.assert_allclose(vol.affine, _expected_affine(), atol=1e-4)


def test_formats_agree_with_dicom_and_nibabel_nifti(tmp_path, dicom):
    hu = _hounsfield()
    ref = load_volume(dicom)
    paths = [_write_sitk(tmp_path / f"ct{ext}", hu) for ext in SITK_EXTENSIONS]
    nifti = tmp_path / "ct.nii.gz"
    nib.save(nib.Nifti1Image(hu, _expected_affine()), str(nifti))
    for path in [*paths, str(nifti)]:
        vol = load_volume(path)
        assert vol.shape == SIZE, path
        np.testing.assert_array_equal(vol.data, ref.data, err_msg=path)
        np.testing.assert_allclose(vol.affine, ref.affine, atol=1e-4, err_msg=path)

    # ITK's own index → physical point agrees with the affine (after LPS → RAS)
    image = sitk.ReadImage(paths[0])
    vol = load_volume(paths[0])
    for ijk in [(0, 0, 0), (11, 0, 0), (0, 9, 7), BRIGHT]:
        x, y, z = image.TransformIndexToPhysicalPoint(tuple(int(v) for v in ijk))
        np.testing.assert_allclose(vol.affine @ [*ijk, 1], [-x, -y, z, 1], atol=1e-6)


def test_save_like_on_a_dicom_volume_writes_its_geometry(tmp_path, dicom):
    vol = load_volume(dicom)
    out = save_like(vol.data * 0.5, vol, tmp_path / "out.nii.gz")
    img = nib.load(out)
    np.testing.assert_allclose(img.affine, vol.affine, atol=1e-4)
    assert nib.aff2axcodes(img.affine) == nib.aff2axcodes(_expected_affine())
    assert int(img.header["sform_code"]) == int(img.header["qform_code"]) == 1
    again = load_volume(out)
    np.testing.assert_array_equal(again.data, vol.data * 0.5)
    np.testing.assert_allclose(again.affine, vol.affine, atol=1e-4)


def test_trailing_singleton_is_squeezed_and_4d_refused(tmp_path):
    hu = _hounsfield().astype(np.float32)
    one = tmp_path / "one.mha"
    sitk.WriteImage(sitk.JoinSeries([_sitk_image(hu)]), str(one))
    vol = load_volume(one)
    assert vol.shape == SIZE
    np.testing.assert_array_equal(vol.data, hu)
    np.testing.assert_allclose(vol.affine, _expected_affine(), atol=1e-6)
    two = tmp_path / "two.nrrd"
    sitk.WriteImage(sitk.JoinSeries([_sitk_image(hu), _sitk_image(hu)]), str(two))
    with pytest.raises(InputError, match=r"two\.nrrd has shape \(12, 10, 8, 2\): expected a 3D image"):
        load_volume(two)


def _two_series(folder):
    _write_dicom_series(folder, _hounsfield())
    _write_dicom_series(folder / "b", _hounsfield()[:, :, :3], series_uid=SERIES_UID + "9")
    for name in os.listdir(folder / "b"):
        os.replace(folder / "b" / name, folder / f"b_{name}")
    os.rmdir(folder / "b")


def _not_dicom(folder):
    folder.mkdir()
    (folder / "notes.txt").write_text("not an image\n")
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 4), np.float32), np.eye(4)), str(folder / "x.nii.gz"))


def _rgb(path):
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((8, 10, 12, 3), np.uint8), isVector=True), str(path))


def _nan(path):
    data = np.zeros(SIZE, np.float32)
    data[1, 2, :3] = np.nan
    _write_sitk(path, data)


def _truncated_nrrd(path):
    _write_sitk(path, np.ones(SIZE, np.float32))
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) - 100])


def _truncated_mha(path):
    _write_sitk(path, np.ones(SIZE, np.float32))
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) - 100])


def _detached_without_data(path):
    _write_sitk(path, np.ones(SIZE, np.float32))
    for name in os.listdir(path.parent):
        if name != path.name:
            os.remove(path.parent / name)


def _series_with_damaged_slice(folder):
    _write_dicom_series(folder, _hounsfield())
    victim = folder / "slice004.dcm"
    victim.write_bytes(victim.read_bytes()[:-60])


@pytest.mark.parametrize(
    "name, make, message",
    [
        ("two", _two_series, rf"holds 2 DICOM series.*{SERIES_UID} \(8 files\).*{SERIES_UID}9 \(3 files\)"),
        ("empty", lambda p: p.mkdir(), "no DICOM series in"),
        ("notdicom", _not_dicom, "no DICOM series in"),
        ("gap", lambda p: _write_dicom_series(p, _hounsfield(), skip={3}), "not evenly spaced"),
        ("flat.mha", lambda p: sitk.WriteImage(sitk.GetImageFromArray(np.zeros((10, 12), np.float32)), str(p)),
         r"shape \(12, 10\): expected a 3D image"),
        ("rgb.mha", _rgb, r"shape \(12, 10, 8\) with 3 components per voxel"),
        ("nan.mha", _nan, "3 NaN of 960"),
        ("garbage.nrrd", lambda p: p.write_bytes(np.random.default_rng(3).bytes(400)), "cannot read .* as a NRRD"),
        ("cut.nrrd", _truncated_nrrd, "cannot read .* as a NRRD"),
        ("garbage.mha", lambda p: p.write_text("ObjectType = Image\nNDims = 3\nDimSize = 4 x\n"),
         "cannot read .* as a MetaImage image: .*ElementType required"),
        ("cut.mha", _truncated_mha, "cannot read .* as a MetaImage image: .*data not read completely"),
        ("nodata.mhd", _detached_without_data, "cannot read .* as a MetaImage image: .*data file"),
        ("badslice", _series_with_damaged_slice, "DICOM series in .*not evenly spaced"),
        ("scan.dcm", lambda p: p.write_bytes(b"\0" * 200), "accepted: .nii.gz, .nii, .nrrd, .nhdr, .mha, .mhd"),
    ],
)
def test_bad_inputs_raise_one_line_input_error_naming_the_path(tmp_path, capfd, name, make, message):
    path = tmp_path / name
    make(path)
    capfd.readouterr()
    with pytest.raises(InputError, match=message) as info:
        load_volume(path)
    text = str(info.value)
    assert str(path) in text and "\n" not in text, text
    assert capfd.readouterr().err == ""  # ITK's warnings are not printed (the error says it all)


def _snapshot(folder) -> dict[str, tuple[str, int]]:
    found = {}
    for root, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(root, name)
            with open(path, "rb") as fh:
                found[path] = (hashlib.sha256(fh.read()).hexdigest(), os.stat(path).st_mtime_ns)
    return found


def test_inputs_are_never_modified(tmp_path):
    hu = _hounsfield()
    folder = _write_dicom_series(tmp_path / "series", hu)
    files = [_write_sitk(tmp_path / f"ct{ext}", hu) for ext in SITK_EXTENSIONS]
    before = _snapshot(tmp_path)
    for path in [folder, *files]:
        vol = load_volume(path)
        vol.data[...] = 0  # a copy, never a view of anything kept
    assert _snapshot(tmp_path) == before
    assert np.any(load_volume(folder).data != 0)


def test_extension_constants():
    assert VOLUME_EXTENSIONS[:2] == (".nii.gz", ".nii")
    assert set(SITK_EXTENSIONS) == {".nrrd", ".nhdr", ".mha", ".mhd"} <= set(VOLUME_EXTENSIONS)
