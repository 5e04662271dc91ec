"""Does the data loader keep up? Samples per second from the Arrow cache into padded batches,
against the samples per second the trainer consumes (forward + backward + step) at a width.

    python benchmarks/data_throughput.py                                  # ListOps, width 256
    python benchmarks/data_throughput.py --task text --task-option path=/data/imdb --hidden-size 512
    python benchmarks/data_throughput.py --task delayed_recall --batches 20

Both are measured in the same run on the same batches; the ratio loader / trainer is what
matters: above 1 the loader is never what the device waits on (the trainer draws batches in
the same process, so a ratio of r leaves 1/r of each step to loading). On a GPU the trainer is
faster and the ratio smaller: measure there with --device cuda.
"""
from __future__ import annotations

import argparse
import itertools
import time

import torch
import yaml

from surnn.data import load_task
from surnn.model import build_model
from surnn.train import make_optimizer, run_batch
from surnn.train_config import TrainConfig


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", default="listops")
    p.add_argument("--task-option", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--hidden-size", type=int, default=256)
    p.add_argument("--num-layers", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--batches", type=int, default=10, help="trainer steps timed (the loader is timed over more)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--cache-dir", default=None)
    args = p.parse_args()
    options = {k: yaml.safe_load(v) for k, _, v in (o.partition("=") for o in args.task_option)}
    if args.task == "listops" and not options:
        options = {"num_train": 4000, "num_val": 100, "num_test": 100}   # LRA lengths, fewer samples

    task = load_task(args.task, options, cache_dir=args.cache_dir)
    split = task.train
    n_load = max(20, 5 * args.batches)
    start = time.perf_counter()
    batches = list(itertools.islice(split.iter_batches(args.batch_size, shuffle=True, seed=0), n_load))
    load_s = time.perf_counter() - start
    loaded = sum(len(b.mask) for b in batches)

    cfg = TrainConfig(task=args.task, task_options=options, hidden_size=args.hidden_size,
                      num_layers=args.num_layers, batch_size=args.batch_size, device=args.device)
    device = torch.device(args.device)
    model = build_model(task.info, cfg.hidden_size, cfg.num_layers, layer_settings=cfg.layer_settings()).to(device)
    opt = make_optimizer(model, cfg)
    timed = batches[1: args.batches + 1]
    for batch in batches[:1] + timed:   # the first step warms up
        if batch is timed[0]:
            start = time.perf_counter()
        loss = run_batch(model, batch, device, cfg).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    train_s = time.perf_counter() - start
    trained = sum(len(b.mask) for b in timed)

    mean_len = float(split.lengths.mean())
    load_rate, train_rate = loaded / load_s, trained / train_s
    print(f"task={args.task} train split {len(split)} sequences, mean length {mean_len:.0f}; "
          f"batch {args.batch_size}; width {args.hidden_size} x {args.num_layers}; device {device}; "
          f"threads {torch.get_num_threads()}")
    print(f"loader  (cache -> padded numpy batches): {load_rate:10.0f} samples/s  ({n_load} batches)")
    print(f"trainer (forward + backward + step):     {train_rate:10.1f} samples/s  ({len(timed)} batches)")
    print(f"ratio loader / trainer: {load_rate / train_rate:.0f}x")


if __name__ == "__main__":
    main()
