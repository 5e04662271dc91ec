"""Ray's checkpoints after a killed driver, made consistent before a resume (orchestrator/recovery.py)."""
from __future__ import annotations

import json

import ray.cloudpickle as cloudpickle
from ray.tune.search import ConcurrencyLimiter, Searcher

from orchestrator.recovery import settle_ray_state, settle_search_state


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
