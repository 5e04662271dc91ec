"""Models built from suRNN layers: a stacked backbone, and the heads the tasks need.

    SequenceClassifier  encoder -> N residual suRNN blocks -> norm -> masked pooling -> head
                        (pooling "none" gives one prediction per step)
    LanguageModel       embedding -> blocks -> norm -> tied output embedding
    DualEncoder         one shared backbone over two sequences -> [u, v, u*v, u-v] -> MLP

Every model returns a `ModelOutput` carrying the update rate (differentiable, for the
sparsity regulariser) next to its prediction.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from surnn.cell import SuRNN


class ModelOutput(NamedTuple):
    output: Tensor          # logits [B, C] / [B, T, C], or values [B]
    update_rate: Tensor     # scalar: open (neuron, step) pairs / all pairs over real steps
    layer_rates: Tensor     # [num_layers], the same per layer
    opened: Tensor          # scalar: count of open (neuron, step) pairs (for exact averages)


def update_rates(gates: list[Tensor], mask: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
    """(overall rate, per-layer rates, open count) of a stack's switches over real steps.

    gates: one [B, T, H] tensor of 0/1 per layer. Padded steps never open (the layer
    guarantees it), so only the denominator needs the mask.
    """
    B, T, H = gates[0].shape
    steps = mask.sum() if mask is not None else torch.tensor(B * T, device=gates[0].device)
    opened = torch.stack([g.float().sum() for g in gates])          # [L]
    layer_rates = opened / (steps.float() * H).clamp_min(1.0)
    return layer_rates.mean(), layer_rates, opened.sum()


class SuRNNBlock(nn.Module):
    """Pre-norm residual block: x + dropout(SuRNN(LayerNorm(x)))."""

    def __init__(self, width: int, dropout: float, layer_settings: dict):
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.rnn = SuRNN(width, width, **layer_settings)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, mask: Tensor | None, state=None, time_offset: int = 0):
        y, state, gates = self.rnn(self.norm(x), state, mask, time_offset)
        return x + self.drop(y), state, gates


class Backbone(nn.Module):
    """Input encoder and a stack of suRNN blocks. Tokens use id 0 as padding."""

    def __init__(self, width: int, num_layers: int, dropout: float, layer_settings: dict,
                 vocab_size: int = 0, input_dim: int = 0):
        super().__init__()
        if (vocab_size > 0) == (input_dim > 0):
            raise ValueError("Backbone: give exactly one of vocab_size (tokens) or input_dim (features)")
        self.tokens = vocab_size > 0
        self.encoder = nn.Embedding(vocab_size, width, padding_idx=0) if self.tokens else nn.Linear(input_dim, width)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(SuRNNBlock(width, dropout, layer_settings) for _ in range(num_layers))
        self.norm = nn.LayerNorm(width)

    def forward(self, inputs: Tensor, mask: Tensor | None, states=None, time_offset: int = 0):
        """inputs: int [B, T] or float [B, T, D] -> (features [B, T, W], gates per layer, states)."""
        if self.tokens and (inputs.dim() != 2 or inputs.is_floating_point()):
            raise ValueError(f"Backbone inputs: expected token ids [batch, time], got {inputs.dtype} {list(inputs.shape)}")
        x = self.drop(self.encoder(inputs))
        gates, new_states = [], []
        for i, block in enumerate(self.blocks):
            x, state, g = block(x, mask, None if states is None else states[i], time_offset)
            gates.append(g)
            new_states.append(state)
        return self.norm(x), gates, new_states


def pool(x: Tensor, mask: Tensor | None, how: str) -> Tensor:
    """[B, T, W] -> [B, W] by the mean over real steps or the last real step; "none" keeps T."""
    if how == "none":
        return x
    if mask is None:
        return x.mean(1) if how == "mean" else x[:, -1]
    if how == "mean":
        m = mask[:, :, None].to(x.dtype)
        return (x * m).sum(1) / m.sum(1).clamp_min(1.0)
    last = (mask.sum(1) - 1).clamp_min(0)                            # [B]
    return x[torch.arange(x.shape[0], device=x.device), last]


class SequenceClassifier(nn.Module):
    """Classes (or a value, with num_outputs 1 and regression) per sequence or per step."""

    def __init__(self, width: int, num_layers: int, num_outputs: int, *, pooling: str = "mean",
                 dropout: float = 0.0, layer_settings: dict | None = None, vocab_size: int = 0,
                 input_dim: int = 0):
        super().__init__()
        if pooling not in ("mean", "last", "none"):
            raise ValueError(f"pooling: unknown value {pooling!r} (expected one of: mean, last, none)")
        self.pooling = pooling
        self.backbone = Backbone(width, num_layers, dropout, layer_settings or {}, vocab_size, input_dim)
        self.head = nn.Linear(width, num_outputs)

    def forward(self, inputs: Tensor, mask: Tensor | None = None) -> ModelOutput:
        x, gates, _ = self.backbone(inputs, mask)
        out = self.head(pool(x, mask, self.pooling))
        return ModelOutput(out.squeeze(-1) if out.shape[-1] == 1 else out, *update_rates(gates, mask))


class LanguageModel(nn.Module):
    """Next-token logits; the output layer shares the input embedding's weights."""

    def __init__(self, vocab_size: int, width: int, num_layers: int, *, dropout: float = 0.0,
                 layer_settings: dict | None = None):
        super().__init__()
        self.backbone = Backbone(width, num_layers, dropout, layer_settings or {}, vocab_size=vocab_size)
        # The table is also the output layer: unit-variance rows would give logits of standard
        # deviation sqrt(width) against normalised features, a near-one-hot start.
        with torch.no_grad():
            self.backbone.encoder.weight.normal_(0.0, width ** -0.5)
            self.backbone.encoder.weight[0].zero_()

    def forward(self, inputs: Tensor, mask: Tensor | None = None, states=None, time_offset: int = 0):
        """Returns (ModelOutput with logits [B, T, V], states to continue from at time_offset + T)."""
        x, gates, states = self.backbone(inputs, mask, states, time_offset)
        logits = x @ self.backbone.encoder.weight.t()
        return ModelOutput(logits, *update_rates(gates, mask)), states


