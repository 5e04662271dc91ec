"""MO-ASHA: the rung core driven by hand-picked numbers, and the Ray adapter in Ray Tune."""

import json
import os
import pickle
import sys
from types import SimpleNamespace

import numpy as np
import pytest

from orchestrator.schedulers import CONTINUE, STOP, RungCore
from orchestrator.schedulers.moasha import ParetoASHA


def _feed(core, reports):
    """Feeds (trial_id, t, point) reports; returns the decisions."""
    return [core.on_result(tid, t, None if p is None else np.array(p)) for tid, t, p in reports]


def test_rung_levels_are_grace_period_times_powers_below_max_t():
    assert RungCore(1, 3, 9).levels == [1, 3]
    assert RungCore(1, 3, 10).levels == [1, 3, 9]
    assert RungCore(2, 2, 16).levels == [2, 4, 8]
    assert RungCore(4, 2, 4).levels == []


@pytest.mark.parametrize(
    "args", [(0, 3, 9), (1, 1, 9), (1, 0.5, 9), (5, 3, 4)]
)
def test_rung_core_rejects_bad_schedule(args):
    with pytest.raises(ValueError):
        RungCore(*args)


# Worked example. grace_period=1, reduction_factor=2, max_t=8: rungs at t = 1, 2, 4.
# A trial continues if its place in promotion_order among the n points at the rung
# (itself included) is < ceil(n / 2). Points are minimisation.
#
# Rung t=1:
#   A (1, 5)     n=1 keep 1: alone                                   -> continue
#   B (5, 1)     n=2 keep 1: A, B both front and boundary (inf); index puts A first,
#                B at place 1                                        -> stop
#   C (2, 2)     n=3 keep 2: front {A, B, C}; A, B boundary (inf), C finite crowding;
#                order A, B, C: C at place 2                         -> stop
#   D (3, 3.5)   n=4 keep 2: dominated by C (rank 1), last           -> stop
#   E (0.5, 0.5) n=5 keep 3: dominates all four, rank 0 alone, place 0 -> continue
#                (the order is E, A, B, C, D = indices [4, 0, 1, 2, 3]; reading its
#                last element, 3, as E's rank, as Syne Tune's MOASHA does, would put E
#                outside the best 3 and stop it)
#   A at t=1.5   rung 1 already passed                               -> continue
#   B at t=2     stopped before                                      -> stop
# Rung t=2:
#   A (0.9, 4)   n=1                                                 -> continue
#   E (0.4, 0.4) n=2 keep 1: dominates A                             -> continue
#   A at t=3     between rungs                                       -> continue
# Rung t=4:
#   E (0.3, 0.3) n=1                                                 -> continue
#   A (0.8, 3.5) n=2 keep 1: dominated by E                          -> stop
#   E at t=8     t >= max_t, finishes by itself                      -> continue
WORKED_EXAMPLE = [
    ("A", 1, (1, 5), CONTINUE),
    ("B", 1, (5, 1), STOP),
    ("C", 1, (2, 2), STOP),
    ("D", 1, (3, 3.5), STOP),
    ("E", 1, (0.5, 0.5), CONTINUE),
    ("A", 1.5, (1, 4.5), CONTINUE),
    ("B", 2, (4, 1), STOP),
    ("A", 2, (0.9, 4), CONTINUE),
    ("E", 2, (0.4, 0.4), CONTINUE),
    ("A", 3, (0.85, 3.8), CONTINUE),
    ("E", 4, (0.3, 0.3), CONTINUE),
    ("A", 4, (0.8, 3.5), STOP),
    ("E", 8, (0.2, 0.2), CONTINUE),
]


def test_worked_example_decisions():
    core = RungCore(grace_period=1, reduction_factor=2, max_t=8)
    decisions = _feed(core, [(tid, t, p) for tid, t, p, _ in WORKED_EXAMPLE])
    assert decisions == [d for *_, d in WORKED_EXAMPLE]
    assert core.stopped == {"B": 1, "C": 1, "D": 1, "A": 4}
    assert core.rung_sizes() == [(1.0, 5), (2.0, 2), (4.0, 2)]


