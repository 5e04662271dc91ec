"""Hypervolume against epochs spent: the sweep's searchers and schedulers against random search.

    python benchmarks/search_efficiency.py --table          # every shipped problem, 5 seeds
    python benchmarks/search_efficiency.py --problem benchmarks.search_problems:zdt1 \\
        --methods default,random,tpe_asha_b3 --grace 1 --rf 3 --json out.json
    python benchmarks/search_efficiency.py --quick          # 2 seeds, 16 full trials, a smoke run

A problem (`--problem module:function`, repeatable; default: the four of
benchmarks/search_problems.py) is a trainable with the project's contract, `train(config,
report)` reporting `epoch` and its objectives after every epoch, that also carries
`parameters`, `objectives` [(metric, mode, ref)], `epochs` and `epoch_time(params)` (see
benchmarks/search_problems.py). `--epochs N` gives every problem N epochs per full trial.

Methods (`--methods`, comma-separated), each run once per seed:

* `default`: what a spec that names no `search.sampler` and no `scheduler` runs: the schema's
  defaults (orchestrator/spec/schema.py), built by `orchestrator.search.searcher_for` and
  `orchestrator.runner.make_scheduler` as the sweep builds them.
* `SAMPLER` (random, tpe, gp, nsga2): that sampler, no early stopping: every trial runs all epochs.
* `SAMPLER_asha`, `SAMPLER_asha_bN`: with `pareto_asha` (`--grace`, `--rf`, N brackets, default 1);
  a model-based sampler is then rung-aware (`RungOptunaSearch`: one shadow study per rung).
  `..._bN_rr`: trials dealt to brackets round-robin instead of by budget (`RungCore.assign`);
  `..._aNN`: `scheduler.min_agreement` NN/100 (a rung that ranks unlike the full budget cuts none,
  and the rung-aware sampler passes over its model). `..._promo`: promotion-type rungs
  (`RungCore(kind="promotion")`: a trial pauses at a rung and resumes once it ranks in the best
  third there; a free worker resumes the highest promotable trial before starting a new one).
  `default_stop`: the default with stop-type rungs (a cut is final; min_agreement 0.7).
* `SAMPLER_asha_pruned`: with pareto_asha, but the sampler learns only from the main study
  (full-budget trials COMPLETE, stopped ones PRUNED), as before rung-aware sampling.

The searcher and scheduler are the classes the sweep hands to Ray (`RungOptunaSearch`,
`ParetoOptunaSearch`, `ParetoASHA`), on an in-memory Optuna study. Ray itself is not run: an
event queue ordered by simulated time stands in for `--max-concurrent` asynchronous workers
(default 4). Each trial calls the problem's `train` once for all its epochs when it starts
(the objectives are cheap) and its reports are then replayed one epoch at a time, each taking
`epoch_time(params)` times a seeded jitter in [0.9, 1.1]; every report goes to the scheduler
(which may stop the trial) and to the searcher, as Ray would send it. Left out: Ray's own
scheduling order, and trials still running when the budget runs out (their epochs count).

Budget: epochs summed over all trials (default 48 full trials). Only trials that ran all
epochs enter the Pareto front and its hypervolume (reference point: the problem's refs).
Target: `--target` (0.95) x random search's mean final hypervolume over the seeds.

Printed per problem: hypervolume at five budgets (mean [min, max] over seeds); trials started,
finished and stopped; per method and seed the epochs needed to reach the target; the ratio
random / method of the median epochs (above 1: fewer epochs than random). `--table` ends with
a markdown table of the ratios (every method x every problem). `--json PATH` writes
everything, hypervolume trajectories, rung counts and stops per rung included.
"""
from __future__ import annotations

import argparse
import heapq
import itertools
import json
import math
import statistics
import sys
import time
from types import SimpleNamespace

import numpy as np
import optuna

from orchestrator import pareto
from orchestrator.runner import make_scheduler
from orchestrator.schedulers.moasha import ParetoASHA
from orchestrator.search import distributions, nsga2_population, rung_levels, searcher_for
from orchestrator.spec.schema import ParetoASHAScheduler, Search, SweepSpec
from surnn.trainable import FIDELITY, TrainableImportError, load_trainable

