"""Run a sweep: `python -m orchestrator.sweep SPEC.yaml [--profile local] [--resume] ...`.

Ray Tune runs the trials, Optuna (through Ray's OptunaSearch) proposes them, `pareto_asha`
stops hopeless ones early, and MLflow receives every trial and the accuracy-versus-update-rate
Pareto front. Without a cluster it runs on an embedded default: local Ray, an SQLite MLflow
store and Optuna study in the working directory.
"""
from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from orchestrator.secrets import redact
from orchestrator.spec import SpecError, load_spec

EPILOG = """examples:
  python -m orchestrator.sweep search_spaces/lra.yaml --profile local
  python -m orchestrator.sweep search_spaces/synthetic.yaml --set search.num_trials=8 --dry-run
  python -m orchestrator.sweep search_spaces/lra.yaml --profile local --resume   # after Ctrl-C or a crash

then: mlflow ui --backend-store-uri sqlite:///mlflow.db   (open the experiment's runs table)

exit status: 0 done, 1 stopped (failures past the limit, or interrupted), 2 bad spec or resources.
"""


def spec_parser(prog: str, doc: str, epilog: str) -> argparse.ArgumentParser:
    """A parser with the arguments every command that reads a spec takes: SPEC, --profile, --set."""
    p = argparse.ArgumentParser(prog=prog, description=doc.split("\n\n")[0], epilog=epilog,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("spec", help="the sweep spec (YAML)")
    p.add_argument("--profile", help="apply the spec's profiles.NAME overrides (e.g. local)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE",
                   help="override one spec value, repeatable (e.g. search.num_trials=8)")
    return p


def build_parser() -> argparse.ArgumentParser:
    p = spec_parser("python -m orchestrator.sweep", __doc__, EPILOG)
    p.add_argument("--dry-run", action="store_true", help="print the validated spec, search space and plan; start nothing")
    p.add_argument("--resume", action="store_true", help="continue the sweep of the same name (same study, same MLflow parent run)")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else the spec's)")
    p.add_argument("--ray-address", help="a running Ray cluster (default: $RAY_ADDRESS, else start Ray locally)")
    p.add_argument("--wait-for-resources", type=float, metavar="SECONDS",
                   help="on a cluster that lacks one trial's resources, ask its autoscaler and wait this long "
                        "(default: 600 with a Ray address, 0 for a local Ray)")
    return p


@dataclass
class Plan:
    """Where one task's sweep lives."""

    task: str
    experiment_name: str      # the Ray experiment (a folder under storage_path) and the parent run's name
    experiment_dir: Path
    study_name: str
    study_storage: str
    max_t: int

    @property
    def sweep_dir(self) -> Path:
        """The sweep's own records (tracker state, tracking outbox, front files), beside Ray's folder.

        Not inside it: Ray copies its driver's staging folder over the experiment folder at every
        checkpoint, and a restored sweep's staging folder holds the files as they were at restore,
        so records kept there went back in time whenever a driver died after such a copy.
        """
        return self.experiment_dir.with_name(self.experiment_dir.name + ".sweep")


def make_plans(spec) -> list[Plan]:
    blocks = spec.task_blocks()
    storage = Path(spec.tracking.storage_path).expanduser().resolve()
    plans = []
    for block in blocks:
        name = spec.name if len(blocks) == 1 else f"{spec.name}-{block.name}"
        plans.append(Plan(block.name, name, storage / name, name, spec.study_storage_url(), spec.max_t(block)))
    return plans


def print_plan(spec, plans: list[Plan], tracking_uri: str, out=None) -> None:
    from orchestrator.schedulers.rungs import RungCore

    out = out or sys.stdout   # looked up now, so a redirected stdout receives the plan

    print("# validated spec", file=out)
    print(spec.to_yaml().rstrip(), file=out)
    print("\n# search space", file=out)
    for name, p in spec.parameters.items():
        print(f"  {name}: {describe(p)}", file=out)
    s = spec.search
    print("\n# plan", file=out)
    print(f"  sampler {s.sampler} (seed {s.seed}), {s.num_trials} trials per task, at most {s.max_concurrent} at once, "
          f"{spec.resources_per_trial.cpu} CPU + {spec.resources_per_trial.gpu} GPU each", file=out)
    if s.budget is not None:
        parts = ([f"{s.budget.epochs} epochs summed over all trials"] if s.budget.epochs is not None else []) + \
                ([f"{s.budget.hours:g} wall-clock hours"] if s.budget.hours is not None else [])
        per = ", ".join(f"{s.budget.epochs / p.max_t:.1f} full trials of {p.task}" for p in plans) \
            if s.budget.epochs is not None else ""
        print(f"  budget per task: {' and '.join(parts)}{f' (= {per})' if per else ''}; no new trial starts once "
              f"spent, running ones finish; num_trials stays the upper bound", file=out)
    for block, plan in zip(spec.task_blocks(), plans):
        rungs = ""
        if spec.scheduler.name != "none":
            levels = RungCore(spec.scheduler.grace_period, spec.scheduler.reduction_factor, plan.max_t).levels
            rungs = f", {spec.scheduler.name} rungs at epoch {[int(x) if float(x).is_integer() else x for x in levels]}"
            if spec.scheduler.name == "pareto_asha":
                rungs += (f" ({spec.scheduler.brackets} bracket(s), {spec.scheduler.kind}-type: "
                          + ("a trial pauses there and resumes if it ranks in the best "
                             f"1/{spec.scheduler.reduction_factor:g}" if spec.scheduler.kind == "promotion"
                             else "a trial ranked out stops there")
                          + f"; min_agreement {spec.scheduler.min_agreement})")
        print(f"  task {plan.task}: {plan.max_t} epochs{rungs}", file=out)
        objectives = ", ".join(f"{o.metric} ({o.goal}, ref {o.ref})" for o in spec.objectives_for(block))
        print(f"    objectives: {objectives}", file=out)
        print(f"    ray results: {plan.experiment_dir}", file=out)
        print(f"    sweep records: {plan.sweep_dir}", file=out)
        print(f"    optuna study '{plan.study_name}' in {redact(plan.study_storage)}", file=out)
    print(f"  mlflow: {redact(tracking_uri)}, experiment '{spec.tracking.experiment}'", file=out)


def describe(param) -> str:
    """One line for a search-space parameter, e.g. `float in [0.0001, 0.003], log`."""
    if param.type == "categorical":
        return f"one of {list(param.values)}"
    extra = ", log" if param.log else ""
    if param.step not in (None, 1):
        extra += f", step {param.step}"
    return f"{param.type} in [{param.low}, {param.high}]{extra}"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        spec = load_spec(args.spec, args.profile, args.overrides)
    except SpecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    tracking_uri = args.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or spec.tracking.uri
    ray_address = args.ray_address or os.environ.get("RAY_ADDRESS")
    plans = make_plans(spec)
    if args.dry_run:
        print_plan(spec, plans, tracking_uri)
        return 0
    from orchestrator.storelock import StoreBusy, lock_stores

    try:   # before Ray starts: a second sweep on the same SQLite file is refused at once
        lock_stores(tracking_uri, *(plan.study_storage for plan in plans))
    except StoreBusy as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    for plan in plans:
        exists = (plan.experiment_dir / "tuner.pkl").exists()
        if exists and not args.resume:
            print(f"error: a sweep named '{plan.experiment_name}' already exists at {plan.experiment_dir}; "
                  f"pass --resume to continue it, or give the spec another name", file=sys.stderr)
            return 2

    from orchestrator.runner import PreflightError, run_plans

    try:
        return run_plans(spec, plans, tracking_uri=tracking_uri, ray_address=ray_address,
                         resume=args.resume, profile=args.profile, wait_for_resources=args.wait_for_resources)
    except PreflightError as exc:
        print(f"error: {redact(str(exc))}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
