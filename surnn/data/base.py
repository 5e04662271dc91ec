"""What every task hands the trainer: a description (`TaskInfo`) and padded batches.

A task's splits live as memory-mapped Arrow tables (see `store.py`). Every row holds one
sequence; the columns follow one convention so that a single batcher serves all tasks:

    input_ids  list<int32>    token ids, 0 is padding (token tasks)
    inputs     list<float32>  T * input_dim values, row-major over (t, feature) (continuous tasks)
    target     int64 | float  one label or value per sequence (classification / regression)
    targets    list<int32>    one label per step, IGNORE_INDEX where there is none (sequence tasks)

Padding is added by the batcher, never stored; `Batch.mask` is True on real steps.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NamedTuple

import numpy as np

PAD_ID = 0
IGNORE_INDEX = -100

TaskKind = Literal["classification", "regression", "sequence", "lm"]


@dataclass(frozen=True)
class TaskInfo:
    """Static facts about a task that the model and trainer are built from."""

    name: str
    kind: TaskKind            # classification: one class per sequence; sequence: one per step;
                              # lm: next-token prediction on the row itself (no target column)
    input_kind: Literal["tokens", "continuous"]
    vocab_size: int = 0       # token tasks: number of ids, padding included
    input_dim: int = 0        # continuous tasks: features per step
    num_classes: int = 1      # classes of `target`/`targets`; 1 for regression
    metric: str = "val_accuracy"   # the quality metric the trainer reports
    pooling: Literal["mean", "last", "none"] = "mean"   # how a sequence becomes one prediction
    pair: bool = False        # two token sequences per row (`input_ids`, `input_ids_b`): a dual encoder


class Batch(NamedTuple):
    """A padded batch as numpy arrays (the trainer moves it to torch).

    inputs:  int64 [B, T] (tokens) or float32 [B, T, D] (continuous)
    mask:    bool [B, T], True on real steps
    targets: int64 [B] (classification), float32 [B] (regression), int64 [B, T] (sequence)
    """

    inputs: np.ndarray
    mask: np.ndarray
    targets: np.ndarray
    inputs_b: np.ndarray | None = None   # pair tasks: the second sequence, int64 [B, T2]
    mask_b: np.ndarray | None = None
