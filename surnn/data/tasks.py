"""The task registry: options, description, column types and generator of every task.

`load_task(name, options)` validates the options, fetches the splits from the disk cache
(building them once on a miss) and wraps them as `SequenceSplit`s. A new task (issue 5:
LRA text/retrieval/image, WikiText, pixel tasks) is one more `_Spec` in `_REGISTRY`.
"""
from __future__ import annotations

import dataclasses
import numbers
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar

import datasets

from . import listops, synthetic
from .base import TaskInfo
from .batching import SequenceSplit
from .store import cached_splits


def _require(task: str, field: str, ok: bool, expected: str, got: Any) -> None:
    if not ok:
        raise ValueError(f"{task}.{field}: must be {expected} (got {got})")


@dataclass(frozen=True)
class _Options:
    """Split sizes and seed, common to every task; subclasses add generator settings.

    A subclass's fields are exactly the keywords of its task's splits builder. Every field
    is an integer; a subclass's `__post_init__` calls `_check_common` first and then checks
    its own rules, so a rule never compares a value of the wrong type.
    """

    TASK: ClassVar[str] = ""
    num_train: int
    num_val: int
    num_test: int
    seed: int = 0

    def _check_common(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
            _require(self.TASK, f.name, ok, "an integer", repr(value))
            object.__setattr__(self, f.name, int(value))   # e.g. numpy ints, for JSON
        for name in ("num_train", "num_val", "num_test", "seed"):
            _require(self.TASK, name, getattr(self, name) >= 0, ">= 0", getattr(self, name))

    def _at_least(self, name: str, low: int) -> None:
        _require(self.TASK, name, getattr(self, name) >= low, f">= {low}", getattr(self, name))


def _max_listops_length(max_depth: int, max_args: int) -> int:
    length = 1                          # a digit at max_depth
    for _ in range(max_depth - 1):
        length = 2 + max_args * length  # an operator with the most arguments above it
    return length


@dataclass(frozen=True)
class ListOpsOptions(_Options):
    TASK: ClassVar[str] = "listops"
    num_train: int = 96000
    num_val: int = 2000
    num_test: int = 2000
    max_depth: int = 10
    max_args: int = 10
    min_length: int = 500
    max_length: int = 2000

    def __post_init__(self):
        self._check_common()
        self._at_least("max_depth", 2)
        self._at_least("max_args", 2)
        self._at_least("min_length", 0)
        lo, hi = self.min_length, self.max_length
        # Both bounds are strict, so at least one length must fit between them.
        _require(self.TASK, "min_length", lo < hi - 1, "< max_length - 1",
                 f"{lo} with max_length {hi}")
        reach = _max_listops_length(self.max_depth, self.max_args)
        _require(self.TASK, "min_length", lo < reach, f"< {reach}, the longest tree that "
                 f"max_depth={self.max_depth} and max_args={self.max_args} allow", lo)


@dataclass(frozen=True)
class SelectiveCopyOptions(_Options):
    TASK: ClassVar[str] = "selective_copy"
    num_train: int = 10000
    num_val: int = 1000
    num_test: int = 1000
    seq_len: int = 4096
    num_tokens: int = 16
    vocab_size: int = 16

    def __post_init__(self):
        self._check_common()
        self._at_least("num_tokens", 1)
        self._at_least("vocab_size", 1)
        _require(self.TASK, "num_tokens", self.num_tokens <= self.seq_len, "<= seq_len",
                 f"{self.num_tokens} > {self.seq_len}")


@dataclass(frozen=True)
class AddingOptions(_Options):
    TASK: ClassVar[str] = "adding"
    num_train: int = 20000
    num_val: int = 1000
    num_test: int = 1000
    seq_len: int = 200

    def __post_init__(self):
        self._check_common()
        self._at_least("seq_len", 2)


@dataclass(frozen=True)
class DelayedRecallOptions(_Options):
    TASK: ClassVar[str] = "delayed_recall"
    num_train: int = 20000
    num_val: int = 1000
    num_test: int = 1000
    num_tokens: int = 4
    vocab_size: int = 8
    min_delay: int = 100
    max_delay: int = 120

    def __post_init__(self):
        self._check_common()
        self._at_least("num_tokens", 1)
        self._at_least("vocab_size", 1)
        self._at_least("min_delay", 0)
        _require(self.TASK, "max_delay", self.max_delay >= self.min_delay, ">= min_delay",
                 f"{self.max_delay} < {self.min_delay}")


@dataclass(frozen=True)
class _Spec:
    """How to make one task: its options class, description, column types and data."""

    options: type
    info: Callable[[Any], TaskInfo]
    features: Callable[[Any], datasets.Features]
    build: Callable[[Any], dict[str, dict]]
    version: int = 1    # bump when this task's generator changes, to miss the old cache


_IDS = datasets.List(datasets.Value("int32"))


def _token_sequence_info(name: str, o) -> TaskInfo:
    # Ids: pad, blank, query, then the data values; labels are the data values 0..V-1.
    return TaskInfo(name, "sequence", "tokens", num_classes=o.vocab_size, pooling="none",
                    vocab_size=o.vocab_size + synthetic.FIRST_DATA_ID, metric="val_accuracy")


_REGISTRY: dict[str, _Spec] = {
    "listops": _Spec(
        ListOpsOptions,
        lambda o: TaskInfo("listops", "classification", "tokens", vocab_size=listops.VOCAB_SIZE,
                           num_classes=10, metric="val_accuracy", pooling="mean"),
        lambda o: datasets.Features({"input_ids": _IDS, "source": datasets.Value("string"),
                                     "target": datasets.Value("int64")}),
        lambda o: listops.build_splits(**dataclasses.asdict(o))),
    "selective_copy": _Spec(
        SelectiveCopyOptions,
        lambda o: _token_sequence_info("selective_copy", o),
        lambda o: datasets.Features({"input_ids": _IDS, "targets": _IDS}),
        lambda o: synthetic.build_splits(synthetic.selective_copy, **dataclasses.asdict(o))),
    "adding": _Spec(
        AddingOptions,
        lambda o: TaskInfo("adding", "regression", "continuous", input_dim=2, num_classes=1,
                           metric="val_mse", pooling="last"),
        lambda o: datasets.Features({"inputs": datasets.List(datasets.Value("float32")),
                                     "target": datasets.Value("float32")}),
        lambda o: synthetic.build_splits(synthetic.adding, **dataclasses.asdict(o))),
    "delayed_recall": _Spec(
        DelayedRecallOptions,
        lambda o: _token_sequence_info("delayed_recall", o),
        lambda o: datasets.Features({"input_ids": _IDS, "targets": _IDS}),
        lambda o: synthetic.build_splits(synthetic.delayed_recall, **dataclasses.asdict(o))),
}

TASK_NAMES: tuple[str, ...] = tuple(_REGISTRY)


@dataclass(frozen=True)
class Task:
    """A loaded task: its description, options and three splits."""

    info: TaskInfo
    train: SequenceSplit
    validation: SequenceSplit
    test: SequenceSplit
    options: Any


def make_options(name: str, options: dict | None = None):
    """Validates options for a task and fills in the defaults.

    Args:
        name: a task in `TASK_NAMES`.
        options: option name -> value; missing ones take their defaults.

    Returns:
        The task's frozen options dataclass.

    Raises:
        ValueError: unknown task, unknown option or invalid value (the message names it).
    """
    if name not in _REGISTRY:
        raise ValueError(f"unknown task {name!r}: no data loader for it (available: {', '.join(TASK_NAMES)})")
    cls = _REGISTRY[name].options
    known = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(options or {}) - set(known))
    if unknown:
        raise ValueError(f"unknown option(s) {', '.join(map(repr, unknown))} for task "
                         f"{name!r} (expected some of: {', '.join(known)})")
    return cls(**(options or {}))


def task_info(name: str, options: dict | None = None) -> TaskInfo:
    """A task's `TaskInfo` from its options alone, without generating or loading any data."""
    opts = make_options(name, options)
    return _REGISTRY[name].info(opts)


def load_task(name: str, options: dict | None = None,
              cache_dir: str | Path | None = None) -> Task:
    """Loads a task's splits, generating and caching them on first use.

    Args:
        name: a task in `TASK_NAMES`.
        options: option name -> value (see the task's options dataclass); missing ones
            take their defaults.
        cache_dir: the data cache (default: $SURNN_CACHE_DIR or ~/.cache/surnn-sweep/data).

    Returns:
        The `Task`, whose splits are memory-mapped from the cache.

    Raises:
        ValueError: unknown task, unknown option or invalid value (the message names it).
    """
    opts = make_options(name, options)
    spec = _REGISTRY[name]
    settings = {"options": dataclasses.asdict(opts), "generator_version": spec.version}
    splits = cached_splits(name, settings, lambda: spec.build(opts), spec.features(opts),
                           cache_dir)
    info = spec.info(opts)
    return Task(info, SequenceSplit(splits["train"], info),
                SequenceSplit(splits["validation"], info), SequenceSplit(splits["test"], info),
                opts)
