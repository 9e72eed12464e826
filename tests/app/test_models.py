"""widgets/models.py: the checkpoints and images every page shares, in bounded caches."""

from pathlib import Path

from .apptest import APP

ROOT = APP.parent


def test_the_checkpoint_cache_is_bounded_by_the_weights_it_holds(monkeypatch):
    import widgets.models as common

    monkeypatch.setattr(common, "MODEL_CACHE_BYTES", 1)  # room for the two most recent only (a pair)
    common._MODELS.clear()
    path = lambda name: str(ROOT / "checkpoints" / name)  # noqa: E731
    first = common.load(path("mae"))
    common.load(path("simmim"))
    common.load(path("conmim"))
    assert list(common._MODELS) == [path("simmim"), path("conmim")]
    assert common.load(path("mae")) is not first  # dropped, so loaded again
    monkeypatch.setattr(common, "MODEL_CACHE_BYTES", 10**12)
    common.load(path("simmim"))
    assert len(common._MODELS) == 3
    try:  # two spellings of one folder are one entry, not two copies of its weights
        assert common.load(path("simmim")) is common.load(str(Path("checkpoints") / ".." / "checkpoints" / "simmim"))
        assert len(common._MODELS) == 3
    finally:
        common._MODELS.clear()


def test_every_cache_of_the_app_has_a_size_limit():
    """A server that a class shares keeps its memory bounded: no st.cache_* without max_entries."""
    import ast
    from pathlib import Path

    app = Path(__file__).resolve().parents[2] / "app"
    caches, unbounded = 0, []
    for path in app.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for decorator in node.decorator_list:
                call = decorator if isinstance(decorator, ast.Call) else None
                target = call.func if call else decorator
                if isinstance(target, ast.Attribute) and target.attr in ("cache_data", "cache_resource"):
                    caches += 1
                    limit = next((k.value for k in call.keywords if k.arg == "max_entries"), None) if call else None
                    if limit is None or (isinstance(limit, ast.Constant) and limit.value is None):
                        unbounded.append(f"{path.name}:{node.lineno}")
    assert caches >= 10 and not unbounded, unbounded


def test_page_runs_share_one_test_split_instead_of_copies():
    from widgets.models import test_set

    first, second = test_set(), test_set()
    assert first[0] is second[0] and first[1] is second[1]
