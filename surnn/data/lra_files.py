"""Readers of the Long Range Arena release's own files (`lra_release.gz`, unpacked).

Pure functions, no registry: `tasks.py` wraps them. Settings follow the LRA paper.

    pathfinder  32 x 32 Pathfinder images, 1024 pixel tokens, 2 classes
    pathx       128 x 128 Pathfinder images (Path-X), 16384 pixel tokens, 2 classes
    retrieval   byte-level AAN document matching, two documents of <= 4000 bytes, 2 classes

Columns (see `base.py`): `input_ids` list<int32> (0 is padding; a pixel value or byte v
is id v + 1, so ids are 1..256), `input_ids_b` list<int32> (retrieval's second
document), `target` int64. Columns come back as Arrow arrays (Path-X's 200k x 16384
ids do not fit as Python lists, nor in one Arrow list array: its int32 offsets stop at
2**31 values, so long columns are chunked); `store.cached_splits` takes them as they are.

Release layout read here (`root` is the unpacked folder; a `lra_release/` folder inside
it is looked into as well, since the archive nests one):

    pathfinder32/<difficulty>/metadata/<n>.npy     text despite the suffix, one image a line
    pathfinder32/<difficulty>/imgs/<n>/sample_<k>.png   8-bit grayscale, 32 x 32
    pathfinder128/...                              the same for Path-X, 128 x 128
    tsv_data/new_aan_pairs.{train,eval,test}.tsv   retrieval

difficulty: `curv_baseline` (easy), `curv_contour_length_9`, `curv_contour_length_14`
(hard; the one LRA reports). A metadata line is split on single spaces as in LRA's
`lra_benchmarks/data/pathfinder.py`: fields[0] the image folder (`imgs/<n>`), fields[1]
the file name, int(fields[3]) the label; the image is `<difficulty>/fields[0]/fields[1]`.
Metadata files are read in numeric order of their names (0.npy, 1.npy, ..., then any
non-numeric names sorted), lines in file order, so row order never depends on the file
system. LRA splits Pathfinder 80/10/10 into train/validation/test; here the split is
over a seeded permutation of all rows (`pathfinder_splits`).

Retrieval TSV (LRA's `lra_benchmarks/matching/input_pipeline.py`): no header, fields
separated by tabs, no quoting (`use_quote_delim=False`), columns label (read as a float,
e.g. `1` or `1.0`), id1, id2, text1, text2. A line is split on `\\n` (a trailing `\\r` is
dropped), so a text holds no tab or newline. The documents' raw bytes are the tokens
(LRA: `ByteTextEncoder`, on the first 10,000 bytes, then `[:max_length]`); LRA's `eval`
file is the validation split.

Decoding Path-X's 200k PNGs is the slow part: `read_pathfinder`/`pathfinder_splits`
decode them with PIL in a `multiprocessing` pool of `num_proc` processes (default:
`default_num_proc()`, up to 8), each worker decoding a chunk of files into one bytes
buffer that the parent copies into a preallocated uint8 array.
"""
from __future__ import annotations

import multiprocessing
import os
from pathlib import Path

import datasets
import numpy as np
import pyarrow as pa

PATHFINDER_RESOLUTIONS = (32, 64, 128, 256)
PATHFINDER_DIFFICULTIES = ("curv_baseline", "curv_contour_length_9", "curv_contour_length_14")
RETRIEVAL_FILES = {"train": "train", "validation": "eval", "test": "test"}
NUM_CLASSES = 2
VOCAB_SIZE = 257            # padding + 256 pixel values / bytes
_CHUNK_VALUES = 1 << 28     # ids per Arrow chunk, well below the 2**31 offset limit
_DECODE_CHUNK = 256         # images per pool task

_IDS = datasets.List(datasets.Value("int32"))


def default_num_proc() -> int:
    return max(1, min(8, os.cpu_count() or 1))


def pathfinder_features() -> datasets.Features:
    return datasets.Features({"input_ids": _IDS, "target": datasets.Value("int64")})


def retrieval_features() -> datasets.Features:
    return datasets.Features({"input_ids": _IDS, "input_ids_b": _IDS,
                              "target": datasets.Value("int64")})


