"""Progress reporting for long sampling loops."""

from __future__ import annotations

import sys


def progress_bar(desc: str, unit: str = "step"):
    """A tqdm progress bar on stderr, as a ``progress(i, n)`` callback."""
    from tqdm import tqdm

    bar = None

    def update(i: int, n: int) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=n, desc=desc, unit=unit, file=sys.stderr, leave=False)
        bar.update(i - bar.n)
        if i >= n:
            bar.close()

    return update
