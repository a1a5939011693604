"""One output-safety rule for every command, bundle and API function: every output checked before any work, all of
them written or none, and nothing deleted or replaced that the run did not create (or was told to replace).

    plan = OutputPlan(overwrite=False, inputs=[pet, ct])
    plan.add([labels_path, uncertainty_path])                  # files (.nii.gz/.nii unless other endings are given)
    plan.add_folder("outputs/demo", owner="medfusion demo")     # a folder the run replaces as a whole
    with plan:                                                 # all checks first: InputError before any work
        save_like(labels, ct, labels_path)                     # medfusion's writers stage every planned file
    # a clean exit puts every staged file in place at once; an error, Ctrl-C or SIGTERM (see
    # medfusion.errors.signals_as_exceptions) removes the staged files and the folders the run made

Checks (:meth:`OutputPlan.check`): a file ends in an accepted extension, is not a folder, is not an input, is not
named twice, and its folder exists and is writable or can be created; it is absent unless ``overwrite`` (every
existing output is listed in one :class:`~medfusion.errors.OutputExistsError`).  A folder the run replaces holds no
input and is absent, empty, or written by the same owner before: it carries the marker file :data:`MARKER` that
run wrote and nothing else than what that run wrote (a file the user added is never deleted).

Staging: while a plan is active, :func:`destination` gives the hidden file beside a target that a writer writes
instead of the target (:func:`medfusion.io.write_atomic` and the stain application's TIFF writer call it), and writing
a path the plan does not name is a bug (``RuntimeError``).  A plan entered while another is active is checked and
joins it: its paths must be planned by the outer plan, which commits them.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import tempfile
from contextvars import ContextVar
from typing import Iterable, Sequence

from .errors import InputError, OutputExistsError, signals_held

__all__ = ["OutputPlan", "writing", "check_outputs", "destination", "planned", "reserve_sibling", "MARKER", "NIFTI"]

#: the endings of NIfTI outputs (the default of :meth:`OutputPlan.add`)
NIFTI = (".nii.gz", ".nii")
#: the file a replaced folder carries: who wrote the folder and what it wrote
MARKER = ".medfusion-output.json"

_ACTIVE: ContextVar["OutputPlan | None"] = ContextVar("medfusion_output_plan", default=None)


def _paths(paths) -> list[str]:
    if paths is None or isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    return [os.fspath(p) for p in paths if p is not None]


def _writable_folder(path: str, tried: dict | None = None) -> str | None:
    """Why the folder of ``path`` cannot receive a file, or ``None`` if it can (it may not exist yet): the nearest
    existing folder on the way must take a file — tried with a hidden file, created and removed at once, as
    permissions alone do not tell (a read-only file system, or root).  ``tried`` caches the answer per folder."""
    probe = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(probe):
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    if not os.path.isdir(probe):
        return f"{probe} is not a folder"
    tried = {} if tried is None else tried
    if probe not in tried:
        try:
            fd, name = tempfile.mkstemp(prefix=".medfusion-probe-", dir=probe)
            os.close(fd)
            os.remove(name)
            tried[probe] = None
        except OSError as exc:
            tried[probe] = f"folder {probe} is not writable ({exc.strerror or exc})"
    return tried[probe]


def _inside(real: str, folder_real: str) -> bool:
    return real == folder_real or real.startswith(folder_real.rstrip(os.sep) + os.sep)


class OutputPlan:
    """Every output of one run (see the module docstring); use as a context manager around the run's work."""

    def __init__(self, *, overwrite: bool = False, inputs: Iterable = ()) -> None:
        self.overwrite = bool(overwrite)
        self.inputs = _paths(list(inputs))
        self._files: dict[str, tuple[str, tuple[str, ...]]] = {}  # real path → (path as given, endings)
        self._folders: dict[str, tuple[str, str]] = {}  # real path → (path as given, owner)
        self._staged: dict[str, str] = {}  # real target → staged file
        self._staged_dirs: dict[str, str] = {}  # real folder → staged folder
        self._made: list[str] = []  # folders this run created, parents first
        self._checked = False
        self._joined: OutputPlan | None = None
        self._token = None

    # ----------------------------------------------------------------------------------------------- planning
    def add(self, paths, extensions: Sequence[str] = NIFTI) -> "OutputPlan":
        """Plan output files (a path or several; ``None`` entries are skipped); ``extensions``: accepted endings
        (empty: any)."""
        for path in _paths(paths):
            real = os.path.realpath(path)
            if real in self._files:
                raise InputError(f"two outputs go to the same file: {self._files[real][0]} and {path}")
            self._files[real] = (path, tuple(e.lower() for e in extensions))
        self._checked = False
        return self

    def add_folder(self, path, *, owner: str) -> "OutputPlan":
        """Plan a folder that the run writes from scratch and that replaces the folder at ``path`` if ``owner``
        wrote that one (see the module docstring)."""
        path = os.fspath(path)
        self._folders[os.path.realpath(path)] = (path, owner)
        self._checked = False
        return self

    def check(self) -> None:
        """Raise :class:`~medfusion.errors.InputError` for the first problem of any planned output, or
        :class:`~medfusion.errors.OutputExistsError` listing every existing one; nothing is written."""
        protected = {os.path.realpath(p) for p in self.inputs}
        tried: dict = {}
        for real, (path, endings) in self._files.items():
            if endings and not path.lower().endswith(endings):
                raise InputError(f"output file must end in {' or '.join(endings)}: {path}")
            if os.path.isdir(path):
                raise InputError(f"output path is a folder: {path}")
            if real in protected:
                raise InputError(f"output {path} is one of the inputs; inputs are never overwritten")
            reason = _writable_folder(path, tried)
            if reason:
                raise InputError(f"cannot write {path}: {reason}")
        for real, (path, owner) in self._folders.items():
            _check_folder(path, real, owner, protected)
        if not self.overwrite:
            existing = [path for path, _ in self._files.values() if os.path.lexists(path)]
            if existing:
                raise OutputExistsError(existing)
        self._checked = True

    # ----------------------------------------------------------------------------------------------- running
    def __enter__(self) -> "OutputPlan":
        outer = _ACTIVE.get()
        if outer is not None:
            outer._covers(self)
            self.check()  # its own endings and inputs; nothing is in place before the outer plan commits
            self._joined = outer
            return self
        if not self._checked:
            self.check()
        self._token = _ACTIVE.set(self)
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if self._joined is not None:
            self._joined = None
            return False
        _ACTIVE.reset(self._token)
        if exc_type is None:
            self._commit()
        else:
            self._rollback()
        return False

    def discard(self, paths) -> None:
        """Drop what was staged for ``paths`` (a case that failed half-way); they are not written."""
        plan = self._joined or self
        with signals_held():
            for path in _paths(paths):
                staged = plan._staged.pop(os.path.realpath(path), None)
                if staged is not None and os.path.lexists(staged):
                    os.remove(staged)

    def _covers(self, inner: "OutputPlan") -> None:
        for real, (path, _) in inner._files.items():
            if real not in self._files and not any(_inside(real, f) for f in self._folders):
                raise RuntimeError(f"medfusion bug: output {path} is not in the run's output plan")

    def stage(self, path: str) -> str:
        """The hidden file to write instead of the planned output ``path`` (see :func:`destination`)."""
        real = os.path.realpath(path)
        for folder_real, (folder, _) in self._folders.items():
            if _inside(real, folder_real) and real != folder_real:
                staged_dir = self._staged_dirs.get(folder_real)
                if staged_dir is None:
                    self._makedirs(os.path.dirname(os.path.abspath(folder)))
                    staged_dir = self._staged_dirs[folder_real] = reserve_sibling(folder, "partial", folder=True)
                target = os.path.join(staged_dir, os.path.relpath(real, folder_real))
                os.makedirs(os.path.dirname(target), exist_ok=True)
                return target
        if real not in self._files:
            raise RuntimeError(f"medfusion bug: {path} is written but is not in the run's output plan")
        if real in self._staged:
            raise RuntimeError(f"medfusion bug: {path} is written twice in one run")
        self._makedirs(os.path.dirname(os.path.abspath(path)))
        self._staged[real] = reserve_sibling(path, "partial")
        return self._staged[real]

    def _makedirs(self, folder: str) -> None:
        missing = []
        probe = os.path.abspath(folder)
        while not os.path.exists(probe):
            missing.append(probe)
            probe = os.path.dirname(probe)
        os.makedirs(folder, exist_ok=True)
        self._made += reversed(missing)

    def _commit(self) -> None:
        try:
            with signals_held():
                for real in list(self._staged):  # forgotten once in place, so a failure rolls back the rest
                    os.replace(self._staged[real], self._files[real][0])
                    del self._staged[real]
                for real in list(self._staged_dirs):
                    self._replace_folder(real, self._staged_dirs[real])
                    del self._staged_dirs[real]
        except BaseException:
            self._rollback()
            raise

    def _replace_folder(self, real: str, staged: str) -> None:
        folder, owner = self._folders[real]
        # checked again now: a file someone put there during the run is theirs, and the folder is then kept
        _check_folder(folder, real, owner, {os.path.realpath(p) for p in self.inputs})
        written = sorted(os.listdir(staged))
        with open(os.path.join(staged, MARKER), "w", encoding="utf-8") as fh:
            json.dump({"owner": owner, "files": written}, fh)
        old = None
        if os.path.lexists(folder):
            old = reserve_sibling(folder, "old", folder=True)  # ours and empty: the rename replaces it
            os.rename(folder, old)
        os.rename(staged, folder)
        if old is not None:
            shutil.rmtree(old)

    def _rollback(self) -> None:
        with signals_held():
            for staged in self._staged.values():
                if os.path.lexists(staged):
                    os.remove(staged)
            for staged in self._staged_dirs.values():
                shutil.rmtree(staged, ignore_errors=True)
            self._staged.clear()
            self._staged_dirs.clear()
            for folder in reversed(self._made):
                try:
                    os.rmdir(folder)  # only if still empty: nothing of anyone else's is ever removed
                except OSError:
                    pass
            self._made.clear()


