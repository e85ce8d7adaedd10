"""RunPod's webhook, verified: with WANPOD_PUBLIC_URL set, every /run carries
`<public>/wanpod/webhook/<row id>?token=<per-job secret>` and RunPod POSTs the job's final /status
body there. The studio keeps only the secret's SHA-256 in the ledger row (`webhook_digest`).

`receive(rid, token, body)` accepts a webhook when the body names the row's RunPod job and the
token matches the stored digest; the digest is cleared in the same atomic UPDATE, so a replayed
webhook (or a second replica receiving the same one) finds nothing to match and is refused, as is
a forged one (wrong token, another job's body, an unknown row). An accepted webhook does not trust
the body: it makes the tracker ask RunPod for the job's status at once (with the API key), so the
final state and the result are recorded without waiting for the next poll. Polling stays the
fallback when a webhook never comes. `expects(rid, token)` checks the token without using it up,
so the route (app/ui/webhook_route.py) refuses a forged call before reading its body.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from typing import Any

from app.studio.ledger import Ledger

PATH = "/wanpod/webhook/"  # the route under the studio's public URL (app/ui/webhook_route.py)
TOKEN_BYTES = 24


@dataclass(frozen=True)
class Answer:
    status: int  # HTTP status for the caller
    text: str


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def webhook_url(public_url: str, rid: str, token: str) -> str:
    return f"{public_url.rstrip('/')}{PATH}{rid}?token={token}"


class Webhooks:
    refused = Answer(403, "refused: wrong or already used webhook token")

    def __init__(self, ledger: Ledger, tracker: Any) -> None:
        self.ledger = ledger
        self.tracker = tracker

    def expects(self, rid: str, token: str) -> bool:
        """True when `token` is row `rid`'s unused webhook secret (read only: nothing is used
        up), checked before a webhook's body is read."""
        return bool(token) and self.ledger.has_webhook(rid, digest(token))

    def receive(self, rid: str, token: str, body: bytes) -> Answer:
        try:
            job_id = json.loads(body or b"{}").get("id")
        except (ValueError, AttributeError, RecursionError):
            return Answer(400, "the webhook body is not a RunPod status object")
        row = self.ledger.get(rid, workflow=False)
        if row is None or not token or not job_id or job_id != row.job_id:
            return Answer(403, "refused: unknown job, or the body is not this job's")
        if not self.ledger.take_webhook(rid, digest(token)):
            return self.refused
        self.tracker.poke(rid)
        return Answer(200, "recorded")
