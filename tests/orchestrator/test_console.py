"""The sweep's console line: budget used and an ETA, from a real ParetoOptunaSearch."""
import io
from types import SimpleNamespace

import optuna

from orchestrator.console import ConsoleView
from orchestrator.search import ParetoOptunaSearch

SPACE = {"x": optuna.distributions.FloatDistribution(0.0, 1.0)}


class _Counts:
    """The two read-only views of SweepTracker the line uses."""

    def __init__(self, **counts):
        self._counts = counts

    def counts(self):
        return dict(self._counts)

    def front(self):
        return {"size": 1, "hypervolume": 0.25}


class _Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def _searcher(budget):
    return ParetoOptunaSearch(sampler=optuna.samplers.RandomSampler(seed=0), space=SPACE, metric=["a", "b"],
                              mode=["max", "min"], full_budget=10, time_attr="epoch", budget=budget)


def test_line_shows_epochs_of_the_budget_and_an_eta_from_what_is_left():
    s = _searcher(SimpleNamespace(epochs=100, hours=None))
    clock = _Clock()
    view = ConsoleView(_Counts(running=2, completed=1), "exp", stream=io.StringIO(), searcher=s, num_trials=50,
                       clock=clock)
    for tid, epochs in (("t0", 10), ("t1", 15)):
        s.suggest(tid)
        for e in range(1, epochs + 1):
            s.on_trial_result(tid, {"epoch": e, "a": 0.5, "b": 0.5})
    clock.now += 60.0                               # 25 of 100 epochs in 60 s: 180 s to go
    line = view.line()
    assert line.startswith("[exp 0:01:00] running 2 | done 1 |")
    assert line.endswith("| budget 25/100 epochs | ETA 0:03:00")
    for e in range(16, 90):
        s.on_trial_result("t1", {"epoch": e, "a": 0.5, "b": 0.5})
    assert view.line().endswith("| budget 99/100 epochs | ETA 0:00:00")   # 60 x 1/99 s, rounded down
    s.on_trial_result("t1", {"epoch": 95, "a": 0.5, "b": 0.5})
    assert view.line().endswith("| budget 105/100 epochs | ETA 0:00:00 (finishing)")


def test_without_a_budget_the_eta_follows_finished_trials_of_num_trials():
    s = _searcher(None)
    clock = _Clock()
    view = ConsoleView(_Counts(running=1, completed=3, stopped=1, failed=0), "exp", searcher=s, num_trials=20,
                       clock=clock)
    assert view.line().endswith("| budget 0 epochs, 4/20 trials | ETA --")     # no time has passed yet
    clock.now += 120.0                              # 4 of 20 trials in 2 min: 8 min to go
    assert view.line().endswith("| budget 0 epochs, 4/20 trials | ETA 0:08:00")
    assert ConsoleView(_Counts(), "exp", clock=clock).line().endswith("hypervolume 0.25")   # nothing to show


def test_trials_paused_at_a_rung_are_shown_apart_from_the_running_ones():
    # the tracker holds a paused trial as running (it has not ended); Ray's view tells them apart
    out = io.StringIO()
    view = ConsoleView(_Counts(running=5, completed=1), "exp", stream=out, interval=0.0, clock=_Clock())
    trials = [SimpleNamespace(status=s) for s in ("RUNNING", "RUNNING", "PAUSED", "PAUSED", "PAUSED", "TERMINATED")]
    view.on_step_begin(0, trials)
    assert out.getvalue().startswith("[exp 0:00:00] running 2 | paused 3 | done 1 | stopped 0 |")
    view.on_trial_complete(1, trials, trials[2])    # stopped at its rung when the search ended
    # (Ray calls back before the trial's status changes)
    assert view.line().startswith("[exp 0:00:00] running 3 | paused 2 | done 1 |")
    view.on_experiment_end(trials[:2])
    assert view.line().startswith("[exp 0:00:00] running 5 | done 1 |")   # none paused: no field
