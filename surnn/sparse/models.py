"""Sparse inference for whole models: every suRNN block through its `SparseSuRNN` engine.

    engine = model.sparse()            # SequenceClassifier, LanguageModel or DualEncoder
    out = engine(inputs, mask)         # the model's own call and ModelOutput; forward_batch too
    logits, states = engine.step(tokens, states, t)     # LanguageModel: one token per row

The encoder, the norms, pooling, heads and losses are the model's own code (`score`), run on
a frozen CPU copy; only the recurrences are sparse. Later training does not reach an engine
already built.
"""
from __future__ import annotations

import copy

import torch
from torch import Tensor

from surnn.model import DualEncoder, LanguageModel, ModelOutput, SequenceClassifier, TaskModel, rates_from_counts


class SparseModel:
    """The common part: a frozen copy of the model and one engine per suRNN block."""

    def __init__(self, model: TaskModel, **options):
        self.model = copy.deepcopy(model).float().cpu().eval().requires_grad_(False)
        self.backbone = self.model.backbone
        self.layers = [block.rnn.sparse(**options) for block in self.backbone.blocks]

    @property
    def backend(self) -> str:
        """The layers' backend (``native`` or ``eager``)."""
        return self.layers[0].backend

    def forward_batch(self, batch) -> ModelOutput:
        """As the model's `forward_batch` (which only calls the model, here this engine)."""
        return type(self.model).forward_batch(self, batch)

    def metric_value(self, metric_sum: float, metric_count: int) -> float:
        return self.model.metric_value(metric_sum, metric_count)

    def features(self, inputs: Tensor, mask: Tensor | None, states=None, time_offset: int = 0):
        """(features [B, T, W], the `update_rates` tuple, new states), as the model's backbone."""
        bb = self.backbone
        if bb.tokens and (inputs.dim() != 2 or inputs.is_floating_point()):
            raise ValueError(f"Backbone inputs: expected token ids [batch, time], got {inputs.dtype} {list(inputs.shape)}")
        x = bb.encoder(inputs)
        opened, new_states = [], []
        for i, (block, engine) in enumerate(zip(bb.blocks, self.layers)):
            y, state, _, n = engine.run(block.norm(x), None if states is None else states[i], mask, time_offset)
            x = x + y                                  # the block's residual (dropout is off in eval)
            opened.append(float(n))
            new_states.append(state)
        B, T = x.shape[:2]
        steps = mask.sum() if mask is not None else torch.tensor(B * T)
        rates = rates_from_counts(torch.tensor(opened), steps, x.shape[-1])
        return bb.norm(x), rates, new_states

    def step_features(self, inputs_t: Tensor, states, t: int):
        """One step: inputs_t [B] token ids or [B, D] features -> (features [B, W], new states)."""
        bb = self.backbone
        x = bb.encoder(inputs_t)
        new_states = []
        for i, (block, engine) in enumerate(zip(bb.blocks, self.layers)):
            state = engine.step(block.norm(x), None if states is None else states[i], t)
            x = x + (state[0] if isinstance(state, tuple) else state)
            new_states.append(state)
        return bb.norm(x), new_states


class SparseSequenceClassifier(SparseModel):
    """`SequenceClassifier` for inference: ``engine(inputs, mask=None, targets=None) -> ModelOutput``."""

    @torch.no_grad()
    def __call__(self, inputs: Tensor, mask: Tensor | None = None, targets: Tensor | None = None) -> ModelOutput:
        x, rates, _ = self.features(inputs, mask)
        return self.model.score(x, mask, rates, targets)


class SparseLanguageModel(SparseModel):
    """`LanguageModel` for inference: the model's call, and `step` for token-by-token generation."""

    @torch.no_grad()
    def __call__(self, inputs: Tensor, mask: Tensor | None = None, targets: Tensor | None = None,
                 states=None, time_offset: int = 0) -> ModelOutput:
        """Logits [B, T, V]; `.states` continue the sequence at time_offset + T."""
        x, rates, states = self.features(inputs, mask, states, time_offset)
        return self.model.score(x, rates, targets, states)

    @torch.no_grad()
    def step(self, tokens: Tensor, states, t: int) -> tuple[Tensor, list]:
        """One token per row: tokens int [B] at step t (None states: zeros) -> (logits [B, V], new states)."""
        x, states = self.step_features(tokens, states, t)
        return x @ self.backbone.encoder.weight.t(), states


class SparseDualEncoder(SparseModel):
    """`DualEncoder` for inference: ``engine(inputs, mask, inputs_b, mask_b, targets=None)``."""

    @torch.no_grad()
    def __call__(self, inputs: Tensor, mask: Tensor | None, inputs_b: Tensor, mask_b: Tensor | None,
                 targets: Tensor | None = None) -> ModelOutput:
        xa, rates_a, _ = self.features(inputs, mask)
        xb, rates_b, _ = self.features(inputs_b, mask_b)
        return self.model.score(xa, mask, rates_a, xb, mask_b, rates_b, targets)


_ENGINES = {SequenceClassifier: SparseSequenceClassifier, LanguageModel: SparseLanguageModel,
            DualEncoder: SparseDualEncoder}


def sparse_model(model: TaskModel, **options) -> SparseModel:
    """The sparse engine of `model` (what `model.sparse()` returns)."""
    for kind, engine in _ENGINES.items():
        if isinstance(model, kind):
            return engine(model, **options)
    raise TypeError(f"no sparse engine for {type(model).__name__} (expected one of: "
                    f"{', '.join(k.__name__ for k in _ENGINES)})")
