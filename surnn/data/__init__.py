"""Data for the surnn experiments: generated tasks as memory-mapped Arrow tables.

    task = load_task("listops", {"num_train": 1000})
    for batch in task.train.iter_batches(32, shuffle=True, seed=epoch):
        ...

The registry (and with it `datasets`) is imported on first use of `load_task`, `task_info`,
`TASK_NAMES` or `Task`, so the batch types here cost nothing to import.
"""
from .base import IGNORE_INDEX, PAD_ID, Batch, TaskInfo

_LAZY = ("TASK_NAMES", "Task", "load_task", "task_info")

__all__ = ["load_task", "task_info", "TASK_NAMES", "Task", "TaskInfo", "Batch", "IGNORE_INDEX", "PAD_ID"]


def __getattr__(name: str):
    if name in _LAZY:
        from . import tasks

        return getattr(tasks, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
