"""Process trees by pid, read from /proc (no psutil): what the dev stack stops, and what fault
tests kill. Only the processes named (and their descendants) are touched.
"""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path


def children() -> dict[int, list[int]]:
    """ppid -> pids, read from /proc."""
    out: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            out.setdefault(ppid, []).append(int(entry))
    return out


def tree(pid: int) -> list[int]:
    """`pid` and every live descendant, parents first."""
    if not alive(pid):
        return []
    kids, out = children(), [pid]
    for p in out:
        out.extend(kids.get(p, []))
    return out


def send(pids: list[int], sig: int) -> None:
    for p in pids:
        try:
            os.kill(p, sig)
        except ProcessLookupError:
            pass


def kill_tree(*pids: int, sig: int = signal.SIGTERM, grace: float = 10.0) -> None:
    """Send `sig` to each of `pids` and their descendants; SIGKILL whatever still lives after `grace` s."""
    procs = [p for pid in pids for p in tree(pid)]
    send(procs, sig)
    deadline = time.time() + grace
    while any(map(alive, procs)) and time.time() < deadline:
        time.sleep(0.1)
    send([p for p in procs if alive(p)], signal.SIGKILL)
    for pid in pids:
        reap(pid)


def reap(pid: int) -> None:
    try:   # our own child: collect it so it does not linger as a zombie
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def alive(pid: int | None) -> bool:
    """The process exists and is not a zombie."""
    if not pid:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")
