"""A trainable that stops reporting is killed after `failure.report_timeout_s`, recorded as
failed with that reason in MLflow and Optuna, and the sweep goes on with the others."""
from __future__ import annotations

import time

import pytest

from test_sweep_e2e import mlflow_runs, run_sweep, write_spec


def test_report_timeout_must_be_positive(tmp_path):
    spec = write_spec(tmp_path, failure={"report_timeout_s": 0})
    proc = run_sweep(tmp_path, str(spec), "--dry-run")
    assert proc.returncode == 2 and proc.stderr.startswith("error: ") and "failure.report_timeout_s" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.slow
@pytest.mark.faults
def test_hung_trials_are_killed_and_recorded_failed(tmp_path):
    spec = write_spec(tmp_path, training={"epochs": 3, "hang_below": 0.5}, scheduler="none",
                      search={"num_trials": 6, "max_concurrent": 2},
                      failure={"max_failures_per_trial": 0, "max_failed_trials": None, "report_timeout_s": 2})
    start = time.time()
    proc = run_sweep(tmp_path, str(spec), timeout=120)
    took = time.time() - start
    assert proc.returncode == 0, proc.stderr[-3000:]
    client, parents, children = mlflow_runs(tmp_path)
    assert len(children) == 6 and parents[0].info.status == "FINISHED"
    hung = [c for c in children if float(c.data.params["gate_threshold"]) < 0.5]
    assert 1 <= len(hung) <= 5, [c.data.params["gate_threshold"] for c in children]
    for c in children:
        if c in hung:   # one epoch reported, then silence: failed, with the reason on the run
            assert c.info.status == "FAILED" and c.data.tags["sweep.status"] == "failed"
            assert "report_timeout_s" in c.data.tags["sweep.failure_reason"], c.data.tags
            assert [m.step for m in client.get_metric_history(c.info.run_id, "val_accuracy")] == [1]
        else:           # the sweep went on: every other trial ran its three epochs
            assert c.info.status == "FINISHED" and c.data.tags["sweep.status"] == "completed"
    import optuna

    study = optuna.load_study(study_name="toy", storage=f"sqlite:///{tmp_path}/optuna.db")
    states = [t.state.name for t in study.trials]
    assert states.count("FAIL") == len(hung) and states.count("COMPLETE") == 6 - len(hung), states
    assert took < 90   # hung trials cost their timeout, not the hour they would sleep
