"""`SweepSpec`: a YAML sweep spec parsed, merged and validated once.

    spec = load_spec("specs/listops.yaml", profile="local", overrides=["search.num_trials=3"])
    for block in spec.task_blocks():
        fixed = spec.fixed_config(block)           # the trainer settings no trial changes
        config = spec.trial_config(block, params)  # fixed + one sampled point

Every problem raises `SpecError`, whose one-line message starts with the dotted path of
the field at fault (``parameters.lr.low: must be < high (got 1 >= 0.5)``). Besides its
own rules, the spec asks the trainable (``module:function``) whether a representative
trial config is valid (`trainable.validate`) and whether it reports every objective and
constraint metric (`trainable.reports`), so a sweep fails here and not in trial 37.
No code after this module reads YAML or looks up a setting with a default.
"""
from __future__ import annotations

import copy
import importlib
import math
import re
import types
import typing
from pathlib import Path
from typing import Annotated, Any, Callable, Literal, Sequence, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, \
    model_serializer, model_validator

__all__ = [
    "SpecError", "load_spec", "parse_spec", "apply_profile", "apply_overrides", "SweepSpec",
    "TaskBlock", "Objective", "FloatParam", "IntParam", "CategoricalParam", "Parameter", "Search",
    "Constraint", "NoScheduler", "ParetoASHAScheduler", "ASHAScheduler", "Scheduler", "Resources",
    "Failure", "Tracking", "DEFAULT_TRAINABLE",
]

DEFAULT_TRAINABLE = "surnn.train:train"
_FIXED_SECTIONS = ("model", "training")        # sections of fixed trainer settings
_TASK_KEYS = ("name", "training", "model", "objectives")   # any other key of a task block is a task option
_PARAM_FIELDS = ("type", "low", "high", "log", "step", "values")
_EPOCHS_REQUIRED = "required: the number of epochs is the sweep's fidelity (max_t)"


class SpecError(ValueError):
    """A sweep spec is wrong; `field` is the dotted path at fault, `str(e)` is one line."""

    def __init__(self, field: str, message: str, source: str | None = None):
        self.field = field
        self.message = re.sub(r"\s*\n\s*", " ", str(message)).strip()
        self.source = source      # the file (or "<spec>") the spec came from, if known
        super().__init__(f"{field}: {self.message}")

    def __reduce__(self):         # keep field and message through pickling (Ray ships errors)
        return type(self), (self.field, self.message, self.source)


# ---------------------------------------------------------------------------- models

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


class Search(_Model):
    sampler: Literal["tpe", "nsga2", "gp", "random"] = "tpe"
    seed: int = 0
    num_trials: int                      # >= 1
    max_concurrent: int = 1              # >= 1
    constraints: list[Constraint] = []


class NoScheduler(_Model):
    """Every trial runs all epochs."""

    name: Literal["none"]

    @property
    def scalarize(self) -> None:
        """Only `asha` ranks on a weighted sum; None here, so every scheduler answers it."""
        return None


class ParetoASHAScheduler(_Model):
    """Asynchronous successive halving that ranks trials by Pareto rank over all objectives."""

    name: Literal["pareto_asha"]
    grace_period: int = 1                # epochs before the first cut, in [1, epochs]
    reduction_factor: float = 3.0        # keep 1/reduction_factor at each rung, > 1

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
    max_failures_per_trial: int = 0      # retries of one trial (Ray's FailureConfig.max_failures), >= 0
    max_failed_trials: int | None = None  # stop the sweep after this many failed trials; None: never


class Tracking(_Model):
    """Where results go. After `parse_spec`, `experiment` and `study_storage` are always set."""

    uri: str = "sqlite:///mlflow.db"     # MLflow tracking URI
    experiment: str | None = None        # default: the spec's name
    study_storage: str | None = None     # Optuna RDB URL; default: optuna.db beside a sqlite uri
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
        out.update({k: getattr(self, k) for k in _FIXED_SECTIONS if getattr(self, k)})
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
    scheduler: Scheduler = NoScheduler(name="none")
    resources_per_trial: Resources = Resources()
    failure: Failure = Failure()
    tracking: Tracking = Tracking()
    trainable: str = DEFAULT_TRAINABLE
    profiles: dict[str, dict[str, Any]] = {}
    kubernetes: dict[str, Any] | None = None   # free-form until the Kubernetes submitter types it

    _trainable_fn: Callable | None = PrivateAttr(default=None)

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
            raise SpecError("training.epochs", _EPOCHS_REQUIRED)
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

    def trainable_fn(self) -> Callable:
        """The imported trainable, `train(config, report) -> dict`."""
        if self._trainable_fn is None:
            self._trainable_fn = _import_trainable(self.trainable)
        return self._trainable_fn

    def to_yaml(self) -> str:
        """The resolved spec (profile and overrides applied) as YAML, for logging; it loads back."""
        data = self.model_dump(mode="json", exclude={"profiles"}, exclude_none=True)
        return yaml.safe_dump(data, sort_keys=False)


