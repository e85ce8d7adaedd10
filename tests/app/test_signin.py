"""Failed sign-ins are throttled per user name and per client address (app/access.py's
`SignInThrottle`, app/ui/guards.py's `SignInGuard` in front of Gradio's own `POST /login`), with a
message saying when to try again, and logged without the password."""

from __future__ import annotations

import logging

import pytest
import requests
from starlette.middleware import Middleware

from app.access import SIGNIN_PER_ADDRESS, SIGNIN_PER_USER, Access, SignInThrottle
from app.ui.early_script import EarlyScript
from app.ui.guards import LOGIN_NOTICE_JS, SignInGuard
from tests.helpers import free_port

PASSWORD = "right-pass-9f3"


def test_the_throttle_counts_per_user_and_per_address_over_a_sliding_window():
    t = SignInThrottle(window_s=60, per_user=3, per_address=5)
    for k in range(3):
        assert t.wait_s("ann", "10.0.0.1", 100 + k) == 0
        t.failed("ann", "10.0.0.1", 100 + k)
    assert t.wait_s("ann", "10.0.0.9", 103) == pytest.approx(57)  # the user, from anywhere
    assert t.wait_s("bob", "10.0.0.1", 103) == 0  # the address still has room
    t.failed("bob", "10.0.0.1", 104)
    t.failed("cid", "10.0.0.1", 105)
    assert t.wait_s("dan", "10.0.0.1", 106) == pytest.approx(54)  # the address: 5 failures
    assert t.wait_s("ann", "10.0.0.9", 160) == 0  # the oldest failures aged out
    t.succeeded("bob")
    assert t.wait_s("dan", "10.0.0.1", 106) > 0  # a success clears the user, not the address


def test_the_throttle_remembers_a_bounded_number_of_names():
    t = SignInThrottle(keys=50)
    for k in range(1000):
        t.failed(f"made-up-{k}", "10.0.0.1", 1.0)
    assert len(t._fails) <= 50


def test_made_up_names_from_many_addresses_do_not_give_a_guessed_user_fresh_tries():
    """Past its bound the throttle forgets the longest untouched names first, but not one at
    its limit: a guesser cannot flush the user it is guessing at with made-up names."""
    t = SignInThrottle(window_s=300, per_user=3, per_address=25, keys=50)
    for k in range(3):
        t.failed("ann", "10.0.0.1", 100 + k)
    for k in range(1000):  # 40 addresses, 25 made-up names each
        assert t.failed(f"made-up-{k}", f"10.1.{k // 25}.1", 110 + k / 100) == 1
    assert len(t._fails) <= 50
    assert t.wait_s("ann", "10.0.0.99", 130) == pytest.approx(270)  # still refused


def test_an_ipv6_client_counts_by_its_64_network():
    """An IPv6 host holds a whole /64: its addresses count as one client; an IPv4 address
    mapped into IPv6 counts as itself."""
    t = SignInThrottle(window_s=60, per_user=100, per_address=3)
    for k in range(3):
        t.failed(f"user-{k}", f"2001:db8:0:7::{k + 1:x}", 100)
    assert t.wait_s("user-9", "2001:db8:0:7:ffff::1", 101) == pytest.approx(59)
    assert t.wait_s("user-9", "2001:db8:0:8::1", 101) == 0  # another network
    for k in range(3):
        t.failed(f"user-{k}", "::ffff:10.0.0.7", 100)
    assert t.wait_s("user-9", "10.0.0.7", 101) == pytest.approx(59)


@pytest.fixture
def signin_app():
    import gradio as gr

    with gr.Blocks() as demo:
        said = gr.Textbox(elem_id="said")
        gr.Button("Say", elem_id="say").click(lambda: "said", None, said)
    port = free_port()
    kwargs = Access.from_env({"APP_AUTH": f"ann:{PASSWORD},bob:other-pass-1"}).launch_kwargs(
        "127.0.0.1"
    )
    demo.launch(
        server_name="127.0.0.1",
        server_port=port,
        prevent_thread_lock=True,
        app_kwargs={
            "middleware": [Middleware(EarlyScript, script=LOGIN_NOTICE_JS), Middleware(SignInGuard)]
        },
        **kwargs,
    )
    yield f"http://127.0.0.1:{port}"
    demo.close()


