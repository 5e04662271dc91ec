"""Overhead of a real sweep over the time its trials need: wall time against the ideal, same run.

    python benchmarks/sweep_overhead.py             # 16 trials of 10 s (5 epochs x 2 s), 2 at once
    python benchmarks/sweep_overhead.py --quick     # 4 trials of 2 s, a smoke run
    python benchmarks/sweep_overhead.py --trials 32 --trial-seconds 5 --checkpoint-kb 512

It writes a spec to a temporary folder and runs the real CLI, `python -m orchestrator.sweep
SPEC`, in a subprocess: a local Ray started by the sweep, the SQLite MLflow store and Optuna
study in that folder, the spec's sampler (default TPE) and no early stopping. The trainable
(benchmarks/_trainables.py:timed_train) sleeps trial_seconds / epochs per epoch and reports
`epoch` and two objectives, so each trial needs a known time.

The baseline is the ideal wall time: the sum of the trial times divided by the number of
trials that run at once, ceil(trials / max_concurrent) * trial_seconds (trials are equal, so
that is also their sum / concurrency when trials divide evenly). Overhead = wall / ideal - 1.

Two overheads are printed:

* whole command: from starting the subprocess to its exit. It includes the Python interpreter
  and its imports (Ray, Optuna, MLflow, pydantic), the spec check (which imports the
  trainable), starting local Ray (GCS, raylet, worker pool: seconds), making the MLflow
  experiment and parent run and the Optuna study in SQLite, building the Tuner, starting the
  first trial actors, everything inside Ray Tune below, closing the sweep (the front, its
  plots and files logged to MLflow) and shutting Ray down at exit.
* inside Ray Tune: from the first trial's start to the last trial's end, read from the MLflow
  child runs (each is created when Ray has started the trial's actor and closed when Ray
  reports the trial complete). It includes the per-report work (Ray's result handling and
  experiment-state checkpoints, the trainable's checkpoint synced to the trial's storage
  folder, one MLflow batch per report, the tracker's JSON state), the Optuna ask/tell against
  SQLite between trials, resetting a reused actor for the next trial, and the idle slot time
  those cause. It excludes Ray's start, the set-up before the first trial and the close.

It also splits the whole command into phases from the MLflow parent and child run times, and
reads each trial's own running time (`time_total_s`, measured inside the actor) from Ray's
result files.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
NAME = "overhead"
EXPERIMENT = "sweep-overhead"


def write_spec(folder: Path, args) -> Path:
    spec = {
        "name": NAME,
        "task": {"name": "timed"},
        "trainable": "_trainables:timed_train",
        "training": {"epochs": args.epochs, "epoch_seconds": args.trial_seconds / args.epochs,
                     "checkpoint_kb": args.checkpoint_kb},
        "objectives": [{"metric": "val_accuracy", "goal": "maximize", "ref": 0.0},
                       {"metric": "update_rate", "goal": "minimize", "ref": 1.0}],
        "parameters": {"gate_threshold": {"type": "float", "low": 0.0, "high": 1.0}},
        "search": {"sampler": args.sampler, "seed": args.seed, "num_trials": args.trials,
                   "max_concurrent": args.max_concurrent},
        "scheduler": "none",
        "resources_per_trial": {"cpu": args.cpus_per_trial, "gpu": 0},
        "failure": {"max_failures_per_trial": 0},
        "tracking": {"uri": f"sqlite:///{folder}/mlflow.db", "experiment": EXPERIMENT,
                     "storage_path": str(folder / "ray_results")},
    }
    path = folder / "spec.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def sweep_env() -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), str(ROOT)]),
           "MLFLOW_DISABLE_TELEMETRY": "true", "RAY_AUTH_MODE": "disabled"}
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("RAY_ADDRESS", None)      # the sweep starts its own local Ray, as on a laptop
    return env


def run_sweep(folder: Path, spec: Path, timeout: float) -> dict:
    """Runs the CLI; returns its pid, exit status, output and start/exit times (epoch seconds)."""
    t0_epoch, t0 = time.time(), time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "orchestrator.sweep", str(spec)], cwd=folder, env=sweep_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except (subprocess.TimeoutExpired, KeyboardInterrupt):
        os.killpg(proc.pid, signal.SIGKILL)     # the sweep and the Ray processes it started, nothing else
        proc.communicate()
        raise
    wall = time.perf_counter() - t0
    return {"pid": proc.pid, "returncode": proc.returncode, "stdout": out, "stderr": err,
            "start": t0_epoch, "end": t0_epoch + wall, "wall": wall}


def ray_landmarks(pid: int) -> tuple[float | None, float | None]:
    """(ray.init began, the driver connected to Ray) for the sweep process `pid`, or None each.

    Read from the session folder the sweep's Ray made: its name carries the time ray.init made
    it, and the driver's core-worker log starts when the driver connects, at the end of ray.init.
    """
    base = Path(os.environ.get("RAY_TMPDIR") or os.environ.get("TMPDIR") or "/tmp") / "ray"
    sessions = sorted(base.glob(f"session_*_{pid}"))
    if not sessions:
        return None, None
    began = connected = None
    try:
        stamp = sessions[-1].name[len("session_"):].rsplit("_", 1)[0]       # 2026-11-28_06-07-55_648367
        began = datetime.strptime(stamp, "%Y-%m-%d_%H-%M-%S_%f").timestamp()
        for log in (sessions[-1] / "logs").glob(f"python-core-driver-*_{pid}.log"):
            first = log.read_text(errors="replace").split("]", 1)[0].lstrip("[")  # 2026-11-28 06:08:09,604 I ...
            connected = datetime.strptime(" ".join(first.split()[:2]), "%Y-%m-%d %H:%M:%S,%f").timestamp()
    except (ValueError, OSError):
        pass
    return began, connected


def mlflow_times(folder: Path) -> tuple[tuple[float, float], list[tuple[float, float, str]]]:
    """(parent start, end) and [(start, end, status)] per child run, in epoch seconds."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{folder}/mlflow.db")
    exp = client.get_experiment_by_name(EXPERIMENT)
    runs = client.search_runs([exp.experiment_id], max_results=10000)
    parent = next(r for r in runs if r.data.tags.get("sweep.role") == "parent")
    children = [(r.info.start_time / 1e3, (r.info.end_time or 0) / 1e3, r.data.tags.get("sweep.status", "?"))
                for r in runs if "mlflow.parentRunId" in r.data.tags]
    return (parent.info.start_time / 1e3, parent.info.end_time / 1e3), sorted(children)


