"""Input images given as URLs (`images[].image: "https://..."`): downloaded by the worker from
real local HTTP(S) servers under a size cap, a time cap and the base64 content checks, refused
when the URL's host (or a redirect's) is on a loopback/private/metadata address unless the
operator allows it, and never with the query string in a log line or an error message."""

from __future__ import annotations

import base64
import io
import json
import logging
import time

import pytest
from PIL import Image

from tests.worker.conftest import Comfy, run
from tests.worker.urlserver import (
    ImageServer,
    Listener,
    declared,
    drip,
    endless,
    redirect,
    self_signed,
    serve,
    stall,
)
from worker.errors import ConfigError, InputError
from worker.fetch import MAX_REDIRECTS, ImageFetcher, address_problem
from worker.handler import make_handler
from worker.inputs import ImageURL, parse_job_input
from worker.settings import Settings

SECRET = "X-Amz-Signature=d3adb33fc0ffee"  # what a signed URL's query carries
WF = {
    "1": {"class_type": "LoadImage", "inputs": {"image": "start.png"}},
    "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "url"}},
}
LOCAL = {"IMAGE_URL_ALLOW_PRIVATE": "true", "IMAGE_URL_ALLOW_HTTP": "true"}


def png(size: tuple[int, int] = (40, 30), fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (10, 200, 30)).save(buf, format=fmt)
    return buf.getvalue()


def settings(**env: str) -> Settings:
    return Settings.from_env(env)


def url_image(url: str, s: Settings, name: str = "start.png") -> ImageURL:
    request = parse_job_input({"workflow": WF, "images": [{"name": name, "image": url}]}, s)
    image = request.images[0]
    assert isinstance(image, ImageURL)
    return image


def refusal(url: str, s: Settings, resolver=None, name: str = "start.png") -> str:
    fetcher = ImageFetcher(s) if resolver is None else ImageFetcher(s, resolver=resolver)
    with pytest.raises(InputError) as e:
        fetcher.fetch(url_image(url, s, name))
    text = str(e.value)
    assert SECRET not in text
    return text


@pytest.fixture
def server():
    srv = ImageServer("127.0.0.1")
    yield srv
    srv.stop()


# -- success -----------------------------------------------------------------------------------


def test_an_https_image_url_runs_like_a_base64_image(emu: Comfy, tmp_path):
    ca, tls = self_signed(tmp_path)
    srv = ImageServer("127.0.0.1", tls=tls).route("/img/start.png", serve(png((40, 30))))
    try:
        s = emu.env(IMAGE_URL_ALLOW_PRIVATE="true", IMAGE_URL_CA_BUNDLE=str(ca))
        url = srv.url(f"/img/start.png?{SECRET}", host="localhost")
        job = {"workflow": WF, "images": [{"name": "start.png", "image": url}]}
        out = run(make_handler(Settings.from_env(s)), {"id": "url-ok", "input": job})
    finally:
        srv.stop()
    assert "error" not in out, out
    with Image.open(io.BytesIO(base64.b64decode(out["images"][0]["data"]))) as img:
        assert img.size == (40, 30)  # LoadImage read the downloaded image
    assert srv.seen == [f"/img/start.png?{SECRET}"]  # a signed URL arrives whole
    assert not list(emu.input.glob("wanpod-*"))  # cleaned up like any upload


def test_a_certificate_the_worker_does_not_trust_is_refused(tmp_path):
    _, tls = self_signed(tmp_path)
    srv = ImageServer("127.0.0.1", tls=tls).route("/a.png", serve(png()))
    try:
        text = refusal(srv.url("/a.png", host="localhost"), settings(IMAGE_URL_ALLOW_PRIVATE="1"))
    finally:
        srv.stop()
    assert "images[0].image: has a TLS certificate the worker does not trust" in text
    assert "IMAGE_URL_CA_BUNDLE" in text


def test_a_resolver_decides_where_a_name_connects(server: ImageServer):
    server.route("/a.png", serve(png((8, 6))))
    asked: list[tuple[str, int]] = []

    def resolver(host: str, port: int) -> list[str]:
        asked.append((host, port))
        return ["127.0.0.1"]

    s = settings(**LOCAL)
    url = f"http://images.example.com:{server.port}/a.png"
    image = ImageFetcher(s, resolver=resolver).fetch(url_image(url, s))
    assert (image.width, image.height, image.mime) == (8, 6, "image/png")
    assert asked == [("images.example.com", server.port)]


