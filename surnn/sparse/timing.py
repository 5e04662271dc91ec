"""How fast a trained model infers: its sparse engine against its dense self, same run, batch 1.

The trainer calls `time_inference` after a run's last evaluation (or after every one, see
`TrainConfig.inference_timing`) and reports

    inference_ms       median wall time of the sparse engine on one validation sequence (ms)
    inference_speedup  the dense model's median time on the same sequence / inference_ms

with the run's own torch threads, the two measured in alternation so that load on the machine
hits both alike. The sequence is the longest of the split, so the figure is at the task's length.
"""
from __future__ import annotations

import copy
import statistics
import time

import numpy as np
import torch

from surnn.data.base import Batch

INFERENCE_METRICS = ("inference_ms", "inference_speedup")


def longest_sequence(split) -> Batch:
    """The split's longest row as a batch of one (numpy, as the split gives it)."""
    return split.get_batch(np.array([int(np.argmax(split.lengths))]))


@torch.no_grad()
def time_inference(model, batch: Batch, repeats: int = 5, budget_s: float = 10.0) -> dict[str, float]:
    """`INFERENCE_METRICS` of `model` (any `surnn.model.TaskModel`) on one batch.

    Args:
        model: the trained model (any device; timed as a CPU copy, so training goes on untouched).
        batch: numpy `Batch` of one row (`longest_sequence`).
        repeats: timed runs of each (after one warm-up run of each); the median counts.
        budget_s: stop repeating once the runs took this long (at least one timed run each).
    Returns:
        {"inference_ms": ..., "inference_speedup": ...}
    """
    dense = copy.deepcopy(model).float().cpu().eval()
    engine = model.sparse()
    tensors = Batch(*(None if a is None else torch.from_numpy(np.ascontiguousarray(a)) for a in batch))
    dense.forward_batch(tensors)          # warm-up: the allocator, the engine's schedule cache
    engine.forward_batch(tensors)
    times: dict[str, list[float]] = {"dense": [], "sparse": []}
    start = time.perf_counter()
    for _ in range(repeats):
        for name, fn in (("dense", dense.forward_batch), ("sparse", engine.forward_batch)):
            t0 = time.perf_counter()
            fn(tensors)
            times[name].append(time.perf_counter() - t0)
        if time.perf_counter() - start > budget_s:
            break
    sparse_s, dense_s = statistics.median(times["sparse"]), statistics.median(times["dense"])
    return {"inference_ms": sparse_s * 1e3, "inference_speedup": dense_s / max(sparse_s, 1e-12)}
