"""What the MONAI bundle tests share: running ``python -m monai.bundle`` (and other commands) from the repository
root, the ``--config_file`` value and merged content of a bundle's configs, and the checks every bundle's configs and
metadata pass.

A helper module, not a test module (pytest collects nothing from it). It sits next to the root ``conftest.py``, whose
folder pytest puts on ``sys.path``, so a test in any folder below imports it as ``bundle_helpers``.

``verify_metadata`` always calls ``download_url(schema_url, filepath)``; MONAI's ``download_url`` returns without
touching the network when ``filepath`` already exists (after an optional hash check), so naming the copy of the schema
in ``tests/data`` (byte-identical to MONAI's ``meta_schema_20240725.json``) makes the check work offline, and the MD5
pins that copy.
"""

from __future__ import annotations

import inspect
import pydoc
import subprocess

from conftest import PYTHON, REPO, run_env

SCHEMA = "tests/data/meta_schema_20240725.json"  # relative to REPO (every subprocess runs with cwd=REPO)
SCHEMA_MD5 = "76e1add273836515d0bbb3bc71962474"
# keys of a config component that MONAI consumes itself (not arguments of the target)
RESERVED = {"_target_", "_disabled_", "_requires_", "_desc_", "_mode_"}


def bundle_env(**extra) -> dict:
    """Environment of a bundle command: this interpreter's packages, one thread, CPU and gloo even on a GPU
    machine, plus ``extra``."""
    env = run_env()
    env["OMP_NUM_THREADS"] = "1"
    env["CUDA_VISIBLE_DEVICES"] = ""
    return {**env, **extra}


def run_in_repo(args: list[str], timeout: float = 120, **env) -> subprocess.CompletedProcess:
    """``args`` in a fresh process run from the repository root (``env``: extra environment variables)."""
    return subprocess.run(args, cwd=REPO, env=bundle_env(**env), capture_output=True, text=True, encoding="utf-8",
                          timeout=timeout)


def run_bundle(command: str, *args: str, timeout: float = 120, **env) -> subprocess.CompletedProcess:
    """``python -m monai.bundle COMMAND ARGS`` from the repository root."""
    return run_in_repo([PYTHON, "-m", "monai.bundle", command, *args], timeout=timeout, **env)


def assert_ok(proc: subprocess.CompletedProcess) -> None:
    """Exit 0, or a failure that shows the ends of stdout and stderr and every exception line."""
    assert proc.returncode == 0, (
        f"exit {proc.returncode}\n--- stdout\n{proc.stdout[-4000:]}\n--- stderr\n{proc.stderr[-4000:]}"
        f"\n--- errors\n{_errors(proc.stderr)}"
    )


def _errors(text: str) -> str:
    """The exception lines of a (possibly multi-process) traceback, which the tail of a long log may miss."""
    return "\n".join(line for line in text.splitlines() if "Error:" in line or "Exception:" in line)


def config_files(bundle: str, *names: str) -> str:
    """``--config_file`` value of ``bundle``'s configs ``names``, merged left to right (always a list)."""
    return "[" + ",".join(f"'{bundle}/configs/{n}'" for n in names) + "]"


def _components(node, path=""):
    """Every ``(id, dict)`` with a ``_target_`` in a config tree."""
    if isinstance(node, dict):
        if "_target_" in node:
            yield path, node
        for k, v in node.items():
            yield from _components(v, f"{path}#{k}" if path else str(k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _components(v, f"{path}#{i}")


def check_components(config: dict, name: str) -> None:
    """Every ``_target_`` of a parsed bundle config is a medfusion callable (or a PyTorch optimizer, or a MONAI
    transform: the ``Compose`` of a ``preprocessing`` / ``postprocessing``) that takes the component's arguments."""
    for cid, comp in _components(config):
        target = comp["_target_"]
        assert target.startswith(("medfusion.", "torch.optim.", "monai.transforms.")), \
            f"{name}#{cid}: {target} is not a medfusion callable"
        obj = pydoc.locate(target)
        assert callable(obj), f"{name}#{cid}: {target} does not resolve"
        params = dict(inspect.signature(obj).parameters)
        # **kwargs forwarded: cwdm_unet to conditional_unet, a trainer subclass to its base class
        if target == "medfusion.networks.cwdm_unet":
            params.update(inspect.signature(pydoc.locate("medfusion.networks.conditional_unet")).parameters)
        for base in getattr(obj, "__mro__", ())[1:]:
            if "__init__" in vars(base):
                params.update(inspect.signature(base.__init__).parameters)
        unknown = set(comp) - RESERVED - {k for k, p in params.items() if p.kind != p.VAR_KEYWORD}
        assert not unknown, f"{name}#{cid}: {target} takes no argument(s) {sorted(unknown)}"


def verify_metadata_in_process(bundle: str) -> None:
    """``verify_metadata`` of ``bundle``'s metadata against the offline schema (MD5-checked) in this process; raises
    (jsonschema's ValidationError) when it does not verify."""
    from monai.bundle import verify_metadata

    verify_metadata(meta_file=str(REPO / bundle / "configs" / "metadata.json"), filepath=str(REPO / SCHEMA),
                    hash_val=SCHEMA_MD5)


def bundle_processing(bundle: str, config: str = "inference.json", **overrides):
    """The ``preprocessing`` and ``postprocessing`` that ``bundles/<bundle>/configs/<config>`` builds (``overrides``:
    config ids → values, as the command line gives them)."""
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(str(REPO / "bundles" / bundle / "configs" / config))
    parser.update(overrides)
    return parser.get_parsed_content("preprocessing"), parser.get_parsed_content("postprocessing")
