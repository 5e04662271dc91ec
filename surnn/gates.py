"""The binary switches of a suRNN: a step function with a surrogate gradient, and two gates.

Forward, every switch is exactly 0 or 1: g = H(a - gate_threshold). Backward, H has no useful
derivative, so a surrogate stands in for dH/da:

* ``boxcar`` (the default): 1 / (2w) on |a - threshold| < w, else 0 (the derivative of a hard
  sigmoid), with w = `surrogate_width` = 1.5 by default (full width 3, slope 1/3).
* ``straight_through``: dH/da := 1, also far from the threshold.
* ``triangle``: max(0, 1 - |a - threshold| / w) / w. All but straight_through integrate to 1.

Why boxcar. On a long silent stretch (delayed recall: a few data steps, then 1000 blanks) every
step hands each gate ``f - h`` times the gradient of the state, and straight-through passes all
of it on, whatever the drive: the gate's gradient sums over the ~1000 silent steps and dwarfs
the few data steps'. Measured (event gate, init_update_rate 0.9, sparsity_lambda 10, width 32,
1000 silent steps, 80 steps of batch 32: tests/surnn/test_long_silence.py's run): the global
gradient norm grows from 36 to 159 under straight-through, while the boxcar keeps it at 11-13;
a switch parked far from its threshold (closed through the silence) then hears nothing,
so the silence stops voting on it. The exact-copy property does not depend on the surrogate:
forward the switch is exactly 0 or 1 either way.

Why `init_update_rate` 0.5. The boxcar is also why the initial open fraction matters: a
switch whose drive on the silent input starts beyond +w never feels the sparsity penalty (its
surrogate slope is 0 there) and stays open for good. The event gate's drive on one input is
about N(c0, 1) over neurons at initialisation; at init_update_rate 0.9 (c0 = 1.28) a share
P(N(1.28, 1) > 1.5) = 0.41 starts out of reach, and the trained rate stayed at 0.37-0.54; at 0.5
(c0 = 0) only 0.07 does. Measured on tests/surnn/test_long_silence.py's run, seeds 0-2: 0.9 gave
accuracy 0.691/0.615/0.682 at rate 0.535/0.372/0.414; 0.5 gave 0.664/0.664/0.648 at rate
0.185/0.228/0.188 (and 0.732 at 0.135 with twice the steps). 0.5 also starts a quarter of the
neurons open on a given data token and closed on the silent one, the pattern that holds it.

How `gate_threshold` acts. Only ``b - threshold`` enters a gate, so with the bias b learned
freely a threshold that b is initialised against would cancel out. Here b is initialised from
`init_update_rate` as though the threshold were 0 and the threshold is applied on top: at
initialisation the open fraction of a rhythmic neuron is

    1/2 + arcsin(clip((b0 - threshold) / alpha0, -1, 1)) / pi,   b0 = alpha0 sin(pi (r - 1/2)),

so a higher threshold starts every neuron sparser (threshold 0 gives exactly r). The same
holds for the event gate with the Gaussian quantile in place of the arcsine. b then learns,
together with the amplitudes, phases and frequencies, under the task loss and the sparsity
regulariser, so the threshold sets the operating point training starts from and must move
away from; it is not a hard cap on the rate.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from surnn.config import SuRNNConfig

_ALPHA0 = 1.0   # initial amplitude of each neuron's own sinusoid


class _Heaviside(torch.autograd.Function):
    """H(x) = 1[x > 0] forward; a surrogate derivative backward."""

    @staticmethod
    def forward(ctx, x: Tensor, surrogate: str, width: float) -> Tensor:
        ctx.surrogate, ctx.width = surrogate, width
        if surrogate != "straight_through":
            ctx.save_for_backward(x)
        return (x > 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad: Tensor):
        if ctx.surrogate == "straight_through":
            return grad, None, None
        (x,) = ctx.saved_tensors
        return grad * surrogate_slope(x, ctx.surrogate, ctx.width).to(grad.dtype), None, None


def surrogate_slope(x: Tensor, surrogate: str, width: float) -> Tensor | float:
    """The surrogate's dH/dx at x (1.0 for straight_through); shared with the fused scans."""
    if surrogate == "straight_through":
        return 1.0
    if surrogate == "boxcar":
        return (x.abs() < width).to(x.dtype) / (2.0 * width)
    return (1.0 - x.abs() / width).clamp_min(0.0) / width   # triangle


