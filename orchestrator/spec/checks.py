"""Rules across a spec's fields, and the trainable's own word on its configs.

`check_spec` runs after pydantic has checked the types: the spec's own rules first, then the
defaults that depend on other fields, then the trainable's hooks on the low and the high
corner of the search space (`validate`, `reports`), so that a sweep fails here and not in
trial 37. A `SettingError` from the trainable lands on the spec field that set that setting.
"""
from __future__ import annotations

import os
from typing import Any, Callable

from surnn.trainable import SettingError

from orchestrator.secrets import redact

from .errors import SpecError
from .fields import block_path, fixed_path, for_task, objectives_path, setting_path
from .schema import (EPOCHS_REQUIRED, FIXED_SECTIONS, ASHAScheduler, CategoricalParam, FloatParam, NoScheduler,
                     Search, SweepSpec, TaskBlock)

__all__ = ["check_spec"]


def check_spec(spec: SweepSpec) -> SweepSpec:
    """Every rule, in order; returns `spec` with the dependent defaults filled in.

    Raises:
        SpecError: the first problem, at its dotted path.
    """
    _check_structure(spec)
    spec = _resolve_defaults(spec)
    _check_with_trainable(spec)
    return spec


def _check_structure(spec: SweepSpec) -> None:
    """Rules on the spec alone, before the trainable is imported."""
    if not spec.name.strip():
        raise SpecError("name", "must not be empty")
    _check_tasks(spec)
    for section in FIXED_SECTIONS:
        _check_fixed_section(getattr(spec, section), section)
    for name, param in spec.parameters.items():
        _check_parameter(spec, name, param)
    _check_objectives(spec)
    _check_search(spec.search)
    _check_scheduler(spec)
    _check_budget(spec)
    _check_positive("resources_per_trial.cpu", spec.resources_per_trial.cpu, strict=True)
    _check_positive("resources_per_trial.gpu", spec.resources_per_trial.gpu)
    _check_positive("failure.max_failures_per_trial", spec.failure.max_failures_per_trial)
    if spec.failure.max_failed_trials is not None:
        _check_positive("failure.max_failed_trials", spec.failure.max_failed_trials)
    if spec.failure.report_timeout_s is not None:
        _check_positive("failure.report_timeout_s", spec.failure.report_timeout_s, strict=True)
    if spec.failure.max_memory_mb is not None:
        _check_positive("failure.max_memory_mb", spec.failure.max_memory_mb, strict=True)
    _check_positive("failure.tracking_timeout_s", spec.failure.tracking_timeout_s, strict=True)


def _check_tasks(spec: SweepSpec) -> None:
    blocks = spec.task_blocks()
    if not blocks:
        raise SpecError("tasks", "must list at least one task")
    seen: dict[str, int] = {}
    for i, block in enumerate(blocks):
        path = block_path(spec, i)
        if not block.name.strip():
            raise SpecError(f"{path}.name", "must not be empty")
        if block.name in seen:
            raise SpecError(f"{path}.name", f"duplicate task {block.name!r} (already tasks[{seen[block.name]}])")
        seen[block.name] = i
        for section in FIXED_SECTIONS:
            _check_fixed_section(getattr(block, section), f"{path}.{section}")
        _check_epochs(spec, i, block)


def _check_fixed_section(settings: dict, path: str) -> None:
    for key in settings:
        if key in ("task", "task_options") or str(key).startswith("task_options."):
            raise SpecError(f"{path}.{key}", "set the task and its options in the task block, not here")


def _check_epochs(spec: SweepSpec, i: int, block: TaskBlock) -> None:
    fixed = spec.fixed_config(block)
    if "epochs" not in fixed:
        raise SpecError("training.epochs", EPOCHS_REQUIRED + for_task(spec, block))
    value = fixed["epochs"]
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise SpecError(fixed_path(spec, i, block, "epochs"), f"must be an integer >= 1 (got {value!r})")


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
        path = objectives_path(spec, i, block)
        objectives = spec.objectives_for(block)
        if not objectives:
            raise SpecError(path, "must list at least one objective (two for a Pareto front)"
                            + for_task(spec, block))
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


def _check_budget(spec: SweepSpec) -> None:
    budget = spec.search.budget
    if budget is None:
        return
    if budget.epochs is None and budget.hours is None:
        raise SpecError("search.budget", "give epochs and/or hours")
    if budget.hours is not None and budget.hours <= 0:
        raise SpecError("search.budget.hours", f"must be > 0 (got {budget.hours})")
    if budget.epochs is not None:
        for block in spec.task_blocks():
            if budget.epochs < spec.max_t(block):
                raise SpecError("search.budget.epochs", f"must be >= one trial's {spec.max_t(block)} epochs "
                                f"(got {budget.epochs}){for_task(spec, block)}")


