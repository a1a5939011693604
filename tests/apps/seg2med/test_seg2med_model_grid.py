"""The model's grid (spacing and window of the network) and the training transforms that mirror it."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from medfusion.apps.seg2med.model_grid import model_grid


def test_identity_when_the_model_records_nothing():
    grid = model_grid((20, 18, 6), (1.5, 1.5, 3.0), None)
    a = np.random.default_rng(0).random((20, 18, 6)).astype(np.float32)
    assert not grid.resampled and grid.size == (20, 18, 6)
    assert np.array_equal(grid.to_model(a, labels=False), a) and np.array_equal(grid.from_model(a), a)


def test_resampling_keeps_the_physical_extent_and_labels():
    """A 1 mm label map at a 2 mm model: half the voxels per axis, each label still where it was (nearest
    neighbour), and a smooth image comes back close to itself."""
    grid = model_grid((40, 40, 10), (1.0, 1.0, 2.5), (2.0, 2.0))
    assert grid.model_shape == (20, 20, 10) and grid.model_spacing == (2.0, 2.0, 2.5)
    lab = np.zeros((40, 40, 10), np.int64)
    lab[10:30, 8:20, :] = 5
    small = grid.to_model(lab, labels=True)
    assert small.dtype == np.int64 and set(np.unique(small)) == {0, 5}
    assert np.array_equal(np.argwhere(small == 5).min(0)[:2], [5, 4]) and np.array_equal(np.argwhere(small == 5).max(0)[:2], [14, 9])
    x = np.linspace(0, 1, 40, dtype=np.float32)
    img = np.broadcast_to((x[:, None] + x[None, :])[..., None], (40, 40, 10)).copy()
    back = grid.from_model(grid.to_model(img, labels=False))
    assert back.shape == img.shape and np.abs(back - img)[2:-2, 2:-2].max() < 0.02


def test_window_is_centred_on_the_body_and_pads_with_air():
    """A small field of view goes to the middle of the window, its edge values continued for EDGE_MARGIN voxels
    and 0 (air, no label) beyond; the continuation is dropped on the way back. A large one is cut around the body."""
    from medfusion.apps.seg2med.model_grid import EDGE_MARGIN

    assert EDGE_MARGIN == 3
    small = model_grid((10, 8, 3), (1.0, 1.0, 1.0), None, (16, 16))
    a = np.arange(1, 10 * 8 * 3 + 1, dtype=np.float32).reshape(10, 8, 3)
    win = small.to_model(a, labels=False)
    assert win.shape == (16, 16, 3) and small.start[:2] == (-3, -4)
    assert np.array_equal(win[3:13, 4:12], a)  # centred
    assert np.array_equal(win[0:3, 4:12], np.broadcast_to(a[:1], (3, 8, 3)))  # x: 3 voxels each side, all edge
    assert np.array_equal(win[13:16, 4:12], np.broadcast_to(a[-1:], (3, 8, 3)))
    assert np.array_equal(win[3:13, 1:4], np.broadcast_to(a[:, :1], (10, 3, 3)))  # y: 4 voxels, 3 continued
    assert np.all(win[:, 0] == 0) and np.all(win[:, 15] == 0)  # then air
    assert win[0, 1, 0] == a[0, 0, 0]  # corners continue the corner value
    assert np.array_equal(small.from_model(win), a)
    plain = model_grid((10, 8, 3), (1.0, 1.0, 1.0), None, (16, 16))
    plain = dataclasses.replace(plain, margin=0)
    assert plain.to_model(a, labels=False).sum() == a.sum()  # margin 0: air right at the edge
    body = np.zeros((40, 30, 2), bool)
    body[25:35, 5:15, :] = True  # off centre
    large = model_grid((40, 30, 2), (1.0, 1.0, 1.0), None, (16, 16), body=body)
    cut = large.to_model(body, labels=True)
    assert cut.shape == (16, 16, 2) and cut.sum() == body.sum()  # the whole body is inside the window
    out = large.from_model(np.full((16, 16, 2), 7.0, np.float32), fill=-1.0)
    assert np.all(out[body] == 7.0) and np.all(out[:10] == -1.0)  # air (fill) outside the window


def test_a_body_wider_than_the_window_is_said():
    body = np.ones((40, 40, 2), bool)
    with pytest.warns(UserWarning, match="wider than the model's field of view"):
        model_grid((40, 40, 2), (2.0, 2.0, 2.0), None, (16, 16), body=body)


def test_a_field_of_view_that_cuts_the_body_is_set_in_a_body_of_the_training_size():
    """body_context: on a slice whose body reaches a cut edge, the padding gets an ellipse of BODY_CONTEXT_MM
    (here 60 × 40 mm at 2 mm: 30 × 20 voxels across its axes) centred in the window; the volume's own voxels and
    its continued edge keep their values. A slice whose body ends in air, and a window without padding, are left."""
    from medfusion.apps.seg2med.model_grid import BODY_CONTEXT_MM

    assert BODY_CONTEXT_MM == (300.0, 200.0)
    grid = model_grid((10, 8, 3), (2.0, 2.0, 5.0), None, (40, 40))
    body = np.zeros((10, 8, 3), bool)
    body[:, :, 0] = True  # cut by the field of view on every side
    body[2:8, 2:6, 1] = True  # ends in air inside the field of view
    body[:, :, 2] = False  # no body
    win = grid.to_model(body, labels=True)
    out = grid.body_context(win, extent_mm=(60.0, 40.0))
    cover = grid.to_model(np.ones((10, 8, 3), np.uint8), labels=True) > 0
    assert np.array_equal(grid.covered(), cover)  # the covered voxels from the geometry alone
    assert np.array_equal(out[cover], win[cover])  # the volume and its continued edge unchanged
    assert np.array_equal(out[..., 1:], win[..., 1:])  # not cut: nothing added
    added = out[..., 0] & ~cover[..., 0]
    assert added.any() and not added[0].any() and not added[:, 0].any()  # inside the window, not up to its border
    assert out[:, 20, 0].sum() == 30 and out[20, :, 0].sum() == 20  # the ellipse's axes: 60 mm and 40 mm at 2 mm
    full = model_grid((40, 40, 2), (2.0, 2.0, 5.0), None, (40, 40))
    whole = np.ones((40, 40, 2), bool)
    assert np.array_equal(full.body_context(full.to_model(whole, labels=True)), whole)  # no padding: unchanged


def test_generate_sets_a_cut_field_of_view_in_a_body():
    """generate: the prior the network sees has the body's value, not air, in the padding around a field of view
    that cuts the body (without the context it is air there: the volume and its continued edge reach x 7–24 of 32)."""
    from medfusion.apps.seg2med.inference import generate
    from medfusion.apps.seg2med.model import Seg2MedModel

    torch.manual_seed(0)
    m = Seg2MedModel.create({"channels": [8, 8], "norm_num_groups": 4, "num_head_channels": 4}, dims=2,
                            tasks=[("prior", "ct")], spacing=(10.0, 10.0), size=(32, 32))
    seen = []
    sample = m.diffusion.sample
    m.diffusion.sample = lambda x, *a, **k: seen.append(x.clone()) or sample(x, *a, **k)
    lab = np.zeros((12, 10, 2), np.int64)
    lab[3:9, 3:7, :] = 5  # liver
    body = np.ones(lab.shape, bool)  # the field of view (120 × 100 mm) cuts the body
    out = generate(m, lab, "ct", body=body, spacing=(10.0, 10.0, 5.0), steps=1)
    assert out.shape == lab.shape and np.isfinite(out).all()
    cond = seen[0][:, 0]  # (slices, X, Y): the condition, windowed to [0, 1]
    air = cond[0, 0, 0]
    assert float(cond[0, 16, 16]) > float(air)  # the centre holds the field of view's tissue
    # the ellipse: 300 mm left-right (x), 200 mm front-back (y), centred in the 320 mm window
    assert float(cond[0, 2, 16]) > float(air) and float(cond[0, 16, 30]) == float(air)


def test_generate_runs_on_the_model_grid_and_returns_the_input_grid():
    """A model that records its spacing and window: an anisotropic, small-field label map goes there and back;
    the result has the input's shape and air outside the body."""
    from medfusion.apps.seg2med.inference import generate
    from medfusion.apps.seg2med.model import Seg2MedModel

    torch.manual_seed(0)
    m = Seg2MedModel.create({"channels": [8, 8], "norm_num_groups": 4, "num_head_channels": 4}, dims=2,
                            tasks=[("prior", "ct")], spacing=(4.0, 4.0), size=(16, 16))
    calls = []
    sample = m.diffusion.sample
    m.diffusion.sample = lambda x, *a, **k: calls.append(tuple(x.shape)) or sample(x, *a, **k)
    lab = np.zeros((30, 22, 4), np.int64)
    lab[8:20, 6:15, :] = 5  # liver
    body = np.zeros(lab.shape, bool)
    body[4:26, 3:19, :] = True
    out = generate(m, lab, "ct", body=body, spacing=(1.5, 2.0, 3.0), steps=2)
    assert out.shape == lab.shape and np.all(out[~body] == -1000)
    assert calls and all(s[-2:] == (16, 16) for s in calls)  # the network saw its window, not the input grid


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_field_of_view_augmentation_keeps_a_centred_window(seed):
    from medfusion.apps.seg2med.transforms import RandFieldOfViewd

    img = torch.arange(2 * 20 * 16, dtype=torch.float32).reshape(2, 20, 16, 1) + 1
    t = RandFieldOfViewd(keys=["image"], prob=1.0, min_fraction=0.35)
    t.set_random_state(seed)
    out = t({"image": img})["image"]
    kept = out[0, ..., 0] > 0
    rows, cols = np.flatnonzero(kept.any(1)), np.flatnonzero(kept.any(0))
    h, w = len(rows), len(cols)
    assert 7 <= h <= 20 and 6 <= w <= 16 and kept.sum() == h * w  # one rectangle of at least 35 % per side
    assert rows[0] == (20 - h) // 2 and cols[0] == (16 - w) // 2  # centred
    src = img[0, ..., 0]
    window = out[0, rows[0]:rows[0] + h, cols[0]:cols[0] + w, 0]
    hits = [(i, j) for i in range(20 - h + 1) for j in range(16 - w + 1) if torch.equal(src[i:i + h, j:j + w], window)]
    assert len(hits) == 1 and torch.equal(out[1, rows[0]:rows[0] + h, cols[0]:cols[0] + w, 0],
                                         img[1, hits[0][0]:hits[0][0] + h, hits[0][1]:hits[0][1] + w, 0])
    t.prob = 0.0
    assert torch.equal(t({"image": img})["image"], img)

