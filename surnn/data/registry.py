"""The one task registry: every task module registers its `TaskSpec` here.

`load_task(name, options)` validates the options, fetches the splits from the disk cache
(building them once on a miss) and wraps them as `SequenceSplit`s. A new task is one
`register(...)` call beside its reader; `surnn.data.tasks` imports every task module.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import datasets

from surnn.trainable import SettingError

from .base import TaskInfo
from .batching import SequenceSplit
from .options import option_error
from .store import cached_splits

IDS = datasets.List(datasets.Value("int32"))      # the input_ids / targets column type
VALUES = datasets.List(datasets.Value("float32"))  # the inputs column type


@dataclass(frozen=True)
class TaskSpec:
    """How to make one task: its options class, description, column types and data."""

    options: type
    info: Callable[[Any], TaskInfo]
    features: Callable[[Any], datasets.Features]
    build: Callable[[Any], dict[str, dict]]
    version: int = 1    # bump when this task's generator changes, to miss the old cache


_REGISTRY: dict[str, TaskSpec] = {}


def register(name: str, spec: TaskSpec) -> None:
    """Adds task `name`; a name is registered once."""
    if name in _REGISTRY:
        raise ValueError(f"task {name!r} is registered twice")
    _REGISTRY[name] = spec


def task_names() -> tuple[str, ...]:
    return tuple(_REGISTRY)


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
        name: a registered task.
        options: option name -> value; missing ones take their defaults.

    Returns:
        The task's frozen options dataclass.

    Raises:
        SettingError: unknown task (setting ``task``), unknown option or invalid value
            (setting ``task_options.<option>``).
    """
    if name not in _REGISTRY:
        raise SettingError("task", f"unknown task {name!r}: no data loader for it "
                                   f"(available: {', '.join(_REGISTRY)})")
    cls = _REGISTRY[name].options
    known = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(options or {}) - set(known))
    if unknown:
        raise option_error(name, unknown[0], f"unknown option(s) {', '.join(map(repr, unknown))} for task "
                                             f"{name!r} (expected some of: {', '.join(known)})")
    return cls(**(options or {}))


def task_info(name: str, options: dict | None = None) -> TaskInfo:
    """A task's `TaskInfo` from its options alone, without generating or loading any data."""
    opts = make_options(name, options)
    return _REGISTRY[name].info(opts)


def load_task(name: str, options: dict | None = None, cache_dir: str | Path | None = None) -> Task:
    """Loads a task's splits, generating and caching them on first use.

    Args:
        name: a registered task.
        options: option name -> value (see the task's options dataclass); missing ones
            take their defaults.
        cache_dir: the data cache (default: $SURNN_CACHE_DIR or ~/.cache/surnn-sweep/data).

    Returns:
        The `Task`, whose splits are memory-mapped from the cache.

    Raises:
        SettingError: as `make_options`; ValueError: data that cannot be had (one line).
    """
    opts = make_options(name, options)
    spec = _REGISTRY[name]
    settings = {"options": dataclasses.asdict(opts), "generator_version": spec.version}
    splits = cached_splits(name, settings, lambda: spec.build(opts), spec.features(opts), cache_dir)
    info = spec.info(opts)
    return Task(info, SequenceSplit(splits["train"], info), SequenceSplit(splits["validation"], info),
                SequenceSplit(splits["test"], info), opts)