def _check_scheduler(spec: SweepSpec) -> None:
    sched = spec.scheduler
    if isinstance(sched, NoScheduler):
        return
    if sched.grace_period < 1:
        raise SpecError("scheduler.grace_period", f"must be >= 1 (got {sched.grace_period})")
    if sched.reduction_factor <= 1:
        raise SpecError("scheduler.reduction_factor", f"must be > 1 (got {sched.reduction_factor})")
    if getattr(sched, "brackets", 1) < 1:
        raise SpecError("scheduler.brackets", f"must be >= 1 (got {sched.brackets})")
    agreement = getattr(sched, "min_agreement", None)
    if agreement is not None and not -1.0 <= agreement <= 1.0:
        raise SpecError("scheduler.min_agreement", f"must be in [-1, 1] or null (got {agreement})")
    for block in spec.task_blocks():
        if sched.grace_period > spec.max_t(block):
            raise SpecError("scheduler.grace_period", f"must be <= epochs (got {sched.grace_period} > "
                            f"{spec.max_t(block)}){for_task(spec, block)}")
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
    if tracking.study_storage_env is not None:
        if study is not None:
            raise SpecError("tracking.study_storage_env", "give study_storage or study_storage_env, not both")
        study = os.environ.get(tracking.study_storage_env) or None
        if study is None:
            raise SpecError("tracking.study_storage_env",
                            f"the environment variable {tracking.study_storage_env!r} is not set")
    if study is None:
        if not tracking.uri.startswith("sqlite:///"):
            raise SpecError("tracking.study_storage",
                            f"required when tracking.uri is not a sqlite:/// URL (got {redact(tracking.uri)!r})")
        folder, sep, _ = tracking.uri[len("sqlite:///"):].rpartition("/")
        study = f"sqlite:///{folder}{sep}optuna.db"
    resolved = tracking.model_copy(update={"experiment": tracking.experiment or spec.name, "study_storage": study})
    return spec.model_copy(update={"tracking": resolved})


def _check_with_trainable(spec: SweepSpec) -> None:
    """Asks the trainable's hooks about the low and the high corner of the search space."""
    trainable = spec.trainable_fn()
    for i, block in enumerate(spec.task_blocks()):
        for corner in (0, 1):
            point = {name: p.endpoints()[corner] for name, p in spec.parameters.items()}
            config = spec.trial_config(block, point)
            _call_hook(trainable.validate, config, spec, i, block, corner)
            reported = _call_hook(trainable.reports, config, spec, i, block, corner)
            if reported is not None:
                _check_reported(spec, i, block, set(reported), corner)


def _check_reported(spec: SweepSpec, i: int, block: TaskBlock, reported: set, corner: int) -> None:
    path = objectives_path(spec, i, block)
    wanted = [(f"{path}[{j}].metric", o.metric) for j, o in enumerate(spec.objectives_for(block))]
    wanted += [(f"search.constraints[{j}]", c.metric) for j, c in enumerate(spec.search.constraints)]
    wanted += [(f"scheduler.scalarize.{m}", m) for m in spec.scheduler.scalarize or {}]
    for path, metric in wanted:
        if metric not in reported:
            when = "never reported" if corner == 0 else "not reported with every parameter at its high end"
            raise SpecError(path, f"{metric!r} is {when} by {spec.trainable}{for_task(spec, block)} "
                                  f"(it reports: {', '.join(sorted(reported))})")


def _call_hook(hook: Callable, config: dict, spec: SweepSpec, i: int, block: TaskBlock, corner: int) -> Any:
    try:
        return hook(config)
    except SettingError as err:              # the contract: the setting's dotted name
        raise _at_setting(err, spec, i, block, corner) from None
    except (ValueError, TypeError) as err:   # a trainable's error that names no setting
        first = str(err).strip().splitlines()[0] if str(err).strip() else repr(err)
        raise SpecError(block_path(spec, i), first + _when(corner, block_path(spec, i)) + for_task(spec, block)) \
            from None
    except Exception as err:                 # a hook's own bug, still reported against the spec
        raise SpecError(block_path(spec, i), f"{spec.trainable} {getattr(hook, '__name__', 'hook')}() failed on "
                        f"this task's config ({type(err).__name__}: {err})") from None


def _at_setting(err: SettingError, spec: SweepSpec, i: int, block: TaskBlock, corner: int) -> SpecError:
    """The SpecError at the field that set `err.setting` for task block i."""
    if err.setting == "task":
        field = f"{block_path(spec, i)}.name"
    else:
        field = setting_path(spec, i, block, err.setting, corner)
    message = " ".join(str(err.message).split())
    suffix = for_task(spec, block) if not field.startswith("tasks[") else ""
    return SpecError(field, message + _when(corner, field) + suffix)


def _when(corner: int, field: str) -> str:
    return " (with every parameter at its high end)" if corner == 1 and not field.startswith("parameters.") else ""
