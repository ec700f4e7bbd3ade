"""Choosing disjoint (bundle, rider) pairs: greedy, shortlist and CP-SAT."""

from __future__ import annotations

import re

import numpy as np
import pytest
from ortools.sat.python import cp_model

from router.assign import (
    RIDER_WEIGHT,
    Chains,
    Pairs,
    _choice_model,
    greedy_choice,
    shortlist_pairs,
    solve_choice,
)
from router.bundles import Bundles


def _bundles(members: list[list[int]], max_stops: int = 3) -> Bundles:
    orders = np.full((len(members), max_stops), -1, dtype=np.int64)
    for b, row in enumerate(members):
        orders[b, : len(row)] = row
    n = len(members)
    zeros = np.zeros(n, dtype=np.int64)
    return Bundles(
        orders=orders,
        n_stops=np.array([len(m) for m in members], dtype=np.int64),
        shops=zeros,
        sizes=np.array([len(m) for m in members], dtype=np.int64),
        ready_s=zeros,
        sequences=np.zeros((n, 3, max_stops), dtype=np.int64),
        offsets_s=np.zeros((n, 3, max_stops), dtype=np.int64),
    )


def _pairs(bundles: list[int], riders: list[int], costs: list[int]) -> Pairs:
    n = len(bundles)
    zeros = np.zeros(n, dtype=np.int64)
    return Pairs(
        bundles=np.array(bundles, dtype=np.int64),
        riders=np.array(riders, dtype=np.int64),
        leave_s=zeros,
        arrive_shop_s=zeros,
        depart_s=zeros,
        costs=np.array(costs, dtype=np.int64),
    )


# Bundle 0 = {o0, o1}, bundle 1 = {o0}, bundle 2 = {o1}. Greedy takes rider 0 with both
# orders (-10) and leaves rider 1 idle; the optimum splits them (-7 - 7 = -14).
TRAP_BUNDLES = _bundles([[0, 1], [0], [1]])
TRAP_PAIRS = _pairs(bundles=[0, 1, 2], riders=[0, 0, 1], costs=[-10, -7, -7])


def _is_disjoint(pairs: Pairs, bundles: Bundles, chosen: np.ndarray) -> bool:
    riders = pairs.riders[chosen].tolist()
    members = [o for p in chosen for o in bundles.orders[pairs.bundles[p]] if o >= 0]
    return len(set(riders)) == len(riders) and len(set(members)) == len(members)


def test_greedy_takes_best_first_and_stays_disjoint() -> None:
    """The greedy plan takes the cheapest pair first and never reuses an order or a rider."""
    chosen = greedy_choice(TRAP_PAIRS, TRAP_BUNDLES, n_orders=2, n_riders=2)
    assert chosen.tolist() == [0]
    assert _is_disjoint(TRAP_PAIRS, TRAP_BUNDLES, chosen)


def test_cp_sat_beats_the_greedy_trap() -> None:
    """CP-SAT finds the optimum where the greedy plan is stuck."""
    chosen, method = solve_choice(
        TRAP_PAIRS, TRAP_BUNDLES, 2, 2, seed=0, deterministic_limit=1.0, time_limit_s=5.0
    )
    assert method == "cp-sat"
    assert sorted(chosen.tolist()) == [1, 2]
    assert int(TRAP_PAIRS.costs[chosen].sum()) == -14


def test_solver_without_time_falls_back_to_greedy() -> None:
    """With no time at all, the answer is the greedy plan, never nothing."""
    chosen, method = solve_choice(
        TRAP_PAIRS, TRAP_BUNDLES, 2, 2, seed=0, deterministic_limit=0.0, time_limit_s=1e-9
    )
    if method == "greedy":
        assert chosen.tolist() == [0]
    else:  # the presolve alone may already prove the optimum
        assert int(TRAP_PAIRS.costs[chosen].sum()) == -14


