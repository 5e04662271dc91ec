"""Synthetic memory tasks: selective copying, the adding problem and delayed recall.

Each generator takes an injected `np.random.Generator` and returns Arrow-ready columns
(see `base.py`) built with whole-array numpy operations, never a loop over samples.
Token ids for the token tasks: 0 pad, 1 blank, 2 query, 3.. data; per-step labels are
class indices 0..vocab_size-1 at the query steps and IGNORE_INDEX elsewhere.

The `*_splits` functions draw train, validation and test from three independent streams
spawned from `seed`, so a split's data do not change when another split's size does.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

import datasets
import numpy as np
import pyarrow as pa

from .base import IGNORE_INDEX, TaskInfo
from .options import SplitOptions, require
from .registry import IDS, VALUES, TaskSpec, register

BLANK_ID = 1
QUERY_ID = 2
FIRST_DATA_ID = 3
SPLITS = ("train", "validation", "test")


def _list_array(offsets: np.ndarray, values: np.ndarray) -> pa.ListArray:
    """A list<...> Arrow array from row offsets and flat values (no per-row objects)."""
    return pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), pa.array(values))


def _fixed_offsets(num_samples: int, length: int) -> np.ndarray:
    return np.arange(num_samples + 1, dtype=np.int64) * length


def _distinct_sorted(rng: np.random.Generator, num_samples: int, n: int, k: int) -> np.ndarray:
    """k distinct sorted positions in [0, n) per row, uniform over subsets."""
    out = np.empty((num_samples, k), dtype=np.int64)
    rows = max(1, 2**22 // n)       # bound the random matrix to ~32 MB at a time
    for a in range(0, num_samples, rows):
        keys = rng.random((min(rows, num_samples - a), n))
        out[a: a + rows] = np.sort(np.argpartition(keys, k - 1, axis=1)[:, :k], axis=1)
    return out


def selective_copy(rng: np.random.Generator, num_samples: int, *, seq_len: int = 4096,
                   num_tokens: int = 16, vocab_size: int = 16) -> dict:
    """Mamba's selective copying: recall the scattered data tokens in order.

    Args:
        rng: source of randomness.
        num_samples: number of sequences.
        seq_len: blank steps among which the data tokens are placed.
        num_tokens: data tokens per sequence, then as many query steps.
        vocab_size: number of distinct data values.

    Returns:
        Columns `input_ids` and `targets` (list<int32>, seq_len + num_tokens steps each).
    """
    length = seq_len + num_tokens
    ids = np.full((num_samples, length), BLANK_ID, dtype=np.int32)
    targets = np.full((num_samples, length), IGNORE_INDEX, dtype=np.int32)
    data = rng.integers(0, vocab_size, (num_samples, num_tokens), dtype=np.int32)
    rows = np.arange(num_samples)[:, None]
    ids[rows, _distinct_sorted(rng, num_samples, seq_len, num_tokens)] = data + FIRST_DATA_ID
    ids[:, seq_len:] = QUERY_ID
    targets[:, seq_len:] = data
    offsets = _fixed_offsets(num_samples, length)
    return {"input_ids": _list_array(offsets, ids.ravel()),
            "targets": _list_array(offsets, targets.ravel())}


def adding(rng: np.random.Generator, num_samples: int, *, seq_len: int = 200) -> dict:
    """The adding problem: sum the two marked values of a random sequence.

    Args:
        rng: source of randomness.
        num_samples: number of sequences.
        seq_len: steps per sequence; one marker lies in each half.

    Returns:
        Columns `inputs` (list<float32>, seq_len * 2 values: value, marker per step) and
        `target` (float32, the sum of the two marked values).
    """
    values = rng.random((num_samples, seq_len), dtype=np.float32)
    half = seq_len // 2
    first = rng.integers(0, half, num_samples)
    second = rng.integers(half, seq_len, num_samples)
    markers = np.zeros((num_samples, seq_len), dtype=np.float32)
    rows = np.arange(num_samples)
    markers[rows, first] = 1.0
    markers[rows, second] = 1.0
    target = values[rows, first] + values[rows, second]
    inputs = np.stack([values, markers], axis=-1)          # row-major over (t, feature)
    return {"inputs": _list_array(_fixed_offsets(num_samples, 2 * seq_len), inputs.ravel()),
            "target": target.astype(np.float32)}


def delayed_recall(rng: np.random.Generator, num_samples: int, *, num_tokens: int = 4,
                   vocab_size: int = 8, min_delay: int = 100, max_delay: int = 120) -> dict:
    """Delayed recall: remember a few tokens through a silence of varying length.

    Args:
        rng: source of randomness.
        num_samples: number of sequences.
        num_tokens: data tokens at the start, then as many query steps at the end.
        vocab_size: number of distinct data values.
        min_delay: shortest silence (blank steps), inclusive.
        max_delay: longest silence, inclusive; drawn uniformly per sample.

    Returns:
        Columns `input_ids` and `targets` (list<int32>, 2 * num_tokens + delay steps).
    """
    delay = rng.integers(min_delay, max_delay + 1, num_samples)
    lengths = 2 * num_tokens + delay
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    ids = np.full(offsets[-1], BLANK_ID, dtype=np.int32)
    targets = np.full(offsets[-1], IGNORE_INDEX, dtype=np.int32)
    data = rng.integers(0, vocab_size, (num_samples, num_tokens), dtype=np.int32)
    steps = np.arange(num_tokens)
    data_pos = offsets[:-1, None] + steps            # the first num_tokens steps
    query_pos = offsets[1:, None] - num_tokens + steps   # the last num_tokens steps
    ids[data_pos] = data + FIRST_DATA_ID
    ids[query_pos] = QUERY_ID
    targets[query_pos] = data
    return {"input_ids": _list_array(offsets, ids), "targets": _list_array(offsets, targets)}


def build_splits(generator, num_train: int, num_val: int, num_test: int, seed: int = 0,
                 **options) -> dict[str, dict]:
    """Train/validation/test columns of one generator (`selective_copy`, `adding`, `delayed_recall`).

    Each split draws from its own stream spawned from `seed`, so resizing one split leaves the
    others unchanged; the data depend on the seed and the options only.

    Args:
        generator: one of this module's generators, called as generator(rng, n, **options).
        num_train, num_val, num_test: sequences per split.
        seed: the root seed.
        **options: the generator's keywords (e.g. `seq_len`).

    Returns:
        `train`, `validation`, `test` -> columns.
    """
    streams = np.random.SeedSequence(seed).spawn(len(SPLITS))
    counts = (num_train, num_val, num_test)
    return {split: generator(np.random.default_rng(stream), n, **options)
            for split, n, stream in zip(SPLITS, counts, streams)}


# ---------------------------------------------------------------------------- the tasks

@dataclass(frozen=True)
class SelectiveCopyOptions(SplitOptions):
    TASK: ClassVar[str] = "selective_copy"
    num_train: int = 10000
    num_val: int = 1000
    num_test: int = 1000
    seq_len: int = 4096
    num_tokens: int = 16
    vocab_size: int = 16

    def __post_init__(self):
        self.check_common()
        self.at_least("num_tokens", 1)
        self.at_least("vocab_size", 1)
        require(self.TASK, "num_tokens", self.num_tokens <= self.seq_len, "<= seq_len",
                f"{self.num_tokens} > {self.seq_len}")


@dataclass(frozen=True)
class AddingOptions(SplitOptions):
    TASK: ClassVar[str] = "adding"
    num_train: int = 20000
    num_val: int = 1000
    num_test: int = 1000
    seq_len: int = 200

    def __post_init__(self):
        self.check_common()
        self.at_least("seq_len", 2)


@dataclass(frozen=True)
class DelayedRecallOptions(SplitOptions):
    TASK: ClassVar[str] = "delayed_recall"
    num_train: int = 20000
    num_val: int = 1000
    num_test: int = 1000
    num_tokens: int = 4
    vocab_size: int = 8
    min_delay: int = 100
    max_delay: int = 120

    def __post_init__(self):
        self.check_common()
        self.at_least("num_tokens", 1)
        self.at_least("vocab_size", 1)
        self.at_least("min_delay", 0)
        require(self.TASK, "max_delay", self.max_delay >= self.min_delay, ">= min_delay",
                f"{self.max_delay} < {self.min_delay}")


def _token_sequence_info(name: str, o) -> TaskInfo:
    # Ids: pad, blank, query, then the data values; labels are the data values 0..V-1.
    return TaskInfo(name, "sequence", "tokens", num_classes=o.vocab_size, pooling="none",
                    vocab_size=o.vocab_size + FIRST_DATA_ID, metric="val_accuracy")


def _splits_of(generator):
    return lambda o: build_splits(generator, **dataclasses.asdict(o))


_TOKEN_SEQUENCES = datasets.Features({"input_ids": IDS, "targets": IDS})
register("selective_copy", TaskSpec(SelectiveCopyOptions, lambda o: _token_sequence_info("selective_copy", o),
                                    lambda o: _TOKEN_SEQUENCES, _splits_of(selective_copy)))
register("adding", TaskSpec(
    AddingOptions,
    lambda o: TaskInfo("adding", "regression", "continuous", input_dim=2, num_classes=1, metric="val_mse",
                       pooling="last"),
    lambda o: datasets.Features({"inputs": VALUES, "target": datasets.Value("float32")}),
    _splits_of(adding)))
register("delayed_recall", TaskSpec(DelayedRecallOptions, lambda o: _token_sequence_info("delayed_recall", o),
                                    lambda o: _TOKEN_SEQUENCES, _splits_of(delayed_recall)))
