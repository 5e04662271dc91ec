"""LRA release readers (`surnn/data/lra_files.py`) on tiny fake release trees."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from surnn.data import lra_files
from surnn.data.store import cached_splits

HARD = "curv_contour_length_14"


def _image(seed: int, resolution: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(resolution, resolution),
                                                dtype=np.uint8)


def _pathfinder_tree(root, resolution=32, difficulty=HARD, files=(3, 2)):
    """metadata/<i>.npy with `files[i]` lines each; returns [(pixels, label)] in order."""
    folder = root / f"pathfinder{resolution}" / difficulty
    (folder / "metadata").mkdir(parents=True)
    rows = []
    for meta_number, count in enumerate(files):
        img_dir = folder / "imgs" / str(meta_number)
        img_dir.mkdir(parents=True)
        lines = []
        for k in range(count):
            pixels = _image(100 * meta_number + k, resolution)
            label = (meta_number + k) % 2
            Image.fromarray(pixels, mode="L").save(img_dir / f"sample_{k}.png")
            # The release's format: folder, file, index, label, then more numbers.
            lines.append(f"imgs/{meta_number} sample_{k}.png {k} {label} 14 1.5 1 2\n")
            rows.append((pixels, label))
        (folder / "metadata" / f"{meta_number}.npy").write_text("".join(lines))
    return rows


def test_pathfinder_ids_are_pixels_plus_one_row_major(tmp_path):
    rows = _pathfinder_tree(tmp_path, files=(3, 2))
    cols = lra_files.read_pathfinder(tmp_path, 32, num_proc=1)
    ids = cols["input_ids"].to_pylist()
    assert len(ids) == 5 and cols["target"].type == "int64"
    assert cols["input_ids"].type.value_type == "int32"
    for got, (pixels, label) in zip(ids, rows):
        assert got == (pixels.astype(np.int64).reshape(-1) + 1).tolist()
        assert min(got) >= 1 and max(got) <= 256 and len(got) == 1024
    assert cols["target"].to_pylist() == [label for _, label in rows]


def test_pathfinder_numeric_metadata_order_limit_and_pool(tmp_path):
    rows = _pathfinder_tree(tmp_path, files=(1,) * 11)   # 10.npy sorts after 9.npy
    cols = lra_files.read_pathfinder(tmp_path, 32, limit=4, num_proc=2)
    assert cols["input_ids"].to_pylist() == [
        (p.astype(np.int64).reshape(-1) + 1).tolist() for p, _ in rows[:4]]
    full = lra_files.read_pathfinder(tmp_path, 32, num_proc=2)
    assert full["input_ids"].to_pylist()[-1] == (rows[10][0].reshape(-1).astype(int) + 1).tolist()


def test_pathx_128_and_nested_release_folder(tmp_path):
    rows = _pathfinder_tree(tmp_path / "lra_release", resolution=128, files=(2,))
    cols = lra_files.read_pathfinder(tmp_path, 128, num_proc=1)
    ids = cols["input_ids"].to_pylist()
    assert [len(r) for r in ids] == [16384, 16384]
    assert ids[1] == (rows[1][0].astype(np.int64).reshape(-1) + 1).tolist()


def test_pathfinder_splits_sizes_determinism_and_store(tmp_path):
    rows = _pathfinder_tree(tmp_path, difficulty="curv_baseline", files=(10, 10))
    a = lra_files.pathfinder_splits(tmp_path, 32, "curv_baseline", seed=3, num_proc=1)
    b = lra_files.pathfinder_splits(tmp_path, 32, "curv_baseline", seed=3, num_proc=1)
    c = lra_files.pathfinder_splits(tmp_path, 32, "curv_baseline", seed=4, num_proc=1)
    assert {k: len(v["target"]) for k, v in a.items()} == {"train": 16, "validation": 2,
                                                           "test": 2}
    for split in a:
        assert a[split]["input_ids"].to_pylist() == b[split]["input_ids"].to_pylist()
    assert a["train"]["input_ids"].to_pylist() != c["train"]["input_ids"].to_pylist()
    # Every row lands in exactly one split, with its own label.
    everything = {tuple(r): t for s in a.values()
                  for r, t in zip(s["input_ids"].to_pylist(), s["target"].to_pylist())}
    assert everything == {tuple(p.reshape(-1).astype(int) + 1): lab for p, lab in rows}
    loaded = cached_splits("pathfinder", {"seed": 3}, lambda: a,
                           lra_files.pathfinder_features(), tmp_path / "cache")
    assert loaded["validation"]["input_ids"] == a["validation"]["input_ids"].to_pylist()
    assert lra_files.split_indices(200000, 0)["train"].size == 160000
    assert [v.size for v in lra_files.split_indices(25, 0).values()] == [20, 3, 2]


def test_pathfinder_errors(tmp_path):
    with pytest.raises(ValueError) as e:
        lra_files.read_pathfinder(tmp_path / "nowhere", 32)
    assert str(e.value) == (f"pathfinder: no LRA release files at {tmp_path / 'nowhere'}"
                            f"/pathfinder32/curv_contour_length_14 (unpack lra_release.gz "
                            f"and give its folder with path:)")
    _pathfinder_tree(tmp_path, files=(2,))
    with pytest.raises(ValueError, match=r"^pathx: no LRA release files at .*/pathfinder128/"):
        lra_files.read_pathfinder(tmp_path, 128)
    with pytest.raises(ValueError, match=r"pathfinder\.resolution: must be one of"):
        lra_files.read_pathfinder(tmp_path, 33)
    with pytest.raises(ValueError, match=r"pathfinder\.difficulty: must be one of"):
        lra_files.read_pathfinder(tmp_path, 32, "hard")

    meta = tmp_path / "pathfinder32" / HARD / "metadata" / "0.npy"
    good = meta.read_text()
    meta.write_text(good + "imgs/0 sample_9.png 9\n")
    with pytest.raises(ValueError, match=rf"^pathfinder: {meta} line 3: expected"):
        lra_files.read_pathfinder(tmp_path, 32)
    meta.write_text(good + "imgs/0 sample_9.png 9 x 1\n")
    with pytest.raises(ValueError, match=rf"^pathfinder: {meta} line 3: expected"):
        lra_files.read_pathfinder(tmp_path, 32)
    meta.write_text(good + "imgs/0 sample_1.png 9 2 1\n")
    with pytest.raises(ValueError, match=rf"^pathfinder: {meta} line 3: label must be 0 or 1"):
        lra_files.read_pathfinder(tmp_path, 32)

    meta.write_text(good)
    img = tmp_path / "pathfinder32" / HARD / "imgs" / "0" / "sample_1.png"
    Image.fromarray(_image(0, 16), mode="L").save(img)
    for procs in (1, 2):
        with pytest.raises(ValueError, match=rf"^pathfinder: image {img} is 16x16, "
                                             rf"expected 32x32$"):
            lra_files.read_pathfinder(tmp_path, 32, num_proc=procs)
    img.write_bytes(b"not a png")
    with pytest.raises(ValueError, match=rf"^pathfinder: cannot read image {img}: "):
        lra_files.read_pathfinder(tmp_path, 32, num_proc=1)
    img.unlink()
    with pytest.raises(ValueError, match=rf"^pathfinder: cannot read image {img}: "):
        lra_files.read_pathfinder(tmp_path, 32, num_proc=1)
    (tmp_path / "pathfinder32" / "curv_baseline" / "metadata").mkdir(parents=True)
    with pytest.raises(ValueError, match=r"^pathfinder: no metadata files .*curv_baseline"):
        lra_files.read_pathfinder(tmp_path, 32, "curv_baseline")


def _tsv(root, rows_by_file):
    folder = root / "tsv_data"
    folder.mkdir(parents=True)
    for name, rows in rows_by_file.items():
        text = "".join("\t".join(r) + "\n" for r in rows)
        (folder / f"new_aan_pairs.{name}.tsv").write_bytes(text.encode("utf-8"))


def test_retrieval_bytes_truncation_and_splits(tmp_path):
    _tsv(tmp_path, {
        "train": [("1.0", "a1", "b1", "abcdef", "xyz"), ("0", "a2", "b2", "é!", "hello world")],
        "eval": [("0.0", "c", "d", "q", "r")],
        "test": [("1", "e", "f", "", "long text"), ("0", "g", "h", "s", "t"),
                 ("1", "i", "j", "u", "v")],
    })
    out = lra_files.retrieval_splits(tmp_path, max_length=4)
    assert set(out) == {"train", "validation", "test"}
    train = out["train"]
    assert train["input_ids"].to_pylist() == [[ord(c) + 1 for c in "abcd"],
                                              [0xC3 + 1, 0xA9 + 1, ord("!") + 1]]
    assert train["input_ids_b"].to_pylist() == [[ord(c) + 1 for c in "xyz"],
                                                [ord(c) + 1 for c in "hell"]]
    assert train["target"].to_pylist() == [1, 0] and train["target"].type == "int64"
    assert out["validation"]["target"].to_pylist() == [0]
    assert out["test"]["input_ids"].to_pylist()[0] == []
    assert len(lra_files.retrieval_splits(tmp_path, limit=2)["test"]["target"]) == 2
    full = lra_files.retrieval_splits(tmp_path)
    assert full["train"]["input_ids_b"].to_pylist()[1] == [b + 1 for b in b"hello world"]
    loaded = cached_splits("retrieval", {}, lambda: out, lra_files.retrieval_features(),
                           tmp_path / "cache")
    assert loaded["test"]["input_ids_b"][0] == [ord(c) + 1 for c in "long"]


def test_retrieval_errors(tmp_path):
    with pytest.raises(ValueError) as e:
        lra_files.retrieval_splits(tmp_path)
    assert str(e.value) == (f"retrieval: no LRA release files at {tmp_path}/tsv_data "
                            f"(unpack lra_release.gz and give its folder with path:)")
    _tsv(tmp_path, {"train": [("1", "a", "b", "x", "y")], "eval": [("1", "a", "b", "x", "y")]})
    test_file = tmp_path / "tsv_data" / "new_aan_pairs.test.tsv"
    with pytest.raises(ValueError, match=rf"^retrieval: no LRA release file {test_file} "):
        lra_files.retrieval_splits(tmp_path)
    test_file.write_text("1\ta\tb\tx\ty\n0\ta\tb\tx\n")
    with pytest.raises(ValueError, match=rf"^retrieval: {test_file} line 2: expected 5 "
                                         rf"tab-separated fields .* got 4$"):
        lra_files.retrieval_splits(tmp_path)
    test_file.write_text("yes\ta\tb\tx\ty\n")
    with pytest.raises(ValueError, match=rf"^retrieval: {test_file} line 1: label must be"):
        lra_files.retrieval_splits(tmp_path)
    with pytest.raises(ValueError, match=r"^retrieval\.max_length: must be >= 1"):
        lra_files.retrieval_splits(tmp_path, max_length=0)
