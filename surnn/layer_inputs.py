"""What a suRNN layer accepts: its inputs checked, and the state it starts from.

Shared by the fast path (`cell.py`) and the oracle (`reference.py`), so that neither depends
on the other.
"""
from __future__ import annotations

import torch
from torch import Tensor

from surnn.config import SuRNNConfig

State = Tensor | tuple[Tensor, Tensor]


def check_inputs(cfg: SuRNNConfig, x: Tensor, state: State | None, mask: Tensor | None) -> tuple[int, int]:
    """Validate shapes and dtypes; returns (B, T). Raises ValueError naming what was expected."""
    if not isinstance(x, Tensor) or x.dim() != 3 or x.shape[-1] != cfg.input_size or not x.is_floating_point():
        got = f"{x.dtype} {list(x.shape)}" if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"SuRNN input x: expected a float tensor [batch, time, {cfg.input_size}], got {got}")
    B, T, _ = x.shape
    if mask is not None and (not isinstance(mask, Tensor) or mask.dtype != torch.bool or tuple(mask.shape) != (B, T)):
        got = f"{mask.dtype} {list(mask.shape)}" if isinstance(mask, Tensor) else type(mask).__name__
        raise ValueError(f"SuRNN mask: expected a bool tensor [{B}, {T}], got {got}")
    if state is not None:
        parts = state if cfg.cell == "lstm" else (state,)
        if cfg.cell == "lstm" and not (isinstance(state, (tuple, list)) and len(state) == 2):
            raise ValueError("SuRNN state: expected a pair (h, c) of [batch, hidden] tensors for cell='lstm'")
        for p in parts:
            if not isinstance(p, Tensor) or tuple(p.shape) != (B, cfg.hidden_size) or not p.is_floating_point():
                got = f"{p.dtype} {list(p.shape)}" if isinstance(p, Tensor) else type(p).__name__
                raise ValueError(f"SuRNN state: expected a float tensor [{B}, {cfg.hidden_size}], got {got}")
    return B, T


def initial_state(cfg: SuRNNConfig, x: Tensor, state: State | None) -> tuple[Tensor, Tensor | None]:
    """(h, c) to start from; c is None unless the cell is an LSTM."""
    B, H = x.shape[0], cfg.hidden_size
    if state is None:
        zeros = x.new_zeros(B, H)
        return zeros, (zeros if cfg.cell == "lstm" else None)
    if cfg.cell == "lstm":
        return state[0], state[1]
    return state, None
