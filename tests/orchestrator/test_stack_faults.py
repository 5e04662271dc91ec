"""Faults of the cluster's stack, injected for real (the `devstack` fixture), each asserting that
nothing is lost: a worker node killed mid-trial, PostgreSQL restarted mid-sweep, the tracking
server down for about 30 s, and gone for good (then --resume).

Each test prints one line `FAULT name: injected=N trials_lost=... trials_duplicated=...
runs_running=... metrics_missing=...` (run with -s to see them); all but `injected` must be 0.
"""
from __future__ import annotations

import json
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

from test_stack_e2e import stack_runs, stack_spec, stack_sweep_cmd
from test_sweep_e2e import sweep_env

pytestmark = [pytest.mark.faults, pytest.mark.slow]

EPOCHS = 6


def unique(name: str) -> str:
    """A sweep name of its own: the experiment and study live on in a stack that outlives the test."""
    import uuid

    return f"{name}-{uuid.uuid4().hex[:6]}"


def start_sweep(folder: Path, stack, spec: Path, *args) -> subprocess.Popen:
    out = open(folder / "sweep.log", "w")
    return subprocess.Popen(stack_sweep_cmd(stack, spec, *args), cwd=folder, env=sweep_env(folder), stdout=out,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)


def sweep_log(folder: Path) -> str:
    return (folder / "sweep.log").read_text(errors="replace")


def tracker_state(folder: Path, name: str) -> dict:
    """The tracker's trials, each with its MLflow run id as soon as the outbox has made the run."""
    path = folder / "ray_results" / f"{name}.sweep" / "sweep_tracking.json"
    trials = json.loads(path.read_text()).get("trials", {}) if path.exists() else {}
    outbox = path.with_name("tracking_outbox.json")
    ids = json.loads(outbox.read_text()).get("ids", {}) if outbox.exists() else {}
    for tid, entry in trials.items():
        entry["run_id"] = entry.get("run_id") or ids.get(tid)
    return trials


def wait_for(folder: Path, name: str, ready, proc: subprocess.Popen, timeout: float = 180) -> dict:
    """Poll the sweep's tracking state until `ready(trials)`; returns that state."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        trials = tracker_state(folder, name)
        if ready(trials):
            return trials
        if proc.poll() is not None:
            pytest.fail(f"the sweep ended early ({proc.returncode}):\n{sweep_log(folder)[-3000:]}")
        time.sleep(0.3)
    proc.kill()
    pytest.fail(f"the sweep never reached the state to inject the fault in:\n{sweep_log(folder)[-3000:]}")


def fault_record(stack, name: str, num_trials: int, finished_before: dict[str, str]) -> dict:
    """What a fault cost, read back from MLflow: every figure must be 0."""
    client, parents, children = stack_runs(stack, name)
    by_trial = Counter(c.data.tags["sweep.trial_id"] for c in children)
    done = [c for c in children if c.data.tags.get("sweep.status") in ("completed", "stopped")]
    duplicated, missing = 0, 0
    for c in children:
        steps = [m.step for m in client.get_metric_history(c.info.run_id, "val_accuracy")]
        want = set(range(1, int(c.data.tags.get("sweep.fidelity", len(steps))) + 1))
        missing += len(want - set(steps))
        duplicated += len(steps) != len(set(steps))
    duplicated += sum(n - 1 for n in by_trial.values())
    runs = {c.data.tags["sweep.trial_id"]: c for c in children}
    duplicated += sum(tid not in runs or runs[tid].info.run_id != rid or "sweep.retries" in runs[tid].data.tags
                      for tid, rid in finished_before.items())
    return {"trials_lost": num_trials - len({c.data.tags["sweep.trial_id"] for c in done}),
            "trials_duplicated": duplicated,
            "runs_running": sum(r.info.status == "RUNNING" for r in parents + children),
            "metrics_missing": missing}


def report(fault: str, injected: int, record: dict) -> None:
    print(f"\nFAULT {fault}: injected={injected} " + " ".join(f"{k}={v}" for k, v in record.items()))


def finished(trials: dict) -> dict[str, str]:
    return {tid: t["run_id"] for tid, t in trials.items() if t["status"] in ("completed", "stopped")}


def epochs_logged(stack, trials: dict) -> dict[str, int]:
    """Each running trial's last epoch as MLflow has it (the tracker's file is written per trial, not per epoch)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(stack.tracking_uri)
    return {tid: max((m.step for m in client.get_metric_history(t["run_id"], "val_accuracy")), default=0)
            for tid, t in trials.items() if t["status"] == "running" and t.get("run_id")}


