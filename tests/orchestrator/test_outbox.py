"""The tracker's outbox: writes sent in order, held through an outage, kept across a restart."""
from __future__ import annotations

import threading
import time

from orchestrator.outbox import Outbox


class Server:
    """A stand-in for the tracking server that can be taken down; records what reached it."""

    def __init__(self):
        self.up = threading.Event()
        self.up.set()
        self.got: list[dict] = []

    def send(self, op: dict):
        if not self.up.is_set():
            raise ConnectionError("connection refused")
        if op.get("bad"):
            raise ValueError("refused for good")
        self.got.append(op)
        return f"run-{op['key']}" if op["op"] == "create_run" else None


def outage(exc: BaseException) -> bool:
    return isinstance(exc, ConnectionError)


def test_writes_arrive_in_order_after_an_outage(tmp_path):
    server = Server()
    box = Outbox(tmp_path / "outbox.json", server.send, outage, give_up_s=30)
    server.up.clear()
    start = time.monotonic()
    for step in range(5):
        box.put({"op": "log_batch", "key": "t1", "step": step})
    assert time.monotonic() - start < 0.5          # put never waits for the server
    time.sleep(0.5)
    assert server.got == [] and len(box.pending) == 5
    server.up.set()
    assert box.flush(10)
    assert [op["step"] for op in server.got] == [0, 1, 2, 3, 4]
    assert box.outages == 1


def test_pending_writes_and_run_ids_survive_a_restart(tmp_path):
    server = Server()
    box = Outbox(tmp_path / "outbox.json", server.send, outage, give_up_s=30)
    box.put({"op": "create_run", "key": "t1"})
    assert box.flush(10) and box.ids == {"t1": "run-t1"}
    server.up.clear()
    box.put({"op": "log_batch", "key": "t1", "step": 1})
    time.sleep(0.3)
    again = Outbox(tmp_path / "outbox.json", server.send, outage, give_up_s=30)   # a new driver
    assert again.ids == {"t1": "run-t1"} and [op["step"] for op in again.pending] == [1]
    server.up.set()
    assert again.flush(10) and server.got[-1] == {"op": "log_batch", "key": "t1", "step": 1}


def test_an_outage_past_the_timeout_fails_and_keeps_the_writes(tmp_path):
    server = Server()
    server.up.clear()
    box = Outbox(tmp_path / "outbox.json", server.send, outage, give_up_s=1.0)
    box.put({"op": "log_batch", "key": "t1"})
    assert not box.flush(5)
    assert "could not be reached for 1 s" in box.failed and "failure.tracking_timeout_s" in box.failed
    assert len(box.pending) == 1
    server.up.set()
    assert box.flush(5) and box.failed is None and len(server.got) == 1


def test_a_refused_write_is_dropped_and_the_rest_still_go(tmp_path, capsys):
    server = Server()
    box = Outbox(tmp_path / "outbox.json", server.send, outage, give_up_s=30)
    box.put({"op": "log_batch", "key": "t1", "bad": True})
    box.put({"op": "log_batch", "key": "t1", "step": 2})
    assert box.flush(10)
    assert server.got == [{"op": "log_batch", "key": "t1", "step": 2}]
    assert "dropped log_batch" in capsys.readouterr().err
