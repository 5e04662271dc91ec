"""ListOps by the Long Range Arena rules (LRA's `lra_benchmarks/data/listops.py`).

A sample is a nested expression over the digits 0-9 with the operators MIN, MAX, MED
(`int(np.median(args))`) and SM (sum mod 10), written without parentheses, e.g.
`[MAX 2 9 [MIN 4 7 ] 0 ]`; the label is its value. Trees follow LRA's `generate_tree`:
at depth < max_depth a node is an operator with probability VALUE_P, else a digit (at
max_depth always a digit); an operator takes randint(2, max_args) arguments; the root has
depth 1. A tree is kept when min_length < tokens < max_length, each source at most once.

Drawing one tree at a time in Python, as LRA does, took about two minutes here for the
default 100k samples. Instead, thousands of trees grow at once, level by level, as numpy
arrays (about 25 s for the default splits on one core). Every node's choices are still
independent draws, so the trees have LRA's distribution. A tree is dropped as soon as it
is sure to reach max_length (it would be rejected anyway), so the rare huge trees cost
nothing. Values are reduced bottom-up and the tokens placed in prefix order top-down,
again one level at a time.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar, NamedTuple

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .base import TaskInfo
from .options import SplitOptions, require
from .registry import IDS, TaskSpec, register

VALUE_P = 0.25          # chance that a node at depth < max_depth is an operator (LRA)
OPERATORS = ("[MIN", "[MAX", "[MED", "[SM")
END = "]"
VOCAB = [str(d) for d in range(10)] + list(OPERATORS) + [END]   # id = index + 1, 0 = pad
VOCAB_SIZE = len(VOCAB) + 1
_OP_ID = 11             # id of OPERATORS[0]
_END_ID = 15
_TOKEN_TO_ID = {tok: i + 1 for i, tok in enumerate(VOCAB)}
_TREES_PER_ROUND = 16384   # fixed, so the samples for a seed do not depend on num_samples


class _Level(NamedTuple):
    """The nodes at one depth of a round of trees, children grouped by parent in order."""

    tree: np.ndarray    # which tree each node belongs to
    op: np.ndarray      # operator index 0-3, or -1 for a digit
    nargs: np.ndarray   # number of children (0 for digits)
    value: np.ndarray   # the digit (meaningful for digits only)


def encode(source: str) -> list[int]:
    """Maps a space-separated ListOps source to token ids (1-based, 0 is padding).

    Args:
        source: tokens such as `[MAX 2 9 ]`.

    Returns:
        One id per token.
    """
    return [_TOKEN_TO_ID[tok] for tok in source.split()]


def _grow(rng: np.random.Generator, m: int, max_depth: int, max_args: int,
          max_length: int) -> tuple[list[_Level], np.ndarray]:
    """Grows m trees level by level; returns the levels and each tree's token count."""
    tree = np.arange(m)
    tokens = np.zeros(m, dtype=np.int64)
    alive = np.ones(m, dtype=bool)
    levels = []
    for depth in range(1, max_depth + 1):
        n = tree.size
        is_op = rng.random(n) <= VALUE_P if depth < max_depth else np.zeros(n, dtype=bool)
        nargs = np.where(is_op, rng.integers(2, max_args + 1, n), 0)
        op = np.where(is_op, rng.integers(0, len(OPERATORS), n), -1)
        levels.append(_Level(tree, op, nargs, rng.integers(0, 10, n)))
        tokens += np.bincount(tree, weights=1 + is_op, minlength=m).astype(np.int64)
        children = np.repeat(tree, nargs)
        # Each child adds at least one token: a tree that reaches max_length is lost.
        alive &= tokens + np.bincount(children, minlength=m) < max_length
        tree = children[alive[children]]
        if tree.size == 0:
            break
    return levels, np.where(alive, tokens, max_length)


def _keep(levels: list[_Level], keep: np.ndarray) -> list[_Level]:
    """Drops the nodes of the trees not kept (whole trees, so child groups stay intact)."""
    kept = []
    for lv in levels:
        mask = keep[lv.tree]
        if mask.any():
            kept.append(_Level(*(a[mask] for a in lv)))
    return kept


def _first_child(nargs: np.ndarray) -> np.ndarray:
    """Index of each operator's first child in the next level (children are grouped)."""
    return np.concatenate([[0], np.cumsum(nargs)[:-1]])


