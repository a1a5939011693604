"""Dice / HD95 / label counts / HECKTOR aggregated Dice against hand counts, MONAI and a brute-force reference."""

import math
import warnings

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter
from scipy.spatial.distance import cdist

from medfusion.errors import InputError
from medfusion.metrics.label_maps import check_label_map
from medfusion.metrics.segmentation import (
    AggregatedDice,
    dice,
    hd95,
    label_counts,
    surface_distances,
)

ANISO = (1.0, 1.5, 2.5)


def blob(shape, seed, threshold=0.55, sigma=2.5):
    """A random smooth blob (possibly several pieces, possibly touching the border)."""
    rng = np.random.default_rng(seed)
    field = gaussian_filter(rng.random(shape), sigma)
    field = (field - field.min()) / (field.max() - field.min())
    return field > threshold


def monai_hd95(pred, ref, spacing):
    from monai.metrics import compute_hausdorff_distance

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = compute_hausdorff_distance(
            torch.tensor(pred)[None, None], torch.tensor(ref)[None, None],
            include_background=True, percentile=95, spacing=spacing,
        )
    return float(value)


def brute_surface_points(mask, spacing):
    """Physical coordinates (index × spacing) of the foreground voxels with a background/outside face neighbour."""
    padded = np.pad(mask, 1, constant_values=False)
    core = tuple(slice(1, -1) for _ in range(mask.ndim))
    exposed = np.zeros(mask.shape, dtype=bool)
    for ax in range(mask.ndim):
        for step in (-1, 1):
            shifted = list(core)
            shifted[ax] = slice(1 + step, padded.shape[ax] - 1 + step)
            exposed |= ~padded[tuple(shifted)]
    return np.argwhere(mask & exposed) * np.asarray(spacing, dtype=float)


def brute_hd95(pred, ref, spacing):
    a, b = brute_surface_points(pred, spacing), brute_surface_points(ref, spacing)
    d = cdist(a, b)
    return max(np.percentile(d.min(axis=1), 95), np.percentile(d.min(axis=0), 95))


# ---------------------------------------------------------------------------------------------- Dice


def test_dice_hand_counts():
    p = np.zeros((4, 5), bool)
    g = np.zeros((4, 5), bool)
    p[0, :4] = True  # |P| = 4
    g[0, 1:4] = True
    g[1, :2] = True  # |G| = 5, |P∩G| = 3
    assert dice(p, g) == 2 * 3 / (4 + 5)
    assert dice(g, p) == 2 * 3 / (4 + 5)
    assert dice(p, p) == 1.0
    assert dice(p, ~p) == 0.0
    vol = np.zeros((3, 3, 3), bool)
    vol2 = vol.copy()
    vol[1, 1, :] = True
    vol2[1, :, 1] = True
    assert dice(vol, vol2) == 2 * 1 / 6
    assert dice(vol.astype(np.uint8), vol2.astype(float)) == 2 * 1 / 6  # 0/1 arrays are masks too


def test_dice_empty_conventions():
    empty = np.zeros((3, 3), bool)
    one = empty.copy()
    one[1, 1] = True
    assert dice(empty, empty) == 1.0
    assert math.isnan(dice(empty, empty, empty=float("nan")))
    assert dice(one, empty) == 0.0
    assert dice(empty, one, empty=float("nan")) == 0.0
    with pytest.raises(InputError):
        dice(one, np.zeros((3, 4), bool))
    with pytest.raises(InputError, match="0 and 1"):
        dice(one * 0.5, one)


