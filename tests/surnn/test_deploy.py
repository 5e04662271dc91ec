import numpy as np
import pytest
import torch

import surnn
from surnn.data import load_task
from surnn.sparse.timing import longest_sequence
from surnn.train import evaluate, train
from surnn.train_config import TrainConfig

ADDING = {"num_train": 128, "num_val": 32, "num_test": 32, "seq_len": 30}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("run")
    config = {"task": "adding", "task_options": ADDING, "hidden_size": 12, "epochs": 1, "steps_per_epoch": 3,
              "batch_size": 16, "max_period": 16.0, "num_threads": 1, "inference_timing": "off",
              "cache_dir": str(folder / "data"), "checkpoint_dir": str(folder / "ckpt")}
    result = train(config, lambda metrics, checkpoint_dir=None: None)
    return config, result, folder / "ckpt"


def _batch_tensors(batch):
    return type(batch)(*(None if a is None else torch.from_numpy(np.ascontiguousarray(a)) for a in batch))


def test_load_gives_the_trained_model_and_its_sparse_engine(trained):
    config, result, ckpt = trained
    model = surnn.load(ckpt)
    assert not model.training
    cfg = TrainConfig.from_dict(config)
    task = load_task(cfg.task, cfg.task_options, cache_dir=cfg.cache_dir)
    metrics = evaluate(model, task.validation, task.info, cfg, torch.device("cpu"))
    assert metrics["val_mse"] == pytest.approx(result["val_mse"], rel=1e-6)
    batch = _batch_tensors(longest_sequence(task.validation))
    with torch.no_grad():
        want = model.forward_batch(batch)
    got = model.sparse().forward_batch(batch)
    torch.testing.assert_close(got.output, want.output, rtol=1e-5, atol=1e-5)
    assert surnn.load(ckpt / "checkpoint.pt").state_dict().keys() == model.state_dict().keys()


def test_load_from_the_sweeps_mlflow_artifacts_in_two_lines(trained, tmp_path, monkeypatch):
    import mlflow
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)   # set_tracking_uri exports it; undone after the test
    client = MlflowClient(uri)
    run = client.create_run(client.create_experiment("deploy", artifact_location=str(tmp_path / "artifacts")))
    client.log_artifacts(run.info.run_id, str(trained[2]), "front_weights/trial_0")   # as the sweep logs a front member
    mlflow.set_tracking_uri(uri)
    path = mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path="front_weights/trial_0",
                                               dst_path=str(tmp_path / "download"))
    engine = surnn.load(path).sparse()
    assert engine.backend in ("native", "eager") and len(engine.layers) == 1


def test_checkpoint_with_pickled_objects_needs_trust(trained, tmp_path):
    state = torch.load(trained[2] / "checkpoint.pt", weights_only=False)
    state["rng"]["numpy"] = np.random.get_state()           # an ndarray: not plain data
    torch.save(state, tmp_path / "checkpoint.pt")
    with pytest.raises(ValueError, match="pass trusted=True"):
        surnn.load(tmp_path)
    assert surnn.load(tmp_path, trusted=True) is not None


@pytest.mark.parametrize("make,message", [
    (lambda p: p, "no trainer checkpoint there"),
    (lambda p: (p / "checkpoint.pt").write_text("not a checkpoint") and p, "not a readable checkpoint"),
    (lambda p: torch.save({"weights": 1}, p / "checkpoint.pt") or p, "not a surnn trainer checkpoint"),
])
def test_load_bad_path_is_one_line_naming_it(tmp_path, make, message):
    with pytest.raises(ValueError, match=message) as err:
        surnn.load(make(tmp_path))
    assert str(tmp_path) in str(err.value) and "\n" not in str(err.value)