def _reduce(op: np.ndarray, nargs: np.ndarray, child_values: np.ndarray) -> np.ndarray:
    """Values of operator nodes from their children's values (children grouped in order)."""
    starts = _first_child(nargs)
    group = np.repeat(np.arange(op.size), nargs)
    ordered = np.sort(group * 16 + child_values) % 16   # sorted within each group
    # int(np.median(args)) of non-negative ints: the middle pair's mean, floored.
    median = (ordered[starts + (nargs - 1) // 2] + ordered[starts + nargs // 2]) // 2
    results = np.stack([np.minimum.reduceat(child_values, starts),
                        np.maximum.reduceat(child_values, starts), median,
                        np.add.reduceat(child_values, starts) % 10])
    return results[op, np.arange(op.size)]


def _evaluate(levels: list[_Level]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Value and token count of every node, bottom-up."""
    values, sizes = [None] * len(levels), [None] * len(levels)
    for d in range(len(levels) - 1, -1, -1):
        lv = levels[d]
        value, size = lv.value.copy(), np.ones(lv.tree.size, dtype=np.int64)
        is_op = lv.op >= 0
        if is_op.any():
            nargs = lv.nargs[is_op]
            value[is_op] = _reduce(lv.op[is_op], nargs, values[d + 1])
            size[is_op] = 2 + np.add.reduceat(sizes[d + 1], _first_child(nargs))
        values[d], sizes[d] = value, size
    return values, sizes


def _serialize(levels: list[_Level], sizes: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Token ids in prefix order, top-down; returns (offsets per tree, flat ids)."""
    offsets = np.concatenate([[0], np.cumsum(sizes[0])])
    ids = np.empty(offsets[-1], dtype=np.int32)
    pos = offsets[:-1]
    for d, lv in enumerate(levels):
        is_op = lv.op >= 0
        ids[pos[~is_op]] = lv.value[~is_op] + 1
        ids[pos[is_op]] = lv.op[is_op] + _OP_ID
        ids[pos[is_op] + sizes[d][is_op] - 1] = _END_ID
        if d + 1 < len(levels):
            nargs, child_size = lv.nargs[is_op], sizes[d + 1]
            before = np.cumsum(child_size) - child_size          # tokens before each child
            first = _first_child(nargs)
            pos = np.repeat(pos[is_op] + 1 - before[first], nargs) + before
    return offsets, ids


def _round(rng: np.random.Generator, max_depth: int, max_args: int, min_length: int,
           max_length: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One round of trees; returns (offsets, flat ids, values) of those of valid length."""
    levels, tokens = _grow(rng, _TREES_PER_ROUND, max_depth, max_args, max_length)
    levels = _keep(levels, (tokens > min_length) & (tokens < max_length))
    if not levels:
        return np.zeros(1, dtype=np.int64), np.zeros(0, dtype=np.int32), np.zeros(0, np.int64)
    values, sizes = _evaluate(levels)
    offsets, ids = _serialize(levels, sizes)
    return offsets, ids, values[0].astype(np.int64)


_STALL_ROUNDS = 20       # rounds of nothing but repeats before giving up


def _generate_arrays(num_samples: int, seed: int, max_depth: int, max_args: int,
                     min_length: int, max_length: int) -> tuple[pa.ListArray, np.ndarray]:
    """Distinct samples as (input_ids list array, targets), in the order drawn."""
    if max_depth < 2 or max_args < 2 or not 0 <= min_length < max_length - 1:
        raise ValueError("listops: need max_depth >= 2, max_args >= 2 and 0 <= min_length "
                         f"< max_length - 1 (got {max_depth}, {max_args}, {min_length}, "
                         f"{max_length})")
    rng = np.random.default_rng(seed)
    seen: set[bytes] = set()
    rows, targets = [], []
    stalled = 0
    while len(targets) < num_samples:
        offsets, ids, values = _round(rng, max_depth, max_args, min_length, max_length)
        before = len(targets)
        for i in range(values.size):
            if len(targets) == num_samples:
                break
            row = ids[offsets[i]: offsets[i + 1]]
            key = row.tobytes()
            if key not in seen:
                seen.add(key)
                rows.append(row)
                targets.append(values[i])
        # Only repeats though valid trees keep coming: the settings allow too few sources.
        stalled = stalled + 1 if values.size and len(targets) == before else 0
        if stalled >= _STALL_ROUNDS:
            raise ValueError(f"listops: only {len(targets)} distinct samples found for these "
                             f"settings, {num_samples} asked for")
    offsets = np.zeros(num_samples + 1, dtype=np.int32)
    np.cumsum([len(r) for r in rows], out=offsets[1:])
    values = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int32)
    return (pa.ListArray.from_arrays(pa.array(offsets), pa.array(values)),
            np.asarray(targets, dtype=np.int64))


def _sources(input_ids: pa.ListArray) -> pa.StringArray:
    """Space-separated source text of every row, joined by Arrow rather than per row."""
    offsets = input_ids.offsets.to_numpy()
    tokens = pa.array([""] + VOCAB).take(input_ids.flatten())
    return pc.binary_join(pa.ListArray.from_arrays(pa.array(offsets - offsets[0]), tokens), " ")


def generate(num_samples: int, seed: int = 0, max_depth: int = 10, max_args: int = 10,
             min_length: int = 500, max_length: int = 2000) -> list[dict]:
    """Generates distinct ListOps samples.

    Args:
        num_samples: number of samples.
        seed: the data depend on this seed only (and on the settings).
        max_depth: deepest level of the tree (the root is level 1).
        max_args: most arguments of one operator (at least 2).
        min_length: kept samples have more tokens than this.
        max_length: kept samples have fewer tokens than this.

    Returns:
        Records `{"source": str, "target": int}`.
    """
    ids, targets = _generate_arrays(num_samples, seed, max_depth, max_args, min_length,
                                    max_length)
    return [{"source": s, "target": int(t)}
            for s, t in zip(_sources(ids).to_pylist(), targets)]


def build_splits(num_train: int = 96000, num_val: int = 2000, num_test: int = 2000,
                 seed: int = 0, max_depth: int = 10, max_args: int = 10,
                 min_length: int = 500, max_length: int = 2000) -> dict[str, dict]:
    """Generates num_train + num_val + num_test distinct samples once and splits them.

    Args:
        num_train: training samples.
        num_val: validation samples.
        num_test: test samples.
        seed: the data depend on this seed only (and on the settings).
        max_depth: see `generate`.
        max_args: see `generate`.
        min_length: see `generate`.
        max_length: see `generate`.

    Returns:
        `train`, `validation`, `test` -> columns `input_ids` (list<int32>), `source`
        (string) and `target` (int64), as Arrow / numpy arrays.
    """
    ids, targets = _generate_arrays(num_train + num_val + num_test, seed, max_depth,
                                    max_args, min_length, max_length)
    bounds = {"train": (0, num_train), "validation": (num_train, num_train + num_val),
              "test": (num_train + num_val, len(targets))}
    splits = {}
    for split, (a, b) in bounds.items():
        part = ids.slice(a, b - a)
        splits[split] = {"input_ids": part, "source": _sources(part), "target": targets[a:b]}
    return splits


# ---------------------------------------------------------------------------- the task

def _longest_tree(max_depth: int, max_args: int) -> int:
    length = 1                          # a digit at max_depth
    for _ in range(max_depth - 1):
        length = 2 + max_args * length  # an operator with the most arguments above it
    return length


@dataclass(frozen=True)
class ListOpsOptions(SplitOptions):
    TASK: ClassVar[str] = "listops"
    num_train: int = 96000
    num_val: int = 2000
    num_test: int = 2000
    max_depth: int = 10
    max_args: int = 10
    min_length: int = 500
    max_length: int = 2000

    def __post_init__(self):
        self.check_common()
        self.at_least("max_depth", 2)
        self.at_least("max_args", 2)
        self.at_least("min_length", 0)
        lo, hi = self.min_length, self.max_length
        # Both bounds are strict, so at least one length must fit between them.
        require(self.TASK, "min_length", lo < hi - 1, "< max_length - 1", f"{lo} with max_length {hi}")
        reach = _longest_tree(self.max_depth, self.max_args)
        require(self.TASK, "min_length", lo < reach, f"< {reach}, the longest tree that "
                f"max_depth={self.max_depth} and max_args={self.max_args} allow", lo)


register("listops", TaskSpec(
    ListOpsOptions,
    lambda o: TaskInfo("listops", "classification", "tokens", vocab_size=VOCAB_SIZE, num_classes=10,
                       metric="val_accuracy", pooling="mean"),
    lambda o: datasets.Features({"input_ids": IDS, "source": datasets.Value("string"),
                                 "target": datasets.Value("int64")}),
    lambda o: build_splits(**dataclasses.asdict(o))))
