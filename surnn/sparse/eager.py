"""The sparse step loop in PyTorch: the readable twin of `kernel.c`, and the engine's fallback.

Same layout and same algorithm: per step, the open neurons' rows of the neuron-major weights
times [x_t | h], nothing for a closed neuron. Rhythmic (and gate "none") steps take their open
runs from the precomputed schedule, each run one contiguous view of the weights (no gather
copy); an event step first computes the gate from its precomputed input drive and the state,
then gathers the rows of the neurons any batch row opened. Everything is in engine order.
Slower than the kernel (PyTorch's per-op overhead is paid per run and per step) but exact alike.
"""
from __future__ import annotations

import torch
from torch import Tensor

from surnn.sparse.layout import Packed, Schedule


def candidate(p: Packed, weight: Tensor, bias: Tensor, x_t: Tensor, h: Tensor, h_own: Tensor,
              c_own: Tensor | None) -> tuple[Tensor, Tensor | None]:
    """New (h, c) of n neurons for every row, as the dense layer computes them.

    Args:
        weight: [n, G, I + H] those neurons' rows (a view or a gathered copy).
        bias: [n, G, 2] their input and recurrent biases.
        x_t: [B, I]; h: [B, H] the whole state (engine order), which every candidate reads.
        h_own, c_own: [B, n] the neurons' own h (and lstm c) before the step.
    Returns:
        h_new [B, n], and c_new [B, n] for lstm (else None).
    """
    n, G, _ = weight.shape
    I = x_t.shape[1]
    # [n, G, I] -> [n*G, I] is a view (rows n and G are evenly strided); matmul reads it in place.
    ax = (x_t @ weight[..., :I].reshape(n * G, I).T).view(-1, n, G) + bias[..., 0]     # [B, n, G]
    ah = (h @ weight[..., I:].reshape(n * G, -1).T).view(-1, n, G) + bias[..., 1]     # [B, n, G]
    if p.cell == "gru":
        r = torch.sigmoid(ax[..., 0] + ah[..., 0])
        z = torch.sigmoid(ax[..., 1] + ah[..., 1])
        cand = torch.tanh(torch.addcmul(ax[..., 2], r, ah[..., 2]))
        return torch.lerp(cand, h_own, z), None                                        # (1 - z) n + z h
    if p.cell == "rnn":
        return torch.tanh(ax[..., 0] + ah[..., 0]), None
    i, f, g, o = (ax + ah).unbind(-1)
    c_new = torch.sigmoid(f) * c_own + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c_new), c_new


@torch.no_grad()
def run(p: Packed, x: Tensor, h: Tensor, c: Tensor | None, mask: Tensor | None,
        schedule: Schedule | None, drive: Tensor | None) -> tuple[Tensor, Tensor, Tensor | None, Tensor]:
    """T steps of the sparse layer, engine order throughout.

    Args:
        x: [B, T, I]; h, c: [B, H] the state (c only for lstm); mask: bool [B, T] or None.
        schedule: the rhythmic / none gate's open runs of these T steps (None for event).
        drive: event gate only, [B, T, H] u . x_t + c - threshold.
    Returns:
        y [B, T, H], h, c, gates (bool [B, T, H]).
    """
    B, T, _ = x.shape
    ys, gs = [], []
    for t in range(T):
        real = mask[:, t, None] if mask is not None else torch.ones(B, 1, dtype=torch.bool)   # [B, 1]
        if p.gate == "event":
            g = (drive[:, t] + p.event_state_weight * h > 0) & real                   # [B, H]
            blocks = [g.any(0).nonzero().squeeze(1)]        # gather: the union of the rows' open sets
        else:
            lo, hi = int(schedule.run_ptr[t]), int(schedule.run_ptr[t + 1])
            blocks = [slice(int(s), int(s) + int(n))
                      for s, n in zip(schedule.run_start[lo:hi], schedule.run_len[lo:hi])]
            g = schedule.open[t][None] & real                                         # [B, H]
        updates = [(j, *candidate(p, p.weight[j], p.bias[j], x[:, t], h, h[:, j],
                                  c[:, j] if c is not None else None)) for j in blocks]
        h, c = h.clone(), (c.clone() if c is not None else None)    # every candidate read the old h
        for j, h_new, c_new in updates:
            keep = g[:, j]
            h[:, j] = torch.where(keep, h_new, h[:, j])
            if c is not None:
                c[:, j] = torch.where(keep, c_new, c[:, j])
        ys.append(h)
        gs.append(g)
    y = torch.stack(ys, 1) if ys else x.new_zeros(B, 0, h.shape[1])
    gates = torch.stack(gs, 1) if gs else torch.zeros(B, 0, h.shape[1], dtype=torch.bool)
    return y, h, c, gates
