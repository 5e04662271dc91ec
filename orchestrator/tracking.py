"""MLflow logging of a sweep: the only module that imports mlflow.

One parent run per sweep (per task of a suite); every trial a nested child run with its
parameters, its metrics at every evaluation (step = epoch), its status and checkpoint. After
each finished trial the parent logs `pareto_hypervolume`, `pareto_size` and
`trials_completed` (step = finished trials), so the UI charts the search converging; at the
end it gets `pareto_front.csv`, `.png`, `.html` and the front members' weights, and every
child the tags `pareto_optimal` and `pareto_rank`.

Everything runs on the Ray driver through MlflowClient (no global active run). What a resume
needs (parent run id, trial -> child run, finished results) is kept in a JSON file in the
sweep's own folder beside Ray's (`Plan.sweep_dir`), rewritten atomically after every change.
Every write goes through an `Outbox` (orchestrator/outbox.py): sent in order by a background
thread, held and retried while the tracking server is away, so the trials never wait for it;
a server away longer than `failure.tracking_timeout_s` ends the sweep with that error, and `--resume` sends what is left.
"""
from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path

from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient
from ray import tune

from orchestrator import pareto, plots
from orchestrator.mlflow_env import is_outage
from orchestrator.outbox import Outbox
from orchestrator.secrets import redact
from orchestrator.trial import STRAY_FILES
from surnn.trainable import FIDELITY

STATE_FILE = "sweep_tracking.json"
OUTBOX_FILE = "tracking_outbox.json"
PARENT = "parent"     # the outbox key of the parent run; a trial's key is its trial id


class TrackingUnavailable(RuntimeError):
    """The tracking server stayed unreachable past failure.tracking_timeout_s."""