def pathfinder_task_name(resolution: int) -> str:
    """`pathx` for 128 x 128, else `pathfinder` (the name in error messages)."""
    return "pathx" if resolution == 128 else "pathfinder"


# ---------------------------------------------------------------------------------------
# Shared helpers

def _release_dir(task: str, root: str | os.PathLike, relative: str) -> Path:
    """`root/relative`, else `root/lra_release/relative`; a ValueError naming the first."""
    root = Path(root).expanduser()
    for candidate in (root / relative, root / "lra_release" / relative):
        if candidate.is_dir():
            return candidate
    raise ValueError(f"{task}: no LRA release files at {root / relative} "
                     f"(unpack lra_release.gz and give its folder with path:)")


def _ids_array(rows: np.ndarray | list) -> pa.ChunkedArray:
    """Token rows as a chunked list<int32> Arrow array of ids (value + 1).

    rows: a uint8 array [N, L] (equal lengths) or a list of bytes objects.
    """
    chunks = []
    if isinstance(rows, np.ndarray):
        n, length = rows.shape
        step = max(1, _CHUNK_VALUES // max(1, length))
        for start in range(0, n, step):
            block = rows[start:start + step]
            values = np.add(block.reshape(-1), 1, dtype=np.int32)   # one pass, one copy
            offsets = np.arange(block.shape[0] + 1, dtype=np.int32) * length
            chunks.append(pa.ListArray.from_arrays(pa.array(offsets), pa.array(values)))
    else:
        start, n = 0, len(rows)
        while start < n or not chunks:
            end, total = start, 0
            while end < n and (end == start or total + len(rows[end]) <= _CHUNK_VALUES):
                total += len(rows[end])
                end += 1
            block = rows[start:end]
            lengths = np.fromiter((len(b) for b in block), dtype=np.int64, count=len(block))
            offsets = np.zeros(len(block) + 1, dtype=np.int32)
            np.cumsum(lengths, out=offsets[1:])
            values = np.add(np.frombuffer(b"".join(block), dtype=np.uint8), 1, dtype=np.int32)
            chunks.append(pa.ListArray.from_arrays(pa.array(offsets), pa.array(values)))
            start = end
    return pa.chunked_array(chunks, type=pa.list_(pa.int32()))


# ---------------------------------------------------------------------------------------
# Pathfinder / Path-X

def _metadata_order(path: Path):
    return (0, int(path.stem), "") if path.stem.isdigit() else (1, 0, path.name)


def pathfinder_index(root: str | os.PathLike, resolution: int,
                     difficulty: str = "curv_contour_length_14",
                     limit: int | None = None) -> tuple[list[Path], np.ndarray]:
    """The image files and labels that the metadata files list, in a fixed order.

    Returns (paths, labels int64); at most `limit` rows (the first ones) when given.
    Raises ValueError on a missing folder, a metadata line that does not parse (naming
    file and line number) or a label other than 0/1.
    """
    if resolution not in PATHFINDER_RESOLUTIONS:
        raise ValueError(f"pathfinder.resolution: must be one of {PATHFINDER_RESOLUTIONS} "
                         f"(got {resolution!r})")
    task = pathfinder_task_name(resolution)
    if difficulty not in PATHFINDER_DIFFICULTIES:
        raise ValueError(f"{task}.difficulty: must be one of {PATHFINDER_DIFFICULTIES} "
                         f"(got {difficulty!r})")
    if limit is not None and limit < 0:
        raise ValueError(f"{task}.limit: must be >= 0 or null (got {limit})")
    folder = _release_dir(task, root, f"pathfinder{resolution}/{difficulty}")
    meta_dir = folder / "metadata"
    metas = sorted((p for p in meta_dir.glob("*.npy") if p.is_file()), key=_metadata_order) \
        if meta_dir.is_dir() else []
    if not metas:
        raise ValueError(f"{task}: no metadata files {meta_dir}/*.npy in the LRA release")
    paths: list[Path] = []
    labels: list[int] = []
    for meta in metas:
        with open(meta, "rb") as f:
            for number, raw in enumerate(f, start=1):
                if limit is not None and len(paths) >= limit:
                    break
                line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
                if not line.strip():
                    continue
                fields = line.split(" ")
                try:
                    if len(fields) < 4 or not fields[0] or not fields[1]:
                        raise ValueError
                    label = int(fields[3])
                except ValueError:
                    raise ValueError(f"{task}: {meta} line {number}: expected 'imgs/<n> "
                                     f"sample_<k>.png <n> <label> ...', got "
                                     f"{line[:80]!r}") from None
                if label not in (0, 1):
                    raise ValueError(f"{task}: {meta} line {number}: label must be 0 or 1 "
                                     f"(got {label})")
                paths.append(folder / fields[0] / fields[1])
                labels.append(label)
    return paths, np.asarray(labels, dtype=np.int64)


class _ImageError(ValueError):
    """An image that is not what the release should hold (raised in a pool worker)."""


def _decode_chunk(args: tuple[list[str], int, str]) -> bytes:
    """Worker: the pixels of some PNGs, row-major, concatenated (uint8)."""
    from PIL import Image

    paths, resolution, task = args
    out = bytearray()
    for path in paths:
        try:
            with Image.open(path) as image:
                size = image.size
                if size != (resolution, resolution):
                    raise _ImageError(f"{task}: image {path} is {size[0]}x{size[1]}, "
                                     f"expected {resolution}x{resolution}")
                if image.mode != "L":
                    image = image.convert("L")
                data = image.tobytes()
        except _ImageError:
            raise
        except Exception as exc:  # noqa: BLE001 - any decoder/IO failure, named
            text = " ".join(str(exc).split()) or type(exc).__name__
            raise _ImageError(f"{task}: cannot read image {path}: {text[:200]}") from None
        out += data
    return bytes(out)


def decode_pathfinder_images(paths: list[Path], resolution: int,
                             num_proc: int | None = None) -> np.ndarray:
    """The images' pixels as a uint8 array [N, resolution**2] (row-major per image)."""
    task = pathfinder_task_name(resolution)
    size = resolution * resolution
    pixels = np.empty((len(paths), size), dtype=np.uint8)
    procs = max(1, num_proc or default_num_proc())
    # Chunks of at most _DECODE_CHUNK images, at least 4 per process to balance the load.
    chunk = max(1, min(_DECODE_CHUNK, -(-len(paths) // (4 * procs))))
    tasks = [([str(p) for p in paths[i:i + chunk]], resolution, task)
             for i in range(0, len(paths), chunk)]
    procs = min(procs, len(tasks))
    if procs <= 1:
        results = map(_decode_chunk, tasks)
        pool = None
    else:
        pool = multiprocessing.get_context("spawn" if os.name != "posix" else "fork").Pool(procs)
        results = pool.imap(_decode_chunk, tasks)
    try:
        row = 0
        for data in results:
            block = np.frombuffer(data, dtype=np.uint8).reshape(-1, size)
            pixels[row:row + block.shape[0]] = block
            row += block.shape[0]
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()
    return pixels


def read_pathfinder(root: str | os.PathLike, resolution: int,
                    difficulty: str = "curv_contour_length_14", limit: int | None = None,
                    num_proc: int | None = None) -> dict[str, pa.ChunkedArray | pa.Array]:
    """All rows of one Pathfinder difficulty as columns, in metadata order.

    Returns {"input_ids": list<int32> (pixel + 1, row-major, resolution**2 ids),
    "target": int64 (0/1)} as Arrow arrays (`.to_pylist()` gives lists).
    """
    paths, labels = pathfinder_index(root, resolution, difficulty, limit)
    pixels = decode_pathfinder_images(paths, resolution, num_proc)
    return {"input_ids": _ids_array(pixels), "target": pa.array(labels, type=pa.int64())}


def split_indices(n: int, seed: int) -> dict[str, np.ndarray]:
    """80/10/10 of a seeded permutation of range(n) (boundaries round(0.8n), round(0.9n),
    as tfds's `[:80%]`, `[80%:90%]`, `[90%:]` slices that LRA uses)."""
    order = np.random.default_rng(seed).permutation(n)
    first, second = (8 * n + 5) // 10, (9 * n + 5) // 10
    return {"train": order[:first], "validation": order[first:second], "test": order[second:]}


def pathfinder_splits(root: str | os.PathLike, resolution: int,
                      difficulty: str = "curv_contour_length_14", seed: int = 0,
                      limit: int | None = None,
                      num_proc: int | None = None) -> dict[str, dict]:
    """train/validation/test (80/10/10 of a `seed`ed permutation) of `read_pathfinder`'s rows.

    `limit` keeps the first rows in metadata order before splitting. Each split's rows keep
    the permutation's order. Returns split -> {"input_ids", "target"} (Arrow arrays).
    """
    paths, labels = pathfinder_index(root, resolution, difficulty, limit)
    pixels = decode_pathfinder_images(paths, resolution, num_proc)
    out = {}
    for split, idx in split_indices(len(paths), seed).items():
        out[split] = {"input_ids": _ids_array(pixels[idx]),
                      "target": pa.array(labels[idx], type=pa.int64())}
    return out


# ---------------------------------------------------------------------------------------
# Retrieval (AAN)

def read_retrieval_file(path: str | os.PathLike, max_length: int = 4000,
                        limit: int | None = None) -> dict[str, pa.ChunkedArray | pa.Array]:
    """One `new_aan_pairs.*.tsv` as columns input_ids, input_ids_b, target."""
    task = "retrieval"
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{task}: no LRA release file {path} (unpack lra_release.gz and "
                         f"give its folder with path:)")
    docs_a: list[bytes] = []
    docs_b: list[bytes] = []
    labels: list[int] = []
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            if limit is not None and len(labels) >= limit:
                break
            line = raw.rstrip(b"\n")
            if line.endswith(b"\r"):
                line = line[:-1]
            if not line.strip():
                continue
            fields = line.split(b"\t")
            if len(fields) != 5:
                raise ValueError(f"{task}: {path} line {number}: expected 5 tab-separated "
                                 f"fields (label, id1, id2, text1, text2), got {len(fields)}")
            try:
                value = float(fields[0])
            except ValueError:
                value = float("nan")
            if value not in (0.0, 1.0):
                raise ValueError(f"{task}: {path} line {number}: label must be 0 or 1 "
                                 f"(got {fields[0][:20].decode('utf-8', 'replace')!r})")
            labels.append(int(value))
            docs_a.append(fields[3][:max_length])
            docs_b.append(fields[4][:max_length])
    return {"input_ids": _ids_array(docs_a), "input_ids_b": _ids_array(docs_b),
            "target": pa.array(np.asarray(labels, dtype=np.int64), type=pa.int64())}


def retrieval_splits(root: str | os.PathLike, max_length: int = 4000,
                     limit: int | None = None) -> dict[str, dict]:
    """train/validation/test of LRA's byte-level AAN retrieval task.

    Files `<root>/tsv_data/new_aan_pairs.{train,eval,test}.tsv` (`eval` is validation).
    Both documents' bytes become ids byte + 1, each truncated to `max_length`; `limit`
    keeps the first rows of each file. Returns split -> {"input_ids", "input_ids_b",
    "target"} (Arrow arrays). All three files are checked before any is read.
    """
    if max_length < 1:
        raise ValueError(f"retrieval.max_length: must be >= 1 (got {max_length})")
    if limit is not None and limit < 0:
        raise ValueError(f"retrieval.limit: must be >= 0 or null (got {limit})")
    folder = _release_dir("retrieval", root, "tsv_data")
    files = {split: folder / f"new_aan_pairs.{name}.tsv"
             for split, name in RETRIEVAL_FILES.items()}
    missing = [str(p) for p in files.values() if not p.is_file()]
    if missing:
        raise ValueError(f"retrieval: no LRA release file {', '.join(missing)} (unpack "
                         f"lra_release.gz and give its folder with path:)")
    return {split: read_retrieval_file(p, max_length, limit) for split, p in files.items()}
