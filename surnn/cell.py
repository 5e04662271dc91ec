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
import os
from dataclasses import asdict

import torch
from torch import Tensor, nn

from surnn.config import SuRNNConfig
from surnn.gates import EventGate, RhythmicGate, heaviside
from surnn.layer_inputs import State, check_inputs, initial_state
from surnn.scan import SuGRUScan, compute_dtype

__all__ = ["SuRNN", "State"]
GRU_KERNEL_ENV = "SURNN_GRU_KERNEL"   # auto (Triton on CUDA when it imports) | triton | torch
_GRU_KERNELS = ("auto", "triton", "torch")
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

    def sparse(self, **options):
        """A frozen inference copy that computes only the open neurons (`surnn.sparse.SparseSuRNN`)."""
        from surnn.sparse import SparseSuRNN    # lazy: the engine imports this module
        return SparseSuRNN(self, **options)

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in asdict(self.config).items())

    def forward(self, x: Tensor, state: State | None = None, mask: Tensor | None = None,
                time_offset: int = 0) -> tuple[Tensor, State, Tensor]:
        cfg = self.config
        B, T = check_inputs(cfg, x, state, mask)
        h, c = initial_state(cfg, x, state)
        # The input projection for all steps at once: under autocast this is the one product
        # that runs in reduced precision. Everything after it (the gate drives, the state and
        # the recurrence) runs in float32 with autocast off: a switch is a hard threshold of its
        # drive, and a state carried over thousands of steps must not round at every one.
        xp = nn.functional.linear(x, self.weight_ih, self.bias_ih)       # [B, T, G*H]
        dtype = compute_dtype(self.weight_hh)
        device = x.device.type
        amp_dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else None
        with torch.autocast(device, enabled=False):
            h = h.to(dtype)
            c = c.to(dtype) if c is not None else None
            drive = self._event_drive(x, dtype)                           # [B, T, H] or None
            g_all = self._schedule(B, T, x, mask, time_offset, dtype)      # [B or 1, T, H] or None
            if cfg.cell == "gru" and T > 0:
                return self._fused_gru(xp, h, g_all, drive, mask, amp_dtype)
            return self._loop(xp.to(dtype), h, c, g_all, drive, mask, B, T)

    def _fused_gru(self, xp: Tensor, h: Tensor, g_all: Tensor | None, drive: Tensor | None,
                   mask: Tensor | None, amp_dtype: torch.dtype | None) -> tuple[Tensor, Tensor, Tensor]:
        """The suGRU as one fused scan (`surnn.scan`, or the Triton kernels on CUDA).

        On CUDA under autocast the Triton kernels take the recurrent product's operands in the
        autocast dtype (accumulating in float32, the state in float32), as cuDNN's GRU does;
        the PyTorch scan always multiplies in float32.
        """
        cfg = self.config
        v = self.gate.state_weight if cfg.gate == "event" else None
        scan = fused_gru_scan(xp)
        args = (xp, h, self.weight_hh, self.bias_hh, g_all, drive, v,
                mask if cfg.gate == "event" else None, cfg.surrogate, cfg.surrogate_width)
        if scan is not SuGRUScan:
            args += (amp_dtype if amp_dtype is not None and xp.is_cuda else torch.float32,)
        y, gates = scan.apply(*args)
        if gates is None:
            gates = g_all.expand(y.shape) if g_all is not None else y.new_ones(()).expand(y.shape)
        return y, y[:, -1], gates

    def _loop(self, xp: Tensor, h: Tensor, c: Tensor | None, g_all: Tensor | None, drive: Tensor | None,
              mask: Tensor | None, B: int, T: int) -> tuple[Tensor, State, Tensor]:
        """The step-by-step path (rnn and lstm cells), differentiated by autograd."""
        cfg, H = self.config, self.config.hidden_size
        steps = self._step_inputs(xp, g_all, drive, mask, B, T)
        w_hh, b_hh = self.weight_hh.to(h.dtype).t(), self.bias_hh.to(h.dtype)
        ys, gs = [], []
        for x_t, g_t, e_t, m_t in steps:
            if e_t is not None:
                g_t = heaviside(e_t + self.gate.state_weight * h.detach(), cfg.surrogate, cfg.surrogate_width)
                if m_t is not None:
                    g_t = g_t * m_t
                gs.append(g_t)
            hg = torch.addmm(b_hh, h, w_hh)                               # [B, G*H]
            if cfg.cell == "rnn":
                h = torch.lerp(h, torch.tanh(x_t + hg), g_t)
            else:
                i, f, gg, o = (x_t + hg).chunk(4, 1)
                c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(gg)
                h_new = torch.sigmoid(o) * torch.tanh(c_new)
                c = torch.lerp(c, c_new, g_t)
                h = torch.lerp(h, h_new, g_t)
            ys.append(h)

        y = torch.stack(ys, 1) if ys else h.new_zeros(B, 0, H)
        gates = torch.stack(gs, 1) if cfg.gate == "event" and gs else (g_all.expand(B, T, H) if g_all is not None
                                                                        else y.new_ones(()).expand(B, T, H))
        final = (h, c) if cfg.cell == "lstm" else h
        return y, final, gates

    def _event_drive(self, x: Tensor, dtype: torch.dtype) -> Tensor | None:
        """The event gate's input drive u.x + c - threshold for all steps, [B, T, H], in `dtype`."""
        cfg = self.config
        if cfg.gate != "event":
            return None
        gate = self.gate
        return nn.functional.linear(x.to(dtype), gate.weight.to(dtype), (gate.bias - cfg.gate_threshold).to(dtype))

    def _schedule(self, B: int, T: int, x: Tensor, mask: Tensor | None, time_offset: int,
                  dtype: torch.dtype) -> Tensor | None:
        """Switches for every step when they do not depend on the state: [1 or B, T, H], or
        [B, T, 1] for no gate with a mask; None for the event gate and for no gate unmasked."""
        cfg = self.config
        if cfg.gate == "event" or (cfg.gate == "none" and mask is None):
            return None
        if cfg.gate == "none":
            return mask[:, :, None].to(dtype)
        t = torch.arange(T, device=x.device, dtype=torch.float32) + time_offset
        drive = self.gate.drive(t)                                        # [T, H]
        g = heaviside(drive - cfg.gate_threshold, cfg.surrogate, cfg.surrogate_width)[None].to(dtype)
        return g * mask[:, :, None].to(dtype) if mask is not None else g

    def _step_inputs(self, xp: Tensor, g_all: Tensor | None, drive: Tensor | None, mask: Tensor | None,
                     B: int, T: int):
        """Per-step pieces, split once (unbind) so the loop never indexes a [B, T, ...] tensor."""
        H = self.config.hidden_size
        x_steps = xp[..., : _GATE_BLOCKS[self.config.cell] * H].unbind(1)
        none = [None] * T
        if drive is None:
            g_steps = g_all.expand(B, T, g_all.shape[-1]).unbind(1) if g_all is not None else [1.0] * T
            return zip(x_steps, g_steps, none, none)
        m_steps = mask[:, :, None].to(xp.dtype).unbind(1) if mask is not None else none
        return zip(x_steps, none, drive.unbind(1), m_steps)


def fused_gru_scan(xp: Tensor) -> type[torch.autograd.Function]:
    """The fused suGRU scan to run on `xp`'s device: Triton's on CUDA, else PyTorch's.

    `SURNN_GRU_KERNEL` forces one: ``torch`` everywhere, or ``triton`` also on CPU tensors,
    which then run in Triton's interpreter (slow; what the tests use).
    """
    choice = os.environ.get(GRU_KERNEL_ENV, "auto").strip().lower() or "auto"
    if choice not in _GRU_KERNELS:
        raise ValueError(f"{GRU_KERNEL_ENV}: unknown value {choice!r} (expected one of: {', '.join(_GRU_KERNELS)})")
    if choice == "torch" or (choice == "auto" and not xp.is_cuda):
        return SuGRUScan
    from surnn.triton_scan import TritonSuGRUScan
    if TritonSuGRUScan is None:
        if choice == "triton":
            raise RuntimeError(f"{GRU_KERNEL_ENV}=triton: triton is not installed (pip install 'surnn-sweep[gpu]')")
        return SuGRUScan
    return TritonSuGRUScan
