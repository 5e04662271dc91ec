"""Secrets never reach MLflow or the console: a real sweep against a real `mlflow server`,
with passwords planted in the tracking URI and in a fixed setting, then every param, tag,
artifact, stored byte and console line searched for them."""
from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from netutil import free_port
from test_sweep_e2e import run_sweep, sweep_env, write_spec

from orchestrator.secrets import redact

TRACKING_PW, SETTING_PW = "Pl4ntedTrackingPw", "Pl4ntedSettingPw"


def test_redact_masks_passwords_only():
    assert redact("postgresql+psycopg2://u:s3cr%40t@db:5432/optuna") == "postgresql+psycopg2://u:***@db:5432/optuna"
    assert redact("see http://a:b@127.0.0.1:5000 and ray://head:10001") == "see http://a:***@127.0.0.1:5000 and ray://head:10001"
    assert redact("sqlite:////tmp/x.db") == "sqlite:////tmp/x.db" and redact(3) == 3


def test_study_storage_env_unset_exits_2_naming_the_field(tmp_path):
    spec = write_spec(tmp_path, tracking={"study_storage_env": "SURNN_TEST_NO_SUCH_VAR"})
    proc = run_sweep(tmp_path, str(spec), "--dry-run")
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "tracking.study_storage_env" in proc.stderr
    assert "SURNN_TEST_NO_SUCH_VAR" in proc.stderr


def test_spec_error_never_echoes_a_password(tmp_path):
    spec = write_spec(tmp_path, tracking={"uri": f"postgresql://u:{SETTING_PW}@db/mlflow", "study_storage": 5})
    proc = run_sweep(tmp_path, str(spec), "--dry-run")
    assert proc.returncode == 2 and "tracking.study_storage" in proc.stderr
    assert SETTING_PW not in proc.stderr + proc.stdout


@pytest.mark.parametrize("address", [f"u:{SETTING_PW}@127.0.0.1:1",   # Ray client retries for ~30 s:
                                     pytest.param(f"ray://u:{SETTING_PW}@127.0.0.1:1", marks=pytest.mark.slow)])
def test_a_bad_ray_address_is_one_line_without_its_password(tmp_path, address):
    spec = write_spec(tmp_path)
    proc = run_sweep(tmp_path, str(spec), "--ray-address", address, timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "--ray-address" in errors[0] and "127.0.0.1:1" in errors[0], proc.stderr[-2000:]
    assert SETTING_PW not in proc.stdout + proc.stderr


@pytest.fixture
def mlflow_server(tmp_path):
    port = free_port()
    store = tmp_path / "server"
    store.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{store}/mlflow.db",
                             "--serve-artifacts", "--artifacts-destination", str(store / "artifacts"),
                             "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
                            env=sweep_env(tmp_path), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 180   # its imports alone take about a minute on a busy 2-core machine
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1)
            break
        except OSError:
            time.sleep(0.3)
    else:
        proc.kill()
        pytest.fail("mlflow server never became healthy")
    yield port, store
    proc.terminate()
    proc.wait(timeout=30)


@pytest.mark.slow
def test_planted_passwords_reach_no_param_tag_artifact_or_console_line(tmp_path, mlflow_server):
    port, store = mlflow_server
    spec = write_spec(tmp_path, search={"num_trials": 3, "max_concurrent": 2}, scheduler="none",
                      training={"epochs": 2, "data_url": f"postgresql://reader:{SETTING_PW}@db:5432/data"},
                      tracking={"uri": f"sqlite:///{tmp_path}/unused.db", "experiment": "toy-sweep",
                                "study_storage_env": "SURNN_STUDY_STORAGE"})
    uri = f"http://alice:{TRACKING_PW}@127.0.0.1:{port}"
    env = {"SURNN_STUDY_STORAGE": f"sqlite:///{tmp_path}/optuna.db"}
    dry = subprocess.run([sys.executable, "-m", "orchestrator.sweep", str(spec), "--dry-run", "--tracking-uri", uri],
                         cwd=tmp_path, env={**sweep_env(tmp_path), **env}, capture_output=True, text=True, timeout=120)
    assert dry.returncode == 0, dry.stderr
    proc = subprocess.run([sys.executable, "-m", "orchestrator.sweep", str(spec), "--tracking-uri", uri],
                          cwd=tmp_path, env={**sweep_env(tmp_path), **env}, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    console = dry.stdout + dry.stderr + proc.stdout + proc.stderr

    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"http://127.0.0.1:{port}")
    exp = client.get_experiment_by_name("toy-sweep")
    runs = client.search_runs([exp.experiment_id], max_results=100)
    assert len(runs) == 4   # the parent and three trials: the sweep really logged there
    seen = [console]
    for run in runs:
        seen += [f"{k}={v}" for k, v in {**run.data.params, **run.data.tags}.items()]
    parent = next(r for r in runs if r.data.tags.get("sweep.role") == "parent")
    (tmp_path / "dl").mkdir()
    logged = Path(client.download_artifacts(parent.info.run_id, "spec.yaml", str(tmp_path / "dl"))).read_text()
    assert "reader:***@db" in logged and "study_storage_env: SURNN_STUDY_STORAGE" in logged
    files = [p for p in store.rglob("*") if p.is_file()]   # every artifact and the store's own bytes
    assert any(p.name == "spec.yaml" for p in files) and any(p.name == "params.json" for p in files)
    seen += [p.read_bytes().decode("latin-1") for p in files]
    for text in seen:
        assert TRACKING_PW not in text and SETTING_PW not in text, text[:3000]
    assert "alice:***@127.0.0.1" in dry.stdout and "reader:***@db" in dry.stdout   # masked, not dropped
