"""The Ray side of one trial: run the spec's trainable and forward its reports to Ray Tune.

The contract a trainable keeps is `surnn.trainable.Trainable` (described there). The sweep
adds two keys to every config: `checkpoint_dir`, a folder private to the trial that already
holds the trial's last reported checkpoint when Ray resumes it, and `num_threads`, the CPUs
the trial was granted (torch would otherwise take every core and concurrent trials would
slow each other down many times over). A return value with "status": "diverged" counts as
a failure, so Ray retries the trial.
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Callable

from ray import tune

from surnn.trainable import FIDELITY, load_trainable

SCALARIZED = "scalarized"   # the single metric that plain ASHA ranks by, when the spec asks for it


class TrialDiverged(RuntimeError):
    """The trainable reported a non-finite loss."""


def make_trial_fn(trainable_ref: str, fixed: dict, cpus: float, scalarize: dict | None = None) -> Callable[[dict], None]:
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

        result = trainable.train(config, report)
        if isinstance(result, dict) and result.get("status") == "diverged":
            raise TrialDiverged(f"the loss stopped being finite at epoch {result.get(FIDELITY)}")

    return run_trial
