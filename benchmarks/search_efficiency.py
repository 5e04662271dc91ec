"""Hypervolume against budget: the project's default search (TPE + pareto_asha) against random search.

    python benchmarks/search_efficiency.py            # 5 seeds, up to 1296 epochs (48 full trials)
    python benchmarks/search_efficiency.py --quick    # 2 seeds, up to 432 epochs, a smoke run
    python benchmarks/search_efficiency.py --seeds 10 --budget 2592 --max-concurrent 8

Methods, each run once per seed:

* default: the spec default, `search.sampler: tpe` and `scheduler: pareto_asha` with grace 1,
  reduction factor 3 (rungs at epochs 1, 3 and 9 of 27). The sampler is the one the project
  builds (`orchestrator.search.make_sampler("tpe", seed, False)`: multivariate TPE), the
  early-stopping decisions are the project's own `orchestrator.schedulers.rungs.RungCore`
  (what `ParetoASHA` delegates to), fed minimisation points as `ParetoASHA` feeds them.
* random: `make_sampler("random", seed, False)`, no early stopping: every trial runs 27 epochs.

`--methods default,random,tpe,random_asha` adds TPE without early stopping and random search
with pareto_asha, which separate what the sampler and the early stopping each contribute.

Budget is the total number of epochs spent over all trials. A trial that the rung core
stops is told to Optuna as PRUNED without values, as `orchestrator.search.ParetoOptunaSearch`
does, and only trials that reached the full 27 epochs enter the Pareto front and the
hypervolume (`orchestrator.pareto.to_minimization` and `hypervolume`), with the fixed
reference point val_accuracy 0, update_rate 1 (the project's spec refs).

This does NOT run Ray. It simulates the asynchronous scheduler in-process: `--max-concurrent`
workers (default 4), each running one trial, an event queue ordered by simulated time (an
epoch takes 0.7, 1.0 or 1.6 time units for hidden size 64, 128, 256, times a per-trial
jitter), Optuna ask/tell on an in-memory study (`ask(fixed_distributions=...)` over the
distributions `orchestrator.search.distributions` makes, as Ray's OptunaSearch asks), and the
RungCore judging every report. Why: what is measured is the search (sampler + stopping rule)
per epoch of budget, which does not depend on Ray's process machinery; simulated, several
seeds of hundreds of trials run in seconds instead of hours, and the result is deterministic.
What the simulation leaves out: Ray's own scheduling order, and trials still running when the
budget runs out (their spent epochs count, they contribute nothing).

The task is a synthetic stand-in for a SuRNN run (no torch), with the project's parameters:
gate_threshold in [-0.5, 0.9], sparsity_lambda in [1e-4, 1] (log), hidden_size in
{64, 128, 256}, lr in [3e-4, 1e-2] (log). update_rate falls with the threshold and with
sparsity; the final accuracy rises with the update rate (about 0.1 + 0.85 sqrt(update_rate),
a ZDT1-like front), is capped by hidden size, has its best lr near 2e-3 and pays a small
penalty for strong sparsity; accuracy approaches it over the epochs at a speed that grows
with lr (so high-lr trials look better early than they end up: early stopping can be
misled; `--speed constant` gives every trial the same speed). Reports carry seeded Gaussian
noise (accuracy sd 0.01, update rate sd 0.005).

Printed: the mean [min, max] hypervolume over seeds at five budgets; trials started,
completed and stopped per search; the target (by default 95% of random search's mean final
hypervolume), the epochs each seed of each method needs to reach it, and the ratio of the
medians (random / method: above 1, the method needs fewer epochs).
"""
from __future__ import annotations

import argparse
import heapq
import itertools
import math
import statistics
import time

import numpy as np
import optuna

from types import SimpleNamespace

from orchestrator import pareto
from orchestrator.rung_search import RungOptunaSearch
from orchestrator.schedulers.moasha import ParetoASHA
from orchestrator.schedulers.rungs import RungCore
from orchestrator.search import ParetoOptunaSearch, distributions, make_sampler, nsga2_population
from orchestrator.spec import CategoricalParam, FloatParam

