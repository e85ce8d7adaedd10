"""Health panel: RunPod's /health answer -> idle/running workers, queued/in-progress jobs and a
cold-start note priced from the quote; and the panel following the local stack while a job runs."""

from __future__ import annotations

import pytest

from app.endpoint import EndpointClient, Health
from app.settings import PRICES_PATH
from app.studio import cost
from app.studio.checks.health import ColdStart, HealthPanel, panel_from, read_panel, render_html
from tests.helpers import wait_for

RECORDED = {  # the shape in RunPod docs' example of GET /health
    "jobs": {"completed": 1, "failed": 5, "inProgress": 0, "inQueue": 2, "retried": 0},
    "workers": {"idle": 0, "running": 0},
}
COLD = ColdStart(seconds=79.2, dollars=0.0928, gpu="H100 PRO")


def test_recorded_shape_with_no_worker_up_names_the_cold_start_and_its_price():
    p = panel_from(Health.from_body(RECORDED), COLD, now=0)
    assert (p.idle, p.running, p.in_queue, p.in_progress, p.completed, p.failed) == (
        0,
        0,
        2,
        0,
        1,
        5,
    )
    assert not p.warm
    assert "waits in the queue" in p.note and "≈ 80 s" in p.note and "+$0.0928" in p.note
    assert "H100 PRO" in p.note
    assert p.workers_line == "Workers: 0 idle, 0 running"
    assert p.jobs_line == "Jobs: 2 queued, 0 in progress (1 completed, 5 failed recently)"


def test_idle_workers_mean_no_cold_start():
    p = panel_from(Health({"inQueue": 0}, {"idle": 2, "running": 1}), COLD)
    assert p.warm and p.note == "2 workers warm: the next job starts without a cold start."


def test_nothing_up_and_nothing_queued():
    p = panel_from(Health.from_body({"jobs": {}, "workers": {}}), COLD)
    assert p.note.startswith("No worker is up: the next job pays a cold start ≈ 80 s")


def test_queued_jobs_take_the_idle_workers_first():
    p = panel_from(Health.from_body({"jobs": {"inQueue": 3}, "workers": {"idle": 2}}), None)
    assert "No idle worker" in p.note and "$" not in p.note


@pytest.mark.parametrize(
    ("workers", "why"),
    [
        ({"throttled": 3}, "3 throttled"),
        ({"unhealthy": 2}, "2 unhealthy"),
        ({"throttled": 1, "unhealthy": 1}, "1 throttled and 1 unhealthy"),
    ],
)
def test_workers_all_throttled_or_unhealthy_can_take_no_job(workers, why):
    """Throttled workers get no GPU and unhealthy ones free up for nothing: no cold start is
    coming (the note promised one, and the panel counted as healthy, so Generate warned of
    nothing)."""
    p = panel_from(Health.from_body({"jobs": {"inQueue": 4}, "workers": workers}), COLD)
    assert p.blocked == f"no worker can take a job: {why}"
    assert p.note.startswith(f"No worker can take a job ({why}): the next job waits in the queue")
    assert "cold start" not in p.note
    # one worker up or starting beside them: jobs can start
    for up in ("idle", "running", "initializing"):
        assert not panel_from(Health.from_body({"workers": {**workers, up: 1}})).blocked


def test_the_generate_note_warns_of_an_endpoint_that_can_take_no_job():
    from types import SimpleNamespace

    from app.ui.health_route import parts

    blocked = panel_from(Health.from_body({"jobs": {}, "workers": {"throttled": 2}}), COLD)
    ops = SimpleNamespace(health_panel=lambda cold: blocked)
    studio = SimpleNamespace(ops=ops, settings=SimpleNamespace(demo=True))
    note = parts(studio, COLD)["note"]
    assert "cannot start a job now" in note and "2 throttled" in note, note


def test_extra_worker_states_are_shown_and_bad_values_ignored():
    p = panel_from(
        Health.from_body(
            {"workers": {"idle": 1, "unhealthy": 2, "initializing": True, "running": "x"}}
        )
    )
    assert p.workers_line == "Workers: 1 idle, 0 running, 2 unhealthy"


def test_every_worker_count_runpod_documents_is_read():
    # RunPod's documented /health example, plus `unhealthy`
    documented = {"idle": 4, "initializing": 1, "ready": 4, "running": 1, "throttled": 2}
    p = panel_from(Health.from_body({"jobs": {}, "workers": {**documented, "unhealthy": 3}}))
    assert (p.idle, p.initializing, p.ready, p.running, p.throttled, p.unhealthy) == (
        4,
        1,
        4,
        1,
        2,
        3,
    )
    assert p.workers_line == "Workers: 4 idle, 1 running, 1 starting, 2 throttled, 3 unhealthy"
    assert Health({}, documented).worker_count("ready") == 4


def test_ready_workers_are_warm_even_when_idle_is_not_reported():
    p = panel_from(
        Health.from_body({"jobs": {"inQueue": 0}, "workers": {"idle": 0, "ready": 2}}), COLD
    )
    assert p.warm and p.note == "2 workers warm: the next job starts without a cold start."
    assert p.workers_line == "Workers: 0 idle, 0 running, 2 ready"


