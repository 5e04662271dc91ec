"""A sweep on the stack the cluster runs: mlflow server on PostgreSQL, the Optuna study in
PostgreSQL, a Ray cluster of a head and two worker nodes (the `devstack` fixture)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from test_sweep_e2e import sweep_env, true_front_ids, write_spec

pytestmark = pytest.mark.slow


def stack_spec(folder: Path, stack, name: str, **overrides) -> Path:
    """The e2e test's toy spec, its experiment and study named `name`, its study in PostgreSQL."""
    tracking = {"uri": stack.tracking_uri, "experiment": name, "study_storage": stack.study_storage}
    return write_spec(folder, name=name, tracking=tracking, **overrides)


def stack_sweep_cmd(stack, spec: Path, *args) -> list[str]:
    return [sys.executable, "-m", "orchestrator.sweep", str(spec), "--tracking-uri", stack.tracking_uri,
            "--ray-address", stack.ray_address, *args]


def run_stack_sweep(folder: Path, stack, spec: Path, *args, timeout: int = 300):
    return subprocess.run(stack_sweep_cmd(stack, spec, *args), cwd=folder, env=sweep_env(folder),
                          capture_output=True, text=True, timeout=timeout)


def stack_runs(stack, experiment: str):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(stack.tracking_uri)
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    parents = [r for r in runs if r.data.tags.get("sweep.role") == "parent"]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    return client, parents, children


def test_sweep_on_the_production_stack(tmp_path, devstack):
    from test_stack_faults import unique

    name = unique("stack-e2e")
    spec = stack_spec(tmp_path, devstack, name, search={"sampler": "tpe", "num_trials": 6})
    proc = run_stack_sweep(tmp_path, devstack, spec)
    assert proc.returncode == 0, proc.stderr[-3000:]
    client, parents, children = stack_runs(devstack, name)
    assert len(parents) == 1 and len(children) == 6
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    assert all(c.data.tags["mlflow.parentRunId"] == parent.info.run_id for c in children)
    assert all(c.info.status == "FINISHED" for c in children)
    statuses = [c.data.tags["sweep.status"] for c in children]
    assert statuses.count("completed") >= 1, statuses
    for c in children:   # every evaluation logged at step = epoch
        steps = [m.step for m in client.get_metric_history(c.info.run_id, "val_accuracy")]
        assert steps == list(range(1, int(c.data.tags["sweep.fidelity"]) + 1))
    front = true_front_ids(children)
    tagged = {c.info.run_id for c in children if c.data.tags["pareto_optimal"] == "true"}
    assert tagged == front and front
    hv = client.get_metric_history(parent.info.run_id, "pareto_hypervolume")
    assert len(hv) == 6 and hv[-1].value > 0
    # artifacts went through the server (--serve-artifacts) into the stack's artifact root
    arts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"pareto_front.csv", "pareto_front.png", "pareto_front.html", "spec.yaml", "front_weights"} <= arts
    assert list((Path(devstack.root) / "artifacts").rglob("pareto_front.csv"))
    import optuna

    study = optuna.load_study(study_name=name, storage=devstack.study_storage)
    states = [t.state.name for t in study.trials]
    assert states.count("COMPLETE") == statuses.count("completed")
    assert states.count("PRUNED") == statuses.count("stopped")
