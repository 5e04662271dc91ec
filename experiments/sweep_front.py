"""The suGRU's front on delayed recall across 1000 silent steps: a real sweep per seed, and a dense GRU.

    python experiments/sweep_front.py                           # the spec's local profile, 3 seeds (2 CPU cores)
    python experiments/sweep_front.py --seeds 0 --set search.num_trials=4
    python experiments/sweep_front.py --full                    # the spec's full sizes (a GPU)

For each seed this runs the orchestrator itself (``python -m orchestrator.sweep
search_spaces/long_silence.yaml --profile local``, as a subprocess) with the sweep's sampler seed
and every trial's training seed set to that seed, into its own MLflow and Optuna stores under
--workdir. It then reads each sweep's completed trials from its Optuna study, prints the
non-dominated ones (accuracy up, update rate down) and trains the reference, a GRU (``gate:
none``, the same fixed settings as every trial) once per seed. The PNG shows every trial, each
seed's front as a step line, and the GRU as a point with its spread.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "search_spaces" / "long_silence.yaml"


def sweep(seed: int, args, workdir: Path) -> list[dict]:
    """Runs one seed's sweep; returns its completed trials as {acc, rate, params}."""
    import optuna

    folder = workdir / f"seed{seed}"
    folder.mkdir(parents=True, exist_ok=True)
    name = f"long-silence-seed{seed}"
    overrides = [f"name={name}", f"search.seed={seed}", f"training.seed={seed}", *args.set]
    resume = ["--resume"] if args.resume and (folder / "optuna.db").exists() else []
    # the seed's own stores, whatever $MLFLOW_TRACKING_URI says (it would win over the spec's)
    cmd = [sys.executable, "-m", "orchestrator.sweep", str(args.spec), *_profile(args), *resume,
           "--tracking-uri", f"sqlite:///{folder / 'mlflow.db'}", *sum((["--set", o] for o in overrides), [])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
           "MLFLOW_DISABLE_TELEMETRY": "true", "RAY_AUTH_MODE": os.environ.get("RAY_AUTH_MODE", "disabled")}
    print("$ " + " ".join(cmd), flush=True)
    proc = subprocess.run(cmd, cwd=folder, env=env, capture_output=True, text=True)
    last = (proc.stderr.strip().splitlines() or [""])[-1][:300]
    if proc.returncode != 0 and not (folder / "optuna.db").exists():
        sys.exit(f"error: the sweep of seed {seed} exited {proc.returncode}: {last}")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=name, storage=f"sqlite:///{folder}/optuna.db")
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if proc.returncode != 0:   # stopped (failed trials past the spec's limit): keep what completed
        print(f"warning: the sweep of seed {seed} exited {proc.returncode} after {len(done)} completed trials "
              f"(--resume continues it): {last}", file=sys.stderr, flush=True)
    if not done:
        sys.exit(f"error: the sweep of seed {seed} completed no trial: {last}")
    return [{"acc": t.values[0], "rate": t.values[1], "params": t.params} for t in done]


def _profile(args) -> list[str]:
    return [] if args.full else ["--profile", "local"]


def front(trials: list[dict]) -> list[dict]:
    """The non-dominated trials (accuracy maximised, update rate minimised), by update rate."""
    def dominated(a: dict) -> bool:
        return any(b["acc"] >= a["acc"] and b["rate"] <= a["rate"] and (b["acc"], b["rate"]) != (a["acc"], a["rate"])
                   for b in trials)
    return sorted((t for t in trials if not dominated(t)), key=lambda t: t["rate"])


def reference_gru(seed: int, args, workdir: Path) -> dict:
    """The dense GRU trained on the spec's fixed settings (those every trial shares)."""
    from orchestrator.spec import load_spec
    from surnn.train import train

    spec = load_spec(args.spec, None if args.full else "local", [f"training.seed={seed}", *args.set])
    config = {**spec.fixed_config(spec.task_blocks()[0]), "gate": "none", "cache_dir": str(workdir / "data")}
    result = train(config, lambda metrics, checkpoint_dir=None: None)
    return {"acc": result["val_accuracy"], "rate": result["update_rate"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--spec", type=Path, default=SPEC)
    parser.add_argument("--set", action="append", default=[], metavar="KEY.PATH=VALUE",
                        help="one more spec override for every sweep and the GRU (repeatable)")
    parser.add_argument("--full", action="store_true", help="the spec's own sizes, not its local profile")
    parser.add_argument("--workdir", type=Path, default=Path("runs/sweep_front"),
                        help="where the sweeps' MLflow and Optuna stores go (one folder per seed; new unless --resume)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the seeds' sweeps already in --workdir (the orchestrator's --resume)")
    parser.add_argument("--plot", default="sweep_front.png")
    args = parser.parse_args()
    if not args.spec.is_file():
        parser.error(f"--spec: no such file {args.spec}")
    if not args.resume and any((args.workdir / f"seed{s}").exists() for s in args.seeds):
        parser.error(f"--workdir: {args.workdir} already holds a sweep of these seeds; give a new folder, or --resume")
    args.workdir = args.workdir.resolve()
    trials = {s: sweep(s, args, args.workdir) for s in args.seeds}
    grus = [reference_gru(s, args, args.workdir) for s in args.seeds]
    print("\n| seed | row | accuracy | update rate | sparsity_lambda | init_update_rate | lr |\n"
          "|---|---|---|---|---|---|---|")
    for seed, ts in trials.items():
        members = front(ts)
        for i, t in enumerate(members):
            p = t["params"]
            print(f"| {seed} | suGRU front {i + 1}/{len(members)} (of {len(ts)} trials) | {t['acc']:.3f} | {t['rate']:.3f} | "
                  f"{p.get('sparsity_lambda', float('nan')):.3g} | {p.get('init_update_rate', float('nan')):.3g} | "
                  f"{p.get('lr', float('nan')):.3g} |")
    for seed, g in zip(args.seeds, grus):
        print(f"| {seed} | GRU (reference) | {g['acc']:.3f} | {g['rate']:.3f} | - | - | - |")
    best = [max((t["acc"] for t in ts), default=float("nan")) for ts in trials.values()]
    print("\nbest suGRU accuracy per seed: " + ", ".join(f"{b:.3f}" for b in best)
          + "; GRU: " + ", ".join(f"{g['acc']:.3f}" for g in grus))
    _plot(trials, grus, args.plot)
    print(f"wrote {args.plot}")


def _plot(trials: dict[int, list[dict]], grus: list[dict], path: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for i, (seed, ts) in enumerate(trials.items()):
        color = f"C{i}"
        ax.plot([t["rate"] for t in ts], [t["acc"] for t in ts], "o", color=color, alpha=0.35)
        f = front(ts)
        ax.plot([t["rate"] for t in f], [t["acc"] for t in f], "o-", drawstyle="steps-post", color=color,
                label=f"suGRU front, seed {seed}")
    accs, rates = [g["acc"] for g in grus], [g["rate"] for g in grus]
    ax.errorbar([statistics.mean(rates)], [statistics.mean(accs)], yerr=[[statistics.mean(accs) - min(accs)],
                [max(accs) - statistics.mean(accs)]], fmt="k*", markersize=12, capsize=4,
                label=f"GRU (dense), {len(grus)} seeds")
    ax.set(xlabel="update rate", ylabel="validation accuracy", xlim=(0, 1.05),
           title="delayed recall, 1000 silent steps: sweep fronts")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