def heaviside(x: Tensor, surrogate: str = "straight_through", width: float = 1.0) -> Tensor:
    """Binary step of `x` (0 where x <= 0) with the named surrogate gradient."""
    return _Heaviside.apply(x, surrogate, width)


def rhythmic_open_fraction(bias: float, threshold: float, amplitude: float = _ALPHA0) -> float:
    """Open fraction of a single-sinusoid rhythmic gate over a uniformly random phase."""
    ratio = max(-1.0, min(1.0, (bias - threshold) / amplitude))
    return 0.5 + math.asin(ratio) / math.pi


class RhythmicGate(nn.Module):
    """a[t, i] = b[i] + sum_k alpha[i, k] sin(omega[k] t + phi[i, k]); depends on t only.

    omega is shared by all neurons (K sinusoids, periods log-uniform in [min_period,
    max_period]); b, alpha, phi are per neuron. Neuron i starts on sinusoid k = i mod K alone
    (alpha is 0 on the others and free to grow), so the neurons start on K time scales and
    the open fraction above holds exactly for any K.
    """

    def __init__(self, cfg: SuRNNConfig):
        super().__init__()
        H, K = cfg.hidden_size, cfg.num_frequencies
        periods = torch.logspace(math.log10(cfg.min_period), math.log10(cfg.max_period), K)
        if K == 1:
            periods = torch.tensor([cfg.max_period])
        self.log_omega = nn.Parameter((2 * math.pi / periods).log())                       # [K]
        alpha = torch.zeros(H, K)
        alpha[torch.arange(H), torch.arange(H) % K] = _ALPHA0
        self.alpha = nn.Parameter(alpha)                                                     # [H, K]
        self.phi = nn.Parameter(torch.rand(H, K) * 2 * math.pi)                              # [H, K]
        b0 = _ALPHA0 * math.sin(math.pi * (cfg.init_update_rate - 0.5))
        self.bias = nn.Parameter(torch.full((H,), b0))                                       # [H]

    def drive(self, t: Tensor) -> Tensor:
        """Gate drive for float time indices t [T] -> [T, H]."""
        phase = t[:, None, None] * self.log_omega.exp() + self.phi                          # [T, H, K]
        return self.bias + (self.alpha * torch.sin(phase)).sum(-1)


class EventGate(nn.Module):
    """a[t, i] = u_i . x_t + v_i h[t-1, i] + c_i: opens for inputs that matter to neuron i.

    The input part is one extra column block of the layer's input projection, computed for all
    steps at once; the state part is elementwise. The state enters detached: a closed neuron's
    Jacobian row stays exactly the identity (no surrogate gradient leaks into h), and the gate
    learns u, v, c. c starts at the Gaussian quantile of `init_update_rate`, taking u . x as
    roughly unit-variance at initialisation.
    """

    def __init__(self, cfg: SuRNNConfig):
        super().__init__()
        H, I = cfg.hidden_size, cfg.input_size
        self.weight = nn.Parameter(torch.randn(H, I) / math.sqrt(I))                       # [H, I]
        self.state_weight = nn.Parameter(torch.zeros(H))                                     # [H]
        rate = min(cfg.init_update_rate, 1.0 - 1e-4)
        c0 = math.sqrt(2.0) * torch.erfinv(torch.tensor(2.0 * rate - 1.0)).item()
        self.bias = nn.Parameter(torch.full((H,), c0))                                       # [H]