def test_field_of_view_sides_on_a_log_scale_are_log_uniform():
    """``scale="log"``: a side's logarithm is uniform between the smallest side and the whole, so a window below a
    third of the side comes as often as its share of that log range (4000 draws, within 3 %),
    and every side stays within its bounds; ``"linear"`` keeps its uniform lengths; another scale is refused."""
    from medfusion.apps.seg2med.transforms import RandFieldOfViewd

    n, lo = 96, int(np.ceil(0.15 * 96))
    sides = {}
    for scale in ("linear", "log"):
        t = RandFieldOfViewd(keys=["image"], prob=1.0, scale=scale)
        t.set_random_state(0)
        sides[scale] = np.array([t._side(n) for _ in range(4000)])
        assert sides[scale].min() >= lo and sides[scale].max() <= n
    small = n // 3
    expected_log = np.log((small + 1) / lo) / np.log((n + 1) / lo)
    expected_linear = (small - lo + 1) / (n - lo + 1)
    assert abs(np.mean(sides["log"] <= small) - expected_log) < 0.03
    assert abs(np.mean(sides["linear"] <= small) - expected_linear) < 0.03
    with pytest.raises(ValueError, match="scale"):
        RandFieldOfViewd(keys=["image"], scale="square")



def test_training_and_inference_give_the_network_the_same_prior_window(tmp_path):
    """An off-centre body with odd remainders to the window: the training transforms (ModelGridd) and inference's
    model grid put the same prior image in the same window."""
    import nibabel as nib

    from medfusion.apps.seg2med.model import Seg2MedModel
    from medfusion.apps.seg2med.prior import make_prior
    from medfusion.apps.seg2med.transforms import training_preprocessing

    m = Seg2MedModel.create({"channels": [8, 8], "norm_num_groups": 4, "num_head_channels": 4}, dims=2,
                            tasks=[("prior", "ct")], size=(16, 16))
    lab = np.zeros((30, 24, 1), np.int64)
    lab[19:25, 5:10] = 5  # liver
    lab[22:27, 8:11] = 1  # spleen
    body = np.zeros(lab.shape, np.uint8)
    body[17:28, 3:12] = 1  # 11 x 9 voxels: 5 and 7 short of the window
    arrays = {"mask": lab.astype(np.uint8), "body": body, "ct": np.where(body > 0, 40.0, -1000.0),
              "t1": body * 50.0, "t2": body * 60.0}
    item = {}
    for key, a in arrays.items():
        item[key] = str(tmp_path / f"{key}.nii.gz")
        nib.save(nib.Nifti1Image(a.astype(np.float32 if a.dtype.kind == "f" else np.uint8), np.eye(4)), item[key])
    trained = training_preprocessing(m.preprocessing, dims=2, divisor=1)(item)["image"].numpy()[0, ..., 0]

    grid = m.grid(lab.shape, (1.0, 1.0, 1.0), body > 0)
    on_grid = [grid.to_model(a, labels=True) for a in (lab, body > 0)]
    prior = make_prior(on_grid[0], "ct", task="total", body=on_grid[1], table=m.prior_table)
    inferred = m.normalize_prior(prior, "ct")[..., 0]
    assert trained.shape == inferred.shape == (16, 16)
    assert np.count_nonzero(inferred) == body.sum()  # the whole body is in the window
    np.testing.assert_allclose(trained, inferred, atol=1e-6)
