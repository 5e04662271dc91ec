"""The Ray side of one trial: run the spec's trainable and forward its reports to Ray Tune.

The contract a trainable keeps is `surnn.trainable.Trainable` (described there). The sweep
adds two keys to every config: `checkpoint_dir`, a folder private to the trial that already
holds the trial's last reported checkpoint when Ray resumes it, and `num_threads`, the CPUs
the trial was granted (torch would otherwise take every core and concurrent trials would
slow each other down many times over). A return value with "status": "diverged" counts as
a failure, so Ray retries the trial. With `failure.report_timeout_s`, the trainable runs in a
thread watched by the trial: no report (or end) for that long raises `TrialHung`, a failure
like any other, and Ray ends the trial's actor and the hung thread with it. With
`failure.max_memory_mb` the same watcher reads the trial process's resident memory (RSS, from
/proc/self/status) every `MEMORY_POLL_S`: past the limit it raises `TrialOutOfMemory`, and the
leaked memory goes with the actor (Ray never reuses the actor of a failed trial).

Trials keep the driver's working directory (see runner), so a trainable that writes a relative
path writes beside the user's spec. The wrapper lists that folder when the trial starts and at
every report; names new since the start (SQLite's own journal files aside) go into the report
as `STRAY_FILES`, which the tracker sets as the `sweep.stray_files` tag: a warning, the trial
goes on. Trials running at the same time share the folder, so each is told of what appeared
while it ran.
"""
from __future__ import annotations

import os
import queue
import shutil
import threading
import time
from pathlib import Path
from typing import Callable

from ray import tune

from surnn.trainable import FIDELITY, load_trainable

SCALARIZED = "scalarized"   # the single metric that plain ASHA ranks by, when the spec asks for it
STRAY_FILES = "stray_files"  # report key: files the trial wrote into the working directory
MEMORY_POLL_S = 0.25        # how often the watcher reads the trial's RSS
_SQLITE_SIDECARS = ("-journal", "-wal", "-shm")


class TrialDiverged(RuntimeError):
    """The trainable reported a non-finite loss."""


class TrialHung(RuntimeError):
    """The trainable went `failure.report_timeout_s` without a report."""


class TrialOutOfMemory(RuntimeError):
    """The trial process's resident memory passed `failure.max_memory_mb`."""


def make_trial_fn(trainable_ref: str, fixed: dict, cpus: float, scalarize: dict | None = None,
                  report_timeout_s: float | None = None,
                  max_memory_mb: float | None = None) -> Callable[[dict], None]:
    """A Ray Tune function trainable running `trainable_ref` on `fixed` + the sampled parameters."""

    def run_trial(params: dict) -> None:
        trainable = load_trainable(trainable_ref)
        ckpt_dir = Path(tune.get_context().get_trial_dir()) / "trainer_checkpoint"
        restored = tune.get_checkpoint()
        if restored is not None:
            with restored.as_directory() as folder:
                shutil.copytree(folder, ckpt_dir, dirs_exist_ok=True)
        config = {**fixed, **params, "checkpoint_dir": str(ckpt_dir)}
        config.setdefault("num_threads", max(1, int(cpus)))
        before = _listing()

        def report(metrics: dict, checkpoint_dir: str | None = None) -> None:
            metrics = dict(metrics)
            stray = sorted(_listing() - before)
            if stray:
                metrics[STRAY_FILES] = ", ".join(stray)[:500]
            if scalarize:
                metrics[SCALARIZED] = sum(w * float(metrics[m]) for m, w in scalarize.items())
            checkpoint = tune.Checkpoint.from_directory(checkpoint_dir) if checkpoint_dir else None
            tune.report(metrics, checkpoint=checkpoint)

        if report_timeout_s is None and max_memory_mb is None:
            result = trainable.train(config, report)
        else:
            result = _watched(lambda rep: trainable.train(config, rep), report, report_timeout_s, max_memory_mb)
        if isinstance(result, dict) and result.get("status") == "diverged":
            raise TrialDiverged(f"the loss stopped being finite at epoch {result.get(FIDELITY)}")

    return run_trial


def _listing() -> set[str]:
    """The names in the working directory, SQLite's journal files left out."""
    try:
        return {n for n in os.listdir(".") if not n.endswith(_SQLITE_SIDECARS)}
    except OSError:
        return set()


def rss_mb() -> float | None:
    """This process's resident memory in MB (VmRSS of /proc/self/status); None where unreadable."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def _watched(train: Callable, report: Callable, timeout_s: float | None, max_memory_mb: float | None = None):
    """Run `train(report)` in a daemon thread; its reports reach `report` on this thread.

    Raises TrialHung when neither a report nor the end comes within `timeout_s` seconds (None:
    never), and TrialOutOfMemory once the process's RSS passes `max_memory_mb` (None: never).
    """
    events: queue.Queue = queue.Queue()

    def forward(metrics: dict, checkpoint_dir: str | None = None) -> None:
        ack = threading.Event()
        events.put(("report", (metrics, checkpoint_dir), ack))
        ack.wait()   # the checkpoint folder is persisted before the trainable may change it

    def body() -> None:
        try:
            events.put(("done", train(forward), None))
        except BaseException as exc:   # re-raised on the trial's thread with its traceback
            events.put(("error", exc, None))

    threading.Thread(target=body, name="trainable", daemon=True).start()
    poll = MEMORY_POLL_S if max_memory_mb is not None else timeout_s
    if timeout_s is not None:
        poll = min(poll, timeout_s)
    last = time.monotonic()
    while True:
        try:
            kind, value, ack = events.get(timeout=poll)
        except queue.Empty:
            _check_memory(max_memory_mb)
            if timeout_s is not None and time.monotonic() - last >= timeout_s:
                raise TrialHung(f"no report for {timeout_s:g} s (failure.report_timeout_s): killed as hung") from None
            continue
        last = time.monotonic()
        if kind == "done":
            return value
        if kind == "error":
            raise value
        _check_memory(max_memory_mb)   # the trainable waits on its ack; the actor ends with it
        try:
            report(*value)
        finally:
            ack.set()


def _check_memory(max_memory_mb: float | None) -> None:
    if max_memory_mb is None:
        return
    rss = rss_mb()
    if rss is not None and rss > max_memory_mb:
        raise TrialOutOfMemory(f"RSS {rss:.0f} MB exceeded failure.max_memory_mb={max_memory_mb:g}: killed")
