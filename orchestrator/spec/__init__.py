"""`SweepSpec`: a YAML sweep spec parsed, merged and validated once.

    spec = load_spec("specs/listops.yaml", profile="local", overrides=["search.num_trials=3"])
    for block in spec.task_blocks():
        fixed = spec.fixed_config(block)           # the trainer settings no trial changes
        config = spec.trial_config(block, params)  # fixed + one sampled point

Every problem raises `SpecError`, whose one-line message starts with the dotted path of
the field at fault (``parameters.lr.low: must be < high (got 1 >= 0.5)``). Besides its
own rules, the spec asks the trainable (``module:function``, a `surnn.trainable.Trainable`)
whether a representative trial config is valid (`validate`) and whether it reports every
objective and constraint metric (`reports`), so a sweep fails here and not in trial 37. A
`SettingError` the trainable raises names a setting, and lands on the field that set it.
No code after this package reads YAML or looks up a setting with a default.

    schema.py   the pydantic models (types and shapes)
    load.py     YAML, profiles and --set, then validation
    checks.py   rules across fields and the trainable's hooks
    fields.py   where a setting is set (the field a trainer error names)
    errors.py   SpecError and pydantic errors as one line
"""
from .errors import SpecError
from .load import apply_overrides, apply_profile, load_spec, parse_spec
from .schema import (DEFAULT_TRAINABLE, ASHAScheduler, CategoricalParam, Constraint, Failure, FloatParam, IntParam,
                     NoScheduler, Objective, Parameter, ParetoASHAScheduler, Resources, Scheduler, Search, SweepSpec,
                     TaskBlock, Tracking)

__all__ = [
    "SpecError", "load_spec", "parse_spec", "apply_profile", "apply_overrides", "SweepSpec",
    "TaskBlock", "Objective", "FloatParam", "IntParam", "CategoricalParam", "Parameter", "Search",
    "Constraint", "NoScheduler", "ParetoASHAScheduler", "ASHAScheduler", "Scheduler", "Resources",
    "Failure", "Tracking", "DEFAULT_TRAINABLE",
]
