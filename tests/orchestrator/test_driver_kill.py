"""The driver SIGKILLed at seeded random moments, each time followed by `--resume`.

One sweep is killed again and again (Ray start-up, trials starting, trials finishing, the
front being logged: wherever the seeded delay lands) and resumed each time. The finished
sweep must hold exactly `num_trials` distinct trials, none run twice to completion, no
MLflow run RUNNING, and Optuna's COMPLETE/PRUNED/FAIL counts equal to MLflow's
completed/stopped/failed.
"""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest

from test_sweep_e2e import mlflow_runs, run_sweep, sweep_env, write_spec

NUM_TRIALS = 10
KILLS = 10
EPOCH_S = 0.2
RECOVERED = Counter()   # how often each repair of a killed driver's records was needed
SEED = int(os.environ.get("DRIVER_KILL_SEED", "10"))


def _kill_at(folder, spec, delay: float, in_start_up: bool, first: bool) -> bool:
    """Start the sweep (or resume it) and SIGKILL the driver `delay` s after its start (`in_start_up`)
    or after its tracker is set up, i.e. while trials run; True if it was still running then."""
    args = [str(spec)] + ([] if first else ["--resume"])
    state = folder / "ray_results" / "toy.sweep" / "sweep_tracking.json"
    before = state.stat().st_mtime_ns if state.exists() else 0
    proc = subprocess.Popen([sys.executable, "-m", "orchestrator.sweep", *args], cwd=folder,
                            env=sweep_env(folder, epoch_seconds=EPOCH_S), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.time() + 60
    while not in_start_up and proc.poll() is None and time.time() < deadline:
        if state.exists() and state.stat().st_mtime_ns != before:
            break
        time.sleep(0.05)
    try:
        proc.wait(timeout=delay)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
    _, err = proc.communicate(timeout=60)
    # the driver's Ray processes outlive it; end them as a crash of the machine would
    subprocess.run(["pkill", "-9", "-s", str(proc.pid)], check=False)
    assert proc.returncode in (0, -signal.SIGKILL), err[-3000:]
    RECOVERED["settled"] += sum("not rerun" in line for line in err.splitlines())
    RECOVERED["restarted"] += sum("restart from scratch" in line for line in err.splitlines())
    return proc.returncode == -signal.SIGKILL


@pytest.mark.slow
@pytest.mark.faults
def test_driver_killed_at_random_moments_loses_and_repeats_nothing(tmp_path):
    done_file = tmp_path / "completions.txt"
    spec = write_spec(tmp_path, training={"epochs": 4, "fail_below": 0.12, "done_file": str(done_file)},
                      search={"sampler": "random", "seed": 3, "num_trials": NUM_TRIALS, "max_concurrent": 2},
                      failure={"max_failures_per_trial": 0, "max_failed_trials": None})
    rng = random.Random(SEED)
    start = time.time()
    kills, runs = 0, 0
    while kills < KILLS and runs < 3 * KILLS:
        # one kill in five lands in start-up (Ray, restore); the others while trials run
        in_start_up = rng.random() < 0.2
        delay = rng.uniform(0.5, 4.0) if in_start_up else rng.uniform(0.0, 6.0)
        kills += _kill_at(tmp_path, spec, delay, in_start_up, first=runs == 0)
        runs += 1
    final = run_sweep(tmp_path, str(spec), "--resume", epoch_seconds=EPOCH_S, timeout=180)
    took = time.time() - start
    RECOVERED["settled"] += final.stderr.count("not rerun")
    RECOVERED["restarted"] += final.stderr.count("restart from scratch")
    assert final.returncode == 0, final.stderr[-3000:]

    client, parents, children = mlflow_runs(tmp_path)
    trial_ids = [c.data.tags["sweep.trial_id"] for c in children]
    statuses = Counter(c.data.tags["sweep.status"] for c in children)
    running = [c.info.run_id for c in children + parents if c.info.status == "RUNNING"]
    completions = Counter(done_file.read_text().split()) if done_file.exists() else Counter()
    twice = [x for x, n in completions.items() if n > 1]
    import optuna

    study = optuna.load_study(study_name="toy", storage=f"sqlite:///{tmp_path}/optuna.db")
    states = Counter(t.state.name for t in study.trials)
    mismatches = sum([states["COMPLETE"] != statuses["completed"], states["PRUNED"] != statuses["stopped"],
                      states["FAIL"] != statuses["failed"], len(study.trials) != NUM_TRIALS])
    print(f"\ndriver-kill: {kills} kills in {runs} runs, {len(set(trial_ids))} trials of {NUM_TRIALS}, "
          f"lost {NUM_TRIALS - len(set(trial_ids))}, run twice to completion {len(twice)}, "
          f"runs left RUNNING {len(running)}, count mismatches {mismatches}; "
          f"mlflow {dict(statuses)}, optuna {dict(states)}; repairs {dict(RECOVERED)}; {took:.0f} s")
    assert kills == KILLS
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert len(trial_ids) == len(set(trial_ids)) == NUM_TRIALS, statuses
    assert set(statuses) <= {"completed", "stopped", "failed"}, statuses
    assert not running and not twice, (running, completions)
    assert mismatches == 0, (dict(statuses), dict(states))
    for c in children:   # each trial's epochs are logged once each, in order
        steps = [m.step for m in client.get_metric_history(c.info.run_id, "val_accuracy")]
        assert steps == list(range(1, len(steps) + 1)), (c.data.tags["sweep.trial_id"], steps)


@pytest.mark.slow
@pytest.mark.faults
def test_a_driver_killed_before_rays_first_checkpoint_resumes_the_whole_sweep(tmp_path):
    # Ray's restore of a folder holding only tuner.pkl would run one trial (its resume path drops
    # num_samples); the sweep starts Ray afresh instead, and the study and MLflow runs continue.
    spec = write_spec(tmp_path, training={"epochs": 2},
                      search={"sampler": "random", "seed": 1, "num_trials": 4, "max_concurrent": 2})
    folder = tmp_path / "ray_results" / "toy"
    proc = subprocess.Popen([sys.executable, "-m", "orchestrator.sweep", str(spec)], cwd=tmp_path,
                            env=sweep_env(tmp_path, epoch_seconds=EPOCH_S), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 60
    while not (folder / "tuner.pkl").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    subprocess.run(["pkill", "-9", "-s", str(proc.pid)], check=False)
    for pattern in ("experiment_state-*", "search_gen_state-*", "searcher-state-*", "callback-states-*"):
        for path in folder.glob(pattern):   # as if the kill came before Ray's first checkpoint
            path.unlink()

    final = run_sweep(tmp_path, str(spec), "--resume", epoch_seconds=EPOCH_S, timeout=180)
    assert final.returncode == 0, final.stderr[-3000:]
    assert "starting Ray afresh" in final.stderr
    _, parents, children = mlflow_runs(tmp_path)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert len({c.data.tags["sweep.trial_id"] for c in children}) == len(children) == 4
    assert all(c.info.status in ("FINISHED", "FAILED") for c in children)
    import optuna

    study = optuna.load_study(study_name="toy", storage=f"sqlite:///{tmp_path}/optuna.db")
    assert len(study.trials) == 4 and all(t.state.is_finished() for t in study.trials)
