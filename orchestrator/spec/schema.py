"""The sweep spec's schema: pydantic models, strict and frozen, with the helpers trials need.

Only the shape and types of each field are checked here; rules across fields live in
`checks.py`, so that every problem is reported once, at its dotted path.
"""
from __future__ import annotations

import copy
import math
import re
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_serializer, \
    model_validator

from surnn.trainable import Trainable, TrainableImportError, load_trainable

from .errors import SpecError

__all__ = [
    "SweepSpec", "TaskBlock", "Objective", "FloatParam", "IntParam", "CategoricalParam", "Parameter", "Search",
    "Constraint", "NoScheduler", "ParetoASHAScheduler", "ASHAScheduler", "Scheduler", "Resources", "Failure",
    "Tracking", "DEFAULT_TRAINABLE",
]

DEFAULT_TRAINABLE = "surnn.train:train"
FIXED_SECTIONS = ("model", "training")        # sections of fixed trainer settings
_TASK_KEYS = ("name", "training", "model", "objectives")   # any other key of a task block is a task option
EPOCHS_REQUIRED = "required: the number of epochs is the sweep's fidelity (max_t)"

class _Model(BaseModel):
    # strict: YAML already types its scalars, so "3" is not an int and true is not 1.
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, frozen=True)


class FloatParam(_Model):
    """A float in [low, high]; `log` samples log-uniformly, `step` discretises (Optuna's FloatDistribution)."""

    type: Literal["float"]
    low: float
    high: float
    log: bool = False
    step: float | None = None     # > 0; not with log

    def endpoints(self) -> tuple[float, float]:
        return self.low, self.high


class IntParam(_Model):
    """An int in [low, high], both included (Optuna's IntDistribution)."""

    type: Literal["int"]
    low: int
    high: int
    log: bool = False
    step: int = 1                 # >= 1; only 1 with log

    def endpoints(self) -> tuple[int, int]:
        return self.low, self.high


class CategoricalParam(_Model):
    """One of `values`, unordered (Optuna's CategoricalDistribution)."""

    type: Literal["categorical"]
    values: list[Any]             # non-empty

    def endpoints(self) -> tuple[Any, Any]:
        return self.values[0], self.values[-1]


Parameter = Annotated[Union[FloatParam, IntParam, CategoricalParam], Field(discriminator="type")]


class Objective(_Model):
    """One reported metric to optimise; `ref` is its hypervolume reference value, if given."""

    metric: str
    goal: Literal["maximize", "minimize"]
    ref: float | None = None

    @property
    def mode(self) -> str:
        """Ray Tune's spelling of the goal: "max" or "min"."""
        return "max" if self.goal == "maximize" else "min"

    @property
    def sign(self) -> float:
        """Multiply the metric by this to minimise it (Optuna's `_normalize_value`)."""
        return -1.0 if self.goal == "maximize" else 1.0