def test_moasha_continues_trial_that_dominates_rung():
    # NOTE: the Syne Tune trap (MOASHA reading an argsort as a rank). Nine trials of a full front are
    # at the rung; a new one that dominates them all must continue whatever their order.
    core = RungCore(grace_period=1, reduction_factor=3, max_t=9)
    x = np.linspace(0.1, 0.9, 9)
    _feed(core, [(f"t{i}", 1, (x[i], 1 - x[i])) for i in np.random.default_rng(0).permutation(9)])
    assert core.on_result("best", 1, np.array([0.0, 0.0])) == CONTINUE


def test_moasha_stops_dominated_trial():
    core = RungCore(grace_period=1, reduction_factor=3, max_t=9)
    x = np.linspace(0.1, 0.9, 9)
    _feed(core, [(f"t{i}", 1, (x[i], 1 - x[i])) for i in range(9)])
    assert core.on_result("worst", 1, np.array([1.0, 1.0])) == STOP
    assert core.stopped["worst"] == 1


def test_crowding_decides_within_a_front():
    # reduction_factor=1.5: keep ceil(n / 1.5). All points are on one front.
    # P0 (0, 10) n=1 keep 1 -> continue; P1 (10, 0) n=2 keep 2 -> continue;
    # P2 (1, 9) n=3 keep 2: P0, P1 boundary (inf), P2 third -> stop.
    # n=4 keep 3: a spread-out newcomer (5, 5) has crowding 1.8 > P2's 1.0 -> place 2,
    # continue; a crowded one (0.5, 9.5) has 0.2 < P2's 1.9 -> place 3, stop.
    def core_with_three():
        core = RungCore(grace_period=1, reduction_factor=1.5, max_t=9)
        assert _feed(core, [("P0", 1, (0, 10)), ("P1", 1, (10, 0)), ("P2", 1, (1, 9))]) == [
            CONTINUE,
            CONTINUE,
            STOP,
        ]
        return core

    assert core_with_three().on_result("P3", 1, np.array([5.0, 5.0])) == CONTINUE
    assert core_with_three().on_result("P3", 1, np.array([0.5, 9.5])) == STOP


@pytest.mark.parametrize("bad", [None, (np.nan, 0.0), (0.0, np.inf), (-np.inf, 0.0)])
def test_missing_or_non_finite_point_at_a_rung_stops_without_being_recorded(bad):
    core = RungCore(grace_period=1, reduction_factor=3, max_t=9)
    assert core.on_result("bad", 0.5, None if bad is None else np.array(bad)) == CONTINUE
    assert core.on_result("bad", 1, None if bad is None else np.array(bad)) == STOP
    assert core.stopped == {"bad": 1}
    assert core.rung_sizes()[0] == (1.0, 0)
    # The next trial is the first recorded there, so it continues.
    assert core.on_result("good", 1, np.array([9.0, 9.0])) == CONTINUE


def test_reports_off_rungs_and_at_max_t_continue():
    core = RungCore(grace_period=2, reduction_factor=2, max_t=8)  # rungs 2, 4
    assert _feed(core, [("a", 1, (0, 0)), ("b", 2, (0, 0)), ("a", 2, (1, 1))]) == [
        CONTINUE,
        CONTINUE,
        STOP,
    ]
    assert core.on_result("c", 8, np.array([5.0, 5.0])) == CONTINUE
    assert core.on_result("c", 100, None) == CONTINUE
    assert core.on_result("b", 3, np.array([0.0, 0.0])) == CONTINUE


def test_json_round_trip_keeps_next_decisions():
    first, second = WORKED_EXAMPLE[:7], WORKED_EXAMPLE[7:]
    straight = RungCore(1, 2, 8)
    _feed(straight, [(tid, t, p) for tid, t, p, _ in first])
    restored = RungCore(1, 2, 8)
    restored.load_state_dict(json.loads(json.dumps(straight.state_dict())))
    assert restored.state_dict() == straight.state_dict()
    reports = [(tid, t, p) for tid, t, p, _ in second]
    assert _feed(restored, reports) == _feed(straight, reports) == [d for *_, d in second]
    assert restored.state_dict() == straight.state_dict()


