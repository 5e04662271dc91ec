"""SuRNN: one selective-update recurrent layer (the fast path).

For hidden state h_t in R^H and binary switches g_t in {0,1}^H:

    h_t = h_{t-1} + diag(g_t) (f(h_{t-1}, x_t) - h_{t-1})

computed as ``torch.lerp(h, f, g)``: bit for bit ``h`` where g = 0 and ``f`` where g = 1, with a
Jacobian row equal to the identity for a closed neuron. `surnn.reference.scan_ref` is the same
layer written step by step from the equations; tests hold this file to it.

Speed: everything that does not depend on h (the input projection, and the whole rhythmic
gate schedule) is computed for all steps at once and split with ``unbind`` before the loop;
indexing ``x[:, t]`` inside it would make autograd's backward grow with T^2.
"""
from __future__ import annotations

import math
from dataclasses import asdict

import torch
from torch import Tensor, nn

from surnn.config import SuRNNConfig
from surnn.gates import EventGate, RhythmicGate, heaviside
from surnn.layer_inputs import State, check_inputs, initial_state
from surnn.scan import SuGRUScan

__all__ = ["SuRNN", "State"]
_GATE_BLOCKS = {"gru": 3, "rnn": 1, "lstm": 4}   # blocks of H in the candidate's projections


class SuRNN(nn.Module):
    """A selective-update RNN layer.

    Args:
        input_size, hidden_size, cell, gate, gate_threshold, ...: see `SuRNNConfig`.

    Call: ``y, state, gates = layer(x, state=None, mask=None, time_offset=0)`` with
        x:     float [B, T, input_size]
        state: [B, H], or a pair (h, c) for ``cell="lstm"``; zeros when None
        mask:  bool [B, T], True on real steps; a padded step never opens a switch
        time_offset: index of x's first step (rhythmic gate), to continue a sequence
    returns y [B, T, H] (every h_t), the final state, and gates [B, T, H] of 0/1.

    The candidate weights use torch.nn.GRU / LSTM / RNN's layout and initialisation
    (gate order r, z, n for gru; i, f, g, o for lstm), so with every switch open the layer
    computes exactly what those modules compute.
    """

    def __init__(self, input_size: int, hidden_size: int, **settings):
        super().__init__()
        self.config = cfg = SuRNNConfig(input_size=input_size, hidden_size=hidden_size, **settings)
        H, G = hidden_size, _GATE_BLOCKS[cfg.cell]
        bound = 1.0 / math.sqrt(H)
        self.weight_ih = nn.Parameter(torch.empty(G * H, input_size).uniform_(-bound, bound))
        self.weight_hh = nn.Parameter(torch.empty(G * H, H).uniform_(-bound, bound))
        self.bias_ih = nn.Parameter(torch.empty(G * H).uniform_(-bound, bound))
        self.bias_hh = nn.Parameter(torch.empty(G * H).uniform_(-bound, bound))
        self.gate = {"rhythmic": RhythmicGate, "event": EventGate}.get(cfg.gate, lambda _: None)(cfg)

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in asdict(self.config).items())

    def forward(self, x: Tensor, state: State | None = None, mask: Tensor | None = None,
                time_offset: int = 0) -> tuple[Tensor, State, Tensor]:
        cfg = self.config
        B, T = check_inputs(cfg, x, state, mask)
        h, c = initial_state(cfg, x, state)
        H = cfg.hidden_size

        # Input projection for all steps at once; the event gate's input drive rides along.
        weight, bias = self.weight_ih, self.bias_ih
        if cfg.gate == "event":
            weight = torch.cat([weight, self.gate.weight])
            bias = torch.cat([bias, self.gate.bias - cfg.gate_threshold])
        xp = torch.nn.functional.linear(x, weight, bias)                 # [B, T, (G+1)H or GH]
        h = h.to(xp.dtype)
        c = c.to(xp.dtype) if c is not None else None
        g_all = self._schedule(B, T, x, mask, time_offset)                # [B, T, H] or None (event)
        if cfg.cell == "gru" and g_all is not None and T > 0:
            y = SuGRUScan.apply(xp, g_all.to(xp.dtype), h, self.weight_hh, self.bias_hh)
            return y, y[:, -1], g_all
        steps = self._step_inputs(xp, g_all, mask, B, T)

        w_hh, b_hh = self.weight_hh.t(), self.bias_hh
        ys, gs = [], []
        for xs_t, g_t in steps:
            if cfg.gate == "event":
                x_t, e_t, m_t = xs_t
                g_t = heaviside(e_t + self.gate.state_weight * h.detach(), cfg.surrogate, cfg.surrogate_width)
                if m_t is not None:
                    g_t = g_t * m_t
                gs.append(g_t)
            else:
                x_t = xs_t
            hg = torch.addmm(b_hh, h, w_hh)                               # [B, G*H]
            if cfg.cell == "gru":
                rz = torch.sigmoid(x_t[0] + hg[:, : 2 * H])
                r, z = rz.chunk(2, 1)
                n = torch.tanh(torch.addcmul(x_t[1], r, hg[:, 2 * H:]))
                h = torch.lerp(h, torch.lerp(n, h, z), g_t)               # f = (1 - z) n + z h
            elif cfg.cell == "rnn":
                h = torch.lerp(h, torch.tanh(x_t + hg), g_t)
            else:
                i, f, gg, o = (x_t + hg).chunk(4, 1)
                c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(gg)
                h_new = torch.sigmoid(o) * torch.tanh(c_new)
                c = torch.lerp(c, c_new, g_t)
                h = torch.lerp(h, h_new, g_t)
            ys.append(h)

        y = torch.stack(ys, 1) if ys else x.new_zeros(B, 0, H)
        gates = torch.stack(gs, 1) if cfg.gate == "event" else g_all
        final = (h, c) if cfg.cell == "lstm" else h
        return y, final, gates

    def _schedule(self, B: int, T: int, x: Tensor, mask: Tensor | None, time_offset: int) -> Tensor | None:
        """Switches for every step when they do not depend on the state: [B, T, H]."""
        cfg = self.config
        if cfg.gate == "event":
            return None
        if cfg.gate == "none":
            g = x.new_ones(1, T, cfg.hidden_size)
        else:
            t = torch.arange(T, device=x.device, dtype=torch.float32) + time_offset
            drive = self.gate.drive(t)                                    # [T, H]
            g = heaviside(drive - cfg.gate_threshold, cfg.surrogate, cfg.surrogate_width)[None]
        g = g.to(x.dtype)
        if mask is not None:
            g = g * mask[:, :, None].to(g.dtype)
        return g.expand(B, T, cfg.hidden_size)

    def _step_inputs(self, xp: Tensor, g_all: Tensor | None, mask: Tensor | None, B: int, T: int):
        """Per-step pieces, split once (unbind) so the loop never indexes a [B, T, ...] tensor."""
        cfg, H = self.config, self.config.hidden_size
        if cfg.cell == "gru":
            x_steps = zip(xp[..., : 2 * H].unbind(1), xp[..., 2 * H: 3 * H].unbind(1))
        else:
            x_steps = xp[..., : _GATE_BLOCKS[cfg.cell] * H].unbind(1)
        if cfg.gate != "event":
            return zip(x_steps, g_all.unbind(1))
        e_steps = xp[..., -H:].unbind(1)
        m_steps = mask[:, :, None].to(xp.dtype).unbind(1) if mask is not None else [None] * T
        return zip(zip(x_steps, e_steps, m_steps), [None] * T)