# ---------------------------------------------------------------------------- loading

def load_spec(path: str | Path, profile: str | None = None, overrides: Sequence[str] = ()) -> SweepSpec:
    """Reads a YAML spec, merges a profile, applies ``key.path=value`` overrides, validates.

    Args:
        path: the YAML file.
        profile: a key of the spec's `profiles`, deep-merged over the spec (mappings merge,
            everything else is replaced).
        overrides: ``key.path=value`` strings (the CLI's ``--set``), applied after the
            profile; the value is parsed as YAML, so ``search.num_trials=3`` sets an int.

    Returns:
        The validated `SweepSpec`.

    Raises:
        SpecError: naming the file, the profile, the override or the field at fault.
    """
    source = str(path)
    data = _read_yaml(Path(path))
    data = apply_profile(data, profile)
    data = apply_overrides(data, overrides)
    return parse_spec(data, source=source)


def parse_spec(data: dict, source: str = "<spec>") -> SweepSpec:
    """Validates a spec already read into plain data (see `load_spec`)."""
    if not isinstance(data, dict):
        raise SpecError(source, f"expected a mapping at the top level (got {type(data).__name__})", source)
    try:
        spec = SweepSpec.model_validate(data)
        _check_structure(spec)
        spec = _resolve_defaults(spec)
        _check_with_trainable(spec)
    except ValidationError as err:
        raise _from_validation_error(err, data, source) from None
    except SpecError as err:
        err.source = source
        raise
    return spec


def apply_profile(data: dict, profile: str | None) -> dict:
    """`data` with `profiles[profile]` deep-merged over it (`data` unchanged if profile is None)."""
    if profile is None:
        return data
    profiles = data.get("profiles") or {}
    if not isinstance(profiles, dict):
        raise SpecError("profiles", f"expected a mapping of profile name -> overrides (got {profiles!r})")
    if profile not in profiles:
        known = f"expected one of: {', '.join(profiles)}" if profiles else "the spec defines no profiles"
        raise SpecError("profile", f"unknown profile {profile!r} ({known})")
    over = profiles[profile]
    if not isinstance(over, dict):
        raise SpecError(f"profiles.{profile}", f"expected a mapping (got {type(over).__name__})")
    if "profiles" in over:
        raise SpecError(f"profiles.{profile}.profiles", "a profile cannot define profiles")
    return _deep_merge(data, over)


def apply_overrides(data: dict, overrides: Sequence[str]) -> dict:
    """`data` with every ``key.path=value`` set; missing mappings along the path are created."""
    data = copy.deepcopy(data)
    for text in overrides:
        key, sep, raw = str(text).partition("=")
        parts = key.strip().split(".")
        if not sep or not all(p.strip() for p in parts):
            raise SpecError("--set", f"malformed override {text!r} (expected key.path=value)")
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError as err:
            raise SpecError("--set", f"cannot parse the value of {text!r} as YAML ({_yaml_problem(err)})") from None
        _set_path(data, [p.strip() for p in parts], value, text)
    return data


def _read_yaml(path: Path) -> dict:
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise SpecError(str(path), "no such file") from None
    except OSError as err:
        raise SpecError(str(path), f"cannot read the spec ({err.strerror or err})") from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as err:
        raise SpecError(str(path), f"invalid YAML {_yaml_problem(err)}") from None
    if not isinstance(data, dict):
        raise SpecError(str(path), f"expected a mapping at the top level (got {type(data).__name__})")
    return data


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that rejects a key given twice in one mapping (PyYAML keeps the last silently)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, typing.Hashable) and key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
            if isinstance(key, typing.Hashable):
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _yaml_problem(err: yaml.YAMLError) -> str:
    mark = getattr(err, "problem_mark", None)
    where = f"at line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    return where + str(getattr(err, "problem", None) or err)


