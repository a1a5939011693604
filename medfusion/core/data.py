"""Training data for the core trainer: a data list through a MONAI ``Compose`` (:class:`TransformDataset`, what
each application's training set subclasses) and the per-item seeding that makes a resumed run see the same random
crops and slices as an uninterrupted one (:class:`SeededItems`)."""

from __future__ import annotations

from torch.utils.data import Dataset

__all__ = ["TransformDataset", "SeededItems"]


class SeededItems(Dataset):
    """``dataset`` indexed by ``(epoch, i)``: item ``i`` with its random transforms seeded by ``(seed, epoch, i)``
    (through the dataset's ``set_random_state``, as MONAI's ``Compose`` has; datasets without one are used as
    they are)."""

    def __init__(self, dataset: Dataset, seed: int) -> None:
        self.dataset, self.seed = dataset, seed

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key):
        epoch, i = key
        if hasattr(self.dataset, "set_random_state"):
            self.dataset.set_random_state(seed=(self.seed * 1_000_003 + epoch * 10_007 + i) % 2**32)
        return self.dataset[i]


class TransformDataset(Dataset):
    """Data items through a MONAI ``Compose``, cached up to its first random transform (``cache``), whose random
    state the trainer seeds per item (:meth:`set_random_state`), so a resumed run sees the same crops and slices.
    Applications subclass it with their data list and ``Compose``."""

    def __init__(self, items: list[dict], transform, *, cache: bool = True) -> None:
        from monai.data import CacheDataset, Dataset as MonaiDataset

        self.items = items
        kwargs = {"progress": False, "num_workers": 0} if cache else {}
        self.data = (CacheDataset if cache else MonaiDataset)(items, transform=transform, **kwargs)

    def __len__(self) -> int:
        return len(self.data)

    def set_random_state(self, seed: int) -> None:
        self.data.transform.set_random_state(seed=seed)

    def __getitem__(self, i):
        return self.data[i]
