"""Optuna multi-objective search wired into Ray Tune.

The study lives in an Optuna RDB storage (SQLite by default), so `optuna-dashboard` opens it
and a resumed sweep continues the same study. Two things differ from Ray's stock
`OptunaSearch`:

* A trial that the early-stopping scheduler stopped (or that never reached the full budget)
  is told to Optuna as PRUNED, not COMPLETE: its low-fidelity values must not pose as
  full-budget results (Ray would otherwise tell them as COMPLETE).
* Constraints (`update_rate <= 0.5`) are stored on each trial and handed to the sampler's
  `constraints_func`, Optuna's convention being "feasible where every value is <= 0".
"""
from __future__ import annotations

import time
import warnings

import optuna
from ray.tune.search import Searcher
from ray.tune.search.optuna import OptunaSearch
from ray.tune.utils.util import unflatten_dict

from orchestrator.studystore import study_storage

from surnn.trainable import FIDELITY

CONSTRAINTS_ATTR = "constraints"


def distributions(parameters: dict) -> dict[str, optuna.distributions.BaseDistribution]:
    """Spec parameters -> Optuna distributions (the search space Optuna samples directly)."""
    out = {}
    for name, p in parameters.items():
        if p.type == "categorical":
            out[name] = optuna.distributions.CategoricalDistribution(list(p.values))
        elif p.type == "int":
            out[name] = optuna.distributions.IntDistribution(int(p.low), int(p.high), log=p.log, step=p.step or 1)
        else:
            out[name] = optuna.distributions.FloatDistribution(p.low, p.high, log=p.log, step=p.step)
    return out


def _constraints_func(trial: optuna.trial.FrozenTrial) -> list[float]:
    return list(trial.user_attrs.get(CONSTRAINTS_ATTR, []))


