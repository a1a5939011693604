"""What every FID feature network shares: the :class:`FeatureExtractor` base class, :class:`ExtractorInfo`, and the
checks that turn a user-supplied weights file into a network.

The weights file must exist before anything is built (:func:`_existing_weights`); it is read with
``torch.load(path, map_location="cpu", weights_only=True)`` (:func:`_read_state_dict`) and loaded only if its
keys and shapes match the network exactly (:func:`_load_strict`), into a network built without a random
initialisation (:func:`_empty`). Input volumes and slice stacks are checked by :func:`_volume` / :func:`_slices`.

The networks themselves live in :mod:`.features_inception`, :mod:`.features_radimagenet` and
:mod:`.features_medicalnet`; the registry and the FID entry points in :mod:`medfusion.metrics.features`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Mapping

import numpy as np

from ..errors import InputError

__all__ = ["FeatureExtractor", "ExtractorInfo"]


@dataclass(frozen=True)
class ExtractorInfo:
    """What an extractor needs: its class, the weights file it expects and where that file comes from."""

    name: str
    protocol: str
    weights_file: str
    source: str
    cls: type


class FeatureExtractor:
    """A pretrained feature network with its preprocessing, built from a user-supplied weights file.

    Attributes:
        name: registry name (see :data:`~medfusion.metrics.features.EXTRACTORS`).
        dims: feature width (2048 for all three networks).
        planes: names of the feature groups whose FIDs are averaged by
            :func:`~medfusion.metrics.features.fid_from_volumes`.
        weights: the weights file (a :class:`~pathlib.Path`).
        device: the ``torch.device`` the network runs on.
        batch_size: slices (or volumes) per forward pass.
        network: the ``torch.nn.Module`` (eval mode).

    ``__call__(volume)`` maps an (X, Y, Z) numpy array to an (N, dims) float64 array (N slices or 1 volume);
    the 2.5D extractor, which has three planes, returns a dict instead (see
    :class:`~medfusion.metrics.features_radimagenet.RadImageNet25DExtractor`). ``extract_planes(volume)`` always
    returns ``{plane: (N, dims)}``.

    A subclass sets ``_info``, its :class:`ExtractorInfo` (the entry of the registry), after its definition.
    """

    name: str = ""
    dims: int = 2048
    planes: tuple[str, ...] = ()
    _info: ClassVar[ExtractorInfo]

    def __init__(self, weights, *, device="cpu", batch_size: int = 32) -> None:
        import torch

        info = self._info
        self.weights = _existing_weights(weights, info)
        if int(batch_size) < 1:
            raise InputError(f"batch_size must be ≥ 1, got {batch_size}")
        self.batch_size = int(batch_size)
        try:
            self.device = torch.device(device)
        except (RuntimeError, TypeError) as e:
            raise InputError(f"not a torch device: {device!r}") from e
        self._before_loading()
        state = _read_state_dict(self.weights, info)
        network = self._build(state)
        network.eval()
        self.network = network.to(self.device)

    # subclasses ---------------------------------------------------------------------------------------------
    def _before_loading(self) -> None:
        """Checks that need no weights (e.g. an optional package); runs after the file check."""

    def _build(self, state: dict) -> Any:
        raise NotImplementedError

    def __call__(self, volume: np.ndarray):
        raise NotImplementedError

    def extract_planes(self, volume: np.ndarray) -> dict[str, np.ndarray]:
        """``{plane: (N, dims) float64 features}`` for one volume, for every extractor."""
        return {self.planes[0]: self(volume)}

    # shared -------------------------------------------------------------------------------------------------
    def _forward_batches(self, items: np.ndarray, preprocess) -> np.ndarray:
        """Run ``network(preprocess(items[i:i+batch_size]))`` over the first axis; (N, dims) float64."""
        import torch

        out = []
        with torch.inference_mode():
            for start in range(0, items.shape[0], self.batch_size):
                x = preprocess(items[start : start + self.batch_size]).to(self.device)
                y = self.network(x)
                if not torch.is_tensor(y):  # e.g. a named tuple of (logits, aux)
                    y = y[0]
                y = y.reshape(y.shape[0], -1)
                if y.shape[1] != self.dims:
                    raise InputError(f"{self.name}: network gave {y.shape[1]} features, expected {self.dims}")
                out.append(y.detach().to("cpu", torch.float64).numpy())
        return np.concatenate(out, axis=0)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(weights={str(self.weights)!r}, device={str(self.device)!r})"


# --------------------------------------------------------------------------------------------------------------
# Helpers: files, state dicts, networks, inputs


def _existing_weights(weights, info: ExtractorInfo) -> Path:
    if weights is None or str(weights) == "":
        raise InputError(
            f"the {info.protocol} needs a weights file, {info.weights_file}, from {info.source}; none was given"
        )
    path = Path(weights).expanduser()
    if not path.is_file():
        raise InputError(
            f"{info.protocol} weights not found: {path}; it needs {info.weights_file}, from {info.source}"
        )
    return path


def _read_state_dict(path: Path, info: ExtractorInfo) -> dict:
    import torch

    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:  # unpickling errors, truncated files, pickled modules refused by weights_only
        raise InputError(f"cannot read {path} as a PyTorch state dict for the {info.protocol}: {_first_line(e)}") from e
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping) or not obj:
        raise InputError(f"{path} is not a state dict (a {type(obj).__name__}); expected {info.weights_file}")
    if not all(isinstance(k, str) and torch.is_tensor(v) for k, v in obj.items()):
        raise InputError(f"{path} is not a state dict of named tensors; expected {info.weights_file}")
    state = dict(obj)
    if all(k.startswith("module.") for k in state):  # saved from torch.nn.DataParallel (MedicalNet)
        state = {k[len("module.") :]: v for k, v in state.items()}
    return state


def _empty(builder):
    """``builder()`` run on the meta device, then given uninitialised CPU storage: every tensor is then
    overwritten by :func:`_load_strict`, so no time is spent on a random initialisation."""
    import torch

    with torch.device("meta"):
        net = builder()
    return net.to_empty(device="cpu")


def _load_strict(network, state: dict, path: Path, what: str) -> None:
    """Load ``state`` into ``network`` only if keys and shapes match exactly (``num_batches_tracked``, a
    training counter that older files lack, is filled in); else :class:`InputError`."""
    import torch

    own = network.state_dict()
    state = dict(state)
    for k in own:
        if k.endswith("num_batches_tracked") and k not in state:
            state[k] = torch.zeros((), dtype=torch.long)
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys ({_some(missing)})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys ({_some(unexpected)})")
        raise InputError(f"{path} does not fit the {what}: {'; '.join(parts)}; is it the right file?")
    wrong = [k for k in own if tuple(own[k].shape) != tuple(state[k].shape)]
    if wrong:
        k = wrong[0]
        raise InputError(
            f"{path} does not fit the {what}: {len(wrong)} tensors have the wrong shape, e.g. {k} "
            f"{tuple(state[k].shape)} instead of {tuple(own[k].shape)}"
        )
    network.load_state_dict(state, strict=True)


def _volume(volume) -> np.ndarray:
    try:
        v = np.asarray(volume, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise InputError(f"volume is not a numeric array: {e}") from e
    if v.ndim != 3 or min(v.shape) < 1:
        raise InputError(f"expected a 3D volume (X, Y, Z), got shape {v.shape}")
    if not np.all(np.isfinite(v)):
        raise InputError("volume contains non-finite values (NaN or inf)")
    return v


def _slices(slices) -> np.ndarray:
    """(N, H, W) (or one (H, W)) slices as a float64 (N, H, W) array; else :class:`InputError`."""
    s = np.asarray(slices, dtype=np.float64)
    if s.ndim == 2:
        s = s[None]
    if s.ndim != 3:
        raise InputError(f"expected slices of shape (N, H, W), got {s.shape}")
    return s


def _some(keys: list[str], n: int = 3) -> str:
    return ", ".join(keys[:n]) + (", …" if len(keys) > n else "")


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return (text[0] if text else type(e).__name__)[:200]
