"""The sweep end to end: the CLI in a subprocess, real local Ray, real Optuna and MLflow SQLite stores."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent


def write_spec(folder: Path, **overrides) -> Path:
    spec = {
        "name": "toy",
        "task": {"name": "toy"},
        "trainable": "toy_trainable:toy_train",
        "training": {"epochs": 4},
        "objectives": [{"metric": "val_accuracy", "goal": "maximize", "ref": 0.0},
                       {"metric": "update_rate", "goal": "minimize", "ref": 1.0}],
        "parameters": {"gate_threshold": {"type": "float", "low": 0.0, "high": 1.0}},
        "search": {"sampler": "random", "seed": 0, "num_trials": 8, "max_concurrent": 2},
        "scheduler": {"name": "pareto_asha", "grace_period": 1, "reduction_factor": 2},
        "resources_per_trial": {"cpu": 1, "gpu": 0},
        "failure": {"max_failures_per_trial": 1, "max_failed_trials": 8},
        "tracking": {"uri": f"sqlite:///{folder}/mlflow.db", "experiment": "toy-sweep"},
    }
    for key, value in overrides.items():
        spec[key] = {**spec[key], **value} if isinstance(value, dict) and isinstance(spec.get(key), dict) else value
    path = folder / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def sweep_env(folder: Path, epoch_seconds: float = 0.05, extra_path: str | None = None) -> dict:
    path = os.pathsep.join(p for p in (extra_path, str(HERE), str(ROOT)) if p)
    env = {**os.environ, "PYTHONPATH": path, "TOY_EPOCH_SECONDS": str(epoch_seconds),
           "MLFLOW_DISABLE_TELEMETRY": "true", "RAY_AUTH_MODE": "disabled"}
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("RAY_ADDRESS", None)
    return env


def run_sweep(folder: Path, *args, epoch_seconds: float = 0.05, timeout: int = 300, extra_path: str | None = None):
    return subprocess.run([sys.executable, "-m", "orchestrator.sweep", *args], cwd=folder,
                          env=sweep_env(folder, epoch_seconds, extra_path), capture_output=True, text=True,
                          timeout=timeout)


def mlflow_runs(folder: Path):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{folder}/mlflow.db")
    exp = client.get_experiment_by_name("toy-sweep")
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    parents = [r for r in runs if r.data.tags.get("sweep.role") == "parent"]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    return client, parents, children


def true_front_ids(children) -> set[str]:
    from orchestrator.pareto import nondominated_rank, to_minimization

    done = [c for c in children if c.data.tags["sweep.status"] == "completed"]
    values = np.array([[c.data.metrics["val_accuracy"], c.data.metrics["update_rate"]] for c in done])
    ranks = nondominated_rank(to_minimization(values, ["maximize", "minimize"]))
    return {c.info.run_id for c, r in zip(done, ranks) if r == 0}


def test_dry_run_prints_the_plan_and_starts_nothing(tmp_path):
    spec = write_spec(tmp_path)
    proc = run_sweep(tmp_path, str(spec), "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert "# search space" in proc.stdout and "gate_threshold" in proc.stdout
    assert "rungs at epoch [1, 2]" in proc.stdout
    assert "promotion-type: a trial pauses there and resumes if it ranks in the best 1/2; min_agreement 0.5" \
        in proc.stdout   # the kind of rungs, and the min_agreement that kind defaults to
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spec.yaml"]
    (tmp_path / "stop").mkdir()
    stop = write_spec(tmp_path / "stop", scheduler={"name": "pareto_asha", "kind": "stop"})
    proc = run_sweep(tmp_path / "stop", str(stop), "--dry-run")
    assert proc.returncode == 0 and "stop-type: a trial ranked out stops there; min_agreement 0.7" in proc.stdout


@pytest.mark.parametrize("overrides,message", [
    ({"search": {"sampler": "simulated_annealing"}}, "search.sampler"),
    ({"parameters": {"gate_threshold": {"type": "float", "low": 1.0, "high": 0.5}}}, "parameters.gate_threshold.low"),
    ({"objectives": [{"metric": "val_acc", "goal": "maximize", "ref": 0.0}]}, "val_acc"),
])
def test_bad_spec_exits_2_and_starts_nothing(tmp_path, overrides, message):
    spec = write_spec(tmp_path, **overrides)
    proc = run_sweep(tmp_path, str(spec))
    assert proc.returncode == 2
    assert message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spec.yaml"]


def test_gpu_the_cluster_lacks_fails_before_any_trial(tmp_path):
    spec = write_spec(tmp_path, resources_per_trial={"cpu": 1, "gpu": 1})
    proc = run_sweep(tmp_path, str(spec))
    assert proc.returncode == 2
    assert "resources_per_trial.gpu" in proc.stderr and "resources_per_trial.gpu=0" in proc.stderr
    assert not (tmp_path / "ray_results" / "toy").exists() and not (tmp_path / "ray_results" / "toy.sweep").exists()


@pytest.mark.slow
def test_sweep_logs_parent_children_and_the_front(tmp_path):
    spec = write_spec(tmp_path, search={"sampler": "tpe", "constraints": ["update_rate <= 0.5"]})
    proc = run_sweep(tmp_path, str(spec))
    assert proc.returncode == 0, proc.stderr[-3000:]
    client, parents, children = mlflow_runs(tmp_path)
    assert len(parents) == 1 and len(children) == 8
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    assert all(c.data.tags["mlflow.parentRunId"] == parent.info.run_id for c in children)
    assert all(c.info.status == "FINISHED" for c in children)
    statuses = [c.data.tags["sweep.status"] for c in children]
    assert statuses.count("completed") >= 1 and statuses.count("stopped") >= 1, statuses
    for c in children:   # every evaluation logged at step = epoch
        steps = [m.step for m in client.get_metric_history(c.info.run_id, "val_accuracy")]
        assert steps == list(range(1, int(c.data.tags["sweep.fidelity"]) + 1))
        assert c.data.tags["sweep.status"] == "completed" or int(c.data.tags["sweep.fidelity"]) < 4
    front = true_front_ids(children)
    tagged = {c.info.run_id for c in children if c.data.tags["pareto_optimal"] == "true"}
    assert tagged == front and front
    assert all(c.data.tags["pareto_rank"] == "none" for c in children if c.data.tags["sweep.status"] == "stopped")
    hv = client.get_metric_history(parent.info.run_id, "pareto_hypervolume")
    assert len(hv) == 8 and hv[-1].value > 0
    arts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"pareto_front.csv", "pareto_front.png", "pareto_front.html", "spec.yaml", "front_weights"} <= arts
    import optuna

    study = optuna.load_study(study_name="toy", storage=f"sqlite:///{tmp_path}/optuna.db")
    states = [t.state.name for t in study.trials]
    assert study.metric_names == ["val_accuracy", "update_rate"]
    assert states.count("COMPLETE") == statuses.count("completed") and states.count("PRUNED") == statuses.count("stopped")
    for t in study.trials:   # the constraint reaches the sampler as Optuna's "<= 0 is feasible" values
        if t.state.name == "COMPLETE":
            assert t.user_attrs["constraints"] == pytest.approx([t.values[1] - 0.5])


@pytest.mark.slow
def test_failing_and_flaky_trials(tmp_path):
    spec = write_spec(tmp_path, training={"epochs": 2, "fail_below": 0.3, "flaky_file": str(tmp_path / "flaky")},
                      scheduler="none")
    proc = run_sweep(tmp_path, str(spec))
    assert proc.returncode == 0, proc.stderr[-3000:]
    _, parents, children = mlflow_runs(tmp_path)
    xs = {c.info.run_id: float(c.data.params["gate_threshold"]) for c in children}
    for c in children:
        want = "failed" if xs[c.info.run_id] < 0.3 else "completed"
        assert c.data.tags["sweep.status"] == want
        assert c.info.status == ("FAILED" if want == "failed" else "FINISHED")
        assert c.data.tags.get("sweep.retries") == "1"    # each failed once (flaky or for good), then retried
    assert "failed" in proc.stderr


@pytest.mark.slow
@pytest.mark.parametrize("sig, rung_aware, kind", [(signal.SIGINT, False, None), (signal.SIGKILL, False, None),
                                                   (signal.SIGKILL, True, "stop"), (signal.SIGKILL, True, "promotion")],
                         ids=["SIGINT", "SIGKILL", "SIGKILL-tpe-asha", "SIGKILL-tpe-promotion"])
def test_resume_after_the_driver_is_stopped(tmp_path, sig, rung_aware, kind):
    # rung_aware: tpe with pareto_asha, so the searcher is RungOptunaSearch and its rung studies
    # and the scheduler's rungs must come back with the driver; "promotion": trials paused at a
    # rung when the driver died are resumed or stopped, none left waiting
    if rung_aware:
        spec = write_spec(tmp_path, search={"sampler": "tpe", "num_trials": 6, "max_concurrent": 2},
                          scheduler={"kind": kind})
    else:
        spec = write_spec(tmp_path, search={"num_trials": 6, "max_concurrent": 2}, scheduler="none")
    proc = subprocess.Popen([sys.executable, "-m", "orchestrator.sweep", str(spec)], cwd=tmp_path,
                            env=sweep_env(tmp_path, epoch_seconds=1.0), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    state = tmp_path / "ray_results" / "toy.sweep" / "sweep_tracking.json"
    deadline = time.time() + 120
    while time.time() < deadline:   # wait until some trials finished and others run
        if state.exists():
            trials = json.loads(state.read_text())["trials"].values()
            if (sum(t["status"] in ("completed", "stopped") for t in trials) >= 2
                    and any(t["status"] == "running" for t in trials)):
                break
        time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail("the sweep never reached a state worth interrupting")
    os.kill(proc.pid, sig)
    _, err = proc.communicate(timeout=120)
    if sig == signal.SIGINT:   # a clean stop says how to go on, and leaves nothing RUNNING
        assert proc.returncode == 1 and "interrupted; continue with --resume" in err, err[-2000:]
        _, parents, children = mlflow_runs(tmp_path)
        assert parents[0].info.status == "KILLED" and all(c.info.status != "RUNNING" for c in children)
    if sig == signal.SIGKILL:   # the driver's Ray processes outlive it; end them as a crash would
        subprocess.run(["pkill", "-9", "-s", str(proc.pid)], check=False)
    before = json.loads(state.read_text())["trials"]
    done_before = {tid: t["run_id"] for tid, t in before.items() if t["status"] in ("completed", "stopped")}

    resumed = run_sweep(tmp_path, str(spec), "--resume", epoch_seconds=0.05)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    client, parents, children = mlflow_runs(tmp_path)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert all(c.info.status != "RUNNING" for c in children)
    by_id = {c.data.tags["sweep.trial_id"]: c for c in children}
    # A trial the killed driver had started but not yet recorded in Ray's experiment state is
    # restarted from scratch under a new Ray trial, with the same study trial; its partial run
    # is deleted, so there are exactly num_trials runs and none is left killed.
    assert len(children) == 6 and not [c for c in children if c.data.tags["sweep.status"] == "killed"]
    for tid, run_id in done_before.items():   # finished trials were not rerun
        assert by_id[tid].info.run_id == run_id
        steps = [m.step for m in client.get_metric_history(run_id, "val_accuracy")]
        full = by_id[tid].data.tags["sweep.status"] == "completed"
        assert steps == ([1, 2, 3, 4] if full else list(range(1, len(steps) + 1))) and steps
    statuses = [c.data.tags["sweep.status"] for c in children]
    assert statuses.count("completed") + statuses.count("stopped") == 6
    assert rung_aware or statuses.count("stopped") == 0
    import optuna

    study = optuna.load_study(study_name="toy", storage=f"sqlite:///{tmp_path}/optuna.db")
    states = [t.state.name for t in study.trials]
    assert "RUNNING" not in states
    assert states.count("COMPLETE") == statuses.count("completed")
    assert states.count("PRUNED") == statuses.count("stopped") and len(states) == 6


@pytest.mark.slow
def test_too_many_failed_trials_stop_the_sweep_and_keep_results(tmp_path):
    spec = write_spec(tmp_path, training={"epochs": 2, "fail_below": 0.6}, scheduler="none",
                      search={"num_trials": 12, "max_concurrent": 1},
                      failure={"max_failures_per_trial": 0, "max_failed_trials": 1})
    proc = run_sweep(tmp_path, str(spec))
    assert proc.returncode == 1, proc.stderr[-3000:]
    _, parents, children = mlflow_runs(tmp_path)
    statuses = [c.data.tags["sweep.status"] for c in children]
    assert statuses.count("failed") == 2 and len(children) < 12   # stopped after the second failure
    assert parents[0].info.status == "FINISHED" and all(c.info.status != "RUNNING" for c in children)
    finished = [c for c in children if c.data.tags["sweep.status"] == "completed"]
    assert all(c.data.tags["pareto_optimal"] in ("true", "false") for c in finished)


@pytest.mark.parametrize("path", ["lra", "synthetic", "wikitext", "pixel"])
@pytest.mark.parametrize("profile", [None, "local"])
def test_shipped_search_spaces_validate_and_plan(tmp_path, path, profile):
    args = [str(ROOT / "search_spaces" / f"{path}.yaml"), "--dry-run"] + (["--profile", profile] if profile else [])
    proc = run_sweep(tmp_path, *args)
    assert proc.returncode == 0, proc.stderr
    assert "# plan" in proc.stdout and "rungs at epoch" in proc.stdout


def test_data_that_cannot_be_had_stops_the_sweep_with_one_line(tmp_path):
    env = {"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    proc = subprocess.run([sys.executable, "-m", "orchestrator.sweep", str(ROOT / "search_spaces" / "wikitext.yaml"),
                           "--profile", "local"], cwd=tmp_path, env={**sweep_env(tmp_path), **env},
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert errors == [line for line in errors if "cannot load 'Salesforce/wikitext'" in line and "path:" in line]
    assert len(errors) == 1 and not (tmp_path / "ray_results").exists()