# -- scheme and URL form -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://example.com/a.png", "is a plain http:// URL (not encrypted)"),
        ("ftp://example.com/a.png", "uses the ftp:// scheme"),
        ("file:///etc/passwd", "uses the file:// scheme"),
        ("https://user:pw@example.com/a.png", "is a URL with a user name or password in it"),
        ("https:///a.png", "is a URL without a host"),
        ("https://example.com:99999/a.png", "is not a valid URL"),
    ],
)
def test_urls_other_than_https_are_refused_before_any_download(url, why):
    with pytest.raises(InputError) as e:
        parse_job_input({"workflow": WF, "images": [{"name": "a.png", "image": url}]}, Settings())
    assert str(e.value).startswith(f"invalid input: images[0].image: {why}")
    assert (
        "allowed: an https:// URL without user info (http:// with IMAGE_URL_ALLOW_HTTP=true)"
        in (str(e.value))
    )
    assert "pw" not in str(e.value)


def test_base64_is_never_taken_for_a_url():
    """Only a `scheme://` prefix makes a URL (base64 has no ':'): base64 that happens to start
    with "https" is decoded, not fetched."""
    looks_like = "https" + "A" * 59
    with pytest.raises(InputError, match=r"images\[0\].image: is not a PNG, JPEG or WebP"):
        parse_job_input(
            {"workflow": WF, "images": [{"name": "a.png", "image": looks_like}]}, Settings()
        )


def test_http_is_allowed_by_its_own_setting_only(server: ImageServer):
    server.route("/a.png", serve(png()))
    url = server.url("/a.png")
    with pytest.raises(InputError, match="plain http:// URL"):
        url_image(url, settings(IMAGE_URL_ALLOW_PRIVATE="true"))
    assert ImageFetcher(settings(**LOCAL)).fetch(url_image(url, settings(**LOCAL))).width == 40


# -- size ----------------------------------------------------------------------------------------


def test_a_declared_size_over_the_cap_is_refused_before_the_body(server: ImageServer):
    server.route("/big.png", declared(5_000_000_000))
    text = refusal(server.url("/big.png"), settings(**LOCAL, MAX_IMAGE_BYTES="100000"))
    assert "images[0].image: is 5000000000 bytes (Content-Length)" in text
    assert "allowed: at most 100000 bytes (MAX_IMAGE_BYTES)" in text
    assert server.sent < 5_000_000_000


def test_an_endless_body_is_refused_as_soon_as_it_passes_the_cap(server: ImageServer):
    server.route("/endless.png", endless())
    s = settings(**LOCAL, MAX_IMAGE_BYTES="200000", IMAGE_URL_TIMEOUT_S="20")
    text = refusal(server.url("/endless.png"), s)
    assert "images[0].image: passed 200000 bytes while downloading" in text
    # what the server got out before the worker hung up: the cap plus what the sockets buffer
    assert server.sent < 200_000 + 32 * 1024 * 1024


# -- time ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("headers_too", [False, True], ids=["body", "headers"])
def test_a_drip_server_is_cut_off_at_the_total_time_cap(server: ImageServer, headers_too):
    server.route("/drip.png", drip(0.05, 400, headers_too=headers_too))  # all of it: 20+ s
    s = settings(**LOCAL, IMAGE_URL_TIMEOUT_S="1", IMAGE_URL_READ_TIMEOUT_S="0.5")
    t0 = time.monotonic()
    text = refusal(server.url("/drip.png"), s)
    assert time.monotonic() - t0 < 15  # cut off, not waited out
    assert "images[0].image: did not download within 1 s (IMAGE_URL_TIMEOUT_S)" in text


def test_a_cancelled_job_stops_its_download_at_once(emu: Comfy, server: ImageServer):
    """JOB_TIMEOUT_S (like RunPod's cancel) cancels the handler: the download thread's sockets
    are shut at once instead of dripping on until IMAGE_URL_TIMEOUT_S."""
    server.route("/drip.png", drip(0.05, 2000))  # 100 s
    env = emu.env(**LOCAL, JOB_TIMEOUT_S="1", IMAGE_URL_TIMEOUT_S="300")
    job = {"workflow": WF, "images": [{"name": "start.png", "image": server.url("/drip.png")}]}
    out = run(make_handler(Settings.from_env(env)), {"id": "url-cancel", "input": job})
    assert out["error"].startswith("job timed out: no result after 1 s (JOB_TIMEOUT_S)")
    assert server.hung_up.wait(20)  # the worker hung up long before the drip's 100 s


def test_a_silent_server_is_cut_off_at_the_read_timeout(server: ImageServer):
    server.route("/stall.png", stall)
    s = settings(**LOCAL, IMAGE_URL_TIMEOUT_S="30", IMAGE_URL_READ_TIMEOUT_S="0.3")
    text = refusal(server.url("/stall.png"), s)
    assert "images[0].image: sent nothing for 0.3 s (IMAGE_URL_READ_TIMEOUT_S)" in text


# -- content -------------------------------------------------------------------------------------


