"""Ray-free core of multi-objective ASHA: rungs, promotion and the stop decision.

Asynchronous successive halving (Li et al. 2020) with Pareto promotion (MO-ASHA,
Schmucker et al. 2021, https://arxiv.org/abs/2106.12639): a trial that reaches a rung is
compared with every trial recorded there so far, and continues only if it falls in the
best 1/reduction_factor of them by `promotion_order` (non-dominated rank, then crowding
distance). All points are already minimisation (see `orchestrator.pareto`).

The Ray adapter (`orchestrator.schedulers.moasha.ParetoASHA`) only delegates here, so
this file is tested with hand-picked numbers and no Ray.

Two kinds (Syne Tune's names): "stop", the decision at a rung is final (a trial outside the
best 1/reduction_factor is stopped); "promotion", a trial reaching a rung pauses there, and a
paused trial resumes (from its checkpoint) once it ranks in the best ceil(n/reduction_factor)
of the n trials recorded at its rung, so a trial that looked poor among the first few may
still go on once more have come. `next_promotion` names the trial a free worker should
resume (highest rung first) before a new trial starts.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from orchestrator.pareto import promotion_order, rank_agreement

__all__ = ["CONTINUE", "PAUSE", "STOP", "RungCore"]

CONTINUE = "continue"
STOP = "stop"
PAUSE = "pause"
KINDS = ("stop", "promotion")

_STATE_VERSION = 4
_READABLE_VERSIONS = (3, 4)   # version 3: a "stop" core, before promotion existed

# n / reduction_factor in floating point can land a hair above an integer
# (11 / 1.1 == 10.000000000000002); without this, ceil() would keep one trial too many.
_CEIL_SLACK = 1e-9


class RungCore:
    """Rung bookkeeping and stop decisions of asynchronous successive halving.

    Rung levels are grace_period * reduction_factor**k for k = 0, 1, ... while below
    max_t. At a rung, a trial continues if its position in `promotion_order` of all
    points recorded at that rung (itself included) is < ceil(n / reduction_factor), so
    the first trial at a rung always continues.

    Args:
        grace_period: The first rung level, in units of the fidelity t (> 0).
        reduction_factor: Keep the best 1/reduction_factor at each rung (> 1).
        max_t: Fidelity at which trials finish by themselves (>= grace_period); no rung
            is placed at or above it.
        brackets: Hyperband brackets (>= 1). Trials are dealt to brackets (see `assign`) in
            the order of their first report. With 1, every trial meets every rung (plain
            ASHA). With B >= 2, bracket k < B - 1 judges at `levels[k:]` only (its first cut
            comes later), and the last bracket never stops a trial, so a low fidelity that
            misleads cannot ruin the search. Each bracket keeps its own rungs.
        deal: How trials are dealt to brackets: "budget" or "round_robin" (see `assign`).
        min_agreement: A rung stops no trial while its ranking agrees less than this with
            the ranking at max_t (`orchestrator.pareto.rank_agreement`: Kendall's tau of the
            worst objective, over trials seen at both, brackets pooled); None: always cuts.
        min_pairs: Trials seen at both a rung and max_t before its agreement counts.
        kind: "stop" (a cut is final) or "promotion" (a trial pauses at a trusted rung
            unless it is the one to go on now, and resumes once it ranks in the best
            ceil(n / reduction_factor) there; see `next_promotion`).
    """

    def __init__(self, grace_period: int, reduction_factor: float, max_t: int, brackets: int = 1,
                 deal: str = "budget", min_agreement: float | None = None, min_pairs: int = 8,
                 kind: str = "stop"):
        if grace_period <= 0:
            raise ValueError(f"grace_period must be > 0, got {grace_period}")
        if reduction_factor <= 1:
            raise ValueError(f"reduction_factor must be > 1, got {reduction_factor}")
        if max_t < grace_period:
            raise ValueError(
                f"max_t must be >= grace_period ({grace_period}), got {max_t}"
            )
        if int(brackets) != brackets or brackets < 1:
            raise ValueError(f"brackets must be an integer >= 1, got {brackets}")
        if deal not in ("budget", "round_robin"):
            raise ValueError(f"deal must be 'budget' or 'round_robin', got {deal!r}")
        if kind not in KINDS:
            raise ValueError(f"kind must be 'stop' or 'promotion', got {kind!r}")
        self.kind = kind
        self.deal = deal
        self.min_agreement, self.min_pairs = min_agreement, int(min_pairs)
        self.brackets = int(brackets)
        self.grace_period = grace_period
        self.reduction_factor = float(reduction_factor)
        self.max_t = max_t
        self.levels: list[float] = []
        level = float(grace_period)
        while level < max_t:
            self.levels.append(level)
            level *= self.reduction_factor
        # Per bracket and rung, in arrival order (the order is the tie-break of promotion_order):
        self._trial_ids: list[list[list[str]]] = [[[] for _ in self.levels] for _ in range(self.brackets)]
        self._points: list[list[list[list[float]]]] = [[[] for _ in self.levels] for _ in range(self.brackets)]
        self._recorded: list[list[set[str]]] = [[set() for _ in self.levels] for _ in range(self.brackets)]
        self.bracket_of: dict[str, int] = {}
        self.stopped: dict[str, float] = {}
        self.paused: dict[str, tuple[int, int]] = {}   # promotion: trial -> (bracket, rung), in pause order
        self._promotion_memo: tuple = (None, None)     # (state key, next_promotion's answer for it)
        # every trial's point at each level it reached, brackets pooled, and at max_t (last)
        self._seen: list[dict[str, list[float]]] = [{} for _ in range(len(self.levels) + 1)]

    def first_rung(self, bracket: int) -> int:
        """Index into `levels` of the bracket's first rung; len(levels) for a bracket that never stops."""
        if self.brackets > 1 and bracket == self.brackets - 1:
            return len(self.levels)
        return min(bracket, len(self.levels))

    def bracket_cost(self, bracket: int) -> float:
        """Expected epochs of one trial of the bracket: its rungs cut to 1/reduction_factor each."""
        levels = self.levels[self.first_rung(bracket):]
        cost, kept, previous = 0.0, 1.0, 0.0
        for level in [*levels, float(self.max_t)]:
            cost += kept * (level - previous)
            kept, previous = kept / self.reduction_factor, level
        return cost

    def assign(self, trial_id: str) -> int:
        """The trial's bracket, dealt at its first report.

        `deal="budget"` (Hyperband's rule): to the bracket whose expected spend, (trials + 1) x
        `bracket_cost`, is lowest (ties to the lower bracket), so every bracket gets about the
        same epochs and the bracket that never stops gets the fewest trials. "round_robin": in turn.
        """
        if trial_id not in self.bracket_of:
            if self.deal == "round_robin":
                self.bracket_of[trial_id] = len(self.bracket_of) % self.brackets
            else:
                dealt = [0] * self.brackets
                for b in self.bracket_of.values():
                    dealt[b] += 1
                spend = [(dealt[b] + 1) * self.bracket_cost(b) for b in range(self.brackets)]
                self.bracket_of[trial_id] = min(range(self.brackets), key=lambda b: (spend[b], b))
        return self.bracket_of[trial_id]

    def on_result(self, trial_id: str, t: float, point: np.ndarray | None) -> str:
        """Decides whether a trial goes on after one report.

        Called for every report of every trial. The report is judged at the highest
        rung level <= t, once per trial and rung; reports below the first rung, between
        rungs, at a rung the trial has already passed, or at t >= max_t continue
        without being judged.

        Args:
            trial_id: The reporting trial.
            t: Its fidelity (epochs, steps, ...), non-decreasing per trial.
            point: Its objectives at t, minimisation, shape [m]; None if a metric was
                missing.

        Returns:
            CONTINUE ("continue"), STOP ("stop") or, for kind "promotion", PAUSE ("pause"):
            the trial waits at its rung for `next_promotion`. A trial that reaches a rung with a
            missing (None), NaN or infinite objective is stopped without being recorded
            there, so it does not change the cutoff for the others. A trial stopped
            before keeps getting STOP. Stopped trials are listed in `stopped`
            (trial_id -> t).
        """
        if trial_id in self.stopped:
            return STOP
        self.paused.pop(trial_id, None)   # a paused trial reporting again has been resumed
        rung = len(self.levels) if t >= self.max_t else self._rung_at(t)
        if rung is not None and point is not None and np.isfinite(np.asarray(point, dtype=float)).all():
            self._seen[rung].setdefault(trial_id, [float(v) for v in np.asarray(point, dtype=float).reshape(-1)])
        if t >= self.max_t:
            return CONTINUE  # the trial finishes by itself
        b = self.assign(trial_id)
        if rung is None or rung < self.first_rung(b) or trial_id in self._recorded[b][rung]:
            return CONTINUE
        if point is None or not np.isfinite(np.asarray(point, dtype=float)).all():
            self.stopped[trial_id] = t
            return STOP
        values = [float(v) for v in np.asarray(point, dtype=float).reshape(-1)]
        if self._points[b][rung] and len(values) != len(self._points[b][rung][0]):
            raise ValueError(
                f"trial {trial_id} reported {len(values)} objectives, "
                f"the rung holds {len(self._points[b][rung][0])}"
            )
        self._trial_ids[b][rung].append(trial_id)
        self._points[b][rung].append(values)
        self._recorded[b][rung].add(trial_id)

        points = np.asarray(self._points[b][rung])  # [n, m], the new trial last
        n = len(points)
        # NOTE(surnn): Syne Tune 0.16's MOASHA (syne_tune/optimizer/schedulers/
        # multiobjective/moasha.py) ranks a rung with NonDominatedPriority, which returns
        # the sort order, and reads element -1 as the new trial's rank: the index of
        # whichever trial sorted last, so a trial that dominates the whole rung can be
        # stopped. We look up where the new trial itself (index n - 1) sits in the order.
        if not self.trusted(rung):
            return CONTINUE
        if self.kind == "promotion":   # ranked in `next_promotion`, against every trial at the rung
            self.paused[trial_id] = (b, rung)
            if self.next_promotion() == trial_id:   # the one a free worker would take: go on now
                del self.paused[trial_id]
                return CONTINUE
            return PAUSE
        position = int(np.flatnonzero(promotion_order(points) == n - 1)[0])
        keep = math.ceil(n / self.reduction_factor - _CEIL_SLACK)
        if position < keep:
            return CONTINUE
        self.stopped[trial_id] = t
        return STOP

    def next_promotion(self) -> str | None:
        """The paused trial a free worker should resume, or None (then start a new trial).

        A paused trial is promotable when its position in `promotion_order` of its rung
        (its bracket's, every trial recorded there) is < ceil(n / reduction_factor); of the
        promotable ones, the highest rung goes first, then the better position, then the
        earlier pause. Does not change the state: the trial leaves `paused` when it reports
        again (or through `resume`). Ray asks every step, so the answer is kept until a rung
        or the paused set changes.
        """
        key = (tuple(len(ids) for rungs in self._trial_ids for ids in rungs), tuple(self.paused.items()))
        if self._promotion_memo[0] == key:
            return self._promotion_memo[1]
        best = None
        for (b, rung) in dict.fromkeys(self.paused.values()):
            ids = self._trial_ids[b][rung]
            order = promotion_order(np.asarray(self._points[b][rung]))
            position = {ids[i]: p for p, i in enumerate(order.tolist())}
            keep = math.ceil(len(ids) / self.reduction_factor - _CEIL_SLACK)
            for tid, where in self.paused.items():
                if where == (b, rung) and position[tid] < keep:
                    rank = (-rung, position[tid])
                    if best is None or rank < best[0]:
                        best = (rank, tid)
        self._promotion_memo = (key, best[1] if best else None)
        return self._promotion_memo[1]

    def resume(self, trial_id: str) -> None:
        """The caller resumes a paused trial now (before its next report)."""
        self.paused.pop(trial_id, None)

    def end_paused(self) -> list[str]:
        """The sweep ends: every paused trial counts as stopped at its rung; returns their ids."""
        ended = list(self.paused)
        for tid, (_, rung) in self.paused.items():
            self.stopped[tid] = self.levels[rung]
        self.paused.clear()
        return ended

    def agreement(self, rung: int) -> float | None:
        """`rank_agreement` of the rung with max_t over trials seen at both; None below min_pairs."""
        final = self._seen[-1]
        both = [tid for tid in self._seen[rung] if tid in final]
        if len(both) < max(self.min_pairs, 2):
            return None
        return rank_agreement(np.array([self._seen[rung][tid] for tid in both]),
                              np.array([final[tid] for tid in both]))

    def trusted(self, rung: int) -> bool:
        """Whether the rung may stop trials: its ranking agrees >= min_agreement with max_t's
        (or too few trials have reached both to tell, or min_agreement is None)."""
        if self.min_agreement is None:
            return True
        agreement = self.agreement(rung)
        return agreement is None or agreement >= self.min_agreement

    def _rung_at(self, t: float) -> int | None:
        """Index of the highest rung level <= t, or None below the first one."""
        below = [k for k, level in enumerate(self.levels) if level <= t]
        return below[-1] if below else None

    def rung_sizes(self) -> list[tuple[float, int]]:
        """(level, number of trials recorded) per rung, lowest first."""
        return [(level, sum(len(self._trial_ids[b][k]) for b in range(self.brackets)))
                for k, level in enumerate(self.levels)]

    def state_dict(self) -> dict[str, Any]:
        """The whole state as plain JSON types, versioned.

        Returns:
            {"version": 4, "grace_period", "reduction_factor", "max_t", "brackets", "deal",
            "min_agreement", "min_pairs", "kind", "seen": per level and max_t {trial_id: point},
            "rungs": per bracket [{"level", "trial_ids", "points"}, ...], "bracket_of":
            {trial_id: bracket}, "stopped": {trial_id: t}, "paused": [[trial_id, bracket, rung
            index], ...]}; lists keep arrival order.
        """
        return {
            "version": _STATE_VERSION,
            "grace_period": self.grace_period,
            "reduction_factor": self.reduction_factor,
            "max_t": self.max_t,
            "brackets": self.brackets,
            "rungs": [[
                {"level": level, "trial_ids": list(ids), "points": [list(p) for p in pts]}
                for level, ids, pts in zip(self.levels, self._trial_ids[b], self._points[b])
            ] for b in range(self.brackets)],
            "deal": self.deal,
            "min_agreement": self.min_agreement,
            "min_pairs": self.min_pairs,
            "kind": self.kind,
            "seen": [dict(level) for level in self._seen],
            "bracket_of": dict(self.bracket_of),
            "stopped": dict(self.stopped),
            "paused": [[tid, b, rung] for tid, (b, rung) in self.paused.items()],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Replaces the state with one from `state_dict` (possibly via JSON).

        Args:
            state: A dict made by `state_dict` of a core with the same schedule.

        Raises:
            ValueError: On an unknown version, or a state whose schedule (grace_period,
                reduction_factor, max_t, rung levels) differs from this core's.
        """
        if state.get("version") not in _READABLE_VERSIONS:
            raise ValueError(
                f"unknown RungCore state version {state.get('version')!r} "
                f"(this code reads version {_STATE_VERSION})"
            )
        schedule = (state["grace_period"], float(state["reduction_factor"]), state["max_t"],
                    state["brackets"], state["deal"], state["min_agreement"], state["min_pairs"],
                    state.get("kind", "stop"))
        levels = [float(rung["level"]) for rung in state["rungs"][0]] if state["rungs"] else []
        mine = (self.grace_period, self.reduction_factor, self.max_t, self.brackets, self.deal,
                self.min_agreement, self.min_pairs, self.kind)
        if schedule != mine or levels != self.levels:
            raise ValueError(
                f"state is for grace_period, reduction_factor, max_t, brackets, deal, min_agreement, "
                f"min_pairs, kind = {schedule} with "
                f"rungs {levels}; this core has {mine} with {self.levels}"
            )
        self._trial_ids = [[list(r["trial_ids"]) for r in rungs] for rungs in state["rungs"]]
        self._points = [[[[float(v) for v in p] for p in r["points"]] for r in rungs]
                        for rungs in state["rungs"]]
        self._recorded = [[set(ids) for ids in rungs] for rungs in self._trial_ids]
        self._seen = [{k: [float(v) for v in p] for k, p in level.items()} for level in state["seen"]]
        self.bracket_of = {k: int(v) for k, v in state["bracket_of"].items()}
        self.stopped = dict(state["stopped"])
        self.paused = {tid: (int(b), int(rung)) for tid, b, rung in state.get("paused", [])}
        self._promotion_memo = (None, None)   # answers of another state