def test_load_state_dict_rejects_unknown_version_and_other_schedule():
    state = RungCore(1, 2, 8).state_dict()
    with pytest.raises(ValueError, match="version"):
        RungCore(1, 2, 8).load_state_dict({**state, "version": 99})
    with pytest.raises(ValueError, match="grace_period"):
        RungCore(1, 3, 8).load_state_dict(state)


# The adapter, called through its hooks without Ray running.
def _result(epoch, loss=None, acc=None):
    result = {"epoch": epoch, "training_iteration": epoch}
    if loss is not None:
        result["loss"] = loss
    if acc is not None:
        result["acc"] = acc
    return result


def _scheduler():
    return ParetoASHA(["loss", "acc"], ["min", "max"], grace_period=1, reduction_factor=3, max_t=9)


def _decide(scheduler, trial_id, result):
    return scheduler.on_trial_result(None, SimpleNamespace(trial_id=trial_id), result)


def test_pareto_asha_reads_both_modes():
    sched = _scheduler()
    assert _decide(sched, "a", _result(1, loss=0.5, acc=0.9)) == ParetoASHA.CONTINUE
    # Worse in both (higher loss, lower accuracy): dominated.
    assert _decide(sched, "b", _result(1, loss=0.6, acc=0.8)) == ParetoASHA.STOP
    # Better in both: dominates the rung. Had accuracy been minimised, (0.4, 0.95)
    # would sit on a three-point front with the lowest crowding and stop.
    assert _decide(sched, "c", _result(1, loss=0.4, acc=0.95)) == ParetoASHA.CONTINUE
    assert sched.stopped_trials == {"b": 1}


def test_pareto_asha_stops_missing_or_nan_metric_and_ignores_results_without_time():
    sched = _scheduler()
    assert _decide(sched, "x", {"loss": 0.1, "acc": 0.9}) == ParetoASHA.CONTINUE
    assert _decide(sched, "x", _result(1, loss=0.1)) == ParetoASHA.STOP
    assert _decide(sched, "y", _result(1, loss=float("nan"), acc=0.9)) == ParetoASHA.STOP
    assert _decide(sched, "z", _result(1, loss="n/a", acc=0.9)) == ParetoASHA.STOP
    assert sched.stopped_trials == {"x": 1, "y": 1, "z": 1}


def test_pareto_asha_keeps_its_metrics_whatever_ray_passes():
    sched = _scheduler()
    assert sched.set_search_properties("loss", "min") is True
    assert sched.set_search_properties(None, None) is True
    assert sched.metrics == ["loss", "acc"] and sched.modes == ["min", "max"]
    assert sched.metric is None  # keeps Ray's one-metric check out of the way


@pytest.mark.parametrize("mode", ["pickle", "file", "callback"])
def test_pareto_asha_state_round_trip_keeps_next_decisions(mode, tmp_path):
    before = [
        ("a", _result(1, 0.5, 0.9)),  # continue (alone)
        ("b", _result(1, 0.6, 0.8)),  # stop (dominated)
        ("a", _result(3, 0.3, 0.95)),  # continue (alone at rung 3)
    ]
    after = [
        ("c", _result(1, 0.7, 0.7)),  # stop (dominated by a and b)
        ("d", _result(1, 0.1, 0.99)),  # continue (dominates rung 1)
        ("d", _result(3, 0.4, 0.92)),  # stop (dominated by a at rung 3)
    ]
    straight = _scheduler()
    for tid, result in before:
        _decide(straight, tid, result)
    if mode == "pickle":
        restored = pickle.loads(pickle.dumps(straight))
    elif mode == "file":
        straight.save(str(tmp_path / "sched.json"))
        restored = _scheduler()
        restored.restore(str(tmp_path / "sched.json"))
    else:
        restored = _scheduler()
        state = json.loads(json.dumps(straight.state_callback().get_state()))
        restored.state_callback().set_state(state)
    decisions = [_decide(restored, tid, r) for tid, r in after]
    assert decisions == [_decide(straight, tid, r) for tid, r in after]
    assert decisions == [ParetoASHA.STOP, ParetoASHA.CONTINUE, ParetoASHA.STOP]
    assert restored.stopped_trials == straight.stopped_trials