# ---------------------------------------------------------------------------------------------- HD95


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_hd95_equals_monai_and_brute_force(seed):
    shape = (24, 20, 16)
    pred, ref = blob(shape, seed), blob(shape, seed + 100)
    assert pred.any() and ref.any()
    # the blobs fill a good part of the volume: at least one of them reaches the array border
    assert any(m[0].any() or m[-1].any() or m[:, 0].any() or m[:, :, -1].any() for m in (pred, ref))
    ours = hd95(pred, ref, ANISO)
    assert ours > 0
    # MONAI returns float32: agreement to float32 rounding (observed |difference| ≤ 1.4e-6 mm, relative ≤ 1e-7)
    assert ours == pytest.approx(monai_hd95(pred, ref, ANISO), rel=1e-6, abs=1e-6)
    # Independent reference: the spec allows one voxel diagonal; with the same surface definition the agreement
    # is exact (observed difference: 0.0 for every seed here and in the 2D test), so check 1e-9.
    diagonal = float(np.linalg.norm(ANISO))
    brute = brute_hd95(pred, ref, ANISO)
    assert abs(ours - brute) <= diagonal
    assert ours == pytest.approx(brute, abs=1e-9)


def test_hd95_objects_touching_the_border():
    shape = (20, 18, 16)
    pred = np.zeros(shape, bool)
    ref = np.zeros(shape, bool)
    pred[:8, 3:12, 0:6] = True  # touches three faces of the array
    ref[2:10, 5:14, 0:9] = True
    ref[15:, 15:, 12:] = True  # a second piece in the opposite corner
    for spacing in (ANISO, (2.0, 1.0, 0.7)):
        ours = hd95(pred, ref, spacing)
        assert ours == pytest.approx(monai_hd95(pred, ref, spacing), rel=1e-6, abs=1e-6)
        assert ours == pytest.approx(brute_hd95(pred, ref, spacing), abs=1e-9)
    # the voxels on the array border belong to the surface: a slab filling a whole face has surface there
    slab = np.zeros((6, 6, 6), bool)
    slab[:, :, :2] = True
    d_pg, d_gp = surface_distances(slab, slab)
    assert d_pg.size == np.count_nonzero(slab)  # 2 voxels thick: every voxel is exposed
    assert np.all(d_pg == 0) and np.all(d_gp == 0)


def test_surface_distances_directed_values():
    # 1D-like check in 3D: a single voxel vs a single voxel 3 apart along axis 2 (2.5 mm each) → 7.5 mm
    a = np.zeros((5, 5, 9), bool)
    b = a.copy()
    a[2, 2, 2] = True
    b[2, 2, 5] = True
    d_ab, d_ba = surface_distances(a, b, ANISO)
    np.testing.assert_allclose(d_ab, [7.5])
    np.testing.assert_allclose(d_ba, [7.5])
    assert hd95(a, b, ANISO) == pytest.approx(7.5)
    assert hd95(a, b, 2.0) == pytest.approx(6.0)  # one number = isotropic spacing
    assert hd95(a, b) == pytest.approx(3.0)


def test_hd95_cropping_is_exact():
    shape = (18, 16, 14)
    pred, ref = blob(shape, 7), blob(shape, 8, threshold=0.5)
    big_p = np.zeros((40, 33, 30), bool)
    big_r = np.zeros((40, 33, 30), bool)
    offset = (11, 9, 7)
    box = tuple(slice(o, o + s) for o, s in zip(offset, shape))
    big_p[box], big_r[box] = pred, ref
    for spacing in (None, ANISO):
        small = hd95(pred, ref, spacing)
        large = hd95(big_p, big_r, spacing)
        # in the small array the masks touch the border (surface there); embedded, those voxels stay surface
        assert small == large
        for pct in (50.0, 100.0):
            assert hd95(pred, ref, spacing, percentile=pct) == hd95(big_p, big_r, spacing, percentile=pct)
    # identical directed distance lists, not only the same percentile
    for d_small, d_large in zip(surface_distances(pred, ref, ANISO), surface_distances(big_p, big_r, ANISO)):
        np.testing.assert_array_equal(d_small, d_large)


