"""Work-arounds for third-party packages that do not import cleanly in every supported environment.

Nothing here runs at ``import medfusion``: each helper does its work only when called, i.e. when a feature
that needs the third-party package is first used.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.resources
import sys
import types
import warnings
from collections.abc import Iterator
from typing import IO

__all__ = ["import_pytorch_wavelets"]

_ABSENT = object()


def import_pytorch_wavelets() -> types.ModuleType:
    """Import and return ``pytorch_wavelets``, also where ``pkg_resources`` is unavailable.

    ``pytorch_wavelets`` 1.3 imports its DTCWT sub-package from its top-level ``__init__``, and that sub-package
    runs ``from pkg_resources import resource_stream`` (to read bundled filter tables). ``pkg_resources`` was
    removed from setuptools 82, and is absent wherever setuptools is not installed, so a plain
    ``import pytorch_wavelets`` then fails with ``ModuleNotFoundError: No module named 'pkg_resources'`` -
    even though the separable DWT that medfusion uses never touches it.

    When (and only when) that happens, this function places a minimal stand-in ``pkg_resources`` module in
    ``sys.modules`` that provides ``resource_stream(package, resource_name)`` on top of
    :mod:`importlib.resources`, imports ``pytorch_wavelets``, and then restores ``sys.modules["pkg_resources"]``
    to what it was: ``pytorch_wavelets`` keeps its own reference to the function, and no other code sees the
    stand-in. Where a real ``pkg_resources`` exists (setuptools < 82), its deprecation warning is silenced for
    this import only.

    Returns:
        the ``pytorch_wavelets`` module.

    Raises:
        ModuleNotFoundError: ``pytorch_wavelets`` itself is not installed (``pip install pytorch-wavelets``).
    """
    try:
        return _import_quietly("pytorch_wavelets")
    except ModuleNotFoundError as err:
        if err.name != "pkg_resources":
            raise
    # Modules that failed half-way were removed from sys.modules by the import system, so a retry re-runs them.
    with _pkg_resources_stand_in():
        return _import_quietly("pytorch_wavelets")


def _import_quietly(name: str) -> types.ModuleType:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
        warnings.filterwarnings("ignore", message=".*pkg_resources.*", category=DeprecationWarning)
        return importlib.import_module(name)


def _resource_stream(package: str, resource_name: str) -> IO[bytes]:
    """``pkg_resources.resource_stream``: a binary file object for a data file shipped inside ``package``."""
    return importlib.resources.files(package).joinpath(resource_name).open("rb")


@contextlib.contextmanager
def _pkg_resources_stand_in() -> Iterator[None]:
    """Make ``import pkg_resources`` yield a stand-in with ``resource_stream`` inside the ``with`` block."""
    previous = sys.modules.get("pkg_resources", _ABSENT)
    stand_in = types.ModuleType(
        "pkg_resources", "Stand-in installed by medfusion.utils.compat while importing pytorch_wavelets."
    )
    stand_in.resource_stream = _resource_stream  # type: ignore[attr-defined]
    sys.modules["pkg_resources"] = stand_in
    try:
        yield
    finally:
        if sys.modules.get("pkg_resources") is stand_in:
            if previous is _ABSENT:
                del sys.modules["pkg_resources"]
            else:
                sys.modules["pkg_resources"] = previous  # e.g. None, where an environment blocks the import
