"""The architecture's rules that import-linter does not check (pyproject.toml's [tool.importlinter] checks the rest)."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import ftrun

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]


def contracts() -> list[dict]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["importlinter"]["contracts"]


def test_the_layers_drawn_in_the_architecture_page_are_the_contract():
    (layers,) = [contract["layers"] for contract in contracts() if contract["type"] == "layers"]
    page = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    drawing = page.split("## Layers", 1)[1].split("```", 2)[1]
    drawn = [line.split()[0] for line in drawing.splitlines() if line.strip().startswith("ftrun.")]
    assert drawn == layers


def imported_modules(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append(node.module)
    return found


def test_the_example_plugins_import_only_ftruns_public_api():
    # import-linter takes only packages as roots, and two of the example plugins are single modules.
    public = {"ftrun", "ftrun.testing"}
    wrong = {
        f"{path.relative_to(ROOT)}: {module}"
        for path in (ROOT / "examples").rglob("*.py")
        for module in imported_modules(path)
        if module.startswith("ftrun.") and module not in public and not module.startswith("ftrun.plugins")
    }
    assert not wrong


def test_a_module_path_of_the_flat_layout_still_imports_and_says_where_it_went():
    import importlib
    import warnings

    sys.modules.pop("ftrun.data", None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        old = importlib.import_module("ftrun.data")
    assert old is importlib.import_module("ftrun.stages.data")
    assert [str(w.message) for w in caught if issubclass(w.category, DeprecationWarning)] == [
        "ftrun.data moved to ftrun.stages.data; import public names from ftrun (docs/plugins.md lists them)"
    ]
    assert set(ftrun.MOVED) >= {"config", "data", "head", "training", "task", "plugin_manager", "hookspecs"}


def test_every_moved_module_imports_under_its_old_name():
    import importlib
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        for old, new in ftrun.MOVED.items():
            assert importlib.import_module(f"ftrun.{old}") is importlib.import_module(f"ftrun.{new}")


def positional_parameters(function: ast.FunctionDef) -> list[str]:
    return [a.arg for a in function.args.posonlyargs + function.args.args if a.arg not in ("self", "cls")]


def test_no_function_of_the_core_takes_more_than_six_positional_parameters():
    # Hook specs and their implementations are called by keyword (pluggy), with the spec's names.
    hooks = re.compile(r"ftrun_\w+")
    wide = [
        f"{path.relative_to(ROOT)}:{node.lineno} {node.name}"
        for path in (ROOT / "core").rglob("*.py")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.FunctionDef) and not hooks.fullmatch(node.name) and len(positional_parameters(node)) > 6
    ]
    assert not wide


def test_the_run_reads_on_one_screen():
    runner = ast.parse((ROOT / "core" / "runner.py").read_text(encoding="utf-8"))
    (run,) = [node for node in runner.body if isinstance(node, ast.FunctionDef) and node.name == "run"]
    assert run.end_lineno - run.lineno + 1 <= 45
