"""The studio's webhook route, `POST <root>/wanpod/webhook/<row id>?token=...`, as ASGI middleware
next to Gradio's app (app/studio/webhooks.py verifies and records). Everything else passes through
to Gradio untouched.

The route needs no sign-in (RunPod calls it), so a request is answered before its body is read
unless its token is the row's (`Webhooks.expects`, read-only: the token is used up only once the
body is read and names the row's job) and its announced length is within MAX_BODY; the body is
read in chunks joined once (adding each chunk to the bytes so far copied them all again, seconds
of the event loop for one slow anonymous POST of tens of MB)."""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse

from app.studio.webhooks import PATH, Webhooks

MAX_BODY = 64 << 20  # a final /status body with base64 outputs can be large; more is refused
TOO_LARGE = f"body too large (at most {MAX_BODY >> 20} MB)"


class WebhookRoute:
    def __init__(self, app: Any, webhooks: Webhooks) -> None:
        self.app = app
        self.webhooks = webhooks

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        _, found, rid = path.rpartition(PATH)
        if not found or scope.get("method") != "POST":
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        token = request.query_params.get("token", "")
        if not await run_in_threadpool(self.webhooks.expects, rid, token):
            answer = self.webhooks.refused
            await JSONResponse({"detail": answer.text}, answer.status)(scope, receive, send)
            return
        announced = request.headers.get("content-length", "")
        if announced.isdigit() and int(announced) > MAX_BODY:
            await JSONResponse({"detail": TOO_LARGE}, 413)(scope, receive, send)
            return
        chunks, size = [], 0
        async for chunk in request.stream():
            chunks.append(chunk)
            size += len(chunk)
            if size > MAX_BODY:
                await JSONResponse({"detail": TOO_LARGE}, 413)(scope, receive, send)
                return
        answer = await run_in_threadpool(self.webhooks.receive, rid, token, b"".join(chunks))
        await JSONResponse({"detail": answer.text}, answer.status)(scope, receive, send)
