"""What every task's options share: the checks, and the split sizes of generated tasks.

A task's options are a frozen dataclass whose fields are its settings; a wrong value raises
`SettingError` with the setting's name as the trainer sees it (``task_options.<field>``)
and, in the message, as a person reading one task sees it (``listops.<field>``).
"""
from __future__ import annotations

import dataclasses
import numbers
from dataclasses import dataclass
from typing import Any, ClassVar

from surnn.trainable import SettingError


def option_error(task: str, field: str, message: str) -> SettingError:
    """The error for option `field` of `task`."""
    return SettingError(f"task_options.{field}", message, label=f"{task}.{field}")


def require(task: str, field: str, ok: bool, expected: str, got: Any) -> None:
    """Raises `option_error` unless `ok`: "must be {expected} (got {got})"."""
    if not ok:
        raise option_error(task, field, f"must be {expected} (got {got})")


def check_fields(task: str, options, strings=(), optional=(), positive=()) -> None:
    """Strings are non-empty strings; the rest integers (>= 1 when positive, else >= 0)."""
    for f in dataclasses.fields(options):
        value = getattr(options, f.name)
        if value is None and f.name in optional:
            continue
        null = " or null" if f.name in optional else ""
        if f.name in strings:
            require(task, f.name, isinstance(value, str) and value != "", "a non-empty string" + null, repr(value))
            continue
        ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
        require(task, f.name, ok, "an integer" + null, repr(value))
        object.__setattr__(options, f.name, int(value))   # e.g. numpy ints, for JSON
        low = 1 if f.name in positive else 0
        require(task, f.name, value >= low, f">= {low}", value)


@dataclass(frozen=True)
class SplitOptions:
    """Split sizes and seed of a generated task; subclasses add generator settings.

    A subclass's fields are exactly the keywords of its task's splits builder. Every field
    is an integer; a subclass's `__post_init__` calls `check_common` first and then checks
    its own rules, so a rule never compares a value of the wrong type.
    """

    TASK: ClassVar[str] = ""
    num_train: int
    num_val: int
    num_test: int
    seed: int = 0

    def check_common(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
            require(self.TASK, f.name, ok, "an integer", repr(value))
            object.__setattr__(self, f.name, int(value))   # e.g. numpy ints, for JSON
        for name in ("num_train", "num_val", "num_test", "seed"):
            self.at_least(name, 0)

    def at_least(self, name: str, low: int) -> None:
        require(self.TASK, name, getattr(self, name) >= low, f">= {low}", getattr(self, name))
