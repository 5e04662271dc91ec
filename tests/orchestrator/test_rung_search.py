"""Rung-aware sampling: real Optuna studies (SQLite main study) behind the Ray searcher."""
import optuna
import pytest

from orchestrator.rung_search import RungOptunaSearch
from orchestrator.search import make_sampler

SPACE = {"x": optuna.distributions.FloatDistribution(0.0, 1.0),
         "y": optuna.distributions.FloatDistribution(0.0, 1.0)}


def _searcher(tmp_path, sampler="tpe"):
    return RungOptunaSearch(
        levels=[1, 3], seed=3, make_rung_sampler=lambda i: make_sampler(sampler, 4 + i, False, 8),
        sampler=optuna.samplers.RandomSampler(seed=3), space=SPACE, metric=["acc", "rate"], mode=["max", "min"],
        storage=optuna.storages.RDBStorage(f"sqlite:///{tmp_path}/s.db"), study_name="s",
        full_budget=9, time_attr="epoch")


def _values(cfg, epoch):
    return {"acc": cfg["x"] * epoch / 9, "rate": cfg["y"] + 0.1 / epoch, "epoch": epoch}


def test_rung_models_see_the_values_reported_at_each_rung(tmp_path):
    s = _searcher(tmp_path)
    cfg = s.suggest("t0")
    for epoch in (1, 2, 3):
        s.on_trial_result("t0", _values(cfg, epoch))
    s.on_trial_complete("t0", _values(cfg, 3))          # stopped at epoch 3
    at1, at3 = s._rungs.observations(1), s._rungs.observations(3)
    assert at1 == [(cfg, [pytest.approx(cfg["x"] / 9), pytest.approx(cfg["y"] + 0.1)])]
    assert at3 == [(cfg, [pytest.approx(cfg["x"] / 3), pytest.approx(cfg["y"] + 0.1 / 3)])]
    assert s._rungs.observations(9) == []
    main = s._ot_study.get_trials()
    assert [t.state for t in main] == [optuna.trial.TrialState.PRUNED]
    assert main[0].params == cfg                          # the main study holds the rung model's point


def _feed(s, n):
    """n trials, each stopped at epoch 1 except every third, which reaches epoch 3."""
    for i in range(n):
        cfg = s.suggest(f"t{i}")
        last = 3 if i % 3 == 0 else 1
        for epoch in range(1, last + 1):
            s.on_trial_result(f"t{i}", _values(cfg, epoch))
        s.on_trial_complete(f"t{i}", _values(cfg, last))


@pytest.mark.parametrize("sampler", ["tpe", "nsga2"])
def test_next_suggestion_after_restore_equals_the_one_without(tmp_path, sampler):
    s = _searcher(tmp_path, sampler)
    _feed(s, 12)
    assert s._rungs.model_level() == 1.0                  # 12 >= 2d+1 = 5 at rung 1; 4 < 5 at rung 3
    s.save(str(tmp_path / "ckpt"))
    expected = [s.suggest("next"), s.suggest("next2")]
    (tmp_path / "b").mkdir()
    restored = _searcher(tmp_path / "b", sampler)
    fresh_first = _searcher(tmp_path / "b", sampler)._rungs.propose()[0]
    restored.restore(str(tmp_path / "ckpt"))
    assert len(restored._rungs.observations(1)) == 12 and len(restored._rungs.observations(3)) == 4
    assert [restored.suggest("next"), restored.suggest("next2")] == expected
    assert fresh_first != expected[0]                     # without the saved state the point differs


def test_points_come_from_the_highest_rung_with_enough_observations(tmp_path):
    s = _searcher(tmp_path)
    assert s._rungs.model_level() is None                 # nothing yet: random points
    _feed(s, 15)                                          # rung 3 gets trials 0, 3, 6, 9, 12: 5 = 2d+1
    assert s._rungs.model_level() == 3.0


def test_an_epoch_budget_stops_new_trials_and_lets_running_ones_finish(tmp_path):
    from ray.tune.search import Searcher

    s = _searcher(tmp_path)
    s._budget_epochs = 12                                   # as search.budget: {epochs: 12} sets it
    a, b = s.suggest("a"), s.suggest("b")
    for epoch in range(1, 7):                               # 6 + 6 = 12 epochs: spent
        s.on_trial_result("a", _values(a, epoch))
        s.on_trial_result("b", _values(b, epoch))
    assert s.budget_used() == "12/12 epochs"
    assert s.suggest("c") is Searcher.FINISHED
    for epoch in (7, 8, 9):                                 # the running trials go on to the full budget
        s.on_trial_result("a", _values(a, epoch))
    s.on_trial_complete("a", _values(a, 9))
    states = [t.state for t in s._ot_study.get_trials()]
    assert states == [optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.RUNNING]
    assert s.budget_used() == "15/12 epochs"


def test_a_rung_that_ranks_unlike_the_full_budget_is_passed_over(tmp_path):
    from orchestrator.rung_search import RungModels

    space = {"x": optuna.distributions.FloatDistribution(0.0, 1.0)}
    models = RungModels(space, ["minimize", "minimize"], lambda i: make_sampler("tpe", 1 + i, False), [1, 3], seed=0,
                        min_agreement=0.5)
    for i in range(3):                                    # 2d+1 = 3 at both levels
        x = i / 10
        models.observe(f"t{i}", {"x": x}, 1, [x, 0.0])
        models.observe(f"t{i}", {"x": x}, 3, [1.0 - x, 0.0])   # the order at 1 is reversed at 3
    models.observe("t3", {"x": 0.9}, 1, [0.9, 0.0])
    assert models.agreement(1) == -1.0
    assert models.model_level() == 3.0                    # the full level is always trusted
    trusting = RungModels(space, ["minimize", "minimize"], lambda i: make_sampler("tpe", 1 + i, False), [1, 3], seed=0)
    for key, level in models._seen.items():
        for k, v in level.items():
            trusting.observe(k, {"x": 0.5}, key, v)
    assert trusting.model_level() == 3.0