def test_a_hundred_wrong_passwords_are_refused_and_logged_without_them(signin_app, caplog):
    caplog.set_level(logging.WARNING, logger="wanpod.access")
    tried = [f"guess-{k:03d}-pw" for k in range(100)]
    answers = []
    for k, p in enumerate(tried):  # urlencoded (a script) and multipart (Gradio's login page)
        form = {"username": "ann", "password": p}
        multipart = {n: (None, v) for n, v in form.items()}
        sent = {"files": multipart} if k % 2 else {"data": form}
        answers.append(requests.post(f"{signin_app}/login", timeout=10, **sent))
    codes = [a.status_code for a in answers]
    assert codes[:SIGNIN_PER_USER] == [400] * SIGNIN_PER_USER  # Gradio's own "wrong password"
    assert set(codes[SIGNIN_PER_USER:]) == {429}
    refused = answers[-1]
    assert "Too many failed sign-ins" in refused.json()["detail"]
    assert "try again in" in refused.json()["detail"]
    assert 0 < int(refused.headers["retry-after"]) <= 300
    # while locked, even the right password is refused (a guesser learns nothing)
    right = requests.post(
        f"{signin_app}/login", data={"username": "ann", "password": PASSWORD}, timeout=10
    )
    assert right.status_code == 429
    log = caplog.text
    assert log.count("sign-in failed for user 'ann' from 127.0.0.1") == SIGNIN_PER_USER
    assert "sign-in refused for user 'ann' from 127.0.0.1" in log
    assert not any(p in log for p in [*tried, PASSWORD])


def test_behind_a_trusted_proxy_each_client_counts_by_its_forwarded_address(signin_app, caplog):
    """docs/operating.md: uvicorn takes the client's address from X-Forwarded-For when the
    connection comes from a proxy named in FORWARDED_ALLOW_IPS (its default: this machine,
    which the requests here come from), so one client's failures do not refuse the others."""
    caplog.set_level(logging.WARNING, logger="wanpod.access")

    def sign_in(user: str, address: str) -> int:
        form = {"username": user, "password": "wrong-pw"}
        via = {"X-Forwarded-For": address}
        return requests.post(f"{signin_app}/login", data=form, headers=via, timeout=10).status_code

    codes = [sign_in(f"made-up-{k}", "203.0.113.5") for k in range(SIGNIN_PER_ADDRESS + 1)]
    assert codes == [400] * SIGNIN_PER_ADDRESS + [429]  # that client is at its limit
    assert sign_in("made-up-x", "203.0.113.9") == 400  # another one is not
    assert "from 203.0.113.5" in caplog.text and "from 127.0.0.1" not in caplog.text


@pytest.mark.slow
def test_the_login_page_says_why_a_sign_in_is_refused(signin_app, browser):
    context = browser.new_context()
    try:
        page = context.new_page()
        page.set_default_timeout(60_000)
        page.goto(signin_app + "/")
        for k in range(SIGNIN_PER_USER + 1):
            page.locator("input").nth(0).fill("bob")
            page.locator("input[type=password]").fill(f"wrong-{k}")
            with page.expect_response(lambda r: r.url.endswith("/login")):
                page.locator("button").filter(has_text="Login").click()
        notice = page.locator("#wp-login-notice")
        notice.wait_for()
        assert "Too many failed sign-ins" in notice.inner_text()
        assert "try again in" in notice.inner_text()
    finally:
        context.close()


@pytest.mark.slow
def test_a_page_whose_sign_in_ended_says_to_sign_in_again(signin_app, browser):
    """Gradio keeps sign-ins in memory: after a studio restart (here: the cookie gone) every
    request of an open page is answered 401, and Gradio's page shows nothing, so each action
    silently did nothing. The page now says why and what to do. A fresh login page, whose
    requests are not signed in yet, says nothing."""
    from app.ui.guards import SIGNED_OUT

    context = browser.new_context()
    try:
        page = context.new_page()
        page.set_default_timeout(60_000)
        page.goto(signin_app + "/")
        page.locator("input").nth(0).fill("ann")
        page.locator("input[type=password]").fill(PASSWORD)
        assert page.locator("#wp-login-notice").count() == 0  # the login page said nothing
        page.locator("button").filter(has_text="Login").click()
        page.locator("#say").click()
        page.wait_for_function("document.querySelector('#said textarea').value === 'said'")
        context.clear_cookies()  # what a restart does to the page's sign-in
        page.locator("#say").click()
        notice = page.locator("#wp-login-notice")
        notice.wait_for()
        assert notice.inner_text() == SIGNED_OUT
    finally:
        context.close()
