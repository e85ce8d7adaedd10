"""Per-user isolation under APP_AUTH, against a real studio on the local stack: alice's job is
hers (and the admin's, APP_ADMINS): bob cannot attach, cancel, rerun, reuse or promote it over the
API, cannot find it in the history listing (a page event, called over Gradio's queue as a browser
would), and cannot download its stored files (video, thumbnail, kept input image, workflow JSON)
through Gradio's file routes. The service does it (`Studio.row(rid, caller)`), so every route
answers alike: another user's job is "not a job of this studio", like an unknown one."""

from __future__ import annotations

import http.client
import json
import os
import re
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

from tests.app.conftest import start_studio
from tests.app.test_api import args, finished

USERS = {"alice": "alice-pw-71", "bob": "bob-pw-72", "root": "root-pw-73"}
NOT_HERS = "is not a job of this studio"


@pytest.fixture(scope="module")
def shared(stack, tmp_path_factory):
    data = tmp_path_factory.mktemp("shared")
    auth = ",".join(f"{u}:{p}" for u, p in USERS.items())
    proc = start_studio(stack, data, APP_AUTH=auth, APP_ADMINS="root", WANPOD_MAX_UPLOAD_MB="1")
    yield proc, data
    proc.stop()


def client_as(proc, user: str) -> Client:
    return Client(proc.base_url + "/", auth=(user, USERS[user]), verbose=False)


def signed_in(proc, user: str) -> requests.Session:
    s = requests.Session()
    r = s.post(f"{proc.base_url}/login", data={"username": user, "password": USERS[user]})
    assert r.status_code == 200, r.text
    return s


def event(session: requests.Session, base: str, api_name: str, data: list) -> list:
    """Call a page event (also a private one) over Gradio's queue, as the page does."""
    config = session.get(f"{base}/config", timeout=30).json()
    fn = next(d["id"] for d in config["dependencies"] if d.get("api_name") == api_name)
    sh = uuid.uuid4().hex
    body = {"data": data, "fn_index": fn, "session_hash": sh, "event_data": None}
    joined = session.post(f"{base}/gradio_api/queue/join", json=body, timeout=30)
    assert joined.status_code == 200, joined.text
    with session.get(f"{base}/gradio_api/queue/data?session_hash={sh}", stream=True) as r:
        for line in r.iter_lines(decode_unicode=True):
            if line and line.startswith("data:"):
                msg = json.loads(line[5:])
                if msg.get("msg") == "process_completed":
                    assert msg.get("success"), msg
                    return msg["output"]["data"]
    raise AssertionError("no answer")


@pytest.fixture(scope="module")
def hers(shared, tmp_path_factory):
    """alice's finished image-to-video job (kept start image), its history thumbnail, kept
    image and workflow file written the way the page writes them."""
    proc, data = shared
    png = tmp_path_factory.mktemp("png") / "start.png"
    from tests.helpers import png_bytes

    png.write_bytes(png_bytes(300, 200, (200, 40, 40)))
    alice = client_as(proc, "alice")
    prompt = "alice's secret lighthouse"
    result = alice.predict(
        *args("i2v_14b", mode="turbo", start=handle_file(str(png)), prompt=prompt, seed=9),
        api_name="/generate",
    )
    status, _video, _details, rid = finished(result)
    assert 'data-state="COMPLETED"' in status, status
    alice.predict(rid, api_name="/reuse")  # restores her kept start image as a file
    listed = event(
        signed_in(proc, "alice"), proc.base_url, "history_refresh", ["", "All", "All", None]
    )
    assert prompt in json.dumps(listed)  # her listing shows it (and made its thumbnail)
    files = sorted(p for p in (data / "results" / rid).rglob("*") if p.is_file())
    kinds = {p.suffix for p in files}
    assert {".mp4", ".jpg", ".png"} <= kinds, files
    return rid, prompt, files


@pytest.mark.parametrize(
    "route", ["/attach", "/cancel", "/rerun", "/reuse", "/draft_final", "/extend"]
)
def test_another_user_cannot_reach_her_job_over_the_api(shared, hers, route):
    proc, _ = shared
    rid, prompt, _ = hers
    bob = client_as(proc, "bob")
    if route == "/attach":  # attach answers as for an unknown job
        status, video, details, _job, _, result = bob.predict(rid, api_name=route)
        assert 'data-state="UNKNOWN"' in status and result["state"] == "UNKNOWN"
        assert prompt not in str(video) + str(details) + str(result)
        return
    with pytest.raises(AppError, match=NOT_HERS):
        if route == "/extend":  # a chain from her video (app/studio/chains.py)
            bob.predict(job_id=rid, prompt="", colour_match=False, api_name=route)
        else:
            bob.predict(rid, api_name=route)


