"""A classroom on one server: app/serve.py --public listens on every interface and says so."""

import pytest

from app_support import server_args, share_addresses

from .test_bad_input import serve_and_listen


def test_public_serves_every_interface_only_when_asked():
    assert "--server.address=0.0.0.0" in server_args(["--server.port", "8502"], public=True)
    assert "--server.address=localhost" in server_args([])
    with pytest.raises(ValueError, match="--public"):
        server_args(["--server.address", "0.0.0.0"])
    assert all(a.startswith("http://") and a.endswith(":8502") and "127.0.0.1" not in a
               for a in share_addresses(["--server.port=8502"]))


def test_serve_public_listens_on_all_interfaces_and_prints_addresses_and_a_warning(tmp_path):
    addresses, port, text = serve_and_listen(tmp_path, "--public")
    assert addresses and any(a.is_unspecified for a in addresses), (addresses, text)
    lines = text.splitlines()
    shared = next(line for line in lines if line.startswith("Serving on every network interface"))
    assert f":{port}" in shared and "http://" in shared
    assert sum(line.startswith("Warning: anyone who can reach this machine") for line in lines) == 1


def test_every_cache_of_the_app_has_a_size_limit():
    """A server that a class shares keeps its memory bounded: no st.cache_* without max_entries."""
    import ast
    from pathlib import Path

    app = Path(__file__).resolve().parent.parent / "app"
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
    from common import test_set

    first, second = test_set(), test_set()
    assert first[0] is second[0] and first[1] is second[1]


def test_the_memory_thread_collects_the_cyclic_garbage_that_page_runs_leave():
    import gc
    import time
    import weakref

    from app_support import give_memory_back

    class Namespace(dict):
        pass

    was_enabled = gc.isenabled()
    gc.disable()  # from here on only the thread collects
    cycle = Namespace(images=bytearray(1 << 20))
    cycle["self"] = cycle  # a script namespace refers to itself through its functions' globals
    gone = weakref.ref(cycle)
    del cycle
    assert gone() is not None
    stop = give_memory_back(every_s=0.02, collect_every=2)
    try:
        deadline = time.time() + 5
        while gone() is not None and time.time() < deadline:
            time.sleep(0.02)
        assert gone() is None
    finally:
        stop.set()
        if was_enabled:
            gc.enable()
