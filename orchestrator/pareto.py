"""Pareto dominance, non-dominated sorting, crowding and hypervolume on plain arrays.

Everything here is MINIMISATION: turn objectives around once with `to_minimization`
(the sweep spec's goals) and every other function can assume "smaller is better".

Fast paths go through moocore (a C core); each has a plain-Python `_ref` twin beside it
that the tests hold it to (`nondominated_rank_ref`, `hypervolume_ref`).

Non-finite rows: a row with a NaN or an infinite value (a diverged loss, a missing
metric) is treated as dominated by every finite row. It gets the non-dominated rank after
the last finite front, is never on the Pareto front, sorts last in `promotion_order`
and adds nothing to a hypervolume. `dominates` itself follows IEEE comparisons, so a
NaN row neither dominates nor is dominated there.
"""

from __future__ import annotations

from collections.abc import Sequence

import moocore
import numpy as np

__all__ = [
    "crowding_distance",
    "dominates",
    "hypervolume",
    "hypervolume_ref",
    "nondominated_rank",
    "nondominated_rank_ref",
    "pareto_front_mask",
    "promotion_order",
    "rank_agreement",
    "to_minimization",
]

_GOALS = ("minimize", "maximize")


def to_minimization(values: np.ndarray, goals: Sequence[str]) -> np.ndarray:
    """Turns objective values into a minimisation problem.

    Args:
        values: Objective values, shape [n, m].
        goals: One of "minimize" / "maximize" per objective (length m).

    Returns:
        A new float array [n, m]: "maximize" columns negated, "minimize" columns kept.
        NaN stays NaN.

    Raises:
        ValueError: If `values` is not 2-D, its width differs from len(goals), or a goal
            is neither "minimize" nor "maximize".
    """
    values = np.array(values, dtype=float)  # a copy: the caller's array stays as it was
    if values.ndim != 2 or values.shape[1] != len(goals):
        raise ValueError(
            f"values must have shape [n, {len(goals)}] (one column per goal), "
            f"got shape {values.shape}"
        )
    for goal in goals:
        if goal not in _GOALS:
            raise ValueError(f"goal must be one of {_GOALS}, got {goal!r}")
    sign = np.array([-1.0 if goal == "maximize" else 1.0 for goal in goals])
    return values * sign


def dominates(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether `a` Pareto-dominates `b` (minimisation).

    Args:
        a: One point, shape [m].
        b: Another point, shape [m].

    Returns:
        True if a <= b in every objective and a < b in at least one. Equal points do
        not dominate each other; a NaN anywhere makes the answer False.
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"points differ in shape: {a.shape} vs {b.shape}")
    return bool(np.all(a <= b) and np.any(a < b))


def _as_points(points: np.ndarray) -> np.ndarray:
    points = np.asarray(points, dtype=float)
    if points.ndim != 2 or points.shape[1] < 1:
        raise ValueError(f"points must have shape [n, m] with m >= 1, got {points.shape}")
    return points


def _finite_rows(points: np.ndarray) -> np.ndarray:
    return np.isfinite(points).all(axis=1)


def _rank_with_invalid_last(points: np.ndarray, rank_finite) -> np.ndarray:
    # Shared by the fast path and the reference so both treat non-finite rows alike.
    points = _as_points(points)
    valid = _finite_rows(points)
    ranks = np.zeros(len(points), dtype=np.int64)
    if valid.any():
        ranks[valid] = rank_finite(points[valid])
        ranks[~valid] = ranks[valid].max() + 1
    return ranks


def nondominated_rank(points: np.ndarray) -> np.ndarray:
    """Non-dominated sorting rank of each point (moocore fast path).

    Args:
        points: Minimisation objectives, shape [n, m].

    Returns:
        int64 [n]: 0 for the non-dominated front, 1 for the front left after removing
        it, and so on. Duplicate points share a rank. Rows with a NaN/inf get one rank
        after the last finite front (0 if no row is finite).
    """
    # moocore.pareto_rank minimises by default and its ranks start at 0 (checked
    # against nondominated_rank_ref in tests/orchestrator/test_pareto.py).
    return _rank_with_invalid_last(points, lambda p: moocore.pareto_rank(p))


def nondominated_rank_ref(points: np.ndarray) -> np.ndarray:
    """Same contract as `nondominated_rank`, by peeling fronts with a plain loop."""

    def peel(finite: np.ndarray) -> np.ndarray:
        n = len(finite)
        ranks = np.full(n, -1, dtype=np.int64)
        remaining = list(range(n))
        rank = 0
        while remaining:
            front = [
                i
                for i in remaining
                if not any(dominates(finite[j], finite[i]) for j in remaining)
            ]
            ranks[front] = rank
            remaining = [i for i in remaining if i not in front]
            rank += 1
        return ranks

    return _rank_with_invalid_last(points, peel)


def pareto_front_mask(points: np.ndarray) -> np.ndarray:
    """Marks the non-dominated points.

    Args:
        points: Minimisation objectives, shape [n, m].

    Returns:
        bool [n]: True for finite points that no other point dominates (duplicates of
        a front point are on the front too). Non-finite rows are never on it.
    """
    points = _as_points(points)
    return (nondominated_rank(points) == 0) & _finite_rows(points)


