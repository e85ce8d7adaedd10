"""The studio's webhook route, `POST <root>/wanpod/webhook/<row id>?token=...`, as ASGI middleware
next to Gradio's app (app/studio/webhooks.py verifies and records). Everything else passes through
to Gradio untouched."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse

from app.studio.webhooks import PATH, Answer

MAX_BODY = 64 << 20  # a final /status body with base64 outputs can be large; more is refused


class WebhookRoute:
    def __init__(self, app: Any, receive_webhook: Callable[[str, str, bytes], Answer]) -> None:
        self.app = app
        self.receive_webhook = receive_webhook

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        _, found, rid = path.rpartition(PATH)
        if not found or scope.get("method") != "POST":
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY:
                await JSONResponse({"detail": "body too large"}, 413)(scope, receive, send)
                return
        token = request.query_params.get("token", "")
        answer = await run_in_threadpool(self.receive_webhook, rid, token, body)
        await JSONResponse({"detail": answer.text}, answer.status)(scope, receive, send)
