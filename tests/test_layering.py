"""Dependencies point one way: app/ and benchmarks/ import the library; the library imports neither."""

import ast
from pathlib import Path

import mto_core

LIBRARY = Path(mto_core.__file__).parent


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


def test_the_library_imports_neither_benchmarks_nor_app():
    offending = {f"{path.name}: {name}" for path in LIBRARY.rglob("*.py") for name in _imports(path)
                 if name.split(".")[0] in {"benchmarks", "app", "plain_loop"} or name.startswith("a module")}
    assert not offending