def crowding_distance(points: np.ndarray) -> np.ndarray:
    """NSGA-II crowding distance within one set of points (usually one front).

    Each objective adds the normalised gap between a point's two neighbours along that
    objective; the two extreme points of each objective get inf.

    Args:
        points: Minimisation objectives, shape [n, m].

    Returns:
        float [n]. With two or fewer finite points all of them get inf. Non-finite rows
        get -inf so that they sort last in a descending order. An objective on which
        every point is equal adds 0 to the inner points (its range would divide by 0).
    """
    points = _as_points(points)
    valid = _finite_rows(points)
    distance = np.full(len(points), -np.inf)
    finite = points[valid]
    k, m = finite.shape
    if k <= 2:
        distance[valid] = np.inf
        return distance
    d = np.zeros(k)
    for j in range(m):
        # A stable sort keeps ties in index order, so equal values give the same answer
        # on every run.
        order = np.argsort(finite[:, j], kind="stable")
        column = finite[order, j]
        d[order[0]] = d[order[-1]] = np.inf
        span = column[-1] - column[0]
        if span > 0:
            d[order[1:-1]] += (column[2:] - column[:-2]) / span
    distance[valid] = d
    return distance


def promotion_order(points: np.ndarray) -> np.ndarray:
    """Indices of `points`, best first, for promotion in a successive-halving rung.

    Sorted by non-dominated rank (ascending), then crowding distance within that rank
    (descending, so spread-out points go first), then index (for determinism).

    Args:
        points: Minimisation objectives, shape [n, m].

    Returns:
        int64 [n], a permutation of range(n). Non-finite rows come last.
    """
    points = _as_points(points)
    ranks = nondominated_rank(points)
    crowding = np.empty(len(points))
    for rank in np.unique(ranks):
        members = ranks == rank
        crowding[members] = crowding_distance(points[members])
    index = np.arange(len(points))
    # np.lexsort sorts by the LAST key first.
    return np.lexsort((index, -crowding, ranks)).astype(np.int64)


def _hv_inputs(points: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    points = _as_points(points)
    ref = np.asarray(ref, dtype=float).reshape(-1)
    if ref.shape != (points.shape[1],) or not np.isfinite(ref).all():
        raise ValueError(
            f"ref must be a finite point with {points.shape[1]} values, got {ref}"
        )
    # Only points strictly better than ref in every objective bound a box of volume > 0.
    inside = _finite_rows(points) & np.all(points < ref, axis=1)
    return points[inside], ref


def hypervolume(points: np.ndarray, ref: np.ndarray) -> float:
    """Hypervolume dominated by `points` and bounded by `ref` (minimisation; moocore).

    Args:
        points: Minimisation objectives, shape [n, m].
        ref: Reference point, shape [m], worse than the points of interest.

    Returns:
        The Lebesgue measure of the union of boxes [p, ref]. Points that do not strictly
        dominate `ref`, and non-finite rows, contribute nothing; no points give 0.0.
    """
    inside, ref = _hv_inputs(points, ref)
    if len(inside) == 0:
        return 0.0
    return float(moocore.hypervolume(inside, ref=ref))


def hypervolume_ref(points: np.ndarray, ref: np.ndarray) -> float:
    """Same contract as `hypervolume`, by summing covered cells of a grid (small n only).

    The grid's lines are the points' coordinates and ref's in each objective; a cell is
    covered when some point is <= its lower corner. Exact in any dimension, but costs
    O(n^(m+1)): meant for tests with tens of points in 2-D or 3-D.
    """
    inside, ref = _hv_inputs(points, ref)
    if len(inside) == 0:
        return 0.0
    m = inside.shape[1]
    axes = [np.unique(np.append(inside[:, j], ref[j])) for j in range(m)]
    lower = np.stack(
        np.meshgrid(*[axis[:-1] for axis in axes], indexing="ij"), axis=-1
    )  # [c_1, ..., c_m, m]: lower corner of each cell
    widths = np.meshgrid(*[np.diff(axis) for axis in axes], indexing="ij")
    volume = np.prod(np.stack(widths, axis=-1), axis=-1)  # [c_1, ..., c_m]
    covered = np.zeros(volume.shape, dtype=bool)
    for p in inside:
        covered |= np.all(p <= lower, axis=-1)
    return float(volume[covered].sum())


def rank_agreement(low: np.ndarray, high: np.ndarray) -> float:
    """How well one fidelity's ranking predicts another's: Kendall's tau of the worst objective.

    Args:
        low, high: The same trials' objectives at two fidelities, shape [n, m], n >= 2.

    Returns:
        min over objectives of Kendall's tau-a between the columns, in [-1, 1]: 1 when every
        objective orders the trials alike at both fidelities, about 0 when the low one says
        nothing, below 0 when it reverses the order (learning curves that cross).
    """
    low, high = np.asarray(low, dtype=float), np.asarray(high, dtype=float)
    n = len(low)
    i, j = np.triu_indices(n, k=1)
    taus = [float(np.mean(np.sign(low[i, k] - low[j, k]) * np.sign(high[i, k] - high[j, k])))
            for k in range(low.shape[1])]
    return min(taus)
