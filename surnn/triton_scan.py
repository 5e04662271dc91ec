"""The suGRU scan as two fused Triton kernels (forward, backward): the GPU path.

`SuRNN` picks this on CUDA when triton imports (the ``gpu`` extra); `SURNN_GRU_KERNEL` forces
it or the PyTorch scan (`surnn.cell.fused_gru_scan`). On CPU tensors the same kernels run in
Triton's interpreter, which is how the tests hold them to `surnn.reference.scan_ref`. The
per-step gate math is the same fusion of the reference's lines as `surnn/scan.py` describes.

Design. Triton has no grid-wide barrier, so the recurrence cannot be split over programs that
exchange h every step. Instead each program owns a tile of BLOCK_B sequences and the whole
width H, and loops over time inside the kernel: per step it streams W_hh through the cache in
[BLOCK_K, BLOCK_H] tiles, multiplies (tl.dot, float32 accumulation), applies the gate math to
each [BLOCK_B, BLOCK_H] tile at once and stores h_t, which it reads back (after a barrier of
its own threads) as the next step's operand. The state never leaves float32; under autocast
the product's operands are cast to the autocast dtype, as cuDNN does.

What stays outside the kernels: the input projection and the event gate's input drive (one
large GEMM each, before), the rhythmic schedule, and in the backward pass the weight and input
gradients, which are GEMMs over all T*B rows afterwards (as in haste and FlashRNN): the
backward kernel's time loop only carries dh.
"""
from __future__ import annotations

import torch
from torch import Tensor

from surnn.gates import surrogate_slope

try:
    import triton
    import triton.language as tl
except ImportError:          # the gpu extra is not installed: SuRNN uses the PyTorch scan
    triton = None

MODE_OPEN, MODE_FIXED, MODE_EVENT = 0, 1, 2
BLOCK_B = 16                 # sequences per program (tl.dot needs >= 16 rows)