def _hidden_sibling(path: str, what: str) -> str:
    folder, name = os.path.split(os.path.abspath(path))
    return os.path.join(folder, f".{name}.{secrets.token_hex(4)}.{what}")


def reserve_sibling(path, what: str, *, folder: bool = False) -> str:
    """A new hidden sibling of ``path`` (``.<name>.<random>.<what>``), created here exclusively — an empty file, or
    a folder — so that removing it later removes only what this run made, never a file that had that name; a taken
    name draws another. Writers fill it, or replace it with :func:`os.replace`."""
    while True:
        name = _hidden_sibling(path, what)
        try:
            if folder:
                os.mkdir(name)
            else:
                os.close(os.open(name, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
            return name
        except FileExistsError:
            continue


def _check_folder(path: str, real: str, owner: str, protected: set[str]) -> None:
    """Refuse to plan replacing the folder ``path`` unless that deletes nothing its ``owner`` did not write."""
    held = [p for p in protected if _inside(p, real)]
    if held:
        raise InputError(f"output folder {path} holds the input {held[0]}; inputs are never replaced")
    reason = _writable_folder(path)
    if reason:
        raise InputError(f"cannot write {path}: {reason}")
    if not os.path.lexists(path):
        return
    if os.path.islink(path) or not os.path.isdir(path):
        raise InputError(f"output folder {path} exists and is not a folder")
    reason = _writable_folder(os.path.join(path, "x"))
    if reason:
        raise InputError(f"cannot replace {path}: {reason}")
    entries = os.listdir(path)
    if not entries:
        return
    written = _marked_files(path, owner) or set()
    foreign = sorted(e for e in entries if e not in written and not (written and e == MARKER))
    if foreign:
        raise InputError(f"output folder {path} holds files {owner} did not write ({', '.join(foreign[:3])}"
                         f"{', ...' if len(foreign) > 3 else ''}): it is never replaced; choose another folder")


def _marked_files(path: str, owner: str) -> set[str] | None:
    """The files the folder's marker lists, if ``owner`` wrote it; else ``None``."""
    try:
        with open(os.path.join(path, MARKER), encoding="utf-8") as fh:
            marker = json.load(fh)
    except (OSError, ValueError):
        return None
    if not isinstance(marker, dict) or marker.get("owner") != owner or not isinstance(marker.get("files"), list):
        return None
    return {str(f) for f in marker["files"]}


def planned(path) -> bool:
    """Whether the active :class:`OutputPlan` holds ``path`` (a planned file, or one inside a folder it replaces):
    its existence was then checked by the plan, and the writer's own check steps aside."""
    plan = _ACTIVE.get()
    if plan is None:
        return False
    real = os.path.realpath(os.fspath(path))
    return real in plan._files or any(_inside(real, f) and real != f for f in plan._folders)


def destination(path) -> str:
    """Where a writer puts ``path``: the staged file of the active :class:`OutputPlan`, or ``path`` itself when no
    plan is active."""
    plan = _ACTIVE.get()
    return os.fspath(path) if plan is None else plan.stage(os.fspath(path))


def writing(outputs, *, overwrite: bool = False, inputs: Iterable = (), extensions: Sequence[str] = NIFTI
            ) -> OutputPlan:
    """An :class:`OutputPlan` of the files ``outputs``, for ``with writing(...):``."""
    return OutputPlan(overwrite=overwrite, inputs=inputs).add(outputs, extensions)


def check_outputs(outputs, *, overwrite: bool = False, inputs: Iterable = (), extensions: Sequence[str] = NIFTI
                  ) -> None:
    """Check output files before any work, without staging anything (see :meth:`OutputPlan.check`)."""
    writing(outputs, overwrite=overwrite, inputs=inputs, extensions=extensions).check()
