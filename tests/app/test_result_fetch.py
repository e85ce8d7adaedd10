"""Issue 15 section 4: what the studio fetches. Result URLs from the worker's answer are
downloaded only over https or from the configured S3 endpoint, never from loopback / private /
link-local / metadata addresses (checked at connect time and after redirects), capped in size and
time; a base64 item is never fetched; slow downloads do not stall another job's delivery."""

from __future__ import annotations

import base64
import socket
import struct
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pytest

from app.endpoint.states import JobState
from app.errors import FetchRefused
from app.settings import PRICES_PATH, Settings
from app.studio import cost, results
from app.studio.fetch import Fetcher, FetchSettings, address_problem
from app.studio.ledger import Ledger
from app.studio.tracker import Tracker
from tests.helpers import wait_for

PRICES = cost.load_prices(PRICES_PATH)


class Server:
    """A real HTTP server on loopback: /ok, /big, /drip (one byte per 0.2 s), /reset (part of
    its body, then the connection reset), /to?<url>."""

    def __init__(self) -> None:
        self.hits: list[str] = []
        self.dripping = 0
        self.stop = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.hits.append(self.path)
                if self.path.startswith("/to?"):
                    self.send_response(302)
                    self.send_header("Location", self.path[4:])
                    self.end_headers()
                elif self.path.startswith("/big"):
                    self.send_response(200)
                    self.end_headers()
                    self.wfile.write(b"x" * 3_000_000)
                elif self.path.startswith("/reset"):  # as a peer that fails mid-body
                    self.send_response(200)
                    self.send_header("Content-Length", "1000")
                    self.end_headers()
                    self.wfile.write(b"x" * 10)
                    self.wfile.flush()
                    linger = struct.pack("ii", 1, 0)  # closed with a reset, not a FIN
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
                    self.connection.close()
                    self.close_connection = True
                elif self.path.startswith("/drip"):
                    self.send_response(200)
                    self.end_headers()
                    server.dripping += 1
                    try:
                        while not server.stop.wait(0.2):
                            self.wfile.write(b"x")
                            self.wfile.flush()
                    except OSError:
                        pass
                    finally:
                        server.dripping -= 1
                else:
                    self.send_response(200)
                    self.send_header("Content-Length", "11")
                    self.end_headers()
                    self.wfile.write(b"video bytes")

            def log_message(self, *a: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def s3():
    srv = Server()
    yield srv
    srv.close()


@pytest.fixture
def secret():
    srv = Server()  # something on loopback the studio must never read
    yield srv
    srv.close()


def item(url: str, kind: str = "s3_url") -> dict:
    return {"images": [{"filename": "v.mp4", "type": kind, "data": url}]}


def test_the_configured_s3_endpoint_is_fetched_and_nothing_else_on_loopback(s3, secret, tmp_path):
    fetcher = Fetcher(FetchSettings(s3_endpoint=s3.url))
    saved = results.save_outputs(item(f"{s3.url}/bucket/v.mp4?X-Amz-Signature=abc"), tmp_path,
                                 fetcher)  # fmt: skip
    assert saved[0].path.read_bytes() == b"video bytes"
    with pytest.raises(FetchRefused) as info:  # the attack: an s3_url on another loopback port
        results.save_outputs(item(f"{secret.url}/secret?sig=x"), tmp_path / "a", fetcher)
    assert "allowed: https, or the configured S3 endpoint" in str(info.value)
    assert "sig=x" not in str(info.value)
    with pytest.raises(FetchRefused) as info:  # https to loopback: refused at connect time
        results.save_outputs(item(f"https://127.0.0.1:{secret.httpd.server_port}/s"), tmp_path,
                             fetcher)  # fmt: skip
    assert "a loopback address" in str(info.value)
    with pytest.raises(FetchRefused) as info:  # a redirect from the trusted endpoint
        results.save_outputs(item(f"{s3.url}/to?{secret.url}/secret"), tmp_path, fetcher)
    assert secret.hits == []
    no_s3 = Fetcher(FetchSettings())  # no S3 endpoint configured: loopback http is refused
    with pytest.raises(FetchRefused):
        results.save_outputs(item(f"{s3.url}/bucket/v.mp4"), tmp_path / "b", no_s3)


TEREDO_10_0_0_1 = "2001:0:4136:e378:8000:63bf:f5ff:fffe"  # Teredo; 2002:7f00:1::1 is 6to4


def test_private_link_local_and_metadata_addresses_are_refused_before_connecting(tmp_path):
    for ip, what in (("10.1.2.3", "private"), ("169.254.169.254", "metadata"),
                     ("169.254.1.1", "link-local"), ("::ffff:127.0.0.1", "loopback"),
                     ("fd00:ec2::254", "metadata"), ("2002:7f00:1::1", "loopback"),
                     (TEREDO_10_0_0_1, "private")):  # fmt: skip
        assert what in address_problem(ip)
    assert address_problem("93.184.216.34") is None
    resolved = []

    def rebinding(host: str, port: int) -> list[str]:
        resolved.append(host)
        return ["10.0.0.7"]

    fetcher = Fetcher(FetchSettings(), resolver=rebinding)
    with pytest.raises(FetchRefused, match=r"is 10\.0\.0\.7, a private address"):
        fetcher.download("https://bucket.example.com/v.mp4?sig=1", tmp_path / "v.mp4")
    assert resolved == ["bucket.example.com"] and not (tmp_path / "v.mp4").exists()


def test_base64_is_never_fetched(s3, tmp_path):
    fetcher = Fetcher(FetchSettings(s3_endpoint=s3.url))
    with pytest.raises(FetchRefused, match="not base64"):
        results.save_outputs(item(f"{s3.url}/ok", "base64"), tmp_path, fetcher)
    assert s3.hits == []
    data = base64.b64encode(b"http://looks-like-a-url but is bytes").decode()
    saved = results.save_outputs(item(data, "base64"), tmp_path, fetcher)
    assert saved[0].path.read_bytes().startswith(b"http://")


def test_size_and_time_are_capped_per_download(s3, tmp_path):
    small = Fetcher(FetchSettings(s3_endpoint=s3.url, max_bytes=1_000_000))
    with pytest.raises(FetchRefused, match=r"passed 1000000 bytes.*WANPOD_RESULT_MAX_MB"):
        small.download(f"{s3.url}/big", tmp_path / "big.mp4")
    assert not (tmp_path / "big.mp4").exists()
    quick = Fetcher(FetchSettings(s3_endpoint=s3.url, timeout_s=1.0))
    with pytest.raises(FetchRefused, match="not downloaded within 1 s"):
        quick.download(f"{s3.url}/drip", tmp_path / "drip.mp4")


def test_a_connection_reset_mid_download_is_a_refusal_naming_it(s3, tmp_path):
    """A peer that resets the connection part-way through the body (or the time cap cutting
    the connection as the peer writes, which the kernel may answer with a reset) is the
    download failing, said as such, not urllib3's ProtocolError escaping to the tracker."""
    fetcher = Fetcher(FetchSettings(s3_endpoint=s3.url))
    with pytest.raises(FetchRefused, match=r"the download failed \(ProtocolError\)"):
        fetcher.download(f"{s3.url}/reset", tmp_path / "reset.mp4")
    assert not (tmp_path / "reset.mp4").exists()


def test_slow_downloads_do_not_stall_another_jobs_delivery(s3, tmp_path):
    ledger = Ledger(tmp_path / "ledger.sqlite3")
    urls = {}

    def answer(job_id: str):
        out = item(urls[job_id])
        return SimpleNamespace(state="COMPLETED", progress=None, output=out, error=None,
                               delay_ms=10, execution_ms=1000, worker_id="w")  # fmt: skip

    fetcher = Fetcher(FetchSettings(s3_endpoint=s3.url, timeout_s=120))
    tracker = Tracker(ledger, SimpleNamespace(status=answer), tmp_path, PRICES, poll_s=0.05,
                      fetcher=fetcher).start()  # fmt: skip

    def job(url: str) -> str:
        rid = ledger.create(template="t2v_14b", mode="turbo", params={}, workflow={}, quote=None,
                            gpu="H100 PRO")  # fmt: skip
        urls[f"j-{rid}"] = url
        ledger.update(rid, job_id=f"j-{rid}", state=JobState.IN_PROGRESS)
        tracker.watch(rid)
        return rid

    try:
        drips = [job(f"{s3.url}/drip?{i}") for i in range(4)]
        wait_for(lambda: s3.dripping == 4 or None, 30, "four slow downloads under way")
        fast = job(f"{s3.url}/ok")
        row = wait_for(lambda: ((r := ledger.get(fast)).final and r) or None, 30, "the fast job")
        assert row.state == "COMPLETED" and s3.dripping == 4
        assert all(ledger.get(d).live for d in drips)
    finally:
        s3.stop.set()
        tracker.stop()


def test_the_studio_reads_its_download_settings_once():
    env = {"BUCKET_ENDPOINT_URL": "http://127.0.0.1:9000", "WANPOD_RESULT_MAX_MB": "5",
           "WANPOD_RESULT_TIMEOUT_S": "7"}  # fmt: skip
    s = Settings.from_env(env)
    assert s.fetch == FetchSettings("http://127.0.0.1:9000", 5_000_000, 7.0)
    s = Settings.from_env({"WANPOD_S3_ENDPOINT_URL": "https://s3.example.com"})
    assert s.fetch.trusted == ("https", "s3.example.com", 443)
