"""A real local-Ray sweep with the default search spends its epochs as benchmarks/search_efficiency.py simulates.

The sweep runs `benchmarks.search_problems:zdt1` (9 epochs a trial) from a spec that names no
sampler and no scheduler, one trial at a time; the benchmark's simulation runs the same
problem with its "default" method. Both must start the same points, resume as many paused
trials (promotion-type rungs), stop as many at each rung and spend the same epochs (within a
small tolerance for Ray's event order).
"""
from __future__ import annotations

import collections
import json

import optuna
import pytest
import yaml

from benchmarks import search_efficiency, search_problems
from test_sweep_e2e import mlflow_runs, run_sweep, write_spec

EPOCHS, TRIALS = 9, 20


@pytest.mark.slow
def test_default_sweep_spends_epochs_as_the_simulation_says(tmp_path):
    problem = search_problems.zdt1.with_epochs(EPOCHS)
    spec = write_spec(
        tmp_path, trainable="benchmarks.search_problems:zdt1", training={"epochs": EPOCHS, "epoch_seconds": 0.02},
        objectives=[{"metric": m, "goal": "minimize", "ref": ref} for m, _, ref in problem.objectives],
        search={"seed": 0, "num_trials": TRIALS, "max_concurrent": 1})
    data = yaml.safe_load(spec.read_text())
    del data["scheduler"], data["search"]["sampler"]          # the defaults, whatever they are
    data["parameters"] = {n: {"type": "float", "low": 0.0, "high": 1.0} for n in problem.parameters}
    spec.write_text(yaml.safe_dump(data))
    proc = run_sweep(tmp_path, str(spec), timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]

    sim = search_efficiency.simulate(problem, "default", seed=0, budget=10 ** 9, max_concurrent=1,
                                     max_trials=TRIALS)
    _, _, children = mlflow_runs(tmp_path)
    assert len(children) == TRIALS
    real_epochs = sorted(int(c.data.tags["sweep.fidelity"]) for c in children)
    sim_epochs = sorted(int(t["epochs"]) for t in sim["trial_list"])
    assert sum(real_epochs) == pytest.approx(sum(sim_epochs), rel=0.1), (real_epochs, sim_epochs)
    real_stops = collections.Counter(e for e in real_epochs if e < EPOCHS)
    sim_stops = collections.Counter({int(k): v for k, v in sim["stopped_at"].items()})
    assert set(real_stops) == set(sim_stops)
    assert all(abs(real_stops[k] - sim_stops[k]) <= 2 for k in sim_stops), (real_stops, sim_stops)
    assert real_epochs.count(EPOCHS) == pytest.approx(sim["completed"], abs=2)
    study = optuna.load_study(study_name="toy", storage=f"sqlite:///{tmp_path}/optuna.db")
    real_params = [t.params for t in sorted(study.trials, key=lambda t: t.number)]
    sim_params = [t["params"] for t in sim["trial_list"]]
    assert real_params[:3] == sim_params[:3]                   # the same seeded points, in order
    same = sum(a == pytest.approx(b) for a, b in zip(real_params, sim_params))
    assert same >= TRIALS - 4, f"{same} of {TRIALS} points agree"
    # promotion-type rungs (the default): a paused trial resumes from its checkpoint, in Ray as
    # in the simulation; each resume starts a new segment of the trial's result rows
    resumes = 0
    for path in (tmp_path / "ray_results" / "toy").glob("*/result.json"):
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        resumes += sum(r["iterations_since_restore"] == 1 and r["epoch"] > 1 for r in rows)
        assert [r["epoch"] for r in rows] == list(range(1, len(rows) + 1))   # no epoch trained twice
    print(f"\nsim e2e: resumes real {resumes}, simulated {sim['promoted']}; epochs {sum(real_epochs)} / "
          f"{sum(sim_epochs)}; stops {dict(real_stops)} / {dict(sim_stops)}")
    assert sim["promoted"] > 0 and abs(resumes - sim["promoted"]) <= 2