def make_sampler(name: str, seed: int, constrained: bool, population: int = 50) -> optuna.samplers.BaseSampler:
    """The named sampler; `population` sizes NSGA-II's generations (size it to the budget)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    cf = _constraints_func if constrained else None
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, constraints_func=cf, multivariate=True)
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, constraints_func=cf, population_size=population)
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed, constraints_func=cf)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    raise ValueError(f"search.sampler: unknown sampler {name!r}")


def constraint_values(constraints, result: dict) -> list[float]:
    """Each constraint as a number that is <= 0 where it holds (Optuna's convention)."""
    values = []
    for c in constraints:
        v = float(result[c.metric])
        values.append(c.violation(v))
    return values


class ParetoOptunaSearch(OptunaSearch):
    """OptunaSearch that reports partial-budget trials as PRUNED and records constraints."""

    def __init__(self, *, full_budget: int, time_attr: str, constraints=(), budget=None,
                 num_trials: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self._num_trials = num_trials
        self._full_budget = full_budget
        self._time_attr = time_attr
        self._constraints = list(constraints)
        self._budget_epochs = getattr(budget, "epochs", None)
        self._budget_hours = getattr(budget, "hours", None)
        self._epochs: dict[str, float] = {}     # trial -> epochs it has run (saved with the searcher)
        self._started = time.time()             # the sweep's first start: hours count across resumes
        self._budget_said = False

    def epochs_used(self) -> float:
        """Epochs summed over every trial so far (what an epoch budget counts)."""
        return float(sum(self._epochs.values()))

    def budget_fraction(self) -> float | None:
        """The share of the budget spent, the larger of epochs and hours; None without a budget."""
        parts = []
        if self._budget_epochs is not None:
            parts.append(self.epochs_used() / self._budget_epochs)
        if self._budget_hours is not None:
            parts.append((time.time() - self._started) / (3600 * self._budget_hours))
        return max(parts) if parts else None

    def budget_used(self) -> str:
        """'E/N epochs, h/H h' for the parts of the budget that are set ('' without a budget)."""
        parts = []
        if self._budget_epochs is not None:
            parts.append(f"{sum(self._epochs.values()):g}/{self._budget_epochs} epochs")
        if self._budget_hours is not None:
            parts.append(f"{(time.time() - self._started) / 3600:.2f}/{self._budget_hours:g} h")
        return ", ".join(parts)

    def budget_spent(self) -> bool:
        spent = (self._budget_epochs is not None and sum(self._epochs.values()) >= self._budget_epochs) or (
            self._budget_hours is not None and time.time() - self._started >= 3600 * self._budget_hours)
        if spent and not self._budget_said:
            self._budget_said = True
            print(f"search budget spent ({self.budget_used()}): no new trials; running ones finish", flush=True)
        return spent

    def _setup_study(self, mode):
        super()._setup_study(mode)
        # a new searcher on a study that already holds trials: a sweep started afresh over the
        # study of a driver killed before Ray's first checkpoint. Its seeded sampler would draw
        # again the points the killed driver drew, whose trials live on (adopted or finished)
        self._replays = bool(self._ot_study.get_trials(deepcopy=False))

    def suggest(self, trial_id: str):
        if getattr(self, "_replays", False):
            self._replays = False
            self._reseed()
        if trial_id not in self._ot_trials:
            adopted = self._adopt_orphan(trial_id)
            if adopted is not None:
                return adopted
            if self.budget_spent() or self._study_full():
                return Searcher.FINISHED
            self._before_ask()
        return super().suggest(trial_id)

    def _before_ask(self) -> None:
        """Called before a new point is asked of the study (RungOptunaSearch enqueues it here)."""

    def _study_full(self) -> bool:
        """The study already holds `num_trials` trials (finished or running): ask no more.

        Ray's own count lives in its experiment checkpoint, which a killed driver may have
        left behind trials that were made (and even finished) after it.
        """
        if self._num_trials is None:
            return False
        waiting = optuna.trial.TrialState.WAITING
        return sum(t.state != waiting for t in self._ot_study.get_trials(deepcopy=False)) >= self._num_trials

    def save(self, checkpoint_path: str):
        self._saved_study_size = len(self._ot_study.get_trials(deepcopy=False))
        super().save(checkpoint_path)

    def restore(self, checkpoint_path: str):
        super().restore(checkpoint_path)
        self._replays = False   # a restored searcher goes on from its saved random state (below)
        if len(self._ot_study.get_trials(deepcopy=False)) > getattr(self, "_saved_study_size", 0):
            self._reseed()

    def _reseed(self) -> None:
        """Fresh random state, for a study that has grown since this searcher's checkpoint (a driver
        killed after it). The saved state would draw again, for new trials, the points it drew
        after the checkpoint, whose trials live on in the study (adopted or finished): the same
        point would run twice. A resume after a clean stop keeps the saved state, and so the
        sequence of points a sweep without a stop would have drawn."""
        self._sampler.reseed_rng()

    def _adopt_orphan(self, trial_id: str):
        """Give `trial_id` a study trial left RUNNING by a killed driver, with its parameters.

        Such a trial was asked for a Ray trial that the driver's last checkpoint does not hold,
        so Ray will never finish it; Ray makes a new trial instead, and this one takes over
        the orphan (same number, same point), so the study holds no trial twice and none FAILs
        for the driver's death. An orphan left before its point was chosen (no parameters) gets
        one from the sampler now. Returns the config, or None when there is no orphan.
        """
        known = {t.number for t in self._ot_trials.values()}
        for frozen in self._ot_study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
            if frozen.number in known or not set(frozen.params) <= set(self._space):
                continue
            trial = optuna.trial.Trial(self._ot_study, frozen._trial_id)
            for name, dist in self._space.items():   # a driver killed before the point was chosen left
                _suggest(trial, name, dist)          # it empty: the sampler chooses it now
            self._ot_trials[trial_id] = trial
            return unflatten_dict(dict(trial.params))
        return None

    def on_trial_result(self, trial_id: str, result: dict):
        if self._time_attr in result:
            self._epochs[trial_id] = max(self._epochs.get(trial_id, 0), float(result[self._time_attr]))
        super().on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False):
        if trial_id in self._ot_trials and result and not error:
            if result.get(self._time_attr, 0) < self._full_budget:
                result = None          # stopped early: PRUNED, never a full-budget point
            elif self._constraints:
                self._ot_trials[trial_id].set_user_attr(
                    CONSTRAINTS_ATTR, constraint_values(self._constraints, result))
        super().on_trial_complete(trial_id, result=result, error=error)


def _suggest(trial: optuna.trial.Trial, name: str, dist) -> None:
    """trial.suggest_* for one distribution (a parameter the trial holds keeps its value)."""
    if isinstance(dist, optuna.distributions.CategoricalDistribution):
        trial.suggest_categorical(name, dist.choices)
    elif isinstance(dist, optuna.distributions.IntDistribution):
        trial.suggest_int(name, dist.low, dist.high, step=dist.step, log=dist.log)
    else:
        trial.suggest_float(name, dist.low, dist.high, step=dist.step, log=dist.log)


def prepare_study(storage_url: str, study_name: str, metric_names: list[str], modes: list[str]) -> optuna.Study:
    """Create (or load) the study with named objectives, so dashboards label their axes."""
    study = optuna.create_study(
        storage=study_storage(storage_url), study_name=study_name, load_if_exists=True,
        directions=["maximize" if m == "max" else "minimize" for m in modes])
    if study.metric_names != metric_names:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(metric_names)
    return study


def complete_lost(storage_url: str, study_name: str, config: dict, result: dict, constraints=()) -> bool:
    """Tell COMPLETE, with its values in `result`, the RUNNING study trial that holds `config`.

    For a trial that reached the full budget after Ray's last checkpoint, with a driver killed
    before Ray saw it end (recovery.ended_unrecorded); False when the study holds no such trial.
    """
    from ray.tune.utils.util import flatten_dict

    study = optuna.load_study(study_name=study_name, storage=study_storage(storage_url))
    params = flatten_dict(dict(config), delimiter="/")
    for frozen in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        if frozen.params and all(params.get(k) == v for k, v in frozen.params.items()):
            if constraints:
                study._storage.set_trial_user_attr(frozen._trial_id, CONSTRAINTS_ATTR,
                                                   constraint_values(constraints, result))
            study.tell(frozen.number, [float(result[m]) for m in study.metric_names])
            return True
    return False


def fail_unfinished(storage_url: str, study_name: str) -> int:
    """Tell FAIL to study trials still RUNNING once the sweep has ended; returns how many."""
    study = optuna.load_study(study_name=study_name, storage=study_storage(storage_url))
    running = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
    for frozen in running:
        study.tell(frozen.number, state=optuna.trial.TrialState.FAIL)
    return len(running)


RUNG_AWARE = ("tpe", "gp", "nsga2")


def rung_levels(scheduler, max_t: int) -> list[float]:
    """The epoch milestones at which `scheduler` judges trials (none without early stopping)."""
    if scheduler.name == "none":
        return []
    from orchestrator.schedulers.rungs import RungCore

    return RungCore(scheduler.grace_period, scheduler.reduction_factor, max_t).levels


def nsga2_population(num_trials: int) -> int:
    """NSGA-II's generation size for a budget: about five generations, between 8 and 50."""
    return max(8, min(50, num_trials // 5))


def make_searcher(spec, objectives, block_max_t: int, study_name: str, storage_url: str, time_attr: str = FIDELITY):
    """The searcher for one task of a spec, over that task's objectives.

    With early stopping and a model-based sampler (tpe, gp, nsga2) it is `RungOptunaSearch`,
    which learns from every rung (orchestrator/rung_search.py); otherwise ParetoOptunaSearch.
    """
    search = spec.search
    metrics, modes = [o.metric for o in objectives], [o.mode for o in objectives]
    prepare_study(storage_url, study_name, metrics, modes)
    population = nsga2_population(search.num_trials)
    constrained = bool(search.constraints)
    common = dict(
        space=distributions(spec.parameters), metric=metrics, mode=modes,
        storage=study_storage(storage_url), study_name=study_name,
        full_budget=block_max_t, time_attr=time_attr, constraints=search.constraints, budget=search.budget,
        num_trials=search.num_trials)
    return searcher_for(search.sampler, search.seed, rung_levels(spec.scheduler, block_max_t), population,
                        constrained, getattr(spec.scheduler, "min_agreement", None), **common)


def searcher_for(sampler: str, seed: int, levels, population: int, constrained: bool = False,
                 min_agreement: float | None = None, **common):
    """RungOptunaSearch for a model-based sampler with rung `levels`, else ParetoOptunaSearch.

    `common`: the keyword arguments of ParetoOptunaSearch (space, metric, mode, full_budget, ...).
    """
    if levels and sampler in RUNG_AWARE:
        from orchestrator.rung_search import RungOptunaSearch

        # the main study only stores; the rung models choose every point. Each rung's sampler gets
        # its own seed: with one seed for all, a rung model still in its random start-up replays
        # the points of the others and of the random share, exact repeats that waste trials.
        return RungOptunaSearch(
            levels=levels, seed=seed, sampler=optuna.samplers.RandomSampler(seed=seed),
            make_rung_sampler=lambda i: make_sampler(sampler, seed * 1009 + 1 + i, False, population),
            min_agreement=min_agreement, **common)
    return ParetoOptunaSearch(sampler=make_sampler(sampler, seed, constrained, population), **common)
