"""Models built from suRNN layers: a stacked backbone, and the heads the tasks need.

    SequenceClassifier  encoder -> N residual suRNN blocks -> norm -> masked pooling -> head
                        (pooling "none" gives one prediction per step)
    LanguageModel       embedding -> blocks -> norm -> tied output embedding
    DualEncoder         one shared backbone over two sequences -> [u, v, u*v, u-v] -> MLP

Every model returns a `ModelOutput` carrying the update rate (differentiable, for the
sparsity regulariser) next to its prediction and, given targets, its own loss and metric
terms (as nanoGPT's ``GPT.forward(idx, targets) -> (logits, loss)``). `forward_batch` feeds a
task's batch; `build_model` picks the model for a task.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from surnn.cell import SuRNN
from surnn.data.base import IGNORE_INDEX, Batch, TaskInfo


class ModelOutput(NamedTuple):
    """What every model's forward returns.

    The task's loss and metric terms are there when the forward was given targets, so the
    trainer needs to know nothing of the task's kind.
    """

    output: Tensor                      # logits [B, C] / [B, T, C], or values [B]
    update_rate: Tensor                 # scalar: open (neuron, step) pairs / all pairs over real steps
    layer_rates: Tensor                 # [num_layers], the same per layer
    opened: Tensor                      # scalar: count of open (neuron, step) pairs (for exact averages)
    steps: Tensor                       # scalar: real steps fed (both documents for a pair)
    loss: Tensor | None = None          # mean task loss over the batch (given targets)
    metric_sum: Tensor | None = None    # sum of the quality metric's terms (given targets)
    metric_count: Tensor | None = None  # number of those terms
    states: list | None = None          # LanguageModel: per-layer states to continue from


def update_rates(gates: list[Tensor], mask: Tensor | None) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(overall rate, per-layer rates, open count, real steps) of a stack's switches.

    gates: one [B, T, H] tensor of 0/1 per layer. Padded steps never open (the layer
    guarantees it), so only the denominator needs the mask.
    """
    B, T, H = gates[0].shape
    steps = mask.sum() if mask is not None else torch.tensor(B * T, device=gates[0].device)
    return rates_from_counts(torch.stack([g.float().sum() for g in gates]), steps, H)