def test_cold_start_from_a_real_quote():
    prices = cost.load_prices(PRICES_PATH)
    q = cost.quote(cost.CostRequest("t2v_14b", "turbo", 832, 480, 81, 4, 1.0), "A100", prices)
    cold = ColdStart.from_quote(q)
    assert cold.dollars == q.cold_dollars and cold.gpu == "A100"
    assert f"+${q.cold_dollars:.4f} on A100" in panel_from(Health.from_body(RECORDED), cold).note


def test_render_html_escapes_and_carries_data_attributes():
    html = render_html(
        panel_from(Health.from_body({"jobs": {"inQueue": 1}, "workers": {"running": 3}}), now=0)
    )
    assert 'data-running="3"' in html and 'data-queued="1"' in html and 'data-warm="false"' in html
    assert "checked 00:00:00 UTC" in html
    bad = render_html(HealthPanel(error="<b>down</b>"))
    assert "&lt;b&gt;down" in bad and 'data-ok="false"' in bad


def test_read_panel_turns_an_unreachable_endpoint_into_an_error_panel_without_the_key():
    from tests.helpers import free_port

    key = "rpa_SECRETKEY0123456789"
    client = EndpointClient(f"http://127.0.0.1:{free_port()}/v2/ep", key, retries=0)
    p = read_panel(client, COLD, secrets=(key,))
    assert not p.ok and not p.warm
    assert p.error.startswith("/health failed: Cannot reach the endpoint")
    assert "(1 try): the connection was refused (NewConnectionError)." in p.error, p.error
    assert key not in p.error


def test_a_password_in_the_api_base_stays_out_of_the_panel():
    """A proxy's password in RUNPOD_API_BASE is one of the studio's secrets: the panel (shown
    to every signed-in user) says the endpoint cannot be reached without it."""
    from app.settings import Settings
    from tests.helpers import free_port

    base = f"http://proxyuser:Pr0xyPa55word@127.0.0.1:{free_port()}/v2"
    env = {"RUNPOD_API_KEY": "rpa_SECRETKEY0123456789", "RUNPOD_ENDPOINT_ID": "ep1"}
    settings = Settings.from_env({**env, "RUNPOD_API_BASE": base})
    client = EndpointClient(f"{settings.api_base}/ep1", settings.api_key.value, retries=0)
    p = read_panel(client, COLD, secrets=settings.secret_values())
    assert p.error.startswith("/health failed: Cannot reach the endpoint"), p.error
    assert "Pr0xyPa55word" not in p.error and "proxyuser" in p.error, p.error


@pytest.mark.slow
def test_panel_follows_the_local_stack_through_a_job(stack):
    from workflows.fill import fill

    client = EndpointClient(stack.base_url, stack.api_key)
    before = read_panel(client, COLD)
    assert before.ok and before.idle >= 1 and before.warm
    filled = fill(
        "t2v_14b",
        {"prompt": "health", "mode": "quality", "steps": 20, "seconds": 0.25, "seed": 7},
    )
    ref = client.run({"workflow": filled.workflow})

    def busy_panel():
        p = read_panel(client, COLD)
        return p if p.in_progress >= 1 and p.running >= 1 else None

    busy = wait_for(busy_panel, 60, "the panel to show the job in progress")
    assert f'data-in-progress="{busy.in_progress}"' in render_html(busy)
    final = client.wait(ref.id, poll_s=0.1, timeout_s=120)
    assert final.state == "COMPLETED", final.error

    def idle_panel():
        p = read_panel(client, COLD)
        return p if p.in_progress == 0 and p.idle >= 1 else None

    after = wait_for(idle_panel, 30, "the panel to show the worker idle again")
    assert after.completed >= before.completed + 1
    assert after.warm and "warm" in after.note


class CountingEndpoint:
    """Answers /health from a list (an exception is raised), counting calls."""

    def __init__(self, *answers) -> None:
        self.answers = list(answers)
        self.calls = 0

    def health(self, quick=False):
        assert quick  # a panel's call is one quick try
        self.calls += 1
        item = self.answers.pop(0)
        if isinstance(item, Exception):
            raise item
        return item


def test_cached_health_calls_the_endpoint_once_per_ttl():
    from app.errors import EndpointUnreachable
    from app.studio.checks.health import CachedHealth

    key = "rpa_SECRETKEY0123456789"
    ep = CountingEndpoint(Health.from_body(RECORDED), EndpointUnreachable(f"down {key}"))
    now = [100.0]  # the cache's clock, moved by the test (no sleeping against the TTL)
    cached = CachedHealth(ep, ttl_s=2.0, secrets=(key,), clock=lambda: now[0])
    first = cached.panel(COLD)
    now[0] += 1.99
    assert cached.panel(None).in_queue == first.in_queue == 2 and ep.calls == 1
    now[0] += 0.01
    down = cached.panel(COLD)
    assert ep.calls == 2 and not down.ok and key not in down.error and "***" in down.error


