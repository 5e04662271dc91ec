import pytest
import torch

from surnn.model import LanguageModel, SequenceClassifier
from surnn.sparse.models import SparseLanguageModel, SparseSequenceClassifier

TOL = 1e-5


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _tokens(B=3, T=30, vocab=11):
    torch.manual_seed(0)
    x = torch.randint(1, vocab, (B, T))
    mask = torch.ones(B, T, dtype=torch.bool)
    mask[B - 1, 20:] = False
    return x, mask


@pytest.mark.parametrize("cell,gate,pooling", [("gru", "rhythmic", "mean"), ("lstm", "event", "last"),
                                               ("rnn", "none", "none")])
def test_sparse_classifier_equals_the_model(cell, gate, pooling):
    x, mask = _tokens()
    torch.manual_seed(1)
    model = SequenceClassifier(16, 2, 5, pooling=pooling, vocab_size=11,
                               layer_settings=dict(cell=cell, gate=gate, max_period=16.0)).eval()
    with torch.no_grad():
        want = model(x, mask)
    got = SparseSequenceClassifier(model, dense_fallback=False)(x, mask)
    torch.testing.assert_close(got.output, want.output, rtol=TOL, atol=TOL)
    torch.testing.assert_close(got.layer_rates, want.layer_rates)
    assert got.opened == want.opened and 0 < float(got.update_rate) <= 1


@pytest.mark.parametrize("gate", ["rhythmic", "event"])
def test_sparse_language_model_streams_token_by_token(gate):
    x, _ = _tokens(B=1)
    torch.manual_seed(2)
    model = LanguageModel(11, 16, 2, layer_settings=dict(gate=gate, max_period=16.0)).eval()
    with torch.no_grad():
        want, states = model(x, None, None, 3)
    engine = SparseLanguageModel(model)
    got, got_states = engine(x, None, None, 3)
    torch.testing.assert_close(got.output, want.output, rtol=TOL, atol=TOL)
    s = None
    for t in range(x.shape[1]):
        logits, s = engine.step(x[:, t], s, 3 + t)
        torch.testing.assert_close(logits, want.output[:, t], rtol=TOL, atol=TOL)
    for a, b in zip(s, states):
        torch.testing.assert_close(a, b, rtol=TOL, atol=TOL)


def test_model_engine_is_frozen_and_keeps_the_models_input_checks():
    x, mask = _tokens()
    model = SequenceClassifier(16, 1, 5, vocab_size=11).eval()
    engine = SparseSequenceClassifier(model)
    before = engine(x, mask).output
    with torch.no_grad():
        model.head.weight.add_(1.0)
        model.backbone.blocks[0].rnn.weight_hh.mul_(3.0)
    assert torch.equal(engine(x, mask).output, before)
    with pytest.raises(ValueError, match="expected token ids"):
        engine(torch.randn(3, 30, 4), mask)