def rates_from_counts(opened: Tensor, steps: Tensor, width: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """`update_rates` from each layer's open (neuron, step) count [L] and the real steps."""
    layer_rates = opened / (steps.float() * width).clamp_min(1.0)
    return layer_rates.mean(), layer_rates, opened.sum(), steps


def _cross_entropy_terms(logits: Tensor, targets: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(mean loss, summed NLL, correct answers, counted targets); IGNORE_INDEX targets do not count."""
    logits, targets = logits.float().flatten(0, -2), targets.flatten()
    nll = F.cross_entropy(logits, targets, ignore_index=IGNORE_INDEX, reduction="sum")
    valid = targets != IGNORE_INDEX
    count = valid.sum()
    correct = ((logits.argmax(-1) == targets) & valid).sum()
    return nll / count.clamp_min(1), nll.detach(), correct, count


class TaskModel(nn.Module):
    """A model that scores itself: `forward_batch` maps a task's batch to a `ModelOutput`."""

    def forward_batch(self, batch: Batch) -> ModelOutput:
        """The forward of one batch of tensors (a `Batch` moved to torch), targets included."""
        raise NotImplementedError

    def metric_value(self, metric_sum: float, metric_count: int) -> float:
        """The quality metric from its summed terms over a split (the mean, unless overridden)."""
        return metric_sum / max(metric_count, 1)

    def sparse(self, **options):
        """A frozen CPU inference copy whose suRNN layers compute only their open neurons.

        Same call as the model (and `forward_batch`); see `surnn.sparse.models`. Options go
        to every layer's `surnn.sparse.SparseSuRNN` (``backend``, ``dense_fallback``).
        """
        from surnn.sparse.models import sparse_model    # lazy: surnn.sparse imports this module

        return sparse_model(self, **options)


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


class SequenceClassifier(TaskModel):
    """Classes per sequence or per step; or one value per sequence (`objective="regression"`).

    With targets, the loss is cross-entropy (IGNORE_INDEX steps skipped) and the metric the
    count of correct answers; for regression the loss is the MSE and the metric its squared errors.
    """

    def __init__(self, width: int, num_layers: int, num_outputs: int, *, pooling: str = "mean",
                 dropout: float = 0.0, layer_settings: dict | None = None, vocab_size: int = 0,
                 input_dim: int = 0, objective: str = "classification"):
        super().__init__()
        if pooling not in ("mean", "last", "none"):
            raise ValueError(f"pooling: unknown value {pooling!r} (expected one of: mean, last, none)")
        if objective not in ("classification", "regression"):
            raise ValueError(f"objective: unknown value {objective!r} (expected one of: classification, regression)")
        self.pooling, self.objective = pooling, objective
        self.backbone = Backbone(width, num_layers, dropout, layer_settings or {}, vocab_size, input_dim)
        self.head = nn.Linear(width, num_outputs)

    def forward(self, inputs: Tensor, mask: Tensor | None = None, targets: Tensor | None = None) -> ModelOutput:
        x, gates, _ = self.backbone(inputs, mask)
        return self.score(x, mask, update_rates(gates, mask), targets)

    def score(self, features: Tensor, mask: Tensor | None, rates: tuple, targets: Tensor | None = None) -> ModelOutput:
        """The head on the backbone's features [B, T, W], and the loss and metric terms given targets."""
        out = self.head(pool(features, mask, self.pooling))
        out = out.squeeze(-1) if out.shape[-1] == 1 else out
        if targets is None:
            return ModelOutput(out, *rates)
        if self.objective == "regression":
            err = (out.float() - targets.float()) ** 2
            return ModelOutput(out, *rates, err.mean(), err.detach().sum(), torch.tensor(targets.numel()))
        loss, _, correct, count = _cross_entropy_terms(out, targets)
        return ModelOutput(out, *rates, loss, correct, count)

    def forward_batch(self, batch: Batch) -> ModelOutput:
        return self(batch.inputs, batch.mask, batch.targets)


class LanguageModel(TaskModel):
    """Next-token logits; the output layer shares the input embedding's weights.

    A batch row holds its own inputs ``[:-1]`` and next-token targets ``[1:]``; the metric
    terms are token NLLs, and `metric_value` turns their mean into perplexity.
    """

    def __init__(self, vocab_size: int, width: int, num_layers: int, *, dropout: float = 0.0,
                 layer_settings: dict | None = None):
        super().__init__()
        self.backbone = Backbone(width, num_layers, dropout, layer_settings or {}, vocab_size=vocab_size)
        # The table is also the output layer: unit-variance rows would give logits of standard
        # deviation sqrt(width) against normalised features, a near-one-hot start.
        with torch.no_grad():
            self.backbone.encoder.weight.normal_(0.0, width ** -0.5)
            self.backbone.encoder.weight[0].zero_()

    def forward(self, inputs: Tensor, mask: Tensor | None = None, targets: Tensor | None = None,
                states=None, time_offset: int = 0) -> ModelOutput:
        """Logits [B, T, V]; `.states` continue the sequence at time_offset + T."""
        x, gates, states = self.backbone(inputs, mask, states, time_offset)
        return self.score(x, update_rates(gates, mask), targets, states)

    def score(self, features: Tensor, rates: tuple, targets: Tensor | None = None, states=None) -> ModelOutput:
        """Logits from the backbone's features [B, T, W], and the loss and metric terms given targets."""
        logits = features @ self.backbone.encoder.weight.t()
        if targets is None:
            return ModelOutput(logits, *rates, states=states)
        loss, nll, _, count = _cross_entropy_terms(logits, targets)
        return ModelOutput(logits, *rates, loss, nll, count, states=states)

    def forward_batch(self, batch: Batch) -> ModelOutput:
        row, mask = batch.inputs, batch.mask
        targets = row[:, 1:].masked_fill(~mask[:, 1:], IGNORE_INDEX)
        return self(row[:, :-1], mask[:, :-1], targets)

    def metric_value(self, metric_sum: float, metric_count: int) -> float:
        return math.exp(min(metric_sum / max(metric_count, 1), 50.0))


class DualEncoder(TaskModel):
    """Two sequences through one backbone, then an MLP on [u, v, u*v, u-v] (LRA retrieval)."""

    def __init__(self, vocab_size: int, width: int, num_layers: int, num_classes: int = 2, *,
                 dropout: float = 0.0, layer_settings: dict | None = None):
        super().__init__()
        self.backbone = Backbone(width, num_layers, dropout, layer_settings or {}, vocab_size=vocab_size)
        self.head = nn.Sequential(nn.Linear(4 * width, width), nn.GELU(), nn.Linear(width, num_classes))

    def forward(self, inputs: Tensor, mask: Tensor | None, inputs_b: Tensor, mask_b: Tensor | None,
                targets: Tensor | None = None) -> ModelOutput:
        xa, gates_a, _ = self.backbone(inputs, mask)
        xb, gates_b, _ = self.backbone(inputs_b, mask_b)
        return self.score(xa, mask, update_rates(gates_a, mask), xb, mask_b, update_rates(gates_b, mask_b), targets)

    def score(self, xa: Tensor, mask: Tensor | None, rates_a: tuple, xb: Tensor, mask_b: Tensor | None,
              rates_b: tuple, targets: Tensor | None = None) -> ModelOutput:
        """The head on both documents' features (and `update_rates` of each), loss and metric given targets."""
        u, v = pool(xa, mask, "mean"), pool(xb, mask_b, "mean")
        logits = self.head(torch.cat([u, v, u * v, u - v], -1))
        _, rates_a, open_a, steps_a = rates_a
        _, rates_b, open_b, steps_b = rates_b
        steps = steps_a + steps_b
        # Both documents' switches over both documents' real steps.
        layer_rates = (rates_a * steps_a + rates_b * steps_b) / steps.clamp_min(1)
        rates = (layer_rates.mean(), layer_rates, open_a + open_b, steps)
        if targets is None:
            return ModelOutput(logits, *rates)
        loss, _, correct, count = _cross_entropy_terms(logits, targets)
        return ModelOutput(logits, *rates, loss, correct, count)

    def forward_batch(self, batch: Batch) -> ModelOutput:
        return self(batch.inputs, batch.mask, batch.inputs_b, batch.mask_b, batch.targets)


def build_model(info: TaskInfo, width: int, num_layers: int, *, dropout: float = 0.0,
                layer_settings: dict | None = None) -> TaskModel:
    """The model a task calls for: the one place that maps a task's kind to a model."""
    common = {"dropout": dropout, "layer_settings": layer_settings}
    if info.pair:
        return DualEncoder(info.vocab_size, width, num_layers, info.num_classes, **common)
    if info.kind == "lm":
        return LanguageModel(info.vocab_size, width, num_layers, **common)
    regression = info.kind == "regression"
    return SequenceClassifier(width, num_layers, 1 if regression else info.num_classes, pooling=info.pooling,
                              vocab_size=info.vocab_size, input_dim=info.input_dim,
                              objective="regression" if regression else "classification", **common)