def test_a_batch_attach_shows_her_job_to_her_only(shared, hers):
    # /batch_attach applies /attach's rule: bob's answer is an unknown row, none of her data
    proc, _ = shared
    rid, _, _ = hers
    status, gallery, _ = client_as(proc, "bob").predict(rid, api_name="/batch_attach")
    assert f'data-rid="{rid}" data-state="UNKNOWN"' in status and not gallery, status
    assert "secret lighthouse" not in status and "quote $0.0000" in status, status
    status, gallery, _ = client_as(proc, "alice").predict(rid, api_name="/batch_attach")
    assert f'data-rid="{rid}" data-state="COMPLETED"' in status and "secret lighthouse" in status
    assert [g["caption"].split(" · ")[0] for g in gallery] == [rid]


def test_the_owner_and_the_admin_reach_her_job(shared, hers):
    proc, _ = shared
    rid, prompt, _ = hers
    for user in ("alice", "root"):
        c = client_as(proc, user)
        status, video, details, job, _, _result = c.predict(rid, api_name="/attach")
        assert 'data-state="COMPLETED"' in status and Path(video).is_file()
        assert "secret lighthouse" in details and job == rid
        assert prompt in c.predict(rid, api_name="/reuse")
    client_as(proc, "root").predict(rid, api_name="/cancel")  # the admin may (it has ended)


def test_the_history_listing_shows_each_user_their_own_and_the_admin_all(shared, hers):
    proc, _ = shared
    rid, prompt, _ = hers
    seen = {}
    for user in USERS:
        s = signed_in(proc, user)
        for text in ("", rid):  # everything, and her job by its id
            out = event(s, proc.base_url, "history_refresh", [text, "All", "All", None])
            seen[user, text] = prompt in json.dumps(out)
    assert seen == {
        ("alice", ""): True,
        ("alice", rid): True,
        ("bob", ""): False,
        ("bob", rid): False,
        ("root", ""): True,
        ("root", rid): True,
    }


def test_her_stored_files_download_only_for_her_and_the_admin(shared, hers):
    proc, _ = shared
    _rid, _, files = hers
    for user, expected in (("alice", 200), ("bob", 403), ("root", 200)):
        s = signed_in(proc, user)
        for path in files:
            for route in ("/gradio_api/file=", "/gradio_api/file/"):
                r = s.get(f"{proc.base_url}{route}{path}", timeout=30)
                assert r.status_code == expected, (user, route, path.name, r.status_code)
    # a path that walks into her folder from a shared one is resolved before the check
    s = signed_in(proc, "bob")
    sneaky = (
        files[0].parent.parent
        / "_placeholders"
        / ".."
        / files[0].relative_to(files[0].parent.parent)
    )
    r = s.get(f"{proc.base_url}/gradio_api/file={sneaky}", timeout=30)
    assert r.status_code == 403
    # a link before a `..` (`/bin` -> `usr/bin` on Debian, as in the app's image): Gradio opens
    # `/bin/../<path>` as `<path>`; sent as written (http.client tidies no `..`), plain and
    # percent-encoded
    cookies = "; ".join(f"{k}={v}" for k, v in s.cookies.get_dict().items())
    linked = [d for d in ("/bin", "/lib", "/sbin", "/lib64") if os.path.islink(d)] or ["/tmp"]
    for path in files:
        for dots in ("..", "%2e%2e"):
            status, body = raw_get(proc.base_url, f"/gradio_api/file={linked[0]}/{dots}{path}",
                                   cookies)  # fmt: skip
            assert status == 403, (linked[0], dots, path.name, status)
            assert body != path.read_bytes()


def call(session: requests.Session, base: str, api_name: str, data: list) -> tuple[str, str]:
    """A named API route over raw HTTP (Gradio's /call): its last event and data. A file field
    may then name a path on the server, as any client may send it."""
    url = f"{base}/gradio_api/call/{api_name}"
    r = session.post(url, json={"data": data}, timeout=30)
    assert r.status_code == 200, r.text
    with session.get(f"{url}/{r.json()['event_id']}", stream=True, timeout=120) as answer:
        lines = [line for line in answer.iter_lines(decode_unicode=True) if line]
    return lines[-2].removeprefix("event: "), lines[-1].removeprefix("data: ")


def test_her_stored_files_are_no_input_of_another_users_job(shared, hers):
    """Gradio takes any file it serves as an input sent by path, her stored files among them:
    bob's quote, generate or storyboard naming her kept start image or thumbnail is refused
    without reading it (its size; its pixels, through his own job's Reuse). (A path to no file
    Gradio refuses itself: "not uploaded by a user".)"""
    from app.studio.markup import md_text

    proc, _ = shared
    _rid, _, files = hers
    mine = [p for p in files if p.suffix in (".png", ".jpg")]
    bob, alice = signed_in(proc, "bob"), signed_in(proc, "alice")
    for path in mine:
        image = {"path": str(path), "meta": {"_type": "gradio.FileData"}}
        fields = args("i2v_14b", prompt="bob's lighthouse", start=image)
        refusal = f"start image: {str(path)!r} is not a file of yours; upload the file instead"
        event, line = call(bob, proc.base_url, "quote", fields)
        assert event == "complete" and md_text(refusal) in json.loads(line)[0], line
        assert "Images:" not in line  # nothing read: no size, no fit
        event, line = call(bob, proc.base_url, "generate", fields)
        assert event == "error" and refusal in line, line
        event, line = call(bob, proc.base_url, "storyboard", [*fields, "a\nb", False])
        assert event == "error" and refusal in line, line
    own = args(
        "i2v_14b",
        prompt="her own",
        start={"path": str(mine[0]), "meta": {"_type": "gradio.FileData"}},
    )
    event, line = call(alice, proc.base_url, "quote", own)
    assert event == "complete" and "**Images:**" in json.loads(line)[0], line  # hers: read


