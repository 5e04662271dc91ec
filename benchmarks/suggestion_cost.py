"""Search cost: CPU seconds of one suggestion from a rung model holding N observations.

    python benchmarks/suggestion_cost.py tpe 500
    python benchmarks/suggestion_cost.py gp 500

Drives the sweep's own RungModels and make_sampler (4 parameters, 2 objectives, random values).
"""
import random, sys, time
import optuna
from orchestrator.rung_search import RungModels
from orchestrator.search import make_sampler
space = {"lr": optuna.distributions.FloatDistribution(1e-4, 1e-1, log=True),
         "width": optuna.distributions.IntDistribution(32, 256),
         "rate": optuna.distributions.FloatDistribution(0.05, 0.9),
         "lam": optuna.distributions.FloatDistribution(1e-3, 10, log=True)}
name, n = sys.argv[1], int(sys.argv[2])
m = RungModels(space, ["maximize", "minimize"], lambda i: make_sampler(name, 1 + i, False), [27.0], seed=0, random_fraction=0.0)
rng = random.Random(0)
for i in range(n):
    p = {k: d.low + rng.random() * (d.high - d.low) for k, d in space.items()}
    p["width"] = int(p["width"])
    m.observe(str(i), p, 27, [rng.random(), rng.random()])
times = []
for _ in range(5):
    t0 = time.process_time(); m.propose(); times.append(time.process_time() - t0)
times.sort(); print(f"{name} at {n} observations: median CPU per suggestion {times[2]:.3f} s (min {times[0]:.3f}, max {times[-1]:.3f})")