def test_hd95_empty_conventions():
    empty = np.zeros((16, 16, 16), bool)
    cube = empty.copy()
    cube[4:9, 4:9, 4:9] = True
    assert hd95(empty, empty, ANISO) == 0.0
    assert hd95(cube, empty, ANISO) == float("inf")
    assert hd95(empty, cube, ANISO) == float("inf")
    assert hd95(cube, cube, ANISO) == 0.0
    d_pg, d_gp = surface_distances(empty, cube)
    assert d_pg.size == 0 and d_gp.size == len(brute_surface_points(cube, (1, 1, 1)))
    assert np.all(np.isinf(d_gp))
    assert [d.size for d in surface_distances(empty, empty)] == [0, 0]
    # MONAI 1.6.1 has no convention of its own: interpolating a percentile between infinite distances gives nan
    # for one empty mask (and nan for two), where we return inf (and 0) explicitly.
    assert math.isnan(monai_hd95(empty, cube, ANISO)) and math.isnan(monai_hd95(empty, empty, ANISO))
    with pytest.raises(ValueError):
        hd95(cube, cube, percentile=101)
    with pytest.raises(InputError, match="spacing"):
        hd95(cube, cube, (1.0, 1.0))


def test_hd95_2d():
    shape = (40, 32)
    pred, ref = blob(shape, 11, sigma=3), blob(shape, 12, sigma=3)
    spacing = (0.8, 1.7)
    ours = hd95(pred, ref, spacing)
    assert ours > 0
    assert ours == pytest.approx(monai_hd95(pred, ref, spacing), rel=1e-6, abs=1e-6)
    assert ours == pytest.approx(brute_hd95(pred, ref, spacing), abs=1e-9)
    # a hand-made 2D case: squares offset by 2 rows → every directed 95th percentile is 2 rows = 1.6 mm
    a = np.zeros((12, 12), bool)
    b = a.copy()
    a[2:7, 2:7] = True
    b[4:9, 2:7] = True
    assert hd95(a, b, spacing) == pytest.approx(brute_hd95(a, b, spacing))
    assert hd95(a, b, spacing, percentile=100) == pytest.approx(2 * 0.8)


# ---------------------------------------------------------------------------------------------- counts


def test_label_counts_hand_counts():
    pred = np.array([[0, 1, 1, 2], [2, 2, 0, 1], [3, 0, 0, 0]], dtype=np.uint8)
    ref = np.array([[0, 1, 0, 2], [2, 0, 0, 1], [1, 3, 0, 2]], dtype=np.int16)
    # label 1: pred at (0,1),(0,2),(1,3) → 3; ref at (0,1),(1,3),(2,0) → 3; both at (0,1),(1,3) → 2
    # label 2: pred at (0,3),(1,0),(1,1) → 3; ref at (0,3),(1,0),(2,3) → 3; both at (0,3),(1,0) → 2
    # label 5: absent; label 3 is not asked for and counts as background
    assert label_counts(pred, ref, (1, 2, 5)) == {1: (2, 3, 3), 2: (2, 3, 3), 5: (0, 0, 0)}
    assert label_counts(pred, ref, [2]) == {2: (2, 3, 3)}
    rng = np.random.default_rng(3)
    p = rng.integers(0, 4, (16, 17, 18))
    g = rng.integers(0, 4, (16, 17, 18))
    counts = label_counts(p, g, (1, 2, 3))
    for lab in (1, 2, 3):
        assert counts[lab] == (np.sum((p == lab) & (g == lab)), np.sum(p == lab), np.sum(g == lab))
        i, n_p, n_g = counts[lab]
        assert dice(p == lab, g == lab) == 2 * i / (n_p + n_g)
    # huge label values take the sorted-search path and give the same counts
    big = {lab: v for lab, v in label_counts(p * 10**8, g * 10**8, (10**8, 2 * 10**8)).items()}
    assert big == {10**8: counts[1], 2 * 10**8: counts[2]}
    with pytest.raises(InputError):
        label_counts(p.astype(float), g, (1,))
    with pytest.raises(InputError):
        label_counts(p, g[:-1], (1,))