SHIPPED = [f"benchmarks.search_problems:{n}" for n in ("zdt1", "crossing", "dtlz2", "surrogate")]
SAMPLERS = ("random", "tpe", "gp", "nsga2")


# ---------------------------------------------------------------------------- methods

def default_search() -> tuple[str, object]:
    """(sampler, scheduler settings) a spec that names neither gets."""
    return Search.model_fields["sampler"].default, SweepSpec.model_fields["scheduler"].default


def parse_method(method: str, grace: int, rf: float) -> tuple[str, object, bool]:
    """(sampler, scheduler settings, rung-aware allowed) for a method name; ValueError if unknown."""
    if method in ("default", "default_stop"):
        sampler, scheduler = default_search()
        if method == "default_stop":   # min_agreement re-derived: the stop kind's own default
            settings = {k: v for k, v in scheduler.model_dump().items() if k not in ("kind", "min_agreement")}
            scheduler = ParetoASHAScheduler(**settings, kind="stop")
        return sampler, scheduler, True
    sampler, _, rest = method.partition("_")
    if sampler not in SAMPLERS:
        raise ValueError(f"--methods: unknown method {method!r}")
    if not rest:
        return sampler, SimpleNamespace(name="none"), False
    parts = rest.split("_")
    if parts[0] != "asha" or len(parts) > 6:
        raise ValueError(f"--methods: unknown method {method!r}")
    brackets, rung_aware, deal, agreement, kind = 1, True, "budget", None, "stop"
    for part in parts[1:]:
        if part.startswith("a") and part[1:].isdigit():
            agreement = int(part[1:]) / 100
        elif part == "pruned":
            rung_aware = False
        elif part == "rr":
            deal = "round_robin"
        elif part == "promo":
            kind = "promotion"
        elif part.startswith("b") and part[1:].isdigit() and int(part[1:]) >= 1:
            brackets = int(part[1:])
        else:
            raise ValueError(f"--methods: unknown method {method!r}")
    sch = ParetoASHAScheduler(name="pareto_asha", grace_period=grace, reduction_factor=rf, brackets=brackets,
                              min_agreement=agreement, kind=kind)
    return sampler, SimpleNamespace(**sch.model_dump(), deal=deal), rung_aware


def describe(method: str, grace: int, rf: float) -> str:
    sampler, sch, rung_aware = parse_method(method, grace, rf)
    if sch.name == "none":
        return f"{sampler}, no early stopping"
    kind = "rung-aware" if rung_aware and sampler != "random" else "main study only"
    return (f"{sampler} ({kind}) + pareto_asha grace {sch.grace_period}, rf {sch.reduction_factor:g}, "
            f"{sch.brackets} bracket(s), min_agreement {sch.min_agreement}"
            + (", promotion-type rungs" if getattr(sch, "kind", "stop") == "promotion" else ""))


