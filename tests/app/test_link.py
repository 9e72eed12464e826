"""logic/link.py and the sidebar: the choices travel in a shareable address."""

from logic.link import from_link, link_text, to_link

from .apptest import ALONE_OPTION, APP, AppTest

METHODS = ["simmim", "conmim", "mae", "bootmae"]


def test_the_choices_go_into_an_address_and_come_back():
    shared = {"method": "mae", "base-mae": "checkpoints/mae", "mto-mae": ALONE_OPTION, "ratio": 0.75, "seed": 7,
              "kind": "block"}
    params = to_link(shared, ALONE_OPTION)
    assert params == {"method": "mae", "ckpt": "checkpoints/mae", "with": "none", "ratio": "0.75", "seed": "7",
                      "mask": "block"}
    assert from_link(params, METHODS, ALONE_OPTION) == shared
    assert link_text("Reconstruct", params).startswith("/Reconstruct?method=mae&ckpt=checkpoints%2Fmae")


def test_a_malformed_address_opens_on_the_defaults():
    assert from_link({"method": "nope", "ratio": "0.5"}, METHODS, ALONE_OPTION) == {}
    got = from_link({"method": "mae", "ratio": "7", "seed": "-1", "mask": "star"}, METHODS, ALONE_OPTION)
    assert got == {"method": "mae"}
    # an address with some choices only: the sidebar reads the others as None
    assert from_link({"method": "mae", "ckpt": "checkpoints/mae", "ratio": None, "seed": None}, METHODS,
                     ALONE_OPTION) == {"method": "mae", "base-mae": "checkpoints/mae"}


def test_a_shared_address_opens_the_same_view_in_a_new_session():
    at = AppTest.from_file(str(APP / "pages/2_Tokens.py"), default_timeout=180)
    for name, value in {"method": "mae", "ckpt": "checkpoints/mae-mto", "with": "none", "ratio": "0.75", "seed": "7",
                        "mask": "block"}.items():
        at.query_params[name] = value
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.sidebar.radio(key="tokens-method").value == "mae"
    assert at.sidebar.selectbox(key="tokens-base-mae").value == "checkpoints/mae-mto"
    assert at.sidebar.selectbox(key="tokens-mto-mae").value == ALONE_OPTION
    assert at.sidebar.slider(key="tokens-ratio").value == 0.75 and at.sidebar.number_input(key="tokens-seed").value == 7
    assert at.sidebar.radio(key="tokens-kind").value == "block"
    shown = [c.value for c in at.get("code")]
    assert any(v.startswith("/Tokens?method=mae&ckpt=checkpoints%2Fmae-mto&with=none&ratio=0.75&seed=7&mask=block")
               and "visitor" not in v for v in shown), shown