MAX_T = 27
GRACE, RF = 1, 3
METRICS = ["val_accuracy", "update_rate"]
GOALS = ["maximize", "minimize"]
REF = pareto.to_minimization(np.array([[0.0, 1.0]]), GOALS)[0]     # spec refs: accuracy 0, update rate 1
PARAMETERS = {
    "gate_threshold": FloatParam(type="float", low=-0.5, high=0.9),
    "sparsity_lambda": FloatParam(type="float", low=1.0e-4, high=1.0, log=True),
    "hidden_size": CategoricalParam(type="categorical", values=[64, 128, 256]),
    "lr": FloatParam(type="float", low=3.0e-4, high=1.0e-2, log=True),
}
EPOCH_TIME = {64: 0.7, 128: 1.0, 256: 1.6}
# method -> (sampler, pareto_asha brackets or 0 for no early stopping, rung-aware sampling); the
# searcher and scheduler are the classes the sweep hands to Ray (orchestrator.search.make_searcher
# picks RungOptunaSearch for a model-based sampler with early stopping)
METHODS = {"default": ("tpe", 1, True), "random": ("random", 0, False), "tpe": ("tpe", 0, False),
           "random_asha": ("random", 1, False), "tpe_asha_pruned": ("tpe", 1, False),
           "tpe_b2": ("tpe", 2, True), "tpe_b3": ("tpe", 3, True), "gp": ("gp", 1, True),
           "nsga2": ("nsga2", 1, True), "random_b3": ("random", 3, False)}
LR_SPEED = True      # --speed constant: every trial learns at the same speed, whatever its lr


# ---------------------------------------------------------------------------- the synthetic task

def final_values(g, lam, h, lr):
    """Noiseless (final accuracy, update rate, learning speed); numpy arrays or scalars."""
    g, lam, h, lr = (np.asarray(v, dtype=float) for v in (g, lam, h, lr))
    z = 4.0 * (g - 0.2) + 1.2 * (np.log10(lam) + 2.0)
    update_rate = 1.0 / (1.0 + np.exp(z))
    capacity = np.select([h <= 64, h <= 128], [0.88, 0.96], 1.0)
    lr_quality = np.clip(1.0 - 0.25 * ((np.log10(lr) - math.log10(2e-3)) / 0.8) ** 2, 0.5, 1.0)
    sparsity_penalty = 1.0 - 0.08 * (np.log10(lam) + 4.0) / 4.0
    final_acc = 0.1 + 0.85 * np.sqrt(update_rate) * capacity * lr_quality * sparsity_penalty
    speed = 0.25 * (lr / 1e-3) ** 0.8 * (128.0 / h) ** 0.3 if LR_SPEED else np.full_like(lr, 0.3)
    return final_acc, update_rate, speed


def report_at(params: dict, epoch: int, noise: np.random.Generator) -> tuple[float, float]:
    """(val_accuracy, update_rate) reported after `epoch` epochs, with noise."""
    acc, rate, speed = final_values(params["gate_threshold"], params["sparsity_lambda"], params["hidden_size"],
                                    params["lr"])
    acc_t = 0.1 + (float(acc) - 0.1) * (1.0 - math.exp(-float(speed) * epoch))
    rate_t = float(rate) * (1.0 + 0.3 * math.exp(-epoch / 3.0))          # settles over the first epochs
    acc_t = float(np.clip(acc_t + noise.normal(0.0, 0.01), 0.0, 1.0))
    rate_t = float(np.clip(rate_t + noise.normal(0.0, 0.005), 0.0, 1.0))
    return acc_t, rate_t


