"""The disk cache, the memory-mapped batcher and option validation."""
from __future__ import annotations

import json
import os

import datasets
import numpy as np
import pyarrow as pa
import pytest

from surnn.data import IGNORE_INDEX, PAD_ID, TASK_NAMES, TaskInfo, load_task
from surnn.data import synthetic
from surnn.data.batching import SequenceSplit
from surnn.data.store import cache_folder, cached_splits

SMALL_RECALL = dict(num_train=2500, num_val=30, num_test=30, min_delay=5, max_delay=40)
IDS = datasets.List(datasets.Value("int32"))
ROW_FEATURES = datasets.Features({"input_ids": IDS, "targets": IDS})
ROW_INFO = TaskInfo("rows", "sequence", "tokens", vocab_size=5000, num_classes=5000,
                    pooling="none")


def row_columns(n: int, seed: int = 0) -> dict:
    """Rows whose tokens all equal row + 1, of lengths 1..50: each row names itself."""
    lengths = np.random.default_rng(seed).integers(1, 51, n)
    ids = [[i + 1] * int(k) for i, k in enumerate(lengths)]
    return {"input_ids": ids, "targets": [[-(i + 1)] * int(k) for i, k in enumerate(lengths)]}


def row_split(tmp_path, n: int = 2300) -> SequenceSplit:
    splits = cached_splits("rows", {"n": n}, lambda: {"train": row_columns(n)}, ROW_FEATURES,
                           tmp_path)
    return SequenceSplit(splits["train"], ROW_INFO)


def counting(monkeypatch, name: str) -> list:
    calls = []
    real = getattr(synthetic, name)

    def wrapper(*args, **kwargs):
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(synthetic, name, wrapper)
    return calls


def test_cache_is_written_once_then_read(tmp_path, monkeypatch):
    calls = counting(monkeypatch, "build_splits")
    first = load_task("delayed_recall", SMALL_RECALL, cache_dir=tmp_path)
    (folder,) = tmp_path.iterdir()
    stamp = os.stat(folder).st_mtime_ns
    second = load_task("delayed_recall", SMALL_RECALL, cache_dir=tmp_path)
    assert len(calls) == 1
    assert [p.name for p in tmp_path.iterdir()] == [folder.name]   # no temp folders left
    assert os.stat(folder).st_mtime_ns == stamp
    assert np.array_equal(first.train.lengths, second.train.lengths)
    info = json.loads((folder / "settings.json").read_text())
    assert info["task"] == "delayed_recall"
    assert info["settings"]["options"]["max_delay"] == 40
    assert folder.name.startswith("delayed_recall-") and len(folder.name) == 15 + 16


def test_different_settings_use_different_folders(tmp_path):
    load_task("delayed_recall", SMALL_RECALL, cache_dir=tmp_path)
    load_task("delayed_recall", {**SMALL_RECALL, "seed": 1}, cache_dir=tmp_path)
    load_task("delayed_recall", {**SMALL_RECALL, "max_delay": 41}, cache_dir=tmp_path)
    assert len(list(tmp_path.iterdir())) == 3
    assert cache_folder("t", {"a": 1, "b": 2}, tmp_path) == cache_folder("t", {"b": 2, "a": 1},
                                                                       tmp_path)


def test_cache_dir_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("SURNN_CACHE_DIR", str(tmp_path / "env"))
    assert cache_folder("t", {}).parent == tmp_path / "env"


def test_losing_a_build_race_loads_the_winner(tmp_path):
    def ours():
        # Another process finishes the same folder while we are still building.
        cached_splits("rows", {"n": 3}, lambda: {"train": {"input_ids": [[7]] * 3,
                                                           "targets": [[0]] * 3}},
                      ROW_FEATURES, tmp_path)
        return {"train": {"input_ids": [[1]] * 3, "targets": [[0]] * 3}}

    splits = cached_splits("rows", {"n": 3}, ours, ROW_FEATURES, tmp_path)
    assert splits["train"]["input_ids"] == [[7]] * 3
    assert len(list(tmp_path.iterdir())) == 1


def test_loaded_table_is_memory_mapped(tmp_path):
    load_task("delayed_recall", SMALL_RECALL, cache_dir=tmp_path)
    before = pa.total_allocated_bytes()
    task = load_task("delayed_recall", SMALL_RECALL, cache_dir=tmp_path)
    assert task.train.memory_mapped
    assert task.train.dataset.data.table.column("input_ids").num_chunks > 1
    # The numpy views borrow Arrow's buffers: nothing was copied into Arrow's pool...
    assert pa.total_allocated_bytes() - before < 100_000
    values = task.train._inputs.values[0]
    assert not values.flags.owndata
    # ...and, where /proc is there to ask, they lie in a mapping of a cache file.
    if os.path.exists("/proc/self/maps"):
        address = values.__array_interface__["data"][0]
        files = []
        with open("/proc/self/maps") as maps:
            for line in maps:
                low, high = (int(x, 16) for x in line.split()[0].split("-"))
                if low <= address < high:
                    files.append(line.split()[-1])
        assert files and files[0].startswith(str(tmp_path)) and files[0].endswith(".arrow")


