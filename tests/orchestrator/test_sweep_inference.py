"""A real sweep of the real trainer whose front is accuracy against measured inference time."""
from __future__ import annotations

import pytest

from test_sweep_e2e import mlflow_runs, run_sweep, write_spec


@pytest.mark.slow
def test_sweep_ranks_by_inference_ms_and_logs_it_to_mlflow(tmp_path):
    spec = write_spec(
        tmp_path, trainable="surnn.train:train",
        task={"name": "adding", "num_train": 128, "num_val": 32, "num_test": 32, "seq_len": 30},
        training={"epochs": 2, "steps_per_epoch": 2, "batch_size": 16, "hidden_size": 8, "max_period": 16.0,
                  "inference_timing": "every", "cache_dir": str(tmp_path / "data")},
        objectives=[{"metric": "val_mse", "goal": "minimize", "ref": 10.0},
                    {"metric": "inference_ms", "goal": "minimize"}],
        search={"num_trials": 3, "max_concurrent": 1},
        scheduler={"name": "pareto_asha", "grace_period": 1, "reduction_factor": 2})
    proc = run_sweep(tmp_path, str(spec), timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    client, parents, children = mlflow_runs(tmp_path)
    assert len(children) == 3
    for child in children:      # every evaluation carried the timing, so no rung lacked an objective
        history = client.get_metric_history(child.info.run_id, "inference_ms")
        assert [m.step for m in history] == list(range(1, int(child.data.tags["sweep.fidelity"]) + 1))
        assert all(m.value > 0 for m in history) and child.data.metrics["inference_speedup"] > 0
    assert any(c.data.tags["pareto_optimal"] == "true" for c in children)
    page = client.download_artifacts(parents[0].info.run_id, "pareto_front.html", str(tmp_path))
    assert "inference_ms (minimize): ms per sequence" in open(page).read()