def reference_hypervolume(n: int = 20000, seed: int = 12345) -> float:
    """Hypervolume of the noiseless full-budget front of n random configurations (context only)."""
    rng = np.random.default_rng(seed)
    g = rng.uniform(-0.5, 0.9, n)
    lam = 10 ** rng.uniform(-4, 0, n)
    h = rng.choice([64, 128, 256], n)
    lr = 10 ** rng.uniform(math.log10(3e-4), -2, n)
    acc, rate, speed = final_values(g, lam, h, lr)
    acc = 0.1 + (acc - 0.1) * (1.0 - np.exp(-speed * MAX_T))
    rate = rate * (1.0 + 0.3 * math.exp(-MAX_T / 3.0))
    return front_hypervolume(np.stack([acc, rate], axis=1))


def front_hypervolume(values: np.ndarray) -> float:
    if len(values) == 0:
        return 0.0
    return pareto.hypervolume(pareto.to_minimization(values, GOALS), REF)


# ---------------------------------------------------------------------------- the simulated sweep

def make_search(method: str, seed: int, budget: int):
    """The searcher and scheduler (or None) a sweep would hand to Ray for this method."""
    sampler_name, brackets, rung_aware = METHODS[method]
    common = dict(space=distributions(PARAMETERS), metric=METRICS, mode=["max", "min"],
                  full_budget=MAX_T, time_attr="epoch")
    population = nsga2_population(budget // MAX_T * 3)
    if rung_aware:
        searcher = RungOptunaSearch(
            levels=RungCore(GRACE, RF, MAX_T).levels, seed=seed, sampler=optuna.samplers.RandomSampler(seed=seed),
            make_rung_sampler=lambda: make_sampler(sampler_name, seed, False, population), **common)
    else:
        searcher = ParetoOptunaSearch(sampler=make_sampler(sampler_name, seed, False, population), **common)
    scheduler = ParetoASHA(METRICS, ["max", "min"], time_attr="epoch", grace_period=GRACE, reduction_factor=RF,
                           max_t=MAX_T, brackets=brackets) if brackets else None
    return searcher, scheduler


def simulate(method: str, seed: int, budget: int, max_concurrent: int) -> dict:
    """One search to `budget` epochs. Returns the HV trajectory [(epochs spent, hv)] and counts."""
    searcher, scheduler = make_search(method, seed, budget)
    rng = np.random.default_rng([seed, 7])            # epoch durations
    spent = 0
    finished: list[tuple[float, float]] = []           # full-budget (accuracy, update rate)
    trajectory = [(0, 0.0)]
    counts = {"trials": 0, "completed": 0, "pruned": 0}
    events: list = []                                  # (time, tie-break, trial state)
    order = itertools.count()

    def launch(now: float) -> None:
        number = counts["trials"]
        tid = f"t{number}"
        params = searcher.suggest(tid)
        counts["trials"] += 1
        state = {"tid": tid, "trial": SimpleNamespace(trial_id=tid), "params": params, "epoch": 0,
                 "epoch_time": EPOCH_TIME[params["hidden_size"]] * rng.uniform(0.9, 1.1),
                 "noise": np.random.default_rng([seed, number, 11])}
        heapq.heappush(events, (now + state["epoch_time"], next(order), state))

    for _ in range(max_concurrent):
        launch(0.0)
    while events and spent < budget:
        now, _, state = heapq.heappop(events)
        state["epoch"] += 1
        spent += 1
        acc, rate = report_at(state["params"], state["epoch"], state["noise"])
        result = {"val_accuracy": acc, "update_rate": rate, "epoch": state["epoch"]}
        decision = scheduler.on_trial_result(None, state["trial"], result) if scheduler else "CONTINUE"
        searcher.on_trial_result(state["tid"], result)
        if state["epoch"] >= MAX_T:
            searcher.on_trial_complete(state["tid"], result)
            counts["completed"] += 1
            finished.append((acc, rate))
            trajectory.append((spent, front_hypervolume(np.array(finished))))
        elif decision == "STOP":
            searcher.on_trial_complete(state["tid"], result)          # told PRUNED by the searcher
            counts["pruned"] += 1
        else:
            heapq.heappush(events, (now + state["epoch_time"], next(order), state))
            continue
        if spent < budget:
            launch(now)
    return {"trajectory": trajectory, "spent": spent, **counts}


def hv_at(trajectory: list[tuple[int, float]], budget: int) -> float:
    return max((hv for spent, hv in trajectory if spent <= budget), default=0.0)


def budget_to(trajectory: list[tuple[int, float]], target: float) -> int | None:
    return next((spent for spent, hv in trajectory if hv >= target), None)


# ---------------------------------------------------------------------------- report

def main() -> int:
    global LR_SPEED, GRACE, RF
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, default=5, help="seeds 0 .. N-1 for sampler and noise (default 5)")
    p.add_argument("--budget", type=int, default=48 * MAX_T,
                   help=f"total epochs per search (default {48 * MAX_T}: 48 full trials)")
    p.add_argument("--max-concurrent", type=int, default=4, help="simulated workers (default 4)")
    p.add_argument("--target", type=float, default=0.95,
                   help="target = this fraction of random search's mean final hypervolume (default 0.95)")
    p.add_argument("--methods", default="default,random",
                   help="comma-separated, from default (TPE + pareto_asha), random (random, no early stopping), "
                        "tpe (TPE, no early stopping), random_asha (random + pareto_asha); default and random "
                        "are always run (default: default,random)")
    p.add_argument("--speed", choices=["lr", "constant"], default="lr",
                   help="lr: learning speed grows with lr, so early epochs can mislead early stopping (default); "
                        "constant: every trial learns at the same speed")
    p.add_argument("--grace", type=int, default=GRACE, help=f"pareto_asha grace period (default {GRACE})")
    p.add_argument("--rf", type=float, default=RF, help=f"pareto_asha reduction factor (default {RF})")
    p.add_argument("--table", action="store_true", help="end with a markdown table of the ratios")
    p.add_argument("--quick", action="store_true", help="a smoke run: 2 seeds, budget 432 epochs (16 full trials)")
    args = p.parse_args()
    if args.quick:
        args.seeds, args.budget = 2, 16 * MAX_T
    GRACE, RF = args.grace, args.rf
    LR_SPEED = args.speed == "lr"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    extra = [m.strip() for m in args.methods.split(",") if m.strip() and m.strip() not in ("default", "random")]
    unknown = [m for m in extra if m not in METHODS]
    if unknown:
        p.error(f"--methods: unknown {unknown} (choose from {', '.join(METHODS)})")
    methods = ["default", "random", *dict.fromkeys(extra)]
    seeds = list(range(args.seeds))
    levels = [int(x) for x in RungCore(GRACE, RF, MAX_T).levels]

    print(f"search efficiency: synthetic SuRNN surrogate, {len(PARAMETERS)} parameters, objectives "
          f"val_accuracy (max) / update_rate (min), reference point (0, 1); {MAX_T} epochs per full trial; "
          f"{args.max_concurrent} simulated asynchronous workers; budget {args.budget} epochs "
          f"({args.budget / MAX_T:g} full trials); seeds {seeds}")
    print(f"  rungs (pareto_asha grace {GRACE}, rf {RF}): epochs {levels}; stopped trials told PRUNED")
    for m in methods:
        sampler_name, brackets, rung_aware = METHODS[m]
        stopping = f"ParetoASHA, {brackets} bracket(s)" if brackets else "no early stopping"
        kind = "RungOptunaSearch (rung-aware)" if rung_aware else "ParetoOptunaSearch"
        print(f"  {m}: {kind} with {sampler_name}, {stopping}")
    if not LR_SPEED:
        print("  --speed constant: every trial learns at the same speed")
    ref_hv = reference_hypervolume()
    print(f"  hypervolume of the noiseless front of 20,000 random configurations (context): {ref_hv:.4f}")

    runs: dict[str, list[dict]] = {m: [] for m in methods}
    clock = {m: 0.0 for m in methods}
    for seed in seeds:
        for m in methods:
            t0 = time.perf_counter()
            runs[m].append(simulate(m, seed, args.budget, args.max_concurrent))
            clock[m] += time.perf_counter() - t0

    budgets = sorted({round(args.budget * f) for f in (1 / 8, 1 / 4, 1 / 2, 3 / 4, 1)})
    print(f"\nhypervolume at budget (mean [min, max] over {len(seeds)} seeds):")
    print(f"  {'epochs':>7s} {'full trials':>11s}   " + "".join(f"{m:>26s}" for m in methods))
    for b in budgets:
        cells = []
        for m in methods:
            hvs = [hv_at(r["trajectory"], b) for r in runs[m]]
            cells.append(f"{statistics.mean(hvs):.4f} [{min(hvs):.4f}, {max(hvs):.4f}]")
        print(f"  {b:7d} {b / MAX_T:11.1f}   " + "".join(f"{c:>26s}" for c in cells))

    print("\ntrials per search (mean over seeds):")
    for m in methods:
        rs = runs[m]
        print(f"  {m:11s} {statistics.mean(r['trials'] for r in rs):6.1f} started, "
              f"{statistics.mean(r['completed'] for r in rs):5.1f} reached {MAX_T} epochs, "
              f"{statistics.mean(r['pruned'] for r in rs):6.1f} stopped early; "
              f"{clock[m] / len(seeds):.1f} s of compute per search")

    random_final = statistics.mean(hv_at(r["trajectory"], args.budget) for r in runs["random"])
    target = args.target * random_final
    print(f"\ntarget: {args.target:g} x random search's mean final hypervolume ({random_final:.4f}) = {target:.4f}")
    medians = {}
    for m in methods:
        needs = [budget_to(r["trajectory"], target) for r in runs[m]]
        reached = [n for n in needs if n is not None]
        # a seed that never reaches it counts as "more than the budget" in the median
        ordered = sorted(n if n is not None else math.inf for n in needs)
        med = statistics.median(ordered) if ordered else math.inf
        medians[m] = med
        shown = ", ".join(str(n) if n is not None else f">{args.budget}" for n in needs)
        mean = f"{statistics.mean(reached):.0f}" if len(reached) == len(needs) else "n/a"
        print(f"  {m:11s} epochs to reach it per seed: [{shown}]; median "
              f"{f'{med:.0f}' if med != math.inf else '>' + str(args.budget)}, mean {mean} "
              f"(reached in {len(reached)}/{len(needs)} seeds)")
    if args.table:
        print("\n| method | epochs to the target (median) | seeds reaching it | ratio random / method |")
        print("|---|---|---|---|")
    for m in methods:
        if args.table:
            needs = [budget_to(r["trajectory"], target) for r in runs[m]]
            med = medians[m]
            ratio = medians["random"] / med if math.isfinite(med) and math.isfinite(medians["random"]) else None
            print(f"| {m} | {f'{med:.0f}' if math.isfinite(med) else '>' + str(args.budget)} | "
                  f"{sum(n is not None for n in needs)}/{len(needs)} | "
                  f"{f'{ratio:.2f}' if ratio is not None else ('< %.2f' % (medians['random'] / args.budget))} |")
    for m in methods:
        if m == "random":
            continue
        if math.isfinite(medians[m]) and math.isfinite(medians["random"]):
            print(f"  ratio random / {m} (medians): {medians['random'] / medians[m]:.2f} "
                  f"(above 1: {m} needs fewer epochs than random search)")
        elif math.isfinite(medians[m]):
            print(f"  ratio random / {m} (medians): > {args.budget / medians[m]:.2f} "
                  f"(random's median seed does not reach the target within the budget)")
        else:
            print(f"  ratio random / {m} (medians): < {medians['random'] / args.budget:.2f} "
                  f"({m}'s median seed does not reach the target within {args.budget} epochs)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