def test_a_health_call_under_way_holds_no_other_page_back():
    """While one page's /health call waits on a slow endpoint, the other pages get the last
    answer at once (its time says how old it is): they used to queue behind the call."""
    import threading

    from app.studio.checks.health import CachedHealth

    slow = threading.Event()

    class Slow(CountingEndpoint):
        started = 0

        def health(self, quick=False):
            self.started += 1
            if self.started > 1:  # the second call hangs until the test lets it go
                slow.wait(60)
            return super().health(quick)

    ep = Slow(Health.from_body(RECORDED), Health.from_body(RECORDED))
    now = [100.0]
    cached = CachedHealth(ep, ttl_s=2.0, clock=lambda: now[0])
    first = cached.panel(None)
    now[0] += 5
    asking = threading.Thread(target=cached.panel, args=(None,))
    asking.start()
    wait_for(lambda: ep.started == 2, 30, "the second call under way")
    other = cached.panel(None)  # not waiting for it
    assert other.checked_at == first.checked_at and other.in_queue == first.in_queue
    slow.set()
    asking.join(30)
    assert not asking.is_alive() and ep.calls == 2


def test_a_quick_health_call_is_one_try_within_its_limit(monkeypatch):
    """An endpoint that takes the connection and never answers /health: the panel's call gives
    up after one try within HEALTH_QUICK_S (the reads' five tries of 30 s each took ~155 s,
    and the panel showed its last green answer meanwhile)."""
    import socket
    import threading

    from app.endpoint import client as client_module
    from app.errors import EndpointUnreachable

    monkeypatch.setattr(client_module, "HEALTH_QUICK_S", 0.3)
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    taken: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:  # takes each connection and says nothing
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                taken.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.getsockname()[1]}/v2/ep"
        ep = client_module.EndpointClient(url, "rpa_KEY", sleep=lambda s: None)
        with pytest.raises(EndpointUnreachable) as down:
            ep.health(quick=True)
        said = str(down.value)  # it connected: no answer, not "cannot reach" (and 1 try)
        assert "took the connection but did not answer within 0.3 s (1 try)" in said, said
        assert len(taken) == 1
    finally:
        stop.set()
        thread.join(5)
        for conn in taken:
            conn.close()
        server.close()


def test_the_environments_proxy_is_read_once_and_carries_every_call(monkeypatch):
    """An operator behind a proxy sets HTTPS_PROXY / HTTP_PROXY: the client reads it when made
    (not again per call: requests would re-read the environment at every status poll) and sends
    every call through it."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    seen: list[str] = []

    class Proxy(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # a forward proxy gets the absolute URL
            seen.append(self.path)
            body = json.dumps(RECORDED).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        for name in ("NO_PROXY", "no_proxy", "http_proxy"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{server.server_port}")
        client = EndpointClient("http://runpod.invalid/v2/ep", "key", retries=0)
        monkeypatch.delenv("HTTP_PROXY")  # read once: the client keeps what it found
        assert client.health().jobs["inQueue"] == 2
        assert client.health().workers["idle"] == 0
        assert seen == ["http://runpod.invalid/v2/ep/health"] * 2
    finally:
        server.shutdown()
        server.server_close()


def test_a_run_through_a_proxy_that_refuses_is_retried_as_never_sent(monkeypatch):
    """A proxy that takes no connection cannot have passed the job on: /run is retried (no
    duplicate is possible) and ends as unreachable, not as "a job may exist"."""
    from app.errors import EndpointUnreachable
    from tests.helpers import free_port

    for name in ("NO_PROXY", "no_proxy", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{free_port()}")  # nothing listens
    slept: list[float] = []
    client = EndpointClient("http://runpod.invalid/v2/ep", "key", retries=2, sleep=slept.append)
    with pytest.raises(EndpointUnreachable, match=r"\(3 tries\)"):
        client.run({"workflow": {}})
    assert len(slept) == 2  # retried twice


def test_https_is_verified_against_the_environments_ca_bundle(monkeypatch, tmp_path):
    """An endpoint behind a certificate of the operator's own CA (a TLS-inspecting proxy, a
    private gateway): REQUESTS_CA_BUNDLE names it, as for requests; without it the certificate
    is refused (the call fails, nothing is trusted by default but certifi's CAs)."""
    import json
    import ssl
    import subprocess
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from app.errors import EndpointUnreachable

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)  # fmt: skip

    class Endpoint(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps(RECORDED).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Endpoint)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    server.socket = tls.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"https://127.0.0.1:{server.server_port}/v2/ep"
    try:
        for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "HTTPS_PROXY", "https_proxy"):
            monkeypatch.delenv(name, raising=False)
        with pytest.raises(EndpointUnreachable):
            EndpointClient(url, "key", retries=0).health()
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))
        assert EndpointClient(url, "key", retries=0).health().jobs["inQueue"] == 2
    finally:
        server.shutdown()
        server.server_close()