class DualEncoder(nn.Module):
    """Two sequences through one backbone, then an MLP on [u, v, u*v, u-v] (LRA retrieval)."""

    def __init__(self, vocab_size: int, width: int, num_layers: int, num_classes: int = 2, *,
                 dropout: float = 0.0, layer_settings: dict | None = None):
        super().__init__()
        self.backbone = Backbone(width, num_layers, dropout, layer_settings or {}, vocab_size=vocab_size)
        self.head = nn.Sequential(nn.Linear(4 * width, width), nn.GELU(), nn.Linear(width, num_classes))

    def forward(self, inputs: Tensor, mask: Tensor | None, inputs_b: Tensor, mask_b: Tensor | None) -> ModelOutput:
        xa, gates_a, _ = self.backbone(inputs, mask)
        xb, gates_b, _ = self.backbone(inputs_b, mask_b)
        u, v = pool(xa, mask, "mean"), pool(xb, mask_b, "mean")
        logits = self.head(torch.cat([u, v, u * v, u - v], -1))
        _, rates_a, open_a = update_rates(gates_a, mask)
        _, rates_b, open_b = update_rates(gates_b, mask_b)
        steps_a = mask.sum() if mask is not None else inputs.numel()
        steps_b = mask_b.sum() if mask_b is not None else inputs_b.numel()
        # Both documents' switches over both documents' real steps.
        layer_rates = (rates_a * steps_a + rates_b * steps_b) / (steps_a + steps_b)
        return ModelOutput(logits, layer_rates.mean(), layer_rates, open_a + open_b)
