"""Structure of the synthetic tasks: selective copying, adding, delayed recall."""
from __future__ import annotations

import numpy as np
import pytest

from surnn.data import IGNORE_INDEX, PAD_ID, load_task
from surnn.data import synthetic
from surnn.data.synthetic import BLANK_ID, FIRST_DATA_ID, QUERY_ID


def rows(columns: dict, name: str) -> list[np.ndarray]:
    return [np.asarray(r) for r in columns[name].to_pylist()]


def check_recall_row(ids: np.ndarray, targets: np.ndarray, num_tokens: int, vocab_size: int):
    """The data tokens, in order, are the targets at the final num_tokens query steps."""
    body = ids[:-num_tokens]
    data = body[body >= FIRST_DATA_ID] - FIRST_DATA_ID
    assert len(data) == num_tokens
    allowed = {BLANK_ID} | set(range(FIRST_DATA_ID, FIRST_DATA_ID + vocab_size))
    assert set(np.unique(body).tolist()) <= allowed
    assert (ids[-num_tokens:] == QUERY_ID).all()
    assert (targets[-num_tokens:] == data).all()
    assert (targets[:-num_tokens] == IGNORE_INDEX).all()


def test_selective_copy_structure():
    rng = np.random.default_rng(0)
    cols = synthetic.selective_copy(rng, 200, seq_len=64, num_tokens=8, vocab_size=5)
    positions = []
    for ids, targets in zip(rows(cols, "input_ids"), rows(cols, "targets")):
        assert len(ids) == len(targets) == 64 + 8
        check_recall_row(ids, targets, num_tokens=8, vocab_size=5)
        positions.append(np.flatnonzero(ids[:64] >= FIRST_DATA_ID))
    spread = np.concatenate(positions)
    assert spread.min() < 8 and spread.max() > 56   # positions cover the whole range
    assert len({tuple(p) for p in positions}) > 190  # and differ between samples


def test_selective_copy_default_length():
    cols = synthetic.selective_copy(np.random.default_rng(1), 3)
    ids, targets = rows(cols, "input_ids"), rows(cols, "targets")
    assert [len(r) for r in ids] == [4096 + 16] * 3
    for i, t in zip(ids, targets):
        check_recall_row(i, t, num_tokens=16, vocab_size=16)


def test_delayed_recall_structure_and_varying_silence():
    cols = synthetic.delayed_recall(np.random.default_rng(2), 500, num_tokens=4, vocab_size=8,
                                    min_delay=100, max_delay=120)
    delays = []
    for ids, targets in zip(rows(cols, "input_ids"), rows(cols, "targets")):
        assert (ids[:4] >= FIRST_DATA_ID).all()
        check_recall_row(ids, targets, num_tokens=4, vocab_size=8)
        delays.append(len(ids) - 8)
        assert (ids[4:-4] == BLANK_ID).all()
    assert min(delays) >= 100 and max(delays) <= 120
    assert min(delays) == 100 and max(delays) == 120 and len(set(delays)) == 21


def test_adding_structure_and_trivial_mse():
    cols = synthetic.adding(np.random.default_rng(3), 20000, seq_len=50)
    inputs = np.asarray(cols["inputs"].values).reshape(20000, 50, 2)
    values, markers = inputs[..., 0], inputs[..., 1]
    assert ((values >= 0) & (values < 1)).all()
    assert (markers.sum(axis=1) == 2).all() and set(np.unique(markers)) == {0.0, 1.0}
    assert (markers[:, :25].sum(axis=1) == 1).all() and (markers[:, 25:].sum(axis=1) == 1).all()
    target = np.asarray(cols["target"])
    np.testing.assert_allclose(target, (values * markers).sum(axis=1), rtol=1e-6)
    assert abs(np.mean((target - 1.0) ** 2) - 1 / 6) < 0.01


def test_splits_use_distinct_streams_and_are_deterministic():
    a = synthetic.build_splits(synthetic.delayed_recall, 50, 50, 50, seed=9)
    b = synthetic.build_splits(synthetic.delayed_recall, 50, 50, 50, seed=9)
    c = synthetic.build_splits(synthetic.delayed_recall, 50, 50, 50, seed=10)
    assert set(a) == {"train", "validation", "test"}
    assert all(a[s]["input_ids"].equals(b[s]["input_ids"]) for s in a)
    assert not a["train"]["input_ids"].equals(a["validation"]["input_ids"])
    assert not a["train"]["input_ids"].equals(c["train"]["input_ids"])
    # One split's size does not change another split's data.
    d = synthetic.build_splits(synthetic.delayed_recall, 70, 50, 50, seed=9)
    assert d["test"]["input_ids"].equals(a["test"]["input_ids"])


@pytest.mark.parametrize("name, options, expected", [
    ("selective_copy", dict(num_train=20, num_val=4, num_test=4, seq_len=100),
     dict(kind="sequence", pooling="none", num_classes=16, vocab_size=19)),
    ("adding", dict(num_train=200, num_val=20, num_test=20),
     dict(kind="regression", input_kind="continuous", input_dim=2, metric="val_mse",
          pooling="last")),
    ("delayed_recall", dict(num_train=200, num_val=20, num_test=20),
     dict(kind="sequence", pooling="none", num_classes=8, vocab_size=11)),
])
def test_tasks_load_with_their_info(tmp_path, name, options, expected):
    task = load_task(name, options, cache_dir=tmp_path)
    for key, value in expected.items():
        assert getattr(task.info, key) == value
    batch = task.train.get_batch(np.arange(8))
    if task.info.kind == "sequence":
        assert batch.targets.shape == batch.mask.shape and batch.targets.dtype == np.int64
        assert (batch.targets[~batch.mask] == IGNORE_INDEX).all()
        assert (batch.inputs[~batch.mask] == PAD_ID).all()
        # Chance accuracy is 1/vocab_size: every class occurs at the query steps.
        labels = task.train.get_batch(np.arange(len(task.train))).targets
        assert set(np.unique(labels[labels != IGNORE_INDEX])) == set(range(task.info.num_classes))
    else:
        assert batch.inputs.shape == (8, 200, 2) and batch.inputs.dtype == np.float32
        assert batch.targets.shape == (8,) and batch.targets.dtype == np.float32
