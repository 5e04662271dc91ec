"""The Triton suGRU kernels against the float32 reference.

On CPU they run in Triton's interpreter (small shapes, float32: the interpreter's bfloat16
dot is not trustworthy); on CUDA the compiled kernels run at a realistic shape. Without
triton installed (the ``gpu`` extra) these skip.
"""
import importlib
import itertools
import sys

import pytest
import torch

pytest.importorskip("triton", reason="triton is not installed (the gpu extra)")

import surnn.cell as cell  # noqa: E402
import surnn.triton_scan as triton_scan  # noqa: E402
from surnn import SuRNN, scan_ref  # noqa: E402
from surnn.scan import SuGRUScan  # noqa: E402

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.fixture
def force_triton(monkeypatch):
    monkeypatch.setenv("SURNN_GRU_KERNEL", "triton")


def _run(layer, fn, x, state, mask):
    """Outputs, final state, switches and every gradient under a fixed random loss."""
    for p in layer.parameters():
        p.grad = None
    x = x.detach().clone().requires_grad_(True)
    h0 = state.detach().clone().requires_grad_(True)
    y, final, gates = fn(layer, x, h0, mask)
    w = torch.linspace(-1, 1, y.numel(), device=y.device).reshape(y.shape)
    ((y * w).sum() + final.square().sum() + (gates * w).sum()).backward()
    return y, final, gates, [p.grad for p in layer.parameters()] + [x.grad, h0.grad]


def _compare(layer, x, state, mask, tol):
    fast = _run(layer, lambda m, *a: m(*a), x, state, mask)
    ref = _run(layer, scan_ref, x, state, mask)
    assert torch.equal(fast[2].float(), ref[2]), "switches differ"
    torch.testing.assert_close(fast[0], ref[0], rtol=tol, atol=tol)
    torch.testing.assert_close(fast[1], ref[1], rtol=tol, atol=tol)
    for a, b in zip(fast[3], ref[3]):
        assert a is not None
        torch.testing.assert_close(a, b, rtol=10 * tol, atol=10 * tol)


def _mask(B, T, device="cpu"):
    mask = torch.ones(B, T, dtype=torch.bool, device=device)
    mask[1, T // 2:] = False
    mask[-1, 3:] = False
    return mask


@pytest.mark.parametrize("gate,masked,surrogate", [
    (g, m, s) for g, m in itertools.product(("rhythmic", "event", "none"), (False, True))
    for s in ("straight_through", "boxcar") if s == "boxcar" or g != "none"])
def test_interpreted_kernels_match_reference(force_triton, gate, masked, surrogate):
    torch.manual_seed(0)
    layer = SuRNN(6, 9, gate=gate, max_period=12.0, surrogate=surrogate, surrogate_width=1.5, init_update_rate=0.5)
    x, state = torch.randn(4, 17, 6), torch.randn(4, 9)
    assert cell.fused_gru_scan(x) is triton_scan.TritonSuGRUScan
    _compare(layer, x, state, _mask(4, 17) if masked else None, 2e-5)


def test_interpreted_kernels_match_reference_over_several_tiles(force_triton):
    # H = 80: two output tiles of 64 and three reduction tiles of 32; B = 20: two programs.
    torch.manual_seed(1)
    layer = SuRNN(5, 80, gate="event", surrogate="boxcar", init_update_rate=0.6)
    x, state = torch.randn(20, 6, 5), torch.randn(20, 80)
    _compare(layer, x, state, _mask(20, 6), 2e-5)


def test_interpreted_kernel_keeps_closed_state_bit_for_bit(force_triton):
    torch.manual_seed(2)
    layer = SuRNN(4, 16, gate="rhythmic", gate_threshold=50.0)
    h0 = torch.randn(2, 16, requires_grad=True)
    y, _, g = layer(torch.randn(2, 9, 4), h0)
    assert g.sum() == 0
    assert torch.equal(y, h0.detach()[:, None].expand_as(y))
    (grad,) = torch.autograd.grad(y[:, -1].sum(), h0)
    assert torch.equal(grad, torch.ones_like(h0))


def test_auto_choice_is_pytorch_on_cpu_and_the_switch_forces_it(monkeypatch):
    x = torch.randn(2, 3, 4)
    assert cell.fused_gru_scan(x) is SuGRUScan
    if torch.cuda.is_available():
        assert cell.fused_gru_scan(x.cuda()) is triton_scan.TritonSuGRUScan
        monkeypatch.setenv("SURNN_GRU_KERNEL", "torch")
        assert cell.fused_gru_scan(x.cuda()) is SuGRUScan


def test_without_triton_the_layer_falls_back_and_forcing_it_says_why(monkeypatch):
    monkeypatch.setitem(sys.modules, "triton", None)          # `import triton` now fails
    monkeypatch.setitem(sys.modules, "triton.language", None)
    try:
        importlib.reload(triton_scan)
        assert triton_scan.TritonSuGRUScan is None
        layer = SuRNN(3, 8)
        x = torch.randn(2, 5, 3)
        assert cell.fused_gru_scan(x) is SuGRUScan
        layer(x)[0].sum().backward()
        monkeypatch.setenv("SURNN_GRU_KERNEL", "triton")
        with pytest.raises(RuntimeError, match="SURNN_GRU_KERNEL=triton: triton is not installed"):
            layer(x)
    finally:
        monkeypatch.undo()
        importlib.reload(triton_scan)
    assert triton_scan.TritonSuGRUScan is not None


@cuda
@pytest.mark.parametrize("gate", ["rhythmic", "event", "none"])
def test_cuda_kernels_match_reference(gate, monkeypatch):
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)   # IEEE float32 products
    torch.manual_seed(3)
    layer = SuRNN(32, 256, gate=gate).cuda()
    x, state = torch.randn(50, 64, 32, device="cuda"), torch.randn(50, 256, device="cuda")
    assert cell.fused_gru_scan(x) is triton_scan.TritonSuGRUScan
    _compare(layer, x, state, _mask(50, 64, "cuda"), 1e-4)


@cuda
@pytest.mark.parametrize("gate", ["rhythmic", "event"])
def test_cuda_kernels_under_bf16_autocast_stay_near_reference(gate):
    torch.manual_seed(4)
    layer = SuRNN(32, 256, gate=gate).cuda()
    x, state = torch.randn(50, 64, 32, device="cuda"), torch.randn(50, 256, device="cuda")

    def amp(m, *a):
        with torch.autocast("cuda", dtype=torch.bfloat16):
            return m(*a)

    fast = _run(layer, amp, x, state, None)
    ref = _run(layer, scan_ref, x, state, None)
    assert fast[0].dtype == torch.float32
    assert torch.equal(fast[2].float(), ref[2])
    torch.testing.assert_close(fast[0], ref[0], rtol=0, atol=3e-2)
    for a, b in zip(fast[3], ref[3]):
        assert ((a - b).abs().max() / b.abs().max().clamp_min(1e-6)) < 5e-2
