"""Promotion-type rungs in a real sweep: trials pause at a rung, resume from their checkpoint,
and the ones still waiting when the search is done are stopped there (local Ray, SQLite stores)."""
from __future__ import annotations

import json

import pytest

from test_sweep_e2e import mlflow_runs, run_sweep, write_spec

NUM_TRIALS = 10


def _segments(experiment_dir):
    """Per Ray trial: its result rows as (epoch, iterations since restore), in order."""
    out = {}
    for path in experiment_dir.glob("*/result.json"):
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        out[rows[0]["trial_id"] if rows else path.parent.name] = [
            (r["epoch"], r["iterations_since_restore"]) for r in rows if "epoch" in r]
    return out


@pytest.mark.slow
def test_a_promotion_sweep_pauses_resumes_and_ends_every_trial(tmp_path):
    spec = write_spec(tmp_path, training={"epochs": 9},
                      search={"sampler": "tpe", "seed": 1, "num_trials": NUM_TRIALS, "max_concurrent": 2},
                      scheduler={"name": "pareto_asha", "grace_period": 1, "reduction_factor": 3, "brackets": 1,
                                 "min_agreement": None, "kind": "promotion"})
    proc = run_sweep(tmp_path, str(spec), timeout=400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    client, parents, children = mlflow_runs(tmp_path)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert len(children) == NUM_TRIALS and all(c.info.status == "FINISHED" for c in children)
    statuses = [c.data.tags["sweep.status"] for c in children]
    assert set(statuses) <= {"completed", "stopped"} and "completed" in statuses and "stopped" in statuses
    # a trial stopped by promotion-type rungs waited at a rung (1 or 3) until the search was done
    assert {c.data.tags["sweep.fidelity"] for c in children if c.data.tags["sweep.status"] == "stopped"} <= {"1", "3"}
    for child in children:   # every epoch logged once, in order, across pauses
        steps = [m.step for m in client.get_metric_history(child.info.run_id, "val_accuracy")]
        assert steps == list(range(1, int(child.data.tags["sweep.fidelity"]) + 1))
    # some trial paused and resumed from its checkpoint: its iterations since restore start over
    # at the epoch after a rung, and no epoch is trained twice
    segments = _segments(tmp_path / "ray_results" / "toy")
    resumed = [tid for tid, rows in segments.items()
               if any(it == 1 and epoch > 1 for epoch, it in rows)]
    assert resumed, segments
    for tid in resumed:
        epochs = [e for e, _ in segments[tid]]
        assert epochs == sorted(set(epochs)) and all(e - 1 in (1, 3) for e, it in segments[tid] if it == 1 and e > 1)
    import optuna

    study = optuna.load_study(study_name="toy", storage=f"sqlite:///{tmp_path}/optuna.db")
    states = [t.state.name for t in study.trials]
    assert len(states) == NUM_TRIALS
    assert states.count("COMPLETE") == statuses.count("completed") and states.count("PRUNED") == statuses.count("stopped")
