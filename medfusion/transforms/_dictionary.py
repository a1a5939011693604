"""The one loop every ``...d`` transform shares: apply an array transform to each selected key."""

from __future__ import annotations

from typing import Callable, Hashable, Mapping

from monai.config import KeysCollection
from monai.transforms import MapTransform


class KeyWise(MapTransform):
    """Dictionary transform holding one array transform and applying it to the value of each of ``keys``.

    Subclasses only choose the array transform (MONAI's pattern: the array class holds the logic).
    """

    def __init__(self, keys: KeysCollection, transform: Callable, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.transform = transform

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.transform(d[key])
        return d
