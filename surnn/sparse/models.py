"""Sparse inference for whole models: every suRNN block through its `SparseSuRNN` engine.

The encoder, the norms, pooling and heads are the model's own modules (dense: they cost one
matrix-vector product per step or less); only the recurrences are sparse. Each engine keeps a
frozen copy, so later training does not reach an engine already built.
"""
from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from surnn.model import LanguageModel, ModelOutput, SequenceClassifier, pool
from surnn.sparse.engine import SparseSuRNN


class _SparseBackbone:
    """A model's `Backbone` with each block's recurrence replaced by its sparse engine."""

    def __init__(self, model: nn.Module, options: dict):
        self.model = copy.deepcopy(model).float().cpu().eval().requires_grad_(False)
        self.backbone = self.model.backbone
        self.layers = [block.rnn.sparse(**options) for block in self.backbone.blocks]

    @property
    def backend(self) -> str:
        return self.layers[0].backend if self.layers else "dense"

    def features(self, inputs: Tensor, mask: Tensor | None, states=None, time_offset: int = 0):
        """(features [B, T, W], open counts per layer, new states), as `Backbone.forward`."""
        bb = self.backbone
        if bb.tokens and (inputs.dim() != 2 or inputs.is_floating_point()):
            raise ValueError(f"Backbone inputs: expected token ids [batch, time], got {inputs.dtype} {list(inputs.shape)}")
        x = bb.encoder(inputs)
        opened, new_states = [], []
        for i, (block, engine) in enumerate(zip(bb.blocks, self.layers)):
            y, state, _, n = engine.run(block.norm(x), None if states is None else states[i], mask, time_offset)
            x = x + y                                  # the block's residual (dropout is off in eval)
            opened.append(n)
            new_states.append(state)
        return bb.norm(x), opened, new_states

    def step_features(self, inputs_t: Tensor, states, t: int):
        """One step: inputs_t [B] token ids or [B, D] features -> (features [B, W], new states)."""
        bb = self.backbone
        x = bb.encoder(inputs_t)
        new_states = []
        for i, (block, engine) in enumerate(zip(bb.blocks, self.layers)):
            h = engine.step(block.norm(x), None if states is None else states[i], t)
            x = x + (h[0] if isinstance(h, tuple) else h)
            new_states.append(h)
        return bb.norm(x), new_states


def _rates(opened: list[int], mask: Tensor | None, B: int, T: int, H: int) -> tuple[Tensor, Tensor, Tensor]:
    """(update rate, per-layer rates, open count) as `surnn.model.update_rates` computes them."""
    steps = float(mask.sum()) if mask is not None else float(B * T)
    counts = torch.tensor(opened, dtype=torch.float32)
    layer_rates = counts / max(steps * H, 1.0)
    return layer_rates.mean(), layer_rates, counts.sum()


class SparseSequenceClassifier(_SparseBackbone):
    """`SequenceClassifier` for inference: ``engine(inputs, mask=None) -> ModelOutput``, as the model."""

    def __init__(self, model: SequenceClassifier, **options):
        super().__init__(model, options)

    @torch.no_grad()
    def __call__(self, inputs: Tensor, mask: Tensor | None = None) -> ModelOutput:
        x, opened, _ = self.features(inputs, mask)
        out = self.model.head(pool(x, mask, self.model.pooling))
        B, T, W = x.shape
        return ModelOutput(out.squeeze(-1) if out.shape[-1] == 1 else out, *_rates(opened, mask, B, T, W))


class SparseLanguageModel(_SparseBackbone):
    """`LanguageModel` for inference: the model's call, and `step` for token-by-token generation."""

    def __init__(self, model: LanguageModel, **options):
        super().__init__(model, options)

    @torch.no_grad()
    def __call__(self, inputs: Tensor, mask: Tensor | None = None, states=None, time_offset: int = 0):
        """Returns (ModelOutput with logits [B, T, V], states to continue from at time_offset + T)."""
        x, opened, states = self.features(inputs, mask, states, time_offset)
        logits = x @ self.backbone.encoder.weight.t()
        B, T, W = x.shape
        return ModelOutput(logits, *_rates(opened, mask, B, T, W)), states

    @torch.no_grad()
    def step(self, tokens: Tensor, states, t: int) -> tuple[Tensor, list]:
        """One token per row: tokens int [B] at step t -> (logits [B, V], new states)."""
        x, states = self.step_features(tokens, states, t)
        return x @ self.backbone.encoder.weight.t(), states
