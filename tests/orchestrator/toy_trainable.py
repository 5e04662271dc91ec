"""A cheap `surnn.trainable.Trainable`, for sweep tests.

Its two objectives are a known function of the config, so a test can compute the true front:
quality = x * (1 - exp(-epoch / 2)) (maximise) and update_rate = x**2 (minimise), x in [0, 1]
being `gate_threshold` here. `fail_below`: trials with x below it raise (every attempt);
`flaky_file`: a trial raises on its first attempt only (the file records attempts);
`hang_below`: trials with x below it stop reporting after their first epoch (sleep for an hour);
`leak_below`: trials with x below it keep `leak_mb_per_epoch` more MB resident every epoch (default 200);
`write_outside`: every trial writes `<write_outside>-<x>.txt` at a relative path (beside the spec) in its
first epoch;
`done_file`: every run of `train` that returns appends x to that file (a completion count).
`epoch_seconds`: the time one epoch takes (default $TOY_EPOCH_SECONDS, else 0.05), for tests
whose trials run on Ray nodes started before the test.
"""
from __future__ import annotations

import math
import os
import time
from pathlib import Path

from surnn.trainable import SettingError, Trainable

EPOCH_SECONDS = float(os.environ.get("TOY_EPOCH_SECONDS", "0.05"))


def _train(config: dict, report) -> dict:
    x = float(config["gate_threshold"])
    epochs = int(config.get("epochs", 4))
    if x < float(config.get("fail_below", -1.0)):
        raise RuntimeError(f"toy failure for x={x}")
    flaky = config.get("flaky_file")
    if flaky:
        marker = Path(flaky) / f"{x:.12f}"
        if not marker.exists():
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.write_text("1")
            raise RuntimeError("toy flaky failure, first attempt")
    ckpt = Path(config["checkpoint_dir"]) if config.get("checkpoint_dir") else None
    start = 0
    if ckpt and (ckpt / "epoch.txt").exists():
        start = int((ckpt / "epoch.txt").read_text())
    metrics = {}
    leaked = []
    for epoch in range(start + 1, epochs + 1):
        time.sleep(float(config.get("epoch_seconds", EPOCH_SECONDS)))
        if x < float(config.get("leak_below", -1.0)):   # written bytes, so the pages are resident
            leaked.append(b"\x01" * (int(config.get("leak_mb_per_epoch", 200)) << 20))
        if config.get("write_outside") and epoch == 1:
            Path(f"{config['write_outside']}-{x:.6f}.txt").write_text("written outside the trial folder\n")
        metrics = {"epoch": epoch, "val_accuracy": x * (1 - math.exp(-epoch / 2)), "update_rate": x * x,
                   "train_loss": 1.0 - x, "tokens_per_s": 1000.0}
        if ckpt:
            ckpt.mkdir(parents=True, exist_ok=True)
            (ckpt / "epoch.txt").write_text(str(epoch))
        report(metrics, checkpoint_dir=str(ckpt) if ckpt else None)
        if x < float(config.get("hang_below", -1.0)):
            time.sleep(3600)
    if config.get("done_file"):
        with open(config["done_file"], "a") as f:
            f.write(f"{x!r}\n")
    return {**metrics, "status": "completed"}


class ToyTrainable(Trainable):
    def train(self, config: dict, report) -> dict:
        return _train(config, report)

    def validate(self, config: dict) -> None:
        if "gate_threshold" not in config:
            raise SettingError("gate_threshold", "required by the toy trainable")

    def reports(self, config: dict) -> set[str]:
        return {"epoch", "val_accuracy", "update_rate", "train_loss", "tokens_per_s"}


toy_train = ToyTrainable()
