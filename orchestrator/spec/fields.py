"""Where in a spec a trainer setting is set: the field an error about that setting names."""
from __future__ import annotations

from .schema import CategoricalParam, SweepSpec, TaskBlock

__all__ = ["setting_path", "fixed_path", "objectives_path", "block_path", "for_task"]

def setting_path(spec: SweepSpec, i: int, block: TaskBlock, key: str, corner: int) -> str:
    """The spec path that sets trainer setting `key` (dotted: task_options.x) for block i."""
    end = "low" if corner == 0 else "high"
    for name, param in spec.parameters.items():
        if name == key or name.startswith(key + "."):
            return f"parameters.{name}." + ("values" if isinstance(param, CategoricalParam) else end)
    fixed = fixed_path(spec, i, block, key)
    if fixed is not None:
        return fixed
    if key.startswith("task_options."):
        return f"{block_path(spec, i)}.{key[len('task_options.'):]}"
    return f"training.{key}"


def fixed_path(spec: SweepSpec, i: int, block: TaskBlock, key: str) -> str | None:
    """Where a fixed section sets `key` for block i (the section that wins), or None."""
    path = block_path(spec, i)
    if key.startswith("task_options."):
        option = key[len("task_options."):]
        return f"{path}.{option}" if option in block.options else None
    for where, section in ((f"{path}.training", block.training), (f"{path}.model", block.model),
                           ("training", spec.training), ("model", spec.model)):
        if key in section:
            return f"{where}.{key}"
    return None


def objectives_path(spec: SweepSpec, i: int, block: TaskBlock) -> str:
    return "objectives" if block.objectives is None else f"{block_path(spec, i)}.objectives"


def block_path(spec: SweepSpec, i: int) -> str:
    return "task" if spec.task is not None else f"tasks[{i}]"


def for_task(spec: SweepSpec, block: TaskBlock) -> str:
    return f" (task {block.name!r})" if spec.tasks is not None and len(spec.tasks) > 1 else ""
