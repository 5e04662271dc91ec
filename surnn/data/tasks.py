"""Every task, registered: importing this module imports each task module once.

Each task's options and builder live beside its reader (`listops.py`, `synthetic.py`,
`hub_tasks.py`, `lm.py`, `lra_tasks.py`) and register into the one registry
(`registry.py`). A new task is one `register(...)` call in its own module plus an import here.
"""
from __future__ import annotations

# The order of these imports is the order of TASK_NAMES (generated, hub, language, LRA files).
from . import listops  # noqa: F401, I001  (each module registers its tasks)
from . import synthetic  # noqa: F401
from . import hub_tasks  # noqa: F401
from . import lm  # noqa: F401
from . import lra_tasks  # noqa: F401
from .registry import Task, TaskSpec, load_task, make_options, task_info, task_names

TASK_NAMES: tuple[str, ...] = task_names()

__all__ = ["TASK_NAMES", "Task", "TaskSpec", "load_task", "make_options", "task_info"]
