"""Running the emulator: `serve()` for the command line, `EmulatorThread` for tests and benches.

`serve(config, host, port)` sleeps `startup_delay` seconds *before* binding (real ComfyUI does not
listen until it has loaded its nodes), then serves until cancelled, stopped (SIGTERM, Ctrl-C) or
killed. A temp folder the config made for directories not given is removed when it stops (here,
and in `EmulatorThread.stop()`).

`EmulatorThread(config)` serves the same app on 127.0.0.1 and a free port (bound at once, see
emulators/ports.py) from a background thread with its own event loop:

    with EmulatorThread(EmulatorConfig(step_delay=0.01)) as emu:
        requests.get(emu.base_url + "/system_stats")
        emu.set(error_at_node="9")   # same as POST /emulator/config

`emu.config` is the live config object (knob changes apply at once); `emu.ws_url(client_id)`.
`startup_delay` delays the bind here too (`start(wait=False)` returns at once). Never use
`crash_at_node` in process: it exits the whole process, test runner included.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from typing import Any

from aiohttp import web

from .. import ports
from .config import EmulatorConfig
from .server import create_app

log = logging.getLogger("emulators.comfyui")


async def serve(config: EmulatorConfig, host: str = "127.0.0.1", port: int = 8188) -> None:
    if config.startup_delay:
        log.info("startup_delay: binding %s:%s in %.2f s", host, port, config.startup_delay)
        await asyncio.sleep(config.startup_delay)
    sock = ports.bind(host, port)  # port 0: a free one, announced (emulators/ports.py)
    runner = web.AppRunner(create_app(config), access_log=None, handle_signals=False)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    log.info("ComfyUI emulator listening on %s", ports.url_of(sock))
    print(f"To see the GUI go to: {ports.url_of(sock)}", flush=True)
    ports.announce(sock)
    stop = asyncio.Event()  # SIGTERM stops it as Ctrl-C does: its own temp folder removed
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
        config.remove_own_folder()


class EmulatorThread:
    """The emulator in a daemon thread on 127.0.0.1:<free port>. Context manager."""

    def __init__(self, config: EmulatorConfig | None = None, port: int | None = None) -> None:
        self.config = config or EmulatorConfig()
        self.host = "127.0.0.1"
        # bound now (port 0: the kernel's pick), listening once started: a connection before
        # that is refused, as with a server that has not bound yet
        self._sock = ports.bind(self.host, port or 0)
        self.port: int = self._sock.getsockname()[1]
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self.app: web.Application | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def ws_url(self, client_id: str) -> str:
        return f"ws://{self.host}:{self.port}/ws?clientId={client_id}"

    @property
    def address(self) -> str:
        """host:port, the form COMFY_HOST takes."""
        return f"{self.host}:{self.port}"

    def set(self, **knobs: Any) -> dict[str, Any]:
        return self.config.update(knobs)

    def start(self, wait: bool = True) -> EmulatorThread:
        """Start serving; with `wait`, return once the port is bound (after startup_delay)."""
        self._thread = threading.Thread(target=self._run, name="comfyui-emulator", daemon=True)
        self._thread.start()
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 30.0) -> None:
        if not self._ready.wait(timeout + self.config.startup_delay):
            raise RuntimeError("ComfyUI emulator did not start within 30 s")
        if self._error is not None:
            raise RuntimeError(f"ComfyUI emulator failed to start: {self._error!r}")

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._main())
        except BaseException as e:  # surfaced by start()
            self._error = e
            self._ready.set()
        finally:
            loop.close()

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        if self.config.startup_delay:
            await asyncio.sleep(self.config.startup_delay)
        self.app = create_app(self.config)
        runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await runner.setup()
        await web.SockSite(runner, self._sock).start()
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await runner.cleanup()

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None and self._loop.is_running():
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(10)
        self._sock.close()  # never served (not started), or already closed by the server
        self.config.remove_own_folder()  # a temp folder of its own (no directories given)

    def __enter__(self) -> EmulatorThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