if triton is not None:
    # The kernels use only triton.language builtins (no tl.sigmoid, tl.zeros: those are
    # @triton.jit functions themselves), so that the one definition also runs in the
    # interpreter when triton was imported without TRITON_INTERPRET (see `_launch`).

    @triton.jit
    def _fwd_kernel(XP, s_xb, s_xt, G, s_gb, s_gt, s_gh, E, s_eb, s_et, V, W, BHH,
                    HS, Q, N, GATES, A, B, T,
                    H: tl.constexpr, MODE: tl.constexpr, SAVE_A: tl.constexpr, BLOCK_B: tl.constexpr,
                    BLOCK_H: tl.constexpr, BLOCK_K: tl.constexpr, PREC: tl.constexpr):
        # HS [T+1, B, H]: HS[0] = h0, HS[t+1] = h_t. Q [T, B, 3H] = (r, z, hn), N [T, B, H] = n.
        rows = tl.program_id(0) * BLOCK_B + tl.arange(0, BLOCK_B)
        rmask = rows < B
        for t in range(T):
            for j0 in range(0, H, BLOCK_H):
                cj = j0 + tl.arange(0, BLOCK_H)
                m2 = rmask[:, None] & (cj < H)[None, :]
                acc_r = tl.full((BLOCK_B, BLOCK_H), 0.0, tl.float32)
                acc_z = tl.full((BLOCK_B, BLOCK_H), 0.0, tl.float32)
                acc_n = tl.full((BLOCK_B, BLOCK_H), 0.0, tl.float32)
                for k0 in range(0, H, BLOCK_K):
                    ck = k0 + tl.arange(0, BLOCK_K)
                    hk = tl.load(HS + t * B * H + rows[:, None] * H + ck[None, :],
                                 mask=rmask[:, None] & (ck < H)[None, :], other=0.0)
                    wm = (ck < H)[:, None] & (cj < H)[None, :]
                    w_ptr = W + cj[None, :] * H + ck[:, None]             # W^T tile [BLOCK_K, BLOCK_H]
                    w_r = tl.load(w_ptr, mask=wm, other=0.0)
                    w_z = tl.load(w_ptr + H * H, mask=wm, other=0.0)
                    w_n = tl.load(w_ptr + 2 * H * H, mask=wm, other=0.0)
                    hk = hk.to(w_r.dtype)
                    acc_r = tl.dot(hk, w_r, acc_r, input_precision=PREC)
                    acc_z = tl.dot(hk, w_z, acc_z, input_precision=PREC)
                    acc_n = tl.dot(hk, w_n, acc_n, input_precision=PREC)
                x_ptr = XP + rows[:, None] * s_xb + t * s_xt + cj[None, :]
                b_r = tl.load(BHH + cj, mask=cj < H, other=0.0)[None, :]
                b_z = tl.load(BHH + H + cj, mask=cj < H, other=0.0)[None, :]
                b_n = tl.load(BHH + 2 * H + cj, mask=cj < H, other=0.0)[None, :]
                r = 1.0 / (1.0 + tl.exp(-(tl.load(x_ptr, mask=m2, other=0.0).to(tl.float32) + acc_r + b_r)))
                z = 1.0 / (1.0 + tl.exp(-(tl.load(x_ptr + H, mask=m2, other=0.0).to(tl.float32) + acc_z + b_z)))
                hn = acc_n + b_n
                pre_n = tl.load(x_ptr + 2 * H, mask=m2, other=0.0).to(tl.float32) + r * hn
                e2 = tl.exp(-2.0 * tl.abs(pre_n))                        # tanh, without overflow
                n = tl.where(pre_n >= 0, 1.0, -1.0) * (1.0 - e2) / (1.0 + e2)
                tile = rows[:, None] * H + cj[None, :]
                hp = tl.load(HS + t * B * H + tile, mask=m2, other=0.0)
                f = n + z * (hp - n)                                     # (1 - z) n + z h
                if MODE == 0:
                    h_new = f
                elif MODE == 1:
                    g = tl.load(G + rows[:, None] * s_gb + t * s_gt + cj[None, :] * s_gh, mask=m2, other=0.0)
                    h_new = tl.where(g > 0, f, hp)                       # closed: h, bit for bit
                else:
                    a = tl.load(E + rows[:, None] * s_eb + t * s_et + cj[None, :], mask=m2, other=0.0)
                    a = a + tl.load(V + cj, mask=cj < H, other=0.0)[None, :] * hp
                    h_new = tl.where(a > 0, f, hp)
                    tl.store(GATES + t * B * H + tile, (a > 0).to(tl.float32), mask=m2)
                    if SAVE_A:
                        tl.store(A + t * B * H + tile, a, mask=m2)
                q_ptr = Q + t * B * 3 * H + rows[:, None] * 3 * H + cj[None, :]
                tl.store(q_ptr, r, mask=m2)
                tl.store(q_ptr + H, z, mask=m2)
                tl.store(q_ptr + 2 * H, hn, mask=m2)
                tl.store(N + t * B * H + tile, n, mask=m2)
                tl.store(HS + (t + 1) * B * H + tile, h_new, mask=m2)
            tl.debug_barrier()                                           # h_t complete before step t+1 reads it

    @triton.jit
    def _bwd_kernel(DY, s_dyb, s_dyt, G, s_gb, s_gt, s_gh, W, HS, Q, N, DHC, DHG, DXN, DG, B, T,
                    H: tl.constexpr, MODE: tl.constexpr, HAS_DY: tl.constexpr, NEED_DG: tl.constexpr,
                    BLOCK_B: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_K: tl.constexpr, PREC: tl.constexpr):
        # DHC [B, H]: d loss / d h_t carried from later steps (in: zeros; out: d loss / d h0).
        rows = tl.program_id(0) * BLOCK_B + tl.arange(0, BLOCK_B)
        rmask = rows < B
        for i in range(T):
            t = T - 1 - i
            for j0 in range(0, H, BLOCK_H):                            # the gate math, tile by tile
                cj = j0 + tl.arange(0, BLOCK_H)
                m2 = rmask[:, None] & (cj < H)[None, :]
                tile = rows[:, None] * H + cj[None, :]
                dh = tl.load(DHC + tile, mask=m2, other=0.0)
                if HAS_DY:
                    dh += tl.load(DY + rows[:, None] * s_dyb + t * s_dyt + cj[None, :], mask=m2, other=0.0)
                q_ptr = Q + t * B * 3 * H + rows[:, None] * 3 * H + cj[None, :]
                r = tl.load(q_ptr, mask=m2, other=0.0)
                z = tl.load(q_ptr + H, mask=m2, other=0.0)
                hn = tl.load(q_ptr + 2 * H, mask=m2, other=0.0)
                n = tl.load(N + t * B * H + tile, mask=m2, other=0.0)
                hp = tl.load(HS + t * B * H + tile, mask=m2, other=0.0)
                if MODE == 0:
                    g = tl.full((BLOCK_B, BLOCK_H), 1.0, tl.float32)
                else:
                    g = tl.load(G + rows[:, None] * s_gb + t * s_gt + cj[None, :] * s_gh, mask=m2, other=0.0)
                omz = 1.0 - z
                gf = g * dh                                              # d loss / d f
                dpre_n = gf * omz * (1.0 - n * n)
                dpre_z = gf * (hp - n) * z * omz
                dpre_r = dpre_n * hn * r * (1.0 - r)
                dhg_ptr = DHG + t * B * 3 * H + rows[:, None] * 3 * H + cj[None, :]
                tl.store(dhg_ptr, dpre_r, mask=m2)
                tl.store(dhg_ptr + H, dpre_z, mask=m2)
                tl.store(dhg_ptr + 2 * H, dpre_n * r, mask=m2)           # d loss / d hn
                tl.store(DXN + t * B * H + tile, dpre_n, mask=m2)
                if NEED_DG:
                    tl.store(DG + t * B * H + tile, dh * omz * (n - hp), mask=m2)
                tl.store(DHC + tile, dh * (1.0 - g * omz), mask=m2)      # the part that skips hg
            tl.debug_barrier()
            for j0 in range(0, H, BLOCK_H):                            # dh_{t-1} += dhg W_hh
                cj = j0 + tl.arange(0, BLOCK_H)
                m2 = rmask[:, None] & (cj < H)[None, :]
                acc = tl.load(DHC + rows[:, None] * H + cj[None, :], mask=m2, other=0.0)
                for k0 in range(0, 3 * H, BLOCK_K):
                    ck = k0 + tl.arange(0, BLOCK_K)
                    d = tl.load(DHG + t * B * 3 * H + rows[:, None] * 3 * H + ck[None, :],
                                mask=rmask[:, None] & (ck < 3 * H)[None, :], other=0.0)
                    w = tl.load(W + ck[:, None] * H + cj[None, :],
                                mask=(ck < 3 * H)[:, None] & (cj < H)[None, :], other=0.0)
                    acc = tl.dot(d.to(w.dtype), w, acc, input_precision=PREC)
                tl.store(DHC + rows[:, None] * H + cj[None, :], acc, mask=m2)
            tl.debug_barrier()


