"""Hub-backed tasks (image, scifar, smnist, psmnist, text) on small local Parquet files in
the hub's schema; the hub itself is never reached (offline mode, a private HF cache)."""
import io

import datasets
import huggingface_hub
import numpy as np
import pytest
from PIL import Image

from surnn.data import hub, load_task
from surnn.data.tasks import task_info
from surnn.train import train


@pytest.fixture(autouse=True)
def offline_hub(tmp_path, monkeypatch):
    """No network, and datasets' own cache inside tmp_path (HF_HOME is read at import, so
    the module-level constants are patched too)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf" / "datasets")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


def _png(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def _write(path, columns: dict, features: datasets.Features):
    path.parent.mkdir(parents=True, exist_ok=True)
    datasets.Dataset.from_dict(columns, features=features).to_parquet(str(path))


def _images(folder, image_col: str, shape, sizes: dict[str, int], seed=0) -> dict:
    """Hub-layout Parquet files of random images; returns split -> (pixels, labels)."""
    rng = np.random.default_rng(seed)
    features = datasets.Features({image_col: datasets.Image(),
                                  "label": datasets.ClassLabel(num_classes=10)})
    made = {}
    for split, n in sizes.items():
        pixels = rng.integers(0, 256, size=(n, *shape), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n).tolist()
        _write(folder / "plain_text" / f"{split}-00000-of-00001.parquet",
               {image_col: [{"bytes": _png(p), "path": None} for p in pixels], "label": labels},
               features)
        made[split] = (pixels, labels)
    return made


@pytest.fixture
def cifar(tmp_path):
    folder = tmp_path / "cifar10"
    return folder, _images(folder, "img", (32, 32, 3), {"train": 12, "test": 6})


@pytest.fixture
def mnist(tmp_path):
    folder = tmp_path / "mnist"
    return folder, _images(folder, "image", (28, 28), {"train": 10, "test": 5}, seed=1)


TEXTS = ["short é review", "x" * 50, "a long one " * 10, "ok", "bad film", "ünïcode ✓", "meh",
         "great", "fine " * 3, "terrible", "z", "yy"]


@pytest.fixture
def imdb(tmp_path):
    folder = tmp_path / "imdb"
    features = datasets.Features({"text": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=["neg", "pos"])})
    train_labels = [0] * 6 + [1] * 6           # sorted by label, like IMDb's train split
    _write(folder / "plain_text" / "train-00000-of-00001.parquet",
           {"text": TEXTS, "label": train_labels}, features)
    _write(folder / "plain_text" / "test-00000-of-00001.parquet",
           {"text": TEXTS[:4], "label": [0, 1, 0, 1]}, features)
    _write(folder / "plain_text" / "unsupervised-00000-of-00001.parquet",   # ignored
           {"text": ["u"], "label": [0]}, features)
    return folder, train_labels


def _rows(split, column):
    return split.dataset.data.table.column(column).to_pylist()


def _gray(rgb: np.ndarray) -> np.ndarray:
    return np.asarray(Image.fromarray(rgb).convert("L"), dtype=np.int64).reshape(-1)


def test_image_tokens_are_gray_pixels_plus_one_with_the_last_train_rows_as_validation(cifar, tmp_path):
    folder, made = cifar
    task = load_task("image", {"path": str(folder), "val_size": 4, "num_proc": 1},
                     cache_dir=tmp_path / "cache")
    info = task.info
    assert (info.kind, info.input_kind, info.vocab_size, info.num_classes, info.pooling) == \
        ("classification", "tokens", 257, 10, "mean")
    assert (len(task.train), len(task.validation), len(task.test)) == (8, 4, 6)
    pixels, labels = made["train"]
    train_ids = _rows(task.train, "input_ids")
    assert all(len(r) == 1024 for r in train_ids)
    assert np.array_equal(train_ids[0], _gray(pixels[0]) + 1)
    assert np.array_equal(_rows(task.validation, "input_ids")[0], _gray(pixels[8]) + 1)
    assert _rows(task.train, "target") == labels[:8]
    assert _rows(task.validation, "target") == labels[8:]
    test_pixels, test_labels = made["test"]
    assert np.array_equal(_rows(task.test, "input_ids")[5], _gray(test_pixels[5]) + 1)
    assert _rows(task.test, "target") == test_labels
    batch = task.train.get_batch(np.arange(4))
    assert batch.inputs.shape == (4, 1024) and batch.inputs.min() >= 1 and batch.inputs.max() <= 256
    assert batch.mask.all()


def test_scifar_is_rgb_steps_in_unit_range(cifar, tmp_path):
    folder, made = cifar
    task = load_task("scifar", {"path": str(folder), "val_size": 2, "num_proc": 2},
                     cache_dir=tmp_path / "cache")
    assert (task.info.input_kind, task.info.input_dim, task.info.pooling) == ("continuous", 3, "last")
    pixels, labels = made["train"]
    batch = task.train.get_batch(np.array([0, 3]))
    assert batch.inputs.shape == (2, 1024, 3) and batch.inputs.dtype == np.float32
    expected = pixels[[0, 3]].reshape(2, 1024, 3).astype(np.float32) / 255.0
    np.testing.assert_allclose(batch.inputs, expected, rtol=0, atol=1e-7)
    assert batch.targets.tolist() == [labels[0], labels[3]]


def test_psmnist_is_smnist_with_one_seeded_permutation_for_every_split(mnist, tmp_path):
    folder, made = mnist
    opts = {"path": str(folder), "val_size": 2, "num_proc": 1}
    plain = load_task("smnist", opts, cache_dir=tmp_path / "cache")
    perm = load_task("psmnist", opts, cache_dir=tmp_path / "cache")
    other = load_task("psmnist", {**opts, "permutation_seed": 1}, cache_dir=tmp_path / "cache")
    assert (plain.info.input_dim, plain.info.pooling, plain.info.num_classes) == (1, "last", 10)
    pixels, _ = made["train"]
    first = plain.train.get_batch(np.array([0])).inputs
    assert first.shape == (1, 784, 1)
    np.testing.assert_allclose(first[0, :, 0], pixels[0].reshape(-1) / 255.0, atol=1e-7)
    order = np.random.default_rng(0).permutation(784)
    for split in ("train", "validation", "test"):
        x = getattr(plain, split).get_batch(np.arange(len(getattr(plain, split)))).inputs
        y = getattr(perm, split).get_batch(np.arange(len(getattr(perm, split)))).inputs
        z = getattr(other, split).get_batch(np.arange(len(getattr(other, split)))).inputs
        assert np.array_equal(y, x[:, order]), split
        assert not np.array_equal(z, y), split
        assert _rows(getattr(perm, split), "target") == _rows(getattr(plain, split), "target")


def test_text_is_truncated_utf8_bytes_with_a_random_validation_carve(imdb, tmp_path):
    folder, train_labels = imdb
    task = load_task("text", {"path": str(folder), "val_size": 4, "max_length": 20, "num_proc": 1},
                     cache_dir=tmp_path / "cache")
    info = task.info
    assert (info.input_kind, info.vocab_size, info.num_classes, info.pooling) == ("tokens", 257, 2, "mean")
    encoded = {tuple(np.frombuffer(t.encode("utf-8")[:20], np.uint8).astype(int) + 1): t for t in TEXTS}
    train = [encoded[tuple(r)] for r in _rows(task.train, "input_ids")]
    val = [encoded[tuple(r)] for r in _rows(task.validation, "input_ids")]
    assert len(train) == 8 and len(val) == 4 and not set(train) & set(val)
    assert set(train) | set(val) == set(TEXTS)
    assert len(set(_rows(task.validation, "target"))) == 2     # not just the last (positive) rows
    assert max(len(r) for r in _rows(task.train, "input_ids")) == 20
    assert _rows(task.test, "input_ids")[3] == [ord("o") + 1, ord("k") + 1]   # short: kept as is
    assert len(task.test) == 4                                 # the unsupervised file is ignored
    lra = load_task("text", {"path": str(folder), "val_size": 0, "num_proc": 1},
                    cache_dir=tmp_path / "cache")
    assert len(lra.train) == 12 and _rows(lra.validation, "input_ids") == _rows(lra.test, "input_ids")


def test_limits_keep_a_seeded_subset(cifar, tmp_path):
    folder, _ = cifar
    opts = {"path": str(folder), "val_size": 4, "num_train": 3, "num_val": 2, "num_test": 1,
            "num_proc": 1}
    a = load_task("image", opts, cache_dir=tmp_path / "a")
    b = load_task("image", opts, cache_dir=tmp_path / "b")
    assert (len(a.train), len(a.validation), len(a.test)) == (3, 2, 1)
    assert _rows(a.train, "input_ids") == _rows(b.train, "input_ids")


def test_second_load_comes_from_the_cache_without_loading_or_mapping(cifar, tmp_path, monkeypatch):
    folder, _ = cifar
    opts = {"path": str(folder), "val_size": 4, "num_proc": 1}
    first = load_task("image", opts, cache_dir=tmp_path / "cache")

    def fail(*args, **kwargs):
        raise AssertionError("the cache should have been used")

    monkeypatch.setattr(datasets.DatasetDict, "map", fail)
    monkeypatch.setattr(hub, "load_source", fail)
    second = load_task("image", opts, cache_dir=tmp_path / "cache")
    assert second.train.memory_mapped
    assert _rows(second.train, "input_ids") == _rows(first.train, "input_ids")


def _one_line(exc_info) -> str:
    message = str(exc_info.value)
    assert "\n" not in message
    return message


def test_a_wrong_schema_names_the_missing_or_mistyped_column(tmp_path):
    bad = tmp_path / "bad"
    plain = datasets.Features({"a": datasets.Value("int64"), "b": datasets.Value("string")})
    for split in ("train", "test"):
        _write(bad / f"{split}.parquet", {"a": [1, 2], "b": ["x", "y"]}, plain)
    with pytest.raises(ValueError) as exc:
        load_task("image", {"path": str(bad)}, cache_dir=tmp_path / "cache")
    assert _one_line(exc) == f"image: {bad / 'train.parquet'} has no column 'img' (has: a, b)"

    typed = tmp_path / "typed"
    features = datasets.Features({"text": datasets.Value("string"), "label": datasets.Value("string")})
    for split in ("train", "test"):
        _write(typed / f"{split}.parquet", {"text": ["x"], "label": ["pos"]}, features)
    with pytest.raises(ValueError) as exc:
        load_task("text", {"path": str(typed), "val_size": 0}, cache_dir=tmp_path / "cache")
    assert "column 'label' must be an integer label" in _one_line(exc)


def test_a_missing_path_or_split_is_named(imdb, tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(ValueError) as exc:
        load_task("text", {"path": str(missing)}, cache_dir=tmp_path / "cache")
    assert str(missing) in _one_line(exc) and "does not exist" in str(exc.value)
    folder, _ = imdb
    with pytest.raises(ValueError) as exc:
        load_task("text", {"path": str(folder / "plain_text" / "train-00000-of-00001.parquet")},
                  cache_dir=tmp_path / "cache")
    assert "has no test split" in _one_line(exc)


def test_an_unreachable_hub_fails_fast_with_the_id_and_the_way_out(tmp_path):
    with pytest.raises(ValueError) as exc:
        load_task("image", {"source": "nobody/no-such-dataset"}, cache_dir=tmp_path / "cache")
    message = _one_line(exc)
    assert message.startswith("image: cannot load 'nobody/no-such-dataset' from the Hugging Face hub (")
    assert message.endswith("give a local copy with path: (a Parquet/Arrow file or folder in the hub's schema)")


def test_task_info_needs_no_data():
    assert task_info("psmnist").input_dim == 1
    assert task_info("text", {"max_length": 1000}).vocab_size == 257


@pytest.mark.parametrize("name", ["image", "scifar", "smnist", "psmnist", "text"])
def test_two_training_steps_on_every_hub_task(name, cifar, mnist, imdb, tmp_path):
    folder = {"image": cifar, "scifar": cifar, "smnist": mnist, "psmnist": mnist, "text": imdb}[name][0]
    options = {"path": str(folder), "val_size": 2, "num_proc": 1}
    if name == "text":
        options["max_length"] = 64
    result = train({"task": name, "task_options": options, "hidden_size": 8, "epochs": 1,
                    "steps_per_epoch": 2, "batch_size": 4, "num_threads": 1,
                    "cache_dir": str(tmp_path / "cache")})
    assert result["status"] == "completed"
    assert 0.0 <= result["val_accuracy"] <= 1.0 and result["epoch"] == 1


def test_a_save_to_disk_folder_of_arrow_files_is_read_too(tmp_path):
    features = datasets.Features({"text": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=["neg", "pos"])})
    splits = datasets.DatasetDict({
        "train": datasets.Dataset.from_dict({"text": TEXTS, "label": [0, 1] * 6}, features=features),
        "test": datasets.Dataset.from_dict({"text": ["ab"], "label": [1]}, features=features)})
    splits.save_to_disk(str(tmp_path / "saved"))
    task = load_task("text", {"path": str(tmp_path / "saved"), "val_size": 2, "num_proc": 1},
                     cache_dir=tmp_path / "cache")
    assert (len(task.train), len(task.validation), len(task.test)) == (10, 2, 1)
    assert _rows(task.test, "input_ids") == [[ord("a") + 1, ord("b") + 1]]
    assert _rows(task.test, "target") == [1]


def test_a_label_out_of_range_is_named(tmp_path):
    features = datasets.Features({"image": datasets.Image(), "label": datasets.Value("int64")})
    pixel = {"bytes": _png(np.zeros((28, 28), np.uint8)), "path": None}
    for split in ("train", "test"):
        _write(tmp_path / "m" / f"{split}.parquet", {"image": [pixel] * 3, "label": [1, 12, 3]}, features)
    with pytest.raises(ValueError) as exc:
        load_task("smnist", {"path": str(tmp_path / "m"), "val_size": 1, "num_proc": 1},
                  cache_dir=tmp_path / "cache")
    assert _one_line(exc) == "smnist: the train split has label 12 outside 0..9"
