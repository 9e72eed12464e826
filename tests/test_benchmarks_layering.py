"""benchmarks/ holds scripts and the modules they share: no two of its files import each other in a
circle, the shared modules import no script, and nothing there reaches into app/ by a private name.

Scripts put benchmarks/ (and app/) on sys.path, so a sibling is imported by its bare name; the
graph counts every import statement (inside functions too) and importlib.import_module("name")."""

import ast
import shutil
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS, APP = ROOT / "benchmarks", ROOT / "app"


def imported(path: Path) -> set[tuple[str, str]]:
    """(module, name) pairs ``path`` imports; name is "" for ``import module``."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {(alias.name, "") for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found |= {(node.module, alias.name) for alias in node.names}
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module"
              and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            found.add((node.args[0].value, ""))
    return found


def _local(module: str, names: set[str]) -> str | None:
    """The benchmarks/ module that ``module`` (``load``, ``benchmarks.load``) names, if any."""
    parts = module.split(".")
    parts = parts[1:] if parts[0] == "benchmarks" else parts
    return parts[0] if parts and parts[0] in names else None


def import_graph(folder: Path = BENCHMARKS) -> dict[str, set[str]]:
    """benchmarks/ module -> the benchmarks/ modules it imports (itself left out)."""
    names = {p.stem for p in folder.glob("*.py")}
    graph = {}
    for path in folder.glob("*.py"):
        targets = {_local(m, names) for m, name in imported(path)}
        targets |= {_local(name, names) for m, name in imported(path) if m == "benchmarks"}
        graph[path.stem] = targets - {None, path.stem}
    return graph


def circle(graph: dict[str, set[str]]) -> list[str] | None:
    try:
        tuple(TopologicalSorter(graph).static_order())
    except CycleError as error:
        return error.args[1]
    return None


def is_script(path: Path) -> bool:
    return '__name__ == "__main__"' in path.read_text()


def app_modules(app: Path = APP) -> set[str]:
    """Every name under which a file or folder of app/ can be imported (app/ itself on sys.path or not)."""
    return {"app"} | {p.stem for p in app.rglob("*.py")} | {p.name for p in app.rglob("*") if p.is_dir()}


def private_app_imports(folder: Path = BENCHMARKS, app: Path = APP) -> list[str]:
    modules = app_modules(app)
    return sorted(f"{path.name}: from {m} import {name}" for path in folder.glob("*.py") for m, name in imported(path)
                  if m.split(".")[0] in modules and name.startswith("_"))


def shared_importing_app_or_scripts(folder: Path = BENCHMARKS, app: Path = APP) -> list[str]:
    """Shared modules (no ``__main__``) that import app/ or a script: either would tie every script
    that imports them to it."""
    modules, graph = app_modules(app), import_graph(folder)
    scripts = {p.stem for p in folder.glob("*.py") if is_script(p)}
    bad = []
    for path in folder.glob("*.py"):
        if not is_script(path):
            bad += [f"{path.name} imports app's {m}" for m, _ in imported(path) if m.split(".")[0] in modules]
            bad += [f"{path.name} imports the script {t}" for t in graph[path.stem] & scripts]
    return sorted(bad)


def test_no_import_circle_between_benchmark_files():
    graph = import_graph()
    assert {"serving", "load", "app_budgets"} <= set(graph), "the benchmarks are where this test looks"
    assert circle(graph) is None


def test_shared_benchmark_modules_import_no_script_and_nothing_private_of_app():
    assert not shared_importing_app_or_scripts()
    assert not private_app_imports()


def test_the_checks_catch_a_circle_and_a_private_import(tmp_path):
    """A circle planted as the old one was (sys.path.insert, then imports inside functions), and a
    shared module importing a private name of app/: each check fails."""
    folder = tmp_path / "benchmarks"
    shutil.copytree(BENCHMARKS, folder, ignore=shutil.ignore_patterns("__pycache__"))
    assert circle(import_graph(folder)) is None
    with (folder / "load.py").open("a") as f:
        f.write("\n\ndef _later():\n    import sys\n    sys.path.insert(0, 'benchmarks')\n"
                "    from app_budgets import random_checkpoint\n")
    with (folder / "app_budgets.py").open("a") as f:
        f.write("\n\ndef _later():\n    import importlib\n    return importlib.import_module('load')\n")
    found = circle(import_graph(folder))
    assert found is not None and {"load", "app_budgets"} <= set(found)
    with (folder / "serving.py").open("a") as f:
        f.write("\n\ndef _later():\n    from server.classroom import _INDEX_LOCK\n")
    assert any("serving.py" in line for line in private_app_imports(folder, APP))
    assert any("serving.py imports app's server.classroom" in line for line in shared_importing_app_or_scripts(folder, APP))