def _three_cases():
    c1p = np.zeros((6, 6), np.uint8)
    c1g = np.zeros((6, 6), np.uint8)
    c1p[0:2, 0:3] = 1  # 6 voxels
    c1g[0:2, 1:4] = 1  # 6 voxels, overlap 4
    c1p[4, 0:4] = 2  # 4 voxels
    c1g[4:6, 0:2] = 2  # 4 voxels, overlap 2
    c2p = np.zeros((6, 6), np.uint8)
    c2g = np.zeros((6, 6), np.uint8)
    c2p[1:4, 1:4] = 1  # 9 voxels
    c2g[2:4, 2:4] = 1  # 4 voxels, overlap 4; class 2 absent from prediction and reference
    c3p = np.zeros((6, 6), np.uint8)
    c3g = np.zeros((6, 6), np.uint8)
    c3g[0, 0] = 1  # missed primary: 0 predicted, 1 reference
    c3p[3:5, 3:5] = 2  # 4 voxels
    c3g[3:6, 3:5] = 2  # 6 voxels, overlap 4
    return [(c1p, c1g), (c2p, c2g), (c3p, c3g)]


def test_aggregated_dice_hand_computation():
    agg = AggregatedDice(labels=(1, 2))
    for p, g in _three_cases():
        agg.update(p, g)
    dsc1 = 2 * (4 + 4 + 0) / ((6 + 6) + (9 + 4) + (0 + 1))
    dsc2 = 2 * (2 + 0 + 4) / ((4 + 4) + (0 + 0) + (4 + 6))
    assert agg.aggregate() == {1: dsc1, 2: dsc2}
    assert agg.mean() == (dsc1 + dsc2) / 2
    assert agg.n_cases == 3
    # the per-case mean would differ (case 2 has no class 2): aggregation is not averaging case Dice
    case_mean2 = np.mean([dice(p == 2, g == 2) for p, g in _three_cases()])
    assert case_mean2 != pytest.approx(dsc2)

    from_counts = AggregatedDice(labels=(1, 2))
    for p, g in _three_cases():
        from_counts.update_counts(label_counts(p, g, (1, 2, 3)))  # extra labels are ignored
    assert from_counts.aggregate() == agg.aggregate()

    agg.reset()
    assert agg.n_cases == 0
    assert all(math.isnan(v) for v in agg.aggregate().values())
    agg.update(*_three_cases()[1])  # class 2 absent everywhere → nan
    result = agg.aggregate()
    assert result[1] == 2 * 4 / 13 and math.isnan(result[2])
    assert math.isnan(agg.mean())
    assert agg.mean(ignore_nan=True) == 2 * 4 / 13
    with pytest.raises(ValueError, match="label 2"):
        agg.update_counts({1: (1, 2, 2)})
    with pytest.raises(ValueError, match="inconsistent"):
        agg.update_counts({1: (3, 2, 2), 2: (0, 0, 0)})


# ---------------------------------------------------------------------------------------------- validation


def test_check_label_map_accepts_and_converts():
    ints = np.array([[0, 1], [2, 1]], dtype=np.int16)
    assert check_label_map(ints, labels=(1, 2)) is ints
    floats = check_label_map(ints.astype(np.float32), labels=(1, 2))
    assert floats.dtype.kind in "iu"
    np.testing.assert_array_equal(floats, ints)
    assert check_label_map(np.array([True, False])).dtype.kind in "iu"
    assert check_label_map(np.array([0.0, 300.0])).dtype == np.uint16


