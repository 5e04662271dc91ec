"""What the sparse engine precomputes from a trained layer: neuron order, packed weights, schedules.

* Order. A rhythmic neuron i opens when b_i + sum_k alpha_ik sin(omega_k t + phi_ik) exceeds
  the threshold. For neurons on one sinusoid (the gate's initialisation: neuron i on k = i mod K)
  with alike b and alpha, the open ones at step t are those whose phase lies in one arc of the
  circle, so grouping neurons by their dominant sinusoid and sorting each group by phase makes
  the open set of a step one cyclic window per group: at most two contiguous runs per group.
  Trained parameters blur the arcs' edges; the schedule below is exact whatever they are, and
  the order only decides how few runs it takes.
* Packing. Neuron-major weights W[j, g, :] = [input row | recurrent row] of block g (r, z, n for
  gru; i, f, g, o for lstm) of engine neuron j, recurrent columns in engine order: an open
  neuron's rows are one contiguous slice, a run of neurons one contiguous block.
* Schedule. The rhythmic switches of every step, computed by the layer's own gate code (so they
  are the dense layer's switches exactly) and stored as runs: run_ptr [T + 1], run_start, run_len.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from surnn.cell import _GATE_BLOCKS, SuRNN
from surnn.config import SuRNNConfig
from surnn.gates import RhythmicGate, heaviside


@dataclass(frozen=True)
class Packed:
    """A layer's frozen parameters in engine order (float32, contiguous, CPU)."""

    cell: str
    gate: str
    G: int                      # blocks per neuron: 3 gru, 1 rnn, 4 lstm
    perm: Tensor                # int64 [H]: engine neuron j is the layer's neuron perm[j]
    inverse: Tensor             # int64 [H]: the layer's neuron i is engine neuron inverse[i]
    weight: Tensor              # [H, G, I + H]
    bias: Tensor                # [H, G, 2]: input bias, recurrent bias
    event_weight: Tensor | None     # [H, I]  event gate u, engine order
    event_bias: Tensor | None       # [H]     c - gate_threshold
    event_state_weight: Tensor | None  # [H] v


@dataclass(frozen=True)
class Schedule:
    """Open runs of every step of one stretch of time (rhythmic gate or none), engine order."""

    open: Tensor                # bool [T, H] engine order
    run_ptr: Tensor             # int32 [T + 1]
    run_start: Tensor           # int32 [R]
    run_len: Tensor             # int32 [R]

    @property
    def rate(self) -> float:
        """Open fraction over the stretch (before masks)."""
        return float(self.open.float().mean()) if self.open.numel() else 0.0


def neuron_order(layer: SuRNN) -> Tensor:
    """Engine order for `layer`: rhythmic neurons grouped by dominant sinusoid, then by phase."""
    H = layer.config.hidden_size
    if layer.config.gate != "rhythmic":
        return torch.arange(H)
    gate = layer.gate
    alpha, phi = gate.alpha.detach().float(), gate.phi.detach().float()        # [H, K]
    k = alpha.abs().argmax(1)                                                   # [H]
    rows = torch.arange(H)
    # The drive peaks where omega t + phi_k = pi/2 (3pi/2 for a negative amplitude): sorting by
    # that phase orders neurons by when in the period they open.
    peak = (phi[rows, k] + torch.where(alpha[rows, k] < 0, math.pi, 0.0)) % (2 * math.pi)
    by_phase = torch.sort(peak, stable=True).indices
    return by_phase[torch.sort(k[by_phase], stable=True).indices]


@torch.no_grad()
def pack(layer: SuRNN) -> Packed:
    """Freeze `layer`'s parameters into the engine's layout."""
    cfg = layer.config
    H, I, G = cfg.hidden_size, cfg.input_size, _GATE_BLOCKS[cfg.cell]
    perm = neuron_order(layer)
    inverse = torch.empty_like(perm)
    inverse[perm] = torch.arange(H)
    w_ih = layer.weight_ih.detach().float().cpu().reshape(G, H, I)[:, perm]             # [G, H, I]
    w_hh = layer.weight_hh.detach().float().cpu().reshape(G, H, H)[:, perm][:, :, perm]  # [G, H, H]
    weight = torch.cat([w_ih, w_hh], 2).transpose(0, 1).contiguous()                    # [H, G, I + H]
    b_ih = layer.bias_ih.detach().float().cpu().reshape(G, H)[:, perm]
    b_hh = layer.bias_hh.detach().float().cpu().reshape(G, H)[:, perm]
    bias = torch.stack([b_ih, b_hh], 2).transpose(0, 1).contiguous()                    # [H, G, 2]
    ev = ev_b = ev_v = None
    if cfg.gate == "event":
        gate = layer.gate
        ev = gate.weight.detach().float().cpu()[perm].contiguous()
        ev_b = (gate.bias.detach().float().cpu() - cfg.gate_threshold)[perm].contiguous()
        ev_v = gate.state_weight.detach().float().cpu()[perm].contiguous()
    return Packed(cfg.cell, cfg.gate, G, perm.contiguous(), inverse, weight, bias, ev, ev_b, ev_v)


@torch.no_grad()
def rhythmic_open(config: SuRNNConfig, gate: RhythmicGate | None, T: int, time_offset: int) -> Tensor:
    """bool [T, H] (the layer's order): the switches `SuRNN` computes for steps offset .. offset+T-1.

    The same operations as `SuRNN._schedule`, so the same float rounding and the same switches.
    """
    if config.gate == "none":
        return torch.ones(T, config.hidden_size, dtype=torch.bool)
    t = torch.arange(T, dtype=torch.float32) + time_offset
    drive = gate.drive(t)                                                        # [T, H]
    return heaviside(drive - config.gate_threshold, config.surrogate, config.surrogate_width) > 0


def runs_of(open_: Tensor) -> Schedule:
    """Maximal runs of consecutive open neurons of each step of `open_` (bool [T, H])."""
    T, H = open_.shape
    pad = torch.zeros(T, 1, dtype=torch.bool)
    edges = torch.cat([pad, open_, pad], 1).to(torch.int8).diff(dim=1)         # [T, H + 1]
    t_start, start = (edges == 1).nonzero(as_tuple=True)                        # row-major: by t, then j
    _, end = (edges == -1).nonzero(as_tuple=True)
    counts = torch.bincount(t_start, minlength=T)
    run_ptr = torch.zeros(T + 1, dtype=torch.int64)
    run_ptr[1:] = counts.cumsum(0)
    return Schedule(open_, run_ptr.to(torch.int32), start.to(torch.int32).contiguous(),
                    (end - start).to(torch.int32).contiguous())
