import itertools
import math

import pytest
import torch

from surnn import SuRNN, scan_ref
from surnn.gates import heaviside, rhythmic_open_fraction

CELLS = ("gru", "rnn", "lstm")
GATES = ("rhythmic", "event", "none")
TOL = {torch.float32: 2e-5, torch.float64: 2e-5}   # the reference always runs in float32


def _state_leaves(state):
    return list(state) if isinstance(state, tuple) else [state]


def _run(layer, fn, x, state, mask):
    """Outputs and gradients of fn(layer, x, state, mask) under a fixed random loss."""
    for p in layer.parameters():
        p.grad = None
    x = x.detach().clone().requires_grad_(True)
    state = [s.detach().clone().requires_grad_(True) for s in _state_leaves(state)]
    st = tuple(state) if len(state) == 2 else state[0]
    y, final, gates = fn(layer, x, st, mask)
    w = torch.linspace(-1, 1, y.numel(), dtype=y.dtype).reshape(y.shape)
    loss = (y * w).sum() + sum(f.float().square().sum() for f in _state_leaves(final))
    loss.backward()
    grads = [p.grad.clone() for p in layer.parameters()] + [x.grad] + [s.grad for s in state]
    return y, _state_leaves(final), gates, grads


@pytest.mark.parametrize("cell,gate,masked,dtype,surrogate", [
    (c, g, m, d, s) for c, g in itertools.product(CELLS, GATES) for m in (False, True)
    for d in (torch.float32, torch.float64) if d == torch.float32 or (c == "gru" and not m)
    for s in ("straight_through", "boxcar") if s == "boxcar" or g != "none"])
def test_default_path_matches_reference(cell, gate, masked, dtype, surrogate):
    torch.manual_seed(0)
    layer = SuRNN(6, 9, cell=cell, gate=gate, max_period=12.0, surrogate=surrogate,
                  surrogate_width=1.5, init_update_rate=0.5).to(dtype)
    x = torch.randn(4, 23, 6, dtype=dtype)
    state = torch.randn(4, 9, dtype=dtype)
    state = (state, torch.randn(4, 9, dtype=dtype)) if cell == "lstm" else state
    mask = None
    if masked:
        mask = torch.ones(4, 23, dtype=torch.bool)
        mask[1, 15:] = False
        mask[3, 4:] = False
    fast = _run(layer, lambda m, *a: m(*a), x, state, mask)
    ref = _run(layer, scan_ref, x, state, mask)
    assert torch.equal(fast[2].to(ref[2].dtype), ref[2]), "switches differ"
    assert 0.2 < fast[2].float().mean() < 0.95 or gate == "none"
    tol = TOL[dtype]
    torch.testing.assert_close(fast[0].float(), ref[0], rtol=tol, atol=tol)
    for a, b in zip(fast[1], ref[1]):
        torch.testing.assert_close(a.float(), b, rtol=tol, atol=tol)
    for a, b in zip(fast[3], ref[3]):
        torch.testing.assert_close(a.float(), b.float(), rtol=10 * tol, atol=10 * tol)


@pytest.mark.parametrize("cell,gate", list(itertools.product(CELLS, ("rhythmic", "event"))))
def test_closed_switch_keeps_state_bit_for_bit(cell, gate):
    torch.manual_seed(1)
    layer = SuRNN(5, 16, cell=cell, gate=gate, max_period=10.0)
    x = torch.randn(3, 40, 5)
    y, _, g = layer(x)
    prev = torch.cat([torch.zeros(3, 1, 16), y[:, :-1]], 1)
    closed = g == 0
    assert closed.any() and (~closed).any()
    assert torch.equal(y[closed], prev[closed])
    assert not torch.equal(y[~closed], prev[~closed])


@pytest.mark.parametrize("cell,gate", list(itertools.product(CELLS, ("rhythmic", "event"))))
def test_all_switches_closed_is_identity_forward_and_backward(cell, gate):
    torch.manual_seed(2)
    layer = SuRNN(4, 8, cell=cell, gate=gate, gate_threshold=50.0)
    h0 = torch.randn(2, 8, requires_grad=True)
    state = (h0, torch.randn(2, 8)) if cell == "lstm" else h0
    y, _, g = layer(torch.randn(2, 30, 4), state)
    assert g.sum() == 0
    assert torch.equal(y, h0.detach()[:, None].expand_as(y))
    (grad,) = torch.autograd.grad(y[:, -1].sum(), h0)
    assert torch.equal(grad, torch.ones_like(h0))


