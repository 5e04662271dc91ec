"""Real datasets from the Hugging Face hub (or local copies in the hub's schema) as tasks.

Pixel and byte-level classification benchmarks, set up as in LRA and S4:

    image     grayscale CIFAR-10, 1024 pixel tokens (intensity 0..255 -> id 1..256), mean pooling
    scifar    colour CIFAR-10, 1024 steps x 3 channels in [0, 1], last-step pooling
    smnist    MNIST, 784 steps x 1 intensity in [0, 1], last-step pooling
    psmnist   smnist with one fixed permutation of the 784 steps (seeded), the same for all splits
    text      IMDb, UTF-8 bytes (0..255 -> id 1..256) truncated to max_length, mean pooling

`build_splits` loads the source (`datasets.load_dataset(source)`, or `path`: a local
Parquet/Arrow file or folder in the hub's schema), checks its columns, carves the
validation split out of train, applies the limits, and turns rows into the project's
columns (see `base.py`) with one batched `datasets.map`. `tasks.load_task` stores the
result with `store.cached_splits`, so the hub and the map are touched only on a cache miss.

Validation: the hub sources have only train and test. `val_size` rows of train become the
validation split: the last ones for the image tasks (the source order is already random;
LRA keeps CIFAR-10's last 5,000 for validation), a seeded random subset for `text` (IMDb's
train split is sorted by label). `val_size=0` uses the test split as validation (the LRA
and S4 protocol for IMDb; then a sweep tunes on test). Limits (`num_train`, `num_val`,
`num_test`) keep a seeded random subset of a split, in its original order.
"""
from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Callable

import datasets
import numpy as np
import pyarrow as pa

SPLITS = ("train", "test")
_EXTENSIONS = {".parquet": "parquet", ".arrow": "arrow"}


def default_num_proc() -> int:
    return max(1, min(4, os.cpu_count() or 1))


# ---------------------------------------------------------------------------------------
# Loading the source

def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def _split_of(relative: Path, splits: tuple[str, ...]) -> str | None:
    """The split a file belongs to: the first of its folder names or file name that starts
    with a split name (hub layout `data/train-00000-of-00001.parquet`, `save_to_disk`
    layout `train/data-00000-of-00001.arrow`)."""
    for part in relative.parts:
        low = part.lower()
        for split in splits:
            if low.startswith(split):
                return split
    return None


def local_data_files(task: str, path: str | os.PathLike,
                     splits: tuple[str, ...] = SPLITS) -> tuple[str, dict[str, list[str]]]:
    """The builder ("parquet" or "arrow") and split -> files of a local copy.

    Raises:
        ValueError: the path does not exist, holds no Parquet/Arrow files, mixes the two,
            or has no file for a split.
    """
    root = Path(path).expanduser()
    if not root.exists():
        raise ValueError(f"{task}: path {str(root)!r} does not exist")
    if root.is_file():
        files, base = [root], root.parent
    else:
        files, base = sorted(p for p in root.rglob("*") if p.is_file()), root
    files = [p for p in files if p.suffix.lower() in _EXTENSIONS]
    if not files:
        raise ValueError(f"{task}: path {str(root)!r} holds no .parquet or .arrow files")
    kinds = {_EXTENSIONS[p.suffix.lower()] for p in files}
    if len(kinds) > 1:
        raise ValueError(f"{task}: path {str(root)!r} mixes .parquet and .arrow files; keep one kind")
    by_split: dict[str, list[str]] = {}
    for p in files:
        split = _split_of(p.relative_to(base), splits)
        if split is not None:
            by_split.setdefault(split, []).append(str(p))
    missing = [s for s in splits if s not in by_split]
    if missing:
        raise ValueError(f"{task}: path {str(root)!r} has no {' or '.join(missing)} split "
                         f"(files or folders named {', '.join(s + '*' for s in missing)})")
    return kinds.pop(), by_split


def load_source(task: str, source: str, path: str | None, config: str | None = None,
                splits: tuple[str, ...] = SPLITS) -> tuple[datasets.DatasetDict, dict]:
    """The raw `splits` (of the hub dataset `source` and its `config`, or of the local copy at
    `path`), and split -> where it came from (its first file, or the hub id) for error messages.

    Raises:
        ValueError: one line naming the source or path and why it could not be loaded.
    """
    if path is not None:
        builder, files = local_data_files(task, path, splits)
        try:
            loaded = datasets.load_dataset(builder, data_files=files)
        except Exception as exc:  # noqa: BLE001 - any reader error becomes one clear line
            raise ValueError(f"{task}: cannot read {path!r} as {builder} ({_short(exc)})") from None
        places = {s: files[s][0] for s in splits}
    else:
        try:
            loaded = datasets.load_dataset(source, config)
        except Exception as exc:  # noqa: BLE001 - offline, unknown id, no permission, ...
            raise ValueError(
                f"{task}: cannot load {source!r} from the Hugging Face hub ({_short(exc)}); give a "
                "local copy with path: (a Parquet/Arrow file or folder in the hub's schema)") from None
        places = {s: source for s in splits}
    missing = [s for s in splits if s not in loaded]
    if missing:
        raise ValueError(f"{task}: {source!r} has no {' or '.join(missing)} split "
                         f"(has: {', '.join(loaded) or 'none'})")
    return datasets.DatasetDict({s: loaded[s] for s in splits}), places