class Constraint(_Model):
    """`metric op bound`, written in YAML as the string ``"update_rate <= 0.5"``."""

    metric: str
    op: Literal["<=", ">="]
    bound: float

    @model_validator(mode="before")
    @classmethod
    def _parse(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        match = re.fullmatch(r"\s*([A-Za-z_][\w./-]*)\s*(<=|>=)\s*(\S+)\s*", value)
        bound = _to_float(match.group(3)) if match else None
        if bound is None or not math.isfinite(bound):
            raise ValueError(f"expected '<metric> <= <number>' or '<metric> >= <number>' (got {value!r})")
        return {"metric": match.group(1), "op": match.group(2), "bound": bound}

    @model_serializer
    def _to_str(self) -> str:
        return f"{self.metric} {self.op} {self.bound!r}"

    def violation(self, value: float) -> float:
        """How far `value` breaks the constraint: <= 0 when it holds (Optuna's constraints_func)."""
        return value - self.bound if self.op == "<=" else self.bound - value


class Budget(_Model):
    """Compute a sweep may spend: epochs summed over all its trials, and/or wall-clock hours."""

    epochs: int | None = None            # >= one trial's epochs
    hours: float | None = None           # > 0


class Search(_Model):
    sampler: Literal["tpe", "nsga2", "gp", "random"] = "tpe"
    seed: int = 0
    num_trials: int                      # >= 1
    max_concurrent: int = 1              # >= 1
    constraints: list[Constraint] = []
    budget: Budget | None = None         # stop starting trials when spent; running ones finish


class NoScheduler(_Model):
    """Every trial runs all epochs."""

    name: Literal["none"]

    @property
    def scalarize(self) -> None:
        """Only `asha` ranks on a weighted sum; None here, so every scheduler answers it."""
        return None


# the measured best min_agreement of each kind (benchmarks/search_efficiency.py, README)
MIN_AGREEMENT = {"promotion": 0.5, "stop": 0.7}


class ParetoASHAScheduler(_Model):
    """Asynchronous successive halving that ranks trials by Pareto rank over all objectives."""

    name: Literal["pareto_asha"]
    grace_period: int = 1                # epochs before the first cut, in [1, epochs]
    reduction_factor: float = 3.0        # keep 1/reduction_factor at each rung, > 1
    brackets: int = 3                    # Hyperband brackets, >= 1; with >= 2 the last never stops a trial
    # "promotion": a trial pauses at a rung and resumes from its checkpoint once it ranks in the
    # best 1/reduction_factor there, or is stopped there when the search is done (the trainable
    # must report checkpoints, or a resumed trial starts over); "stop": a cut at a rung is final
    kind: Literal["stop", "promotion"] = "promotion"
    # a rung ranking trials unlike the full budget (Kendall tau < this) cuts none; None: always
    # trusted. Omitted: MIN_AGREEMENT[kind] (0.5 for promotion, 0.7 for stop; the README says why)
    min_agreement: float | None = None

    @model_validator(mode="before")
    @classmethod
    def _agreement_by_kind(cls, value: Any) -> Any:
        if isinstance(value, dict) and "min_agreement" not in value:
            kind = value.get("kind", cls.model_fields["kind"].default)
            value = {**value, "min_agreement": MIN_AGREEMENT.get(kind)}
        return value

    @model_serializer(mode="wrap")
    def _keep_agreement(self, handler) -> dict:
        # written out even when None (which differs from the omitted default), so a spec loads back
        return {**handler(self), "min_agreement": self.min_agreement}

    @property
    def scalarize(self) -> None:
        return None


class ASHAScheduler(_Model):
    """Ray's ASHA on one number, sum(weight * metric), maximised: minimised metrics get weight < 0."""

    name: Literal["asha"]
    grace_period: int = 1
    reduction_factor: float = 3.0
    scalarize: dict[str, float]          # reported metric -> nonzero weight


Scheduler = Annotated[Union[NoScheduler, ParetoASHAScheduler, ASHAScheduler], Field(discriminator="name")]


class Resources(_Model):
    cpu: float = 1.0                     # > 0
    gpu: float = 0.0                     # >= 0, fractions share a GPU


class Failure(_Model):
    """What a failing trial costs. A hung or memory-hungry trial is a failure like a raising one
    (retried `max_failures_per_trial` times); files a trial writes beside the spec are reported
    (`sweep.stray_files`), not refused: trials keep the driver's working directory on purpose."""

    max_failures_per_trial: int = 0      # retries of one trial (Ray's FailureConfig.max_failures), >= 0
    max_failed_trials: int | None = None  # stop the sweep after this many failed trials; None: never
    report_timeout_s: float | None = None  # a trial silent this long (no report) is killed as hung; None: never
    # A trial process whose resident memory (RSS, Ray's worker and torch included) passes this many
    # MB is ended as failed (TrialOutOfMemory); None: never. Off by default: the baseline differs
    # by model and data, and Ray's own memory monitor already guards the node as a whole.
    max_memory_mb: float | None = None
    tracking_timeout_s: float = 600.0    # MLflow unreachable this long stops the sweep (writes are held and retried meanwhile), > 0


class Tracking(_Model):
    """Where results go. After `parse_spec`, `experiment` and `study_storage` are always set."""

    uri: str = "sqlite:///mlflow.db"     # MLflow tracking URI
    experiment: str | None = None        # default: the spec's name
    study_storage: str | None = None     # Optuna RDB URL; default: optuna.db beside a sqlite uri
    study_storage_env: str | None = None  # an environment variable holding study_storage (keeps its password out of the spec)
    storage_path: str = "./ray_results"  # Ray Tune's results folder


class TaskBlock(_Model):
    """One task of the sweep: its name, its own options, and per-task settings overrides.

    In YAML the options sit inline: ``{name: listops, max_length: 2000, training: {lr: 1.0e-3}}``.
    A block may also list its own `objectives` (a regression task's val_mse); see
    `SweepSpec.objectives_for`.
    """

    name: str
    training: dict[str, Any] = {}
    model: dict[str, Any] = {}
    objectives: list[Objective] | None = None   # None: the spec's objectives
    options: dict[str, Any] = {}

    @model_validator(mode="before")
    @classmethod
    def _gather_options(cls, value: Any) -> Any:
        if isinstance(value, str):
            return {"name": value}
        if not isinstance(value, dict):
            return value
        return {**{k: v for k, v in value.items() if k in _TASK_KEYS},
                "options": {k: v for k, v in value.items() if k not in _TASK_KEYS}}

    @model_serializer
    def _inline(self) -> dict:
        out: dict = {"name": self.name, **self.options}
        out.update({k: getattr(self, k) for k in FIXED_SECTIONS if getattr(self, k)})
        if self.objectives is not None:
            out["objectives"] = [o.model_dump() for o in self.objectives]
        return out


class SweepSpec(_Model):
    """A whole sweep, validated; build it with `load_spec` or `parse_spec`."""

    name: str
    task: TaskBlock | None = None
    tasks: list[TaskBlock] | None = None
    model: dict[str, Any] = {}
    training: dict[str, Any] = {}
    objectives: list[Objective] = []           # required unless every task block lists its own
    parameters: dict[str, Parameter] = {}
    search: Search
    # the measured recommendation (benchmarks/search_efficiency.py): tpe + pareto_asha, grace 1, rf 3,
    # 3 brackets dealt by budget, promotion-type rungs, min_agreement 0.5; `scheduler: none` runs
    # every trial to the end
    scheduler: Scheduler = ParetoASHAScheduler(name="pareto_asha")
    resources_per_trial: Resources = Resources()
    failure: Failure = Failure()
    tracking: Tracking = Tracking()
    trainable: str = DEFAULT_TRAINABLE
    profiles: dict[str, dict[str, Any]] = {}
    kubernetes: dict[str, Any] | None = None   # free-form until the Kubernetes submitter types it

    _trainable: Trainable | None = PrivateAttr(default=None)

    @field_validator("scheduler", mode="before")
    @classmethod
    def _scheduler_shorthand(cls, value: Any) -> Any:
        if value is None:            # `scheduler: null`, e.g. a profile switching it off
            return {"name": "none"}
        return {"name": value} if isinstance(value, str) else value

    def task_blocks(self) -> list[TaskBlock]:
        """One block for `task`, one per entry of `tasks` (a suite: one Pareto front each)."""
        if (self.task is None) == (self.tasks is None):
            raise SpecError("task", "give either task or tasks")
        return [self.task] if self.task is not None else list(self.tasks)

    def fixed_config(self, block: TaskBlock) -> dict:
        """The trainer settings every trial of `block` shares; later sections win."""
        merged = {**self.model, **self.training, **block.model, **block.training,
                  "task": block.name, "task_options": block.options}
        return copy.deepcopy(merged)

    def trial_config(self, block: TaskBlock, params: dict) -> dict:
        """`fixed_config(block)` with sampled `params` set; dotted names set nested settings."""
        config = self.fixed_config(block)
        for name, value in params.items():
            *heads, last = name.split(".")
            node = config
            for head in heads:
                node = node.setdefault(head, {})
                if not isinstance(node, dict):
                    raise SpecError(f"parameters.{name}", f"{head!r} is not a mapping of settings")
            node[last] = value
        return config

    def max_t(self, block: TaskBlock) -> int:
        """The fidelity: the number of epochs a full trial of `block` runs."""
        fixed = self.fixed_config(block)
        if "epochs" not in fixed:    # parse_spec checks it; only a hand-built spec gets here
            raise SpecError("training.epochs", EPOCHS_REQUIRED)
        return fixed["epochs"]

    def objectives_for(self, block: TaskBlock) -> list[Objective]:
        """The objectives of `block`'s front: its own if it lists them, else the spec's."""
        return self.objectives if block.objectives is None else block.objectives

    @property
    def metric_names(self) -> list[str]:
        """The spec's objective metrics, in order (a block with its own: `objectives_for`)."""
        return [o.metric for o in self.objectives]

    @property
    def modes(self) -> list[str]:
        """Ray Tune's "max"/"min" per objective of `metric_names`."""
        return [o.mode for o in self.objectives]

    def study_storage_url(self) -> str:
        """The Optuna RDB URL (tracking.study_storage, resolved by parse_spec)."""
        return self.tracking.study_storage

    def trainable_fn(self) -> Trainable:
        """The imported trainable (`surnn.trainable.Trainable`; a plain function comes wrapped)."""
        if self._trainable is None:
            try:
                self._trainable = load_trainable(self.trainable)
            except TrainableImportError as err:
                raise SpecError("trainable", str(err)) from None
        return self._trainable

    def to_yaml(self, redacted: bool = True) -> str:
        """The resolved spec (profile and overrides applied) as YAML, for logging; it loads back.

        URI passwords are masked (`orchestrator.secrets.redact`) unless `redacted` is False.
        """
        from orchestrator.secrets import redact

        data = self.model_dump(mode="json", exclude={"profiles"}, exclude_none=True)
        text = yaml.safe_dump(data, sort_keys=False)
        return redact(text) if redacted else text


def _to_float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None
