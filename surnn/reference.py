"""The suRNN layer written step by step from the paper's equations: the oracle for `cell.py`.

Plain, float32, one step at a time; nobody optimises this. It reads the parameters of a
`SuRNN` module and returns what `SuRNN.forward` returns.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from surnn.gates import heaviside
from surnn.layer_inputs import State, check_inputs, initial_state


def cell_step_ref(layer, x_t: Tensor, h: Tensor, c: Tensor | None) -> tuple[Tensor, Tensor | None]:
    """The candidate f(h_{t-1}, x_t) (and the LSTM's candidate cell), x_t [B, I], h [B, H]."""
    cfg, H = layer.config, layer.config.hidden_size
    W_i, W_h = layer.weight_ih.float(), layer.weight_hh.float()
    b_i, b_h = layer.bias_ih.float(), layer.bias_hh.float()

    def block(k: int) -> tuple[Tensor, Tensor]:
        rows = slice(k * H, (k + 1) * H)
        return x_t @ W_i[rows].T + b_i[rows], h @ W_h[rows].T + b_h[rows]

    if cfg.cell == "rnn":
        xi, hi = block(0)
        return torch.tanh(xi + hi), None
    if cfg.cell == "gru":
        (xr, hr), (xz, hz), (xn, hn) = block(0), block(1), block(2)
        r = torch.sigmoid(xr + hr)
        z = torch.sigmoid(xz + hz)
        n = torch.tanh(xn + r * hn)
        return (1 - z) * n + z * h, None
    (xi, hi), (xf, hf), (xg, hg), (xo, ho) = block(0), block(1), block(2), block(3)
    c_new = torch.sigmoid(xf + hf) * c + torch.sigmoid(xi + hi) * torch.tanh(xg + hg)
    return torch.sigmoid(xo + ho) * torch.tanh(c_new), c_new


def gate_drive_ref(layer, t: int, x_t: Tensor, h: Tensor) -> Tensor:
    """a_t [B, H] (or [H] for the rhythmic gate), before the threshold."""
    cfg, gate = layer.config, layer.gate
    if cfg.gate == "rhythmic":
        omega = gate.log_omega.float().exp()                        # [K]
        a = gate.bias.float().clone()
        for k in range(cfg.num_frequencies):
            a = a + gate.alpha[:, k].float() * torch.sin(omega[k] * t + gate.phi[:, k].float())
        return a
    if cfg.gate == "event":
        return x_t @ gate.weight.float().T + gate.bias.float() + gate.state_weight.float() * h.detach()
    return torch.full((cfg.hidden_size,), math.inf)


def scan_ref(layer, x: Tensor, state: State | None = None, mask: Tensor | None = None,
             time_offset: int = 0) -> tuple[Tensor, State, Tensor]:
    """Same contract as `SuRNN.forward`, computed one step at a time in float32."""
    cfg = layer.config
    B, T = check_inputs(cfg, x, state, mask)
    x = x.float()
    h, c = initial_state(cfg, x, state)
    h = h.float()
    c = c.float() if c is not None else None
    ys, gs = [], []
    for t in range(T):
        x_t = x[:, t]                                                # [B, I]
        a_t = gate_drive_ref(layer, time_offset + t, x_t, h)
        g_t = heaviside(a_t - cfg.gate_threshold, cfg.surrogate, cfg.surrogate_width)
        g_t = g_t.expand(B, cfg.hidden_size)                         # [B, H]
        if mask is not None:
            g_t = g_t * mask[:, t, None].float()                     # padded steps stay closed
        f, c_new = cell_step_ref(layer, x_t, h, c)
        h = h + g_t * (f - h)                                        # h_t = h_{t-1} + D_t (f - h_{t-1})
        if c is not None:
            c = c + g_t * (c_new - c)                                # the LSTM's cell is held alike
        ys.append(h)
        gs.append(g_t)
    y = torch.stack(ys, 1) if ys else x.new_zeros(B, 0, cfg.hidden_size)
    gates = torch.stack(gs, 1) if gs else x.new_zeros(B, 0, cfg.hidden_size)
    return y, ((h, c) if cfg.cell == "lstm" else h), gates