# ---------------------------------------------------------------------------------------
# Schema checks

def _is_int(feature) -> bool:
    return isinstance(feature, datasets.ClassLabel) or (
        isinstance(feature, datasets.Value) and feature.dtype.startswith(("int", "uint")))


def _is_image(feature) -> bool:
    return isinstance(feature, datasets.Image) or (
        isinstance(feature, dict) and "bytes" in feature)


def _is_text(feature) -> bool:
    return isinstance(feature, datasets.Value) and feature.dtype in ("string", "large_string")


_KIND_CHECKS = {"image": (_is_image, "an image (Image feature or struct with bytes)"),
                "label": (_is_int, "an integer label (int or ClassLabel)"),
                "text": (_is_text, "a string")}


def check_columns(task: str, raw: datasets.DatasetDict, columns: dict[str, str],
                  places: dict[str, str]) -> datasets.DatasetDict:
    """Checks every split has `columns` (name -> "image" | "label" | "text") of the right
    kind, and makes image columns yield undecoded {"bytes", "path"} dicts.

    Raises:
        ValueError: names the file (or source), the missing or mistyped column and what it has.
    """
    out = {}
    for split, ds in raw.items():
        place = places[split]
        for name, kind in columns.items():
            if name not in ds.features:
                raise ValueError(f"{task}: {place} has no column {name!r} "
                                 f"(has: {', '.join(ds.features) or 'none'})")
            ok, expected = _KIND_CHECKS[kind]
            if not ok(ds.features[name]):
                raise ValueError(f"{task}: {place} column {name!r} must be {expected} "
                                 f"(is {ds.features[name]})")
        ds = ds.select_columns(list(columns))
        for name, kind in columns.items():
            if kind == "image" and isinstance(ds.features[name], datasets.Image):
                ds = ds.cast_column(name, datasets.Image(decode=False))
        out[split] = ds
    return datasets.DatasetDict(out)


# ---------------------------------------------------------------------------------------
# Splits and limits

def _subset(n: int, limit: int | None, rng: np.random.Generator) -> np.ndarray | None:
    if limit is None or limit >= n:
        return None
    return np.sort(rng.choice(n, size=limit, replace=False))


def carve(task: str, raw: datasets.DatasetDict, *, val_size: int, random_val: bool,
          num_train: int | None, num_val: int | None, num_test: int | None,
          seed: int) -> datasets.DatasetDict:
    """train/validation/test: validation is `val_size` rows of train (the last ones, or a
    seeded random subset when `random_val`), or the test split when `val_size` is 0; each
    split then keeps a seeded random subset of `num_*` rows (None: all), in order."""
    rng = np.random.default_rng(seed)
    train, test = raw["train"], raw["test"]
    n = len(train)
    if val_size >= n:
        raise ValueError(f"{task}.val_size: must be < the {n} rows of the train split (got {val_size})")
    if val_size == 0:
        val_idx = None
        train_idx = np.arange(n)
    elif random_val:
        order = rng.permutation(n)
        val_idx, train_idx = np.sort(order[:val_size]), np.sort(order[val_size:])
    else:
        train_idx, val_idx = np.arange(n - val_size), np.arange(n - val_size, n)

    def pick(ds, idx, limit):
        base = np.arange(len(ds)) if idx is None else idx
        sub = _subset(len(base), limit, rng)
        base = base if sub is None else base[sub]
        return ds if len(base) == len(ds) else ds.select(base)

    out = {"train": pick(train, train_idx, num_train)}
    out["validation"] = pick(test if val_idx is None else train, val_idx, num_val)
    out["test"] = pick(test, None, num_test)
    return datasets.DatasetDict(out)


# ---------------------------------------------------------------------------------------
# Row converters (run inside datasets.map, batched; module-level so they pickle)

def _pil(image):
    """A PIL image from a datasets Image value (undecoded {"bytes", "path"}, or decoded)."""
    from PIL import Image

    if isinstance(image, dict):
        data = image.get("bytes")
        if data is None and image.get("path"):
            return Image.open(image["path"])
        return Image.open(io.BytesIO(data))
    return image        # already a PIL image


