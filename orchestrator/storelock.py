"""One sweep at a time on a SQLite store: the laptop default (mlflow.db, optuna.db) is a file
that two writers would fight over ("database is locked" mid-sweep).

`lock_stores` takes an exclusive `flock` on `FILE.lock` beside each SQLite file a sweep writes
(its MLflow store and its Optuna study) before anything starts; a second sweep on the same
file is refused at once, naming it. The kernel drops the lock when the process ends, crashes
and SIGKILL included, so a stale lock file never blocks the next sweep.
"""
from __future__ import annotations

import fcntl
import os
from pathlib import Path

_held: list[int] = []   # open lock files, kept for the life of the process


class StoreBusy(RuntimeError):
    """Another sweep holds the store."""


def sqlite_file(uri: str | None) -> Path | None:
    """The file of a `sqlite:///PATH` URL (SQLAlchemy or MLflow spelling), else None."""
    if not uri or not uri.startswith("sqlite:///"):
        return None
    path = uri[len("sqlite:///"):].split("?", 1)[0]
    if not path or path == ":memory:":
        return None
    return Path(path).expanduser().resolve()


def lock_stores(*uris: str | None) -> list[Path]:
    """Lock every SQLite file among `uris` for this process; raises StoreBusy naming a held one."""
    files = sorted({f for f in map(sqlite_file, uris) if f is not None})
    for db in files:
        db.parent.mkdir(parents=True, exist_ok=True)
        lock = db.with_name(db.name + ".lock")
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise StoreBusy(f"the store {db} is in use by another sweep (pid {holder}, lock {lock}); "
                            f"wait for it to end, or give this sweep its own tracking.uri / tracking.study_storage") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        _held.append(fd)
    return files
