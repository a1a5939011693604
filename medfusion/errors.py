"""Exceptions that mean "the user's input is wrong" (as opposed to a bug).

The ``medfusion`` command turns :class:`InputError` into a one-line reason and a non-zero exit.
"""


class InputError(ValueError):
    """Bad user input: unreadable or inconsistent files, wrong dimensionality, non-finite voxels, ..."""


class OutputExistsError(InputError):
    """An output file already exists and overwriting was not requested."""