def _deep_merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _set_path(data: dict, parts: list[str], value: Any, text: str) -> None:
    node: Any = data
    walked: list[str] = []
    while parts:
        if isinstance(node, list):
            if not parts[0].isdigit() or int(parts[0]) >= len(node):
                raise SpecError("--set", f"{text!r}: {'.'.join(walked)} has no item {parts[0]!r}")
            step = 1
        elif isinstance(node, dict):
            # The longest existing key first, so dotted parameter names are reachable; a new
            # parameter's name runs up to a parameter field (parameters.a.b.high=3: "a.b").
            step = next((n for n in range(len(parts), 0, -1) if ".".join(parts[:n]) in node), None)
            if step is None and walked == ["parameters"]:
                step = len(parts) - 1 if len(parts) > 1 and parts[-1] in _PARAM_FIELDS else len(parts)
            step = step or 1
        else:
            raise SpecError("--set", f"{text!r}: {'.'.join(walked)} is not a mapping (got {type(node).__name__})")
        key, parts = ".".join(parts[:step]), parts[step:]
        walked.append(key)
        index = int(key) if isinstance(node, list) else key
        if not parts:
            node[index] = value
        elif isinstance(node, dict) and key not in node:
            node[key] = {}
        node = node[index]


# ---------------------------------------------------------------------------- checks

def _check_structure(spec: SweepSpec) -> None:
    """Rules on the spec alone, before the trainable is imported."""
    if not spec.name.strip():
        raise SpecError("name", "must not be empty")
    _check_tasks(spec)
    for section in _FIXED_SECTIONS:
        _check_fixed_section(getattr(spec, section), section)
    for name, param in spec.parameters.items():
        _check_parameter(spec, name, param)
    _check_objectives(spec)
    _check_search(spec.search)
    _check_scheduler(spec)
    _check_positive("resources_per_trial.cpu", spec.resources_per_trial.cpu, strict=True)
    _check_positive("resources_per_trial.gpu", spec.resources_per_trial.gpu)
    _check_positive("failure.max_failures_per_trial", spec.failure.max_failures_per_trial)
    if spec.failure.max_failed_trials is not None:
        _check_positive("failure.max_failed_trials", spec.failure.max_failed_trials)


def _check_tasks(spec: SweepSpec) -> None:
    blocks = spec.task_blocks()
    if not blocks:
        raise SpecError("tasks", "must list at least one task")
    seen: dict[str, int] = {}
    for i, block in enumerate(blocks):
        path = _block_path(spec, i)
        if not block.name.strip():
            raise SpecError(f"{path}.name", "must not be empty")
        if block.name in seen:
            raise SpecError(f"{path}.name", f"duplicate task {block.name!r} (already tasks[{seen[block.name]}])")
        seen[block.name] = i
        for section in _FIXED_SECTIONS:
            _check_fixed_section(getattr(block, section), f"{path}.{section}")
        _check_epochs(spec, i, block)


def _check_fixed_section(settings: dict, path: str) -> None:
    for key in settings:
        if key in ("task", "task_options") or str(key).startswith("task_options."):
            raise SpecError(f"{path}.{key}", "set the task and its options in the task block, not here")


def _check_epochs(spec: SweepSpec, i: int, block: TaskBlock) -> None:
    fixed = spec.fixed_config(block)
    if "epochs" not in fixed:
        raise SpecError("training.epochs", _EPOCHS_REQUIRED + _for_task(spec, block))
    value = fixed["epochs"]
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise SpecError(_fixed_path(spec, i, block, "epochs"), f"must be an integer >= 1 (got {value!r})")


