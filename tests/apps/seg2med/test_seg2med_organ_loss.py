"""The organ-mean term of the seg2med loss: its value against a loop over organs, the label maps the training set
keeps beside the image, and the bundle option that turns it on."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medfusion.apps.seg2med.model import Seg2MedModel
from medfusion.apps.seg2med.train import Seg2MedTrainingSet, organ_mean_loss, seg2med_loss

TINY = {"channels": [8, 16], "norm_num_groups": 8, "num_head_channels": 8}
TASKS = [["prior", "ct"], ["prior", "t1"], ["prior", "t2"]]


@pytest.fixture(scope="module")
def tiny_abdomen(tmp_path_factory):
    from medfusion.phantoms.abdomen import write_abdomen_dataset

    out = tmp_path_factory.mktemp("abdomen")
    write_abdomen_dataset(out, 2, shape=(24, 20, 12), seed0=3)
    return out


def _reference(x0_hat: np.ndarray, x0: np.ndarray, labels: np.ndarray) -> float:
    """Every (image, structure) pair in a plain loop."""
    terms = []
    for b in range(x0.shape[0]):
        for label in np.unique(labels[b]):
            if label == 0:
                continue
            inside = labels[b] == label
            terms.append((x0_hat[b][inside].mean() - x0[b][inside].mean()) ** 2)
    return float(np.mean(terms))


def test_organ_mean_loss_is_the_mean_squared_organ_mean_error():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 5, size=(3, 1, 10, 9)).astype(np.float32)
    labels[1] = np.where(labels[1] == 4, 0, labels[1])  # one image without structure 4
    labels[2, 0, :, :] = 117.0 * (labels[2, 0] > 2)  # a large label ID, most of the image background
    x0_hat, x0 = rng.normal(size=(2, 3, 1, 10, 9)).astype(np.float32)
    got = organ_mean_loss(torch.from_numpy(x0_hat), torch.from_numpy(x0), torch.from_numpy(labels))
    assert float(got) == pytest.approx(_reference(x0_hat, x0, labels), rel=1e-5)
    # an error that is the same inside each organ is its mean; noise that averages out inside an organ is not seen
    shift = np.where(labels == 1, 0.1, 0.0).astype(np.float32)
    flat = organ_mean_loss(torch.from_numpy(x0 + shift), torch.from_numpy(x0), torch.from_numpy(labels))
    n_pairs = sum(len(set(np.unique(lab)) - {0}) for lab in labels)
    assert float(flat) == pytest.approx(0.01 * 2 / n_pairs, rel=1e-4)  # structure 1 is in images 0 and 1 only
    assert float(organ_mean_loss(torch.from_numpy(x0), torch.from_numpy(x0), torch.zeros_like(torch.from_numpy(x0)))) == 0.0


def test_training_set_keeps_each_slice_label_map_beside_its_image(tiny_abdomen):
    """With keep_labels the label map is cropped, augmented and padded with the image: where it names an organ,
    the prior channel holds that organ's prior value."""
    torch.manual_seed(0)
    m = Seg2MedModel.create(TINY, dims=2, tasks=TASKS, residual=True, spacing=[12.0, 12.0], size=[32, 32])
    plain = Seg2MedTrainingSet.for_model(m, tiny_abdomen, fov_augment=1.0, cache=False, seed=5)
    kept = Seg2MedTrainingSet.for_model(m, tiny_abdomen, fov_augment=1.0, cache=False, seed=5, keep_labels=True)
    checked = 0
    for i in range(8):  # random slices and fields of view: some hold no organ
        a, b = plain[i % 2], kept[i % 2]
        assert "labels" not in a and torch.equal(a["image"], b["image"])  # the same draws with or without labels
        lab = b["labels"]
        assert lab.shape == (1, *b["image"].shape[1:]) and torch.equal(lab, lab.round())
        prior_ct = b["image"][0]
        for value in torch.unique(lab):
            if value > 0:
                inside = prior_ct[lab[0] == value]
                assert float(inside.max() - inside.min()) < 1e-5  # one organ, one prior value (no tissue map)
                checked += 1
    assert checked > 4

@pytest.mark.parametrize("dims", [2, 3])
def test_seg2med_loss_adds_the_weighted_organ_term(tiny_abdomen, dims):
    """The slice model in pixel space, the 3D model's Haar coefficients taken back to the label map's grid."""
    torch.manual_seed(0)
    grid = {"spacing": [12.0, 12.0], "size": [32, 32]} if dims == 2 else {}
    m = Seg2MedModel.create(TINY, dims=dims, tasks=TASKS, residual=True, **grid)
    data = Seg2MedTrainingSet.for_model(m, tiny_abdomen, cache=False, keep_labels=True,
                                        patch_size=None if dims == 2 else (8, 8, 8))
    batch = {k: torch.stack([data[i][k] for i in range(2)]) for k in ("image", "labels")}

    def loss(weight, b=batch):
        return float(seg2med_loss(m, b, generator=torch.Generator().manual_seed(3), device="cpu",
                                  precision="float32", organ_weight=weight).detach())

    base, one, ten = loss(0.0), loss(1.0), loss(10.0)
    assert one > base and ten - base == pytest.approx(10 * (one - base), rel=1e-4)
    with pytest.raises(ValueError, match="keep_labels"):
        loss(1.0, {"image": batch["image"]})