def test_random_choices_are_disjoint_deterministic_and_no_worse_than_greedy() -> None:
    """On random instances the solver's plan is disjoint, repeatable and at least as good."""
    rng = np.random.default_rng(7)
    for _ in range(20):
        n_orders, n_riders = 12, 4
        members = [
            sorted(rng.choice(n_orders, int(rng.integers(1, 4)), replace=False).tolist())
            for _ in range(30)
        ]
        bundles = _bundles(members)
        n_pairs = 60
        pairs = _pairs(
            bundles=rng.integers(0, 30, n_pairs).tolist(),
            riders=rng.integers(0, n_riders, n_pairs).tolist(),
            costs=(-rng.integers(1, 1000, n_pairs)).tolist(),
        )
        greedy = greedy_choice(pairs, bundles, n_orders, n_riders)
        first, _ = solve_choice(
            pairs, bundles, n_orders, n_riders, seed=3, deterministic_limit=1.0, time_limit_s=5.0
        )
        second, _ = solve_choice(
            pairs, bundles, n_orders, n_riders, seed=3, deterministic_limit=1.0, time_limit_s=5.0
        )
        assert _is_disjoint(pairs, bundles, first)
        assert first.tolist() == second.tolist()
        assert pairs.costs[first].sum() <= pairs.costs[greedy].sum()


def test_shortlist_keeps_the_greedy_plan_and_bounds_each_rider() -> None:
    """The shortlist holds the greedy pairs and the best few pairs of every rider and order."""
    rng = np.random.default_rng(11)
    members = [[int(o)] for o in rng.integers(0, 40, 200)]
    bundles = _bundles(members)
    pairs = _pairs(
        bundles=list(range(200)),
        riders=rng.integers(0, 5, 200).tolist(),
        costs=(-rng.integers(1, 1000, 200)).tolist(),
    )
    short = shortlist_pairs(pairs, bundles, 40, 5, per_rider=4, per_order=1)
    greedy = greedy_choice(pairs, bundles, 40, 5)
    kept = set(zip(short.bundles.tolist(), short.riders.tolist(), strict=True))
    for p in greedy:
        assert (int(pairs.bundles[p]), int(pairs.riders[p])) in kept
    covered = {int(bundles.orders[b, 0]) for b in short.bundles}
    assert covered == {int(bundles.orders[b, 0]) for b in pairs.bundles}
    assert short.n_pairs < pairs.n_pairs


def _price_one_bundle_two_riders(
    quota_left: list[int] | None,
    extra_order_cost: int,
    bundles: Bundles | None = None,
    rider_weight: int | np.ndarray = RIDER_WEIGHT,
) -> Pairs:
    """A bundle (by default {o0, o1}) priced for two e-bikes at the shop, free now."""
    from router.assign import price_pairs
    from router.snapshot import pad_shifts

    starts, ends = pad_shifts([((0, 3600),), ((0, 3600),)])
    return price_pairs(
        _bundles([[0, 1]]) if bundles is None else bundles,
        rider_modes=np.array([2, 2], dtype=np.int64),
        rider_capacities=np.array([9, 9], dtype=np.int64),
        rider_free_s=np.zeros(2, dtype=np.int64),
        rider_serves=np.ones((2, 1), dtype=np.bool_),
        rider_shop_s=np.zeros((2, 1), dtype=np.int64),
        shift_starts_s=starts,
        shift_ends_s=ends,
        order_placed_s=np.zeros(2, dtype=np.int64),
        order_promised_s=np.full(2, 1800, dtype=np.int64),
        deferral_costs=np.full(2, 10_000, dtype=np.int64),
        now_s=0,
        pickup_s=60,
        riders_per_bundle=2,
        rider_weight=rider_weight,
        rider_quota_left=None if quota_left is None else np.array(quota_left, dtype=np.int64),
        extra_order_cost=extra_order_cost,
    )


def test_orders_beyond_a_riders_pay_quota_cost_extra_order_cost_each() -> None:
    """Rider 0 has no quota left (both orders cost extra), rider 1 one order (one costs extra)."""
    free = _price_one_bundle_two_riders(None, 0)
    paid = _price_one_bundle_two_riders([0, 1], 500)
    by_rider_free = dict(zip(free.riders.tolist(), free.costs.tolist(), strict=True))
    by_rider_paid = dict(zip(paid.riders.tolist(), paid.costs.tolist(), strict=True))
    assert by_rider_paid[0] - by_rider_free[0] == 2 * 500
    assert by_rider_paid[1] - by_rider_free[1] == 500
    assert _price_one_bundle_two_riders([5, 5], 500).costs.tolist() == free.costs.tolist()