def test_content_gets_the_same_checks_as_base64(server: ImageServer):
    server.route("/page.png", serve(b"<!doctype html><html>login</html>", "text/html"))
    server.route("/photo.png", serve(png(fmt="JPEG"), "image/png"))
    server.route("/huge.png", serve(png((400, 300))))
    server.route("/gone.png", lambda h: h.send_error(404))
    s = settings(**LOCAL)
    text = refusal(server.url("/page.png"), s)
    assert "images[0].image: is not a PNG, JPEG or WebP image (starts with 3c21646f" in text
    assert "images[0].name: says png but the content is jpeg" in refusal(
        server.url("/photo.png"), s
    )
    assert "is 400x300 = 120000 pixels" in refusal(
        server.url("/huge.png"), settings(**LOCAL, MAX_IMAGE_PIXELS="100000")
    )
    assert "images[0].image: answered HTTP 404 Not Found" in refusal(server.url("/gone.png"), s)


# -- addresses -----------------------------------------------------------------------------------


def test_a_redirect_to_loopback_is_refused_before_connecting():
    first = ImageServer("127.0.0.2")  # the one address the operator allows
    target = Listener("127.0.0.1")
    first.route("/a.png", redirect(f"http://127.0.0.1:{target.port}/a.png?{SECRET}"))
    try:
        s = settings(IMAGE_URL_ALLOW_HTTP="true", IMAGE_URL_ALLOW_NETWORKS="127.0.0.2/32")
        text = refusal(first.url("/a.png"), s)
        assert target.connections() == 0  # never connected
    finally:
        first.stop()
        target.close()
    assert first.seen == ["/a.png"]
    assert (
        f"images[0].image: redirected to http://127.0.0.1:{target.port}/a.png?<query hidden>: "
        "its host '127.0.0.1' resolves to 127.0.0.1, a loopback address"
    ) in text
    assert "IMAGE_URL_ALLOW_PRIVATE=true" in text


def test_redirect_targets_are_checked_like_the_url(server: ImageServer):
    server.route("/to-file.png", redirect("file:///etc/passwd"))
    server.route("/loop.png", redirect("/loop.png"))
    server.route("/hop.png", redirect("/a.png", 301)).route("/a.png", serve(png()))
    s = settings(**LOCAL)
    assert "redirected to file:///etc/passwd: uses the file:// scheme" in refusal(
        server.url("/to-file.png"), s
    )
    assert f"was redirected more than {MAX_REDIRECTS} times" in refusal(server.url("/loop.png"), s)
    assert server.seen.count("/loop.png") == MAX_REDIRECTS + 1
    assert ImageFetcher(s).fetch(url_image(server.url("/hop.png"), s)).width == 40


def test_a_name_that_resolves_to_loopback_is_refused(server: ImageServer):
    server.route("/a.png", serve(png()))
    text = refusal(server.url("/a.png", host="localhost"), settings(IMAGE_URL_ALLOW_HTTP="1"))
    assert "images[0].image: its host 'localhost' resolves to 127.0.0.1" in text
    for host, ip in [("2130706433", "127.0.0.1"), ("0x7f.1", "127.0.0.1"), ("[::1]", "::1")]:
        url = f"http://{host}:{server.port}/a.png"  # numeric spellings of loopback
        text = refusal(url, settings(IMAGE_URL_ALLOW_HTTP="1"))
        assert f"its host {host.strip('[]')!r} resolves to {ip}, a loopback address" in text
    assert server.seen == []


def test_a_name_that_resolves_to_a_private_address_is_refused_without_traffic():
    for answer, kind in [
        (["10.20.30.40"], "a private address"),
        (["127.0.0.2", "192.168.1.5"], "a private address"),  # one bad answer is enough
        (["169.254.169.254"], "a cloud metadata address"),
        (["::ffff:10.0.0.1"], "an IPv4-mapped private address"),
        (["fd12:3456::1"], "a private address"),
    ]:
        text = refusal(
            "https://images.example.com/a.png",
            settings(IMAGE_URL_ALLOW_NETWORKS="127.0.0.2"),  # never used: one answer is bad
            resolver=lambda h, p, a=answer: a,
        )
        assert f"its host 'images.example.com' resolves to {answer[-1]}, {kind}" in text, text


def test_rebinding_between_connections_is_caught():
    """The name is resolved and checked for every connection: a second answer that points
    at loopback is refused even though the first one was allowed."""
    srv = ImageServer("127.0.0.2")
    srv.route("/a.png", redirect(f"http://rebind.example:{srv.port}/b.png"))
    answers = iter([["127.0.0.2"], ["127.0.0.1"]])
    try:
        s = settings(IMAGE_URL_ALLOW_HTTP="true", IMAGE_URL_ALLOW_NETWORKS="127.0.0.2")
        text = refusal(
            f"http://rebind.example:{srv.port}/a.png", s, resolver=lambda h, p: next(answers)
        )
    finally:
        srv.stop()
    assert "its host 'rebind.example' resolves to 127.0.0.1, a loopback address" in text


