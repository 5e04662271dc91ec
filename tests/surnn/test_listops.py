"""ListOps generation: labels, length bounds, determinism, uniqueness, Arrow round trip."""
from __future__ import annotations

import numpy as np
import pytest

from surnn.data import load_task
from surnn.data import listops

SMALL = dict(max_depth=6, max_args=5, min_length=20, max_length=80)


def evaluate(source: str) -> int:
    """An independent evaluator: a stack of [operator, args...] frames."""
    ops = {"[MIN": min, "[MAX": max, "[MED": lambda a: int(np.median(a)),
           "[SM": lambda a: sum(a) % 10}
    stack: list[list] = []
    value = None
    for tok in source.split():
        if tok in ops:
            stack.append([tok])
            continue
        if tok == "]":
            frame = stack.pop()
            value = ops[frame[0]](frame[1:])
        else:
            value = int(tok)
        if not stack:
            return value
        stack[-1].append(value)
    raise AssertionError(f"unbalanced source: {source!r}")


def test_evaluator_itself():
    assert evaluate("[MAX 2 9 [MIN 4 7 ] 0 ]") == 9
    assert evaluate("[MED 1 2 ]") == 1                 # int(np.median([1, 2])) == int(1.5)
    assert evaluate("[SM 9 9 [MED 3 8 1 6 ] ]") == (9 + 9 + 4) % 10


@pytest.mark.parametrize("settings", [SMALL, {}], ids=["small", "lra-default"])
def test_labels_match_an_independent_evaluator(settings):
    samples = listops.generate(150, seed=3, **settings)
    assert len(samples) == 150
    for s in samples:
        assert 0 <= s["target"] <= 9
        assert evaluate(s["source"]) == s["target"], s["source"]


def test_all_operators_and_labels_occur():
    samples = listops.generate(400, seed=0, **SMALL)
    tokens = {t for s in samples for t in s["source"].split()}
    assert set(listops.VOCAB) <= tokens
    assert {s["target"] for s in samples} == set(range(10))


@pytest.mark.parametrize("settings", [SMALL, {}], ids=["small", "lra-default"])
def test_lengths_strictly_within_bounds(settings):
    lo, hi = settings.get("min_length", 500), settings.get("max_length", 2000)
    lengths = [len(s["source"].split()) for s in listops.generate(300, seed=1, **settings)]
    assert min(lengths) > lo and max(lengths) < hi
    assert len(set(lengths)) > 10           # a spread of lengths, not a single one


def test_depth_never_exceeds_max_depth():
    for s in listops.generate(200, seed=2, **SMALL):
        depth = deepest = 0
        for tok in s["source"].split():
            depth += tok.startswith("[")
            deepest = max(deepest, depth + (not tok.startswith("[") and tok != "]"))
            depth -= tok == "]"
        assert deepest <= SMALL["max_depth"]


def test_seed_determines_the_data():
    a = listops.generate(100, seed=7, **SMALL)
    assert a == listops.generate(100, seed=7, **SMALL)
    assert a != listops.generate(100, seed=8, **SMALL)


def test_no_duplicate_sources_even_when_repeats_are_likely():
    # Only [OP d d ] fits: 4 * 100 distinct sources, so 350 draws repeat often.
    tight = dict(max_depth=2, max_args=3, min_length=3, max_length=5)
    sources = [s["source"] for s in listops.generate(350, seed=0, **tight)]
    assert len(set(sources)) == 350
    with pytest.raises(ValueError, match="distinct"):
        listops.generate(401, seed=0, **tight)


def test_encode_uses_one_based_vocab():
    assert listops.encode("[MAX 2 9 ]") == [12, 3, 10, 15]
    assert listops.VOCAB_SIZE == len(listops.VOCAB) + 1 == 16


def test_build_splits_partition_one_generation():
    splits = listops.build_splits(40, 5, 5, seed=4, **SMALL)
    sources = [s for name in ("train", "validation", "test")
               for s in splits[name]["source"].to_pylist()]
    assert sources == [s["source"] for s in listops.generate(50, seed=4, **SMALL)]


def test_arrow_round_trip_through_load_task(tmp_path):
    task = load_task("listops", dict(num_train=60, num_val=10, num_test=10, seed=5, **SMALL),
                     cache_dir=tmp_path)
    assert task.info.vocab_size == listops.VOCAB_SIZE and task.info.num_classes == 10
    for split in (task.train, task.validation, task.test):
        sources = split.dataset["source"]
        batch = split.get_batch(np.arange(len(split)))
        assert list(batch.targets) == [evaluate(s) for s in sources]
        for row, source in enumerate(sources):
            ids = listops.encode(source)
            assert split.dataset[row]["input_ids"] == ids
            assert batch.inputs[row][batch.mask[row]].tolist() == ids
            assert split.lengths[row] == len(ids)
