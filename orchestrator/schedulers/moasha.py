"""ParetoASHA: multi-objective ASHA as a Ray Tune TrialScheduler.

This adapter reads the metrics out of Ray's result dicts, turns them into minimisation
and asks `RungCore` (orchestrator/schedulers/rungs.py), which makes every decision.

Restoring with `Tuner.restore` (Ray 2.60): Ray never calls a scheduler's `save`/`restore`
there. The scheduler object is pickled once into `tuner.pkl` when the Tuner is built
(its rungs still empty then) and unpickled on restore; only searchers and callbacks are
checkpointed during the run. So the rungs survive a restore only through a callback:
pass `scheduler.state_callback()` in `RunConfig(callbacks=[...])`. Ray saves that
callback's state with every experiment checkpoint and hands it back on restore before
the trials are re-added. The callback finds the right scheduler after a restore because
`tuner.pkl` pickles both in one go, which keeps them one object.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import sys
from typing import TYPE_CHECKING, Any

import numpy as np
from ray.tune import Callback
from ray.tune.experiment import Trial
from ray.tune.schedulers import TrialScheduler
from ray.tune.search import ConcurrencyLimiter, Searcher

from orchestrator.pareto import to_minimization
from orchestrator.schedulers.rungs import PAUSE, STOP, RungCore
from surnn.trainable import FIDELITY

if TYPE_CHECKING:
    from ray.tune.execution.tune_controller import TuneController

__all__ = ["ParetoASHA", "PauseAwareLimiter"]

logger = logging.getLogger(__name__)

_STATE_VERSION = 1
_GOAL_OF_MODE = {"min": "minimize", "max": "maximize"}


class ParetoASHA(TrialScheduler):
    """Asynchronous successive halving that promotes by Pareto rank, then crowding.

    Give the metrics and modes here, not in `TuneConfig`: with a `param_space`, a
    metric/mode set there silently turns a multi-objective OptunaSearch single-objective.

    Args:
        metrics: Result keys of the objectives.
        modes: "min" or "max" per metric.
        time_attr: Result key of the fidelity (monotonic per trial, e.g. "epoch").
        grace_period: First rung level, in units of time_attr.
        reduction_factor: Keep the best 1/reduction_factor at each rung.
        max_t: Fidelity at which trials finish by themselves; no rung at or above it.
        brackets: Hyperband brackets (see `RungCore`); with >= 2 the last never stops a trial.
        deal: How trials are dealt to brackets: "budget" (about equal epochs per bracket) or
            "round_robin" (see `RungCore.assign`).
        min_agreement: A rung whose ranking agrees less than this with the full budget's
            stops no trial (see `RungCore`); None: every rung cuts.
        kind: "stop" or "promotion": a trial pauses at a rung (Ray checkpoints it) and
            `choose_trial_to_run` resumes the core's `next_promotion` before a new trial
            starts. Ray's ConcurrencyLimiter counts a PAUSED trial as live, so wrap the
            searcher in `PauseAwareLimiter` instead of setting `max_concurrent_trials`; once
            the searcher is finished and nothing runs, the trials still paused are stopped.
        max_concurrent: With "promotion", at most this many trials RUNNING (None: as many
            as the resources allow); the limiter keeps new trials within the same number.
    """

    def __init__(
        self,
        metrics: list[str],
        modes: list[str],
        time_attr: str = FIDELITY,
        grace_period: int = 1,
        reduction_factor: float = 3,
        max_t: int = 100,
        brackets: int = 1,
        deal: str = "budget",
        min_agreement: float | None = None,
        kind: str = "stop",
        max_concurrent: int | None = None,
    ):
        if not metrics or len(metrics) != len(modes):
            raise ValueError(
                f"need one mode per metric, got metrics={metrics} modes={modes}"
            )
        for mode in modes:
            if mode not in _GOAL_OF_MODE:
                raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        super().__init__()
        self._metrics = list(metrics)
        self._modes = list(modes)
        self._goals = [_GOAL_OF_MODE[mode] for mode in modes]
        self._time_attr = time_attr
        self._core = RungCore(grace_period, reduction_factor, max_t, brackets, deal, min_agreement, kind=kind)
        self._max_concurrent = max_concurrent
        self._reached: dict[str, float] = {}   # trial -> highest fidelity reported (promotion-type rungs)
        self._warned = False                   # the started-over warning is given once a sweep

    @property
    def metrics(self) -> list[str]:
        return list(self._metrics)

    @property
    def modes(self) -> list[str]:
        return list(self._modes)

    @property
    def stopped_trials(self) -> dict[str, float]:
        """trial_id -> the fidelity at which this scheduler stopped it."""
        return dict(self._core.stopped)

    def set_search_properties(self, metric: str | None, mode: str | None, **spec) -> bool:
        """Called once by `tune.run` with `TuneConfig`'s metric and mode.

        The scheduler keeps its own metrics and modes whatever is passed; `metric` on
        the scheduler stays None so that Ray's strict metric check (which expects one
        name) leaves it alone.

        Returns:
            True: the scheduler can run with these properties.
        """
        if metric is not None or mode is not None:
            logger.warning(
                "ParetoASHA keeps its own metrics %s / modes %s and ignores "
                "metric=%r mode=%r from TuneConfig; a metric there also makes a "
                "multi-objective OptunaSearch single-objective.",
                self._metrics,
                self._modes,
                metric,
                mode,
            )
        return True

    def on_trial_add(self, tune_controller: "TuneController", trial: Trial):
        """Called when a trial is added, also for each trial re-added on restore.

        A trial enters the rungs with its first report at a rung level. On restore Ray makes
        every unfinished trial PENDING, and would start again the ones waiting at a rung
        (promotion-type rungs): a trial the restored rungs hold as paused is PAUSED again here
        (before Ray files it by status), to resume only once promotable. One that Ray holds
        as ended waits no more.
        """
        if trial.trial_id not in self._core.paused:
            return
        if trial.status == Trial.PENDING:
            trial.set_status(Trial.PAUSED)
        elif trial.status in (Trial.TERMINATED, Trial.ERROR):
            self._core.resume(trial.trial_id)

    def on_trial_result(
        self, tune_controller: "TuneController", trial: Trial, result: dict
    ) -> str:
        """Called on each (flattened) result of a RUNNING trial.

        Results without `time_attr` (e.g. only Ray's bookkeeping) continue. Otherwise
        the metrics are read (a missing or non-numeric one counts as missing), turned
        into minimisation and passed to `RungCore.on_result`.

        Returns:
            TrialScheduler.STOP if the core stops the trial at this rung (or stopped it
            before), TrialScheduler.PAUSE if it pauses it there (kind "promotion"), else
            TrialScheduler.CONTINUE.
        """
        if self._time_attr not in result:
            return TrialScheduler.CONTINUE
        self._warn_if_started_over(trial.trial_id, float(result[self._time_attr]))
        point = self._point(result)
        decision = self._core.on_result(trial.trial_id, result[self._time_attr], point)
        if decision == STOP:
            return TrialScheduler.STOP
        return TrialScheduler.PAUSE if decision == PAUSE else TrialScheduler.CONTINUE

    def _warn_if_started_over(self, trial_id: str, t: float) -> None:
        """Once per sweep: a paused trial resumed at its first epoch, not from a checkpoint."""
        if self._core.kind != "promotion":
            return
        before = self._reached.get(trial_id, 0.0)
        if t < before and not self._warned:
            self._warned = True
            print(f"warning: trial {trial_id} went on at {self._time_attr} {t:g} after reaching {before:g}: "
                  f"its trainable reports no checkpoints, so a trial that promotion-type rungs resume "
                  f"trains its epochs again; report checkpoints or set scheduler.kind: stop",
                  file=sys.stderr, flush=True)
        self._reached[trial_id] = max(before, t)

    def _point(self, result: dict) -> np.ndarray | None:
        try:
            values = [float(result[name]) for name in self._metrics]
        except (KeyError, TypeError, ValueError):
            return None
        return to_minimization(np.array([values]), self._goals)[0]

    def on_trial_complete(
        self, tune_controller: "TuneController", trial: Trial, result: dict
    ):
        """Called when a RUNNING trial finishes or is stopped (by us or a stopper).

        Nothing to do: its reports were already judged in `on_trial_result`, and its
        points stay at their rungs as evidence for later trials.
        """

    def on_trial_error(self, tune_controller: "TuneController", trial: Trial):
        """Called when a RUNNING trial raises.

        Its rung records are kept, so that a retry (or a resume) is not judged again at
        rungs it has passed.
        """

    def on_trial_remove(self, tune_controller: "TuneController", trial: Trial):
        """Called when a PENDING or PAUSED trial is removed; its records are kept."""

    def choose_trial_to_run(self, tune_controller: "TuneController") -> Trial | None:
        """Called whenever Ray can start a trial; must be idempotent.

        Returns:
            For kind "promotion", the core's `next_promotion` if Ray holds it PAUSED, else
            the first PENDING trial (a paused trial not yet promotable waits). For "stop",
            the first PENDING trial, else the first PAUSED one (as Ray's FIFO and ASHA
            schedulers do), else None.
        """
        if self._core.kind == "promotion":
            return self._choose_promotion(tune_controller)
        for status in (Trial.PENDING, Trial.PAUSED):
            for trial in tune_controller.get_trials():
                if trial.status == status:
                    return trial
        return None

    def _choose_promotion(self, tune_controller: "TuneController") -> Trial | None:
        limiter = getattr(tune_controller.search_alg, "searcher", None)
        if isinstance(limiter, PauseAwareLimiter):   # after a restore it holds no scheduler
            limiter.attach(self)
        trials = tune_controller.get_trials()
        running = sum(t.status == Trial.RUNNING for t in trials)
        if self._max_concurrent is not None and running >= self._max_concurrent:
            return None
        promoted = self._core.next_promotion()
        for trial in trials:
            if trial.trial_id == promoted and trial.status == Trial.PAUSED:
                return trial
        pending = next((t for t in trials if t.status == Trial.PENDING), None)
        paused = [t for t in trials if t.status == Trial.PAUSED]
        if pending is None and running == 0 and paused and promoted is None \
                and tune_controller.search_alg.is_finished():
            # the search is done and nothing can resume: what waits at a rung was stopped there
            for trial in paused:
                tune_controller.stop_trial(trial)
            self._core.end_paused()
            return None
        return pending

    def promotion_waiting(self) -> bool:
        """A paused trial is promotable now (a free slot should resume it, not start a new one)."""
        return self._core.kind == "promotion" and self._core.next_promotion() is not None

    def paused_ids(self) -> set[str]:
        return set(self._core.paused)

    def debug_string(self) -> str:
        """One line per rung for Ray's progress output."""
        rungs = " | ".join(f"t={level:g}: {n}" for level, n in self._core.rung_sizes())
        return (
            f"Using ParetoASHA: num_stopped={len(self._core.stopped)}\n"
            f"Trials recorded per rung: {rungs}"
        )

    def state_dict(self) -> dict[str, Any]:
        """Settings and rung state as plain JSON types, versioned."""
        return {
            "version": _STATE_VERSION,
            "metrics": self._metrics,
            "modes": self._modes,
            "time_attr": self._time_attr,
            "core": self._core.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Loads a `state_dict` of a scheduler with the same settings.

        Raises:
            ValueError: On an unknown version or different metrics, modes, time_attr
                or schedule.
        """
        if state.get("version") != _STATE_VERSION:
            raise ValueError(f"unknown ParetoASHA state version {state.get('version')!r}")
        saved = (state["metrics"], state["modes"], state["time_attr"])
        if saved != (self._metrics, self._modes, self._time_attr):
            raise ValueError(
                f"state is for metrics, modes, time_attr = {saved}; this scheduler has "
                f"{(self._metrics, self._modes, self._time_attr)}"
            )
        self._core.load_state_dict(state["core"])

    def save(self, checkpoint_path: str):
        """Writes `state_dict()` as JSON to `checkpoint_path` (Ray 2.60 never calls it)."""
        tmp_path = f"{checkpoint_path}.tmp"
        with open(tmp_path, "w") as f:
            json.dump(self.state_dict(), f)
        os.replace(tmp_path, checkpoint_path)  # never leave a half-written file

    def restore(self, checkpoint_path: str):
        """Loads the JSON written by `save` (Ray 2.60 never calls it)."""
        with open(checkpoint_path) as f:
            self.load_state_dict(json.load(f))

    def state_callback(self) -> Callback:
        """A Ray Tune callback that checkpoints this scheduler's rungs with the run.

        Pass it in `RunConfig(callbacks=[...])` so that `Tuner.restore` resumes the rungs
        (see the module docstring for why Ray needs this).
        """
        return _SchedulerStateCallback(self)

    # Pickling (Ray pickles the scheduler into tuner.pkl) carries the versioned JSON
    # state, not self.__dict__, so checkpoints do not depend on private attribute names.
    def __getstate__(self) -> dict[str, Any]:
        core = self._core
        settings = {
            "metrics": self._metrics,
            "modes": self._modes,
            "time_attr": self._time_attr,
            "grace_period": core.grace_period,
            "reduction_factor": core.reduction_factor,
            "max_t": core.max_t,
            "brackets": core.brackets,
            "deal": core.deal,
            "min_agreement": core.min_agreement,
            "kind": core.kind,
            "max_concurrent": self._max_concurrent,
        }
        return {"settings": settings, "state": self.state_dict()}

    def __setstate__(self, pickled: dict[str, Any]) -> None:
        self.__init__(**pickled["settings"])
        self.load_state_dict(pickled["state"])


class _SchedulerStateCallback(Callback):
    """Carries a ParetoASHA's state through Ray's experiment checkpoints."""

    def __init__(self, scheduler: ParetoASHA):
        self._scheduler = scheduler

    def get_state(self) -> dict[str, Any]:
        """Called by Ray at each experiment checkpoint."""
        return {"pareto_asha": self._scheduler.state_dict()}

    def set_state(self, state: dict[str, Any]) -> None:
        """Called by Ray on restore, before trials are re-added to the scheduler."""
        self._scheduler.load_state_dict(state["pareto_asha"])


class PauseAwareLimiter(ConcurrencyLimiter):
    """Ray's ConcurrencyLimiter, counting only trials that are not paused at a rung.

    With promotion-type rungs a PAUSED trial stays live to Ray's limiter, which would start
    nothing once `max_concurrent` trials wait. Here the paused ones (the scheduler's) do not
    count, and no new trial is asked while a paused one is promotable: the free slot resumes it.
    """

    def __init__(self, searcher, max_concurrent: int, scheduler: ParetoASHA):
        super().__init__(searcher, max_concurrent=max_concurrent)
        self._scheduler = scheduler

    def attach(self, scheduler: ParetoASHA) -> None:
        """The scheduler whose paused trials do not count (re-attached after a restore)."""
        self._scheduler = scheduler

    def get_state(self) -> dict:   # the scheduler is saved on its own, not copied in here
        return copy.deepcopy({k: v for k, v in self.__dict__.items() if k not in ("searcher", "_scheduler")})

    def set_state(self, state: dict) -> None:
        scheduler = getattr(self, "_scheduler", None)
        super().set_state(state)
        self._scheduler = scheduler

    def suggest(self, trial_id: str):
        paused = self._scheduler.paused_ids() if self._scheduler else set()
        if len(self.live_trials - paused) >= self.max_concurrent or \
                (self._scheduler is not None and self._scheduler.promotion_waiting()):
            return None
        suggestion = self.searcher.suggest(trial_id)
        if suggestion not in (None, Searcher.FINISHED):
            self.live_trials.add(trial_id)
            self.num_unfinished_live_trials += 1
        return suggestion
