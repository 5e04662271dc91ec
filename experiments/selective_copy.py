"""Selective copy: recall the data tokens scattered among blanks, in order; suGRU against GRU.

    python experiments/selective_copy.py                      # CPU-sized: minutes on 2 cores
    python experiments/selective_copy.py --seq-len 1024 --num-tokens 16 --seeds 0 1 2
    python experiments/selective_copy.py --full               # 16 tokens in 1024 steps, 7000 steps (a GPU;
                                                              # about 2 h a run on one CPU core)

Each row is one `surnn.train.train` run on the library's `selective_copy` task (Mamba's
selective copying: `num_tokens` data tokens at random positions among `seq_len` blanks, then as
many query steps that must output them in order). The suGRU row uses the library's defaults
(event gate: the recipe) but for `--sparsity-lambda` (1 under `--full`, see FULL_SPARSITY_LAMBDA);
every row the same width, batch and step budget. Prints a table (mean
and spread over the seeds of per-token validation accuracy and update rate) and writes a PNG of
accuracy against update rate, one point per run.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch

from surnn.train import train

MODELS = {"suGRU event (default)": {}, "suGRU rhythmic": {"gate": "rhythmic"}, "GRU": {"gate": "none"},
          "LSTM": {"gate": "none", "cell": "lstm"}}
SMALL = {"hidden_size": 32, "batch_size": 32, "epochs": 2, "steps_per_epoch": 40, "num_tokens": 4,
         "vocab_size": 4, "seq_len": 256, "num_train": 2048, "num_val": 256}
# 7000 steps of 16,000 sequences: with 8,000 the same run levels off at 0.89 by 6000 steps (the
# sequences repeat 48 times); with 16,000 it passes 0.9 after 4500 (README, Experiments).
FULL = {"hidden_size": 128, "batch_size": 64, "epochs": 14, "steps_per_epoch": 500, "num_tokens": 16,
        "vocab_size": 16, "seq_len": 1024, "num_train": 16000, "num_val": 1000}
# The library's sparsity_lambda (10) is the delayed-recall recipe: 4 answers after a silence. Here
# 16 answers must each come from a state that moved since the last query step, so the switches
# have to open on all 16 query steps; the rate penalty is a mean over all 1040 steps, and at 10
# (or 1 at length 64) it shuts them before the copy is learnt: every query step then repeats
# one answer (0.19, the share of the commonest token). 1 at length 1024 keeps them open.
FULL_SPARSITY_LAMBDA = 1.0


def run(model: str, seed: int, size: dict, cache_dir: str, threads: int, sparsity_lambda: float | None) -> dict:
    options = {k: size[k] for k in ("num_train", "num_val", "num_tokens", "vocab_size", "seq_len")}
    config = {"task": "selective_copy", "task_options": {**options, "num_test": 32}, "seed": seed,
              "num_threads": threads, "inference_timing": "off", "cache_dir": cache_dir,
              **{k: size[k] for k in ("hidden_size", "batch_size", "epochs", "steps_per_epoch")}, **MODELS[model]}
    if sparsity_lambda is not None and config.get("gate") != "none":
        config["sparsity_lambda"] = sparsity_lambda
    start = time.perf_counter()
    result = train(config, lambda metrics, checkpoint_dir=None: None)
    return {"acc": result["val_accuracy"], "rate": result["update_rate"], "s": time.perf_counter() - start}


def _stat(values: list[float]) -> str:
    spread = (max(values) - min(values)) / 2 if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.3f} ±{spread:.3f}"


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _non_negative(text: str) -> float:
    value = float(text)
    if not value >= 0.0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--models", nargs="+", default=["suGRU event (default)", "GRU"], choices=list(MODELS))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--full", action="store_true",
                        help="16 tokens in 1024 steps, hidden 128, batch 64, 7000 steps over 16000 training "
                             "sequences, suGRU sparsity_lambda 1")
    for name in ("seq-len", "num-tokens", "vocab-size", "hidden-size", "batch-size", "epochs", "steps-per-epoch",
                 "num-train"):
        parser.add_argument(f"--{name}", type=_positive, default=None, help="overrides the chosen size")
    parser.add_argument("--sparsity-lambda", type=_non_negative, default=None,
                        help="the suGRU's update-rate penalty (default: the library's, 10, the delayed-recall "
                             "recipe; --full: 1, at which the copy of 16 tokens in 1024 steps is learnt)")
    parser.add_argument("--plot", default="selective_copy.png")
    args = parser.parse_args()
    if args.full and args.sparsity_lambda is None:
        args.sparsity_lambda = FULL_SPARSITY_LAMBDA
    size = dict(FULL if args.full else SMALL)
    size.update({k: v for k, v in vars(args).items() if k in size and v is not None})
    if size["num_tokens"] > size["seq_len"]:
        parser.error(f"--num-tokens: {size['num_tokens']} tokens do not fit in --seq-len {size['seq_len']}")
    torch.set_num_threads(args.threads)
    chance = 1.0 / size["vocab_size"]
    rows: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory() as cache:
        for model in args.models:
            rows[model] = r = [run(model, s, size, cache, args.threads, args.sparsity_lambda) for s in args.seeds]
            print(f"{model:<22} acc {_stat([x['acc'] for x in r])}  rate {_stat([x['rate'] for x in r])}  "
                  f"{statistics.mean(x['s'] for x in r):.0f} s/run", flush=True)
    print(f"\nselective copy: {size['num_tokens']} tokens of {size['vocab_size']} values in {size['seq_len']} steps, "
          f"hidden {size['hidden_size']}, {size['epochs'] * size['steps_per_epoch']} steps of batch "
          f"{size['batch_size']}, {len(args.seeds)} seeds, suGRU sparsity_lambda "
          f"{'library default' if args.sparsity_lambda is None else args.sparsity_lambda}")
    print(f"| model | accuracy per token (chance {chance:.3f}) | update rate |\n|---|---|---|")
    for model, r in rows.items():
        print(f"| {model} | {_stat([x['acc'] for x in r])} | {_stat([x['rate'] for x in r])} |")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4))
    for model, r in rows.items():
        ax.plot([x["rate"] for x in r], [x["acc"] for x in r], "o", label=model)
    ax.axhline(chance, color="grey", ls="--", label="chance")
    ax.set(xlabel="update rate", ylabel="validation accuracy per token", xlim=(0, 1.05),
           title=f"selective copy, {size['num_tokens']} tokens in {size['seq_len']} steps")
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.plot, dpi=120)
    print(f"wrote {args.plot}")


if __name__ == "__main__":
    main()
