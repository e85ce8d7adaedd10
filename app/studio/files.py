"""Files the studio writes whole: written under a temporary name beside them, then moved into
place in one step, so a reader (a page, another replica) never sees half a file.

`replacing(path)` gives the temporary name: unique to the call, not only to the process: two
threads of one studio writing the same file at once (64 pages asking for the same placeholder
thumbnail) each write their own and the last move wins, where a name per process had the
second move find the first's file already gone.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def replacing(path: Path) -> Iterator[Path]:
    """A temporary path to write `path`'s new content to; moved onto `path` when the block
    ends without an error, removed when it raises."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
