"""Seeded phantom datasets: what every application's ``write_*_dataset`` shares (case names, seeds, checks)."""

from __future__ import annotations

from typing import Callable, Mapping, TypeVar

from ..errors import InputError
from ..io import PathLike
from ..outputs import writing

__all__ = ["write_seeded_cases"]

T = TypeVar("T")


def write_seeded_cases(write_case: Callable[..., T], case_paths: Callable[[PathLike, str], Mapping[str, str]],
                       out_dir: PathLike, n: int, *, prefix: str, seed0: int = 0, overwrite: bool = False,
                       **kwargs) -> list[T]:
    """Write ``n`` cases ``<prefix>-00000``, ``<prefix>-00001``, ... with seeds ``seed0``, ``seed0 + 1``, ...:
    ``write_case(out_dir, name, seed=..., overwrite=..., **kwargs)`` for each, after checking every path
    ``case_paths(out_dir, name)`` of every case (:class:`medfusion.outputs.OutputPlan`: nothing is written if any
    exists and ``overwrite`` is false, or if the run fails or is interrupted).

    Raises:
        InputError: ``n`` is negative.
        OutputExistsError: some output exists and ``overwrite`` is false (checked before writing anything).
    """
    if n < 0:
        raise InputError(f"number of cases must be ≥ 0, got {n}")
    names = [f"{prefix}-{i:05d}" for i in range(n)]
    with writing([p for nm in names for p in case_paths(out_dir, nm).values()], overwrite=overwrite, extensions=()):
        return [write_case(out_dir, nm, seed=seed0 + i, overwrite=overwrite, **kwargs) for i, nm in enumerate(names)]
