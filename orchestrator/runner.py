"""Ray Tune wiring of one sweep: trainable, searcher, scheduler, callbacks, resume, summary."""
from __future__ import annotations

import os
import sys
import time

import ray
from ray import tune

from orchestrator.console import ConsoleView, FailureBudget
from orchestrator.search import make_searcher
from orchestrator.secrets import redact
from orchestrator.trial import SCALARIZED, make_trial_fn
from surnn.trainable import FIDELITY


class PreflightError(RuntimeError):
    """The cluster can never grant what the spec asks for."""


def start_ray(address: str | None) -> None:
    """Connect to `address`, or start a local Ray without the dashboard."""
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    # Trials keep the driver's working directory, so relative paths in a spec mean the same there.
    os.environ.setdefault("RAY_CHDIR_TO_TRIAL_DIR", "0")
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    if ray.is_initialized():
        return
    if address:
        try:
            ray.init(address=address, log_to_driver=False)
        except Exception as exc:   # one line, and never the address's password
            from orchestrator.secrets import redact, redact_address

            shown = redact_address(address)
            message = redact(str(exc).replace(address, shown)).strip().splitlines()
            raise PreflightError(f"--ray-address: cannot connect to {shown} "
                                 f"({message[0] if message else type(exc).__name__})") from None
    else:
        ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False)


def preflight(spec, profile: str | None, wait_s: float = 0.0) -> None:
    """Fail now, not after an endless wait, when no node can run one trial.

    On a cluster with an autoscaler (a KubeRay GPU group scaled from zero), `wait_s` > 0 asks
    the autoscaler for one trial's resources and waits that long for a node to join.
    """
    want = spec.resources_per_trial

    def missing() -> str | None:
        have = ray.cluster_resources()
        if want.gpu > 0 and have.get("GPU", 0) < want.gpu:
            return f"resources_per_trial.gpu: each trial asks for {want.gpu:g} GPU but the Ray cluster has {have.get('GPU', 0):g}"
        if have.get("CPU", 0) < want.cpu:
            return f"resources_per_trial.cpu: each trial asks for {want.cpu:g} CPUs but the Ray cluster has {have.get('CPU', 0):g}"
        return None

    problem = missing()
    if problem and wait_s > 0:
        from ray.autoscaler.sdk import request_resources

        print(f"waiting up to {wait_s:.0f} s for the autoscaler: {problem}", file=sys.stderr, flush=True)
        request_resources(bundles=[{"CPU": want.cpu, **({"GPU": want.gpu} if want.gpu else {})}])
        deadline = time.time() + wait_s
        while problem and time.time() < deadline:
            time.sleep(5)
            problem = missing()
        request_resources(bundles=[])   # withdraw the standing request; Tune's own demand takes over
    if problem:
        hint = "--profile local" if profile != "local" and "local" in spec.profiles else "--set resources_per_trial.gpu=0"
        fix = f"use {hint} (or --ray-address of a cluster with GPUs)" if "gpu" in problem.split(":")[0] \
            else "lower it with --set resources_per_trial.cpu=N"
        raise PreflightError(f"{problem}; {fix}")


def make_scheduler(spec, objectives, max_t: int):
    sch = spec.scheduler
    if sch.name == "none":
        return None
    if sch.name == "asha":
        from ray.tune.schedulers import ASHAScheduler

        return ASHAScheduler(time_attr=FIDELITY, metric=SCALARIZED, mode="max", max_t=max_t,
                             grace_period=sch.grace_period, reduction_factor=sch.reduction_factor)
    from orchestrator.schedulers.moasha import ParetoASHA

    return ParetoASHA(metrics=[o.metric for o in objectives], modes=[o.mode for o in objectives], time_attr=FIDELITY,
                      grace_period=sch.grace_period, reduction_factor=sch.reduction_factor, max_t=max_t,
                      brackets=sch.brackets, min_agreement=sch.min_agreement, kind=sch.kind,
                      max_concurrent=spec.search.max_concurrent if sch.kind == "promotion" else None)


def _tracker(spec, block, plan, tracking_uri: str):
    from orchestrator.tracking import SweepTracker

    objectives = [(o.metric, o.goal, o.ref) for o in spec.objectives_for(block)]
    space = {name: p.model_dump() for name, p in spec.parameters.items()}
    return SweepTracker(tracking_uri, spec.tracking.experiment, plan.experiment_name, str(plan.sweep_dir),
                        objectives, plan.max_t, spec.to_yaml(), space, time_attr=FIDELITY,
                        timeout_s=spec.failure.tracking_timeout_s)


