"""Forward + backward time of a SuRNN layer against torch.nn.GRU on the same shapes, same run.

    python benchmarks/layer_speed.py                       # batch 32, length 1024, 128 -> 256
    python benchmarks/layer_speed.py --cell lstm --gate event --length 256

Prints the median time of each and their ratio (SuRNN / baseline), with the spread of the
ratio over the repeats: the two are timed in alternation, so load on a shared machine hits
both alike. The baseline is torch.nn.GRU (nn.LSTM / nn.RNN for those cells), the fused
recurrent op of this torch build. The suGRU runs its fused scan (`SURNN_GRU_KERNEL` picks
which: the PyTorch scan on CPU, the Triton kernels on CUDA).
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from surnn import SuRNN

BASELINES = {"gru": torch.nn.GRU, "lstm": torch.nn.LSTM, "rnn": torch.nn.RNN}


def time_fwd_bwd(module: torch.nn.Module, x: torch.Tensor) -> float:
    """Seconds of one forward and backward pass (loss = sum of outputs)."""
    module.zero_grad(set_to_none=True)
    start = time.perf_counter()
    module(x)[0].float().sum().backward()
    if x.is_cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - start


def compare(baseline: torch.nn.Module, layer: torch.nn.Module, x: torch.Tensor, repeats: int,
            warmup: int) -> tuple[list[float], list[float]]:
    """Times of both per repeat, measured in alternation so that load on the machine hits both alike."""
    times: tuple[list[float], list[float]] = ([], [])
    for i in range(warmup + repeats):
        for module, bucket in zip((baseline, layer), times):
            t = time_fwd_bwd(module, x)
            if i >= warmup:
                bucket.append(t)
    return times


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--length", type=int, default=1024)
    p.add_argument("--input-size", type=int, default=128)
    p.add_argument("--hidden-size", type=int, default=256)
    p.add_argument("--cell", default="gru", choices=sorted(BASELINES))
    p.add_argument("--gate", default="rhythmic", choices=["rhythmic", "event", "none"])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--num-threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = p.parse_args()
    if args.num_threads:
        torch.set_num_threads(args.num_threads)

    torch.manual_seed(0)
    dev = torch.device(args.device)
    x = torch.randn(args.batch, args.length, args.input_size, device=dev)
    baseline = BASELINES[args.cell](args.input_size, args.hidden_size, batch_first=True).to(dev)
    layer = SuRNN(args.input_size, args.hidden_size, cell=args.cell, gate=args.gate).to(dev)

    base_times, su_times = compare(baseline, layer, x, args.repeats, args.warmup)
    t_base, t_su = statistics.median(base_times), statistics.median(su_times)
    ratios = sorted(s / b for s, b in zip(su_times, base_times))
    tokens = args.batch * args.length
    print(f"device={dev} threads={torch.get_num_threads()} batch={args.batch} length={args.length} "
          f"input={args.input_size} hidden={args.hidden_size} cell={args.cell} gate={args.gate}")
    print(f"nn.{BASELINES[args.cell].__name__:<5} fwd+bwd {t_base * 1e3:8.1f} ms  {tokens / t_base:9.0f} tokens/s")
    print(f"SuRNN     fwd+bwd {t_su * 1e3:8.1f} ms  {tokens / t_su:9.0f} tokens/s")
    print(f"ratio SuRNN / nn.{BASELINES[args.cell].__name__}: {t_su / t_base:.2f}x (medians); per repeat "
          f"median {statistics.median(ratios):.2f}x, range {ratios[0]:.2f}x-{ratios[-1]:.2f}x over {len(ratios)}")


if __name__ == "__main__":
    main()