def test_rung_models_do_not_repeat_points(tmp_path):
    # each rung's sampler has its own seed: a rung model in its random start-up must not replay
    # the random share's points (with one seed for all, about one point in five was a repeat)
    s = _searcher(tmp_path)
    _feed(s, 30)
    points = [tuple(sorted(t.params.items())) for t in s._ot_study.get_trials()]
    assert len(points) == 30 and len(set(points)) == 30
    assert set(s._rungs.proposed) >= {"random", "1", "3"}   # models of both rungs proposed points


@pytest.mark.parametrize("kind", ["rung", "plain"])
def test_a_study_grown_past_the_checkpoint_gets_new_points_after_restore(tmp_path, kind):
    # a driver killed after the searcher's checkpoint leaves trials it drew since in the study;
    # restored as saved, the searcher would draw those points again for new trials
    from orchestrator.search import ParetoOptunaSearch

    def make():
        if kind == "rung":
            return _searcher(tmp_path)
        return ParetoOptunaSearch(
            sampler=make_sampler("random", 3, False), space=SPACE, metric=["acc", "rate"], mode=["max", "min"],
            storage=optuna.storages.RDBStorage(f"sqlite:///{tmp_path}/s.db"), study_name="s", full_budget=9,
            time_attr="epoch")

    s = make()
    _feed(s, 12)
    s.save(str(tmp_path / "ckpt"))
    drawn = [s.suggest("lost1"), s.suggest("lost2")]       # in the study; the driver dies here
    restored = make()
    restored.restore(str(tmp_path / "ckpt"))
    adopted = [restored.suggest("again1"), restored.suggest("again2")]   # new Ray trials take the lost ones over
    assert sorted(map(str, adopted)) == sorted(map(str, drawn))
    after = [restored.suggest("new1"), restored.suggest("new2")]
    assert not set(map(str, after)) & set(map(str, drawn))
    assert len(restored._ot_study.get_trials()) == 12 + 2 + 2


def test_an_orphan_left_before_its_point_was_chosen_is_adopted_with_a_new_point(tmp_path):
    # a driver killed between creating a study trial and choosing its parameters leaves it RUNNING
    # and empty; the next Ray trial takes it over (the study keeps num_trials trials, none FAIL)
    from orchestrator.search import ParetoOptunaSearch

    s = ParetoOptunaSearch(
        sampler=make_sampler("random", 3, False), space={**SPACE, "n": optuna.distributions.IntDistribution(1, 8),
                                                         "c": optuna.distributions.CategoricalDistribution(["a", "b"])},
        metric=["acc", "rate"], mode=["max", "min"], storage=optuna.storages.RDBStorage(f"sqlite:///{tmp_path}/s.db"),
        study_name="s", full_budget=9, time_attr="epoch")
    s._ot_study.ask()                                      # the shell
    cfg = s.suggest("t0")
    trials = s._ot_study.get_trials()
    assert len(trials) == 1 and trials[0].params == cfg and set(cfg) == {"x", "y", "n", "c"}
    s.on_trial_complete("t0", {"acc": 0.5, "rate": 0.1, "epoch": 9})
    assert s._ot_study.get_trials()[0].state == optuna.trial.TrialState.COMPLETE


def test_a_point_enqueued_before_the_driver_died_is_asked_not_left_waiting(tmp_path):
    # a driver killed between enqueueing the rung model's point and asking it leaves a WAITING
    # trial; the next suggestion takes that point, so the study keeps one trial per Ray trial
    s = _searcher(tmp_path)
    s._ot_study.enqueue_trial({"x": 0.25, "y": 0.75})
    cfg = s.suggest("t0")
    assert cfg == {"x": 0.25, "y": 0.75}
    s.suggest("t1")
    states = [t.state for t in s._ot_study.get_trials()]
    assert states == [optuna.trial.TrialState.RUNNING] * 2


@pytest.mark.parametrize("rung_aware", [False, True])
def test_a_sweep_started_afresh_on_a_killed_drivers_study_draws_no_point_again(tmp_path, rung_aware):
    # a driver killed before Ray's first checkpoint: the sweep starts Ray afresh with a new searcher,
    # seeded as the first was, over the study that holds the first one's trials. Adopting those
    # draws nothing, so a seeded sampler left as it was would draw the killed driver's points again
    from orchestrator.search import ParetoOptunaSearch

    def searcher():
        if rung_aware:
            return _searcher(tmp_path)
        return ParetoOptunaSearch(sampler=make_sampler("random", 3, False), space=SPACE, metric=["acc", "rate"],
                                  mode=["max", "min"], storage=optuna.storages.RDBStorage(f"sqlite:///{tmp_path}/s.db"),
                                  study_name="s", full_budget=9, time_attr="epoch")

    killed = searcher()
    drawn = [killed.suggest("a0"), killed.suggest("a1")]
    killed.on_trial_complete("a0", {"acc": 0.5, "rate": 0.1, "epoch": 9})   # a1 left RUNNING: an orphan
    afresh = searcher()
    adopted = afresh.suggest("b0")
    assert adopted == drawn[1]
    new = [afresh.suggest("b1"), afresh.suggest("b2")]
    assert not {str(p) for p in new} & {str(p) for p in drawn}, (new, drawn)
    assert len({str(p) for p in new}) == 2 and len(afresh._ot_study.get_trials()) == 4
