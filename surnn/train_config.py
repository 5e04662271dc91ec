"""`TrainConfig`: every setting of one training run, typed and checked once.

The sweep orchestrator builds one from a flat dict of sampled parameters
(`TrainConfig.from_dict`); dotted keys reach into the nested `task_options`
(``{"task_options.max_length": 400}``).
"""
from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass, field

from surnn.config import SuRNNConfig
from surnn.trainable import SettingError

# When the trainer times sparse inference (surnn.sparse.timing): after the last evaluation of a
# completed run, after every evaluation (what a sweep that ranks trials by inference_ms at
# early-stopping rungs needs), or never.
INFERENCE_TIMINGS = ("end", "every", "off")

# Fields of TrainConfig passed on to every SuRNN layer.
PRECISIONS = ("auto", "float32", "bfloat16", "float16")
LAYER_FIELDS = tuple(f.name for f in dataclasses.fields(SuRNNConfig) if f.name not in ("input_size", "hidden_size"))
MAX_LAYERS = 1024   # far above any stack that trains; a typo's billion layers would be built one by one
_LAYER_DEFAULTS = {f.name: f.default for f in dataclasses.fields(SuRNNConfig) if f.name in LAYER_FIELDS}


@dataclass(frozen=True)
class TrainConfig:
    """One training run. Units and ranges are in the comments; `__post_init__` checks them."""

    # task
    task: str = "delayed_recall"          # a name from surnn.data.TASK_NAMES
    task_options: dict = field(default_factory=dict)   # the task's own settings (see surnn.data.tasks)
    # model
    hidden_size: int = 128                # width of every block, >= 1
    num_layers: int = 1                   # residual suRNN blocks, >= 1
    dropout: float = 0.0                  # in [0, 1)
    # layer settings: SuRNNConfig's defaults, so a run and a bare SuRNN agree (see surnn/config.py)
    cell: str = _LAYER_DEFAULTS["cell"]
    gate: str = _LAYER_DEFAULTS["gate"]
    gate_threshold: float = _LAYER_DEFAULTS["gate_threshold"]
    init_update_rate: float = _LAYER_DEFAULTS["init_update_rate"]
    num_frequencies: int = _LAYER_DEFAULTS["num_frequencies"]
    min_period: float = _LAYER_DEFAULTS["min_period"]
    max_period: float = _LAYER_DEFAULTS["max_period"]
    surrogate: str = _LAYER_DEFAULTS["surrogate"]
    surrogate_width: float = _LAYER_DEFAULTS["surrogate_width"]
    # objective
    # weight of the update-rate penalty (lambda x mean open fraction, added to the task loss), >= 0.
    # 10 is the delayed-recall recipe: with grad_clip 1 it pulls the event gate from its initial open fraction
    # down while the task loss is still learning (see surnn/gates.py)
    sparsity_lambda: float = 10.0
    target_update_rate: float | None = None   # None: penalise the rate; else (rate - target)^2, in (0, 1]
    # optimisation
    # peak learning rate of AdamW, > 0. 6e-3 is the long-silence recipe: delayed recall across 1000-1100
    # silent steps (hidden 128, 300 steps of batch 64) reaches 0.92-0.96 at rate 0.10-0.18 over 3 seeds,
    # where 3e-3 stopped at 0.825 at rate 0.053 (seed 0): the gates close before the memory is learnt
    lr: float = 6e-3
    weight_decay: float = 0.01            # AdamW's, on weight matrices only, >= 0
    batch_size: int = 64                  # sequences per step, >= 1
    epochs: int = 10                      # evaluations (the sweep's fidelity), >= 1
    steps_per_epoch: int | None = None    # None: one pass over the training split
    warmup_fraction: float = 0.05         # share of all steps with a linear warm-up, in [0, 1)
    grad_clip: float = 1.0                # max global gradient norm; 0 turns clipping off
    eval_batch_size: int | None = None    # None: 2 x batch_size
    max_eval_samples: int | None = None   # None: the whole validation split
    # run
    seed: int = 0
    device: str = "auto"                  # auto | cpu | cuda | cuda:N | mps
    precision: str = "auto"               # autocast: auto (bfloat16 on CUDA, else float32) | float32 | bfloat16 | float16
    num_threads: int | None = None        # torch CPU threads; None leaves torch's default
    checkpoint_dir: str | None = None     # where the run saves (and resumes from) its checkpoint
    cache_dir: str | None = None          # dataset cache; None: $SURNN_CACHE_DIR or ~/.cache/surnn-sweep
    progress: bool = False                # a progress bar on stderr
    inference_timing: str = "end"         # when to report inference_ms / inference_speedup: end | every | off

    def __post_init__(self) -> None:
        _check_types(self)
        _check_range(self, "hidden_size", 1)
        _check_range(self, "num_layers", 1)
        if self.num_layers > MAX_LAYERS:
            raise SettingError("num_layers", f"must be <= {MAX_LAYERS}, got {self.num_layers}")
        _check_range(self, "batch_size", 1)
        _check_range(self, "epochs", 1)
        for name in ("steps_per_epoch", "eval_batch_size", "max_eval_samples", "num_threads"):
            if getattr(self, name) is not None:
                _check_range(self, name, 1)
        _check_range(self, "lr", 0.0, strict=True)
        for name in ("weight_decay", "sparsity_lambda", "grad_clip"):
            _check_range(self, name, 0.0)
        if self.precision not in PRECISIONS:
            raise SettingError("precision", f"unknown value {self.precision!r} (expected one of: {', '.join(PRECISIONS)})")
        if not 0.0 <= self.dropout < 1.0:
            raise SettingError("dropout", f"must lie in [0, 1), got {self.dropout}")
        if not 0.0 <= self.warmup_fraction < 1.0:
            raise SettingError("warmup_fraction", f"must lie in [0, 1), got {self.warmup_fraction}")
        if self.inference_timing not in INFERENCE_TIMINGS:
            raise SettingError("inference_timing", f"unknown value {self.inference_timing!r} "
                                                   f"(expected one of: {', '.join(INFERENCE_TIMINGS)})")
        if self.target_update_rate is not None and not 0.0 < self.target_update_rate <= 1.0:
            raise SettingError("target_update_rate", f"must lie in (0, 1], got {self.target_update_rate}")
        SuRNNConfig(input_size=1, hidden_size=self.hidden_size, **self.layer_settings())

    def layer_settings(self) -> dict:
        """The SuRNN keyword arguments this run uses for every layer."""
        return {name: getattr(self, name) for name in LAYER_FIELDS}

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "TrainConfig":
        """Build from plain values; dotted keys set nested task options. Unknown keys raise."""
        known = {f.name for f in dataclasses.fields(cls)}
        flat: dict = {}
        options = dict(values.get("task_options") or {})
        for key, value in values.items():
            if key == "task_options":
                continue
            head, _, rest = key.partition(".")
            if head == "task_options" and rest:
                options[rest] = value
            elif key in known:
                flat[key] = value
            else:
                raise SettingError(key, f"unknown training setting {key!r} (expected one of: {', '.join(sorted(known))})")
        return cls(**flat, task_options=options)