def _check_parameter(spec: SweepSpec, name: str, param: Any) -> None:
    path = f"parameters.{name}"
    if not all(name.split(".")):
        raise SpecError(path, "a parameter name is a setting name, parts joined by single dots")
    if name in ("task", "task_options", "epochs"):
        why = "epochs is the fidelity (max_t); fix it in training" if name == "epochs" \
            else "search single options as task_options.<option>"
        raise SpecError(path, f"cannot be searched: {why}")
    if isinstance(param, CategoricalParam):
        if not param.values:
            raise SpecError(f"{path}.values", "must be a non-empty list")
    else:
        if param.low >= param.high:
            raise SpecError(f"{path}.low", f"must be < high (got {param.low} >= {param.high})")
        if param.log and param.low <= 0:
            raise SpecError(f"{path}.low", f"must be > 0 when log is true (got {param.low})")
        if param.step is not None and param.step <= 0:
            raise SpecError(f"{path}.step", f"must be > 0 (got {param.step})")
        if param.log and param.step is not None and (isinstance(param, FloatParam) or param.step != 1):
            raise SpecError(f"{path}.step", "cannot be combined with log: true")


def _check_objectives(spec: SweepSpec) -> None:
    for i, block in enumerate(spec.task_blocks()):
        path = _objectives_path(spec, i, block)
        objectives = spec.objectives_for(block)
        if not objectives:
            raise SpecError(path, "must list at least one objective (two for a Pareto front)"
                            + _for_task(spec, block))
        first: dict[str, int] = {}
        for j, objective in enumerate(objectives):
            if objective.metric in first:
                raise SpecError(f"{path}[{j}].metric", f"duplicate metric {objective.metric!r} "
                                f"(already {path}[{first[objective.metric]}])")
            first[objective.metric] = j


def _check_search(search: Search) -> None:
    if search.num_trials < 1:
        raise SpecError("search.num_trials", f"must be >= 1 (got {search.num_trials})")
    if search.max_concurrent < 1:
        raise SpecError("search.max_concurrent", f"must be >= 1 (got {search.max_concurrent})")


def _check_scheduler(spec: SweepSpec) -> None:
    sched = spec.scheduler
    if isinstance(sched, NoScheduler):
        return
    if sched.grace_period < 1:
        raise SpecError("scheduler.grace_period", f"must be >= 1 (got {sched.grace_period})")
    if sched.reduction_factor <= 1:
        raise SpecError("scheduler.reduction_factor", f"must be > 1 (got {sched.reduction_factor})")
    for block in spec.task_blocks():
        if sched.grace_period > spec.max_t(block):
            raise SpecError("scheduler.grace_period", f"must be <= epochs (got {sched.grace_period} > "
                            f"{spec.max_t(block)}){_for_task(spec, block)}")
    if isinstance(sched, ASHAScheduler):
        if not sched.scalarize:
            raise SpecError("scheduler.scalarize", "must give at least one metric -> weight")
        for metric, weight in sched.scalarize.items():
            if weight == 0:
                raise SpecError(f"scheduler.scalarize.{metric}", "weight must be nonzero (the sum is "
                                "maximised: give minimised metrics a negative weight)")


def _check_positive(path: str, value: float, strict: bool = False) -> None:
    if value < 0 or (strict and value == 0):
        raise SpecError(path, f"must be {'>' if strict else '>='} 0 (got {value})")


def _resolve_defaults(spec: SweepSpec) -> SweepSpec:
    """Fills the tracking defaults that depend on other fields."""
    tracking = spec.tracking
    study = tracking.study_storage
    if study is None:
        if not tracking.uri.startswith("sqlite:///"):
            raise SpecError("tracking.study_storage",
                            f"required when tracking.uri is not a sqlite:/// URL (got {tracking.uri!r})")
        folder, sep, _ = tracking.uri[len("sqlite:///"):].rpartition("/")
        study = f"sqlite:///{folder}{sep}optuna.db"
    resolved = tracking.model_copy(update={"experiment": tracking.experiment or spec.name, "study_storage": study})
    return spec.model_copy(update={"tracking": resolved})


def _check_with_trainable(spec: SweepSpec) -> None:
    """Asks the trainable's hooks about the low and the high corner of the search space."""
    fn = spec.trainable_fn()
    validate, reports = getattr(fn, "validate", None), getattr(fn, "reports", None)
    for i, block in enumerate(spec.task_blocks()):
        for corner in (0, 1):
            point = {name: p.endpoints()[corner] for name, p in spec.parameters.items()}
            config = spec.trial_config(block, point)
            if callable(validate):
                _call_hook(validate, config, spec, i, block, corner)
            if callable(reports):
                reported = set(_call_hook(reports, config, spec, i, block, corner))
                _check_reported(spec, i, block, reported, corner)


