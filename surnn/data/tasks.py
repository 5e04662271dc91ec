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
import numpy as np

from . import hub, listops, synthetic
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
class _HubOptions:
    """Options of a task read from the Hugging Face hub (see `hub.py`).

    source: hub id; path: a local Parquet/Arrow file or folder in the hub's schema that
    replaces the hub (the cache is keyed by the path, not the files' contents); val_size:
    rows of train carved off as validation (0: validation is the test split);
    num_train/num_val/num_test: keep a seeded random subset of that many rows (None: all);
    seed: of those subsets (and of text's validation carve); num_proc: processes of the
    conversion map (None: min(4, cpu count); leave it None to share the cache, since the
    key holds every option as given).
    """

    TASK: ClassVar[str] = ""
    source: str = ""
    path: str | None = None
    val_size: int = 5000
    num_train: int | None = None
    num_val: int | None = None
    num_test: int | None = None
    seed: int = 0
    num_proc: int | None = None

    def __post_init__(self):
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name in ("source", "path"):
                ok = isinstance(value, (str, Path)) and str(value) != "" or (
                    f.name == "path" and value is None)
                _require(self.TASK, f.name, ok, "a non-empty string" + (
                    " or null" if f.name == "path" else ""), repr(value))
                if isinstance(value, Path):
                    object.__setattr__(self, f.name, str(value))
                continue
            optional = f.name in ("num_train", "num_val", "num_test", "num_proc")
            if optional and value is None:
                continue
            ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
            _require(self.TASK, f.name, ok, "an integer" + (" or null" if optional else ""),
                     repr(value))
            object.__setattr__(self, f.name, int(value))
            low = 1 if f.name in ("num_proc", "max_length") else 0
            _require(self.TASK, f.name, getattr(self, f.name) >= low, f">= {low}", value)


@dataclass(frozen=True)
class ImageOptions(_HubOptions):
    TASK: ClassVar[str] = "image"
    source: str = "uoft-cs/cifar10"


@dataclass(frozen=True)
class SCifarOptions(_HubOptions):
    TASK: ClassVar[str] = "scifar"
    source: str = "uoft-cs/cifar10"


@dataclass(frozen=True)
class SMnistOptions(_HubOptions):
    TASK: ClassVar[str] = "smnist"
    source: str = "ylecun/mnist"


@dataclass(frozen=True)
class PSMnistOptions(_HubOptions):
    TASK: ClassVar[str] = "psmnist"
    source: str = "ylecun/mnist"
    permutation_seed: int = 0


@dataclass(frozen=True)
class TextOptions(_HubOptions):
    TASK: ClassVar[str] = "text"
    source: str = "stanfordnlp/imdb"
    val_size: int = 2500
    max_length: int = 4096


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

_VALUES = datasets.List(datasets.Value("float32"))
_TOKEN_TARGET = datasets.Features({"input_ids": _IDS, "target": datasets.Value("int64")})
_VALUE_TARGET = datasets.Features({"inputs": _VALUES, "target": datasets.Value("int64")})


def _hub_build(o, columns, convert, fn_kwargs, features, num_classes, random_val=False):
    return hub.build_splits(
        o.TASK, source=o.source, path=o.path, columns=columns, convert=convert,
        fn_kwargs=fn_kwargs, features=features, num_classes=num_classes, val_size=o.val_size,
        random_val=random_val, num_train=o.num_train, num_val=o.num_val, num_test=o.num_test,
        seed=o.seed, num_proc=o.num_proc)


_CIFAR = {"img": "image", "label": "label"}
_MNIST = {"image": "image", "label": "label"}


def _mnist_permutation(o) -> list[int] | None:
    if not isinstance(o, PSMnistOptions):
        return None
    return np.random.default_rng(o.permutation_seed).permutation(784).tolist()


def _mnist_build(o):
    kwargs = {"image_column": "image", "label_column": "label", "size": (28, 28), "mode": "L",
              "permutation": _mnist_permutation(o)}
    return _hub_build(o, _MNIST, hub.image_values, kwargs, _VALUE_TARGET, 10)


