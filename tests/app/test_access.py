"""Access policy: APP_AUTH parsing, loopback-only without auth, refusal of a public bind or share
link without a login, root_path; and a real Gradio server launched with the kwargs asks for the
login (HTTP, no browser)."""

from __future__ import annotations

import pytest
import requests

from app.access import (
    Access,
    AccessError,
    Credentials,
    is_local_host,
    parse_auth,
    parse_root_path,
)
from app.environment import env_bool
from app.errors import ConfigError
from tests.helpers import free_port


def test_auth_pairs_parsed_with_colons_allowed_in_passwords():
    users = parse_auth(" ann:pw1 , bob:pa:ss ")
    assert [(u, s.value) for u, s in users] == [("ann", "pw1"), ("bob", "pa:ss")]
    # spaces around a password are not part of it, on either side (as around the pair)
    users = parse_auth("ann: pw1 , bob : pw2")
    assert [(u, s.value) for u, s in users] == [("ann", "pw1"), ("bob", "pw2")]
    assert parse_auth("") == () and parse_auth(None) == ()


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        ("ann", ["entry 1", "no ':'"]),
        ("ann:pw,:pw2", ["entry 2", "user name is empty"]),
        ("ann:pw,bob:", ["entry 2", "'bob'", "password is empty"]),
        ("ann:pw,bob:  ", ["entry 2", "'bob'", "password is empty"]),
        ("ann:pw,ann:other", ["entry 2", "'ann' appears twice"]),
        ("an n:pw", ["entry 1", "spaces"]),
    ],
)
def test_bad_auth_is_refused_naming_the_entry_without_the_password(raw, words):
    with pytest.raises(ConfigError) as info:
        parse_auth(raw)
    for word in words:
        assert word in str(info.value)
    assert "pw" not in str(info.value).replace("password", "")
    assert "other" not in str(info.value)


def test_passwords_are_masked_and_checked_in_constant_time():
    access = Access.from_env({"APP_AUTH": "ann:s3cret-pass"})
    assert "s3cret" not in repr(access)
    assert access.secret_values() == ("s3cret-pass",)
    creds = Credentials(access.users)
    assert "s3cret" not in repr(creds)
    assert creds("ann", "s3cret-pass")
    assert not creds("ann", "s3cret-pas")
    assert not creds("bob", "s3cret-pass")
    assert not creds("", "")


@pytest.mark.parametrize(
    ("host", "local"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("localhost", True),
        ("::1", True),
        ("[::1]", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.20", False),
        ("studio.example.com", False),
    ],
)
def test_loopback_detection(host, local):
    assert is_local_host(host) is local


def test_no_auth_on_localhost_is_fine():
    kwargs = Access.from_env({}).launch_kwargs("127.0.0.1")
    assert kwargs == {"share": False, "root_path": ""}


@pytest.mark.parametrize(
    ("env", "host", "words"),
    [
        ({}, "0.0.0.0", ["listens on 0.0.0.0", "APP_AUTH=", "or bind to 127.0.0.1, or set",
                         "APP_ALLOW_PUBLIC_WITHOUT_AUTH"]),
        # a share link is public wherever the studio listens: binding to loopback is no cure
        ({"GRADIO_SHARE": "true"}, "127.0.0.1", ["share link", "APP_AUTH=",
                                                 "or drop the share link, or set"]),
        ({"GRADIO_SHARE": "1"}, "::", ["listens on ::", " and ", "share link",
                                       "or bind to 127.0.0.1 and drop the share link, or"]),
    ],
)  # fmt: skip
def test_public_without_auth_is_refused(env, host, words):
    with pytest.raises(AccessError) as info:
        Access.from_env(env).launch_kwargs(host)
    for word in words:
        assert word in str(info.value)
    if host == "127.0.0.1":
        assert "bind to 127.0.0.1" not in str(info.value)


def test_share_flag_from_the_command_line_overrides_env():
    with pytest.raises(AccessError):
        Access.from_env({"GRADIO_SHARE": "false"}, share=True).launch_kwargs("127.0.0.1")
    assert Access.from_env({"GRADIO_SHARE": "true"}, share=False).share is False


def test_public_with_auth_or_explicit_permission_is_allowed():
    kwargs = Access.from_env({"APP_AUTH": "ann:pw"}).launch_kwargs("0.0.0.0")
    assert isinstance(kwargs["auth"], Credentials) and kwargs["auth"]("ann", "pw")
    assert "APP_AUTH" in kwargs["auth_message"]
    allowed = Access.from_env({"APP_ALLOW_PUBLIC_WITHOUT_AUTH": "yes", "GRADIO_SHARE": "true"})
    assert allowed.launch_kwargs("0.0.0.0") == {"share": True, "root_path": ""}


def test_bools_and_root_path():
    assert env_bool({"X": "TRUE"}, "X") and not env_bool({}, "X") and not env_bool({"X": "no"}, "X")
    with pytest.raises(ConfigError, match=r"APP_ALLOW_PUBLIC_WITHOUT_AUTH='maybe' is not true"):
        Access.from_env({"APP_ALLOW_PUBLIC_WITHOUT_AUTH": "maybe"})
    assert parse_root_path("/wanpod/") == "/wanpod"
    assert parse_root_path("/") == ""
    assert parse_root_path("https://example.com/studio/") == "https://example.com/studio"
    for bad in ("wanpod", "/a b", "/x?y=1"):
        with pytest.raises(ConfigError, match="GRADIO_ROOT_PATH"):
            parse_root_path(bad)
    access = Access.from_env({"GRADIO_ROOT_PATH": "/wanpod"})
    assert access.launch_kwargs("127.0.0.1")["root_path"] == "/wanpod"


def test_a_gradio_server_launched_with_the_kwargs_requires_the_login():
    import gradio as gr

    with gr.Blocks() as demo:
        box = gr.Textbox()
        gr.Button().click(lambda s: s.upper(), box, box, api_name="upper")
    port = free_port()
    kwargs = Access.from_env({"APP_AUTH": "ann:pw-123"}).launch_kwargs("127.0.0.1")
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, **kwargs)
    try:
        base = f"http://127.0.0.1:{port}"
        assert requests.get(f"{base}/config", timeout=10).status_code == 401
        assert requests.get(f"{base}/gradio_api/info", timeout=10).status_code == 401
        page = requests.get(base + "/", timeout=10).text
        assert "pw-123" not in page
        session = requests.Session()
        bad = session.post(f"{base}/login", data={"username": "ann", "password": "x"}, timeout=10)
        assert bad.status_code == 400
        ok = session.post(f"{base}/login", data={"username": "ann", "password": "pw-123"})
        assert ok.status_code == 200
        assert session.get(f"{base}/config", timeout=10).status_code == 200
    finally:
        demo.close()


def test_admins_must_be_users_of_app_auth():
    access = Access.from_env({"APP_AUTH": "ann:pw1,bob:pw2", "APP_ADMINS": " ann "})
    assert access.admins == ("ann",)
    with pytest.raises(ConfigError, match=r"APP_ADMINS names 'eve', who is not in APP_AUTH; "
                       r"allowed: ann, bob"):  # fmt: skip
        Access.from_env({"APP_AUTH": "ann:pw1,bob:pw2", "APP_ADMINS": "ann,eve"})