def _record_ended(spec, plan, tracker) -> list[str]:
    """Trials whose end reached disk but not the tracker's record: recorded as they ended (ids)."""
    from orchestrator.recovery import ended_unrecorded, settle_ray_state
    from orchestrator.search import complete_lost

    ended = ended_unrecorded(plan.experiment_dir, tracker.state_path, plan.max_t, FIDELITY)
    if not ended:
        return []
    tracker.load()
    settle_ray_state(plan.experiment_dir, {tid for tid, end in ended.items() if end["ray_resumes"]})
    for tid, end in ended.items():
        if not end["held_by_ray"]:   # Ray never saw it end, so neither did the study
            complete_lost(plan.study_storage, plan.study_name, end["config"], end["rows"][-1], spec.search.constraints)
        tracker.record_ended(tid, end["status"], end["rows"], end["config"])
    return sorted(ended)


def _move_old_records(plan) -> None:
    """A sweep begun by an older version kept its records inside Ray's folder: move them to `sweep_dir`."""
    from orchestrator.tracking import OUTBOX_FILE, STATE_FILE

    if (plan.experiment_dir / STATE_FILE).exists() and not (plan.sweep_dir / STATE_FILE).exists():
        plan.sweep_dir.mkdir(parents=True, exist_ok=True)
        for name in (OUTBOX_FILE, STATE_FILE):   # the state last: its presence means the move is done
            if (plan.experiment_dir / name).exists():
                os.replace(plan.experiment_dir / name, plan.sweep_dir / name)


def _trainable(spec, block):
    fixed = spec.fixed_config(block)
    res = spec.resources_per_trial
    fn = make_trial_fn(spec.trainable, fixed, res.cpu, spec.scheduler.scalarize, spec.failure.report_timeout_s,
                       spec.failure.max_memory_mb)
    return tune.with_resources(fn, {"cpu": res.cpu, "gpu": res.gpu})


def run_plan(spec, block, plan, tracking_uri: str, resume: bool) -> dict:
    """Run (or resume) one task's sweep to its end; returns its summary."""
    trainable = _trainable(spec, block)
    try:   # build the task's data once, before trials race to build it
        spec.trainable_fn().prepare(spec.fixed_config(block))
    except ValueError as exc:   # data that cannot be had (offline hub, missing files): one line
        raise PreflightError(str(exc)) from None
    _move_old_records(plan)
    tracker = _tracker(spec, block, plan, tracking_uri)
    objectives = spec.objectives_for(block)
    from orchestrator.recovery import newest_experiment_state

    if resume and tune.Tuner.can_restore(str(plan.experiment_dir)) and newest_experiment_state(plan.experiment_dir) is None:
        # A driver killed before Ray's first experiment checkpoint leaves only tuner.pkl. Ray's
        # restore would then start over with num_samples=1 (its resume path does not pass the
        # Tuner's num_samples on), so the sweep starts Ray afresh; study and tracking continue.
        print(f"'{plan.experiment_name}': no Ray checkpoint yet in {plan.experiment_dir}; starting Ray afresh "
              f"(the study and the MLflow runs continue)", file=sys.stderr)
        resume = False
    if resume and tune.Tuner.can_restore(str(plan.experiment_dir)):
        print(f"resuming '{plan.experiment_name}' from {plan.experiment_dir}", file=sys.stderr)
        from orchestrator.recovery import finished_trials, repoint_checkpoints, settle_ray_state, settle_search_state

        settled = settle_ray_state(plan.experiment_dir, finished_trials(tracker.state_path))
        settled += _record_ended(spec, plan, tracker)
        settle_search_state(plan.experiment_dir)
        repoint_checkpoints(plan.experiment_dir)
        if settled:
            print(f"{len(settled)} trials had finished after Ray's last checkpoint: kept as they ended, "
                  f"not rerun", file=sys.stderr)
        tuner = tune.Tuner.restore(str(plan.experiment_dir), trainable=trainable,
                                   resume_unfinished=True, resume_errored=False)
    else:
        budget = FailureBudget(spec.failure.max_failed_trials)
        scheduler = make_scheduler(spec, objectives, plan.max_t)
        searcher = make_searcher(spec, objectives, plan.max_t, plan.study_name, plan.study_storage)
        callbacks = [tracker, budget, ConsoleView(tracker, plan.experiment_name, searcher=searcher,
                                                  num_trials=spec.search.num_trials)]
        if hasattr(scheduler, "state_callback"):   # carries the rungs through Tuner.restore
            callbacks.append(scheduler.state_callback())
        search_alg, max_concurrent = searcher, spec.search.max_concurrent
        if getattr(spec.scheduler, "kind", "stop") == "promotion" and max_concurrent:
            # Ray's own limiter would count paused trials as running and stall the sweep
            from orchestrator.schedulers.moasha import PauseAwareLimiter

            search_alg, max_concurrent = PauseAwareLimiter(searcher, max_concurrent, scheduler), None
        tuner = tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(
                search_alg=search_alg,
                scheduler=scheduler, num_samples=spec.search.num_trials,
                max_concurrent_trials=max_concurrent, reuse_actors=True),
            run_config=tune.RunConfig(
                name=plan.experiment_name, storage_path=str(plan.experiment_dir.parent), stop=budget,
                callbacks=callbacks,
                failure_config=tune.FailureConfig(max_failures=spec.failure.max_failures_per_trial),
                checkpoint_config=tune.CheckpointConfig(num_to_keep=1), verbose=0))
    start = time.time()
    from orchestrator.tracking import TrackingUnavailable

    try:
        tuner.fit()
    except Exception as exc:   # the tracker stopped the sweep: its writes are kept for --resume
        cause = _cause(exc, TrackingUnavailable)
        if cause is None:
            raise
        raise cause from None
    return _finish(tracker, time.time() - start, plan)


