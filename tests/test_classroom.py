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