def trial_run_times(folder: Path) -> list[float]:
    """Each trial's own running time (Ray's time_total_s at its last report)."""
    out = []
    for result in (folder / "ray_results" / NAME).glob("*/result.json"):
        lines = [ln for ln in result.read_text().splitlines() if ln.strip()]
        if lines:
            out.append(float(json.loads(lines[-1])["time_total_s"]))
    return out


def pct(wall: float, ideal: float) -> str:
    return f"{100 * (wall / ideal - 1):+.1f}%"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--trials", type=int, default=16, help="number of trials (default 16)")
    p.add_argument("--trial-seconds", type=float, default=10.0, help="time each trial sleeps in all (default 10)")
    p.add_argument("--epochs", type=int, default=5, help="epochs per trial, one report each (default 5)")
    p.add_argument("--max-concurrent", type=int, default=2, help="trials at once (default 2)")
    p.add_argument("--cpus-per-trial", type=float, default=1.0, help="CPUs Ray grants each trial (default 1)")
    p.add_argument("--checkpoint-kb", type=int, default=64,
                   help="checkpoint written and synced each epoch, KiB; 0 for none (default 64)")
    p.add_argument("--sampler", default="tpe", choices=["tpe", "random", "nsga2", "gp"],
                   help="the spec's search.sampler (default tpe, the project's default)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="a smoke run: 4 trials of 2 s (2 epochs of 1 s)")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder and print its path")
    p.add_argument("--timeout", type=float, default=900, help="give up on the sweep after this many seconds")
    args = p.parse_args()
    if args.quick:
        args.trials, args.trial_seconds, args.epochs = 4, 2.0, 2

    ideal = math.ceil(args.trials / args.max_concurrent) * args.trial_seconds
    folder = Path(tempfile.mkdtemp(prefix="sweep_overhead_"))
    try:
        spec = write_spec(folder, args)
        print(f"sweep overhead: {args.trials} trials x {args.trial_seconds:g} s ({args.epochs} epochs x "
              f"{args.trial_seconds / args.epochs:g} s), max_concurrent {args.max_concurrent}, "
              f"{args.cpus_per_trial:g} CPU per trial, sampler {args.sampler}, scheduler none, "
              f"checkpoint {args.checkpoint_kb} KiB per epoch; {os.cpu_count()} CPUs", flush=True)
        run = run_sweep(folder, spec, args.timeout)
        wall = run["wall"]
        if run["returncode"] != 0:
            print(f"the sweep exited with status {run['returncode']}; its stderr ends:\n{run['stderr'][-4000:]}",
                  file=sys.stderr)
            return 1
        (p_start, p_end), children = mlflow_times(folder)
        if len(children) != args.trials or any(s != "completed" for _, _, s in children):
            print(f"expected {args.trials} completed trials, MLflow has {[s for _, _, s in children]}", file=sys.stderr)
            return 1
        first_start = min(s for s, _, _ in children)
        last_end = max(e for _, e, _ in children)
        inside = last_end - first_start
        durations = [e - s for s, e, _ in children]
        own = trial_run_times(folder)
        summary = next((ln for ln in run["stderr"].splitlines() if ln.startswith(f"{NAME}:")), "")
        ray_began, ray_connected = ray_landmarks(run["pid"])
        tuner_pkl = folder / "ray_results" / NAME / "tuner.pkl"
        tuner_built = tuner_pkl.stat().st_mtime if tuner_pkl.exists() else None

        print(f"ideal (sum of trial times / concurrency): ceil({args.trials} / {args.max_concurrent}) x "
              f"{args.trial_seconds:g} s = {ideal:.1f} s")
        print()
        print(f"{'':58s} {'wall s':>8s} {'overhead':>9s}")
        print(f"{'whole command (process start -> exit)':58s} {wall:8.1f} {pct(wall, ideal):>9s}")
        print(f"{'inside Ray Tune (first trial start -> last trial end)':58s} {inside:8.1f} {pct(inside, ideal):>9s}")
        print()
        print("phases of the whole command (from Ray's session folder, tuner.pkl and the MLflow run times):")
        # (time reached, what the stretch before it did); a landmark not found merges into the next
        landmarks = [
            (ray_began, "Python start, imports, spec check (imports the trainable)"),
            (ray_connected, "ray.init: local Ray starts (GCS, raylet, agents), driver connects"),
            (tuner_built, "preflight, MLflow tracker, Optuna study + sampler, Tuner built"),
            (p_start, "Tuner.fit starts: Tune controller, callbacks, MLflow parent run"),
            (first_start, "first Optuna asks, first trial actors start"),
            (last_end, "the trials (inside Ray Tune)"),
            (p_end, "sweep closed: front, plots, MLflow files, parent run ended"),
            (run["end"], "summary, Ray shutdown, interpreter exit"),
        ]
        previous, pending = run["start"], []
        for reached, what in landmarks:
            pending.append(what)
            if reached is None:
                continue
            print(f"  {reached - previous:6.1f} s  {'; '.join(pending)}")
            previous, pending = reached, []
        print()
        slot_time = inside * args.max_concurrent
        print("per trial:")
        print(f"  nominal {args.trial_seconds:.2f} s; measured in the actor (time_total_s) mean "
              f"{sum(own) / max(len(own), 1):.2f} s, max {max(own, default=float('nan')):.2f} s")
        print(f"  start -> end on the driver (MLflow child run) mean {sum(durations) / len(durations):.2f} s, "
              f"max {max(durations):.2f} s")
        print(f"  idle trial slots inside Ray Tune: {slot_time - sum(durations):.1f} slot-s "
              f"({(slot_time - sum(durations)) / max(args.trials - args.max_concurrent, 1):.2f} s per trial handover)")
        if summary:
            print(f"\nsweep summary: {summary}")
        if args.keep:
            print(f"\nkept: {folder}")
        return 0
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
