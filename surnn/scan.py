"""A fused suGRU scan with a hand-written backward pass (backpropagation through time).

Used by `SuRNN` when the switches do not depend on the state (rhythmic gate, no gate): the
schedule g [B, T, H] is known before the loop, so the whole recurrence is one autograd node.
Autograd over a Python loop records ~15 nodes per step and multiplies a [3H, B] x [B, H]
weight gradient at every step; here the backward loop does one [B, 3H] x [3H, H] product
per step, and the recurrent weight gradient is a single [3H, T*B] x [T*B, H] product at the
end. `surnn.reference.scan_ref` is the oracle this is tested against.

Forward, per step (gate order r, z, n as in torch.nn.GRU):
    hg = h W_hh^T + b_hh;  r, z = sigmoid(x_r + hg_r), sigmoid(x_z + hg_z)
    n = tanh(x_n + r * hg_n);  f = lerp(n, h, z) = (1 - z) n + z h;  h' = lerp(h, f, g)
"""
from __future__ import annotations

import torch
from torch import Tensor


class SuGRUScan(torch.autograd.Function):
    """y [B, T, H] = scan of the suGRU over precomputed input projections and switches.

    Args (forward): xp [B, T, 3H] (x W_ih^T + b_ih), g [B, T, H] of 0/1, h0 [B, H],
    weight_hh [3H, H], bias_hh [3H]. Returns y [B, T, H] (every h_t; the last is the state).
    """

    @staticmethod
    def forward(ctx, xp: Tensor, g: Tensor, h0: Tensor, weight_hh: Tensor, bias_hh: Tensor) -> Tensor:
        B, T, H3 = xp.shape
        H = H3 // 3
        w_t = weight_hh.t()
        xrz, xn = xp[..., : 2 * H].unbind(1), xp[..., 2 * H:].unbind(1)
        gs = g.unbind(1)
        h = h0
        ys, rs, zs, ns, hns = [], [], [], [], []
        for t in range(T):
            hg = torch.addmm(bias_hh, h, w_t)                      # [B, 3H]
            rz = torch.sigmoid(xrz[t] + hg[:, : 2 * H])
            r, z = rz[:, :H], rz[:, H:]
            hn = hg[:, 2 * H:]
            n = torch.tanh(torch.addcmul(xn[t], r, hn))
            h = torch.lerp(h, torch.lerp(n, h, z), gs[t])
            ys.append(h)
            rs.append(r)
            zs.append(z)
            ns.append(n)
            hns.append(hn)
        y = torch.stack(ys, 1)                                     # [B, T, H]
        ctx.save_for_backward(g, h0, weight_hh, y, torch.stack(rs), torch.stack(zs),
                              torch.stack(ns), torch.stack(hns))
        return y

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, dy: Tensor):
        g, h0, weight_hh, y, R, Z, N, HN = ctx.saved_tensors      # R, Z, N, HN: [T, B, H]
        B, T, H = y.shape
        # Every factor that does not depend on the incoming gradient, for all steps at once.
        h_prev = torch.cat([h0[None], y.transpose(0, 1)[:-1]])    # [T, B, H]
        z_minus_1 = Z - 1.0
        f_minus_h = z_minus_1 * (h_prev - N)                       # f - h = (1 - z)(n - h)
        dn_dpre = -z_minus_1 * (1.0 - N * N)                       # d f / d (pre-tanh n)
        dz_dpre = (h_prev - N) * Z * -z_minus_1                    # d f / d (pre-sigmoid z)
        dr_dpre = HN * R * (1.0 - R)                               # d pre_n / d (pre-sigmoid r)
        gs, dys = g.transpose(0, 1), dy.transpose(0, 1)
        dhg = y.new_empty(T, B, 3 * H)                             # d loss / d (h W_hh^T + b_hh)
        dxn = y.new_empty(T, B, H)                                 # d loss / d x_n
        dg = y.new_empty(T, B, H)
        dh = torch.zeros_like(h0)
        for t in range(T - 1, -1, -1):
            dh = dh + dys[t]
            torch.mul(dh, f_minus_h[t], out=dg[t])
            df = gs[t] * dh
            torch.mul(df, dn_dpre[t], out=dxn[t])
            torch.mul(df, dz_dpre[t], out=dhg[t, :, H: 2 * H])
            torch.mul(dxn[t], dr_dpre[t], out=dhg[t, :, :H])
            torch.mul(dxn[t], R[t], out=dhg[t, :, 2 * H:])
            # d h / d h_prev: the held part (1 - g) plus the candidate's z h term, and through hg.
            dh = torch.addmm(torch.addcmul(dh, df, z_minus_1[t]), dhg[t], weight_hh)
        d_weight = dhg.reshape(T * B, 3 * H).t() @ h_prev.reshape(T * B, H)
        d_bias = dhg.sum((0, 1))
        dxp = torch.cat([dhg[..., : 2 * H], dxn], -1)              # r, z parts equal hg's
        return dxp.transpose(0, 1), dg.transpose(0, 1), dh, d_weight, d_bias
