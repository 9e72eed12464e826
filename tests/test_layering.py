"""The package's layout holds: subpackages by role, dependencies in one direction, no circles.

The layers and their order are written once, in mto_core/__init__.py's docstring; this test
reads them from there. app/ and benchmarks/ import the library; the library imports neither."""

import ast
from pathlib import Path

import mto_core

LIBRARY = Path(mto_core.__file__).parent
TOP_LEVEL = {"__init__", "_torchvision_compat", "api", "cli", "config"}


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Attribute) and node.attr == "spec_from_file_location":
            found.add("a module loaded from a file path")
    return found


def module_name(path: Path, root: Path = LIBRARY) -> str:
    """``models.vit`` for mto_core/models/vit.py, ``models`` for its __init__.py, ``__init__`` for the top."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1]) if parts[-1] == "__init__" and len(parts) > 1 else ".".join(parts)


def import_graph(root: Path = LIBRARY) -> dict[str, set[str]]:
    """Module -> the package's modules it imports (at the top, inside functions, under
    TYPE_CHECKING alike); ``from .pkg import name`` counts as importing ``pkg.name`` where that
    is a module, else ``pkg`` (its __init__)."""
    modules = {module_name(p, root): p for p in root.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name.split(".") if path.name == "__init__.py" and name != "__init__" else name.split(".")[:-1]
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            targets: list[tuple[str, list[str]]] = []
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package[:len(package) - (node.level - 1)]
                    target = ".".join([*base, *([node.module] if node.module else [])])
                elif (node.module or "").split(".")[0] == root.name:
                    target = node.module.partition(".")[2]
                else:
                    continue
                targets.append((target, [a.name for a in node.names]))
            elif isinstance(node, ast.Import):
                targets += [(a.name.partition(".")[2], []) for a in node.names if a.name.split(".")[0] == root.name]
            for target, names in targets:
                for n in names or [""]:
                    candidate = f"{target}.{n}".strip(".")
                    found.add(candidate if n and candidate in modules else (target or "__init__"))
        graph[name] = found - {name}
    return graph


def layers() -> dict[str, int]:
    """Layer index of each top-level name, from the docstring's indented list."""
    doc = mto_core.__doc__
    block = doc.split("benchmarks/:\n", 1)[1]
    rows = [line.split() for line in block.splitlines() if line.startswith("    ") and line.strip()]
    return {name: i for i, row in enumerate(rows) for name in row}


def _layer_of(module: str, order: dict[str, int]) -> int:
    return order[module.split(".")[0]]


def _circle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_library_imports_neither_benchmarks_nor_app():
    offending = {f"{path.name}: {name}" for path in LIBRARY.rglob("*.py") for name in _imports(path)
                 if name.split(".")[0] in {"benchmarks", "app", "plain_loop"} or name.startswith("a module")}
    assert not offending


def test_only_config_api_cli_sit_at_the_top_and_every_subpackage_has_a_layer():
    assert {p.stem for p in LIBRARY.glob("*.py")} == TOP_LEVEL
    order = layers()
    packages = {p.name for p in LIBRARY.iterdir() if (p / "__init__.py").is_file()}
    assert packages | TOP_LEVEL == set(order), "every subpackage and top-level module has one layer"
    assert order["config"] == 0 and order["cli"] == order["__init__"] == max(order.values())


def test_no_import_circle_between_files():
    assert _circle(import_graph()) is None


def test_every_import_points_down_the_layers():
    order, graph = layers(), import_graph()
    upward = sorted(f"{m} -> {t}" for m, targets in graph.items() for t in targets
                    if _layer_of(t, order) > _layer_of(m, order))
    assert not upward, f"imports against the layer order of mto_core/__init__.py: {upward}"


def test_the_checks_catch_a_circle_and_an_upward_import(tmp_path):
    """The checks themselves can fail: a package with a circle through a function-level import,
    and a low layer importing a high one."""
    pkg = tmp_path / "mto_core"
    (pkg / "data").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "data" / "__init__.py").write_text("")
    (pkg / "data" / "a.py").write_text("from .b import x\n")
    (pkg / "data" / "b.py").write_text("def f():\n    from . import a\n")
    (pkg / "config.py").write_text("from mto_core.cli import main\n")
    graph = import_graph(pkg)
    assert graph["data.a"] == {"data.b"} and graph["data.b"] == {"data.a"} and graph["config"] == {"cli"}
    assert _circle(graph) in (["data.a", "data.b", "data.a"], ["data.b", "data.a", "data.b"])
    order = layers()
    assert _layer_of("cli", order) > _layer_of("config", order)  # config -> cli would be upward