def _launch(kernel, device: torch.device):
    """The kernel as compiled for CUDA, or run by Triton's interpreter for CPU tensors."""
    if device.type == "cuda" or _is_interpreted(kernel):
        return kernel
    from triton.runtime.interpreter import InterpretedFunction
    if kernel not in _INTERPRETED:
        _INTERPRETED[kernel] = InterpretedFunction(kernel.fn)
    return _INTERPRETED[kernel]


def _is_interpreted(kernel) -> bool:
    return type(kernel).__name__ == "InterpretedFunction"


_INTERPRETED: dict = {}


def _blocks(H: int, dot_dtype: torch.dtype) -> dict:
    width = max(16, min(64, triton.next_power_of_2(H)))
    return dict(BLOCK_B=BLOCK_B, BLOCK_H=width, BLOCK_K=32 if dot_dtype == torch.float32 else 64)


def _precision(device: torch.device, dot_dtype: torch.dtype) -> str:
    # cuDNN's RNNs use TF32 for float32 when torch.backends.cudnn.allow_tf32 (the default);
    # the fused kernel follows the same switch. 16-bit operands take Triton's default ("tf32",
    # which only concerns float32 operands). The interpreter computes in IEEE float32.
    if device.type != "cuda":
        return "ieee"
    return "tf32" if dot_dtype != torch.float32 or torch.backends.cudnn.allow_tf32 else "ieee"


def _switch_strides(switches: Tensor, B: int, T: int, H: int) -> tuple[Tensor, int, int, int]:
    g = switches.expand(B, T, H)                                       # broadcast dims get stride 0
    return g, g.stride(0), g.stride(1), g.stride(2)