def raw_get(base_url: str, target: str, cookies: str) -> tuple[int, bytes]:
    """GET `target` exactly as written (no client normalises its `..`)."""
    url = urlsplit(base_url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    try:
        conn.request("GET", target, headers={"Cookie": cookies})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def test_her_live_stream_only_for_her_and_the_admin(shared, hers):
    """The page's live stream of a job (app/ui/live_route.py): by the same rule, and nothing
    without signing in."""
    proc, _ = shared
    rid, prompt, _ = hers
    for user, expected in (("alice", 200), ("bob", 404), ("root", 200)):
        r = signed_in(proc, user).get(f"{proc.base_url}/wanpod/live/{rid}", timeout=30)
        assert r.status_code == expected, (user, r.status_code, r.text)
        assert prompt not in r.text
        if expected == 200:  # her job has ended: its final panel, then the stream ends
            panel = json.loads(r.text.strip().removeprefix("data:"))
            assert panel["final"] and 'data-state="COMPLETED"' in panel["html"], panel
        else:
            assert "Unknown job" in r.json()["detail"] and NOT_HERS not in r.text
    r = requests.get(f"{proc.base_url}/wanpod/live/{rid}", timeout=30)
    assert r.status_code == 401 and rid not in r.text


def test_the_endpoint_health_only_for_a_signed_in_user(shared):
    """The page's health panel (app/ui/health_route.py) asks as the page's user."""
    proc, _ = shared
    assert requests.get(f"{proc.base_url}/wanpod/health", timeout=30).status_code == 401
    r = signed_in(proc, "bob").get(f"{proc.base_url}/wanpod/health", timeout=30)
    assert r.status_code == 200 and 'id="wp-health"' in r.json()["panel"]


def test_the_spend_line_adds_the_signed_in_users_own_spend_and_budget(shared, hers):
    """Everyone's spend today, said to be everyone's, and the user's own against their own
    budget (the one that usually refuses first); only alice has spent (her job, `hers`)."""
    proc, _ = shared
    said = {}
    for user in ("alice", "bob"):
        line = signed_in(proc, user).get(f"{proc.base_url}/wanpod/health", timeout=30).json()
        said[user] = re.search(
            r"\$([0-9.]+) spent by all users of the \$25\.00 daily budget; "
            r"you: \$([0-9.]+) of your \$5\.00 daily budget",
            line["spend"],
        )
        assert said[user], line["spend"]
        said[user] = said[user].groups()
    (total, hers_), (total_b, bobs) = said["alice"], said["bob"]
    assert float(total) > 0 and hers_ == total == total_b and bobs == "0.0000", said


def test_uploads_over_the_setting_are_refused(shared):
    proc, _ = shared
    s = signed_in(proc, "bob")
    url = f"{proc.base_url}/gradio_api/upload"
    big = s.post(url, files={"files": ("big.png", b"\0" * 1_500_000)}, timeout=30)
    assert big.status_code == 413, big.text  # WANPOD_MAX_UPLOAD_MB=1
    small = s.post(url, files={"files": ("small.png", b"\0" * 500_000)}, timeout=30)
    assert small.status_code == 200, small.text


def test_a_stored_files_path_is_read_as_gradio_opens_it(tmp_path):
    """`..` goes by the letters first, links after (os.path.abspath, then realpath): a link
    before a `..` does not take a job's file out of its folder's check."""
    from app.studio.owners import result_holder

    data, elsewhere = tmp_path / "data", tmp_path / "elsewhere" / "deep"
    (data / "results" / "wp-bob").mkdir(parents=True)
    elsewhere.mkdir(parents=True)
    (data / "link").symlink_to(elsewhere)  # like /bin -> usr/bin
    results = Path(os.path.realpath(data / "results"))
    video = data / "results" / "wp-bob" / "video.mp4"
    assert result_holder(results, str(video)) == "wp-bob"
    assert result_holder(results, f"{data}/link/../results/wp-bob/video.mp4") == "wp-bob"
    assert result_holder(results, f"{data}/results/_placeholders/../wp-bob/video.mp4") == "wp-bob"
    assert result_holder(results, f"{data}/results/_placeholders/x.png") == ""  # shared
    assert result_holder(results, f"{data}/results/chains/ch-1/chain.mp4") == "ch-1"
    assert result_holder(results, f"{elsewhere}/video.mp4") is None  # not a result
