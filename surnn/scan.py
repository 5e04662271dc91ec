"""The fused suGRU scan in PyTorch: one autograd node, a hand-written backward (BPTT).

`SuRNN` uses this for every suGRU: with a fixed schedule of switches (rhythmic gate, a padding
mask), always open (no gate), or switches decided step by step (event gate). The oracle it is
tested against is `surnn.reference.scan_ref`, the readable definition: one step of this loop
fuses `cell_step_ref`'s gru branch (r, z, n and f = (1 - z) n + z h), `gate_drive_ref`'s event
drive, and `scan_ref`'s mix h + g (f - h), written below as lerps.

Forward, per step (gate order r, z, n as in torch.nn.GRU):
    hg = h W_hh^T + b_hh;  r, z = sigmoid(x_r + hg_r), sigmoid(x_z + hg_z)
    n = tanh(x_n + r * hg_n);  f = lerp(n, h, z) = (1 - z) n + z h;  h' = lerp(h, f, g)
with, for the event gate, g = H(e + v * h) computed in the loop (h enters the gate detached).

Backward, per step, only what carries the gradient back in time (three ops):
    dhg = dh * [a_r, a_z, a_hn];   dh_prev = dh * (1 - g (1 - z)) + dhg W_hh   (+ dy_prev)
where a_r, a_z, a_hn are the derivatives of hg's pre-activations, computed for many steps at
once. The weight gradient is one [3H, S*B] x [S*B, H] product per block of S steps.

Why blocks of steps. The factors above can be computed for all T steps at once, but on a CPU a
tensor of T*B*H floats is larger than glibc keeps on its heap (32 MiB), so every such tensor is
fresh memory from the kernel, page-faulted in on every call: at batch 32, length 1024, width
256 that alone cost as much as the recurrence. Buffers of one block (about 8 MiB) are recycled,
stay in cache, and still amortise the per-op overhead over S steps.

Precision: the state, its accumulation and every saved factor are float32 (float64 when the
weights are); the inputs may come in lower precision (autocast) and are cast one block at a
time. Autocast is off inside, forward and backward, so the recurrent product never runs in
reduced precision.
"""
from __future__ import annotations

import torch
from torch import Tensor

from surnn.gates import surrogate_slope

BLOCK_ELEMENTS = 1 << 21   # floats saved per block, [S, B, 3H] + [S, B, H] (8 MiB in float32)
_tanh_backward = torch.ops.aten.tanh_backward.grad_input          # g * (1 - y^2), out=
_sigmoid_backward = torch.ops.aten.sigmoid_backward.grad_input    # g * y * (1 - y), out=


def compute_dtype(weight: Tensor) -> torch.dtype:
    """float64 for float64 weights, float32 otherwise (the recurrence never runs in 16 bits)."""
    return torch.float64 if weight.dtype == torch.float64 else torch.float32


