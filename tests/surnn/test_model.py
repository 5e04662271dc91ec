import pytest
import torch

from surnn.model import DualEncoder, LanguageModel, SequenceClassifier, pool

LAYER = {"max_period": 16.0, "init_update_rate": 0.5}


def test_classifier_ignores_padding():
    torch.manual_seed(0)
    model = SequenceClassifier(16, 2, 5, vocab_size=12, layer_settings=LAYER).eval()
    ids = torch.randint(1, 12, (1, 9))
    padded = torch.cat([ids, torch.zeros(1, 4, dtype=torch.long)], 1)
    mask = padded != 0
    alone, with_pad = model(ids, torch.ones_like(ids, dtype=torch.bool)), model(padded, mask)
    torch.testing.assert_close(alone.output, with_pad.output)
    torch.testing.assert_close(alone.update_rate, with_pad.update_rate)


def test_update_rate_is_the_open_fraction_of_every_layer():
    torch.manual_seed(1)
    model = SequenceClassifier(8, 3, 2, input_dim=3, pooling="last", layer_settings=LAYER)
    x = torch.randn(4, 20, 3)
    mask = torch.ones(4, 20, dtype=torch.bool)
    mask[2, 11:] = False
    out = model(x, mask)
    assert out.layer_rates.shape == (3,)
    gates, h = [], model.backbone.drop(model.backbone.encoder(x))
    for block in model.backbone.blocks:
        h, _, g = block(h, mask)
        gates.append(g)
    expected = torch.stack([g.sum() / (mask.sum() * 8) for g in gates])
    torch.testing.assert_close(out.layer_rates, expected)
    torch.testing.assert_close(out.update_rate, expected.mean())
    assert 0.2 < out.update_rate < 0.8
    out.update_rate.backward()   # differentiable through the surrogate: the regulariser can act
    assert model.backbone.blocks[0].rnn.gate.bias.grad.abs().sum() > 0


def test_last_pooling_reads_the_last_real_step():
    x = torch.arange(2 * 5 * 1, dtype=torch.float32).reshape(2, 5, 1)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    assert pool(x, mask, "last").flatten().tolist() == [2.0, 9.0]
    assert pool(x, mask, "mean").flatten().tolist() == [1.0, 7.0]


def test_per_step_classifier_and_regression_shapes():
    tagger = SequenceClassifier(8, 1, 6, pooling="none", vocab_size=10, layer_settings=LAYER)
    assert tagger(torch.randint(1, 10, (3, 7))).output.shape == (3, 7, 6)
    regressor = SequenceClassifier(8, 1, 1, pooling="last", input_dim=2, layer_settings=LAYER)
    assert regressor(torch.randn(3, 7, 2)).output.shape == (3,)


def test_language_model_ties_weights_and_continues_in_chunks():
    torch.manual_seed(2)
    lm = LanguageModel(20, 12, 2, layer_settings=LAYER).eval()
    assert sum(p.numel() for p in lm.parameters() if p.shape == (20, 12)) == 20 * 12   # one table
    ids = torch.randint(1, 20, (2, 18))
    whole = lm(ids)
    first = lm(ids[:, :10])
    second = lm(ids[:, 10:], states=first.states, time_offset=10)
    torch.testing.assert_close(torch.cat([first.output, second.output], 1), whole.output)
    with torch.no_grad():
        lm.backbone.encoder.weight[5] += torch.randn(12)   # (a constant shift is erased by the norm)
    assert not torch.allclose(lm(ids).output[..., 5], whole.output[..., 5])


def test_dual_encoder_shares_the_backbone_and_counts_both_documents():
    torch.manual_seed(3)
    model = DualEncoder(30, 8, 1, layer_settings=LAYER)
    a, b = torch.randint(1, 30, (4, 11)), torch.randint(1, 30, (4, 6))
    out = model(a, a != 0, b, b != 0)
    assert out.output.shape == (4, 2)
    ga = model.backbone(a, a != 0)[1][0]
    gb = model.backbone(b, b != 0)[1][0]
    expected = (ga.sum() + gb.sum()) / ((a.numel() + b.numel()) * 8)
    torch.testing.assert_close(out.update_rate, expected)
    swapped = model(b, b != 0, a, a != 0)
    assert not torch.allclose(swapped.output, out.output)   # [u, v, u*v, u-v] is ordered


def test_token_backbone_rejects_float_inputs():
    model = SequenceClassifier(8, 1, 2, vocab_size=10)
    with pytest.raises(ValueError, match="token ids"):
        model(torch.randn(2, 5))
