"""Running an application's ``preprocessing`` and ``postprocessing`` on arrays in memory.

Both are MONAI dictionary transforms (a ``Compose`` of ``MapTransform``s, as a bundle's ``inference.json`` builds
them) called on a plain dict: the preprocessing on ``{"image": the raw inputs (C, *S), ...}``, giving the network's
input as ``"image"``; the postprocessing on ``{"pred": the sampled result (C, *S), "inputs": the raw inputs, ...}``,
giving the final ``"pred"``. Each application's ``transforms.py`` builds its model's own (``None`` in its inference
functions), from the settings saved with the weights. What a transform returns is checked here, so a swapped one
that drops a key or changes the image's size ends with an :class:`~medfusion.errors.InputError` that says so.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from ..errors import InputError, first_line

__all__ = ["check_processing", "run_processing", "array_of", "as_numpy", "preprocessed", "postprocessed"]


def check_processing(transform, what: str) -> None:
    """``transform`` is ``None`` (the model's own) or callable on a dict (a MONAI ``Compose``); ``what`` names it
    (``"preprocessing"``, ``"postprocessing"``)."""
    if transform is not None and not callable(transform):
        raise InputError(f"{what} must be a MONAI transform called on a dict (e.g. monai.transforms.Compose), "
                         f"got {type(transform).__name__}")


def run_processing(transform, data: Mapping, what: str) -> dict:
    """``transform(data)`` as a dict; a key the transform needs but ``data`` lacks is an :class:`InputError`
    naming the keys there are."""
    check_processing(transform, what)
    try:
        out = transform(dict(data))
    except Exception as e:  # MONAI's Compose wraps a transform's error in a RuntimeError
        cause = e
        while cause is not None and not isinstance(cause, KeyError):
            cause = cause.__cause__
        if cause is None:
            raise
        message = first_line(cause).strip("\"'")
        raise InputError(f"{what}: {message} (its input has the keys "
                         f"{', '.join(map(repr, data))})") from None
    if not isinstance(out, Mapping):
        raise InputError(f"{what} must return a dict, got {type(out).__name__} (give dictionary transforms, the "
                         "ones whose names end in 'd')")
    return dict(out)


def array_of(data: Mapping, key: str, what: str, shape: Sequence[int] | None = None,
             spatial: Sequence[int] | None = None) -> np.ndarray:
    """``data[key]`` (a NumPy array, a tensor or a MONAI ``MetaTensor``) as a float32 NumPy array, checked: present,
    finite, of ``shape`` (or of the ``spatial`` size after its channels)."""
    if key not in data:
        raise InputError(f"{what} returned no {key!r} (it returned {', '.join(map(repr, data)) or 'nothing'})")
    value = np.asarray(as_numpy(data[key]), dtype=np.float32)
    if shape is not None and value.shape != tuple(shape):
        raise InputError(f"{what} must keep {key!r} of shape {tuple(shape)}, got {value.shape}")
    if spatial is not None and value.shape[1:] != tuple(spatial):
        raise InputError(f"{what} must keep {key!r} of size {tuple(spatial)} after its channels, got {value.shape}")
    if not np.isfinite(value).all():
        raise InputError(f"{what} gave {key!r} with NaN or infinite values")
    return value


def as_numpy(value) -> np.ndarray:
    """A NumPy array, a tensor or a MONAI ``MetaTensor`` as a NumPy array (on the CPU)."""
    return value.detach().cpu().numpy() if hasattr(value, "detach") else np.asarray(value)


def preprocessed(transform, image: np.ndarray) -> np.ndarray:
    """``{"image": image}`` (the raw inputs ``(C, *S)``; not modified) through ``transform``: the network's input,
    float32, checked to keep ``image``'s shape."""
    out = run_processing(transform, {"image": np.array(image, dtype=np.float32)}, "preprocessing")
    return array_of(out, "image", "preprocessing", shape=np.shape(image))


def postprocessed(transform, pred: np.ndarray, inputs: np.ndarray | None) -> tuple[np.ndarray, dict]:
    """``{"pred": pred, "inputs": inputs}`` (no ``"inputs"`` when ``None``) through ``transform``: the final
    ``"pred"`` (float32, checked to keep ``pred``'s shape) and the whole output dict (for keys a postprocessing
    adds, e.g. PET/CT's ``"label"``)."""
    data = {"pred": pred} if inputs is None else {"pred": pred, "inputs": inputs}
    out = run_processing(transform, data, "postprocessing")
    return array_of(out, "pred", "postprocessing", shape=np.shape(pred)), out
