"""Local servers take their own port (emulators/ports.py): bound to port 0 by the server, said
on its output, read by whoever started it; nothing can take it between the choice and the bind."""

from __future__ import annotations

import os
import socket
import sys

import pytest

from emulators import ports
from tests.helpers import ServerProcess, comfy_emulator, http_ok


def test_a_bound_socket_holds_its_port_and_the_line_names_it():
    sock = ports.bind("127.0.0.1", 0)
    try:
        url = ports.url_of(sock)
        with socket.socket() as other, pytest.raises(OSError):
            other.bind(("127.0.0.1", ports.port_of(url)))  # taken from the moment it is bound
        assert ports.announced(f"noise\n{ports.LISTENING} {url}\nmore") == url
        assert ports.announced("To see the GUI go to: http://127.0.0.1:8188") is None
    finally:
        sock.close()


def test_emulators_started_on_port_0_serve_on_the_ports_they_announce(tmp_path):
    comfy = [comfy_emulator("--step-delay", "0", folders=tmp_path / str(i)) for i in range(2)]
    plane = ServerProcess(
        [sys.executable, "-m", "emulators.runpod", "--workers", "0", "--endpoint-id", "ep",
         "--api-key", "k", "--log-dir", str(tmp_path / "workers")],
        0,
        ready_path="/v2/ep/health",
    )  # fmt: skip
    started = [s.start() for s in (*comfy, plane)]
    try:
        got = [s.port for s in started]
        assert 0 not in got and len(set(got)) == 3
        assert all(http_ok(s.base_url + s.ready_path) for s in started)
        assert f"READY {plane.base_url}/v2/ep" in plane.output()  # the URL its workers get
    finally:
        for s in started:
            s.stop()


def test_a_server_restarted_after_it_ended_by_itself_leaves_no_log_behind():
    """A child that crashed is started again without stop(): its first log goes, its text with
    it (output() is the new run's), and stop() removes the second."""
    say = "import sys; print('run', sys.argv[1])"
    server = ServerProcess([sys.executable, "-c", say, "x"], port=1)
    server.start(wait=False).proc.wait(30)  # it ended by itself
    first = server._log.name
    assert "run x" in server.output()
    server.argv = [sys.executable, "-c", say, "y"]
    server.start(wait=False).proc.wait(30)
    second = server._log.name
    assert first != second and not os.path.exists(first)
    assert "run y" in server.output() and "run x" not in server.output()
    server.stop()
    assert not os.path.exists(second) and "run y" in server.output()