def _check_types(cfg: TrainConfig) -> None:
    hints = typing.get_type_hints(TrainConfig)
    for f in dataclasses.fields(cfg):
        value, hint = getattr(cfg, f.name), hints[f.name]
        allowed = typing.get_args(hint) or (hint,)
        if value is None and type(None) in allowed:
            continue
        if isinstance(value, bool) and bool not in allowed:
            raise SettingError(f.name, f"expected {_type_name(hint)}, got {value!r}")
        if float in allowed and isinstance(value, int) and not isinstance(value, bool):
            object.__setattr__(cfg, f.name, float(value))       # 1 is a fine float
            continue
        if not isinstance(value, tuple(t for t in allowed if t is not type(None))):
            raise SettingError(f.name, f"expected {_type_name(hint)}, got {value!r}")
        if isinstance(value, float) and not math.isfinite(value):
            raise SettingError(f.name, f"expected a finite number, got {value!r}")


def _check_range(cfg: TrainConfig, name: str, low: float, strict: bool = False) -> None:
    value = getattr(cfg, name)
    if value < low or (strict and value == low):
        raise SettingError(name, f"must be {'>' if strict else '>='} {low}, got {value}")


def _type_name(hint) -> str:
    args = [a for a in typing.get_args(hint) if a is not type(None)] or [hint]
    names = " or ".join(getattr(a, "__name__", str(a)) for a in args)
    return names + (" or null" if type(None) in typing.get_args(hint) else "")
