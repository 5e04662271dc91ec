"""After a driver killed mid-sweep: the records it left, made consistent before `--resume`.

Ray writes its experiment checkpoint (trial statuses, the searcher) at most every 10 s; the
sweep's tracker state and the Optuna study are written as things happen. A driver killed
in between leaves Ray's view behind the others:

* a trial the tracker recorded as finished (completed, stopped early, failed) may still be
  RUNNING in Ray's checkpoint, and Ray would run it again to completion. `settle_ray_state`
  marks it TERMINATED in the newest checkpoint, so Ray keeps it as it ended;
* a trial Ray never checkpointed is unknown to it: the searcher hands its study trial to a
  new Ray trial (`ParetoOptunaSearch._adopt_orphan`) and the tracker deletes its partial run
  (`SweepTracker.on_step_begin`);
* a trial that Ray resumes from an older checkpoint than its last logged epoch logs no
  epoch twice (`SweepTracker.on_trial_start`);
* the concurrency limiter's checkpoint may count as live a trial that has ended (or that Ray
  never checkpointed): restored as is, it would wait for them forever and start nothing.
  `settle_search_state` keeps live only the trials Ray will resume;
* a trial whose end reached disk but not the tracker's record (`ended_unrecorded`): Ray's
  checkpoint holds it TERMINATED or ERROR (Ray and the study saw its end before the tracker's
  callback ran), or its folder's `result.json` reached the full budget while Ray's checkpoint
  holds it RUNNING or not at all (it finished between Ray's checkpoint and its completion;
  resumed, it would run its last epoch again from its checkpoint). Either way it is recorded
  as it ended (`SweepTracker.record_ended`, and the study told for the second kind, Ray's
  checkpoint marked TERMINATED), never run again;
* a trial Ray will resume from a checkpoint that is gone: with `num_to_keep=1` the trial's
  newer checkpoint replaced it after Ray's last experiment checkpoint, and Ray's restore would
  fail the trial. `repoint_checkpoints` points it at the newest checkpoint in its folder (or,
  with none, lets it start over; the tracker logs no epoch twice).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

FINISHED = ("completed", "stopped", "failed")


def newest_experiment_state(experiment_dir: Path) -> Path | None:
    """The experiment checkpoint Ray restores from (it takes the greatest name too)."""
    files = sorted(Path(experiment_dir).glob("experiment_state-*.json"))
    return files[-1] if files else None


def _write_json(path: Path, state: dict) -> None:
    """Replace `path` with `state` as JSON, atomically (a reader sees the old file or the new)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(state))
    os.replace(tmp, path)


def finished_trials(tracking_state: Path) -> set[str]:
    """Trial ids the tracker's state file records as finished."""
    if not tracking_state.exists():
        return set()
    trials = json.loads(tracking_state.read_text()).get("trials", {})
    return {tid for tid, entry in trials.items() if entry.get("status") in FINISHED}


def settle_ray_state(experiment_dir: Path, finished: set[str]) -> list[str]:
    """Mark `finished` trials TERMINATED in Ray's newest experiment checkpoint; returns their ids.

    The file is rewritten atomically, and only when some trial changes.
    """
    path = newest_experiment_state(experiment_dir)
    if path is None or not finished:
        return []
    state = json.loads(path.read_text())
    changed = []
    for pair in state["trial_data"]:
        trial = json.loads(pair[0])
        if trial.get("trial_id") in finished and trial.get("status") not in ("TERMINATED", "ERROR"):
            trial["status"] = "TERMINATED"
            pair[0] = json.dumps(trial, indent=2)
            changed.append(trial["trial_id"])
    if changed:
        _write_json(path, state)
    return changed


def settle_search_state(experiment_dir: Path) -> list[str]:
    """Drop from the concurrency limiter's live trials those Ray will not resume; returns their ids.

    Ray restores the limiter from its newest `search_gen_state-*.json`; a trial in its live set
    that the experiment checkpoint holds as ended (or does not hold) never reports its end again,
    so its slot would stay taken. Rewritten atomically, and only when something changes.
    """
    import ray.cloudpickle as cloudpickle

    runs, searches = newest_experiment_state(experiment_dir), sorted(Path(experiment_dir).glob("search_gen_state-*.json"))
    if runs is None or not searches:
        return []
    unfinished = {json.loads(pair[0]).get("trial_id") for pair in json.loads(runs.read_text())["trial_data"]
                  if json.loads(pair[0]).get("status") not in ("TERMINATED", "ERROR")}
    path = searches[-1]
    with open(path, "rb") as f:
        state = cloudpickle.load(f)
    limiter = state.get("name:ConcurrencyLimiter") or state.get("name:PauseAwareLimiter")
    if not limiter or not limiter.get("live_trials"):
        return []
    gone = sorted(set(limiter["live_trials"]) - unfinished)
    if gone:
        limiter["live_trials"] = set(limiter["live_trials"]) & unfinished
        limiter["num_unfinished_live_trials"] = len(limiter["live_trials"])
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "wb") as f:
            cloudpickle.dump(state, f)
        os.replace(tmp, path)
    return gone


