"""Ray's checkpoints after a killed driver, made consistent before a resume (orchestrator/recovery.py)."""
from __future__ import annotations

import json

import ray.cloudpickle as cloudpickle
from ray.tune.search import ConcurrencyLimiter, Searcher

from orchestrator.recovery import ended_unrecorded, repoint_checkpoints, result_rows, settle_ray_state, settle_search_state


def _experiment_state(folder, statuses: dict[str, str], stamp: str = "2026-01-01_00-00-00"):
    trial_data = [[json.dumps({"trial_id": tid, "status": st}), json.dumps({})] for tid, st in statuses.items()]
    (folder / f"experiment_state-{stamp}.json").write_text(json.dumps({"trial_data": trial_data}))


def _limiter_state(folder, live: set[str], stamp: str = "2026-01-01_00-00-00"):
    limiter = ConcurrencyLimiter(Searcher(metric="m", mode="max"), max_concurrent=2)
    limiter.live_trials, limiter.num_unfinished_live_trials = set(live), len(live)
    state = {"counter": 3, "name:ConcurrencyLimiter": limiter.get_state()}
    with open(folder / f"search_gen_state-{stamp}.json", "wb") as f:
        cloudpickle.dump(state, f)


def _live(folder) -> set[str]:
    path = sorted(folder.glob("search_gen_state-*.json"))[-1]
    with open(path, "rb") as f:
        state = cloudpickle.load(f)["name:ConcurrencyLimiter"]
    assert state["num_unfinished_live_trials"] == len(state["live_trials"])
    return set(state["live_trials"])


def test_the_limiter_keeps_live_only_the_trials_ray_will_resume(tmp_path):
    # a: finished after the checkpoint (settled to TERMINATED); b: still running; c: never in
    # Ray's checkpoint (lost with the driver). Left as they were, a and c hold both slots forever.
    _experiment_state(tmp_path, {"a": "RUNNING", "b": "RUNNING", "d": "TERMINATED"})
    _limiter_state(tmp_path, {"a", "b", "c"})
    assert settle_ray_state(tmp_path, {"a", "d"}) == ["a"]
    assert settle_search_state(tmp_path) == ["a", "c"]
    assert _live(tmp_path) == {"b"}
    limiter = ConcurrencyLimiter(Searcher(metric="m", mode="max"), max_concurrent=2)   # Ray's own restore path
    with open(sorted(tmp_path.glob("search_gen_state-*.json"))[-1], "rb") as f:
        limiter.set_state(cloudpickle.load(f)["name:ConcurrencyLimiter"])
    assert limiter.live_trials == {"b"} and len(limiter.live_trials) < limiter.max_concurrent


def test_nothing_is_rewritten_when_the_limiter_is_consistent(tmp_path):
    _experiment_state(tmp_path, {"a": "RUNNING", "b": "PENDING"})
    _limiter_state(tmp_path, {"a", "b"})
    path = next(tmp_path.glob("search_gen_state-*.json"))
    before = path.stat().st_mtime_ns
    assert settle_search_state(tmp_path) == []
    assert path.stat().st_mtime_ns == before and _live(tmp_path) == {"a", "b"}
    assert settle_search_state(tmp_path / "missing") == []


def _tracked(folder, statuses: dict[str, str]):
    path = folder / "sweep_tracking.json"
    path.write_text(json.dumps({"trials": {tid: {"run_id": None, "status": st} for tid, st in statuses.items()}}))
    return path


def _results(folder, tid: str, epochs: int, cut: bool = False):
    trial = folder / f"run_trial_{tid}_1_x=0.5_2026-01-01_00-00-00"
    trial.mkdir()
    lines = [json.dumps({"epoch": e, "val_accuracy": e / 10, "config": {"x": 0.5}}) for e in range(1, epochs + 1)]
    (trial / "result.json").write_text("\n".join(lines) + ("\n{\"epoch\": " if cut else "\n"))


