"""A disk cache of generated splits as memory-mapped Arrow tables.

Each task/settings pair gets its own folder, named by a hash of the settings, holding a
`datasets.DatasetDict` saved with `save_to_disk`. Loading one is a memory map, so it
starts at once and many trials on one machine share the same pages. A folder appears
atomically (written elsewhere, then renamed into place), so a reader never sees a
half-written one, and of two processes that build the same data at once, one wins and
the other loads the winner's copy.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

import datasets
import numpy as np
import pyarrow as pa

# Bump when the stored layout or any generator changes, so old folders are not reused.
FORMAT_VERSION = 1
ENV_CACHE_DIR = "SURNN_CACHE_DIR"
DEFAULT_CACHE_DIR = Path("~/.cache/surnn-sweep/data")


def cache_root(cache_dir: str | Path | None = None) -> Path:
    """The cache folder: `cache_dir`, else $SURNN_CACHE_DIR, else ~/.cache/surnn-sweep/data."""
    if cache_dir is None:
        cache_dir = os.environ.get(ENV_CACHE_DIR) or DEFAULT_CACHE_DIR
    return Path(cache_dir).expanduser()


def cache_folder(task_name: str, settings: dict, cache_dir: str | Path | None = None) -> Path:
    """The folder that holds (or will hold) the splits of `task_name` for `settings`.

    Args:
        task_name: the task's registry name.
        settings: everything the data depend on; must be JSON-serialisable.
        cache_dir: see `cache_root`.

    Returns:
        `<cache_dir>/<task_name>-<first 16 hex digits of a sha256 of the settings>`.
    """
    text = json.dumps(settings, sort_keys=True) + f"\nformat_version={FORMAT_VERSION}"
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
    return cache_root(cache_dir) / f"{task_name}-{digest}"


def _to_dataset(columns: dict, features: datasets.Features) -> datasets.Dataset:
    """One split's columns (lists, numpy or Arrow arrays) as a typed in-memory Dataset."""
    if set(columns) != set(features):
        raise ValueError(f"build() gave columns {sorted(columns)}, features name "
                         f"{sorted(features)}")
    # numpy -> Arrow here, so that datasets casts whole arrays instead of iterating rows.
    mapping = {name: pa.array(col) if isinstance(col, np.ndarray) else col
               for name, col in columns.items()}
    return datasets.Dataset.from_dict(mapping, features=features)


@contextlib.contextmanager
def _quiet():
    """Hides datasets' per-split progress bars (noise in sweep logs), then restores them."""
    enabled = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if enabled:
            datasets.enable_progress_bars()


def _load(folder: Path) -> datasets.DatasetDict:
    with _quiet():
        loaded = datasets.load_from_disk(str(folder), keep_in_memory=False)
    if not isinstance(loaded, datasets.DatasetDict):
        raise ValueError(f"{folder} holds a single Dataset, expected a DatasetDict")
    return loaded


def _write(folder: Path, task_name: str, settings: dict,
           build: Callable[[], dict[str, dict]], features: datasets.Features) -> None:
    """Builds the splits into a temporary sibling folder and renames it into place."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    splits = datasets.DatasetDict({name: _to_dataset(columns, features)
                                   for name, columns in build().items()})
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".tmp", dir=folder.parent))
    try:
        with _quiet():
            splits.save_to_disk(str(tmp))
        info = {"task": task_name, "format_version": FORMAT_VERSION, "settings": settings}
        (tmp / "settings.json").write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
        os.chmod(tmp, 0o755)    # mkdtemp makes it private; the cache may be shared
        try:
            os.replace(tmp, folder)
        except OSError:
            # Renaming onto a non-empty folder fails: another process finished first.
            if not (folder / "dataset_dict.json").exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def cached_splits(task_name: str, settings: dict, build: Callable[[], dict[str, dict]],
                  features: datasets.Features,
                  cache_dir: str | Path | None = None) -> datasets.DatasetDict:
    """Loads a task's splits from the cache, building and storing them on a miss.

    Args:
        task_name: the task's registry name (first part of the folder name).
        settings: everything the data depend on (JSON-serialisable); hashed into the
            folder name and written to `settings.json` there for humans.
        build: called only on a miss; returns split name -> column name -> values
            (a list, numpy array or Arrow array per column).
        features: the column types, one per column that `build` returns.
        cache_dir: see `cache_root`.

    Returns:
        The splits, memory-mapped from the cache folder.
    """
    folder = cache_folder(task_name, settings, cache_dir)
    if not folder.exists():
        _write(folder, task_name, settings, build, features)
    return _load(folder)
