"""The trainable contract: how a sweep (or anything else) drives one training run.

This module is the whole interface between a trainer and the orchestrator that runs it. It
imports nothing heavy (no torch), so an orchestrator can check a spec against a trainable
without loading a model library.

The smallest trainable is a plain function:

    def train(config: dict, report) -> dict:
        for epoch in range(1, config["epochs"] + 1):
            report({"epoch": epoch, "val_accuracy": ..., "update_rate": ...})
        return {"status": "completed"}

A class derived from `Trainable` can also say, before anything runs, whether a config is
valid (`validate`), which metrics it reports (`reports`) and build shared data once
(`prepare`). `surnn.train.train` is such an object.
"""
from __future__ import annotations

import abc
import importlib
from typing import Any, Callable, Mapping, Protocol

__all__ = ["FIDELITY", "Reporter", "SettingError", "Trainable", "FunctionTrainable", "as_trainable",
           "load_trainable", "TrainableImportError"]

FIDELITY = "epoch"
"""The key every report carries: evaluations so far, counting from 1 (the sweep's fidelity)."""


class SettingError(ValueError):
    """A training setting is wrong.

    Args:
        setting: The setting's dotted name as it appears in the flat config: ``"lr"``,
            ``"task"``, or ``"task_options.max_length"`` for a task's own option. An
            orchestrator maps this name, and nothing in the message, to the place that set it.
        message: What is wrong and what was expected, one line, without the setting's name.
        label: How to name the setting in ``str(error)`` when not by `setting` (e.g.
            ``"listops.max_length"`` for a task option met outside a training config).
    """

    def __init__(self, setting: str, message: str, label: str | None = None):
        self.setting, self.message, self.label = setting, message, label
        super().__init__(f"{label or setting}: {message}")

    def __reduce__(self):         # keep the fields through pickling (Ray ships errors)
        return type(self), (self.setting, self.message, self.label)


class Reporter(Protocol):
    """Receives one evaluation's metrics.

    Called by the trainable after every evaluation, with at least `FIDELITY` ("epoch") and
    every metric its `reports` names. `checkpoint_dir`, if given, is a folder holding
    everything needed to resume the run after this evaluation; the caller may copy it away
    before the call returns and hand it back as ``config["checkpoint_dir"]`` later.
    """

    def __call__(self, metrics: Mapping[str, Any], checkpoint_dir: str | None = None) -> None: ...


class Trainable(abc.ABC):
    """A training run an orchestrator can check, prepare and start.

    Only `train` is required. The hooks run on the orchestrator's side, before any trial, on
    plain config dicts; they must be cheap (no training, no data loading except `prepare`).

    Keys an orchestrator adds to every config it passes to `train`: ``checkpoint_dir`` (a
    folder private to the run, holding its last checkpoint when it is resumed) and
    ``num_threads`` (the CPUs the run was granted).
    """

    @abc.abstractmethod
    def train(self, config: dict, report: Reporter) -> dict | None:
        """Runs training, calling `report` after every evaluation.

        Args:
            config: Flat settings (dotted keys such as ``task_options.x`` allowed).
            report: Where each evaluation's metrics go.

        Returns:
            The final metrics with ``"status"``: ``"completed"``, or ``"diverged"`` when
            the loss stopped being finite (an orchestrator counts that as a failure), or None.
        """

    def validate(self, config: dict) -> None:
        """Checks a config without running anything.

        Raises:
            SettingError: Naming the setting at fault (its dotted name).
        """

    def reports(self, config: dict) -> set[str] | None:
        """The metric names `train` reports at every evaluation for this config (None: unknown)."""
        return None

    def prepare(self, config: dict) -> None:
        """Builds what every run with this config shares (e.g. a dataset cache), once.

        Raises:
            ValueError: When it cannot be had (missing files, no network); one line.
        """

    def __call__(self, config: dict, report: Reporter | None = None) -> dict | None:
        return self.train(config, report or _ignore)


class FunctionTrainable(Trainable):
    """A plain ``fn(config, report)`` as a `Trainable` without hooks."""

    def __init__(self, fn: Callable[[dict, Reporter], dict | None]):
        self.fn = fn

    def train(self, config: dict, report: Reporter) -> dict | None:
        return self.fn(config, report)

    def __repr__(self) -> str:
        return f"FunctionTrainable({getattr(self.fn, '__qualname__', self.fn)!r})"


class TrainableImportError(ValueError):
    """A ``module:attribute`` reference does not name a usable trainable."""


def as_trainable(obj: Any) -> Trainable:
    """`obj` as a `Trainable`: itself, an instance of a Trainable class, or a wrapped function.

    Raises:
        TypeError: When `obj` is none of those.
    """
    if isinstance(obj, Trainable):
        return obj
    if isinstance(obj, type) and issubclass(obj, Trainable):
        return obj()
    if callable(obj):
        return FunctionTrainable(obj)
    raise TypeError(f"expected a function train(config, report) or a Trainable (got {type(obj).__name__})")


def load_trainable(ref: str) -> Trainable:
    """Imports ``module:attribute`` (the attribute may be dotted) and returns it as a `Trainable`.

    Raises:
        TrainableImportError: One line saying what is wrong with `ref`.
    """
    module_name, sep, attr = str(ref).partition(":")
    if not sep or not module_name or not attr:
        raise TrainableImportError(f"expected 'module:function' (got {ref!r})")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except Exception as err:   # any import-time failure is the reference's fault
        raise TrainableImportError(f"cannot import {ref!r} ({type(err).__name__}: {err})") from None
    try:
        return as_trainable(obj)
    except TypeError:
        raise TrainableImportError(f"{ref!r} is not callable: expected a function train(config, report) "
                                   f"or a Trainable (got {type(obj).__name__})") from None


def _ignore(metrics: Mapping[str, Any], checkpoint_dir: str | None = None) -> None:
    return None