def test_trials_whose_end_reached_disk_but_not_the_tracker_are_found(tmp_path):
    # a, b: Ray saw them end (TERMINATED after 4 of 4 epochs, and ERROR); c: Ray never checkpointed it
    # but its results reached the full budget (the last line cut short by the kill); d: lost halfway
    # (restarts); e: Ray resumes it; f: the tracker already has its end.
    trial_data = []
    for tid, status, last in [("a", "TERMINATED", {"epoch": 4, "val_accuracy": 0.4}), ("b", "ERROR", None),
                              ("e", "RUNNING", {"epoch": 1}), ("f", "TERMINATED", {"epoch": 2}),
                              ("g", "RUNNING", {"epoch": 3})]:
        trial_data.append([json.dumps({"trial_id": tid, "status": status, "config": {"x": 0.5}}),
                           json.dumps({"last_result": last})])
    (tmp_path / "experiment_state-2026-01-01_00-00-00.json").write_text(json.dumps({"trial_data": trial_data}))
    _results(tmp_path, "a", 3)
    _results(tmp_path, "c", 4, cut=True)
    _results(tmp_path, "d", 2)
    _results(tmp_path, "e", 1)
    _results(tmp_path, "g", 4)   # g: Ray holds it RUNNING, but its results reached the full budget
    state = _tracked(tmp_path, {"a": "running", "b": "killed", "c": "running", "d": "running", "e": "running",
                                "f": "stopped", "g": "running"})
    ended = ended_unrecorded(tmp_path, state, max_t=4, time_attr="epoch")
    assert sorted(ended) == ["a", "b", "c", "g"]
    assert ended["g"]["status"] == "completed" and ended["g"]["ray_resumes"] and not ended["g"]["held_by_ray"]
    assert [r["epoch"] for r in ended["g"]["rows"]] == [1, 2, 3, 4] and ended["g"]["config"] == {"x": 0.5}
    assert not ended["a"]["ray_resumes"] and not ended["c"]["ray_resumes"]
    assert ended["a"]["status"] == "completed" and ended["a"]["held_by_ray"]
    assert [r["epoch"] for r in ended["a"]["rows"]] == [1, 2, 3, 4]   # Ray's last result joins the file's
    assert ended["b"]["status"] == "failed" and ended["b"]["rows"] == []
    assert ended["c"]["status"] == "completed" and not ended["c"]["held_by_ray"]
    assert [r["epoch"] for r in ended["c"]["rows"]] == [1, 2, 3, 4] and ended["c"]["config"] == {"x": 0.5}
    assert result_rows(tmp_path, "missing") == []
    assert ended_unrecorded(tmp_path, tmp_path / "none.json", max_t=4, time_attr="epoch") == {}


def _manager_blob(checkpoint_path, metrics):
    from ray.train import CheckpointConfig
    from ray.train._internal.checkpoint_manager import _CheckpointManager
    from ray.train._internal.session import _TrainingResult
    from ray.tune import Checkpoint
    from ray.tune.utils.serialization import TuneFunctionEncoder

    manager = _CheckpointManager(CheckpointConfig(num_to_keep=1))
    manager.register_checkpoint(_TrainingResult(Checkpoint(str(checkpoint_path)), metrics))
    return json.dumps({"checkpoint_manager": manager, "last_result": metrics}, cls=TuneFunctionEncoder)


def _restored_path(folder, tid):
    from ray.tune.utils.serialization import TuneFunctionDecoder

    for pair in json.loads(next(folder.glob("experiment_state-*.json")).read_text())["trial_data"]:
        if json.loads(pair[0])["trial_id"] == tid:
            latest = json.loads(pair[1], cls=TuneFunctionDecoder, allow_cloudpickle=True)["checkpoint_manager"]
            result = latest.latest_checkpoint_result
            return (result.checkpoint.path, result.metrics.get("epoch")) if result else None


def test_a_trial_whose_checkpoint_was_replaced_resumes_from_the_newest_one_on_disk(tmp_path):
    # Ray's state names checkpoint_000001, which num_to_keep=1 deleted when checkpoint_000003 came
    trials = {}
    for tid in ("a", "b", "c"):
        trials[tid] = tmp_path / f"run_trial_{tid}_1_x=0.5_2026-01-01_00-00-00"
        trials[tid].mkdir()
    (trials["a"] / "checkpoint_000003").mkdir()
    (trials["b"] / "checkpoint_000001").mkdir()
    (trials["a"] / "result.json").write_text("\n".join(
        json.dumps({"epoch": e, "checkpoint_dir_name": f"checkpoint_{e - 1:06d}"}) for e in (1, 2, 3, 4)) + "\n")
    data = [[json.dumps({"trial_id": "a", "status": "RUNNING"}), _manager_blob(trials["a"] / "checkpoint_000001", {"epoch": 2})],
            [json.dumps({"trial_id": "b", "status": "PENDING"}), _manager_blob(trials["b"] / "checkpoint_000001", {"epoch": 2})],
            [json.dumps({"trial_id": "c", "status": "RUNNING"}), _manager_blob(trials["c"] / "checkpoint_000004", {"epoch": 5})]]
    (tmp_path / "experiment_state-2026-01-01_00-00-00.json").write_text(json.dumps({"trial_data": data}))
    assert repoint_checkpoints(tmp_path) == ["a", "c"]
    assert _restored_path(tmp_path, "a") == (str(trials["a"] / "checkpoint_000003"), 4)
    assert _restored_path(tmp_path, "b") == (str(trials["b"] / "checkpoint_000001"), 2)   # untouched
    assert _restored_path(tmp_path, "c") is None                                          # starts over
    assert repoint_checkpoints(tmp_path) == []
