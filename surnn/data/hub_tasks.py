"""The hub tasks (image, scifar, smnist, psmnist, text): their options and registrations.

The loading and conversion live in `hub.py`, beside this file.
"""
from __future__ import annotations

import dataclasses
import numbers
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import datasets
import numpy as np

from . import hub
from .base import TaskInfo
from .options import require
from .registry import IDS, VALUES, TaskSpec, register


@dataclass(frozen=True)
class HubOptions:
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
                ok = isinstance(value, (str, Path)) and str(value) != "" or (f.name == "path" and value is None)
                require(self.TASK, f.name, ok, "a non-empty string" + (" or null" if f.name == "path" else ""),
                        repr(value))
                if isinstance(value, Path):
                    object.__setattr__(self, f.name, str(value))
                continue
            optional = f.name in ("num_train", "num_val", "num_test", "num_proc")
            if optional and value is None:
                continue
            ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
            require(self.TASK, f.name, ok, "an integer" + (" or null" if optional else ""), repr(value))
            object.__setattr__(self, f.name, int(value))
            low = 1 if f.name in ("num_proc", "max_length") else 0
            require(self.TASK, f.name, getattr(self, f.name) >= low, f">= {low}", value)


@dataclass(frozen=True)
class ImageOptions(HubOptions):
    TASK: ClassVar[str] = "image"
    source: str = "uoft-cs/cifar10"


@dataclass(frozen=True)
class SCifarOptions(HubOptions):
    TASK: ClassVar[str] = "scifar"
    source: str = "uoft-cs/cifar10"


@dataclass(frozen=True)
class SMnistOptions(HubOptions):
    TASK: ClassVar[str] = "smnist"
    source: str = "ylecun/mnist"


@dataclass(frozen=True)
class PSMnistOptions(HubOptions):
    TASK: ClassVar[str] = "psmnist"
    source: str = "ylecun/mnist"
    permutation_seed: int = 0


@dataclass(frozen=True)
class TextOptions(HubOptions):
    TASK: ClassVar[str] = "text"
    source: str = "stanfordnlp/imdb"
    val_size: int = 2500
    max_length: int = 4096


_TOKEN_TARGET = datasets.Features({"input_ids": IDS, "target": datasets.Value("int64")})
_VALUE_TARGET = datasets.Features({"inputs": VALUES, "target": datasets.Value("int64")})
_CIFAR = {"img": "image", "label": "label"}
_MNIST = {"image": "image", "label": "label"}


def _build(o, columns, convert, fn_kwargs, features, num_classes, random_val=False):
    return hub.build_splits(
        o.TASK, source=o.source, path=o.path, columns=columns, convert=convert,
        fn_kwargs=fn_kwargs, features=features, num_classes=num_classes, val_size=o.val_size,
        random_val=random_val, num_train=o.num_train, num_val=o.num_val, num_test=o.num_test,
        seed=o.seed, num_proc=o.num_proc)


def _mnist_build(o):
    permutation = (np.random.default_rng(o.permutation_seed).permutation(784).tolist()
                   if isinstance(o, PSMnistOptions) else None)
    kwargs = {"image_column": "image", "label_column": "label", "size": (28, 28), "mode": "L",
              "permutation": permutation}
    return _build(o, _MNIST, hub.image_values, kwargs, _VALUE_TARGET, 10)


def _classification(name: str, input_kind: str, pooling: str, num_classes: int, vocab_size: int = 0,
                    input_dim: int = 0):
    return lambda o: TaskInfo(name, "classification", input_kind, vocab_size=vocab_size, input_dim=input_dim,
                              num_classes=num_classes, metric="val_accuracy", pooling=pooling)


register("image", TaskSpec(
    ImageOptions, _classification("image", "tokens", "mean", 10, vocab_size=257), lambda o: _TOKEN_TARGET,
    lambda o: _build(o, _CIFAR, hub.image_tokens, {"image_column": "img", "label_column": "label",
                                                    "size": (32, 32)}, _TOKEN_TARGET, 10)))
register("scifar", TaskSpec(
    SCifarOptions, _classification("scifar", "continuous", "last", 10, input_dim=3), lambda o: _VALUE_TARGET,
    lambda o: _build(o, _CIFAR, hub.image_values, {"image_column": "img", "label_column": "label",
                                                    "size": (32, 32), "mode": "RGB"}, _VALUE_TARGET, 10)))
register("smnist", TaskSpec(SMnistOptions, _classification("smnist", "continuous", "last", 10, input_dim=1),
                            lambda o: _VALUE_TARGET, _mnist_build))
register("psmnist", TaskSpec(PSMnistOptions, _classification("psmnist", "continuous", "last", 10, input_dim=1),
                             lambda o: _VALUE_TARGET, _mnist_build))
register("text", TaskSpec(
    TextOptions, _classification("text", "tokens", "mean", 2, vocab_size=257), lambda o: _TOKEN_TARGET,
    lambda o: _build(o, {"text": "text", "label": "label"}, hub.text_bytes,
                     {"text_column": "text", "label_column": "label", "max_length": o.max_length},
                     _TOKEN_TARGET, 2, random_val=True)))
