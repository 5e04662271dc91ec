"""`orchestrator.submit --ray-address`: a tiny sweep through the Ray Jobs API of a real Ray head on loopback."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest
import yaml
from netutil import free_port

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def ray_head():
    """`ray start --head --block` on its own ports and temp dir; stopped by its process group only."""
    temp = tempfile.mkdtemp(prefix="rh", dir="/tmp")   # short: Ray's socket paths must fit in 107 bytes
    port, dash = free_port(), free_port()
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "PYTHONPATH": str(ROOT),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("RAY_ADDRESS", None)
    ray = str(Path(sys.executable).parent / "ray")
    log = open(Path(temp) / "head.log", "w")
    proc = subprocess.Popen(
        [ray, "start", "--head", "--block", "--node-ip-address=127.0.0.1", f"--port={port}",
         "--dashboard-host=127.0.0.1", f"--dashboard-port={dash}", f"--temp-dir={temp}",
         "--num-cpus=2", "--disable-usage-stats", "--include-dashboard=true",
         f"--ray-client-server-port={free_port()}", f"--dashboard-agent-listen-port={free_port()}",
         f"--metrics-export-port={free_port()}"],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    address = f"http://127.0.0.1:{dash}"
    deadline = time.time() + 90
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"{address}/api/version", timeout=2)
            break
        except OSError:
            if proc.poll() is not None:
                pytest.fail("ray start --head exited early: " + (Path(temp) / "head.log").read_text()[-2000:])
            time.sleep(1)
    else:
        os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail("the Ray head's job server never answered")
    yield address
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
    shutil.rmtree(temp, ignore_errors=True)


def submit(*args, timeout=400, pythonpath=()):
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "PYTHONPATH": os.pathsep.join([str(ROOT), *map(str, pythonpath)])}
    env.pop("RAY_ADDRESS", None)
    return subprocess.run([sys.executable, "-m", "orchestrator.submit", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_submit_runs_a_sweep_through_the_jobs_api(ray_head, tmp_path):
    address = ray_head
    toy = (ROOT / "tests" / "orchestrator" / "toy_trainable.py").read_text()
    spec = {
        "name": "jobs-toy", "task": {"name": "toy"}, "trainable": "surnn_toy:toy_train", "training": {"epochs": 2},
        "objectives": [{"metric": "val_accuracy", "goal": "maximize", "ref": 0.0},
                       {"metric": "update_rate", "goal": "minimize", "ref": 1.0}],
        "parameters": {"gate_threshold": {"type": "float", "low": 0.0, "high": 1.0}},
        "search": {"sampler": "random", "num_trials": 3, "max_concurrent": 2},
        "tracking": {"uri": f"sqlite:///{tmp_path}/mlflow.db", "experiment": "jobs-toy",
                     "storage_path": str(tmp_path / "ray_results")},
    }
    # The trainable ships with the job: a module beside the spec in the staged working directory.
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    (tmp_path / "surnn_toy.py").write_text(toy)
    proc = submit(str(tmp_path / "spec.yaml"), "--ray-address", address, "--wait",
                  "--include", str(tmp_path / "surnn_toy.py"), pythonpath=[tmp_path])   # validated here first
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "SUCCEEDED" in proc.stdout and "MLflow parent run" in proc.stdout
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    exp = client.get_experiment_by_name("jobs-toy")
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if r.data.tags.get("sweep.role") == "parent"]
    assert len(parents) == 1 and parents[0].info.run_id in proc.stdout
    assert sum("mlflow.parentRunId" in r.data.tags for r in runs) == 3


def test_unreachable_ray_address_is_one_line_and_nonzero(tmp_path):
    spec = ROOT / "search_spaces" / "lra.yaml"
    proc = submit(str(spec), "--profile", "local", "--ray-address", f"http://127.0.0.1:{free_port()}", timeout=120)
    assert proc.returncode != 0
    assert "--ray-address" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
