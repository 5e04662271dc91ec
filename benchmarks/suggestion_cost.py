"""Search cost: CPU seconds of one suggestion, and of the scheduler's decisions, at N trials.

    python benchmarks/suggestion_cost.py tpe 500
    python benchmarks/suggestion_cost.py gp 500

Suggestion: the sweep's own RungModels and make_sampler (4 parameters, 2 objectives, random
values, N observations at the model's rung). Scheduler: the sweep's RungCore with the schema's
default pareto_asha settings (grace 1, reduction factor 3, 3 brackets over 27 epochs, both
kinds of rungs), N trials fed through it as a sweep would (paused trials resumed by
`next_promotion` first); then the CPU of one more report reaching a rung plus the
`next_promotion` that Ray's scheduler asks after it.
"""
import random
import sys
import time

import numpy as np
import optuna

from orchestrator.rung_search import RungModels
from orchestrator.schedulers.rungs import PAUSE, STOP, RungCore
from orchestrator.search import make_sampler
from orchestrator.spec.schema import ParetoASHAScheduler

EPOCHS = 27
space = {"lr": optuna.distributions.FloatDistribution(1e-4, 1e-1, log=True),
         "width": optuna.distributions.IntDistribution(32, 256),
         "rate": optuna.distributions.FloatDistribution(0.05, 0.9),
         "lam": optuna.distributions.FloatDistribution(1e-3, 10, log=True)}


def suggestion_cost(name: str, n: int) -> list[float]:
    m = RungModels(space, ["maximize", "minimize"], lambda i: make_sampler(name, 1 + i, False), [float(EPOCHS)],
                   seed=0, random_fraction=0.0)
    rng = random.Random(0)
    for i in range(n):
        p = {k: d.low + rng.random() * (d.high - d.low) for k, d in space.items()}
        p["width"] = int(p["width"])
        m.observe(str(i), p, EPOCHS, [rng.random(), rng.random()])
    times = []
    for _ in range(5):
        t0 = time.process_time()
        m.propose()
        times.append(time.process_time() - t0)
    return sorted(times)


def _run(core: RungCore, tid: str, quality: float, start: int, rng: np.random.Generator) -> None:
    """Report epochs from `start` until the trial finishes, is stopped, or pauses."""
    for t in range(start, EPOCHS + 1):
        point = np.array([quality + 1.0 / t, rng.random()])
        if core.on_result(tid, t, point) in (STOP, PAUSE) or t == EPOCHS:
            return


def scheduler_cost(kind: str, n: int) -> list[float]:
    s = ParetoASHAScheduler(name="pareto_asha", kind=kind)
    core = RungCore(s.grace_period, s.reduction_factor, EPOCHS, s.brackets, min_agreement=s.min_agreement, kind=kind)
    rng = np.random.default_rng(0)
    quality, at = {}, {}
    for i in range(n):
        promoted = core.next_promotion() if kind == "promotion" else None
        if promoted is not None:   # a free worker resumes it before a new trial
            core.resume(promoted)
            _run(core, promoted, quality[promoted], int(core.levels[at.get(promoted, 0)]) + 1, rng)
        tid = str(i)
        quality[tid] = rng.random()
        _run(core, tid, quality[tid], 1, rng)
        for ptid, (_, rung) in core.paused.items():
            at[ptid] = rung
    times = []
    for j in range(5):
        tid = f"new{j}"
        core.assign(tid)
        t0 = time.process_time()
        core.on_result(tid, 1, np.array([rng.random() + 1.0, rng.random()]))
        if kind == "promotion":
            core.next_promotion()
        times.append(time.process_time() - t0)
    return sorted(times)


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("tpe", "gp", "nsga2", "random") or not argv[1].isdigit():
        print("usage: suggestion_cost.py {tpe,gp,nsga2,random} N", file=sys.stderr)
        return 2
    name, n = argv[0], int(argv[1])
    t = suggestion_cost(name, n)
    print(f"{name} at {n} observations: median CPU per suggestion {t[2]:.3f} s (min {t[0]:.3f}, max {t[-1]:.3f})")
    for kind in ("promotion", "stop"):
        t = scheduler_cost(kind, n)
        print(f"pareto_asha ({kind}-type rungs) at {n} trials: median CPU per report at a rung "
              f"{t[2] * 1000:.1f} ms (min {t[0] * 1000:.1f}, max {t[-1] * 1000:.1f})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