def make_search(problem, method: str, seed: int, budget: int, grace: int, rf: float):
    """The searcher and scheduler (or None) a sweep would hand to Ray for this method."""
    sampler, sch, rung_aware = parse_method(method, grace, rf)
    metrics = problem.metrics()
    modes = [mode for _, mode, _ in problem.objectives]
    objectives = [SimpleNamespace(metric=m, mode=mode) for m, mode in zip(metrics, modes)]
    # no max_concurrent: `simulate` keeps its own workers busy
    scheduler = make_scheduler(SimpleNamespace(scheduler=sch, search=SimpleNamespace(max_concurrent=None)),
                               objectives, problem.epochs)
    if getattr(sch, "deal", "budget") != "budget":    # round-robin dealing: not a spec setting
        scheduler = ParetoASHA(metrics, modes, time_attr=FIDELITY, grace_period=sch.grace_period,
                               reduction_factor=sch.reduction_factor, max_t=problem.epochs,
                               brackets=sch.brackets, deal=sch.deal, min_agreement=sch.min_agreement,
                               kind=sch.kind)
    levels = rung_levels(sch, problem.epochs) if rung_aware else []
    searcher = searcher_for(sampler, seed, levels, nsga2_population(budget // problem.epochs * 3),
                            min_agreement=getattr(sch, "min_agreement", None),
                            space=distributions(problem.parameters), metric=metrics, mode=modes,
                            full_budget=problem.epochs, time_attr=FIDELITY)
    return searcher, scheduler


# ---------------------------------------------------------------------------- the simulated sweep

def front_hypervolume(problem, values: list[list[float]]) -> float:
    if not values:
        return 0.0
    goals = ["maximize" if mode == "max" else "minimize" for _, mode, _ in problem.objectives]
    ref = pareto.to_minimization(np.array([[r for _, _, r in problem.objectives]]), goals)[0]
    return pareto.hypervolume(pareto.to_minimization(np.array(values), goals), ref)


def simulate(problem, method: str, seed: int, budget: int, max_concurrent: int, grace: int = 1,
             rf: float = 3.0, max_trials: int | None = None) -> dict:
    """One search to `budget` epochs (or `max_trials` trials): HV trajectory [(epochs spent, hv)],
    counts, rung sizes, stops per epoch, and each trial's params and last epoch in start order."""
    searcher, scheduler = make_search(problem, method, seed, budget, grace, rf)
    metrics, max_t = problem.metrics(), problem.epochs
    jitter = np.random.default_rng([seed, 7])
    spent, finished, trajectory = 0, [], [(0, 0.0)]
    counts = {"trials": 0, "completed": 0, "stopped": 0, "promoted": 0}
    core = scheduler._core if scheduler else None
    waiting: dict[str, dict] = {}                      # paused trials (promotion-type rungs)
    stopped_at: dict[int, int] = {}
    events: list = []                                  # (time, tie-break, trial state)
    order = itertools.count()

    trials: list[dict] = []

    def launch(now: float) -> None:
        promoted = core.next_promotion() if core is not None and core.kind == "promotion" else None
        if promoted is not None:                       # a free worker resumes it before a new trial
            core.resume(promoted)
            counts["promoted"] += 1
            state = waiting.pop(promoted)
            heapq.heappush(events, (now + state["epoch_time"], next(order), state))
            return
        if max_trials is not None and counts["trials"] >= max_trials:
            return
        tid = f"t{counts['trials']}"
        params = searcher.suggest(tid)
        counts["trials"] += 1
        reports: list[dict] = []
        problem.train({**params, "epochs": max_t}, lambda m, checkpoint_dir=None: reports.append(dict(m)))
        trials.append({"params": dict(params), "epochs": 0})
        state = {"tid": tid, "trial": SimpleNamespace(trial_id=tid), "reports": reports, "next": 0,
                 "i": len(trials) - 1,
                 "epoch_time": problem.epoch_time(params) * jitter.uniform(0.9, 1.1)}
        heapq.heappush(events, (now + state["epoch_time"], next(order), state))

    for _ in range(max_concurrent):
        launch(0.0)
    while events and spent < budget:
        now, _, state = heapq.heappop(events)
        result = state["reports"][state["next"]]
        state["next"] += 1
        spent += 1
        trials[state["i"]]["epochs"] = result[FIDELITY]
        decision = scheduler.on_trial_result(None, state["trial"], result) if scheduler else "CONTINUE"
        searcher.on_trial_result(state["tid"], result)
        if result[FIDELITY] >= max_t:
            searcher.on_trial_complete(state["tid"], result)
            counts["completed"] += 1
            finished.append([result[m] for m in metrics])
            trajectory.append((spent, front_hypervolume(problem, finished)))
        elif decision == "PAUSE":
            waiting[state["tid"]] = state
        elif decision == "STOP":
            searcher.on_trial_complete(state["tid"], result)          # told PRUNED by the searcher
            counts["stopped"] += 1
            stopped_at[int(result[FIDELITY])] = stopped_at.get(int(result[FIDELITY]), 0) + 1
        else:
            heapq.heappush(events, (now + state["epoch_time"], next(order), state))
            continue
        if spent < budget:
            launch(now)
    if core is not None:                               # paused at the end: they count as stopped
        for tid in core.end_paused():
            t = int(core.stopped[tid])
            counts["stopped"] += 1
            stopped_at[t] = stopped_at.get(t, 0) + 1
    rungs = [(int(level), n) for level, n in scheduler._core.rung_sizes()] if scheduler else []
    proposed = dict(searcher._rungs.proposed) if hasattr(searcher, "_rungs") else {}
    return {"trajectory": trajectory, "spent": spent, **counts, "rungs": rungs, "stopped_at": stopped_at,
            "proposed_from": proposed, "trial_list": trials}


def hv_at(trajectory, budget: int) -> float:
    return max((hv for spent, hv in trajectory if spent <= budget), default=0.0)


def budget_to(trajectory, target: float) -> int | None:
    return next((spent for spent, hv in trajectory if hv >= target), None)


# ---------------------------------------------------------------------------- one problem

def run_problem(problem, methods: list[str], seeds: list[int], args) -> dict:
    budget = args.budget or 48 * problem.epochs
    runs = {m: [] for m in methods}
    clock = {m: 0.0 for m in methods}
    for seed in seeds:
        for m in methods:
            t0 = time.perf_counter()
            runs[m].append(simulate(problem, m, seed, budget, args.max_concurrent, args.grace, args.rf))
            clock[m] += time.perf_counter() - t0
    random_final = statistics.mean(hv_at(r["trajectory"], budget) for r in runs["random"])
    target = args.target * random_final
    out = {"problem": problem.name, "epochs": problem.epochs, "budget": budget, "target": target,
           "random_final_hv": random_final, "methods": {}}
    for m in methods:
        needs = [budget_to(r["trajectory"], target) for r in runs[m]]
        med = statistics.median(n if n is not None else math.inf for n in needs)
        out["methods"][m] = {"description": describe(m, args.grace, args.rf), "epochs_to_target": needs,
                             "median": med, "seconds_per_search": clock[m] / len(seeds),
                             "runs": [{"seed": s, **r} for s, r in zip(seeds, runs[m])]}
    rand = out["methods"]["random"]["median"]
    for m, rec in out["methods"].items():
        rec["ratio"] = ratio(rand, rec["median"], budget)
    return out


def ratio(random_median: float, median: float, budget: int) -> str:
    """random / method of the median epochs; '<x' when the method's median seed misses the target."""
    if math.isfinite(median) and math.isfinite(random_median):
        return f"{random_median / median:.2f}"
    if math.isfinite(median):
        return f">{budget / median:.2f}"
    return f"<{random_median / budget:.2f}" if math.isfinite(random_median) else "n/a"


def print_problem(res: dict, n_seeds: int) -> None:
    budget, max_t = res["budget"], res["epochs"]
    methods = list(res["methods"])
    print(f"\n== {res['problem']}: {max_t} epochs per full trial, budget {budget} epochs "
          f"({budget / max_t:g} full trials)")
    for m, rec in res["methods"].items():
        print(f"  {m}: {rec['description']}")
    print(f"  hypervolume at budget (mean [min, max] over {n_seeds} seeds):")
    print(f"  {'epochs':>7s}   " + "".join(f"{m:>24s}" for m in methods))
    for b in sorted({round(budget * f) for f in (1 / 8, 1 / 4, 1 / 2, 3 / 4, 1)}):
        cells = []
        for rec in res["methods"].values():
            hvs = [hv_at(r["trajectory"], b) for r in rec["runs"]]
            cells.append(f"{statistics.mean(hvs):.4f} [{min(hvs):.3f}, {max(hvs):.3f}]")
        print(f"  {b:7d}   " + "".join(f"{c:>24s}" for c in cells))
    print(f"  target {res['target']:.4f} (= {res['target'] / res['random_final_hv']:g} x random's mean final "
          f"{res['random_final_hv']:.4f}); epochs to reach it per seed, median, ratio random / method:")
    for m, rec in res["methods"].items():
        rs = rec["runs"]
        shown = ", ".join(str(n) if n is not None else f">{budget}" for n in rec["epochs_to_target"])
        med = f"{rec['median']:.0f}" if math.isfinite(rec["median"]) else f">{budget}"
        print(f"  {m:18s} [{shown}] median {med}, ratio {rec['ratio']}; trials "
              f"{statistics.mean(r['trials'] for r in rs):.0f} started, "
              f"{statistics.mean(r['completed'] for r in rs):.1f} full, "
              f"{statistics.mean(r['stopped'] for r in rs):.0f} stopped; {rec['seconds_per_search']:.1f} s/search")


# ---------------------------------------------------------------------------- main

def load_problem(ref: str, epochs: int | None):
    problem = load_trainable(ref)
    missing = [a for a in ("parameters", "objectives", "epochs", "epoch_time", "metrics") if not hasattr(problem, a)]
    if missing:
        raise TrainableImportError(f"{ref!r} lacks {', '.join(missing)} (see benchmarks/search_problems.py)")
    return problem.with_epochs(epochs) if epochs else problem


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--problem", action="append", help="module:function of a problem (repeatable; default: "
                   "the four of benchmarks/search_problems.py)")
    p.add_argument("--methods", default="default,tpe,nsga2,random_asha,tpe_asha,nsga2_asha,tpe_asha_b2,"
                                        "tpe_asha_b2_a70",
                   help="comma-separated (random is always run)")
    p.add_argument("--seeds", type=int, default=5, help="seeds 0 .. N-1 (default 5)")
    p.add_argument("--epochs", type=int, help="epochs per full trial for every problem (default: the problem's)")
    p.add_argument("--budget", type=int, help="total epochs per search (default: 48 full trials)")
    p.add_argument("--max-concurrent", type=int, default=4, help="simulated workers (default 4)")
    p.add_argument("--target", type=float, default=0.95, help="fraction of random's mean final HV (default 0.95)")
    p.add_argument("--grace", type=int, default=1, help="grace period of the SAMPLER_asha methods (default 1)")
    p.add_argument("--rf", type=float, default=3.0, help="reduction factor of the SAMPLER_asha methods (default 3)")
    p.add_argument("--table", action="store_true", help="end with a markdown table of the ratios")
    p.add_argument("--json", metavar="PATH", help="write every result as JSON")
    p.add_argument("--quick", action="store_true", help="a smoke run: 2 seeds, 16 full trials")
    args = p.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    methods = list(dict.fromkeys(["random", *(m.strip() for m in args.methods.split(",") if m.strip())]))
    try:
        for m in methods:
            parse_method(m, args.grace, args.rf)
        problems = [load_problem(ref, args.epochs) for ref in (args.problem or SHIPPED)]
    except (ValueError, TrainableImportError) as exc:
        print(f"search_efficiency: {exc}", file=sys.stderr)
        return 2
    if args.quick:
        args.seeds = 2
        args.budget = args.budget or 16 * max(pr.epochs for pr in problems)
    seeds = list(range(args.seeds))
    sampler, sch = default_search()
    print(f"search efficiency: {args.max_concurrent} simulated asynchronous workers, seeds {seeds}; "
          f"default = {sampler} + {sch.name}" + (f" (grace {sch.grace_period}, rf {sch.reduction_factor:g}, "
                                                 f"{sch.brackets} bracket(s), {sch.kind}-type rungs, min_agreement "
                                                 f"{sch.min_agreement})" if sch.name != "none" else ""))
    results = []
    for problem in problems:
        results.append(run_problem(problem, methods, seeds, args))
        print_problem(results[-1], len(seeds))
    if args.table:
        print(f"\nratio random / method of the median epochs to {args.target:g} x random's final hypervolume "
              f"({len(seeds)} seeds; <x: the method's median seed misses the target within the budget)\n")
        print("| method | " + " | ".join(r["problem"] for r in results) + " |")
        print("|---|" + "---|" * len(results))
        for m in methods:
            print(f"| {m} | " + " | ".join(r["methods"][m]["ratio"] for r in results) + " |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "problems": results}, f, default=str)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