@pytest.mark.parametrize(
    ("values", "fragments"),
    [
        ([0.0, 0.5, 1.0], ["non-integer", "0.5"]),
        ([0.0, np.nan, 1.0], ["non-finite", "NaN"]),
        ([0.0, np.inf], ["non-finite"]),
        ([0, -1, 1], ["negative", "-1"]),
        ([0.0, -1.0, 1.0], ["negative", "-1"]),
        ([0, 1, 3, 2], ["unexpected", "3", "expected 0 (background) and 1, 2"]),
    ],
)
def test_check_label_map_errors(values, fragments):
    arr = np.array(values)
    with pytest.raises(InputError) as err:
        check_label_map(arr, labels=(1, 2), name="case_007_pred.nii.gz")
    message = str(err.value)
    assert isinstance(err.value, ValueError)
    assert "\n" not in message
    assert message.startswith("case_007_pred.nii.gz")
    for fragment in fragments:
        assert fragment in message


def test_check_label_map_unexpected_values_listed():
    arr = np.zeros((8, 8), np.uint8)
    arr[0, :4] = [1, 2, 3, 7]
    with pytest.raises(InputError, match=r"unexpected label value\(s\) 3, 7; expected 0 \(background\) and 1, 2"):
        check_label_map(arr, labels=(2, 1), name="seg")
    assert check_label_map(arr) is arr  # without labels any non-negative integer is fine
    with pytest.raises(InputError, match="label map"):
        check_label_map(np.array(["a", "b"]))


# ---- instance maps (cell nuclei) -----------------------------------------------------------------------------------
def test_aji_and_panoptic_quality_by_hand():
    """Reference objects 1 (4 px), 2 (4 px), 3 (2 px); the prediction finds 1 exactly, half of 2 (IoU 0.5, not a PQ
    match: IoU must exceed 0.5), misses 3 and adds a spurious 1-px object."""
    from medfusion.metrics import aji, panoptic_quality

    ref = np.array([[1, 1, 0, 2, 2], [1, 1, 0, 2, 2], [0, 0, 0, 0, 0], [3, 3, 0, 0, 0]])
    pred = np.array([[7, 7, 0, 5, 0], [7, 7, 0, 5, 0], [0, 0, 0, 0, 0], [0, 0, 0, 0, 9]])  # other numbers
    assert aji(pred, ref) == pytest.approx((4 + 2) / (4 + 4 + 2 + 1))
    assert panoptic_quality(pred, ref) == pytest.approx({"pq": 1 / 3, "sq": 1.0, "rq": 1 / 3, "tp": 1, "fp": 2,
                                                         "fn": 2})
    merged = np.where(ref > 0, 1, 0)  # one predicted object over all three: each reference object pairs with it
    assert aji(merged, ref) == pytest.approx(10 / 30)  # Σ|G∩P| = 4 + 4 + 2, Σ|G∪P| = 3 × 10
    assert math.isnan(aji(np.zeros_like(ref), np.zeros_like(ref)))
    assert math.isnan(panoptic_quality(np.zeros_like(ref), np.zeros_like(ref))["pq"])
    assert aji(np.zeros_like(ref), ref) == 0.0 and panoptic_quality(np.zeros_like(ref), ref)["rq"] == 0.0


def test_labels_protocol_scores_instances_with_foreground():
    from medfusion.evaluate import evaluate_arrays

    ref = np.array([[1, 1, 0, 2, 2], [1, 1, 0, 2, 2], [0, 0, 0, 0, 0], [3, 3, 0, 0, 0]])
    pred = np.array([[7, 7, 0, 5, 0], [7, 7, 0, 5, 0], [0, 0, 0, 0, 0], [0, 0, 0, 0, 9]])
    report = evaluate_arrays([{"case": "tile", "pred": pred, "ref": ref}], protocol="labels", foreground=True,
                             metrics=["dice", "aji", "pq"])
    c = report.cases[0]
    assert c["aji"] == pytest.approx(6 / 11) and c["pq"] == pytest.approx(1 / 3) and c["sq"] == 1.0
    assert c["dice_foreground"] == pytest.approx(2 * 6 / (7 + 10))
    with pytest.raises(InputError, match="--foreground"):
        evaluate_arrays([{"case": "tile", "pred": pred, "ref": ref}], protocol="labels", metrics=["aji"])