@pytest.mark.parametrize("cell,module", [("gru", torch.nn.GRU), ("lstm", torch.nn.LSTM), ("rnn", torch.nn.RNN)])
def test_all_switches_open_matches_torch(cell, module):
    torch.manual_seed(3)
    layer = SuRNN(5, 7, cell=cell, gate="none")
    base = module(5, 7, batch_first=True)
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(base, name + "_l0").copy_(getattr(layer, name))
    x = torch.randn(3, 19, 5)
    y, _, g = layer(x)
    assert torch.equal(g, torch.ones_like(g))
    torch.testing.assert_close(y, base(x)[0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("gate", GATES)
def test_padded_steps_never_open_and_hold_state(gate):
    torch.manual_seed(4)
    layer = SuRNN(3, 6, gate=gate, init_update_rate=0.9)
    mask = torch.ones(2, 12, dtype=torch.bool)
    mask[0, 7:] = False
    y, final, g = layer(torch.randn(2, 12, 3), mask=mask)
    assert g[0, 7:].sum() == 0 and g[1].sum() > 0
    assert torch.equal(y[0, 7:], y[0, 6:7].expand(5, 6))
    assert torch.equal(final[0], y[0, 6])


@pytest.mark.parametrize("gate,names", [("rhythmic", ("bias", "alpha", "phi", "log_omega")),
                                        ("event", ("weight", "bias", "state_weight"))])
def test_gate_parameters_receive_gradients(gate, names):
    torch.manual_seed(5)
    layer = SuRNN(4, 8, gate=gate, max_period=16.0)
    y, _, g = layer(torch.randn(3, 25, 4))
    (y.square().sum() + g.sum()).backward()
    for name in names:
        grad = getattr(layer.gate, name).grad
        assert grad is not None and grad.abs().sum() > 0, name


@pytest.mark.parametrize("rate", [0.1, 0.3, 0.5, 0.8])
def test_initial_update_rate_hits_request(rate):
    torch.manual_seed(6)
    rhythmic = SuRNN(4, 2048, gate="rhythmic", init_update_rate=rate, max_period=64.0)
    event = SuRNN(64, 2048, gate="event", init_update_rate=rate)
    with torch.no_grad():
        g_r = rhythmic(torch.zeros(1, 256, 4))[2]
        g_e = event(torch.randn(2, 64, 64))[2]
    assert abs(g_r.mean().item() - rate) < 0.02
    assert abs(g_e.mean().item() - rate) < 0.03


def test_threshold_sets_initial_rate_by_the_documented_formula():
    rates = []
    for thr in (-0.5, 0.0, 0.4, 0.9):
        torch.manual_seed(7)
        layer = SuRNN(2, 2048, gate="rhythmic", gate_threshold=thr, init_update_rate=0.5, max_period=32.0)
        with torch.no_grad():
            rate = layer(torch.zeros(1, 96, 2))[2].mean().item()
        assert abs(rate - rhythmic_open_fraction(0.0, thr)) < 0.02
        rates.append(rate)
    assert rates == sorted(rates, reverse=True) and rates[0] - rates[-1] > 0.5


def test_time_offset_continues_a_sequence():
    torch.manual_seed(8)
    layer = SuRNN(3, 5, max_period=8.0)
    x = torch.randn(2, 20, 3)
    y, final, g = layer(x)
    y1, s1, g1 = layer(x[:, :12])
    y2, s2, g2 = layer(x[:, 12:], s1, time_offset=12)
    torch.testing.assert_close(torch.cat([y1, y2], 1), y)
    assert torch.equal(torch.cat([g1, g2], 1), g)


def test_surrogate_gradients():
    x = torch.tensor([-3.0, -0.5, 0.0, 0.25, 3.0], requires_grad=True)
    expected = {
        "straight_through": [1.0, 1.0, 1.0, 1.0, 1.0],
        "boxcar": [0.0, 0.5, 0.5, 0.5, 0.0],
        "triangle": [0.0, 0.5, 1.0, 0.75, 0.0],
    }
    for kind, want in expected.items():
        g = heaviside(x, kind, 1.0)
        assert g.tolist() == [0.0, 0.0, 0.0, 1.0, 1.0]
        (grad,) = torch.autograd.grad(g.sum(), x)
        assert grad.tolist() == want, kind


@pytest.mark.parametrize("settings,field", [
    (dict(cell="transformer"), "cell"),
    (dict(gate="random"), "gate"),
    (dict(gate_threshold=math.nan), "gate_threshold"),
    (dict(gate_threshold=math.inf), "gate_threshold"),
    (dict(init_update_rate=0.0), "init_update_rate"),
    (dict(init_update_rate=1.5), "init_update_rate"),
    (dict(surrogate="sigmoid"), "surrogate"),
    (dict(surrogate_width=0.0), "surrogate_width"),
    (dict(num_frequencies=0), "num_frequencies"),
    (dict(max_period=1.0), "max_period"),
])
def test_invalid_settings_fail_at_construction(settings, field):
    with pytest.raises(ValueError, match=field):
        SuRNN(4, 8, **settings)


def test_invalid_hidden_size_fails_at_construction():
    with pytest.raises(ValueError, match="hidden_size"):
        SuRNN(4, 0)


@pytest.mark.parametrize("make,what", [
    (lambda: (torch.randn(2, 5, 3), None, None), r"input x: expected a float tensor \[batch, time, 4\]"),
    (lambda: (torch.ones(2, 5, 4, dtype=torch.long), None, None), "input x"),
    (lambda: (torch.randn(5, 4), None, None), "input x"),
    (lambda: (torch.randn(2, 5, 4), torch.randn(3, 8), None), r"state: expected a float tensor \[2, 8\]"),
    (lambda: (torch.randn(2, 5, 4), None, torch.ones(2, 5)), r"mask: expected a bool tensor \[2, 5\]"),
])
def test_bad_inputs_name_what_was_expected(make, what):
    layer = SuRNN(4, 8)
    x, state, mask = make()
    with pytest.raises(ValueError, match=what):
        layer(x, state, mask)


def test_unknown_gru_kernel_setting_names_the_variable(monkeypatch):
    monkeypatch.setenv("SURNN_GRU_KERNEL", "cuda-graphs")
    with pytest.raises(ValueError, match="SURNN_GRU_KERNEL: unknown value 'cuda-graphs'"):
        SuRNN(4, 8)(torch.randn(2, 3, 4))