def test_no_name_of_the_public_api_hides_a_subpackage():
    """``from mto_core import train`` is the training function: a subpackage of that name would be
    hidden by it (``import mto_core.train.engine`` would fail), hence ``training``."""
    import importlib

    for path in LIBRARY.iterdir():
        if (path / "__init__.py").is_file():
            module = importlib.import_module(f"mto_core.{path.name}")
            assert getattr(mto_core, path.name) is module, path.name
            assert path.name not in mto_core.__all__


APP = LIBRARY.parent / "app"
APP_FOLDERS = ("logic", "widgets", "server", "pages")


def app_graph(root: Path = APP) -> dict[str, set[str]]:
    """app/'s modules -> the app modules each imports (``logic.labels``, ``widgets.models``, ...;
    the app runs with app/ on the path, so its folders import as top-level packages)."""
    modules = {module_name(p, root): p for p in root.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name.split(".") if path.name == "__init__.py" and "." not in name and name in APP_FOLDERS \
            else name.split(".")[:-1]
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    target = ".".join([*package[:len(package) - (node.level - 1)], *([node.module] if node.module else [])])
                else:
                    target = node.module or ""
                names = [a.name for a in node.names]
            elif isinstance(node, ast.Import):
                target, names = "", []
                found |= {a.name for a in node.names if a.name in modules}
            else:
                continue
            if target.split(".")[0] not in APP_FOLDERS:
                continue
            for n in names:
                found.add(f"{target}.{n}" if f"{target}.{n}" in modules else target)
        graph[name] = found - {name}
    return graph


def private_imports(roots: list[Path]) -> list[str]:
    """Every ``from x import _name`` (and ``import x._name``) in the files under ``roots``."""
    found = []
    for root in roots:
        for path in root.rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                names = [a.name for a in node.names] if isinstance(node, ast.ImportFrom) and node.module != "__future__" \
                    else [a.name.rsplit(".", 1)[-1] for a in node.names] if isinstance(node, ast.Import) else []
                found += [f"{path}: {n}" for n in names if n.startswith("_") and not n.startswith("__")
                          and n != "_torchvision_compat"]
    return found


def test_the_app_s_top_level_holds_only_its_entry_point_and_server_script():
    assert {p.name for p in APP.glob("*.py")} == {"Home.py", "serve.py"}
    assert {p.name for p in APP.iterdir() if p.is_dir() and not p.name.startswith((".", "__"))} >= set(APP_FOLDERS)


def test_the_app_s_pure_logic_imports_no_streamlit():
    offending = {f"{path.name}: {name}" for path in (APP / "logic").rglob("*.py") for name in _imports(path)
                 if name.split(".")[0] in {"streamlit", "widgets", "server"}}
    assert not offending


def test_no_file_imports_another_s_private_name():
    assert not private_imports([LIBRARY, APP, LIBRARY.parent / "benchmarks", LIBRARY.parent / "scripts"])


def test_no_import_circle_in_the_app():
    graph = app_graph()
    assert {"logic.labels", "widgets.sidebar", "server.classroom", "pages.0_Learn"} <= set(graph)
    assert "server.classroom" in graph["widgets.sidebar"]
    assert _circle(graph) is None


def test_the_app_checks_catch_a_circle_and_a_private_import(tmp_path):
    import shutil

    copy = tmp_path / "app"
    shutil.copytree(APP, copy, ignore=shutil.ignore_patterns("__pycache__"))
    (copy / "logic" / "palette.py").write_text((copy / "logic" / "palette.py").read_text()
                                               + "\nfrom logic.labels import method_name\n")
    (copy / "logic" / "labels.py").write_text((copy / "logic" / "labels.py").read_text()
                                              + "\nfrom .palette import CLASS_COLOURS\n")
    assert _circle(app_graph(copy))
    (copy / "pages" / "5_Train.py").write_text("from server.classroom import _INDEX_LOCK\n")
    assert private_imports([copy]) == [f"{copy / 'pages' / '5_Train.py'}: _INDEX_LOCK"]