class SweepTracker(tune.Callback):
    """Ray Tune callback that mirrors the sweep into MLflow and keeps the running Pareto front.

    Args:
        tracking_uri, experiment: where to log.
        run_name: the parent run's name.
        state_dir: folder for the resume state (`Plan.sweep_dir`, beside the Ray experiment folder).
        objectives: list of (metric, goal, ref) in the spec's order.
        max_t: the full budget in `time_attr` units; a trial ending below it was stopped early.
        spec_yaml, search_space: logged on the parent run.
        timeout_s: how long the server may be unreachable before the sweep stops.
    """

    def __init__(self, tracking_uri: str, experiment: str, run_name: str, state_dir: str,
                 objectives: list[tuple[str, str, float]], max_t: int, spec_yaml: str,
                 search_space: dict, time_attr: str = FIDELITY, timeout_s: float = 600.0):
        self.tracking_uri, self.experiment, self.run_name = tracking_uri, experiment, run_name
        self.state_path = Path(state_dir) / STATE_FILE
        self.objectives, self.max_t, self.time_attr = objectives, max_t, time_attr
        self.spec_yaml, self.search_space = spec_yaml, search_space
        self.timeout_s = timeout_s
        self.client: MlflowClient | None = None
        self.outbox: Outbox | None = None
        self.state: dict = {}

    # -- pickling: Ray stores callbacks with the experiment; client and outbox are rebuilt in setup().
    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if k not in ("client", "outbox")} | \
            {"client": None, "outbox": None}

    # -- Ray Tune hooks ---------------------------------------------------------------------
    def load(self) -> None:
        """Connect to MLflow and read the persisted state (no runs are created or changed)."""
        self.client = MlflowClient(self.tracking_uri)
        self.state = json.loads(self.state_path.read_text()) if self.state_path.exists() else {"trials": {}}
        self.outbox = Outbox(self.state_path.with_name(OUTBOX_FILE), self._send, is_outage, self.timeout_s)

    def setup(self, **info) -> None:
        self.load()
        self.flush()   # what a stopped sweep left unsent goes first, in its order
        exp = self._read(lambda: self.client.get_experiment_by_name(self.experiment))
        exp_id = exp.experiment_id if exp else self._read(lambda: self.client.create_experiment(self.experiment))
        self.state["experiment_id"] = exp_id
        resumed = self.run_id(PARENT) is not None
        if not resumed:
            self.outbox.put({"op": "create_run", "key": PARENT, "experiment_id": exp_id, "run_name": self.run_name,
                             "tags": {"sweep.role": "parent"}})
            self._log_spec()
        else:
            self._put("update_run", PARENT, status="RUNNING")
        self.flush()
        if resumed:
            self._find_unrecorded_children()
            for entry in self.state["trials"].values():   # re-read from MLflow when a trial resumes
                entry.pop("logged_step", None)
        self.close_orphans()
        self._settled = False
        self._save()

    def _find_unrecorded_children(self) -> None:
        """Child runs a killed driver made but never wrote to the state file join it (as running)."""
        known = {self.run_id(tid) for tid in self.state["trials"]}
        runs = self._read(lambda: self.client.search_runs(
            [self.state["experiment_id"]], f"tags.mlflow.parentRunId = '{self.parent_run_id}'", max_results=50000))
        for run in runs:
            tid = run.data.tags.get("sweep.trial_id")
            if run.info.run_id not in known and tid and tid not in self.state["trials"]:
                self.state["trials"][tid] = {"run_id": run.info.run_id, "status": "running"}

    def on_step_begin(self, iteration, trials, **info) -> None:
        if self.outbox is not None and self.outbox.failed:
            raise TrackingUnavailable(self.outbox.failed)
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
            run = self.run_id(tid)
            self.state["trials"].pop(tid)
            if run:
                self._read(lambda r=run: self.client.delete_run(r))
        if lost:
            print(f"{len(lost)} trials started after Ray's last checkpoint restart from scratch: "
                  f"{', '.join(lost)}", file=sys.stderr, flush=True)
        self._save()

    # -- the outbox ---------------------------------------------------------------------------
    def run_id(self, key: str) -> str | None:
        """The MLflow run of `key` (PARENT or a trial id); None while its creation is still pending."""
        known = self.state.get("parent_run_id") if key == PARENT else self.state["trials"].get(key, {}).get("run_id")
        return known or (self.outbox.ids.get(key) if self.outbox else None)

    def _put(self, op: str, key: str, **args) -> None:
        self.outbox.put({"op": op, "key": key, **args})

    def _send(self, op: dict) -> str | None:
        """Apply one outbox operation to MLflow; returns the id of a run it made."""
        kind, key = op["op"], op["key"]
        if kind == "create_run":
            if self.run_id(key) is not None:
                return None   # made before a restart
            return self.client.create_run(op["experiment_id"], run_name=op["run_name"], tags=op["tags"]).info.run_id
        run = self.run_id(key)
        if kind == "log_batch":
            self.client.log_batch(run, metrics=[Metric(*m) for m in op.get("metrics", [])],
                                  params=[Param(*p) for p in op.get("params", [])],
                                  tags=[RunTag(*t) for t in op.get("tags", [])])
        elif kind == "terminate":
            self.client.set_terminated(run, op["status"])
        elif kind == "update_run":
            self.client.update_run(run, status=op["status"])
        elif kind == "log_text":
            self.client.log_text(run, op["text"], op["path"])
        elif kind == "log_artifact":
            self.client.log_artifact(run, op["local_path"])
        elif kind == "log_artifacts":
            self.client.log_artifacts(run, op["local_dir"], op["artifact_path"])
        return None

    def _read(self, call):
        """A read that must be answered now: retried through an outage up to the timeout."""
        deadline, delay = time.monotonic() + self.timeout_s, 0.5
        while True:
            try:
                return call()
            except Exception as exc:
                if not is_outage(exc) or time.monotonic() + delay > deadline:
                    if is_outage(exc):
                        raise TrackingUnavailable(f"the tracking server could not be reached for "
                                                  f"{self.timeout_s:g} s (failure.tracking_timeout_s)") from None
                    raise
                time.sleep(delay)
                delay = min(2 * delay, 5.0)

    def flush(self) -> None:
        """Wait for every pending write; raises TrackingUnavailable past the timeout."""
        if not self.outbox.flush(self.timeout_s + 30):
            raise TrackingUnavailable(self.outbox.failed or f"tracking writes still pending after "
                                      f"{self.timeout_s:g} s (failure.tracking_timeout_s)")
        self._save()

    def close_parent(self, status: str) -> None:
        self._put("terminate", PARENT, status=status)
        self.flush()

    def on_trial_start(self, iteration, trials, trial, **info) -> None:
        tid = trial.trial_id
        entry = self.state["trials"].get(tid)
        if entry is None:
            entry = self.state["trials"][tid] = {"run_id": None, "status": "running"}
            self._put("create_run", tid, experiment_id=self.state["experiment_id"], run_name=tid,
                      tags={"mlflow.parentRunId": self.parent_run_id, "sweep.trial_id": tid, "sweep.status": "running"})
            params = [(k, redact(str(v))[:6000]) for k, v in sorted(trial.config.items())]
            self._put("log_batch", tid, params=params)
            self._put("log_text", tid, text=redact(json.dumps(trial.config, indent=2, default=str)), path="params.json")
        else:   # a resumed or retried trial continues in its own run
            entry["status"] = "running"
            self._put("update_run", tid, status="RUNNING")
            self._put("log_batch", tid, tags=[("sweep.status", "running")])
            if "logged_step" not in entry:   # resumed by a new driver: what reached MLflow before
                # it may resume from a checkpoint older than its last logged epoch: log no step twice
                run = self.run_id(tid)
                history = self._read(lambda: self.client.get_metric_history(run, self.time_attr)) if run else []
                entry["logged_step"] = max((m.step for m in history), default=0)
        self._save()

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        entry = self.state["trials"][trial.trial_id]
        step = int(result.get(self.time_attr, 0))
        entry["last"] = {k: v for k, v in result.items() if isinstance(v, (int, float, str, bool))}
        stray = result.get(STRAY_FILES)
        if stray and stray != entry.get("stray_files"):   # a warning: the trial goes on
            entry["stray_files"] = stray
            self._put("log_batch", trial.trial_id, tags=[("sweep.stray_files", str(stray))])
        if step <= entry.get("logged_step", 0):
            return
        entry["logged_step"] = step
        now = int(time.time() * 1000)
        metrics = [(k, float(v), now, step) for k, v in result.items()
                   if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                   and not k.startswith(("time_", "timestamp", "training_iteration", "pid"))]
        self._put("log_batch", trial.trial_id, metrics=metrics)

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        entry = self.state["trials"][trial.trial_id]
        last = entry.get("last", {})
        reached = int(last.get(self.time_attr, 0))
        entry["status"] = "completed" if reached >= self.max_t else "stopped"
        entry["fidelity"] = reached
        entry["params"] = dict(trial.config)
        entry["checkpoint"] = trial.checkpoint.path if trial.checkpoint else None
        tags = [("sweep.status", entry["status"]), ("sweep.fidelity", str(reached))]
        if entry["checkpoint"]:
            tags.append(("sweep.checkpoint", entry["checkpoint"]))
        self._put("log_batch", trial.trial_id, tags=tags)
        self._put("terminate", trial.trial_id, status="FINISHED")
        self._after_finish()

    def record_ended(self, trial_id: str, status: str, rows: list[dict], config: dict) -> None:
        """Record a trial whose end reached disk but not this state (see recovery.ended_unrecorded).

        Logs the epochs MLflow lacks from `rows` (the trial's results in order), then its status
        as `on_trial_complete` / `on_trial_error` would have; waits for the writes.
        """
        entry = self.state["trials"].setdefault(trial_id, {"run_id": None, "status": "running"})
        run = self.run_id(trial_id)
        if run is None:
            self._put("create_run", trial_id, experiment_id=self.state["experiment_id"], run_name=trial_id,
                      tags={"mlflow.parentRunId": self.parent_run_id, "sweep.trial_id": trial_id})
            self._put("log_batch", trial_id, params=[(k, redact(str(v))[:6000]) for k, v in sorted(config.items())])
            logged = 0
        else:
            history = self._read(lambda: self.client.get_metric_history(run, self.time_attr))
            logged = max((m.step for m in history), default=0)
        entry["logged_step"] = logged
        for row in rows:
            self.on_trial_result(0, [], _Ended(trial_id), row)
        last = entry.get("last", {})
        entry.update(status=status, fidelity=int(last.get(self.time_attr, 0)), params=dict(config))
        tags = [("sweep.status", status), ("sweep.fidelity", str(entry["fidelity"]))]
        self._put("log_batch", trial_id, tags=tags)
        self._put("terminate", trial_id, status="FAILED" if status == "failed" else "FINISHED")
        self._after_finish()
        self.flush()

    def on_trial_recover(self, iteration, trials, trial, **info) -> None:
        entry = self.state["trials"].get(trial.trial_id)
        if entry is not None:
            entry["retries"] = entry.get("retries", 0) + 1
            self._put("log_batch", trial.trial_id, tags=[("sweep.retries", str(entry["retries"]))])
            self._save()

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        entry = self.state["trials"].get(trial.trial_id)
        if entry is None:
            return
        entry["status"] = "failed"
        error = getattr(trial, "error_file", None)
        tid = trial.trial_id
        self._put("log_batch", tid, tags=[("sweep.status", "failed")])
        if error and os.path.exists(error):
            self._put("log_artifact", tid, local_path=error)
            reason = failure_reason(Path(error).read_text(errors="replace"))
            if reason:
                entry["reason"] = reason
                self._put("log_batch", tid, tags=[("sweep.failure_reason", reason)])
        self._put("terminate", tid, status="FAILED")
        self._after_finish()

    def on_experiment_end(self, trials, **info) -> None:
        # Also called when the run is interrupted: the sweep decides afterwards whether to
        # finalize (every trial ended) or to leave the parent resumable (see runner._finish).
        if self.outbox is not None and not self.outbox.failed:
            self.outbox.flush(self.timeout_s + 30)
        self._save()

    # -- the front ----------------------------------------------------------------------------
    @property
    def parent_run_id(self) -> str:
        return self.run_id(PARENT)

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
        self._put("log_batch", PARENT, metrics=[
            ("pareto_hypervolume", fr["hypervolume"], now, finished), ("pareto_size", fr["size"], now, finished),
            ("trials_completed", c["completed"], now, finished), ("trials_stopped", c["stopped"], now, finished),
            ("trials_failed", c["failed"], now, finished)])
        self._save()

    def finalize(self) -> dict:
        """Tag every child with its front membership, log the front's files, close the parent."""
        fr = self.front()
        rank_of = dict(zip(fr["trial_ids"], fr["ranks"]))
        for tid in self.state["trials"]:
            rank = rank_of.get(tid)
            self._put("log_batch", tid, tags=[("pareto_optimal", str(rank == 0).lower()),
                                              ("pareto_rank", str(rank) if rank is not None else "none")])
        self._log_front_files(fr)
        self.flush()
        self.close_orphans()
        self._put("terminate", PARENT, status="FINISHED")
        self.flush()
        self.state["finalized"] = True
        self._save()
        return fr

    def close_orphans(self) -> None:
        """Child runs left RUNNING by a driver that died: mark them KILLED (a resumed trial reopens its run)."""
        for tid in self.state.get("trials", {}):
            run_id = self.run_id(tid)
            run = self._read(lambda r=run_id: self.client.get_run(r)) if run_id else None
            if run is not None and run.info.status == "RUNNING":
                self._put("terminate", tid, status="KILLED")
                self._put("log_batch", tid, tags=[("sweep.status", "killed")])
                self.state["trials"][tid]["status"] = "killed"

    def _log_front_files(self, fr: dict) -> None:
        names = [m for m, _, _ in self.objectives]
        rank_of = dict(zip(fr["trial_ids"], fr["ranks"]))
        rows = []
        for tid, entry in self.state["trials"].items():
            last = entry.get("last", {})
            if not all(isinstance(last.get(m), (int, float)) for m in names):
                continue   # failed before its first evaluation
            rank = rank_of.get(tid)
            rows.append({"trial_id": tid, "run_id": self.run_id(tid), "status": entry["status"],
                         "fidelity": last.get(self.time_attr), "pareto_rank": rank, "pareto_optimal": rank == 0,
                         **{m: last[m] for m in names}, **entry.get("params", {})})
        folder = self.state_path.parent / "pareto_front"   # kept until sent (the outbox sends it later)
        folder.mkdir(parents=True, exist_ok=True)
        for p in plots.write_front_files(rows, self.objectives, folder):
            self._put("log_artifact", PARENT, local_path=str(p))
        for row in rows:
            ckpt = self.state["trials"][row["trial_id"]].get("checkpoint")
            if row["pareto_optimal"] and ckpt and os.path.isdir(ckpt):
                self._put("log_artifacts", PARENT, local_dir=ckpt, artifact_path=f"front_weights/{row['trial_id']}")

    def _log_spec(self) -> None:
        self._put("log_text", PARENT, text=self.spec_yaml, path="spec.yaml")
        self._put("log_text", PARENT, text=json.dumps(self.search_space, indent=2), path="search_space.json")
        self._put("log_batch", PARENT, params=[(f"space.{k}", json.dumps(v)[:6000]) for k, v in self.search_space.items()])

    def _save(self) -> None:
        if self.outbox is not None:   # run ids the outbox learned since
            if not self.state.get("parent_run_id") and PARENT in self.outbox.ids:
                self.state["parent_run_id"] = self.outbox.ids[PARENT]
            for tid, entry in self.state.get("trials", {}).items():
                if not entry.get("run_id") and tid in self.outbox.ids:
                    entry["run_id"] = self.outbox.ids[tid]
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.state, default=str))
        os.replace(tmp, self.state_path)


class _Ended:
    """Stands for a Ray trial that is no longer there, in `record_ended`'s call of `on_trial_result`."""

    def __init__(self, trial_id: str):
        self.trial_id = trial_id


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
