"""MLflow logging of a sweep: the only module that imports mlflow.

One parent run per sweep (per task of a suite); every trial a nested child run with its
parameters, its metrics at every evaluation (step = epoch), its status and checkpoint. After
each finished trial the parent logs `pareto_hypervolume`, `pareto_size` and
`trials_completed` (step = finished trials), so the UI charts the search converging; at the
end it gets `pareto_front.csv`, `.png`, `.html` and the front members' weights, and every
child the tags `pareto_optimal` and `pareto_rank`.

Everything runs on the Ray driver through MlflowClient (no global active run). What a resume
needs (parent run id, trial -> child run, finished results) is kept in a JSON file in the
experiment folder, rewritten atomically after every change.
"""
from __future__ import annotations

import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient
from ray import tune

from orchestrator import pareto, plots
from orchestrator.secrets import redact
from surnn.trainable import FIDELITY

STATE_FILE = "sweep_tracking.json"


class SweepTracker(tune.Callback):
    """Ray Tune callback that mirrors the sweep into MLflow and keeps the running Pareto front.

    Args:
        tracking_uri, experiment: where to log.
        run_name: the parent run's name.
        state_dir: folder for the resume state (the Ray experiment folder).
        objectives: list of (metric, goal, ref) in the spec's order.
        max_t: the full budget in `time_attr` units; a trial ending below it was stopped early.
        spec_yaml, search_space: logged on the parent run.
    """

    def __init__(self, tracking_uri: str, experiment: str, run_name: str, state_dir: str,
                 objectives: list[tuple[str, str, float]], max_t: int, spec_yaml: str,
                 search_space: dict, time_attr: str = FIDELITY):
        self.tracking_uri, self.experiment, self.run_name = tracking_uri, experiment, run_name
        self.state_path = Path(state_dir) / STATE_FILE
        self.objectives, self.max_t, self.time_attr = objectives, max_t, time_attr
        self.spec_yaml, self.search_space = spec_yaml, search_space
        self.client: MlflowClient | None = None
        self.state: dict = {}

    # -- pickling: Ray stores callbacks with the experiment; the client is rebuilt in setup().
    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if k != "client"} | {"client": None}

    # -- Ray Tune hooks ---------------------------------------------------------------------
    def load(self) -> None:
        """Connect to MLflow and read the persisted state (no runs are created or changed)."""
        self.client = MlflowClient(self.tracking_uri)
        self.state = json.loads(self.state_path.read_text()) if self.state_path.exists() else {"trials": {}}

    def setup(self, **info) -> None:
        self.load()
        exp = self.client.get_experiment_by_name(self.experiment)
        exp_id = exp.experiment_id if exp else self.client.create_experiment(self.experiment)
        self.state["experiment_id"] = exp_id
        if "parent_run_id" not in self.state:
            run = self.client.create_run(exp_id, run_name=self.run_name, tags={"sweep.role": "parent"})
            self.state["parent_run_id"] = run.info.run_id
            self._log_spec()
        else:
            self.client.update_run(self.state["parent_run_id"], status="RUNNING")
            self._find_unrecorded_children()
        self.close_orphans()
        self._settled = False
        self._save()

    def _find_unrecorded_children(self) -> None:
        """Child runs a killed driver made but never wrote to the state file join it (as running)."""
        known = {e["run_id"] for e in self.state["trials"].values()}
        runs = self.client.search_runs([self.state["experiment_id"]],
                                       f"tags.mlflow.parentRunId = '{self.parent_run_id}'", max_results=50000)
        for run in runs:
            tid = run.data.tags.get("sweep.trial_id")
            if run.info.run_id not in known and tid and tid not in self.state["trials"]:
                self.state["trials"][tid] = {"run_id": run.info.run_id, "status": "running"}

    def on_step_begin(self, iteration, trials, **info) -> None:
        if getattr(self, "_settled", True):
            return
        # The first step of a (resumed) run knows every trial Ray will ever finish from before:
        # an unfinished entry Ray does not hold was lost with a killed driver, and is restarted
        # from scratch as a new trial (the searcher hands it the same study trial). Its partial
        # run is deleted (MLflow keeps it restorable), so each trial has one run, logged once.
        self._settled = True
        held = {t.trial_id for t in trials}
        lost = [tid for tid, e in self.state["trials"].items() if e["status"] in ("running", "killed") and tid not in held]
        for tid in lost:
            self.client.delete_run(self.state["trials"].pop(tid)["run_id"])
        if lost:
            print(f"{len(lost)} trials started after Ray's last checkpoint restart from scratch: "
                  f"{', '.join(lost)}", file=sys.stderr, flush=True)
        self._save()

    def on_trial_start(self, iteration, trials, trial, **info) -> None:
        entry = self.state["trials"].get(trial.trial_id)
        if entry is None:
            run = self.client.create_run(
                self.state["experiment_id"], run_name=trial.trial_id,
                tags={"mlflow.parentRunId": self.parent_run_id, "sweep.trial_id": trial.trial_id,
                      "sweep.status": "running"})
            entry = self.state["trials"][trial.trial_id] = {"run_id": run.info.run_id, "status": "running"}
            params = [Param(k, redact(str(v))[:6000]) for k, v in sorted(trial.config.items())]
            self.client.log_batch(run.info.run_id, params=params)
            self.client.log_text(run.info.run_id, redact(json.dumps(trial.config, indent=2, default=str)), "params.json")
        else:   # a resumed or retried trial continues in its own run
            entry["status"] = "running"
            # it may resume from a checkpoint older than its last logged epoch: log no step twice
            history = self.client.get_metric_history(entry["run_id"], self.time_attr)
            entry["logged_step"] = max((m.step for m in history), default=0)
            self.client.update_run(entry["run_id"], status="RUNNING")
            self.client.set_tag(entry["run_id"], "sweep.status", "running")
        self._save()

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        entry = self.state["trials"][trial.trial_id]
        step = int(result.get(self.time_attr, 0))
        entry["last"] = {k: v for k, v in result.items() if isinstance(v, (int, float, str, bool))}
        if step <= entry.get("logged_step", 0):
            return
        entry["logged_step"] = step
        now = int(time.time() * 1000)
        metrics = [Metric(k, float(v), now, step) for k, v in result.items()
                   if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                   and not k.startswith(("time_", "timestamp", "training_iteration", "pid"))]
        self.client.log_batch(entry["run_id"], metrics=metrics)

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        entry = self.state["trials"][trial.trial_id]
        last = entry.get("last", {})
        reached = int(last.get(self.time_attr, 0))
        entry["status"] = "completed" if reached >= self.max_t else "stopped"
        entry["fidelity"] = reached
        entry["params"] = dict(trial.config)
        entry["checkpoint"] = trial.checkpoint.path if trial.checkpoint else None
        tags = [RunTag("sweep.status", entry["status"]), RunTag("sweep.fidelity", str(reached))]
        if entry["checkpoint"]:
            tags.append(RunTag("sweep.checkpoint", entry["checkpoint"]))
        self.client.log_batch(entry["run_id"], tags=tags)
        self.client.set_terminated(entry["run_id"], "FINISHED")
        self._after_finish()

    def on_trial_recover(self, iteration, trials, trial, **info) -> None:
        entry = self.state["trials"].get(trial.trial_id)
        if entry is not None:
            entry["retries"] = entry.get("retries", 0) + 1
            self.client.set_tag(entry["run_id"], "sweep.retries", str(entry["retries"]))
            self._save()

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        entry = self.state["trials"].get(trial.trial_id)
        if entry is None:
            return
        entry["status"] = "failed"
        error = getattr(trial, "error_file", None)
        self.client.set_tag(entry["run_id"], "sweep.status", "failed")
        if error and os.path.exists(error):
            self.client.log_artifact(entry["run_id"], error)
            reason = failure_reason(Path(error).read_text(errors="replace"))
            if reason:
                entry["reason"] = reason
                self.client.set_tag(entry["run_id"], "sweep.failure_reason", reason)
        self.client.set_terminated(entry["run_id"], "FAILED")
        self._after_finish()

    def on_experiment_end(self, trials, **info) -> None:
        # Also called when the run is interrupted: the sweep decides afterwards whether to
        # finalize (every trial ended) or to leave the parent resumable (see runner._finish).
        self._save()

    # -- the front ----------------------------------------------------------------------------
    @property
    def parent_run_id(self) -> str:
        return self.state["parent_run_id"]

    def counts(self) -> dict[str, int]:
        out = {"running": 0, "completed": 0, "stopped": 0, "failed": 0}
        for entry in self.state.get("trials", {}).values():
            out[entry["status"]] = out.get(entry["status"], 0) + 1
        return out

    def front(self) -> dict:
        """Ranks, hypervolume and members over the trials that completed the full budget."""
        done = [(tid, e) for tid, e in self.state.get("trials", {}).items() if e["status"] == "completed"]
        names = [m for m, _, _ in self.objectives]
        goals = [g for _, g, _ in self.objectives]
        if not done:
            return {"trial_ids": [], "values": [], "ranks": [], "hypervolume": 0.0, "size": 0}
        import numpy as np

        values = np.array([[float(e["last"].get(m, math.nan)) for m in names] for _, e in done])
        points = pareto.to_minimization(values, goals)
        ref = reference_point(points, [r for _, _, r in self.objectives], goals)
        ranks = pareto.nondominated_rank(points)
        front_pts = points[ranks == 0]
        return {"trial_ids": [t for t, _ in done], "values": values.tolist(), "ranks": ranks.tolist(),
                "hypervolume": float(pareto.hypervolume(front_pts, ref)), "size": int((ranks == 0).sum())}

    def _after_finish(self) -> None:
        fr = self.front()
        c = self.counts()
        finished = c["completed"] + c["stopped"] + c["failed"]
        now = int(time.time() * 1000)
        self.client.log_batch(self.parent_run_id, metrics=[
            Metric("pareto_hypervolume", fr["hypervolume"], now, finished),
            Metric("pareto_size", fr["size"], now, finished),
            Metric("trials_completed", c["completed"], now, finished),
            Metric("trials_stopped", c["stopped"], now, finished),
            Metric("trials_failed", c["failed"], now, finished)])
        self._save()

    def finalize(self) -> dict:
        """Tag every child with its front membership, log the front's files, close the parent."""
        fr = self.front()
        rank_of = dict(zip(fr["trial_ids"], fr["ranks"]))
        for tid, entry in self.state["trials"].items():
            rank = rank_of.get(tid)
            self.client.log_batch(entry["run_id"], tags=[
                RunTag("pareto_optimal", str(rank == 0).lower()),
                RunTag("pareto_rank", str(rank) if rank is not None else "none")])
        self._log_front_files(fr)
        self.close_orphans()
        self.client.set_terminated(self.parent_run_id, "FINISHED")
        self.state["finalized"] = True
        self._save()
        return fr

    def close_orphans(self) -> None:
        """Child runs left RUNNING by a driver that died: mark them KILLED (a resumed trial reopens its run)."""
        for entry in self.state.get("trials", {}).values():
            run = self.client.get_run(entry["run_id"])
            if run.info.status == "RUNNING":
                self.client.set_terminated(entry["run_id"], "KILLED")
                self.client.set_tag(entry["run_id"], "sweep.status", "killed")
                entry["status"] = "killed"

    def _log_front_files(self, fr: dict) -> None:
        names = [m for m, _, _ in self.objectives]
        rank_of = dict(zip(fr["trial_ids"], fr["ranks"]))
        rows = []
        for tid, entry in self.state["trials"].items():
            last = entry.get("last", {})
            if not all(isinstance(last.get(m), (int, float)) for m in names):
                continue   # failed before its first evaluation
            rank = rank_of.get(tid)
            rows.append({"trial_id": tid, "run_id": entry["run_id"], "status": entry["status"],
                         "fidelity": last.get(self.time_attr), "pareto_rank": rank, "pareto_optimal": rank == 0,
                         **{m: last[m] for m in names}, **entry.get("params", {})})
        with tempfile.TemporaryDirectory() as tmp:
            paths = plots.write_front_files(rows, self.objectives, Path(tmp))
            for p in paths:
                self.client.log_artifact(self.parent_run_id, str(p))
        for row in rows:
            ckpt = self.state["trials"][row["trial_id"]].get("checkpoint")
            if row["pareto_optimal"] and ckpt and os.path.isdir(ckpt):
                self.client.log_artifacts(self.parent_run_id, ckpt, f"front_weights/{row['trial_id']}")

    def _log_spec(self) -> None:
        run_id = self.parent_run_id
        self.client.log_text(run_id, self.spec_yaml, "spec.yaml")
        self.client.log_dict(run_id, self.search_space, "search_space.json")
        self.client.log_batch(run_id, params=[Param(f"space.{k}", json.dumps(v)[:6000])
                                              for k, v in self.search_space.items()])

    def _save(self) -> None:
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.state, default=str))
        os.replace(tmp, self.state_path)


