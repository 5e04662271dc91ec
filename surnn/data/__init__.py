"""Data for the surnn experiments: generated tasks as memory-mapped Arrow tables.

    task = load_task("listops", {"num_train": 1000})
    for batch in task.train.iter_batches(32, shuffle=True, seed=epoch):
        ...
"""
from .base import IGNORE_INDEX, PAD_ID, Batch, TaskInfo
from .tasks import TASK_NAMES, Task, load_task, task_info

__all__ = ["load_task", "task_info", "TASK_NAMES", "Task", "TaskInfo", "Batch", "IGNORE_INDEX", "PAD_ID"]
