"""Mixed precision: every cell x gate under CPU autocast against the float32 reference.

CPU autocast applies the same dtype rules as CUDA autocast, so these run everywhere. The
input projection runs in the autocast dtype; the gate drives, the state and the recurrence
stay in float32. Tolerances (measured maxima on these shapes in brackets):

    autocast dtype   outputs, max abs error    gradients, max abs error / max |reference|
    bfloat16         1.5e-2  (6.0e-3)          3e-2  (9.4e-3)
    float16          3e-3    (6.5e-4)          6e-3  (1.5e-3)
"""
import itertools

import pytest
import torch

from surnn import SuRNN, scan_ref

CELLS = ("gru", "rnn", "lstm")
GATES = ("rhythmic", "event", "none")
TOL = {torch.bfloat16: (1.5e-2, 3e-2), torch.float16: (3e-3, 6e-3)}


def _leaves(state):
    return list(state) if isinstance(state, tuple) else [state]


def _outputs_and_grads(layer, x, state, mask, autocast_dtype=None):
    """y, final state, switches and every gradient; forward and backward inside autocast."""
    for p in layer.parameters():
        p.grad = None
    x = x.clone().requires_grad_(True)
    leaves = [s.clone().requires_grad_(True) for s in _leaves(state)]
    st = tuple(leaves) if len(leaves) == 2 else leaves[0]
    with torch.autocast("cpu", dtype=autocast_dtype or torch.bfloat16, enabled=autocast_dtype is not None):
        y, final, gates = (layer(x, st, mask) if autocast_dtype else scan_ref(layer, x, st, mask))
        w = torch.linspace(-1, 1, y.numel()).reshape(y.shape)
        loss = (y.float() * w).sum() + sum(f.float().square().sum() for f in _leaves(final)) + gates.float().sum()
        loss.backward()
    grads = [p.grad for p in layer.parameters()] + [x.grad] + [s.grad for s in leaves]
    return y, _leaves(final), gates, grads


@pytest.mark.parametrize("autocast_dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
@pytest.mark.parametrize("cell,gate", list(itertools.product(CELLS, GATES)))
def test_autocast_matches_float32_reference(cell, gate, autocast_dtype):
    torch.manual_seed(0)
    layer = SuRNN(6, 9, cell=cell, gate=gate, max_period=12.0)
    x = torch.randn(4, 23, 6)
    state = torch.randn(4, 9)
    state = (state, torch.randn(4, 9)) if cell == "lstm" else state
    mask = torch.ones(4, 23, dtype=torch.bool)
    mask[1, 15:] = False
    y, final, gates, grads = _outputs_and_grads(layer, x, state, mask, autocast_dtype)
    y_ref, final_ref, gates_ref, grads_ref = _outputs_and_grads(layer, x, state, mask)

    assert y.dtype == torch.float32 and all(f.dtype == torch.float32 for f in final), "state left float32"
    assert torch.equal(gates.float(), gates_ref), "a switch flipped under autocast"
    out_tol, grad_tol = TOL[autocast_dtype]
    torch.testing.assert_close(y, y_ref, rtol=0, atol=out_tol)
    for a, b in zip(final, final_ref):
        torch.testing.assert_close(a, b, rtol=0, atol=out_tol)
    for a, b in zip(grads, grads_ref):
        assert a is not None and a.dtype == b.dtype
        err = (a - b).abs().max() / b.abs().max().clamp_min(1e-6)
        assert err < grad_tol, f"gradient error {err:.2e} over {grad_tol:.0e}"
