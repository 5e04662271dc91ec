"""Trial schedulers: a Ray-free rung core and the Ray Tune adapter around it.

`ParetoASHA` is loaded lazily so that `RungCore` can be imported (and tested) without
importing Ray.
"""

from orchestrator.schedulers.rungs import CONTINUE, STOP, RungCore

__all__ = ["CONTINUE", "STOP", "ParetoASHA", "RungCore"]


def __getattr__(name: str):
    if name == "ParetoASHA":
        from orchestrator.schedulers.moasha import ParetoASHA

        return ParetoASHA
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