def test_pareto_asha_refuses_state_of_other_metrics():
    state = _scheduler().state_dict()
    other = ParetoASHA(["loss", "acc"], ["min", "min"], max_t=9)
    with pytest.raises(ValueError, match="modes"):
        other.load_state_dict(state)


# A real Ray Tune run. Trial i has the base point PTS[i] (loss, 1 - accuracy); at epoch
# e both are scaled by 1/e, which keeps every dominance relation and every crowding
# order, so trial 0 dominates all others at every epoch. rungs: t = 1, 3 (max_t = 9).
PTS = [
    (0.1, 0.1), (0.9, 0.9), (0.8, 0.8), (0.7, 0.7),
    (0.85, 0.85), (0.95, 0.95), (0.99, 0.99), (0.2, 0.6),
]
MAX_T = 9


def _trainable(config):
    from ray import tune

    loss, err = PTS[config["i"]]
    for epoch in range(1, MAX_T + 1):
        if config["i"] == config.get("fail_trial") and epoch == 2:
            marker = config["marker"]
            if not os.path.exists(marker):  # fail the first attempt only
                open(marker, "w").close()
                raise RuntimeError("planned failure")
        tune.report({"epoch": epoch, "loss": loss / epoch, "acc": 1 - err / epoch})


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory):
    ray = pytest.importorskip("ray")
    # pytest imports this file from a path Ray's workers do not have on sys.path: ship
    # its functions (the trainable) by value instead of by module name.
    this_module = sys.modules[__name__]
    ray.cloudpickle.register_pickle_by_value(this_module)
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        _temp_dir=str(tmp_path_factory.mktemp("ray")),
        log_to_driver=False,
    )
    yield ray
    ray.shutdown()
    ray.cloudpickle.unregister_pickle_by_value(this_module)


def _tuner(scheduler, storage, param_space, **tune_kwargs):
    from ray import tune

    return tune.Tuner(
        _trainable,
        param_space=param_space,
        tune_config=tune.TuneConfig(scheduler=scheduler, reuse_actors=True, **tune_kwargs),
        run_config=tune.RunConfig(
            storage_path=str(storage), name="exp", verbose=0, callbacks=[scheduler.state_callback()]
        ),
    )


def _last_epochs(result_grid):
    return {r.config["i"]: (r.metrics["trial_id"], r.metrics["epoch"]) for r in result_grid}


@pytest.mark.slow
def test_pareto_asha_in_ray_tune_stops_only_at_rungs(ray_cluster, tmp_path):
    from ray import tune

    sched = _scheduler()
    grid = _tuner(sched, tmp_path, {"i": tune.grid_search(list(range(len(PTS))))}).fit()
    assert not grid.errors
    last = _last_epochs(grid)
    stopped = sched.stopped_trials
    assert stopped, "with 8 trials and reduction_factor 3 some trial must stop"
    by_id = {tid: (i, epoch) for i, (tid, epoch) in last.items()}
    for tid, t in stopped.items():
        assert t in (1, 3) and t < MAX_T
        assert by_id[tid][1] == t  # its last report is the rung it was stopped at
    for i, (tid, epoch) in last.items():
        assert tid in stopped or epoch == MAX_T
    assert last[0][1] == MAX_T and last[0][0] not in stopped  # dominates all: never stopped


