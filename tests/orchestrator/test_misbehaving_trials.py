"""Trainables that misbehave do not take the sweep down: one whose memory grows every epoch is
ended at `failure.max_memory_mb` and recorded as failed (MLflow and Optuna), one that writes
beside the spec is named in a `sweep.stray_files` tag; the other trials run to their end."""
from __future__ import annotations

import time

import optuna
import pytest

from orchestrator.trial import TrialOutOfMemory, _watched, rss_mb
from test_sweep_e2e import mlflow_runs, run_sweep, write_spec


@pytest.mark.parametrize("value", [0, -5])
def test_max_memory_mb_must_be_positive(tmp_path, value):
    spec = write_spec(tmp_path, failure={"max_memory_mb": value})
    proc = run_sweep(tmp_path, str(spec), "--dry-run")
    assert proc.returncode == 2 and proc.stderr.startswith("error: ") and "failure.max_memory_mb" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_watcher_ends_a_growing_trainable_and_spares_a_steady_one():
    limit = rss_mb() + 150

    def leaky(report):
        held = []
        for epoch in range(1, 20):
            held.append(b"\x01" * (50 << 20))
            report({"epoch": epoch})
        return {"status": "completed"}

    seen = []
    with pytest.raises(TrialOutOfMemory, match=r"exceeded failure.max_memory_mb=\d+"):
        _watched(leaky, lambda m, checkpoint_dir=None: seen.append(m["epoch"]), None, limit)
    assert 1 <= len(seen) <= 4, seen   # ended within an epoch of passing the limit, not at the end
    steady = _watched(lambda report: [report({"epoch": e}) for e in (1, 2)] and {"status": "completed"},
                      lambda m, checkpoint_dir=None: None, None, rss_mb() + 150)
    assert steady == {"status": "completed"}


@pytest.mark.faults
def test_leaking_trials_fail_at_the_memory_limit_and_the_sweep_goes_on(tmp_path):
    spec = write_spec(tmp_path, training={"epochs": 6, "leak_below": 0.5, "leak_mb_per_epoch": 300},
                      scheduler="none", search={"num_trials": 6, "max_concurrent": 2},
                      failure={"max_failures_per_trial": 1, "max_failed_trials": None, "max_memory_mb": 900})
    start = time.time()
    proc = run_sweep(tmp_path, str(spec), timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    client, parents, children = mlflow_runs(tmp_path)
    assert len(children) == 6 and parents[0].info.status == "FINISHED"
    leaky = [c for c in children if float(c.data.params["gate_threshold"]) < 0.5]
    assert 1 <= len(leaky) <= 5, [c.data.params["gate_threshold"] for c in children]
    for c in children:
        # A retry resumes from the last checkpoint with the memory of a fresh process, so it gets
        # further, but six epochs of 300 MB never fit under 900 MB.
        if c in leaky:   # retried once (max_failures_per_trial), not forever, then failed with the reason
            assert c.info.status == "FAILED" and c.data.tags["sweep.status"] == "failed"
            assert "failure.max_memory_mb=900" in c.data.tags["sweep.failure_reason"], c.data.tags
            assert "TrialOutOfMemory" in c.data.tags["sweep.failure_reason"]
            assert c.data.tags.get("sweep.retries") == "1"
            assert len(client.get_metric_history(c.info.run_id, "val_accuracy")) < 6
        else:
            assert c.info.status == "FINISHED" and c.data.tags["sweep.status"] == "completed"
        assert "sweep.stray_files" not in c.data.tags   # the sweep's own files are not strays
    study = optuna.load_study(study_name="toy", storage=f"sqlite:///{tmp_path}/optuna.db")
    states = [t.state.name for t in study.trials]
    assert states.count("FAIL") == len(leaky) and states.count("COMPLETE") == 6 - len(leaky), states
    print(f"memory-limit sweep: {time.time() - start:.1f} s")


@pytest.mark.faults
def test_files_written_beside_the_spec_are_reported_and_the_sweep_goes_on(tmp_path):
    spec = write_spec(tmp_path, training={"epochs": 2, "write_outside": "stray"}, scheduler="none",
                      search={"num_trials": 3, "max_concurrent": 2})
    proc = run_sweep(tmp_path, str(spec), timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    _, parents, children = mlflow_runs(tmp_path)
    assert len(children) == 3 and parents[0].info.status == "FINISHED"
    for c in children:
        own = f"stray-{float(c.data.params['gate_threshold']):.6f}.txt"
        assert (tmp_path / own).exists()
        assert c.info.status == "FINISHED" and c.data.tags["sweep.status"] == "completed"
        assert own in c.data.tags["sweep.stray_files"].split(", "), c.data.tags
        assert all(name.startswith("stray-") for name in c.data.tags["sweep.stray_files"].split(", "))