def _trial_folder(experiment_dir: Path, trial_id: str) -> Path | None:
    """The folder Ray made for `trial_id` (named `<trainable>_<trial_id>_<n>_<params>_<date>`)."""
    found = [p for p in Path(experiment_dir).glob(f"*_{trial_id}_*") if p.is_dir()]
    return found[0] if found else None


def result_rows(experiment_dir: Path, trial_id: str) -> list[dict]:
    """The results Ray's driver wrote for `trial_id` (its `result.json`, one JSON object a line)."""
    folder = _trial_folder(experiment_dir, trial_id)
    path = folder / "result.json" if folder else None
    if path is None or not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:   # a line cut short by the kill
            break
    return rows


def ended_unrecorded(experiment_dir: Path, tracking_state: Path, max_t: int, time_attr: str) -> dict[str, dict]:
    """Trials the tracker still holds as running whose end is on disk.

    Returns {trial id: {"status": completed | stopped | failed, "rows": results in order,
    "config": the trial's parameters, "held_by_ray": Ray's checkpoint holds its end (the study
    was told), "ray_resumes": Ray's checkpoint holds it unfinished (mark it TERMINATED there)}};
    see the module's docstring.
    """
    if not tracking_state.exists():
        return {}
    tracked = json.loads(tracking_state.read_text()).get("trials", {})
    open_ids = {tid for tid, e in tracked.items() if e.get("status") in ("running", "killed")}
    if not open_ids:
        return {}
    held: dict[str, tuple[dict, dict]] = {}
    path = newest_experiment_state(experiment_dir)
    if path is not None:
        for pair in json.loads(path.read_text())["trial_data"]:
            trial = json.loads(pair[0])
            held[trial.get("trial_id")] = (trial, json.loads(pair[1]) if isinstance(pair[1], str) else pair[1])
    out = {}
    for tid in sorted(open_ids):
        rows = result_rows(experiment_dir, tid)
        trial, meta = held.get(tid, (None, None))
        if trial is not None and trial.get("status") in ("TERMINATED", "ERROR"):
            last = (meta or {}).get("last_result") or (rows[-1] if rows else {})
            if last and (not rows or rows[-1].get(time_attr) != last.get(time_attr)):
                rows = rows + [last]
            reached = int(last.get(time_attr, 0)) if last else 0
            status = "failed" if trial["status"] == "ERROR" else ("completed" if reached >= max_t else "stopped")
            out[tid] = {"status": status, "rows": rows, "config": trial.get("config", {}), "held_by_ray": True,
                        "ray_resumes": False}
        elif rows and int(rows[-1].get(time_attr, 0)) >= max_t:
            # its results reached the full budget after Ray's checkpoint, which holds it unfinished
            # (resumed, it would run its end again from its last checkpoint) or not at all
            out[tid] = {"status": "completed", "rows": rows,
                        "config": rows[-1].get("config") or (trial or {}).get("config", {}),
                        "held_by_ray": False, "ray_resumes": trial is not None}
        # else Ray resumes it
    return out


def repoint_checkpoints(experiment_dir: Path) -> list[str]:
    """Point each trial Ray will resume at a checkpoint that exists; returns the trials changed.

    Ray's checkpoint of a trial names its latest checkpoint folder. If that folder is gone (a
    newer one replaced it after Ray's last experiment checkpoint), the newest `checkpoint_*`
    folder of the trial takes its place, with the metrics `result.json` holds for it; with no
    folder left, the trial starts over. Rewritten atomically, and only when something changes.
    """
    import ray.cloudpickle as cloudpickle
    from ray._common.utils import binary_to_hex, hex_to_binary
    from ray.train._internal.session import _TrainingResult

    path = newest_experiment_state(experiment_dir)
    if path is None:
        return []
    state = json.loads(path.read_text())
    changed = []
    for pair in state["trial_data"]:
        trial = json.loads(pair[0])
        if trial.get("status") in ("TERMINATED", "ERROR") or not isinstance(pair[1], str):
            continue
        meta = json.loads(pair[1])
        blob = meta.get("checkpoint_manager")
        if not isinstance(blob, dict) or blob.get("_type") != "CLOUDPICKLE_FALLBACK":
            continue
        manager = cloudpickle.loads(hex_to_binary(blob["value"]))
        latest = manager.latest_checkpoint_result
        if latest is None or latest.checkpoint is None or os.path.isdir(latest.checkpoint.path):
            continue
        found = sorted(p for p in Path(latest.checkpoint.path).parent.glob("checkpoint_*") if p.is_dir())
        result = None
        if found:   # zero-padded names: the greatest is the newest
            rows = {r.get("checkpoint_dir_name"): r for r in result_rows(experiment_dir, trial["trial_id"])}
            checkpoint = type(latest.checkpoint)(str(found[-1]), filesystem=latest.checkpoint.filesystem)
            result = _TrainingResult(checkpoint=checkpoint, metrics=rows.get(found[-1].name, latest.metrics))
        manager._checkpoint_results = [result] if result else []
        manager._latest_checkpoint_result = result
        meta["checkpoint_manager"] = {"_type": "CLOUDPICKLE_FALLBACK", "value": binary_to_hex(cloudpickle.dumps(manager))}
        pair[1] = json.dumps(meta)
        changed.append(trial["trial_id"])
    if changed:
        _write_json(path, state)
    return changed
