"""Typed settings of one suRNN layer, validated once when the layer is built."""
from __future__ import annotations

import math
from dataclasses import dataclass

from surnn.trainable import SettingError

CELLS = ("gru", "rnn", "lstm")
GATES = ("rhythmic", "event", "none")
SURROGATES = ("straight_through", "boxcar", "triangle")


@dataclass(frozen=True)
class SuRNNConfig:
    """Settings of a `SuRNN` layer. Every field is checked in `__post_init__`."""

    input_size: int                      # features per step of the layer's input, >= 1
    hidden_size: int                     # H, neurons (and switches), >= 1
    cell: str = "gru"                    # candidate f(h, x): gru | rnn (tanh) | lstm
    gate: str = "event"                  # rhythmic (time only) | event (input and own state) | none (always open)
    gate_threshold: float = 0.0          # a switch opens where the gate drive exceeds this; see gates.py
    init_update_rate: float = 0.5        # open fraction at initialisation when gate_threshold is 0, in (0, 1]; see gates.py
    num_frequencies: int = 4             # K, rhythmic gate: sinusoids shared by all neurons, >= 1
    min_period: float = 2.0              # rhythmic gate: shortest initial period, in steps, >= 2
    max_period: float = 1024.0           # rhythmic gate: longest initial period, in steps, >= min_period
    surrogate: str = "boxcar"            # backward of the step function: boxcar | straight_through | triangle
    surrogate_width: float = 1.5         # half-width of the boxcar / triangle surrogate, > 0

    def __post_init__(self) -> None:
        _check_int(self, "input_size", 1)
        _check_int(self, "hidden_size", 1)
        _check_int(self, "num_frequencies", 1)
        _check_choice(self, "cell", CELLS)
        _check_choice(self, "gate", GATES)
        _check_choice(self, "surrogate", SURROGATES)
        for name in ("gate_threshold", "init_update_rate", "min_period", "max_period", "surrogate_width"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise SettingError(name, f"expected a finite number, got {value!r}")
        if not 0.0 < self.init_update_rate <= 1.0:
            raise SettingError("init_update_rate", f"must lie in (0, 1], got {self.init_update_rate}")
        if self.min_period < 2.0:
            raise SettingError("min_period", f"must be >= 2 steps, got {self.min_period}")
        if self.max_period < self.min_period:
            raise SettingError("max_period", f"must be >= min_period ({self.min_period}), got {self.max_period}")
        if self.surrogate_width <= 0.0:
            raise SettingError("surrogate_width", f"must be > 0, got {self.surrogate_width}")


def _check_int(cfg: object, name: str, minimum: int) -> None:
    value = getattr(cfg, name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise SettingError(name, f"expected an integer, got {value!r}")
    if value < minimum:
        raise SettingError(name, f"must be >= {minimum}, got {value}")


def _check_choice(cfg: object, name: str, choices: tuple[str, ...]) -> None:
    value = getattr(cfg, name)
    if value not in choices:
        raise SettingError(name, f"unknown value {value!r} (expected one of: {', '.join(choices)})")
