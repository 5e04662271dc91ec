"""Two sweeps at once on one SQLite store: the second is refused at once, naming the store;
the first finishes untouched; the lock goes with the process that held it, even on SIGKILL."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from test_sweep_e2e import mlflow_runs, run_sweep, sweep_env, write_spec


def _start(folder, spec, epoch_seconds=0.5):
    return subprocess.Popen([sys.executable, "-m", "orchestrator.sweep", str(spec)], cwd=folder,
                            env=sweep_env(folder, epoch_seconds=epoch_seconds), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def _wait_for(path, proc, timeout=60):
    deadline = time.time() + timeout
    while not path.exists():
        assert proc.poll() is None and time.time() < deadline, "the first sweep never started"
        time.sleep(0.2)


@pytest.mark.slow
@pytest.mark.faults
def test_second_sweep_on_the_same_store_is_refused_at_once(tmp_path):
    first_dir, second_dir = tmp_path / "a", tmp_path / "b"
    first_dir.mkdir(), second_dir.mkdir()
    store = f"sqlite:///{tmp_path}/mlflow.db"   # both sweeps write one MLflow store and one study file
    common = dict(search={"num_trials": 4, "max_concurrent": 2}, scheduler="none", training={"epochs": 4})
    first = write_spec(first_dir, tracking={"uri": store}, **common)
    second = write_spec(second_dir, name="toy-other", tracking={"uri": store}, **common)
    proc = _start(first_dir, first)
    _wait_for(first_dir / "ray_results" / "toy.sweep" / "sweep_tracking.json", proc)   # trials are under way
    start = time.time()
    refused = run_sweep(second_dir, str(second))
    took = time.time() - start
    assert refused.returncode == 2, refused.stderr[-2000:]
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and f"{tmp_path}/mlflow.db" in lines[0] and "in use by another sweep" in lines[0], lines
    assert took < 15 and not (second_dir / "ray_results").exists()
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0 and "database is locked" not in err, err[-3000:]
    os.replace(tmp_path / "mlflow.db", first_dir / "mlflow.db")   # where mlflow_runs looks
    _, parents, children = mlflow_runs(first_dir)
    assert len(parents) == 1 and len(children) == 4 and all(c.info.status == "FINISHED" for c in children)


@pytest.mark.slow
@pytest.mark.faults
def test_the_lock_dies_with_a_killed_sweep(tmp_path):
    spec = write_spec(tmp_path, search={"num_trials": 2, "max_concurrent": 1}, scheduler="none",
                      training={"epochs": 2})
    proc = _start(tmp_path, spec, epoch_seconds=5.0)
    _wait_for(tmp_path / "ray_results" / "toy.sweep" / "sweep_tracking.json", proc)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    subprocess.run(["pkill", "-9", "-s", str(proc.pid)], check=False)   # its Ray processes, as a crash leaves them
    assert (tmp_path / "mlflow.db.lock").exists()                       # the file stays; the lock does not
    resumed = run_sweep(tmp_path, str(spec), "--resume", epoch_seconds=0.05)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
