import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from surnn.data import lm

LINES = [" = Valkyria Chronicles III = \n", "", " Senjō no Valkyria 3 : Unrecorded Chronicles is a tactical "
         "role @-@ playing video game developed by Sega .\n", " The game began development in 2010 .\n"] * 40


def test_tokenizer_is_byte_level_lossless_and_pads_with_zero():
    tok = lm.train_tokenizer(LINES, vocab_size=300)
    assert tok.token_to_id(lm.PAD) == 0
    text = "Senjō no Valkyria: 2010 — ünïcode ✓"
    ids = tok.encode(text).ids
    assert 0 not in ids and tok.decode(ids) == text
    assert len(tok.encode(LINES[2]).ids) < len(LINES[2].encode())   # merges learned from the corpus


def test_chunks_overlap_by_one_token_so_rows_are_inputs_and_targets():
    rows = lm.chunk([[1, 2, 3], [4, 5], [6, 7, 8, 9, 10]], seq_len=3)
    assert rows == [[1, 2, 3, 4], [4, 5, 6, 7], [7, 8, 9, 10]]
    assert lm.chunk([[1, 2]], seq_len=3) == []


def write_wikitext(folder, lines=LINES):
    """A small copy of the hub's Salesforce/wikitext in its schema: one `text` column, three splits."""
    folder.mkdir(parents=True, exist_ok=True)
    for split, part in (("train", lines), ("validation", lines[:40]), ("test", lines[40:80])):
        pq.write_table(pa.table({"text": pa.array(part, pa.string())}), folder / f"{split}-00000-of-00001.parquet")
    return folder


@pytest.mark.parametrize("name", ["wikitext2", "wikitext103"])
def test_wikitext_loads_from_a_local_copy_and_trains(tmp_path, name):
    from surnn.data import load_task
    from surnn.train import train

    options = {"path": str(write_wikitext(tmp_path / "wikitext")), "seq_len": 16, "vocab_size": 300}
    task = load_task(name, options, cache_dir=tmp_path / "cache")
    assert task.info.kind == "lm" and task.info.vocab_size == 300 and task.info.metric == "val_perplexity"
    batch = task.train.get_batch([0, 1])
    assert batch.inputs.shape == (2, 17) and batch.mask.all()
    assert batch.inputs[0, -1] == batch.inputs[1, 0]   # consecutive rows share one token
    reports = []
    result = train({"task": name, "task_options": options, "hidden_size": 16, "epochs": 2, "steps_per_epoch": 8,
                    "batch_size": 4, "lr": 1e-2, "cache_dir": str(tmp_path / "cache"), "max_period": 16.0},
                   lambda m, checkpoint_dir=None: reports.append(m))
    assert result["status"] == "completed"
    ppl = [r["val_perplexity"] for r in reports]
    assert ppl[-1] < 300 and ppl[-1] < ppl[0] * 1.01, ppl   # learns something, below uniform over the vocabulary


def test_wikitext_without_hub_access_names_the_dataset_and_the_way_out(tmp_path, monkeypatch):
    from surnn.data import load_task

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(ValueError, match=r"wikitext2: cannot load 'Salesforce/wikitext'.*path"):
        load_task("wikitext2", {}, cache_dir=tmp_path / "cache")
