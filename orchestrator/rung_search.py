"""Rung-aware sampling: the sampler learns from every trial at the rung it reached.

In a multi-objective study a trial that successive halving stopped is PRUNED and carries no
values, so TPE, GP and NSGA-II learn only from the few full-budget trials. Here, as in BOHB /
MO-BOHB and SMAC's multi-fidelity facade, a shadow in-memory Optuna study is kept per rung
(each epoch milestone of the scheduler, and the full budget): every trial that reaches a rung
is told COMPLETE there with its objective values at that rung. A new point is asked from the
shadow study of the highest rung holding at least 2d+1 trials (d parameters); a fraction of
points, and every point before any rung holds enough, are random.

The main study (RDB, what the front, `optuna-dashboard` and resume read) is unchanged: the
searcher enqueues the chosen point there and Ray's OptunaSearch asks it as before.
`RungModels` is Ray-free; `RungOptunaSearch` is the Ray searcher. Both pickle whole (studies,
samplers and their random state included), which is how Ray's `Searcher.save`/`restore`
carry them through `--resume`.
"""
from __future__ import annotations

import random

import numpy as np
import optuna

from orchestrator.pareto import rank_agreement
from orchestrator.search import ParetoOptunaSearch


class RungModels:
    """One shadow study per rung level; proposes the next point.

    Args:
        space: name -> optuna distribution.
        directions: "minimize"/"maximize" per objective.
        make_sampler: (rung index) -> a fresh sampler for that rung's study; give each its own
            seed, unlike `seed` too, or a model still in its random start-up replays points.
        levels: rung levels (fidelity values), the full budget included.
        seed: seeds the random share of suggestions.
        random_fraction: share of suggestions drawn at random even when a model is ready.
        min_agreement: a rung below the full budget whose ranking agrees less than this with
            the full budget's (`orchestrator.pareto.rank_agreement` over trials seen at both,
            once 2d+1 have) is passed over for the model; None: never.
    """

    def __init__(self, space, directions, make_sampler, levels, seed: int, random_fraction: float = 1 / 6,
                 min_agreement: float | None = None):
        self.space = dict(space)
        self.levels = sorted(float(v) for v in levels)
        self.min_points = 2 * len(self.space) + 1
        self.random_fraction = random_fraction
        self._rng = random.Random(seed)
        self.studies = {lv: optuna.create_study(directions=list(directions), sampler=make_sampler(i))
                        for i, lv in enumerate(self.levels)}
        self._random = optuna.create_study(directions=list(directions),
                                           sampler=optuna.samplers.RandomSampler(seed=seed))
        self.min_agreement = min_agreement
        self._signs = [-1.0 if d == "maximize" else 1.0 for d in directions]
        self._seen: dict[float, dict[str, list[float]]] = {lv: {} for lv in self.levels}
        self.proposed: dict[str, int] = {}   # "random" or the rung level -> points proposed from it

    def reseed(self) -> None:
        """New random state for every sampler and the random share (see ParetoOptunaSearch._reseed)."""
        self._rng = random.Random()
        for study in [*self.studies.values(), self._random]:
            study.sampler.reseed_rng()

    def observe(self, key: str, params: dict, t: float, values: list[float]) -> bool:
        """Records a trial's values at rung t (once per trial and rung); False if t is no rung."""
        t = float(t)
        if t not in self.studies or key in self._seen[t]:
            return False
        self._seen[t][key] = [s * float(v) for s, v in zip(self._signs, values)]
        self.studies[t].add_trial(optuna.trial.create_trial(
            params={n: params[n] for n in self.space}, distributions=self.space,
            values=[float(v) for v in values]))
        return True

    def observations(self, level: float) -> list[tuple[dict, list[float]]]:
        """(params, values) told COMPLETE at a rung, in arrival order."""
        done = self.studies[float(level)].get_trials(states=(optuna.trial.TrialState.COMPLETE,))
        return [(t.params, list(t.values)) for t in done]

    def agreement(self, level: float) -> float | None:
        """`rank_agreement` of a rung with the full budget over trials seen at both (None below 2d+1)."""
        full = self._seen[self.levels[-1]]
        both = [k for k in self._seen[float(level)] if k in full]
        if len(both) < self.min_points:
            return None
        return rank_agreement(np.array([self._seen[float(level)][k] for k in both]),
                              np.array([full[k] for k in both]))

    def model_level(self) -> float | None:
        """The highest rung holding >= 2d+1 observations whose ranking is not known to mislead, or None."""
        def trusted(lv):
            if self.min_agreement is None or lv == self.levels[-1]:
                return True
            agreement = self.agreement(lv)
            return agreement is None or agreement >= self.min_agreement

        ready = [lv for lv in self.levels if len(self._seen[lv]) >= self.min_points and trusted(lv)]
        return ready[-1] if ready else None

    def propose(self) -> tuple[dict, float | None]:
        """(params, level whose model proposed them, None for a random point)."""
        level = self.model_level()
        draw = self._rng.random()
        study = self.studies[level] if level is not None and draw >= self.random_fraction else self._random
        trial = study.ask(fixed_distributions=self.space)
        params = dict(trial.params)
        # the asked trial is no observation; FAIL keeps it out of every sampler's model
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        source = level if study is not self._random else None
        key = "random" if source is None else f"{source:g}"
        self.proposed[key] = self.proposed.get(key, 0) + 1
        return params, source


class RungOptunaSearch(ParetoOptunaSearch):
    """ParetoOptunaSearch whose points come from `RungModels` fed with every rung's results."""

    def __init__(self, *, levels, make_rung_sampler, seed: int, min_agreement: float | None = None, **kwargs):
        super().__init__(**kwargs)
        directions = ["maximize" if m == "max" else "minimize" for m in self._mode]
        self._rungs = RungModels(self._space, directions, make_rung_sampler,
                                 [*levels, self._full_budget], seed, min_agreement=min_agreement)

    def _reseed(self) -> None:
        super()._reseed()
        self._rungs.reseed()

    def _before_ask(self) -> None:
        waiting = optuna.trial.TrialState.WAITING
        if self._ot_study.get_trials(deepcopy=False, states=(waiting,)):
            return   # a point enqueued by a driver killed before it asked: the ask takes that one
        params, _ = self._rungs.propose()
        self._ot_study.enqueue_trial(params, skip_if_exists=False)

    def on_trial_result(self, trial_id: str, result: dict):
        self._observe(trial_id, result)
        super().on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False):
        if result and not error:
            self._observe(trial_id, result)
        super().on_trial_complete(trial_id, result=result, error=error)

    def _observe(self, trial_id: str, result: dict) -> None:
        trial = self._ot_trials.get(trial_id)
        if trial is None or self._time_attr not in result:
            return
        try:
            values = [float(result[m]) for m in self._metric]
        except (KeyError, TypeError, ValueError):
            return
        self._rungs.observe(trial_id, trial.params, result[self._time_attr], values)