def training_on(stack, node: str) -> bool:
    """A trial's `train` runs on `node` now (Ray titles the busy actor process `ray::ImplicitFunc.train`)."""
    from orchestrator.procs import tree as _tree

    for pid in _tree(stack.ray_pids[node] or 0):
        try:
            if Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"ray::ImplicitFunc.train"):
                return True
        except OSError:
            pass
    return False


def test_a_lost_worker_node_resumes_its_trial_on_the_other(tmp_path, devstack):
    name = unique("fault-node")
    spec = stack_spec(tmp_path, devstack, name, scheduler="none", training={"epochs": EPOCHS, "epoch_seconds": 1.0},
                      search={"sampler": "random", "num_trials": 4, "max_concurrent": 2},
                      failure={"max_failures_per_trial": 2, "max_failed_trials": 0})
    proc = start_sweep(tmp_path, devstack, spec)

    def mid_trial(trials):   # a trial finished, w1 runs one, and no running trial is at its last epoch
        if not finished(trials) or not training_on(devstack, "w1"):
            return False
        logged = epochs_logged(devstack, trials)
        return bool(logged) and all(e <= EPOCHS - 1 for e in logged.values()) and max(logged.values()) >= 1

    trials = wait_for(tmp_path, name, mid_trial, proc)
    before = finished(trials)
    from orchestrator.procs import tree as _tree

    seen: set[int] = set()   # the surviving node's processes, to tell where the lost trial went on
    try:
        assert len(_tree(devstack.ray_pids["w1"])) >= 3    # its `ray start`, raylet, agents, the trial's worker
        devstack.kill_ray_node("w1")
        deadline = time.time() + 240
        while proc.poll() is None and time.time() < deadline:
            seen.update(_tree(devstack.ray_pids["w2"]))
            time.sleep(0.2)
        proc.wait(timeout=5)
    finally:
        devstack.start_ray_worker("w1")
    assert proc.returncode == 0, sweep_log(tmp_path)[-3000:]
    client, parents, children = stack_runs(devstack, name)
    retried = [c for c in children if "sweep.retries" in c.data.tags]
    assert len(retried) == 1 and retried[0].data.tags["sweep.retries"] == "1"
    victim = retried[0]
    steps = [m.step for m in client.get_metric_history(victim.info.run_id, "val_accuracy")]
    assert steps == list(range(1, EPOCHS + 1))    # resumed from its checkpoint: no epoch redone, none skipped
    assert tracker_state(tmp_path, name)[victim.data.tags["sweep.trial_id"]]["last"]["pid"] in seen
    record = fault_record(devstack, name, 4, before)
    report("worker node lost", 1, record)
    assert record == {"trials_lost": 0, "trials_duplicated": 0, "runs_running": 0, "metrics_missing": 0}


def test_postgres_restarts_mid_sweep(tmp_path, devstack):
    name = unique("fault-pg")
    spec = stack_spec(tmp_path, devstack, name, scheduler="none", training={"epochs": EPOCHS, "epoch_seconds": 0.5},
                      search={"sampler": "tpe", "num_trials": 6, "max_concurrent": 2},
                      failure={"max_failures_per_trial": 1, "max_failed_trials": 0})
    proc = start_sweep(tmp_path, devstack, spec)
    injected, before = 0, {}
    for target in (1, 3):   # restart it twice: once early, once later in the sweep
        trials = wait_for(tmp_path, name, lambda t, n=target: len(finished(t)) >= n, proc)
        before = finished(trials)
        devstack.stop_postgres()
        time.sleep(2.0)
        devstack.start_postgres()
        injected += 1
    proc.wait(timeout=240)
    assert proc.returncode == 0, sweep_log(tmp_path)[-3000:]
    record = fault_record(devstack, name, 6, before)
    report("postgres restart", injected, record)
    assert record == {"trials_lost": 0, "trials_duplicated": 0, "runs_running": 0, "metrics_missing": 0}
    import optuna

    study = optuna.load_study(study_name=name, storage=devstack.study_storage)
    assert [t.state.name for t in study.trials].count("COMPLETE") == 6