def test_batch_padding_and_mask_across_record_batches(tmp_path):
    split = row_split(tmp_path)
    assert split.dataset.data.table.column("input_ids").num_chunks > 1
    indices = np.array([5, 2299, 0, 1000, 999, 1500])
    batch = split.get_batch(indices)
    lengths = split.lengths[indices]
    assert batch.inputs.shape == batch.mask.shape == (6, lengths.max())
    assert batch.inputs.dtype == np.int64 and batch.targets.dtype == np.int64
    assert (batch.mask.sum(axis=1) == lengths).all()
    assert (batch.mask == (np.arange(lengths.max()) < lengths[:, None])).all()
    for r, i in enumerate(indices):
        assert (batch.inputs[r, : lengths[r]] == i + 1).all()
        assert (batch.targets[r, : lengths[r]] == -(i + 1)).all()
    assert (batch.inputs[~batch.mask] == PAD_ID).all()
    assert (batch.targets[~batch.mask] == IGNORE_INDEX).all()


def test_continuous_batches(tmp_path):
    task = load_task("adding", dict(num_train=30, num_val=3, num_test=3, seq_len=20),
                     cache_dir=tmp_path)
    batch = task.train.get_batch([3, 4])
    row = np.asarray(task.train.dataset[3]["inputs"], dtype=np.float32).reshape(20, 2)
    assert batch.inputs.shape == (2, 20, 2) and batch.mask.all()
    assert np.array_equal(batch.inputs[0], row)
    assert batch.targets[0] == pytest.approx(task.train.dataset[3]["target"])


def test_iter_batches_covers_every_row_once_per_pass(tmp_path):
    split = row_split(tmp_path, n=1234)
    seen = [b.inputs[:, 0] - 1 for b in split.iter_batches(100, shuffle=True, seed=3)]
    assert [len(s) for s in seen] == [100] * 12 + [34]
    order = np.concatenate(seen)
    assert sorted(order) == list(range(1234)) and not np.array_equal(order, np.arange(1234))
    again = np.concatenate([b.inputs[:, 0] - 1 for b in split.iter_batches(100, shuffle=True,
                                                                             seed=3)])
    other = np.concatenate([b.inputs[:, 0] - 1 for b in split.iter_batches(100, shuffle=True,
                                                                             seed=4)])
    assert np.array_equal(order, again) and not np.array_equal(order, other)
    plain = np.concatenate([b.inputs[:, 0] - 1 for b in split.iter_batches(100, shuffle=False)])
    assert np.array_equal(plain, np.arange(1234))
    dropped = list(split.iter_batches(100, shuffle=True, drop_last=True))
    assert [len(b.targets) for b in dropped] == [100] * 12


@pytest.mark.parametrize("name, options, message", [
    ("nope", None, r"unknown task 'nope': no data loader for it \(available: listops, selective_copy"),
    ("listops", {"max_len": 3}, r"unknown option.*'max_len'.*'listops'"),
    ("listops", {"min_length": 500, "max_length": 400}, r"^listops\.min_length: must be <"),
    ("listops", {"num_train": 1.5}, r"^listops\.num_train: must be an integer"),
    ("listops", {"max_depth": 3}, r"^listops\.min_length: must be < 122"),
    ("selective_copy", {"num_tokens": 0}, r"^selective_copy\.num_tokens: must be >= 1"),
    ("selective_copy", {"seq_len": 8}, r"^selective_copy\.num_tokens: must be <= seq_len"),
    ("adding", {"seq_len": 1}, r"^adding\.seq_len: must be >= 2 \(got 1\)"),
    ("delayed_recall", {"min_delay": 9, "max_delay": 8}, r"^delayed_recall\.max_delay"),
    ("delayed_recall", {"num_val": -1}, r"^delayed_recall\.num_val: must be >= 0"),
])
def test_bad_options_name_the_field(tmp_path, name, options, message):
    with pytest.raises(ValueError, match=message):
        load_task(name, options, cache_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_registry_names():
    assert TASK_NAMES == ("listops", "selective_copy", "adding", "delayed_recall", "image", "scifar", "smnist",
                          "psmnist", "text", "wikitext103", "wikitext2", "pathfinder", "pathx", "retrieval")


def test_numpy_integer_options_are_accepted_and_cached_as_ints(tmp_path):
    options = dict(num_train=np.int64(20), num_val=4, num_test=4, seed=np.int32(2))
    task = load_task("delayed_recall", options, cache_dir=tmp_path)
    assert type(task.options.num_train) is int and len(task.train) == 20
