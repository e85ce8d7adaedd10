"""The early script (app/ui/early_script.py) reaches the page's <head> before Gradio's own scripts,
and nothing else the server answers is touched."""

from __future__ import annotations

import gzip
import urllib.request

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from app.ui.early_script import RAF_FIX_JS, EarlyScript, inject

PAGE = (
    "<!doctype html><html><head><meta charset='utf-8'>"
    "<script type='module' src='a.js'></script></head><body></body></html>"
)


def test_inject_puts_the_script_first_in_head():
    out = inject(PAGE.encode(), "X()").decode()
    assert out.startswith("<!doctype html><html><head><script>X()</script><meta")
    assert out.index("X()") < out.index("type='module'")
    assert inject(b"no head here", "X()") == b"no head here"


def _client() -> TestClient:
    async def page(request):
        return HTMLResponse(PAGE)

    async def data(request):
        return JSONResponse({"html": "<head>"})

    async def zipped(request):
        return Response(
            gzip.compress(PAGE.encode()),
            media_type="text/html",
            headers={"Content-Encoding": "gzip"},
        )

    async def chunks(request):
        async def parts():
            yield b"<html><head>"
            yield b"</head></html>"

        return StreamingResponse(parts(), media_type="text/html")

    app = Starlette(
        routes=[
            Route("/", page, methods=["GET", "POST"]),
            Route("/data", data),
            Route("/zipped", zipped),
            Route("/chunks", chunks),
        ],
        middleware=[Middleware(EarlyScript)],
    )
    return TestClient(app)


def test_middleware_serves_html_pages_with_the_script_and_a_right_length():
    client = _client()
    r = client.get("/")
    assert r.text == inject(PAGE.encode()).decode()
    assert int(r.headers["content-length"]) == len(r.content)
    assert RAF_FIX_JS.strip() in r.text
    streamed = client.get("/chunks")
    assert streamed.text.startswith("<html><head><script>") and streamed.text.endswith(
        "</head></html>"
    )


def test_middleware_leaves_other_answers_alone():
    client = _client()
    assert client.get("/data").json() == {"html": "<head>"}
    assert client.post("/").text == PAGE
    zipped = client.get("/zipped", headers={"Accept-Encoding": "gzip"})
    assert zipped.text == PAGE  # decoded by the client, unchanged by the middleware


def test_the_studio_page_has_the_script_before_gradio(studio):
    with urllib.request.urlopen(studio.base_url + "/", timeout=30) as r:
        page = r.read().decode()
    head = page.index("<head>") + len("<head>")
    assert page[head:].startswith("<script>" + RAF_FIX_JS)
    assert page.index(RAF_FIX_JS) < page.index('type="module"')