_HUB_TASKS: dict[str, _Spec] = {
    "image": _Spec(
        ImageOptions,
        lambda o: TaskInfo("image", "classification", "tokens", vocab_size=257, num_classes=10,
                           metric="val_accuracy", pooling="mean"),
        lambda o: _TOKEN_TARGET,
        lambda o: _hub_build(o, _CIFAR, hub.image_tokens, {"image_column": "img",
                             "label_column": "label", "size": (32, 32)}, _TOKEN_TARGET, 10)),
    "scifar": _Spec(
        SCifarOptions,
        lambda o: TaskInfo("scifar", "classification", "continuous", input_dim=3, num_classes=10,
                           metric="val_accuracy", pooling="last"),
        lambda o: _VALUE_TARGET,
        lambda o: _hub_build(o, _CIFAR, hub.image_values, {"image_column": "img",
                             "label_column": "label", "size": (32, 32), "mode": "RGB"},
                             _VALUE_TARGET, 10)),
    "smnist": _Spec(
        SMnistOptions,
        lambda o: TaskInfo("smnist", "classification", "continuous", input_dim=1, num_classes=10,
                           metric="val_accuracy", pooling="last"),
        lambda o: _VALUE_TARGET,
        _mnist_build),
    "psmnist": _Spec(
        PSMnistOptions,
        lambda o: TaskInfo("psmnist", "classification", "continuous", input_dim=1, num_classes=10,
                           metric="val_accuracy", pooling="last"),
        lambda o: _VALUE_TARGET,
        _mnist_build),
    "text": _Spec(
        TextOptions,
        lambda o: TaskInfo("text", "classification", "tokens", vocab_size=257, num_classes=2,
                           metric="val_accuracy", pooling="mean"),
        lambda o: _TOKEN_TARGET,
        lambda o: _hub_build(o, {"text": "text", "label": "label"}, hub.text_bytes,
                             {"text_column": "text", "label_column": "label",
                              "max_length": o.max_length}, _TOKEN_TARGET, 2, random_val=True)),
}
_REGISTRY.update(_HUB_TASKS)


# ---------------------------------------------------------------------------------------
# Language modelling (lm.py) and the LRA release's own files (lra_files.py)

def _check_fields(task: str, options, strings=(), optional=(), positive=()) -> None:
    """Strings are non-empty strings; the rest integers (>= 1 when positive, else >= 0)."""
    for f in dataclasses.fields(options):
        value = getattr(options, f.name)
        if value is None and f.name in optional:
            continue
        if f.name in strings:
            _require(task, f.name, isinstance(value, str) and value != "", "a non-empty string"
                     + (" or null" if f.name in optional else ""), repr(value))
            continue
        ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
        _require(task, f.name, ok, "an integer" + (" or null" if f.name in optional else ""), repr(value))
        low = 1 if f.name in positive else 0
        _require(task, f.name, value >= low, f">= {low}", value)


@dataclass(frozen=True)
class WikiText103Options:
    """source/config: the hub dataset (Salesforce/wikitext); path: a local copy in its schema
    (files or folders named train*, validation*, test*; a `text` column); seq_len: tokens per
    row; vocab_size: of the BPE trained on the training split; num_proc: tokenising processes."""

    TASK: ClassVar[str] = "wikitext103"
    source: str = "Salesforce/wikitext"
    config: str = "wikitext-103-raw-v1"
    path: str | None = None
    seq_len: int = 1024
    vocab_size: int = 32768
    num_proc: int | None = None

    def __post_init__(self):
        _check_fields(self.TASK, self, strings=("source", "config", "path"), optional=("path", "num_proc"),
                      positive=("seq_len", "num_proc"))
        _require(self.TASK, "vocab_size", self.vocab_size >= 258, ">= 258 (the 256 bytes, padding, one merge)",
                 self.vocab_size)


@dataclass(frozen=True)
class WikiText2Options(WikiText103Options):
    TASK: ClassVar[str] = "wikitext2"
    config: str = "wikitext-2-raw-v1"
    vocab_size: int = 8192


