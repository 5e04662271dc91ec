"""The Ray side of one trial: run the spec's trainable and forward its reports to Ray Tune.

The contract a trainable keeps is `surnn.trainable.Trainable` (described there). The sweep
adds two keys to every config: `checkpoint_dir`, a folder private to the trial that already
holds the trial's last reported checkpoint when Ray resumes it, and `num_threads`, the CPUs
the trial was granted (torch would otherwise take every core and concurrent trials would
slow each other down many times over). A return value with "status": "diverged" counts as
a failure, so Ray retries the trial. With `failure.report_timeout_s`, the trainable runs in a
thread watched by the trial: no report (or end) for that long raises `TrialHung`, a failure
like any other, and Ray ends the trial's actor and the hung thread with it.
"""
from __future__ import annotations

import queue
import shutil
import threading
from pathlib import Path
from typing import Callable

from ray import tune

from surnn.trainable import FIDELITY, load_trainable

SCALARIZED = "scalarized"   # the single metric that plain ASHA ranks by, when the spec asks for it


class TrialDiverged(RuntimeError):
    """The trainable reported a non-finite loss."""


class TrialHung(RuntimeError):
    """The trainable went `failure.report_timeout_s` without a report."""


def make_trial_fn(trainable_ref: str, fixed: dict, cpus: float, scalarize: dict | None = None,
                  report_timeout_s: float | None = None) -> Callable[[dict], None]:
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

        def report(metrics: dict, checkpoint_dir: str | None = None) -> None:
            metrics = dict(metrics)
            if scalarize:
                metrics[SCALARIZED] = sum(w * float(metrics[m]) for m, w in scalarize.items())
            checkpoint = tune.Checkpoint.from_directory(checkpoint_dir) if checkpoint_dir else None
            tune.report(metrics, checkpoint=checkpoint)

        if report_timeout_s is None:
            result = trainable.train(config, report)
        else:
            result = _watched(lambda rep: trainable.train(config, rep), report, report_timeout_s)
        if isinstance(result, dict) and result.get("status") == "diverged":
            raise TrialDiverged(f"the loss stopped being finite at epoch {result.get(FIDELITY)}")

    return run_trial


def _watched(train: Callable, report: Callable, timeout_s: float):
    """Run `train(report)` in a daemon thread; its reports reach `report` on this thread.

    Raises TrialHung when neither a report nor the end comes within `timeout_s` seconds.
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
    while True:
        try:
            kind, value, ack = events.get(timeout=timeout_s)
        except queue.Empty:
            raise TrialHung(f"no report for {timeout_s:g} s (failure.report_timeout_s): killed as hung") from None
        if kind == "done":
            return value
        if kind == "error":
            raise value
        try:
            report(*value)
        finally:
            ack.set()
