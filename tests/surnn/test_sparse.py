import itertools
import math

import pytest
import torch

from surnn import SuRNN, scan_ref
from surnn.sparse import SparseSuRNN, native
from surnn.sparse.engine import STREAM_BLOCK

CELLS = ("gru", "rnn", "lstm")
GATES = ("rhythmic", "event", "none")
BACKENDS = ("native", "eager")
TOL = 1e-5


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # Tiny products on a busy 2-core machine: a second thread only waits for the first.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _leaves(state):
    return list(state) if isinstance(state, tuple) else [state]


def _scramble_gate(layer, seed):
    """Gate parameters far from their initialisation: every sinusoid, both signs, per-neuron bias."""
    g = torch.Generator().manual_seed(seed)
    gate, H = layer.gate, layer.config.hidden_size
    with torch.no_grad():
        if layer.config.gate == "rhythmic":
            gate.alpha.copy_(torch.randn(gate.alpha.shape, generator=g) * 0.6)
            gate.bias.copy_(torch.randn(H, generator=g) * 0.5)
            gate.phi.copy_(torch.rand(gate.phi.shape, generator=g) * 20 - 10)
            gate.log_omega.add_(torch.randn(gate.log_omega.shape, generator=g) * 0.3)
        elif layer.config.gate == "event":
            gate.state_weight.copy_(torch.randn(H, generator=g))
            gate.bias.copy_(torch.randn(H, generator=g) * 0.5)