@pytest.mark.parametrize(
    ("ip", "plain", "with_private", "listed"),
    [
        ("8.8.8.8", None, None, None),
        ("2606:4700::1111", None, None, None),
        ("127.0.0.1", "a loopback address", None, None),
        ("::1", "a loopback address", None, None),
        ("10.1.2.3", "a private address", None, None),
        ("100.64.0.1", "a private address", None, None),  # carrier-grade NAT
        ("fc00::1", "a private address", None, None),
        ("::ffff:127.0.0.1", "an IPv4-mapped loopback address", None, None),
        ("2002:a01:203::1", "an IPv6 address carrying a private address", None, None),  # 6to4
        ("169.254.10.10", "a link-local address", "a link-local address", None),
        ("fe80::1%eth0", "a link-local address", "a link-local address", None),
        ("169.254.169.254", "a cloud metadata address", "a cloud metadata address", "same"),
        ("fd00:ec2::254", "a cloud metadata address", "a cloud metadata address", "same"),
        ("168.63.129.16", "a cloud metadata address", "a cloud metadata address", "same"),
        ("0.0.0.0", "an unspecified address", "an unspecified address", "same"),
        ("224.0.0.1", "a multicast address", "a multicast address", "same"),
        ("ff02::1", "a multicast address", "a multicast address", "same"),
        ("240.0.0.1", "a reserved address", "a reserved address", "same"),
        ("255.255.255.255", "a reserved address", "a reserved address", "same"),
    ],
)
def test_address_rules(ip, plain, with_private, listed):
    import ipaddress

    everything = (ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0"))
    assert address_problem(ip) == plain
    assert address_problem(ip, allow_private=True) == with_private
    assert address_problem(ip, allowed_networks=everything) == (plain if listed else None)


def test_settings_for_image_urls_are_read_and_checked(tmp_path):
    s = settings()
    assert (s.image_url_allow_http, s.image_url_allow_private, s.image_url_allow_networks) == (
        False,
        False,
        (),
    )
    assert (s.image_url_timeout_s, s.image_url_read_timeout_s) == (60.0, 15.0)
    s = settings(IMAGE_URL_ALLOW_NETWORKS="10.1.2.3, 10.8.0.0/16,fd00:1::/64")
    assert [str(n) for n in s.image_url_allow_networks] == [
        "10.1.2.3/32",
        "10.8.0.0/16",
        "fd00:1::/64",
    ]
    with pytest.raises(ConfigError, match="IMAGE_URL_ALLOW_NETWORKS: 'intranet' is not an IP"):
        settings(IMAGE_URL_ALLOW_NETWORKS="10.0.0.0/8,intranet")
    with pytest.raises(ConfigError, match=r"IMAGE_URL_CA_BUNDLE=.* is not a file"):
        settings(IMAGE_URL_CA_BUNDLE=str(tmp_path / "nope.pem"))
    with pytest.raises(ConfigError, match="IMAGE_URL_TIMEOUT_S"):
        settings(IMAGE_URL_TIMEOUT_S="0")


# -- logs ----------------------------------------------------------------------------------------


def test_the_query_string_never_reaches_a_log_line_or_an_error(emu: Comfy, caplog):
    srv = ImageServer("127.0.0.1")
    srv.route("/ok.png", serve(png()))
    srv.route("/big.png", endless())
    srv.route("/hop.png", redirect(f"/ok.png?{SECRET}"))
    env = emu.env(**LOCAL, MAX_IMAGE_BYTES="100000", WORKER_LOG_LEVEL="DEBUG")
    handler = make_handler(Settings.from_env(env))
    caplog.set_level(logging.DEBUG)  # every logger, urllib3's debug lines included
    results = []
    try:
        for path in ("/ok.png", "/hop.png", "/big.png", "/missing.png"):
            job = {"workflow": WF, "images": [{"name": "start.png", "image": srv.url(path)}]}
            job["images"][0]["image"] += f"?{SECRET}"
            results.append(run(handler, {"id": f"log{path}", "input": job}))
    finally:
        srv.stop()
    assert [("error" in r) for r in results] == [False, False, True, True]
    assert "passed 100000 bytes" in results[2]["error"]
    assert "?<query hidden>" in results[3]["error"]
    assert all(p.endswith(SECRET) for p in srv.seen)  # the server did get it
    lines = [r.getMessage() for r in caplog.records]
    assert any("downloaded http://127.0.0.1:" in line for line in lines)
    assert any("urllib3" in r.name for r in caplog.records)
    assert [line for line in lines if "d3adb33f" in line] == []
    assert "d3adb33f" not in json.dumps(results)
