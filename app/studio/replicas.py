"""A studio replica's name in the ledger's leases, and whether the replica a name belongs to is
certainly gone.

`replica_id()` names this process: host, pid and a random part (unique per start), then, after
`~`, where it runs: the machine's boot, its process namespace, its pid and that process's start
time. A lease runs out `LEASE_S` after its holder last renewed it, and another replica takes the
job over then (app/studio/tracker.py). But a studio restarted on the same machine (killed, then
started again: systemd, a crash, the tests) can tell at once that the holder of its old leases
is dead: same boot and process namespace, and no process with that pid started at that time.
`certainly_gone(owner)` says so, and the tracker frees that owner's leases at once instead of
waiting up to `LEASE_S` for them. Where it cannot tell (another machine or container, another
boot, an older name without the `~` part, no /proc, a /proc that hides other users' processes),
it says False: the lease runs out as before.
"""

from __future__ import annotations

import os
import socket
import uuid
from pathlib import Path

PROC = Path("/proc")


def replica_id() -> str:
    """This process's name in the leases (see the module's text)."""
    name = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    where = process_key(os.getpid())
    return f"{name}~{where}" if where else name


def process_key(pid: int, proc: Path = PROC) -> str:
    """`boot.namespace.pid.start` of process `pid` ("" where /proc does not tell)."""
    here = _here(proc)
    start = _start_time(pid, proc)
    if here is None or start is None:
        return ""
    return f"{here[0]}.{here[1]}.{pid}.{start}"


def certainly_gone(owner: str, proc: Path = PROC) -> bool:
    """True only when the replica named `owner` ran on this machine since its last boot, in this
    process namespace, and its process is no longer there (no such pid, or a later process
    with the same pid)."""
    key = owner.split("/")[0].rpartition("~")[2] if "~" in owner else ""
    parts = key.split(".")
    if len(parts) != 4 or not parts[2].isdigit():
        return False
    boot, namespace, pid, start = parts
    if _here(proc) != (boot, namespace) or _hides_others(proc):
        return False
    now = _start_time(int(pid), proc)
    if now is None:
        return (proc / "self").is_dir() and not (proc / pid).exists()
    return now != start


def _here(proc: Path) -> tuple[str, str] | None:
    """(this machine's boot id, this process namespace's inode); None where /proc lacks them."""
    try:
        boot = (proc / "sys/kernel/random/boot_id").read_text().strip().replace("-", "")[:12]
        namespace = str(os.stat(proc / "self/ns/pid").st_ino)
    except OSError:
        return None
    return (boot, namespace) if boot else None


def _hides_others(proc: Path) -> bool:
    """True when /proc is mounted with `hidepid` (other users' processes look absent there)."""
    try:
        mounts = (proc / "mounts").read_text().splitlines()
    except OSError:
        return True
    for line in mounts:
        fields = line.split()
        if len(fields) > 3 and fields[1] == str(proc) and fields[2] == "proc":
            options = dict(o.partition("=")[::2] for o in fields[3].split(","))
            return options.get("hidepid", "0") not in ("0", "off")
    return False


def _start_time(pid: int, proc: Path) -> str | None:
    """When process `pid` started (clock ticks after boot, /proc/PID/stat's 22nd field)."""
    try:
        stat = (proc / str(pid) / "stat").read_text()
    except OSError:
        return None
    fields = stat.rpartition(")")[2].split()  # the name (field 2) may hold spaces
    return fields[19] if len(fields) > 19 else None