@pytest.mark.slow
def test_pareto_asha_rungs_survive_tuner_restore(ray_cluster, tmp_path):
    # One trial at a time, so the order is the grid order. Trial 7 fails at epoch 2 on
    # its first attempt, after passing rung 1; Tuner.restore(resume_errored=True) reruns
    # it from scratch. With the rungs restored it is judged at rung 3 against trials 0
    # and 3, as in a run without the failure, and stops there (n=3, keep 1). With empty
    # rungs it would be alone at every rung and reach max_t.
    # Uninterrupted run, by hand: rung 1: 0 continue (alone), 1, 2 stop (n=2, 3; keep 1),
    # 3 continue (n=4 keep 2, second), 4, 5, 6 stop, 7 continue (n=8 keep 3, second);
    # rung 3: 0 continue, 3 stop (n=2 keep 1), 7 stop (n=3 keep 1).
    from ray import tune

    space = {
        "i": tune.grid_search(list(range(len(PTS)))),
        "fail_trial": 7,
        "marker": str(tmp_path / "failed_once"),
    }
    sched = _scheduler()
    first = _tuner(sched, tmp_path, space, max_concurrent_trials=1).fit()
    assert len(first.errors) == 1 and _last_epochs(first)[7][1] == 1

    restored = tune.Tuner.restore(str(tmp_path / "exp"), trainable=_trainable, resume_errored=True)
    # Private: the only handle on the scheduler unpickled from tuner.pkl.
    restored_sched = restored._local_tuner._tune_config.scheduler
    assert restored_sched is not sched and restored_sched.stopped_trials == {}
    grid = restored.fit()
    assert not grid.errors
    last = _last_epochs(grid)
    expected = {1: 1, 2: 1, 3: 3, 4: 1, 5: 1, 6: 1, 7: 3}
    assert {i: restored_sched.stopped_trials.get(tid) for i, (tid, _) in last.items()} == {
        0: None,
        **expected,
    }
    assert {i: epoch for i, (_, epoch) in last.items()} == {0: MAX_T, **expected}


def test_brackets_assign_round_robin_and_promote_as_worked_example():
    # grace 1, rf 3, max_t 9: rungs at 1 and 3. Bracket 0 judges at 1 and 3, bracket 1 at 3
    # only, bracket 2 (the last) never stops a trial. Points are minimisation.
    core = RungCore(1, 3, 9, brackets=3, deal="round_robin")
    assert core.on_result("a", 1, np.array([1.0, 1.0])) == CONTINUE   # bracket 0, first at rung 1
    assert core.on_result("b", 1, np.array([5.0, 5.0])) == CONTINUE   # bracket 1: no rung at 1
    assert core.on_result("c", 1, np.array([9.0, 9.0])) == CONTINUE   # bracket 2
    assert core.on_result("d", 1, np.array([3.0, 3.0])) == STOP       # bracket 0: 2nd of 2, keep ceil(2/3)=1
    assert core.on_result("e", 1, np.array([9.0, 9.0])) == CONTINUE   # bracket 1
    assert core.bracket_of == {"a": 0, "b": 1, "c": 2, "d": 0, "e": 1}
    assert core.on_result("b", 3, np.array([5.0, 5.0])) == CONTINUE   # bracket 1's first at rung 3
    assert core.on_result("e", 3, np.array([6.0, 6.0])) == STOP       # dominated by b there
    for t in (3, 8):                                                  # worst of all, never stopped
        assert core.on_result("c", t, np.array([99.0, 99.0])) == CONTINUE
    assert core.rung_sizes() == [(1.0, 2), (3.0, 2)]
    restored = RungCore(1, 3, 9, brackets=3, deal="round_robin")
    restored.load_state_dict(core.state_dict())
    assert restored.on_result("f", 1, np.array([0.5, 0.5])) == core.on_result("f", 1, np.array([0.5, 0.5]))
    assert restored.bracket_of["f"] == 2                               # round-robin continues after restore
    with pytest.raises(ValueError, match="deal"):
        RungCore(1, 3, 9, brackets=3).load_state_dict(core.state_dict())
    with pytest.raises(ValueError, match="brackets"):
        RungCore(1, 3, 9, brackets=1).load_state_dict(core.state_dict())
    with pytest.raises(ValueError, match="brackets"):
        RungCore(1, 3, 9, brackets=0)


def test_budget_dealing_gives_each_bracket_about_equal_epochs_as_worked_example():
    # grace 1, rf 3, max_t 9. Expected epochs of one trial: bracket 0 (rungs 1, 3):
    # 1 + 2/3 + 6/9 = 7/3; bracket 1 (rung 3): 3 + 6/3 = 5; bracket 2 (never stops): 9.
    core = RungCore(1, 3, 9, brackets=3)
    assert [core.bracket_cost(b) for b in range(3)] == [pytest.approx(7 / 3), pytest.approx(5.0), 9.0]
    # Each trial goes where (trials dealt + 1) x cost is lowest: 7/3 < 5 < 9 -> 0; 14/3 < 5 -> 0;
    # 7 > 5 -> 1; 7 < 9 < 10 -> 0; 28/3 > 9 -> 2; 28/3 < 10 -> 0; 35/3 > 10 -> 1.
    for i, tid in enumerate("abcdefg"):
        core.on_result(tid, 1, np.array([float(i), float(i)]))
    assert core.bracket_of == {"a": 0, "b": 0, "c": 1, "d": 0, "e": 2, "f": 0, "g": 1}
    # bracket 0's rung 1 holds a, b, d, f (b: 2nd of 2 and dominated -> stopped)
    assert sorted(core.stopped) == ["b", "d", "f"]
    restored = RungCore(1, 3, 9, brackets=3)
    restored.load_state_dict(core.state_dict())
    assert restored.assign("h") == core.assign("h") == 0               # 5 x 7/3 < 10 < 18


