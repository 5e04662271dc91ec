"""The LRA-release tasks through the registry and the trainer: pathfinder, pathx, retrieval."""
import pytest

from surnn.data import load_task
from surnn.train import train
from test_lra_files import _pathfinder_tree, _tsv


def _train(name, options, tmp_path):
    reports = []
    result = train({"task": name, "task_options": options, "hidden_size": 8, "epochs": 1, "steps_per_epoch": 2,
                    "batch_size": 4, "max_period": 16.0, "num_threads": 1, "cache_dir": str(tmp_path / "cache")},
                   lambda m, checkpoint_dir=None: reports.append(m))
    assert result["status"] == "completed" and 0.0 <= reports[-1]["val_accuracy"] <= 1.0
    return result


def test_pathfinder_trains_from_a_release_folder(tmp_path):
    _pathfinder_tree(tmp_path / "lra", files=(10, 10))
    task = load_task("pathfinder", {"path": str(tmp_path / "lra")}, cache_dir=tmp_path / "cache")
    assert (len(task.train), len(task.validation), len(task.test)) == (16, 2, 2)
    assert task.train.get_batch([0]).inputs.shape == (1, 1024)
    _train("pathfinder", {"path": str(tmp_path / "lra")}, tmp_path)


def test_retrieval_trains_a_dual_encoder_on_both_documents(tmp_path):
    rows = [(str(i % 2), f"a{i}", f"b{i}", "paper " * (i + 1), "cites " * (2 * i + 1)) for i in range(8)]
    _tsv(tmp_path / "lra", {"train": rows, "eval": rows[:4], "test": rows[:4]})
    task = load_task("retrieval", {"path": str(tmp_path / "lra"), "max_length": 20}, cache_dir=tmp_path / "cache")
    batch = task.train.get_batch([0, 7])
    assert batch.inputs.shape == (2, 20) and batch.inputs_b.shape == (2, 20) and batch.mask_b[0].sum() == 6
    _train("retrieval", {"path": str(tmp_path / "lra"), "max_length": 20}, tmp_path)


def test_lra_tasks_without_their_files_say_where_to_put_them(tmp_path, monkeypatch):
    monkeypatch.delenv("SURNN_LRA_DIR", raising=False)
    with pytest.raises(ValueError, match=r"pathx.path: the LRA release's files are needed"):
        load_task("pathx", {}, cache_dir=tmp_path)
    with pytest.raises(ValueError, match=r"retrieval: no LRA release files at"):
        load_task("retrieval", {"path": str(tmp_path / "nowhere")}, cache_dir=tmp_path)