def _list_array(values: np.ndarray, lengths: np.ndarray, dtype) -> pa.ListArray:
    offsets = np.zeros(len(lengths) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(values.astype(dtype, copy=False)))


def _pixels(images, mode: str, size: tuple[int, int] | None) -> np.ndarray:
    rows = []
    for image in images:
        img = _pil(image).convert(mode)
        if size is not None and img.size != size:
            raise ValueError(f"an image is {img.size[0]}x{img.size[1]}, expected {size[0]}x{size[1]}")
        rows.append(np.asarray(img, dtype=np.uint8).reshape(-1))
    return np.stack(rows) if rows else np.zeros((0, 0), np.uint8)


def _targets(labels) -> pa.Array:
    return pa.array(np.asarray(labels, dtype=np.int64))


def _column(batch, name: str) -> list:
    """One column of a batch (an Arrow table under with_format("arrow")) as Python values."""
    column = batch[name]
    return column.to_pylist() if hasattr(column, "to_pylist") else column


def image_tokens(batch, image_column: str, label_column: str, size):
    """Grayscale pixels 0..255 -> token ids 1..256, row-major."""
    pix = _pixels(_column(batch, image_column), "L", size)
    ids = pix.astype(np.int32) + 1
    lengths = np.full(len(pix), pix.shape[1] if pix.size else 0)
    return pa.table({"input_ids": _list_array(ids.reshape(-1), lengths, np.int32),
                     "target": _targets(_column(batch, label_column))})


def image_values(batch, image_column: str, label_column: str, size, mode: str,
                 permutation: list[int] | None = None):
    """Pixels scaled to [0, 1] as a (step, channel) row-major sequence, optionally permuted
    over steps."""
    pix = _pixels(_column(batch, image_column), mode, size)
    channels = 1 if mode == "L" else len(mode)
    values = pix.reshape(len(pix), -1, channels).astype(np.float32) / 255.0
    if permutation is not None and len(pix):
        values = values[:, np.asarray(permutation)]
    flat = values.reshape(len(pix), -1)
    return pa.table({"inputs": _list_array(flat.reshape(-1), np.full(len(pix), flat.shape[1]), np.float32),
                     "target": _targets(_column(batch, label_column))})


def text_bytes(batch, text_column: str, label_column: str, max_length: int):
    """UTF-8 bytes 0..255 -> token ids 1..256, truncated to max_length (shorter kept as is)."""
    chunks = [np.frombuffer(t.encode("utf-8")[:max_length], dtype=np.uint8) for t in _column(batch, text_column)]
    lengths = np.array([len(c) for c in chunks], dtype=np.int64)
    values = np.concatenate(chunks).astype(np.int32) + 1 if chunks else np.zeros(0, np.int32)
    return pa.table({"input_ids": _list_array(values, lengths, np.int32),
                     "target": _targets(_column(batch, label_column))})


# ---------------------------------------------------------------------------------------
# The whole pipeline

def build_splits(task: str, *, source: str, path: str | None, columns: dict[str, str],
                 convert: Callable, fn_kwargs: dict, features: datasets.Features,
                 num_classes: int, val_size: int, random_val: bool, num_train, num_val,
                 num_test, seed: int, num_proc: int | None) -> dict[str, dict]:
    """Split name -> column name -> Arrow array, in the project's columns (for `cached_splits`).

    Raises:
        ValueError: the source cannot be loaded, a column is missing or mistyped, or a
            label is out of range (each one line naming the culprit).
    """
    from .store import _quiet

    with _quiet():
        raw, places = load_source(task, source, path)
        raw = check_columns(task, raw, columns, places)
        parts = carve(task, raw, val_size=val_size, random_val=random_val, num_train=num_train,
                      num_val=num_val, num_test=num_test, seed=seed)
        procs = num_proc or default_num_proc()
        procs = max(1, min(procs, min(len(d) for d in parts.values()) or 1))
        try:
            mapped = parts.with_format("arrow").map(convert, batched=True, batch_size=256, fn_kwargs=fn_kwargs,
                               num_proc=procs if procs > 1 else None,
                               remove_columns=list(columns), features=features,
                               keep_in_memory=True, load_from_cache_file=False,
                               desc=f"{task}: converting")
        except ValueError as exc:
            raise ValueError(f"{task}: {_short(exc)}") from None
    out = {}
    for split, ds in mapped.items():
        table = ds.with_format(None).data.table
        target = table.column("target").to_numpy()
        bad = (target < 0) | (target >= num_classes)
        if bad.any():
            raise ValueError(f"{task}: the {split} split has label {int(target[bad][0])} outside "
                             f"0..{num_classes - 1}")
        out[split] = {name: table.column(name) for name in features}
    return out