def _wikitext_build(o) -> dict:
    from . import lm
    from .store import _quiet

    splits = ("train", "validation", "test")
    with _quiet():
        raw, places = hub.load_source(o.TASK, o.source, o.path, config=o.config if o.path is None else None,
                                      splits=splits)
        raw = hub.check_columns(o.TASK, raw, {"text": "text"}, places)
        return lm.build_splits(raw, o.vocab_size, o.seq_len, o.num_proc or hub.default_num_proc())


def _lra_root(task: str, path: str | None) -> Path:
    import os

    root = path or os.environ.get("SURNN_LRA_DIR")
    if not root:
        raise ValueError(f"{task}.path: the LRA release's files are needed (unpack lra_release.gz and give its "
                         "folder with path:, or set SURNN_LRA_DIR)")
    return Path(root).expanduser()


@dataclass(frozen=True)
class PathfinderOptions:
    """path: the unpacked LRA release (default $SURNN_LRA_DIR); difficulty: its folder;
    seed: of the 80/10/10 split; limit: read only the first rows (None: all)."""

    TASK: ClassVar[str] = "pathfinder"
    RESOLUTION: ClassVar[int] = 32
    path: str | None = None
    difficulty: str = "curv_contour_length_14"
    seed: int = 0
    limit: int | None = None
    num_proc: int | None = None

    def __post_init__(self):
        from . import lra_files

        _check_fields(self.TASK, self, strings=("path", "difficulty"), optional=("path", "limit", "num_proc"),
                      positive=("num_proc",))
        _require(self.TASK, "difficulty", self.difficulty in lra_files.PATHFINDER_DIFFICULTIES,
                 f"one of {', '.join(lra_files.PATHFINDER_DIFFICULTIES)}", repr(self.difficulty))


@dataclass(frozen=True)
class PathXOptions(PathfinderOptions):
    TASK: ClassVar[str] = "pathx"
    RESOLUTION: ClassVar[int] = 128


@dataclass(frozen=True)
class RetrievalOptions:
    """path: the unpacked LRA release (default $SURNN_LRA_DIR); max_length: bytes kept per
    document; limit: read only the first rows of each file (None: all)."""

    TASK: ClassVar[str] = "retrieval"
    path: str | None = None
    max_length: int = 4000
    limit: int | None = None

    def __post_init__(self):
        _check_fields(self.TASK, self, strings=("path",), optional=("path", "limit"), positive=("max_length",))


def _pathfinder_spec(options: type) -> _Spec:
    from . import lra_files

    name = options.TASK
    return _Spec(
        options,
        lambda o: TaskInfo(name, "classification", "tokens", vocab_size=lra_files.VOCAB_SIZE,
                           num_classes=lra_files.NUM_CLASSES, metric="val_accuracy", pooling="mean"),
        lambda o: lra_files.pathfinder_features(),
        lambda o: lra_files.pathfinder_splits(_lra_root(name, o.path), o.RESOLUTION, o.difficulty, o.seed,
                                              o.limit, o.num_proc))


def _file_tasks() -> dict[str, _Spec]:
    from . import lra_files

    lm_info = lambda o: TaskInfo(o.TASK, "lm", "tokens", vocab_size=o.vocab_size,   # noqa: E731
                                 num_classes=o.vocab_size, metric="val_perplexity", pooling="none")
    lm_features = lambda o: datasets.Features({"input_ids": _IDS})                   # noqa: E731
    return {
        "wikitext103": _Spec(WikiText103Options, lm_info, lm_features, _wikitext_build),
        "wikitext2": _Spec(WikiText2Options, lm_info, lm_features, _wikitext_build),
        "pathfinder": _pathfinder_spec(PathfinderOptions),
        "pathx": _pathfinder_spec(PathXOptions),
        "retrieval": _Spec(
            RetrievalOptions,
            lambda o: TaskInfo("retrieval", "classification", "tokens", vocab_size=lra_files.VOCAB_SIZE,
                               num_classes=lra_files.NUM_CLASSES, metric="val_accuracy", pooling="mean", pair=True),
            lambda o: lra_files.retrieval_features(),
            lambda o: lra_files.retrieval_splits(_lra_root("retrieval", o.path), o.max_length, o.limit)),
    }


_REGISTRY.update(_file_tasks())

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
