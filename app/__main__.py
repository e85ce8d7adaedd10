"""`python -m app`: start the WanPod studio.

With RUNPOD_API_KEY and RUNPOD_ENDPOINT_ID set, it talks to that RunPod endpoint (RUNPOD_API_BASE
may point at another control plane, e.g. the local one). With neither set it starts the local stack
(ComfyUI emulator + local RunPod control plane + real worker processes) and the page says plainly
that it runs in demo mode with synthetic video. GRADIO_ANALYTICS_ENABLED defaults to False,
GRADIO_ANALYTICS_CACHE_FREQUENCY to 1000000 (see main()).
`--share` adds a Gradio share link. Login, bind and root path come from app/access.py: a public
bind or share link without APP_AUTH is refused here, before anything starts (exit 2).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import logging
import os
import secrets
import signal
import sys
import threading
from collections.abc import Mapping
from contextlib import ExitStack
from pathlib import Path
from typing import Any

log = logging.getLogger("wanpod.app")


def assemble(settings: Any, base_url: str, api_key: str, demo_mode: bool) -> tuple[Any, Any]:
    """Build the services and the Blocks; returns (blocks, studio). Starts the tracker."""
    from app.endpoint import EndpointClient
    from app.studio import cost
    from app.studio.chains import Chains
    from app.studio.checks.gate import Gate
    from app.studio.fetch import Fetcher
    from app.studio.forms_catalog import load_forms
    from app.studio.jobs import Studio
    from app.studio.ledger import Ledger
    from app.studio.store import open_store
    from app.studio.tracker import NOT_FOUND_S, Tracker
    from app.ui.page import build_ui
    from workflows.fill import fill

    prices = cost.load_prices(settings.prices_path)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    forms, byo_fill = load_forms()
    # the shared ledger (or the data folder's SQLite file), migrated forward on open
    ledger = Ledger(settings.shared.ledger_url(settings.data_dir), forms=forms)
    endpoint = EndpointClient(base_url, api_key)
    tracker = Tracker(
        ledger,
        endpoint,
        settings.data_dir,
        prices,
        poll_s=settings.poll_s,
        secrets=settings.secret_values(),
        lease_s=settings.shared.lease_s,
        store=open_store(settings.shared, settings.data_dir / "results"),
        max_execution_s=settings.guardrails.ceiling_s,
        fetcher=Fetcher(settings.fetch),
        # a demo studio's local stack is new at each start and knows no earlier job: one
        # it does not know is gone (after three answers), not in a 404 burst of RunPod's
        not_found_s=0.0 if demo_mode else NOT_FOUND_S,
    )
    studio = Studio(
        settings=settings,
        forms=forms,
        fill=fill,
        byo_fill=byo_fill,
        endpoint=endpoint,
        ledger=ledger,
        tracker=tracker,
        prices=prices,
        ops=Gate.from_settings(settings, endpoint=endpoint, ledger=ledger, endpoint_key=base_url),
    )
    tracker.on_final = studio.forget_calibration
    chains = Chains(studio)
    chains.attach(tracker)  # the next segment of a chain is sent when the previous one is stored
    tracker.start()
    chains.resume()  # chains left unfinished by a stopped studio carry on
    studio.ops.warm_up()  # the endpoint's inventory, fetched before the first job needs it
    return build_ui(studio, demo_mode, browser_key(settings.data_dir), chains), studio


def browser_key(data_dir: Path) -> str:
    """A random value kept in the data folder (stable across restarts); see ui.build_ui."""
    path = data_dir / "browser-state.key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(16))
    return path.read_text().strip()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m app", description="Start the WanPod studio.")
    ap.add_argument(
        "--share",
        action="store_true",
        help="also open a public Gradio share link (needs APP_AUTH, see docs/operating.md)",
    )
    return ap.parse_args(argv)


def main(env: Mapping[str, str] | None = None, argv: list[str] | None = None) -> int:
    if argv is None:  # the command line only when run as `python -m app`
        argv = sys.argv[1:] if env is None else []
    args = parse_args(argv)
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    # Gradio's queue recomputes a pandas summary of up to 10,000 past events after EVERY event
    # (for its /monitoring dashboard, unused here): ~10 ms of CPU per health tick or job update
    # in a long-running studio. Recompute it at most every million events instead.
    os.environ.setdefault("GRADIO_ANALYTICS_CACHE_FREQUENCY", "1000000")
    env = dict(os.environ if env is None else env)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    from app.environment import Secret
    from app.errors import MB, StudioError, user_message
    from app.settings import Settings

    try:
        settings = Settings.from_env(env)
        if args.share:
            settings = dataclasses.replace(
                settings, access=dataclasses.replace(settings.access, share=True)
            )
        access_kwargs = settings.access.launch_kwargs(settings.host)  # refuses public, no login
        from app.studio.ledger_check import check_ledger

        ledger_url = settings.shared.ledger_url(settings.data_dir)
        if ledger_url.startswith("sqlite:///"):  # a SQLite file: damaged or emptied, say what to do
            check_ledger(Path(ledger_url.removeprefix("sqlite:///")))
    except StudioError as exc:
        print(f"wanpod studio: {user_message(exc)}", file=sys.stderr)
        return 2
    with ExitStack() as stack:
        if settings.demo:
            if importlib.util.find_spec("emulators") is None:  # e.g. the Docker image / a Space
                print(
                    "wanpod studio: set RUNPOD_API_KEY and RUNPOD_ENDPOINT_ID (Space secrets); "
                    "the demo mode needs the full repository (emulators/ and worker/)",
                    file=sys.stderr,
                )
                return 2
            from app.demo import start_local_stack

            local = stack.enter_context(start_local_stack(settings))
            base_url, api_key = local.base_url, local.api_key
            settings = dataclasses.replace(  # the local key is scrubbed like a real one
                settings, extra_secrets=(*settings.extra_secrets, Secret(api_key))
            )
            log.info("demo mode: local stack at %s", local.base_url)
        else:
            base_url, api_key = settings.base_url, settings.api_key.value
        from app.ui.static_paths import serve_in_place

        results = str((settings.data_dir / "results").resolve())
        serve_in_place(results)  # served where stored, checked first (app/ui/static_paths.py)
        try:
            blocks, studio = assemble(settings, base_url, api_key, settings.demo)
        except StudioError as exc:  # e.g. the ledger's database out of reach
            print(f"wanpod studio: {user_message(exc, settings.secret_values())}", file=sys.stderr)
            return 2
        except OSError as exc:  # its data folder cannot be made or written
            where, why = exc.filename or settings.data_dir, exc.strerror or type(exc).__name__
            print(f"wanpod studio: {where} cannot be used ({why}); set WANPOD_DATA_DIR to a "
                  "folder the studio can write", file=sys.stderr)  # fmt: skip
            return 2
        stack.callback(studio.tracker.stop)
        from app.ui.queue_pace import queue_up

        # Gradio's queue loops would wake 1000 times a second, idle or not, and send every
        # waiting event its position each time one starts (app/ui/queue_pace.py)
        queue_up(blocks, settings.concurrency)
        from starlette.middleware import Middleware

        from app.studio.webhooks import Webhooks
        from app.ui.early_script import RAF_FIX_JS, EarlyScript
        from app.ui.guards import LOGIN_NOTICE_JS, FileGuard, SignInGuard
        from app.ui.health_route import HealthRoute
        from app.ui.live_route import LiveRoute
        from app.ui.page import CSS
        from app.ui.webhook_route import WebhookRoute

        hooks = Webhooks(studio.ledger, studio.tracker)  # RunPod's calls (WANPOD_PUBLIC_URL)
        blocks.launch(
            css=CSS,  # Gradio 6 takes the page's CSS at launch, not in Blocks()
            server_name=settings.host,
            server_port=settings.port,
            max_threads=settings.concurrency * 2 + 40,
            allowed_paths=[results],
            show_error=True,
            run_history=False,
            prevent_thread_lock=True,
            quiet=False,
            footer_links=["api", "gradio"],
            max_file_size=settings.max_upload_mb * MB,  # Gradio refuses bigger uploads
            # each browser session keeps a copy of the page's component config (~0.25 MB) until
            # Gradio evicts the least recently used beyond this many (its default: 10,000)
            state_session_capacity=settings.sessions,
            # the fix for Gradio's idle frame loop must run before Gradio's own scripts; a job's
            # stored files for the users who may see the job; failed sign-ins throttled; RunPod's
            # webhooks (WANPOD_PUBLIC_URL); a page's live stream of its job and its endpoint
            # health
            app_kwargs={
                "middleware": [
                    Middleware(EarlyScript, script=RAF_FIX_JS + LOGIN_NOTICE_JS),
                    Middleware(FileGuard, studio=studio),
                    Middleware(SignInGuard),
                    Middleware(WebhookRoute, webhooks=hooks),
                    Middleware(LiveRoute, studio=studio),
                    Middleware(HealthRoute, studio=studio),
                ]
            },
            **access_kwargs,  # auth, share, root_path (app/access.py)
        )
        from app.ui.sessions import lazy

        lazy(blocks)  # a new session's page config is built as Gradio reads it, not up front
        from app.ui import serving

        serving.report(blocks.server)  # httptools and uvloop, or a warning
        serving.settle()  # the built studio out of the garbage collector's view
        done = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: done.set())
        done.wait()
        blocks.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