def _cause(exc: BaseException, kind: type) -> BaseException | None:
    """`exc` or the first exception of `kind` in its chain (Ray wraps a callback's error)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, kind):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def _finish(tracker, seconds: float, plan) -> dict:
    """Finalize MLflow when every trial has ended; else leave it resumable with no run RUNNING."""
    tracker.load()                       # a fresh view of the persisted state (the Tuner may hold a copy)
    interrupted = tracker.counts().get("running", 0) > 0
    if interrupted:
        tracker.flush()
        tracker.close_orphans()
        tracker.close_parent("KILLED")
        front = tracker.front()
    else:
        from orchestrator.search import fail_unfinished

        fail_unfinished(plan.study_storage, plan.study_name)   # none left RUNNING by a killed driver
        front = tracker.finalize()
    return {"counts": tracker.counts(), "front": front, "interrupted": interrupted, "seconds": seconds,
            "parent_run_id": tracker.parent_run_id}


def run_plans(spec, plans, *, tracking_uri: str, ray_address: str | None, resume: bool, profile: str | None,
              wait_for_resources: float | None = None) -> int:
    from orchestrator.mlflow_env import configure_mlflow_env

    tracking_uri = configure_mlflow_env(tracking_uri)
    start_ray(ray_address)
    if wait_for_resources is None:   # a cluster may autoscale; a local Ray cannot grow
        wait_for_resources = 600.0 if ray_address else 0.0
    preflight(spec, profile, wait_for_resources)
    status = 0
    from orchestrator.tracking import TrackingUnavailable

    for block, plan in zip(spec.task_blocks(), plans):
        try:
            summary = run_plan(spec, block, plan, tracking_uri, resume)
        except TrackingUnavailable as exc:
            print(f"error: {plan.experiment_name}: {redact(str(exc))}; the trials' results are kept: "
                  f"continue with --resume once {redact(tracking_uri)} answers", file=sys.stderr)
            return 1
        c = summary["counts"]
        print(f"{plan.experiment_name}: {c.get('completed', 0)} completed, {c.get('stopped', 0)} stopped early, "
              f"{c.get('failed', 0)} failed in {summary['seconds']:.0f} s; Pareto front {summary['front']['size']} "
              f"trials, hypervolume {summary['front']['hypervolume']:.4g}; MLflow parent run {summary['parent_run_id']}",
              file=sys.stderr)
        if summary["interrupted"]:
            print(f"{plan.experiment_name}: interrupted; continue with --resume", file=sys.stderr)
            return 1
        limit = spec.failure.max_failed_trials
        if limit is not None and c.get("failed", 0) > limit:
            status = 1
    return status