class _TritonSuGRUScan(torch.autograd.Function):
    """Same contract as `surnn.scan.SuGRUScan`, plus ``dot_dtype``: the dtype of the recurrent
    product's operands (float32, or the autocast dtype on CUDA); accumulation is float32."""

    @staticmethod
    def forward(ctx, xp, h0, weight_hh, bias_hh, switches, drive, state_weight, mask, surrogate, width,
                dot_dtype=torch.float32):
        ctx.set_materialize_grads(False)
        B, T, H3 = xp.shape
        H, dev = H3 // 3, xp.device
        mode = MODE_EVENT if drive is not None else (MODE_FIXED if switches is not None else MODE_OPEN)
        with torch.autocast(dev.type, enabled=False):
            xp = xp if xp.stride(-1) == 1 else xp.contiguous()
            W = weight_hh.to(dot_dtype).contiguous()
            hs = h0.new_empty(T + 1, B, H, dtype=torch.float32)
            hs[0] = h0
            q, n = hs.new_empty(T, B, 3 * H), hs.new_empty(T, B, H)
            g, s_g = switches, (0, 0, 0)
            if mode == MODE_FIXED:
                g, *s_g = _switch_strides(switches.float(), B, T, H)
            e, gates, a = hs, None, hs
            save_a = mode == MODE_EVENT and surrogate != "straight_through"
            if mode == MODE_EVENT:
                e = drive.float()
                if mask is not None:
                    e = e.masked_fill(~mask[:, :, None], -torch.inf)      # padded steps never open
                gates = hs.new_empty(T, B, H)
                a = hs.new_empty(T, B, H) if save_a else hs
            v = state_weight.float().contiguous() if state_weight is not None else hs
            _launch(_fwd_kernel, dev)[(triton.cdiv(B, BLOCK_B),)](
                xp, xp.stride(0), xp.stride(1), g if g is not None else hs, *s_g,
                e, e.stride(0), e.stride(1), v, W, bias_hh.float().contiguous(),
                hs, q, n, gates if gates is not None else hs, a, B, T,
                H=H, MODE=mode, SAVE_A=save_a, PREC=_precision(dev, dot_dtype), **_blocks(H, dot_dtype))
        ctx.mode, ctx.surrogate, ctx.width, ctx.dot_dtype, ctx.xp_dtype = mode, surrogate, width, dot_dtype, xp.dtype
        ctx.save_for_backward(hs, q, n, W, g if mode == MODE_FIXED else gates, a if save_a else None,
                              mask, switches)
        y = hs[1:].transpose(0, 1)
        return y, (gates.transpose(0, 1) if gates is not None else None)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, dy, dgates):
        hs, q, n, W, g, a, mask, switches = ctx.saved_tensors
        T1, B, H = hs.shape
        T, dev, mode = T1 - 1, hs.device, ctx.mode
        need_dg = mode == MODE_EVENT or (mode == MODE_FIXED and ctx.needs_input_grad[4])
        with torch.autocast(dev.type, enabled=False):
            dy = dy.float() if dy is not None else None
            if dy is not None and dy.stride(-1) != 1:
                dy = dy.contiguous()
            dhc = hs.new_zeros(B, H)
            dhg, dxn = hs.new_empty(T, B, 3 * H), hs.new_empty(T, B, H)
            dg = hs.new_empty(T, B, H) if need_dg else hs
            s_g = (g.stride(0), g.stride(1), g.stride(2)) if mode == MODE_FIXED else (H, B * H, 1)
            _launch(_bwd_kernel, dev)[(triton.cdiv(B, BLOCK_B),)](
                dy if dy is not None else hs, *((dy.stride(0), dy.stride(1)) if dy is not None else (0, 0)),
                g if g is not None else hs, *s_g, W, hs, q, n, dhc, dhg, dxn, dg, B, T,
                H=H, MODE=mode, HAS_DY=dy is not None, NEED_DG=need_dg,
                PREC=_precision(dev, ctx.dot_dtype), **_blocks(H, ctx.dot_dtype))
            return _gradients(ctx, hs, dhc, dhg, dxn, dg if need_dg else None, dgates, a, mask, switches)


def _gradients(ctx, hs, dhc, dhg, dxn, dg, dgates, a, mask, switches):
    """The GEMMs and reductions over all steps that the backward kernel leaves out."""
    T, B, H = dxn.shape
    hp = hs[:-1].reshape(T * B, H)                                     # h_{t-1} for every step
    d_weight = dhg.reshape(T * B, 3 * H).t() @ hp
    d_bias = dhg.sum((0, 1))
    d_xp = torch.cat([dhg[..., : 2 * H], dxn], -1).transpose(0, 1).to(ctx.xp_dtype)
    d_switches = d_drive = d_v = None
    if ctx.mode == MODE_FIXED and dg is not None:
        d_switches = dg.transpose(0, 1).sum_to_size(switches.shape)
    elif ctx.mode == MODE_EVENT:
        if dgates is not None:
            dg = dg + dgates.transpose(0, 1)
        da = dg * surrogate_slope(a, ctx.surrogate, ctx.width) if a is not None else dg
        if mask is not None:
            da = da * mask.t()[:, :, None]
        d_drive = da.transpose(0, 1)
        d_v = (da.reshape(T * B, H) * hp).sum(0)
    return (d_xp, dhc, d_weight, d_bias, d_switches, d_drive, d_v) + (None,) * 4


TritonSuGRUScan = _TritonSuGRUScan if triton is not None else None
