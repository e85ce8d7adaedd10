"""A small ComfyUI client for the emulator tests: HTTP with requests, websocket with
websocket-client, and helpers to turn recordings into comparable shapes."""

from __future__ import annotations

import json
import uuid
import weakref
from dataclasses import dataclass, field
from typing import Any

import requests
import websocket

from tests.helpers import RECORDINGS


def recording(name: str) -> dict[str, Any]:
    return json.loads((RECORDINGS / f"{name}.json").read_text())


def label(msg: dict[str, Any]) -> str:
    """The compact form the recordings' `ws_type_sequence` uses."""
    t, d = msg["type"], msg.get("data") or {}
    if t == "executing":
        return f"executing(node={d.get('node') if d.get('node') is not None else 'None'})"
    if t == "progress_state":
        return (
            "progress_state(" + ",".join(f"{k}:{v['state']}" for k, v in d["nodes"].items()) + ")"
        )
    return t


def recorded_ws(rec: dict[str, Any]) -> list[dict[str, Any]]:
    return [e["json"] for e in rec["events"] if e["kind"] == "ws_text"]


def recorded_http(rec: dict[str, Any], method: str, path: str) -> list[dict[str, Any]]:
    return [
        e
        for e in rec["events"]
        if e["kind"] == "http" and e["request"]["method"] == method and e["request"]["path"] == path
    ]


def key_shape(value: Any) -> Any:
    """Keys (recursively) and value kinds, to compare shapes without volatile values."""
    if isinstance(value, dict):
        return {k: key_shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [key_shape(v) for v in value[:1]]
    return type(value).__name__ if value is not None else None


@dataclass
class Comfy:
    base_url: str
    session: requests.Session = field(default_factory=requests.Session)

    @property
    def ws_base(self) -> str:
        return self.base_url.replace("http://", "ws://")

    def get(self, path: str, **kw: Any) -> requests.Response:
        return self.session.get(self.base_url + path, timeout=10, **kw)

    def post(self, path: str, **kw: Any) -> requests.Response:
        return self.session.post(self.base_url + path, timeout=10, **kw)

    def config(self, **knobs: Any) -> dict[str, Any]:
        r = self.post("/emulator/config", json=knobs)
        assert r.status_code == 200, r.text
        return r.json()

    def connect(self, client_id: str | None = None, timeout: float = 15) -> Socket:
        cid = client_id or uuid.uuid4().hex
        ws = websocket.create_connection(f"{self.ws_base}/ws?clientId={cid}", timeout=timeout)
        return Socket(ws, cid)

    def queue_prompt(self, prompt: dict[str, Any], client_id: str | None, **extra: Any) -> dict:
        body: dict[str, Any] = {"prompt": prompt, **extra}
        if client_id is not None:
            body["client_id"] = client_id
        r = self.post("/prompt", json=body)
        assert r.status_code == 200, r.text
        return r.json()

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> Comfy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def upload(self, name: str, data: bytes, **form: str) -> requests.Response:
        return self.post("/upload/image", files={"image": (name, data, "image/png")}, data=form)


def close_later(c: Comfy) -> None:
    """Close the client's HTTP session when the client object goes away."""
    weakref.finalize(c, c.session.close)


@dataclass
class Socket:
    ws: websocket.WebSocket
    client_id: str
    messages: list[dict[str, Any]] = field(default_factory=list)

    def recv(self) -> dict[str, Any]:
        raw = self.ws.recv()
        if not raw:  # websocket-client returns "" for the server's close frame
            raise websocket.WebSocketConnectionClosedException("closed by the server")
        msg = json.loads(raw)
        self.messages.append(msg)
        return msg

    def until(self, pred: Any) -> dict[str, Any]:
        while True:
            m = self.recv()
            if pred(m):
                return m

    def until_done(self, prompt_id: str) -> list[dict[str, Any]]:
        """Receive until `executing {node: null}` for prompt_id; return all messages so far."""
        self.until(
            lambda m: (
                m["type"] == "executing"
                and m["data"].get("node") is None
                and m["data"].get("prompt_id") == prompt_id
            )
        )
        return self.messages

    def labels(self) -> list[str]:
        return [label(m) for m in self.messages]

    def close(self) -> None:
        self.ws.close()

    def __enter__(self) -> Socket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
