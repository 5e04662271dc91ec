"""Sparse inference against dense, batch 1: the speed a closed switch buys, same weights, same run.

    python benchmarks/sparse_inference.py                       # widths 256, 1024; rates 0.5 .. 0.02
    python benchmarks/sparse_inference.py --widths 256 --rates 0.17 --threads 2 --repeats 7
    python benchmarks/sparse_inference.py --gate event          # the event gate's cost

Per row: a trained-shape suGRU layer (`SuRNN`, input = width) whose update rate is set through
`init_update_rate` and measured from its own switches over the sequence; then, on one sequence
of `--length` steps, the median time of
  dense:  `SuRNN` (its dense path, whole sequence), `nn.GRU` (whole sequence) and a `nn.GRUCell`
          step loop (the dense streaming case), both torch modules holding the layer's weights;
  sparse: `layer.sparse()` on the whole sequence, and its `step` loop (streaming).
The speed-ups are ratios against those baselines, measured in alternation in the same run, and
`ideal` is 1 / rate. The spread is (max - min) / median over the repeats (the largest of the row's five), and
`load` the 1-minute load average while the row ran. On a shared machine use `--clock cpu`
(the default with one thread): wall time there mostly measures the other processes.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from surnn import SuRNN

# cpu: this process's CPU time. With one thread it is the wall time a quiet machine would show,
# and other processes on a shared machine barely move it (they still share caches and memory).
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def torch_twins(layer: SuRNN) -> tuple[torch.nn.GRU, torch.nn.GRUCell]:
    """nn.GRU and nn.GRUCell holding the layer's candidate weights (the same gate order r, z, n)."""
    I, H = layer.config.input_size, layer.config.hidden_size
    gru, cell = torch.nn.GRU(I, H, batch_first=True), torch.nn.GRUCell(I, H)
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(gru, name + "_l0").copy_(getattr(layer, name))
            getattr(cell, name).copy_(getattr(layer, name))
    return gru, cell


def methods(layer: SuRNN, x: torch.Tensor) -> dict[str, callable]:
    """The timed calls, by name; each runs the whole sequence x [1, T, I] once."""
    gru, cell = torch_twins(layer)
    engine = layer.sparse()
    steps = x.unbind(1)

    def cell_loop():
        h = torch.zeros(x.shape[0], layer.config.hidden_size)
        for x_t in steps:
            h = cell(x_t, h)

    def stream():
        s = None
        for t, x_t in enumerate(steps):
            s = engine.step(x_t, s, t)

    return {"surnn": lambda: layer(x), "nn.GRU": lambda: gru(x), "GRUCell": cell_loop,
            "sparse": lambda: engine(x), "stream": stream}


@torch.no_grad()
def measure(fns: dict[str, callable], repeats: int, clock) -> dict[str, list[float]]:
    """Seconds per call of each, round robin so that load on the machine hits all alike."""
    for fn in fns.values():
        fn()                                    # warm-up: caches, the schedule, allocator
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = clock()
            fn()
            times[name].append(clock() - start)
    return times


def row(width: int, rate: float, args) -> dict:
    torch.manual_seed(0)
    layer = SuRNN(width, width, cell="gru", gate=args.gate, init_update_rate=rate).eval()
    x = torch.randn(1, args.length, width)
    with torch.no_grad():
        measured = float(layer(x)[2].mean())
    load = os.getloadavg()[0]
    times = measure(methods(layer, x), args.repeats, CLOCKS[args.clock])
    load = max(load, os.getloadavg()[0])
    med = {k: statistics.median(v) for k, v in times.items()}
    spread = max((max(v) - min(v)) / statistics.median(v) for v in times.values())
    return dict(width=width, rate=measured, med=med, spread=spread, load=load,
                backend=layer.sparse().backend)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--widths", type=int, nargs="+", default=[256, 1024])
    p.add_argument("--rates", type=float, nargs="+", default=[0.5, 0.17, 0.05, 0.02],
                   help="init_update_rate of each row (the measured rate is printed)")
    p.add_argument("--length", type=int, default=1024)
    p.add_argument("--gate", default="rhythmic", choices=["rhythmic", "event"])
    p.add_argument("--threads", type=int, default=1, help="torch threads (the kernel uses one)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--clock", choices=sorted(CLOCKS), default=None,
                   help="cpu (process CPU time; the default with one thread) or wall (the default otherwise)")
    args = p.parse_args()
    args.clock = args.clock or ("cpu" if args.threads == 1 else "wall")
    torch.set_num_threads(args.threads)

    print(f"batch 1, length {args.length}, gate {args.gate}, threads {args.threads}, "
          f"repeats {args.repeats}, {os.cpu_count()} cores; {args.clock} time in ms (median)")
    head = (f"{'width':>5} {'rate':>6} | {'SuRNN':>8} {'nn.GRU':>8} {'GRUCell':>8} | {'sparse':>7} "
            f"{'stream':>7} | {'xGRUCell':>8} {'xGRU':>6} {'xSuRNN':>6} {'stream':>7} {'ideal':>6} | "
            f"{'spread':>6} {'load':>5}")
    print(head)
    print("-" * len(head))
    for width in args.widths:
        for rate in args.rates:
            r = row(width, rate, args)
            m = {k: v * 1e3 for k, v in r["med"].items()}
            print(f"{width:>5} {r['rate']:>6.3f} | {m['surnn']:>8.1f} {m['nn.GRU']:>8.1f} {m['GRUCell']:>8.1f} | "
                  f"{m['sparse']:>7.1f} {m['stream']:>7.1f} | {m['GRUCell'] / m['sparse']:>7.1f}x "
                  f"{m['nn.GRU'] / m['sparse']:>5.1f}x {m['surnn'] / m['sparse']:>5.1f}x "
                  f"{m['GRUCell'] / m['stream']:>6.1f}x {1 / r['rate']:>5.1f}x | {r['spread']:>6.2f} "
                  f"{r['load']:>5.1f}", flush=True)
    print("xGRUCell, xGRU, xSuRNN: sparse whole sequence against each; stream: the sparse step "
          "loop against the GRUCell step loop. backend:", r["backend"])


if __name__ == "__main__":
    main()
