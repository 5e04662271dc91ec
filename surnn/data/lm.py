"""Language-modelling corpora: WikiText-103 and WikiText-2, as fixed-length token sequences.

Source: the hub's `Salesforce/wikitext` (configs `wikitext-103-raw-v1`, `wikitext-2-raw-v1`;
splits train/validation/test; one column `text`), or a local Parquet/Arrow copy in that schema
(`path:`). Tokeniser: a byte-level BPE trained on the training split with Hugging Face
`tokenizers` (the Rust library behind GPT-2-style tokenisers). Why trained here rather than
GPT-2's own: a pretrained vocabulary is a download from the hub, which a cluster without
internet cannot make; a BPE trained on the corpus is deterministic (same split, same vocabulary
size, same tokeniser), loses nothing (byte-level: every string round-trips) and its vocabulary
size is a setting. Id 0 is padding, as everywhere in `surnn.data`.

Rows: the split's token stream cut into rows of `seq_len + 1` tokens that overlap by one, so a
row is its own inputs (`[:-1]`) and next-token targets (`[1:]`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import datasets
import numpy as np

from . import hub
from .base import TaskInfo
from .options import check_fields, require
from .registry import IDS, TaskSpec, register

PAD = "<pad>"


def train_tokenizer(texts, vocab_size: int):
    """A byte-level BPE tokenizer trained on `texts` (an iterable of str); id 0 is padding."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[PAD], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer=trainer)
    return tok


def chunk(ids: list[list[int]], seq_len: int) -> list[list[int]]:
    """Concatenate token lists and cut rows of seq_len + 1 tokens, each overlapping the next by one."""
    stream = np.fromiter((t for row in ids for t in row), dtype=np.int32)
    n = (len(stream) - 1) // seq_len
    return [stream[i * seq_len: (i + 1) * seq_len + 1].tolist() for i in range(n)]


def build_splits(raw, vocab_size: int, seq_len: int, num_proc: int) -> dict[str, dict]:
    """raw: a DatasetDict with train/validation/test and a `text` column -> columns per split."""
    tok = train_tokenizer((t for t in raw["train"]["text"] if t.strip()), vocab_size)

    def encode(batch):
        return {"ids": [e.ids for e in tok.encode_batch([t for t in batch["text"] if t.strip()])]}

    out = {}
    for split, ds in raw.items():
        encoded = ds.map(encode, batched=True, remove_columns=ds.column_names,
                         num_proc=num_proc if len(ds) > 1000 else None)
        out[split] = {"input_ids": chunk(encoded["ids"], seq_len)}
    return out


# ---------------------------------------------------------------------------- the tasks

@dataclass(frozen=True)
class WikiText103Options:
    """source/config: the hub dataset (Salesforce/wikitext); path: a local copy in its schema
    (files or folders named train*, validation*, test*; a `text` column); seq_len: tokens per
    row; vocab_size: of the BPE trained on the training split; num_proc: tokenising processes."""

    TASK: ClassVar[str] = "wikitext103"
    source: str = "Salesforce/wikitext"
    config: str = "wikitext-103-raw-v1"
    path: str | None = None
    seq_len: int = 1024
    vocab_size: int = 32768
    num_proc: int | None = None

    def __post_init__(self):
        check_fields(self.TASK, self, strings=("source", "config", "path"), optional=("path", "num_proc"),
                     positive=("seq_len", "num_proc"))
        require(self.TASK, "vocab_size", self.vocab_size >= 258, ">= 258 (the 256 bytes, padding, one merge)",
                self.vocab_size)


@dataclass(frozen=True)
class WikiText2Options(WikiText103Options):
    TASK: ClassVar[str] = "wikitext2"
    config: str = "wikitext-2-raw-v1"
    vocab_size: int = 8192


def _wikitext_build(o) -> dict:
    from .store import _quiet

    splits = ("train", "validation", "test")
    with _quiet():
        raw, places = hub.load_source(o.TASK, o.source, o.path, config=o.config if o.path is None else None,
                                      splits=splits)
        raw = hub.check_columns(o.TASK, raw, {"text": "text"}, places)
        return build_splits(raw, o.vocab_size, o.seq_len, o.num_proc or hub.default_num_proc())


def _lm_info(o) -> TaskInfo:
    return TaskInfo(o.TASK, "lm", "tokens", vocab_size=o.vocab_size, num_classes=o.vocab_size,
                    metric="val_perplexity", pooling="none")


for _options in (WikiText103Options, WikiText2Options):
    register(_options.TASK, TaskSpec(_options, _lm_info, lambda o: datasets.Features({"input_ids": IDS}),
                                     _wikitext_build))
