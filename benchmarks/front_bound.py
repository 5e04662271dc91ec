"""How few full trials could reach random search's target at all: a ceiling on the ratio.

    python benchmarks/front_bound.py                       # zdt1, crossing, dtlz2; 5 seeds
    python benchmarks/front_bound.py --problem benchmarks.search_problems:dtlz2 --draws 1000

`benchmarks/search_efficiency.py` scores a search by the epochs it needs to reach 95% of random
search's final hypervolume. Only full trials enter the front, so a search that reaches the
target with k full trials spent at least k x epochs. This script asks how small k can be. It
runs random search exactly as search_efficiency does (same `simulate`, same seeds, same
target), then places k points on the problem's exact Pareto set (`front_params`, noise-free
values at the last epoch) and measures their hypervolume with the same `front_hypervolume`:

* "random on the front": the median over `--draws` of k points drawn at random on the set,
  i.e. a search that knew the optimum from its first trial but not where to spread;
* "best spread": the best of those draws, a search that also spreads its points near-optimally.

For each, the smallest k that reaches the target gives the best ratio such a search could show,
random's median epochs / (k x epochs); no early stopping can do better, since the front's
members ran every epoch. A goal above the ceiling cannot be met on that problem at that budget.
"""
from __future__ import annotations

import argparse
import statistics
import sys

import numpy as np
import optuna

from benchmarks.search_efficiency import budget_to, front_hypervolume, hv_at, load_problem, simulate
from surnn.trainable import TrainableImportError

SHIPPED = [f"benchmarks.search_problems:{n}" for n in ("zdt1", "crossing", "dtlz2")]


def random_target(problem, seeds, budget: int, max_concurrent: int, target: float) -> tuple[float, float]:
    """(target hypervolume, random search's median epochs to it), as search_efficiency computes them."""
    runs = [simulate(problem, "random", s, budget, max_concurrent) for s in seeds]
    hv = target * statistics.mean(hv_at(r["trajectory"], budget) for r in runs)
    needs = [budget_to(r["trajectory"], hv) for r in runs]
    return hv, statistics.median(n if n is not None else float("inf") for n in needs)


def front_hvs(problem, k: int, draws: int, rng: np.random.Generator) -> list[float]:
    """Hypervolume of k random points of the exact Pareto set, `draws` times."""
    out = []
    for _ in range(draws):
        values = [problem.values(problem.front_params(rng), problem.epochs) for _ in range(k)]
        out.append(front_hypervolume(problem, values))
    return out


def bound(problem, seeds, budget: int, max_concurrent: int, target: float, draws: int, max_k: int) -> dict:
    hv_target, random_median = random_target(problem, seeds, budget, max_concurrent, target)
    rng = np.random.default_rng(0)
    rows, k_median, k_best = [], None, None
    for k in range(1, max_k + 1):
        hvs = front_hvs(problem, k, draws, rng)
        rows.append({"k": k, "median": statistics.median(hvs), "best": max(hvs),
                     "reach": float(np.mean(np.array(hvs) >= hv_target))})
        if k_best is None and rows[-1]["best"] >= hv_target:
            k_best = k
        if k_median is None and rows[-1]["median"] >= hv_target:
            k_median = k
            break
    ceiling = {name: (random_median / (k * problem.epochs) if k else None)
               for name, k in (("random_on_front", k_median), ("best_spread", k_best))}
    return {"problem": problem.name, "target": hv_target, "random_median": random_median, "rows": rows,
            "k_random_on_front": k_median, "k_best_spread": k_best, "ceiling": ceiling}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--problem", action="append", help="module:function of a problem with front_params "
                   "(repeatable; default: zdt1, crossing, dtlz2)")
    p.add_argument("--seeds", type=int, default=5, help="random-search seeds 0 .. N-1 (default 5)")
    p.add_argument("--budget", type=int, help="total epochs of random search (default: 48 full trials)")
    p.add_argument("--max-concurrent", type=int, default=4, help="simulated workers (default 4)")
    p.add_argument("--target", type=float, default=0.95, help="fraction of random's mean final HV (default 0.95)")
    p.add_argument("--draws", type=int, default=400, help="random placements per k (default 400)")
    p.add_argument("--max-k", type=int, default=48, help="largest number of front points tried (default 48)")
    args = p.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        problems = [load_problem(ref, None) for ref in (args.problem or SHIPPED)]
        for problem in problems:
            problem.front_params(np.random.default_rng(0))
    except (TrainableImportError, NotImplementedError, AttributeError) as exc:
        print(f"front_bound: {exc}", file=sys.stderr)
        return 2
    seeds = list(range(args.seeds))
    for problem in problems:
        res = bound(problem, seeds, args.budget or 48 * problem.epochs, args.max_concurrent, args.target,
                    args.draws, args.max_k)
        print(f"\n== {res['problem']}: target {res['target']:.4f}; random search reaches it in "
              f"{res['random_median']:.0f} epochs (median of {len(seeds)} seeds)")
        print(f"  {'k':>3s} {'median HV':>10s} {'best HV':>9s} {'P(reach)':>9s}")
        for row in res["rows"]:
            print(f"  {row['k']:3d} {row['median']:10.4f} {row['best']:9.4f} {row['reach']:9.2f}")
        for name, key in (("random on the front", "random_on_front"), ("best spread", "best_spread")):
            k = res[f"k_{key}"]
            if k is None:
                print(f"  {name}: no k <= {args.max_k} reaches the target")
            else:
                print(f"  {name}: {k} full trials ({k * problem.epochs} epochs); ceiling on the ratio "
                      f"random / search {res['ceiling'][key]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