def failure_reason(error_text: str) -> str:
    """The last line of a trial's traceback (`Type: message`), passwords masked, at most 500 characters."""
    lines = [line.strip() for line in error_text.splitlines() if line.strip()]
    return redact(lines[-1])[:500] if lines else ""


def reference_point(points, refs: list, goals: list[str]):
    """The hypervolume reference in minimisation form; an objective without `ref` takes the worst value seen."""
    import numpy as np

    given = pareto.to_minimization(np.array([[r if r is not None else np.nan for r in refs]], dtype=float), goals)[0]
    worst = np.nanmax(points, axis=0) if len(points) else np.zeros(len(refs))
    return np.where(np.isnan(given), worst, given)


def configure_mlflow_env(tracking_uri: str | None = None) -> str | None:
    """Quiet, offline defaults for MLflow on the driver; returns `tracking_uri` without credentials.

    An `http://user:password@host` URI hands its user and password to MLflow through
    MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD (which MLflow reads itself), so the URI
    that is kept and passed around holds no secret.
    """
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    if not tracking_uri or not tracking_uri.startswith(("http://", "https://")):
        return tracking_uri
    from urllib.parse import unquote, urlsplit, urlunsplit

    parts = urlsplit(tracking_uri)
    if parts.username is None:
        return tracking_uri
    os.environ["MLFLOW_TRACKING_USERNAME"] = unquote(parts.username)
    if parts.password is not None:
        os.environ["MLFLOW_TRACKING_PASSWORD"] = unquote(parts.password)
    host = parts.hostname + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=host))

