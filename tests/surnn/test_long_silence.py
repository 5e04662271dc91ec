"""Memory across 1000 silent steps: the library's default suGRU recipe against a GRU.

A tiny, seeded delayed recall (2 tokens of 4 values, chance 0.25, exactly 1000 blank steps
between them and the queries), same width, batch and step budget for both models, every
other setting the library default (event gate, init_update_rate 0.5, boxcar surrogate,
sparsity_lambda 10, lr 6e-3).
"""
import time

import pytest

from surnn.train import train

OPTIONS = {"num_train": 2048, "num_val": 256, "num_test": 32, "num_tokens": 2, "vocab_size": 4,
           "min_delay": 1000, "max_delay": 1000}


def _run(tmp_path, **overrides) -> dict:
    start = time.perf_counter()
    result = train({"task": "delayed_recall", "task_options": OPTIONS, "hidden_size": 32, "batch_size": 32,
                    "epochs": 2, "steps_per_epoch": 40, "seed": 0, "num_threads": 1,
                    "inference_timing": "off", "cache_dir": str(tmp_path / "data"), **overrides},
                   lambda metrics, checkpoint_dir=None: None)
    result["seconds"] = time.perf_counter() - start
    return result


@pytest.mark.slow
def test_default_sugru_remembers_across_1000_silent_steps_where_a_gru_is_at_chance(tmp_path):
    su, gru = _run(tmp_path), _run(tmp_path, gate="none")
    print(f"suGRU {su['val_accuracy']:.3f} (rate {su['update_rate']:.3f}, {su['seconds']:.0f} s)  "
          f"GRU {gru['val_accuracy']:.3f} ({gru['seconds']:.0f} s)  chance 0.25")
    # seeds 0-2: accuracy 0.713, 0.828, 0.709 at rate 0.178, 0.202, 0.087
    assert su["val_accuracy"] > 0.5 and su["update_rate"] < 0.35
    assert gru["val_accuracy"] < 0.35   # seeds 0-2: 0.287, 0.293, 0.215
    assert su["val_accuracy"] > gru["val_accuracy"] + 0.25
