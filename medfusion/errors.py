"""Exceptions that mean "the user's input is wrong" (as opposed to a bug).

The ``medfusion`` command turns :class:`InputError` into a one-line reason and a non-zero exit.
"""


def first_line(err: BaseException) -> str:
    """The first non-empty line of an exception's message (torch's messages run over many lines)."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return lines[0] if lines else type(err).__name__


def one_line(err: BaseException) -> str:
    """An exception's whole message on one line, as the command line and the bundles print it."""
    return " ".join(line.strip() for line in str(err).splitlines() if line.strip())


class InputError(ValueError):
    """Bad user input: unreadable or inconsistent files, wrong dimensionality, non-finite voxels, ..."""


class OutputExistsError(InputError):
    """An output file already exists and overwriting was not requested."""