def pending_writes(folder: Path, name: str) -> list[dict]:
    path = folder / "ray_results" / f"{name}.sweep" / "tracking_outbox.json"
    return json.loads(path.read_text())["pending"] if path.exists() else []


def test_tracking_server_down_30s_mid_sweep_loses_nothing(tmp_path, devstack):
    name = unique("fault-mlflow")
    spec = stack_spec(tmp_path, devstack, name, scheduler="none", training={"epochs": EPOCHS, "epoch_seconds": 0.5},
                      search={"sampler": "random", "num_trials": 4, "max_concurrent": 2},
                      failure={"max_failures_per_trial": 1, "max_failed_trials": 0, "tracking_timeout_s": 300})
    proc = start_sweep(tmp_path, devstack, spec)
    trials = wait_for(tmp_path, name, lambda t: len(finished(t)) >= 1 and any(
        e["status"] == "running" for e in t.values()), proc)
    before = finished(trials)
    down = time.time()
    devstack.stop_mlflow()
    try:
        time.sleep(8)
        held = [op for op in pending_writes(tmp_path, name) if op.get("metrics")]
        time.sleep(max(0.0, down + 30 - time.time()))
        devstack.start_mlflow()                       # down 30 s, and its start-up on top
    finally:
        if devstack.mlflow_pid is None:
            devstack.start_mlflow()
    outage = time.time() - down
    assert outage >= 30
    proc.wait(timeout=240)
    assert proc.returncode == 0, sweep_log(tmp_path)[-3000:]
    assert held, "no trial reported while the server was down"     # the trials kept running
    client, parents, children = stack_runs(devstack, name)
    assert parents[0].info.status == "FINISHED"
    assert all(c.data.tags["sweep.status"] == "completed" and c.info.status == "FINISHED" for c in children)
    for c in children:   # in order: each step's timestamp is when it was reported
        history = sorted(client.get_metric_history(c.info.run_id, "val_accuracy"), key=lambda m: m.step)
        assert [m.step for m in history] == list(range(1, EPOCHS + 1))
        assert [m.timestamp for m in history] == sorted(m.timestamp for m in history)
    assert not pending_writes(tmp_path, name)
    record = fault_record(devstack, name, 4, before)
    report(f"tracking server down {outage:.0f} s", 1, record)
    assert record == {"trials_lost": 0, "trials_duplicated": 0, "runs_running": 0, "metrics_missing": 0}


def test_tracking_server_gone_ends_the_sweep_and_resume_completes_it(tmp_path, devstack):
    name = unique("fault-mlflow-gone")
    timeout_s = 10
    spec = stack_spec(tmp_path, devstack, name, scheduler="none", training={"epochs": EPOCHS, "epoch_seconds": 0.5},
                      search={"sampler": "random", "num_trials": 4, "max_concurrent": 2},
                      failure={"max_failures_per_trial": 1, "max_failed_trials": 0, "tracking_timeout_s": timeout_s})
    proc = start_sweep(tmp_path, devstack, spec)
    trials = wait_for(tmp_path, name, lambda t: len(finished(t)) >= 1 and any(
        e["status"] == "running" for e in t.values()), proc)
    before = finished(trials)
    devstack.stop_mlflow()
    try:
        down = time.time()
        proc.wait(timeout=timeout_s + 90)
        took = time.time() - down
        log = sweep_log(tmp_path)
        assert proc.returncode == 1, log[-3000:]
        errors = [line for line in log.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and "failure.tracking_timeout_s" in errors[0] and "--resume" in errors[0], errors
        assert timeout_s <= took < timeout_s + 90
        assert pending_writes(tmp_path, name)        # kept for the resume
    finally:
        devstack.start_mlflow()
    resumed = subprocess.run(stack_sweep_cmd(devstack, spec, "--resume"), cwd=tmp_path, env=sweep_env(tmp_path),
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert not pending_writes(tmp_path, name)
    client, parents, children = stack_runs(devstack, name)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    record = fault_record(devstack, name, 4, before)
    report("tracking server gone (then --resume)", 1, record)
    assert record == {"trials_lost": 0, "trials_duplicated": 0, "runs_running": 0, "metrics_missing": 0}
