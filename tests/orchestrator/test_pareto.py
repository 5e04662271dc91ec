"""Pareto helpers: closed-form fronts, ties, NaN rows, and moocore against brute force."""

import numpy as np
import pytest

from orchestrator.pareto import (
    crowding_distance,
    dominates,
    hypervolume,
    hypervolume_ref,
    nondominated_rank,
    nondominated_rank_ref,
    pareto_front_mask,
    promotion_order,
    to_minimization,
)

SEEDS = [0, 1, 2, 3, 4]


def _random_points(seed: int, n: int, m: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    # Rounding to a coarse grid makes ties and duplicates common.
    return np.round(rng.random((n, m)) * 4) / 4


def test_to_minimization_negates_maximize_columns():
    values = np.array([[0.5, 0.9], [0.2, np.nan]])
    out = to_minimization(values, ["minimize", "maximize"])
    np.testing.assert_array_equal(out, [[0.5, -0.9], [0.2, np.nan]])
    assert values[0, 1] == 0.9  # the input is not changed


def test_to_minimization_rejects_unknown_goal_and_bad_shape():
    with pytest.raises(ValueError, match="goal"):
        to_minimization(np.zeros((2, 2)), ["minimize", "max"])
    with pytest.raises(ValueError, match="shape"):
        to_minimization(np.zeros((2, 3)), ["minimize", "maximize"])
    with pytest.raises(ValueError, match="shape"):
        to_minimization(np.zeros(2), ["minimize", "maximize"])


def test_dominates_is_strict_and_asymmetric():
    assert dominates([1, 2], [2, 2])
    assert not dominates([2, 2], [1, 2])
    assert dominates([0, 0, 0], [1, 1, 1])
    assert not dominates([1, 1, 1], [0, 0, 0])
    # Trade-offs: neither dominates.
    assert not dominates([1, 3], [2, 2]) and not dominates([2, 2], [1, 3])


def test_equal_points_do_not_dominate_and_share_rank_zero():
    points = np.array([[1.0, 2.0], [1.0, 2.0], [2.0, 3.0]])
    assert not dominates(points[0], points[1])
    np.testing.assert_array_equal(nondominated_rank(points), [0, 0, 1])
    np.testing.assert_array_equal(pareto_front_mask(points), [True, True, False])


def test_points_on_a_line_form_one_front():
    x = np.linspace(0, 1, 7)
    points = np.stack([x, 1 - x], axis=1)
    np.testing.assert_array_equal(nondominated_rank(points), np.zeros(7))
    assert pareto_front_mask(points).all()


@pytest.mark.parametrize("m", [2, 3])
def test_full_grid_rank_is_sum_of_coordinates(m):
    # On the full grid {0,1,2}^m, point i has exactly the points with a smaller
    # coordinate sum below it, so its rank is the sum of its coordinates.
    grid = np.stack(np.meshgrid(*[np.arange(3)] * m, indexing="ij"), -1).reshape(-1, m)
    np.testing.assert_array_equal(nondominated_rank(grid), grid.sum(axis=1))
    np.testing.assert_array_equal(nondominated_rank_ref(grid), grid.sum(axis=1))


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("m", [2, 3])
def test_fast_rank_and_front_match_reference(seed, m):
    points = _random_points(seed, 40, m)
    ranks = nondominated_rank(points)
    np.testing.assert_array_equal(ranks, nondominated_rank_ref(points))
    np.testing.assert_array_equal(pareto_front_mask(points), ranks == 0)
    # Front mask by definition: nobody dominates the point.
    by_definition = [
        not any(dominates(q, p) for q in points) for p in points
    ]
    np.testing.assert_array_equal(pareto_front_mask(points), by_definition)


@pytest.mark.parametrize("seed", SEEDS)
def test_rank_front_and_hypervolume_are_shuffle_invariant(seed):
    points = _random_points(seed, 30, 3)
    perm = np.random.default_rng(seed + 100).permutation(len(points))
    np.testing.assert_array_equal(nondominated_rank(points)[perm], nondominated_rank(points[perm]))
    np.testing.assert_array_equal(pareto_front_mask(points)[perm], pareto_front_mask(points[perm]))
    ref = np.full(3, 1.1)
    assert hypervolume(points[perm], ref) == pytest.approx(hypervolume(points, ref))


def test_non_finite_rows_rank_after_every_finite_row():
    points = np.array([[np.nan, 0.0], [5.0, 5.0], [0.0, np.inf], [1.0, 1.0], [-np.inf, 0.0]])
    expected = [2, 1, 2, 0, 2]
    np.testing.assert_array_equal(nondominated_rank(points), expected)
    np.testing.assert_array_equal(nondominated_rank_ref(points), expected)
    np.testing.assert_array_equal(pareto_front_mask(points), [False, False, False, True, False])
    assert list(promotion_order(points)[-3:]) == [0, 2, 4]


def test_all_non_finite_rows_are_not_a_front():
    points = np.full((2, 2), np.nan)
    np.testing.assert_array_equal(nondominated_rank(points), [0, 0])
    assert not pareto_front_mask(points).any()


def test_crowding_distance_closed_form():
    points = np.array([[0.0, 4.0], [1.0, 3.5], [3.0, 1.0], [4.0, 0.0]])
    # Both ranges are 4. Point 1: (3 - 0)/4 + (4 - 1)/4; point 2: (4 - 1)/4 + (3.5 - 0)/4.
    np.testing.assert_allclose(crowding_distance(points), [np.inf, 1.5, 1.625, np.inf])


def test_crowding_distance_small_sets_and_flat_objective():
    two = np.array([[1.0, 2.0], [2.0, 1.0]])
    np.testing.assert_array_equal(crowding_distance(two), [np.inf, np.inf])
    flat = np.array([[0.0, 1.0], [1.0, 1.0], [2.0, 1.0]])
    # The flat objective adds nothing to the middle point (and does not divide by 0).
    assert crowding_distance(flat)[1] == pytest.approx(1.0)
    with_nan = np.array([[0.0, 1.0], [np.nan, 1.0], [1.0, 0.0]])
    np.testing.assert_array_equal(crowding_distance(with_nan), [np.inf, -np.inf, np.inf])


def test_promotion_order_is_rank_then_crowding_then_index():
    points = np.array(
        [
            [3.0, 3.0],  # 0: rank 1
            [0.0, 4.0],  # 1: front, boundary
            [1.0, 3.5],  # 2: front, crowding 1.5
            [3.0, 1.0],  # 3: front, crowding 1.625
            [4.0, 0.0],  # 4: front, boundary
            [3.0, 3.0],  # 5: duplicate of 0, same rank and crowding: index decides
        ]
    )
    np.testing.assert_array_equal(promotion_order(points), [1, 4, 3, 2, 0, 5])


def test_hypervolume_closed_form():
    assert hypervolume(np.array([[1.0, 1.0]]), [2.0, 2.0]) == pytest.approx(1.0)
    assert hypervolume(np.array([[1.0, 2.0], [2.0, 1.0]]), [3.0, 3.0]) == pytest.approx(3.0)
    assert hypervolume(np.array([[0.0, 0.0, 0.0]]), [1.0, 2.0, 3.0]) == pytest.approx(6.0)
    # A point on or beyond ref adds nothing; no points give 0.
    assert hypervolume(np.array([[3.0, 1.0], [1.0, 4.0]]), [3.0, 3.0]) == 0.0
    assert hypervolume(np.zeros((0, 2)), [1.0, 1.0]) == 0.0
    assert hypervolume(np.array([[np.nan, 0.0], [1.0, 1.0]]), [2.0, 2.0]) == pytest.approx(1.0)


def test_hypervolume_rejects_bad_ref():
    with pytest.raises(ValueError, match="ref"):
        hypervolume(np.zeros((1, 2)), [1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="ref"):
        hypervolume(np.zeros((1, 2)), [1.0, np.nan])


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("m", [2, 3])
def test_hypervolume_matches_brute_force(seed, m):
    rng = np.random.default_rng(seed)
    points = rng.random((12, m))
    points[:2] = np.round(points[:2], 1)  # some exact coordinates and near-ties
    ref = np.full(m, 0.9)  # some points lie beyond it
    expected = hypervolume_ref(points, ref)
    assert expected > 0
    assert hypervolume(points, ref) == pytest.approx(expected, rel=1e-12)


def test_rank_agreement_is_kendall_tau_of_the_worst_objective():
    from orchestrator.pareto import rank_agreement

    high = np.array([[1.0, 4.0], [2.0, 3.0], [3.0, 2.0], [4.0, 1.0]])
    assert rank_agreement(high + 10.0, high) == 1.0                    # shifted: same order
    crossed = high.copy()
    crossed[:, 1] = crossed[::-1, 1]                                   # objective 1 reversed
    assert rank_agreement(crossed, high) == -1.0
    one_swap = high.copy()
    one_swap[[0, 1], 0] = one_swap[[1, 0], 0]                          # 5 of 6 pairs agree in objective 0
    assert rank_agreement(one_swap, high) == pytest.approx((5 - 1) / 6)
