"""The LRA-release tasks (pathfinder, pathx, retrieval): their options and registrations.

The readers of the release's files live in `lra_files.py`, beside this file.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from . import lra_files
from .base import TaskInfo
from .options import check_fields, option_error, require
from .registry import TaskSpec, register


def _lra_root(task: str, path: str | None) -> Path:
    root = path or os.environ.get("SURNN_LRA_DIR")
    if not root:
        raise option_error(task, "path", "the LRA release's files are needed (unpack lra_release.gz and give "
                                         "its folder with path:, or set SURNN_LRA_DIR)")
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
        check_fields(self.TASK, self, strings=("path", "difficulty"), optional=("path", "limit", "num_proc"),
                     positive=("num_proc",))
        require(self.TASK, "difficulty", self.difficulty in lra_files.PATHFINDER_DIFFICULTIES,
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
        check_fields(self.TASK, self, strings=("path",), optional=("path", "limit"), positive=("max_length",))


def _two_classes(name: str, pair: bool = False):
    return lambda o: TaskInfo(name, "classification", "tokens", vocab_size=lra_files.VOCAB_SIZE,
                              num_classes=lra_files.NUM_CLASSES, metric="val_accuracy", pooling="mean", pair=pair)


for _options in (PathfinderOptions, PathXOptions):
    register(_options.TASK, TaskSpec(
        _options, _two_classes(_options.TASK), lambda o: lra_files.pathfinder_features(),
        lambda o: lra_files.pathfinder_splits(_lra_root(o.TASK, o.path), o.RESOLUTION, o.difficulty, o.seed,
                                              o.limit, o.num_proc)))
register("retrieval", TaskSpec(
    RetrievalOptions, _two_classes("retrieval", pair=True), lambda o: lra_files.retrieval_features(),
    lambda o: lra_files.retrieval_splits(_lra_root("retrieval", o.path), o.max_length, o.limit)))