def _case(cell, gate, seed=0, B=3, T=41, I=6, H=19, **settings):
    torch.manual_seed(seed)
    layer = SuRNN(I, H, cell=cell, gate=gate, max_period=12.0, **settings)
    x = torch.randn(B, T, I)
    h = torch.randn(B, H)
    state = (h, torch.randn(B, H)) if cell == "lstm" else h
    mask = torch.ones(B, T, dtype=torch.bool)
    mask[1 % B, T // 2:] = False
    mask[2 % B, 3:] = False
    return layer, x, state, mask


@pytest.mark.parametrize("cell,gate,backend", list(itertools.product(CELLS, GATES, BACKENDS)))
def test_sparse_equals_dense_layer_and_reference(cell, gate, backend):
    layer, x, state, mask = _case(cell, gate)
    _scramble_gate(layer, 11)
    engine = layer.sparse(backend=backend, dense_fallback=False)
    assert engine.backend == backend
    with torch.no_grad():
        y_d, f_d, g_d = layer(x, state, mask, 7)
        y_r, f_r, g_r = scan_ref(layer, x, state, mask, 7)
    y, final, gates = engine(x, state, mask, 7, return_gates=True)
    assert 0.1 < g_d[mask].mean() < 0.9 or gate == "none"
    assert torch.equal(gates, g_d) and torch.equal(gates, g_r)
    for want in ((y_d, f_d), (y_r, f_r)):
        torch.testing.assert_close(y, want[0], rtol=TOL, atol=TOL)
        for a, b in zip(_leaves(final), _leaves(want[1])):
            torch.testing.assert_close(a, b, rtol=TOL, atol=TOL)
    assert torch.equal(engine(x, state, mask, 7)[0], y)       # the cached schedule gives the same


@pytest.mark.parametrize("cell,gate,backend", list(itertools.product(CELLS, GATES, BACKENDS)))
def test_stream_steps_equal_the_whole_sequence(cell, gate, backend):
    layer, x, state, _ = _case(cell, gate, seed=1, B=2, T=12)
    _scramble_gate(layer, 2)
    engine = layer.sparse(backend=backend, dense_fallback=False)
    start = STREAM_BLOCK - 5                       # the stream crosses a schedule block
    y, final = engine(x, state, None, start)
    s = state
    for t in range(x.shape[1]):
        s = engine.step(x[:, t], s, start + t)
        torch.testing.assert_close(_leaves(s)[0], y[:, t], rtol=TOL, atol=TOL)
    for a, b in zip(_leaves(s), _leaves(final)):
        torch.testing.assert_close(a, b, rtol=TOL, atol=TOL)


@pytest.mark.parametrize("backend", BACKENDS)
def test_stream_starts_from_zeros_without_a_state(backend):
    layer, x, _, _ = _case("gru", "rhythmic", B=1, T=3)
    engine = layer.sparse(backend=backend)
    with torch.no_grad():
        y = layer(x)[0]
    torch.testing.assert_close(engine.step(x[:, 0], None, 0), y[:, 0], rtol=TOL, atol=TOL)


@pytest.mark.parametrize("cell,gate", list(itertools.product(CELLS, ("rhythmic", "event"))))
def test_closed_neuron_keeps_its_state_bit_for_bit(cell, gate):
    layer, x, state, mask = _case(cell, gate, seed=3, T=30)
    y, _, g = layer.sparse(dense_fallback=False)(x, state, mask, return_gates=True)
    prev = torch.cat([_leaves(state)[0][:, None], y[:, :-1]], 1)
    closed = g == 0
    assert closed.any() and (~closed).any()
    assert torch.equal(y[closed], prev[closed])


def test_engine_keeps_the_weights_it_was_built_with():
    layer, x, state, _ = _case("gru", "rhythmic", seed=4)
    engine = layer.sparse()
    before = engine(x, state)[0]
    with torch.no_grad():
        layer.weight_hh.mul_(2.0)
        layer.gate.bias.add_(1.0)
    assert torch.equal(engine(x, state)[0], before)


def test_rhythmic_order_makes_each_step_a_few_contiguous_runs():
    torch.manual_seed(5)
    layer = SuRNN(8, 512, gate="rhythmic", num_frequencies=4, init_update_rate=0.17)
    engine = layer.sparse()
    sched = engine.schedule(1024, 0)
    runs_per_step = (sched.run_ptr[1:] - sched.run_ptr[:-1]).float()
    # One cyclic window per frequency group: at most 2 runs for each of the 4 groups.
    assert runs_per_step.max() <= 8 and runs_per_step.mean() < 6
    # The identity order would give about one run per open neuron.
    assert engine.schedule(1024, 0).open.sum() / sched.run_len.numel() > 10


def test_schedule_is_cached_per_length_and_offset():
    layer, _, _, _ = _case("gru", "rhythmic")
    engine = layer.sparse()
    assert engine.schedule(50, 3) is engine.schedule(50, 3)
    assert not torch.equal(engine.schedule(50, 3).open, engine.schedule(50, 4).open)


def test_big_batch_goes_dense_and_gives_the_same():
    layer, x, state, mask = _case("gru", "rhythmic", seed=6, B=8, init_update_rate=0.9)
    engine = layer.sparse()
    assert engine.prefers_dense(x, mask, 0)
    assert not engine.prefers_dense(x[:1], mask[:1], 0)
    sparse_only = layer.sparse(dense_fallback=False)
    torch.testing.assert_close(engine(x, state, mask)[0], sparse_only(x, state, mask)[0], rtol=TOL, atol=TOL)


def test_float64_layer_runs_in_float32():
    layer, x, state, mask = _case("lstm", "rhythmic", seed=7)
    layer = layer.double()
    engine = layer.sparse(dense_fallback=False)
    y, _ = engine(x.double(), tuple(s.double() for s in state), mask)
    with torch.no_grad():
        want = layer(x.double(), tuple(s.double() for s in state), mask)[0]
    assert y.dtype == torch.float32
    torch.testing.assert_close(y.double(), want, rtol=TOL, atol=TOL)


@pytest.mark.parametrize("call,what", [
    (lambda e: e(torch.randn(2, 5, 3)), r"input x: expected a float tensor \[batch, time, 6\]"),
    (lambda e: e(torch.randn(2, 5, 6), mask=torch.ones(2, 5)), "mask: expected a bool tensor"),
    (lambda e: e.step(torch.randn(2, 5, 6), None, 0), r"step x_t: expected a float tensor \[batch, 6\]"),
    (lambda e: e.step(torch.randn(2, 6), None, -1), "step t: expected a step index >= 0"),
    (lambda e: e.step(torch.randn(2, 6), torch.randn(3, 19), 0), r"state: expected a float tensor \[2, 19\]"),
])
def test_bad_input_fails_with_one_line_naming_it(call, what):
    layer, _, _, _ = _case("gru", "rhythmic")
    with pytest.raises(ValueError, match=what):
        call(layer.sparse())


def test_unknown_backend_is_refused():
    layer, _, _, _ = _case("gru", "rhythmic")
    with pytest.raises(ValueError, match="backend: unknown value 'cuda'"):
        SparseSuRNN(layer, backend="cuda")


def test_kernel_is_built_from_this_source():
    # The project installs with a C compiler (setup.py builds it; else the first use does).
    assert native.load() is not None, native.load_error()
    assert native.load().surnn_kernel_hash().decode() == native.source_hash()


def test_without_kernel_the_engine_runs_eager(monkeypatch):
    monkeypatch.setenv("SURNN_SPARSE_KERNEL", "off")
    monkeypatch.setattr(native, "_state", {})
    layer, x, state, mask = _case("rnn", "event", seed=8)
    engine = layer.sparse()
    assert engine.backend == "eager" and "SURNN_SPARSE_KERNEL=off" in native.load_error()
    with pytest.raises(RuntimeError, match="sparse kernel unavailable"):
        layer.sparse(backend="native")
    with torch.no_grad():
        want = layer(x, state, mask)[0]
    torch.testing.assert_close(engine(x, state, mask)[0], want, rtol=TOL, atol=TOL)
    assert math.isfinite(float(engine(x, state, mask)[0].sum()))


@pytest.mark.parametrize("cell,gate", [("gru", "rhythmic"), ("lstm", "event")])
def test_several_threads_give_the_one_thread_result_bit_for_bit(cell, gate):
    # Wide and dense enough that a step splits its neurons over threads; rows split too.
    layer, x, state, mask = _case(cell, gate, seed=9, B=3, T=20, I=96, H=160, init_update_rate=0.9)
    engine = layer.sparse(dense_fallback=False)
    single = [engine(x[:1], _row(state), None), engine(x, state, mask)]
    torch.set_num_threads(2)
    try:
        multi = [engine(x[:1], _row(state), None), engine(x, state, mask)]
    finally:
        torch.set_num_threads(1)
    for (y1, f1), (y2, f2) in zip(single, multi):
        assert torch.equal(y1, y2)
        assert all(torch.equal(a, b) for a, b in zip(_leaves(f1), _leaves(f2)))


def _row(state):
    return tuple(s[:1] for s in state) if isinstance(state, tuple) else state[:1]