def _check_reported(spec: SweepSpec, i: int, block: TaskBlock, reported: set, corner: int) -> None:
    path = _objectives_path(spec, i, block)
    wanted = [(f"{path}[{j}].metric", o.metric) for j, o in enumerate(spec.objectives_for(block))]
    wanted += [(f"search.constraints[{j}]", c.metric) for j, c in enumerate(spec.search.constraints)]
    wanted += [(f"scheduler.scalarize.{m}", m) for m in spec.scheduler.scalarize or {}]
    for path, metric in wanted:
        if metric not in reported:
            when = "never reported" if corner == 0 else "not reported with every parameter at its high end"
            raise SpecError(path, f"{metric!r} is {when} by {spec.trainable}{_for_task(spec, block)} "
                                  f"(it reports: {', '.join(sorted(reported))})")


def _import_trainable(target: str) -> Callable:
    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        raise SpecError("trainable", f"expected 'module:function' (got {target!r})")
    try:
        fn: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            fn = getattr(fn, part)
    except Exception as err:  # any import-time failure is the spec's trainable at fault
        raise SpecError("trainable", f"cannot import {target!r} ({type(err).__name__}: {err})") from None
    if not callable(fn):
        raise SpecError("trainable", f"{target!r} is not callable (got {type(fn).__name__})")
    return fn


def _call_hook(hook: Callable, config: dict, spec: SweepSpec, i: int, block: TaskBlock, corner: int):
    try:
        return hook(config)
    except (ValueError, TypeError) as err:   # the contract: a ValueError naming the setting
        raise _locate(str(err).strip().splitlines()[0] if str(err).strip() else repr(err),
                      spec, i, block, corner) from None
    except Exception as err:                 # a hook's own bug, still reported against the spec
        raise SpecError(_block_path(spec, i), f"{spec.trainable} {hook.__name__}() failed on this "
                        f"task's config ({type(err).__name__}: {err})") from None


# ---------------------------------------------------------------------------- where a trainer error points

def _locate(message: str, spec: SweepSpec, i: int, block: TaskBlock, corner: int) -> SpecError:
    """Turns a trainable's ValueError into a SpecError at the spec field that set the value."""
    path = _block_path(spec, i)
    if m := re.match(r"unknown training setting '([^']+)'", message):
        field = _setting_path(spec, i, block, m.group(1), corner)
    elif m := re.match(r"unknown option\(s\) '([^']+)'", message):
        field = _setting_path(spec, i, block, f"task_options.{m.group(1)}", corner)
    elif re.match(r"unknown task '", message):
        field = f"{path}.name"
    elif m := re.fullmatch(r"([A-Za-z_][\w.]*): (.*)", message):
        key, message = m.group(1), m.group(2)
        if key.startswith(block.name + "."):
            key = "task_options." + key[len(block.name) + 1:]
        field = _setting_path(spec, i, block, key, corner)
    else:
        field = path
    if corner == 1 and not field.startswith("parameters."):
        message += " (with every parameter at its high end)"
    if not field.startswith("tasks["):
        message += _for_task(spec, block)
    return SpecError(field, message)


def _setting_path(spec: SweepSpec, i: int, block: TaskBlock, key: str, corner: int) -> str:
    """The spec path that sets trainer setting `key` (dotted: task_options.x) for block i."""
    end = "low" if corner == 0 else "high"
    for name, param in spec.parameters.items():
        if name == key or name.startswith(key + "."):
            return f"parameters.{name}." + ("values" if isinstance(param, CategoricalParam) else end)
    fixed = _fixed_path(spec, i, block, key)
    if fixed is not None:
        return fixed
    if key.startswith("task_options."):
        return f"{_block_path(spec, i)}.{key[len('task_options.'):]}"
    return f"training.{key}"


def _fixed_path(spec: SweepSpec, i: int, block: TaskBlock, key: str) -> str | None:
    """Where a fixed section sets `key` for block i (the section that wins), or None."""
    path = _block_path(spec, i)
    if key.startswith("task_options."):
        option = key[len("task_options."):]
        return f"{path}.{option}" if option in block.options else None
    for where, section in ((f"{path}.training", block.training), (f"{path}.model", block.model),
                           ("training", spec.training), ("model", spec.model)):
        if key in section:
            return f"{where}.{key}"
    return None


