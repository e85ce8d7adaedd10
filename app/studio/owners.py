"""Who may see a job: the caller every job lookup of the studio takes.

Under APP_AUTH each job belongs to the signed-in user who sent it (the ledger's `user`): a user
sees, opens, attaches, reruns, reuses, cancels, promotes and downloads only their own jobs; a user
named in APP_ADMINS sees everyone's. Without APP_AUTH the studio has one operator (it listens on
loopback only, app/access.py) who sees every job.

`Caller.of(username, access)` is built once per request from what Gradio says about the login;
`caller.sees(row_user)` is the one rule, and `caller.scope` the ledger filter for listings (None:
every user's rows). A job the caller may not see is answered exactly like an unknown job, so its
id does not tell whether it exists.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# a listing filter no row matches: APP_AUTH's user names hold no ":" (app/access.py); "\0" would
# be refused by PostgreSQL in a query's text
NOBODY = ":"


@dataclass(frozen=True)
class Caller:
    user: str | None = None  # the signed-in user; None only without APP_AUTH
    admin: bool = False  # named in APP_ADMINS, or no login at all: sees every job

    @classmethod
    def of(cls, username: str | None, access: Any) -> Caller:
        """The caller for Gradio's `request.username` under `access` (app/access.py)."""
        if not access.auth_enabled:
            return cls(None, admin=True)
        name = username or ""  # under APP_AUTH Gradio lets no one in unsigned; "" sees nothing
        return cls(name, admin=bool(name) and name in access.admins)

    def sees(self, row_user: str | None) -> bool:
        """True when a job sent by `row_user` is this caller's to see."""
        return self.admin or (bool(self.user) and row_user == self.user)

    @property
    def scope(self) -> str | None:
        """The ledger's user filter for listings: None = every user's jobs."""
        return None if self.admin else (self.user or NOBODY)


ANYONE = Caller(None, admin=True)  # the operator's own tools (CLI, tracker): every job


def result_holder(results: Path, raw: str) -> str | None:
    """The job or chain id whose folder under `results` (a real path) holds the file `raw`:
    `<results>/<job id>/...`, `<results>/chains/<chain id>/...` ("-" for the chains folder
    itself); "" for a shared file (a `_`-prefixed folder: the gallery's placeholders); None
    when `raw` is not under `results`. `raw` is read as Gradio opens it: its `..` taken away
    by the letters first (os.path.abspath, gradio.utils.abspath), links resolved after;
    resolved the other way round, `/bin/../<results>/<job>/video.mp4` (`/bin` a link to
    `usr/bin`) read as `/usr/<results>/...`, not a result, while Gradio served the job's file."""
    try:
        target = Path(os.path.realpath(os.path.abspath(raw)))
        rel = target.relative_to(results)
    except (ValueError, OSError):
        return None
    parts = rel.parts
    if parts[:1] == ("chains",):
        return parts[1] if len(parts) > 2 else "-"
    first = parts[0] if parts else ""
    return "" if not first or first.startswith("_") else first
