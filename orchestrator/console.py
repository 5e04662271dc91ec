"""The sweep's live console line, and the stop rule for too many failed trials."""
from __future__ import annotations

import sys
import time

from ray import tune


def _hms(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


class ConsoleView(tune.Callback):
    """One status line: trials running / paused at a rung (promotion-type rungs, when any) /
    done / stopped / failed, the front, elapsed time, the budget used and an ETA.

    The budget comes from `searcher` (`ParetoOptunaSearch`: epochs summed over trials, and the
    share of `search.budget` spent); the ETA is the elapsed time scaled by what is left of
    the budget, or, without a budget, of `num_trials` (finished trials against the total).
    On a terminal the line is redrawn in place; elsewhere (CI, logs) a line is printed at most
    every `interval` seconds and whenever a trial finishes.
    """

    def __init__(self, tracker, title: str, interval: float = 10.0, stream=None, searcher=None,
                 num_trials: int | None = None, clock=time.time):
        self.tracker, self.title, self.interval = tracker, title, interval
        self.stream = stream
        self.searcher, self.num_trials, self.clock = searcher, num_trials, clock
        self._last = 0.0
        self._start = clock()

    def __getstate__(self):
        return {**self.__dict__, "stream": None}

    def _out(self):
        return self.stream or sys.stderr

    def line(self) -> str:
        c = self.tracker.counts()
        fr = self.tracker.front()
        seconds = self.clock() - self._start
        # trials waiting at a promotion-type rung, not running (getattr: a view pickled into the
        # tuner by an older version, restored by --resume, has no count yet)
        paused = getattr(self, "_paused", 0)
        running = f"running {max(c.get('running', 0) - paused, 0)}" + (f" | paused {paused}" if paused else "")
        return (f"[{self.title} {_hms(seconds)}] {running} | done {c.get('completed', 0)} | "
                f"stopped {c.get('stopped', 0)} | failed {c.get('failed', 0)} | "
                f"front {fr['size']} | hypervolume {fr['hypervolume']:.4g}{self._progress(c, seconds)}")

    def _progress(self, counts: dict, seconds: float) -> str:
        """' | budget ... | ETA h:mm:ss' from the searcher's budget, else from the trial count."""
        fraction, used = None, ""
        if self.searcher is not None and hasattr(self.searcher, "budget_fraction"):
            fraction = self.searcher.budget_fraction()
            used = self.searcher.budget_used() or f"{self.searcher.epochs_used():g} epochs"
        if fraction is None and self.num_trials:
            ended = sum(counts.get(k, 0) for k in ("completed", "stopped", "failed"))
            fraction = ended / self.num_trials
            used = f"{used}, " if used else ""
            used += f"{ended}/{self.num_trials} trials"
        if not used:
            return ""
        eta = "ETA --" if not fraction or seconds <= 0 else \
            ("ETA 0:00:00 (finishing)" if fraction >= 1 else f"ETA {_hms(seconds * (1 - fraction) / fraction)}")
        return f" | budget {used} | {eta}"

    def _show(self, force: bool = False) -> None:
        now = time.time()
        tty = self._out().isatty()
        if not force and now - self._last < (1.0 if tty else self.interval):
            return
        self._last = now
        self._out().write(("\r" + self.line() + "\x1b[K") if tty else self.line() + "\n")
        self._out().flush()

    def _count_paused(self, trials, ending=None) -> None:
        # Ray tells of a trial's end before it changes the trial's status: `ending` counts as ended
        self._paused = sum(getattr(t, "status", None) == "PAUSED" and t is not ending for t in trials)

    def on_step_begin(self, iteration, trials, **info):
        self._count_paused(trials)
        self._show()

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self._show()

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._count_paused(trials, ending=trial)   # a paused trial stopped at the end is no longer paused
        self._show(force=True)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._count_paused(trials, ending=trial)
        self._show(force=True)

    def on_experiment_end(self, trials, **info):
        self._count_paused(trials)
        self._show(force=True)
        if self._out().isatty():
            self._out().write("\n")


class FailureBudget(tune.Stopper, tune.Callback):
    """Stops the whole sweep cleanly once more than `max_failed` trials have failed for good."""

    def __init__(self, max_failed: int | None):
        self.max_failed = max_failed
        self.failed = 0

    def on_trial_error(self, iteration, trials, trial, **info):
        self.failed += 1

    def __call__(self, trial_id, result) -> bool:
        return False

    def stop_all(self) -> bool:
        return self.max_failed is not None and self.failed > self.max_failed