def test_a_rung_that_ranks_unlike_the_full_budget_stops_no_trial():
    # grace 1, rf 3, max_t 3, one rung at 1; min_pairs 3; brackets dealt in turn by first report:
    # a, c, e, g to bracket 0, b, d, f to bracket 1, which never stops a trial. Bracket 1's trials
    # show the order at epoch 1 reversed at epoch 3 (objective 0): once 3 have, rung 1 cuts no one.
    def make(agreement):
        return RungCore(1, 3, 3, brackets=2, deal="round_robin", min_agreement=agreement, min_pairs=3)

    def at1(i):
        return np.array([float(i), 0.0])

    def at3(i):
        return np.array([10.0 - i, 0.0])

    core, plain = make(0.5), make(None)
    for c in (core, plain):
        for i, tid in enumerate("abcdef"):
            decision = c.on_result(tid, 1, at1(i))
            if tid in "bdf":
                assert decision == CONTINUE and c.on_result(tid, 3, at3(i)) == CONTINUE
            elif tid == "a":
                assert decision == CONTINUE
            else:                                                      # dominated by a; too little evidence
                assert decision == STOP
    assert core.agreement(0) == -1.0 and not core.trusted(0)
    assert core.on_result("g", 1, at1(9)) == CONTINUE                 # worst at rung 1, kept all the same
    assert plain.agreement(0) == -1.0 and plain.on_result("g", 1, at1(9)) == STOP   # None: always cuts
    restored = make(0.5)
    restored.load_state_dict(json.loads(json.dumps(core.state_dict())))
    assert restored.agreement(0) == -1.0 and restored.on_result("h", 1, at1(8)) == CONTINUE


def test_promotion_rungs_pause_and_resume_a_trial_once_it_ranks_in_the_best_third():
    # rf 3, rungs at 1 and 3 (max_t 9), one objective (minimised). keep = ceil(n / 3).
    from orchestrator.schedulers.rungs import PAUSE

    core = RungCore(grace_period=1, reduction_factor=3, max_t=9, kind="promotion")
    at1 = {"t0": 0.5, "t1": 0.9, "t2": 0.1, "t3": 0.95, "t4": 0.99, "t5": 0.98}
    decisions = {tid: core.on_result(tid, 1, np.array([v])) for tid, v in at1.items()}
    # t0 first (1 of 1 kept), t2 best of 3: they go on; the others wait at rung 1
    assert decisions == {"t0": CONTINUE, "t1": PAUSE, "t2": CONTINUE, "t3": PAUSE, "t4": PAUSE, "t5": PAUSE}
    assert list(core.paused) == ["t1", "t3", "t4", "t5"] and core.next_promotion() is None   # t1 is 3rd of 6
    assert core.on_result("t6", 1, np.array([0.97])) == PAUSE
    assert core.next_promotion() == "t1"          # 7 at the rung keep 3: t2, t0, t1
    assert core.next_promotion() == "t1"          # asking again changes nothing
    assert core.on_result("t0", 3, np.array([0.5])) == CONTINUE      # first at rung 3
    assert core.on_result("t2", 3, np.array([0.6])) == PAUSE         # 2nd of 2 at rung 3
    assert core.next_promotion() == "t1"          # rung 3 has nothing promotable yet
    core.resume("t1")
    assert "t1" not in core.paused and core.on_result("t1", 2, np.array([0.8])) == CONTINUE
    assert core.on_result("t1", 3, np.array([0.1])) == CONTINUE     # best at rung 3 of 3
    assert core.next_promotion() is None
    assert core.on_result("t7", 1, np.array([0.2])) == CONTINUE     # 2nd of 8 at rung 1, keep 3
    core.on_result("t8", 3, np.array([0.05]))     # rung 3: 4 trials, keep 2; t2 is now 4th of 4
    restored = RungCore(grace_period=1, reduction_factor=3, max_t=9, kind="promotion")
    restored.load_state_dict(json.loads(json.dumps(core.state_dict())))
    assert restored.paused == core.paused and restored.next_promotion() == core.next_promotion()
    ended = core.end_paused()
    assert set(ended) == {"t2", "t3", "t4", "t5", "t6"} and not core.paused
    assert core.stopped == {"t2": 3.0, "t3": 1.0, "t4": 1.0, "t5": 1.0, "t6": 1.0}