def _model_by_the_book(pairs: Pairs, bundles: Bundles, hint: np.ndarray) -> str:
    """The choice model written with CP-SAT's plain API, as text without variable names."""
    model = cp_model.CpModel()
    chosen = [model.new_bool_var(f"p{p}") for p in range(pairs.n_pairs)]
    by_order: dict[int, list[cp_model.IntVar]] = {}
    by_rider: dict[int, list[cp_model.IntVar]] = {}
    for p, var in enumerate(chosen):
        by_rider.setdefault(int(pairs.riders[p]), []).append(var)
        for order in bundles.orders[pairs.bundles[p]]:
            if order >= 0:
                by_order.setdefault(int(order), []).append(var)
    for groups in (by_order, by_rider):
        for key in sorted(groups):
            if len(groups[key]) > 1:
                model.add_at_most_one(groups[key])
    model.minimize(cp_model.LinearExpr.weighted_sum(chosen, pairs.costs.tolist()))
    for p, var in enumerate(chosen):
        model.add_hint(var, bool(hint[p]))
    return re.sub(r'\s*name: "p\d+"', "", str(model.proto))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_choice_model_is_the_model_the_plain_api_builds(seed: int) -> None:
    """The proto written in bulk equals, field for field, the one the plain API writes."""
    rng = np.random.default_rng(seed)
    n_orders, n_riders, n_bundles, n_pairs = 40, 12, 60, 300
    members = [
        sorted(rng.choice(n_orders, size=int(rng.integers(1, 4)), replace=False).tolist())
        for _ in range(n_bundles)
    ]
    bundles = _bundles(members)
    pairs = _pairs(
        bundles=rng.integers(0, n_bundles, n_pairs).tolist(),
        riders=rng.integers(0, n_riders, n_pairs).tolist(),
        costs=rng.integers(-(10**6), 10**5, n_pairs).tolist(),
    )
    hint = (rng.random(n_pairs) < 0.1).astype(np.int64)
    model = _choice_model(bundles.orders[pairs.bundles], pairs.riders, pairs.costs, hint)
    assert str(model.proto) == _model_by_the_book(pairs, bundles, hint)


def _chains(firsts: list[int], bundles: list[int], costs: list[int]) -> Chains:
    zeros = np.zeros(len(firsts), dtype=np.int64)
    return Chains(
        firsts=np.array(firsts, dtype=np.int64),
        bundles=np.array(bundles, dtype=np.int64),
        leave_s=zeros,
        arrive_shop_s=zeros,
        depart_s=zeros,
        costs=np.array(costs, dtype=np.int64),
    )


def test_a_chain_is_one_riders_two_trips_and_excludes_its_orders_elsewhere() -> None:
    """One rider, bundles {o0, o1}, {o0}, {o1}: the chain {o0} then {o1} (-13) beats the pair
    of both (-10) and is returned as index n_pairs + 0; a chain cannot be taken with another
    pair of its rider nor with a pair carrying one of its orders."""
    bundles = _bundles([[0, 1], [0], [1]])
    pairs = _pairs(bundles=[0, 1, 2], riders=[0, 0, 0], costs=[-10, -6, -5])
    chains = _chains(firsts=[1], bundles=[2], costs=[-13])
    chosen, method = solve_choice(
        pairs, bundles, 2, 1, seed=0, deterministic_limit=1.0, time_limit_s=5.0, chains=chains
    )
    assert (chosen.tolist(), method) == ([3], "cp-sat")
    # a second rider with a pair of o1: the chain's second order is taken, so the optimum is
    # the first rider's {o0} pair and the second rider's {o1} (-6 - 9) rather than the chain
    pairs = _pairs(bundles=[0, 1, 2, 2], riders=[0, 0, 0, 1], costs=[-10, -6, -5, -9])
    chosen, _ = solve_choice(
        pairs, bundles, 2, 2, seed=0, deterministic_limit=1.0, time_limit_s=5.0, chains=chains
    )
    assert sorted(chosen.tolist()) == [1, 3]


def test_each_rider_pays_its_own_price_of_a_second() -> None:
    """One two-stop bundle (drop-offs 300 and 600 s after departure) priced for two e-bikes,
    one price of a second each: rider time from leaving at 0 to the last drop-off at 660 s,
    at each rider's own price."""
    bundles = _bundles([[0, 1]])
    bundles.offsets_s[0, 2, :2] = [300, 600]
    bundles.sequences[0, 2, :2] = [0, 1]

    def costs_by_rider(rider_weight: int | np.ndarray) -> dict[int, int]:
        pairs = _price_one_bundle_two_riders(None, 0, bundles, rider_weight)
        return dict(zip(pairs.riders.tolist(), pairs.costs.tolist(), strict=True))

    each = costs_by_rider(np.array([10, 4], dtype=np.int64))
    assert each[0] - each[1] == (10 - 4) * 660
    assert costs_by_rider(10)[0] == each[0] and costs_by_rider(4)[1] == each[1]