def _objectives_path(spec: SweepSpec, i: int, block: TaskBlock) -> str:
    return "objectives" if block.objectives is None else f"{_block_path(spec, i)}.objectives"


def _block_path(spec: SweepSpec, i: int) -> str:
    return "task" if spec.task is not None else f"tasks[{i}]"


def _for_task(spec: SweepSpec, block: TaskBlock) -> str:
    return f" (task {block.name!r})" if spec.tasks is not None and len(spec.tasks) > 1 else ""


# ---------------------------------------------------------------------------- pydantic errors

def _from_validation_error(err: ValidationError, data: dict, source: str) -> SpecError:
    """The first of pydantic's errors, as a SpecError at a plain dotted path."""
    error = err.errors(include_url=False)[0]
    loc, kind, value = error["loc"], error["type"], error.get("input")
    path = _dotted(loc, data)
    if kind == "extra_forbidden":
        model = _annotation_at(loc[:-1])
        known = f" (expected one of: {', '.join(model.model_fields)})" if _is_model(model) else ""
        message = f"unknown key{known}"
    elif kind == "missing":
        message = "required"
        if loc[-2:] == ("asha", "scalarize"):
            message += ": asha ranks trials on one number; give scalarize: {metric: weight, ...}"
    elif kind in ("union_tag_invalid", "union_tag_not_found"):
        key = error["ctx"]["discriminator"].strip("'")
        path = f"{path}.{key}"
        tags = ", ".join(_union_tags(_annotation_at(loc)))
        got = f" (got {error['ctx']['tag']!r})" if kind == "union_tag_invalid" else ""
        message = f"{'must be' if got else 'required:'} one of: {tags}{got}"
    else:
        message = error["msg"].removeprefix("Value error, ")
        message = message[:1].lower() + message[1:]
        if kind != "value_error":
            message += f" (got {value!r})"
        if isinstance(value, str) and re.fullmatch(r"[-+]?\d+[eE][-+]?\d+", value):
            message += f"; YAML reads {value} as a string, write it with a dot (e.g. 1.0e-5)"
    return SpecError(path or "<spec>", message, source)


def _dotted(loc: tuple, data: Any) -> str:
    """pydantic's loc as ``a.b[0].c``, without the union tags pydantic inserts."""
    out = ""
    node = data
    for n, part in enumerate(loc):
        if isinstance(node, list) and isinstance(part, int):
            out += f"[{part}]"
            node = node[part] if part < len(node) else None
            continue
        if isinstance(node, dict) and part not in node and n < len(loc) - 1 \
                and part in (node.get("type"), node.get("name")):
            continue   # a discriminated union's tag
        out += f".{part}" if out else str(part)
        node = node.get(part) if isinstance(node, dict) else None
    return out


def _annotation_at(loc: tuple) -> Any:
    """The type pydantic validated at `loc` (tags included), or None."""
    tp: Any = SweepSpec
    for part in loc:
        tp = _unwrap(tp)
        if _is_model(tp):
            if part not in tp.model_fields:
                return None
            tp = tp.model_fields[part].annotation
        elif typing.get_origin(tp) is dict:
            tp = typing.get_args(tp)[1]
        elif typing.get_origin(tp) is list:
            tp = typing.get_args(tp)[0]
        elif _is_union(tp):
            tp = next((m for m in typing.get_args(tp) if part in _tags_of(m)), None)
        else:
            return None
    return _unwrap(tp)


def _unwrap(tp: Any) -> Any:
    while True:
        if typing.get_origin(tp) is Annotated:
            tp = typing.get_args(tp)[0]
        elif _is_union(tp) and type(None) in typing.get_args(tp) and len(typing.get_args(tp)) == 2:
            tp = next(a for a in typing.get_args(tp) if a is not type(None))
        else:
            return tp


def _is_union(tp: Any) -> bool:
    return typing.get_origin(tp) in (Union, types.UnionType)


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _tags_of(model: Any) -> tuple:
    if not _is_model(model):
        return ()
    for key in ("type", "name"):
        field = model.model_fields.get(key)
        if field is not None and typing.get_origin(field.annotation) is Literal:
            return typing.get_args(field.annotation)
    return ()


def _union_tags(tp: Any) -> list[str]:
    return [tag for m in typing.get_args(tp) for tag in _tags_of(m)] if _is_union(tp) else []


def _to_float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None