def block_steps(batch: int, hidden: int, length: int) -> int:
    """S, the steps of one block: S * B * 4H is about BLOCK_ELEMENTS."""
    return max(1, min(length, BLOCK_ELEMENTS // max(1, batch * 4 * hidden)))


class SuGRUScan(torch.autograd.Function):
    """(y, gates) = the suGRU over precomputed input projections.

    Args (forward):
        xp: [B, T, 3H], x W_ih^T + b_ih (any float dtype).
        h0: [B, H] initial state.
        weight_hh: [3H, H]; bias_hh: [3H].
        switches: [1 or B, T, 1 or H] of 0/1, a fixed schedule; None for always open or event.
        drive: [B, T, H], the event gate's input drive u.x + c - threshold; None otherwise.
        state_weight: [H], the event gate's v (with drive), else None.
        mask: bool [B, T] (event gate: padded steps never open), or None.
        surrogate, width: the step function's surrogate gradient (event gate).

    Returns y [B, T, H] (every h_t, float32/64) and, for the event gate, gates [B, T, H] (the
    switches it chose; None otherwise: a fixed schedule is the caller's own).
    """

    @staticmethod
    def forward(ctx, xp, h0, weight_hh, bias_hh, switches, drive, state_weight, mask, surrogate, width):
        ctx.set_materialize_grads(False)
        dtype = compute_dtype(weight_hh)
        with torch.autocast(xp.device.type, enabled=False):
            W, b = weight_hh.to(dtype), bias_hh.to(dtype)
            v = state_weight.to(dtype) if state_weight is not None else None
            y, gates, blocks, drives = _forward(xp, h0.to(dtype), W, b, switches, drive, v, mask)
        ctx.surrogate, ctx.width, ctx.mode = surrogate, width, _mode(switches, drive)
        ctx.xp_dtype, ctx.num_blocks = xp.dtype, len(blocks) // 2
        ctx.save_for_backward(h0, W, y, gates if drive is not None else switches, v, mask, *blocks, *drives)
        return y.transpose(0, 1), (gates.transpose(0, 1) if gates is not None else None)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, dy, dgates):
        h0, W, y, g, v, mask, *rest = ctx.saved_tensors
        K = ctx.num_blocks
        blocks, drives = list(zip(rest[: 2 * K: 2], rest[1: 2 * K: 2])), rest[2 * K:]
        with torch.autocast(y.device.type, enabled=False):
            grads = _backward(ctx, dy, dgates, h0, W, y, g, v, mask, blocks, drives)
        return grads + (None, None, None)


def _mode(switches: Tensor | None, drive: Tensor | None) -> str:
    return "event" if drive is not None else ("fixed" if switches is not None else "open")


def _forward(xp, h0, W, b, switches, drive, v, mask):
    """The time loop, block by block. Returns time-major y, gates, saved blocks, saved drives."""
    B, T, H3 = xp.shape
    H, dtype = H3 // 3, h0.dtype
    S = block_steps(B, H, T)
    xp_t = xp.transpose(0, 1)                                        # [T, B, 3H] view
    y = h0.new_empty(T, B, H)
    gates = h0.new_empty(T, B, H) if drive is not None else None
    w_t = W.t()
    blocks, drives = [], []
    h = h0
    for t0 in range(0, T, S):
        t1 = min(T, t0 + S)
        q, nb = _fill_block(xp_t[t0:t1], b)                           # [S, B, 3H], [S, B, H]
        blocks += [q, nb]
        if drive is not None:
            a = _block_drive(drive, mask, t0, t1, dtype)
            drives.append(a)
            g_blk = gates[t0:t1]
        elif switches is not None:
            g_blk = switches.transpose(0, 1)[t0:t1].to(dtype)
        for s in range(t1 - t0):
            if drive is not None:                                   # the gate sees h detached
                torch.gt(torch.addcmul(a[s], v, h, out=a[s]), 0, out=g_blk[s])
            qs = q[s].addmm_(h, w_t)                                 # pre-r, pre-z, hn
            qs[:, : 2 * H].sigmoid_()
            r, z, hn = qs[:, :H], qs[:, H: 2 * H], qs[:, 2 * H:]
            n = nb[s].addcmul_(r, hn).tanh_()
            if switches is None and drive is None:
                h = torch.lerp(n, h, z, out=y[t0 + s])
            else:
                h = torch.lerp(h, torch.lerp(n, h, z), g_blk[s], out=y[t0 + s])
    return y, gates, blocks, drives


def _fill_block(xp_blk: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """Buffers of one block, filled with what the steps add the recurrent product to.

    q [S, B, 3H] = (x_r + b_r, x_z + b_z, b_n): one in-place addmm per step then gives the
    pre-activations of r and z and hn = h W_n^T + b_n in one contiguous row. n [S, B, H] = x_n.
    """
    S, B, H3 = xp_blk.shape
    H = H3 // 3
    q = b.new_empty(S, B, H3)
    torch.add(xp_blk[..., : 2 * H], b[: 2 * H], out=q[..., : 2 * H])
    q[..., 2 * H:] = b[2 * H:]
    return q, xp_blk[..., 2 * H:].to(b.dtype, copy=True)


def _block_drive(drive: Tensor, mask: Tensor | None, t0: int, t1: int, dtype: torch.dtype) -> Tensor:
    """The event drive of steps t0..t1 as [S, B, H]; -inf on padded steps, which never open."""
    a = drive.transpose(0, 1)[t0:t1].to(dtype, copy=True)
    if mask is not None:
        a.masked_fill_(~mask.t()[t0:t1, :, None], -torch.inf)
    return a


def _backward(ctx, dy, dgates, h0, W, y, g, v, mask, blocks, drives):
    """Gradients for (xp, h0, weight_hh, bias_hh, switches, drive, state_weight, mask)."""
    T, B, H = y.shape
    mode = ctx.mode
    need_dg = mode == "event" or (mode == "fixed" and ctx.needs_input_grad[4])
    dy_t = dy.transpose(0, 1) if dy is not None else None            # [T, B, H]
    # Written time-major through a view of batch-major buffers, so that the gradients handed
    # back to the input projections ([B, T, 3H] and [B, T, H]) are contiguous: their matmuls
    # would otherwise copy them whole first.
    dxp = y.new_empty(B, T, 3 * H).transpose(0, 1)
    dW, db = torch.zeros_like(W), torch.zeros(3 * H, dtype=y.dtype, device=y.device)
    dg_shape = (T, g.shape[0], g.shape[2]) if mode == "fixed" else (T, B, H)
    dg = (y.new_empty(B, T, H).transpose(0, 1) if mode == "event" else y.new_empty(dg_shape)) if need_dg else None
    dv = torch.zeros_like(v) if mode == "event" else None
    dh = y.new_zeros(B, H) if dy_t is None else dy_t[T - 1].to(y.dtype, copy=True)
    S = blocks[0][0].shape[0] if blocks else 1
    for k in range(len(blocks) - 1, -1, -1):
        t0 = k * S
        t1 = t0 + blocks[k][0].shape[0]
        hp = torch.cat([h0[None].to(y.dtype), y[: t1 - 1]]) if t0 == 0 else y[t0 - 1: t1 - 1]
        g_blk = None if mode == "open" else g.transpose(0, 1)[t0:t1].to(y.dtype) if mode == "fixed" else g[t0:t1]
        f, keep, a_n, fmh = _factors(*blocks[k], hp, g_blk, need_dg)
        dhs, dhg = _steps_back(dh, dy_t, f, keep, W, t0)
        dxp[t0:t1, :, : 2 * H] = dhg[..., : 2 * H]
        torch.mul(dhs[1:], a_n, out=dxp[t0:t1, :, 2 * H:])
        dW.addmm_(dhg.reshape(-1, 3 * H).t(), hp.reshape(-1, H))
        db += dhg.sum((0, 1))
        if need_dg:
            dg_blk = dhs[1:] * fmh                                   # d loss / d switch (mixing)
            if mode == "event":
                dv += _event_grads(ctx, dg_blk, dgates, drives[k], hp, mask, t0, t1, dg)
            else:                                                    # summed over broadcast dims
                dg[t0:t1] = dg_blk.sum_to_size(t1 - t0, *dg.shape[1:])
        dh = dhs[0]
    d_xp = dxp.transpose(0, 1).to(ctx.xp_dtype)
    d_sw = dg.transpose(0, 1) if mode == "fixed" and need_dg else None
    d_drive = dg.transpose(0, 1) if mode == "event" else None
    return d_xp, dh.to(h0.dtype), dW, db, d_sw, d_drive, dv


def _factors(q: Tensor, n: Tensor, hp: Tensor, g: Tensor | None, need_dg: bool):
    """Per-step derivative factors of one block, from the saved r, z, hn (q), n and h_{t-1}.

    Returns f [S, B, 3H] (d hg's pre-activations / d h_t: a_r, a_z, a_hn), keep [S, B, H]
    (d h_t / d h_{t-1} outside hg: 1 - g (1 - z)), a_n (d pre-n / d h_t), fmh (f - h, or None).
    """
    S, B, H = n.shape
    r, z, hn = q[..., :H], q[..., H: 2 * H], q[..., 2 * H:]
    omz = torch.rsub(z, 1.0)                                        # 1 - z
    gomz = omz if g is None else omz.mul(g)                         # d h_t / d f ... times (1 - z)
    keep = torch.rsub(gomz, 1.0)
    a_n = _tanh_backward(gomz, n, grad_input=torch.empty_like(omz))
    hmn = torch.sub(hp, n)                                          # h - n
    f = q.new_empty(S, B, 3 * H)
    _sigmoid_backward(hmn if g is None else hmn.mul(g), z, grad_input=f[..., H: 2 * H])
    torch.mul(a_n, r, out=f[..., 2 * H:])
    _sigmoid_backward(a_n.mul(hn), r, grad_input=f[..., :H])
    fmh = hmn.mul_(omz).neg_() if need_dg else None                 # f - h = (1 - z)(n - h)
    return f, keep, a_n, fmh


def _steps_back(dh: Tensor, dy_t: Tensor | None, f: Tensor, keep: Tensor, W: Tensor, t0: int):
    """Back through one block's steps. dh: d loss / d h_{t1-1} in total.

    Returns dhs [S + 1, B, H] (dhs[s + 1] = total d loss / d h_{t0+s}; dhs[0] = d loss /
    d h_{t0-1} from this block, without dy of that step) and dhg [S, B, 3H].
    """
    S, B, H3 = f.shape
    H = H3 // 3
    dhs = dh.new_empty(S + 1, B, H)
    dhs[S] = dh
    dhg = f.new_empty(S, B, H3)
    for s in range(S - 1, -1, -1):
        torch.mul(f[s].view(B, 3, H), dhs[s + 1].view(B, 1, H), out=dhg[s].view(B, 3, H))
        if dy_t is not None and s > 0:
            carry = torch.addcmul(dy_t[t0 + s - 1], dhs[s + 1], keep[s])
        else:
            carry = torch.mul(dhs[s + 1], keep[s])
        torch.addmm(carry, dhg[s], W, out=dhs[s])
    if dy_t is not None and t0 > 0:
        dhs[0] += dy_t[t0 - 1]
    return dhs, dhg


def _event_grads(ctx, dg_blk, dgates, a, hp, mask, t0, t1, dg) -> Tensor:
    """Event gate: d drive into dg[t0:t1] (h detached: nothing flows to the state); returns d v."""
    if dgates is not None:
        dg_blk += dgates.transpose(0, 1)[t0:t1]
    da = torch.mul(dg_blk, surrogate_slope(a, ctx.surrogate, ctx.width), out=dg[t0:t1])
    if mask is not None:
        da.mul_(mask.t()[t0:t1, :, None])
    return dg_blk.copy_(da).mul_(hp).sum((0, 1))
