"""Progress reporting for long sampling loops."""

from __future__ import annotations

import sys
import weakref

__all__ = ["progress_bar", "close_bars"]

_OPEN = weakref.WeakSet()  # the bars not finished yet


def progress_bar(desc: str, unit: str = "step"):
    """A tqdm progress bar on stderr, as a ``progress(i, n)`` callback; a loop that ends (``i == n``) closes it, and
    the next loop (the next case of a folder run) opens a new one."""
    from tqdm import tqdm

    bar = None

    def update(i: int, n: int) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=n, desc=desc, unit=unit, file=sys.stderr, leave=False)
            _OPEN.add(bar)
        bar.update(i - bar.n)
        if i >= n:
            bar.close()
            _OPEN.discard(bar)
            bar = None

    return update


def close_bars() -> None:
    """Clear the bars still on the screen (a run stopped half-way), so that the next message starts its own line."""
    for bar in list(_OPEN):
        bar.close()
    _OPEN.clear()
