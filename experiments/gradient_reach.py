"""Gradient reach: the norm of d loss / d x_0 across S silent steps, suGRU against GRU and LSTM.

    python experiments/gradient_reach.py                     # CPU-sized: seconds on 2 cores
    python experiments/gradient_reach.py --silences 10 1000 --seeds 0 1 2
    python experiments/gradient_reach.py --full              # wider layers, longer silences (a GPU)

One layer sees a data step x_0 (a random vector), then S silent steps (one fixed random "blank"
vector, as a blank token's embedding would be); the loss is a fixed random readout of the last
state, L = w . h_S. Rows:

* ``suGRU closed``: the event gate set so that x_0 (here all ones) opens every switch and the
  silent input (here 0) closes them all (u . x_0 + c = +5, u . 0 + c = -5, no state term). Over the silence
  every neuron is copied bit for bit and its Jacobian is the identity, so d L / d x_0 must not
  change with S at all (the ratio column reads exactly 1).
* ``suGRU init``: the library's default suGRU as built (event gate, init_update_rate 0.5): the
  switches of about half the neurons start closed on the blank input, and those carry the
  gradient across any silence unchanged (through the mixing of the open ones, at a lower norm).
* ``GRU`` / ``LSTM``: the same layer with every switch open (torch.nn.GRU / LSTM's update).

Everything runs in float64 so that a decaying gradient is measured down to 1e-300 rather than
flushed to 0 by float32 (a 0 in the table is a norm below float64's smallest number, about
1e-308 for the norm and 5e-324 for one entry). Prints a table (median and range over seeds)
and writes a PNG of the norm against S on log-log axes.
"""
from __future__ import annotations

import argparse
import statistics

import torch

from surnn.cell import SuRNN

MODELS = ("suGRU closed", "suGRU init", "GRU", "LSTM")
SMALL = {"input_size": 16, "hidden_size": 64, "batch_size": 4}
FULL = {"input_size": 128, "hidden_size": 256, "batch_size": 16}
_DRIVE = 5.0   # |gate drive| of the closed suGRU: far outside the boxcar surrogate's support


def build(model: str, size: dict, seed: int) -> SuRNN:
    """The layer of one row, initialised from `seed` (the same candidate weights for every row)."""
    torch.manual_seed(seed)
    D, H = size["input_size"], size["hidden_size"]
    settings = {"suGRU closed": {"gate": "event"}, "suGRU init": {},
                "GRU": {"gate": "none"}, "LSTM": {"gate": "none", "cell": "lstm"}}[model]
    layer = SuRNN(D, H, **settings).double()
    if model == "suGRU closed":
        with torch.no_grad():
            # x_0 is all ones (below), so u . x_0 = 2 * _DRIVE and the drive there is +_DRIVE;
            # a silent step has u . 0 = 0 and the drive -_DRIVE.
            layer.gate.weight.fill_(2.0 * _DRIVE / D)
            layer.gate.state_weight.zero_()
            layer.gate.bias.fill_(-_DRIVE)
    return layer


def reach(model: str, silence: int, seed: int, size: dict) -> dict:
    """(|d L / d x_0|, update rate over the silence) of one layer and one silence length."""
    layer = build(model, size, seed)
    gen = torch.Generator().manual_seed(10_000 + seed)
    B, D, H = size["batch_size"], size["input_size"], size["hidden_size"]
    if model == "suGRU closed":
        first, blank = torch.ones(B, 1, D, dtype=torch.float64), torch.zeros(D, dtype=torch.float64)
    else:
        first = torch.randn(B, 1, D, generator=gen, dtype=torch.float64)
        blank = torch.randn(D, generator=gen, dtype=torch.float64)
    first.requires_grad_(True)
    x = torch.cat([first, blank.expand(B, silence, D)], 1)
    readout = torch.randn(H, generator=gen, dtype=torch.float64) / H ** 0.5
    y, _, gates = layer(x)
    (y[:, -1] @ readout).sum().backward()
    return {"norm": _norm(first.grad), "rate": gates[:, 1:].double().mean().item()}


def _norm(grad: torch.Tensor) -> float:
    """The 2-norm, scaled by the largest entry first: squaring entries below 1e-154 underflows float64."""
    top = grad.abs().max()
    return (top * (grad / top).norm()).item() if top > 0 else 0.0


def _sci(values: list[float]) -> str:
    return f"{statistics.median(values):.3e} [{min(values):.1e}, {max(values):.1e}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--silences", type=int, nargs="+", default=None)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--full", action="store_true", help="hidden 256, batch 16, silences up to 10000")
    parser.add_argument("--plot", default="gradient_reach.png")
    args = parser.parse_args()
    if any(s < 1 for s in args.silences or []):
        parser.error("--silences: every length must be >= 1")
    torch.set_num_threads(args.threads)
    size = FULL if args.full else SMALL
    default = [10, 100, 300, 1000, 3000] + ([10000] if args.full else [])
    silences = sorted(args.silences or default)
    rows = {(m, s): [reach(m, s, seed, size) for seed in args.seeds] for m in args.models for s in silences}
    print(f"| model | silent steps S | norm of dL/dx_0 (median [min, max], {len(args.seeds)} seeds) "
          f"| ratio to S={silences[0]} | update rate over the silence |\n|---|---|---|---|---|")
    for (model, silence), r in rows.items():
        norms, base = [x["norm"] for x in r], [x["norm"] for x in rows[model, silences[0]]]
        ratio = statistics.median(n / b if b > 0 else float("nan") for n, b in zip(norms, base))
        rate = statistics.mean(x["rate"] for x in r)
        print(f"| {model} | {silence} | {_sci(norms)} | {ratio:.6g} | {rate:.3f} |")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4))
    for model in args.models:
        meds = [max(statistics.median(x["norm"] for x in rows[model, s]), 1e-320) for s in silences]
        ax.plot(silences, meds, "o-", label=model)
    ax.set(xscale="log", yscale="log", xlabel="silent steps S", ylabel="|d loss / d x_0|",
           title=f"gradient reach, hidden {size['hidden_size']}, {len(args.seeds)} seeds (median)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.plot, dpi=120)
    print(f"wrote {args.plot}")


if __name__ == "__main__":
    main()