def test_a_stop_core_state_of_version_3_still_loads():
    core = RungCore(1, 3, 9)
    core.on_result("a", 1, np.array([0.5]))
    state = core.state_dict()
    old = {k: v for k, v in state.items() if k not in ("kind", "paused")} | {"version": 3}
    again = RungCore(1, 3, 9)
    again.load_state_dict(old)
    assert again.state_dict() == state
    with pytest.raises(ValueError, match="kind"):
        RungCore(1, 3, 9, kind="promotion").load_state_dict(old)
    with pytest.raises(ValueError, match="kind must be"):
        RungCore(1, 3, 9, kind="pause")


@pytest.mark.parametrize("kind", ["promotion", "stop"])
def test_a_trial_resumed_at_its_first_epoch_warns_once_that_its_trainable_keeps_no_checkpoints(capsys, kind):
    sched = ParetoASHA(["loss", "acc"], ["min", "max"], grace_period=1, reduction_factor=3, max_t=9, kind=kind)
    for epoch in (1, 2, 3):
        _decide(sched, "a", _result(epoch, loss=0.5, acc=0.9))
    assert "checkpoints" not in capsys.readouterr().err
    _decide(sched, "a", _result(1, loss=0.5, acc=0.9))     # went on from scratch
    _decide(sched, "b", _result(2, loss=0.5, acc=0.9))
    _decide(sched, "b", _result(1, loss=0.5, acc=0.9))
    err = capsys.readouterr().err
    if kind == "stop":                                     # nothing is retrained by design there
        assert err == ""
    else:
        assert err.count("warning:") == 1 and "trial a went on at epoch 1 after reaching 3" in err
        assert "scheduler.kind: stop" in err


def test_a_trial_paused_at_a_rung_stays_paused_when_ray_restores_it_as_pending():
    # Ray's restore makes every unfinished trial PENDING, and starts every PENDING trial: the
    # restored rungs put the ones waiting at a rung back to PAUSED before Ray files them
    from ray.tune.experiment import Trial

    sched = ParetoASHA(["loss", "acc"], ["min", "max"], grace_period=1, reduction_factor=3, max_t=9,
                       kind="promotion")
    decisions = [_decide(sched, f"t{i}", _result(1, loss=0.1 + 0.1 * i, acc=0.5)) for i in range(4)]
    paused = [f"t{i}" for i, d in enumerate(decisions) if d == ParetoASHA.PAUSE]
    assert paused == ["t1", "t2", "t3"] and set(paused) == set(sched.paused_ids())
    restored = ParetoASHA(["loss", "acc"], ["min", "max"], grace_period=1, reduction_factor=3, max_t=9,
                          kind="promotion")
    restored.load_state_dict(sched.state_dict())
    trials = {tid: Trial("f", stub=True, trial_id=tid) for tid in ("t0", "t1", "t2", "t3")}
    trials[paused[-1]].set_status(Trial.TERMINATED)          # ended after all (settled by recovery)
    for trial in trials.values():
        restored.on_trial_add(None, trial)
    assert [tid for tid, t in trials.items() if t.status == Trial.PAUSED] == paused[:-1]
    assert all(t.status == Trial.PENDING for tid, t in trials.items() if tid not in paused)
    assert restored.paused_ids() == set(paused[:-1])           # the ended one waits no more
