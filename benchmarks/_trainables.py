"""Trainables for the benchmarks: `surnn.trainable.Trainable`s with a known running time.

`timed_train` sleeps `epoch_seconds` per epoch for `epochs` epochs, so a trial takes
epochs * epoch_seconds plus whatever the sweep machinery adds. After each epoch it
reports `epoch` and two objectives that are a known function of `gate_threshold`
(x in [0, 1]): val_accuracy = x * (1 - exp(-epoch / 2)) (maximise) and
update_rate = x**2 (minimise). With `checkpoint_kb` > 0 it writes a checkpoint of that
size to its `checkpoint_dir` each epoch and hands it to Ray (as surnn.train does).
"""
from __future__ import annotations

import math
import time
from pathlib import Path

from surnn.trainable import SettingError, Trainable

REPORTED = {"epoch", "val_accuracy", "update_rate"}


def _timed_train(config: dict, report) -> dict:
    x = float(config["gate_threshold"])
    epochs = int(config["epochs"])
    epoch_seconds = float(config["epoch_seconds"])
    checkpoint_kb = int(config.get("checkpoint_kb", 0))
    ckpt = Path(config["checkpoint_dir"]) if config.get("checkpoint_dir") and checkpoint_kb > 0 else None
    start = 0
    if ckpt is not None and (ckpt / "epoch.txt").exists():
        start = int((ckpt / "epoch.txt").read_text())
    metrics: dict = {}
    for epoch in range(start + 1, epochs + 1):
        time.sleep(epoch_seconds)
        metrics = {"epoch": epoch, "val_accuracy": x * (1 - math.exp(-epoch / 2)), "update_rate": x * x}
        if ckpt is not None:
            ckpt.mkdir(parents=True, exist_ok=True)
            (ckpt / "weights.bin").write_bytes(b"\0" * (checkpoint_kb * 1024))
            (ckpt / "epoch.txt").write_text(str(epoch))
        report(metrics, checkpoint_dir=str(ckpt) if ckpt is not None else None)
    return {**metrics, "status": "completed"}


class TimedTrainable(Trainable):
    def train(self, config: dict, report) -> dict:
        return _timed_train(config, report)

    def validate(self, config: dict) -> None:
        for key in ("gate_threshold", "epochs", "epoch_seconds"):
            if key not in config:
                raise SettingError(key, "required by the timed benchmark trainable")

    def reports(self, config: dict) -> set[str]:
        return set(REPORTED)


timed_train = TimedTrainable()
