"""An ordered, persisted queue of tracking writes, sent by one background thread.

The sweep's driver must not stop while the tracking server is away (a restart, a network
blip): a Ray Tune callback that blocks holds every trial's next report. So the tracker puts
each write (an operation: a JSON-able dict) here and returns at once; one thread sends them
in the order they were put, and while the server cannot be reached it keeps them and retries
with backoff. Pending operations are written to a file after every change, so a sweep that
stops (or is killed) with writes still pending sends them when it is resumed.

After `give_up_s` seconds without reaching the server, `failed` says so and the thread stops
trying until `flush()` is called again; the sweep then ends with that error and `--resume`
completes the record.
"""
from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Callable


class Outbox:
    """Writes sent in order, held across an outage.

    Args:
        path: the JSON file that keeps the pending operations.
        send: applies one operation; raises when it cannot. An operation that makes a run returns
            its id, kept in `ids` under the operation's "key" (persisted with the queue, so a
            write is never made twice nor lost between the two files).
        is_outage: tells a server that cannot be reached (retry) from a bad operation (dropped).
        give_up_s: how long an outage may last before `failed` is set.
    """

    def __init__(self, path: Path, send: Callable[[dict], str | None], is_outage: Callable[[BaseException], bool],
                 give_up_s: float):
        self.path, self.send, self.is_outage, self.give_up_s = Path(path), send, is_outage, give_up_s
        saved = json.loads(self.path.read_text()) if self.path.exists() else {}
        self.pending: list[dict] = saved.get("pending", [])
        self.ids: dict[str, str] = saved.get("ids", {})
        self.failed: str | None = None
        self.outages = 0                      # how many times the server went away (for the console)
        self._lock = threading.Condition()
        self._thread: threading.Thread | None = None

    def put(self, op: dict) -> None:
        with self._lock:
            self.pending.append(op)
            self._persist()
            self._lock.notify_all()
        self._start()

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every pending write is sent (True), or the server is given up on / `timeout` passes (False)."""
        with self._lock:
            self.failed = None
        self._start()
        deadline = time.monotonic() + (timeout if timeout is not None else self.give_up_s + 60)
        with self._lock:
            while self.pending and self.failed is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._lock.wait(min(left, 0.5))
            return not self.pending

    def _start(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="tracking-outbox", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        down_since, delay = None, 0.5
        while True:
            with self._lock:
                while not self.pending:
                    if not self._lock.wait(30):
                        return          # idle: the thread ends; the next put starts another
                if self.failed is not None:
                    return
                op = self.pending[0]
            try:
                made = self.send(op)
            except Exception as exc:
                if not self.is_outage(exc):
                    self._drop(op, exc)
                    continue
                now = time.monotonic()
                if down_since is None:
                    down_since = now
                    self.outages += 1
                if now - down_since >= self.give_up_s:
                    with self._lock:
                        self.failed = (f"the tracking server could not be reached for {self.give_up_s:g} s "
                                       f"(failure.tracking_timeout_s; last error: {type(exc).__name__}); "
                                       f"{len(self.pending)} writes kept in {self.path}")
                        self._lock.notify_all()
                    return
                time.sleep(delay)
                delay = min(2 * delay, 5.0)
                continue
            down_since, delay = None, 0.5
            with self._lock:
                if made is not None:
                    self.ids[op["key"]] = made
                if self.pending and self.pending[0] is op:
                    self.pending.pop(0)
                self._persist()
                self._lock.notify_all()

    def _drop(self, op: dict, exc: BaseException) -> None:
        """An operation the server refuses for good: logged and skipped, so the rest still go."""
        import sys

        print(f"warning: tracking: dropped {op.get('op')} ({type(exc).__name__}: {str(exc)[:200]})", file=sys.stderr)
        with self._lock:
            if self.pending and self.pending[0] is op:
                self.pending.pop(0)
            self._persist()
            self._lock.notify_all()

    def _persist(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps({"pending": self.pending, "ids": self.ids}, default=str))
        os.replace(tmp, self.path)
