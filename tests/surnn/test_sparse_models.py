import pytest
import torch

from surnn.data.base import Batch
from surnn.model import DualEncoder, LanguageModel, SequenceClassifier

TOL = 1e-5


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _tokens(B=3, T=30, vocab=11, seed=0):
    torch.manual_seed(seed)
    x = torch.randint(1, vocab, (B, T))
    mask = torch.ones(B, T, dtype=torch.bool)
    mask[B - 1, 20:] = False
    return x, mask


def _same(got, want):
    torch.testing.assert_close(got.output, want.output, rtol=TOL, atol=TOL)
    torch.testing.assert_close(got.layer_rates, want.layer_rates)
    assert got.opened == want.opened and got.steps == want.steps
    for a, b in ((got.loss, want.loss), (got.metric_sum, want.metric_sum), (got.metric_count, want.metric_count)):
        assert (a is None) == (b is None)
        if a is not None:
            torch.testing.assert_close(a.float(), b.float(), rtol=TOL, atol=TOL)


@pytest.mark.parametrize("cell,gate,pooling", [("gru", "rhythmic", "mean"), ("lstm", "event", "last"),
                                               ("rnn", "none", "none")])
def test_sparse_classifier_equals_the_model_with_loss_and_metric(cell, gate, pooling):
    x, mask = _tokens()
    torch.manual_seed(1)
    model = SequenceClassifier(16, 2, 5, pooling=pooling, vocab_size=11,
                               layer_settings=dict(cell=cell, gate=gate, max_period=16.0)).eval()
    targets = torch.randint(0, 5, (3, 30) if pooling == "none" else (3,))
    engine = model.sparse(dense_fallback=False)
    with torch.no_grad():
        _same(engine(x, mask), model(x, mask))
        _same(engine(x, mask, targets), model(x, mask, targets))
        batch = Batch(x, mask, targets)
        _same(engine.forward_batch(batch), model.forward_batch(batch))
    assert 0 < float(engine(x, mask).update_rate) <= 1


@pytest.mark.parametrize("gate", ["rhythmic", "event"])
def test_sparse_language_model_streams_token_by_token(gate):
    x, _ = _tokens(B=1)
    torch.manual_seed(2)
    model = LanguageModel(11, 16, 2, layer_settings=dict(gate=gate, max_period=16.0)).eval()
    with torch.no_grad():
        want = model(x, None, None, None, 3)
    engine = model.sparse()
    _same(engine(x, None, None, None, 3), want)
    s = None
    for t in range(x.shape[1]):
        logits, s = engine.step(x[:, t], s, 3 + t)
        torch.testing.assert_close(logits, want.output[:, t], rtol=TOL, atol=TOL)
    for a, b in zip(s, want.states):
        torch.testing.assert_close(a, b, rtol=TOL, atol=TOL)
    row = torch.cat([x, x[:, :5]], 1)
    batch = Batch(row, torch.ones_like(row, dtype=torch.bool), None)
    with torch.no_grad():
        _same(engine.forward_batch(batch), model.forward_batch(batch))


def test_sparse_dual_encoder_equals_the_model():
    x, mask = _tokens()
    xb, mask_b = _tokens(T=25, seed=3)
    torch.manual_seed(4)
    model = DualEncoder(11, 16, 1, layer_settings=dict(max_period=16.0)).eval()
    targets = torch.tensor([0, 1, 1])
    with torch.no_grad():
        want = model(x, mask, xb, mask_b, targets)
    _same(model.sparse(dense_fallback=False)(x, mask, xb, mask_b, targets), want)


def test_model_engine_is_frozen_and_keeps_the_models_input_checks():
    x, mask = _tokens()
    model = SequenceClassifier(16, 1, 5, vocab_size=11).eval()
    engine = model.sparse()
    before = engine(x, mask).output
    with torch.no_grad():
        model.head.weight.add_(1.0)
        model.backbone.blocks[0].rnn.weight_hh.mul_(3.0)
    assert torch.equal(engine(x, mask).output, before)
    with pytest.raises(ValueError, match="expected token ids"):
        engine(torch.randn(3, 30, 4), mask)
