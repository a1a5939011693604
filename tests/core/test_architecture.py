"""The shape of the house: imports point down (the core imports no application, only the CLI layer imports the
CLI), ``import medfusion`` stays cheap, and modules and functions stay small enough to read."""

from __future__ import annotations

import ast
import subprocess
from pathlib import Path

import pytest

from conftest import PYTHON, REPO, run_env

PACKAGE = REPO / "medfusion"
MODULES = sorted(PACKAGE.rglob("*.py"))


def _imports(path: Path) -> set[str]:
    """Absolute names of the medfusion modules ``path`` imports (relative imports resolved)."""
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    package = parts[:-1] if parts[-1] != "__init__" else parts[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            name = ".".join(base + ([node.module] if node.module else []))
            if node.module:  # `from . import x` imports x, not the package's own names
                found.add(name)
            found.update(f"{name}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return {n for n in found if n.startswith("medfusion")}


def _name(path: Path) -> str:
    return ".".join(path.relative_to(REPO).with_suffix("").parts)


@pytest.mark.parametrize("path", [p for p in MODULES if "core" in p.parts], ids=_name)
def test_the_core_imports_no_application_and_no_cli(path):
    bad = {n for n in _imports(path) if n.startswith(("medfusion.apps", "medfusion.cli"))}
    assert not bad, f"{_name(path)} imports {sorted(bad)}"


@pytest.mark.parametrize("path", MODULES, ids=_name)
def test_only_the_cli_package_imports_the_cli_package(path):
    """``medfusion.cli`` imports the applications, so nothing else imports it: an application's own ``cli.py``
    takes its shared options from :mod:`medfusion.core.cli_options`, below it."""
    if "cli" in path.parts:
        return
    bad = {n for n in _imports(path) if n.startswith("medfusion.cli")}
    assert not bad, f"{_name(path)} imports {sorted(bad)}"


@pytest.mark.parametrize("path", [p for p in MODULES if "phantoms" not in p.parts and "cli" not in p.parts],
                         ids=_name)
def test_only_the_cli_imports_the_phantoms(path):
    """The phantoms sit above the applications (they use their layouts and tables): no application, core or
    inference module imports them; ``medfusion phantoms`` (the CLI) does."""
    bad = {n for n in _imports(path) if n.startswith("medfusion.phantoms")}
    assert not bad, f"{_name(path)} imports {sorted(bad)}"


def _module_graph() -> dict[str, set[str]]:
    """Module → the medfusion modules it imports anywhere in its text (function-level imports too)."""
    names = {_name(p).removesuffix(".__init__") for p in MODULES}
    return {_name(p).removesuffix(".__init__"): {n for n in _imports(p) if n in names} for p in MODULES}


def test_no_import_cycle():
    """No module reaches itself through its imports, deferred (function-level) imports included: every layer
    can be read from the bottom up."""
    graph = _module_graph()
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt] if nxt in path else [node, nxt]
            if nxt not in state and (cycle := visit(nxt, path + [nxt])):
                return cycle
        state[node] = 2
        return None

    for module in sorted(graph):
        if module not in state:
            cycle = visit(module, [module])
            assert cycle is None, " -> ".join(cycle)


def test_every_application_registers_its_commands():
    from medfusion.apps import APPS
    from medfusion.cli.main import build_parser, command_modules

    assert all(f"medfusion.apps.{a}.cli" in command_modules() for a in APPS)
    commands = set(build_parser()._subparsers._group_actions[0].choices)
    assert {"synthesize", "demo", "phantoms", "evaluate"} <= commands


@pytest.mark.slow
def test_import_medfusion_is_cheap_and_has_no_side_effects():
    code = ("import sys, logging; before = set(sys.modules); import medfusion, medfusion.cli.main; "
            "heavy = [m for m in ('torch', 'monai', 'numpy', 'matplotlib') if m in sys.modules]; "
            "print(heavy, logging.getLogger().handlers)")
    out = subprocess.run([PYTHON, "-c", code], capture_output=True, text=True, encoding="utf-8", env=run_env(), timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[] []"


@pytest.mark.parametrize("path", MODULES, ids=_name)
def test_modules_and_functions_stay_readable(path):
    text = path.read_text()
    assert text.count("\n") <= 400, f"{_name(path)} has {text.count(chr(10))} lines (keep modules at most 400)"
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            length = node.end_lineno - node.lineno + 1
            assert length <= 60, f"{_name(path)}.{node.name} has {length} lines"


def test_every_application_package_exports_its_entry_points():
    """Each application's package names its API (``load_model`` first among them), and every name resolves."""
    import importlib

    from medfusion.apps import APPS

    for app in APPS:
        package = importlib.import_module(f"medfusion.apps.{app}")
        assert "load_model" in package.__all__, app
        for name in package.__all__:
            assert getattr(package, name) is not None, f"{app}.{name}"
