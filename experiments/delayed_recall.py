"""Delayed recall against silence length: suGRU (each gate) against a GRU and an LSTM, same width and budget.

    python experiments/delayed_recall.py                      # CPU-sized: about 15 min on one quiet core
    python experiments/delayed_recall.py --silences 1000 --seeds 0 1 2
    python experiments/delayed_recall.py --full               # the issue's sizes (a GPU)
    python experiments/delayed_recall.py --full --silences 1000 --spread 100 --models "suGRU event (default)" GRU

Each row is one `surnn.train.train` run on `delayed_recall` with min_delay = max_delay = the
silence; GRU and LSTM are the same layer with every switch open (torch.nn.GRU / LSTM's update).
The suGRU rows use the library's defaults (event gate: the recipe) unless the row names another
gate (the rhythmic row keeps the other recipe settings). Every row has the same width, batch and
step budget. Prints one table (mean and spread over the seeds of validation accuracy and update
rate) and writes a PNG of accuracy against silence length.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch

from surnn.train import train

MODELS = {"suGRU event (default)": {}, "suGRU rhythmic": {"gate": "rhythmic", "max_period": 4096.0},
          "GRU": {"gate": "none"}, "LSTM": {"gate": "none", "cell": "lstm"}}
SMALL = {"hidden_size": 32, "batch_size": 32, "epochs": 2, "steps_per_epoch": 40, "num_tokens": 2,
         "vocab_size": 4, "num_train": 2048, "num_val": 256}
FULL = {"hidden_size": 128, "batch_size": 64, "epochs": 3, "steps_per_epoch": 100, "num_tokens": 4,
        "vocab_size": 8, "num_train": 8000, "num_val": 1000}


def run(model: str, silence: int, seed: int, size: dict, cache_dir: str, threads: int, spread: int = 0) -> dict:
    options = {"num_train": size["num_train"], "num_val": size["num_val"], "num_test": 32,
               "num_tokens": size["num_tokens"], "vocab_size": size["vocab_size"],
               "min_delay": silence, "max_delay": silence + spread}
    config = {"task": "delayed_recall", "task_options": options, "seed": seed,
              "num_threads": threads, "inference_timing": "off", "cache_dir": cache_dir,
              **{k: size[k] for k in ("hidden_size", "batch_size", "epochs", "steps_per_epoch")}, **MODELS[model]}
    start = time.perf_counter()
    result = train(config, lambda metrics, checkpoint_dir=None: None)
    return {"acc": result["val_accuracy"], "rate": result["update_rate"], "s": time.perf_counter() - start}


def _stat(values: list[float]) -> str:
    spread = (max(values) - min(values)) / 2 if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.3f} ±{spread:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--silences", type=int, nargs="+", default=None)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--full", action="store_true", help="the issue's sizes (hidden 128, batch 64, 300 steps)")
    parser.add_argument("--spread", type=int, default=0,
                        help="silences drawn from [S, S + spread] per sequence (the issue's 1000-1100: --spread 100)")
    parser.add_argument("--plot", default="delayed_recall.png")
    args = parser.parse_args()
    if args.spread < 0:
        parser.error(f"--spread: must be >= 0, got {args.spread}")
    torch.set_num_threads(args.threads)
    size = FULL if args.full else SMALL
    silences = args.silences or [100, 300, 1000, 3000]
    chance = 1.0 / size["vocab_size"]
    rows: dict[tuple[str, int], list[dict]] = {}
    with tempfile.TemporaryDirectory() as cache:
        for silence in silences:
            for model in args.models:
                rows[model, silence] = [run(model, silence, s, size, cache, args.threads, args.spread)
                                          for s in args.seeds]
                r = rows[model, silence]
                print(f"{model:<22} silence {silence:>5}  acc {_stat([x['acc'] for x in r])}  "
                      f"rate {_stat([x['rate'] for x in r])}  {statistics.mean(x['s'] for x in r):.0f} s/run", flush=True)
    print(f"\n| model | silence | accuracy (chance {chance:.3f}) | update rate |\n|---|---|---|---|")
    for (model, silence), r in rows.items():
        print(f"| {model} | {silence} | {_stat([x['acc'] for x in r])} | {_stat([x['rate'] for x in r])} |")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4))
    for model in args.models:
        ax.plot(silences, [statistics.mean(x["acc"] for x in rows[model, s]) for s in silences], "o-", label=model)
    ax.axhline(chance, color="grey", ls="--", label="chance")
    ax.set(xscale="log", xlabel="silent steps", ylabel="validation accuracy",
           title=f"delayed recall, {len(args.seeds)} seeds, hidden {size['hidden_size']}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.plot, dpi=120)
    print(f"wrote {args.plot}")


if __name__ == "__main__":
    main()
