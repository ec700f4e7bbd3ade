"""Choose disjoint bundles and one rider for each: a set-packing model solved by CP-SAT.

A pair (bundle, rider) is the rider's next trip carrying that bundle. Its cost weighs lateness
first, then click-to-door, then rider time. Leaving an order out of every trip this tick is not
free: it costs an estimate of serving it one rider-cycle later, so the model bundles harder when
riders are scarce and delivers alone when they are not. A greedy plan is the solver's hint and
the fallback when the solver has no answer in time.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
from ortools.sat.python import cp_model

from router.bundles import Bundles
from router.jit import kernel
from router.snapshot import NO_TIME, BoolArray, IntArray, depart_within_shift

CLICK_TO_DOOR_WEIGHT = 2
LATE_WEIGHT = 20
RIDER_WEIGHT = 1

# One CpModel a thread, its proto rewritten for each model: building a CpModel costs about
# 1 ms (it binds its pre-PEP 8 method names one by one), a tenth of a small tick.
_MODELS = threading.local()


@dataclass(frozen=True)
class Pairs:
    bundles: IntArray
    riders: IntArray
    leave_s: IntArray  # when the rider can leave its position
    arrive_shop_s: IntArray
    depart_s: IntArray
    costs: IntArray  # net of the deferral costs of the bundle's orders (negative = worth it)

    @property
    def n_pairs(self) -> int:
        return int(self.bundles.shape[0])


@kernel
def _order_cost(delivered_s: int, placed_s: int, promised_s: int) -> int:
    return CLICK_TO_DOOR_WEIGHT * (delivered_s - placed_s) + LATE_WEIGHT * max(
        0, delivered_s - promised_s
    )


@kernel
def _price_pairs(
    bundle_shops: IntArray,
    bundle_sizes: IntArray,
    bundle_ready_s: IntArray,
    n_stops: IntArray,
    sequences: IntArray,
    offsets_s: IntArray,
    rider_modes: IntArray,
    rider_capacities: IntArray,
    rider_free_s: IntArray,
    rider_serves: BoolArray,
    rider_shop_s: IntArray,
    shift_starts_s: IntArray,
    shift_ends_s: IntArray,
    order_placed_s: IntArray,
    order_promised_s: IntArray,
    now_s: int,
    pickup_s: int,
    riders_per_bundle: int,
    rider_weight: int,
    rider_quota_left: IntArray,
    extra_order_cost: int,
) -> tuple[IntArray, IntArray, IntArray, IntArray, IntArray]:
    n_bundles = bundle_shops.shape[0]
    n_riders = rider_modes.shape[0]
    width = min(riders_per_bundle, n_riders)
    out_rider = np.full((n_bundles, width), -1, dtype=np.int64)
    out_cost = np.full((n_bundles, width), np.iinfo(np.int64).max, dtype=np.int64)
    out_leave = np.zeros((n_bundles, width), dtype=np.int64)
    out_arrive = np.zeros((n_bundles, width), dtype=np.int64)
    out_depart = np.zeros((n_bundles, width), dtype=np.int64)
    for b in range(n_bundles):
        shop = bundle_shops[b]
        for r in range(n_riders):
            if not rider_serves[r, shop] or rider_capacities[r] < bundle_sizes[b]:
                continue
            leave_s = max(now_s, rider_free_s[r])
            arrive_s = leave_s + rider_shop_s[r, shop]
            depart_s = depart_within_shift(
                max(arrive_s, bundle_ready_s[b]) + pickup_s, shift_starts_s[r], shift_ends_s[r]
            )
            if depart_s == NO_TIME:
                continue
            m = rider_modes[r]
            cost = 0
            for step in range(n_stops[b]):
                order = sequences[b, m, step]
                cost += _order_cost(
                    depart_s + offsets_s[b, m, step], order_placed_s[order], order_promised_s[order]
                )
            cost += rider_weight * (depart_s + offsets_s[b, m, n_stops[b] - 1] - leave_s)
            cost += extra_order_cost * max(0, n_stops[b] - max(0, rider_quota_left[r]))
            # keep the cheapest riders of this bundle (insertion into a short sorted row)
            slot = width
            while slot > 0 and cost < out_cost[b, slot - 1]:
                slot -= 1
            if slot == width:
                continue
            for k in range(width - 1, slot, -1):
                out_cost[b, k] = out_cost[b, k - 1]
                out_rider[b, k] = out_rider[b, k - 1]
                out_leave[b, k] = out_leave[b, k - 1]
                out_arrive[b, k] = out_arrive[b, k - 1]
                out_depart[b, k] = out_depart[b, k - 1]
            out_cost[b, slot] = cost
            out_rider[b, slot] = r
            out_leave[b, slot] = leave_s
            out_arrive[b, slot] = arrive_s
            out_depart[b, slot] = depart_s
    return out_rider, out_cost, out_leave, out_arrive, out_depart


def price_pairs(
    bundles: Bundles,
    *,
    rider_modes: IntArray,
    rider_capacities: IntArray,
    rider_free_s: IntArray,
    rider_serves: BoolArray,
    rider_shop_s: IntArray,
    shift_starts_s: IntArray,
    shift_ends_s: IntArray,
    order_placed_s: IntArray,
    order_promised_s: IntArray,
    deferral_costs: IntArray,
    now_s: int,
    pickup_s: int,
    riders_per_bundle: int,
    rider_weight: int = RIDER_WEIGHT,
    rider_quota_left: IntArray | None = None,
    extra_order_cost: int = 0,
) -> Pairs:
    """Feasible (bundle, rider) pairs worth more than deferring their orders, with times.

    ``rider_weight`` prices one second of the rider's time (travel, waiting, stops);
    ``extra_order_cost`` each order carried beyond the rider's ``rider_quota_left`` (its pay
    per order above an hourly guarantee, when riders are paid so).
    """
    if rider_quota_left is None:
        rider_quota_left = np.zeros(rider_modes.shape[0], dtype=np.int64)
        extra_order_cost = 0
    riders, costs, leave_s, arrive_s, depart_s = _price_pairs(
        bundles.shops,
        bundles.sizes,
        bundles.ready_s,
        bundles.n_stops,
        bundles.sequences,
        bundles.offsets_s,
        rider_modes,
        rider_capacities,
        rider_free_s,
        rider_serves,
        rider_shop_s,
        shift_starts_s,
        shift_ends_s,
        order_placed_s,
        order_promised_s,
        now_s,
        pickup_s,
        riders_per_bundle,
        rider_weight,
        np.ascontiguousarray(rider_quota_left, dtype=np.int64),
        int(extra_order_cost),
    )
    present = bundles.orders >= 0
    deferral = np.where(present, deferral_costs[np.where(present, bundles.orders, 0)], 0)
    net = costs - deferral.sum(axis=1, keepdims=True)
    keep = (riders >= 0) & (net < 0)
    bundle_index = np.broadcast_to(np.arange(bundles.n_bundles)[:, None], riders.shape)
    return Pairs(
        bundle_index[keep].astype(np.int64),
        riders[keep],
        leave_s[keep],
        arrive_s[keep],
        depart_s[keep],
        net[keep],
    )


@kernel
def _greedy(
    ranked: IntArray,
    pair_bundles: IntArray,
    pair_riders: IntArray,
    bundle_orders: IntArray,
    n_orders: int,
    n_riders: int,
) -> IntArray:
    order_used = np.zeros(n_orders, dtype=np.bool_)
    rider_used = np.zeros(n_riders, dtype=np.bool_)
    chosen = np.empty(ranked.shape[0], dtype=np.int64)
    n_chosen = 0
    for p in ranked:
        if rider_used[pair_riders[p]]:
            continue
        members = bundle_orders[pair_bundles[p]]
        clash = False
        for order in members:
            if order >= 0 and order_used[order]:
                clash = True
        if clash:
            continue
        rider_used[pair_riders[p]] = True
        for order in members:
            if order >= 0:
                order_used[order] = True
        chosen[n_chosen] = p
        n_chosen += 1
    return chosen[:n_chosen]


@kernel
def _shortlist(
    ranked: IntArray,
    pair_bundles: IntArray,
    pair_riders: IntArray,
    bundle_orders: IntArray,
    n_orders: int,
    n_riders: int,
    per_rider: int,
    per_order: int,
) -> BoolArray:
    keep = np.zeros(ranked.shape[0], dtype=np.bool_)
    rider_count = np.zeros(n_riders, dtype=np.int64)
    order_count = np.zeros(n_orders, dtype=np.int64)
    for p in ranked:
        wanted = rider_count[pair_riders[p]] < per_rider
        for order in bundle_orders[pair_bundles[p]]:
            if order >= 0 and order_count[order] < per_order:
                wanted = True
        if not wanted:
            continue
        keep[p] = True
        rider_count[pair_riders[p]] += 1
        for order in bundle_orders[pair_bundles[p]]:
            if order >= 0:
                order_count[order] += 1
    return keep


def greedy_choice(pairs: Pairs, bundles: Bundles, n_orders: int, n_riders: int) -> IntArray:
    """Pairs taken best net cost first while their orders and rider are still free."""
    ranked = np.argsort(pairs.costs, kind="stable").astype(np.int64)
    return _greedy(ranked, pairs.bundles, pairs.riders, bundles.orders, n_orders, n_riders)


def shortlist_pairs(
    pairs: Pairs, bundles: Bundles, n_orders: int, n_riders: int, *, per_rider: int, per_order: int
) -> Pairs:
    """The best pairs of each rider and of each order, plus the greedy plan's pairs.

    The solver then works on a model of a few hundred variables, which it solves to
    optimality in milliseconds, instead of timing out on thousands.
    """
    ranked = np.argsort(pairs.costs, kind="stable").astype(np.int64)
    keep = _shortlist(
        ranked,
        pairs.bundles,
        pairs.riders,
        bundles.orders,
        n_orders,
        n_riders,
        per_rider,
        per_order,
    )
    keep[_greedy(ranked, pairs.bundles, pairs.riders, bundles.orders, n_orders, n_riders)] = True
    return Pairs(
        pairs.bundles[keep],
        pairs.riders[keep],
        pairs.leave_s[keep],
        pairs.arrive_shop_s[keep],
        pairs.depart_s[keep],
        pairs.costs[keep],
    )


def solve_choice(
    pairs: Pairs,
    bundles: Bundles,
    n_orders: int,
    n_riders: int,
    *,
    seed: int,
    deterministic_limit: float,
    time_limit_s: float,
) -> tuple[IntArray, str]:
    """The chosen pairs and how they were found (``cp-sat``, ``cp-sat-feasible``, ``greedy``)."""
    greedy = greedy_choice(pairs, bundles, n_orders, n_riders)
    if pairs.n_pairs <= 1:
        return greedy, "greedy"
    in_greedy = np.zeros(pairs.n_pairs, dtype=np.int64)
    in_greedy[greedy] = 1
    model = _choice_model(pairs, bundles, in_greedy)
    solver = cp_model.CpSolver()
    solver.parameters.num_workers = 1
    solver.parameters.catch_sigint_signal = False  # leave Ctrl-C to the host process
    solver.parameters.random_seed = seed
    solver.parameters.max_deterministic_time = deterministic_limit
    solver.parameters.max_time_in_seconds = time_limit_s
    # probing and symmetry detection cost more than they save on these set-packing models:
    # without them the same optimum comes 1.5-2.5x sooner (dumped models of every preset and
    # of the largest MDRP instances, docs/mdrp.md)
    solver.parameters.cp_model_probing_level = 0
    solver.parameters.symmetry_level = 0
    status = solver.solve(model)
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return greedy, "greedy"
    values = np.array(solver.response_proto.solution, dtype=np.int64) > 0
    if int(pairs.costs[values].sum()) > int(pairs.costs[greedy].sum()):
        return greedy, "greedy"
    return np.flatnonzero(values).astype(np.int64), (
        "cp-sat" if status == cp_model.OPTIMAL else "cp-sat-feasible"
    )


def _choice_model(pairs: Pairs, bundles: Bundles, hint: IntArray) -> cp_model.CpModel:
    """One Boolean per pair, at most one chosen pair per order and per rider, least total cost.

    Written into the model's proto in bulk: the same model as ``new_bool_var``, one
    ``add_at_most_one`` per order then per rider (groups of two or more, pairs in index order),
    ``minimize`` and ``add_hint`` would build, at a quarter of their Python cost.
    """
    n_pairs = pairs.n_pairs
    pair_index = np.arange(n_pairs, dtype=np.int64)
    orders = bundles.orders[pairs.bundles]
    present = orders >= 0
    by_order = (orders[present], np.broadcast_to(pair_index[:, None], orders.shape)[present])
    model = getattr(_MODELS, "model", None)
    if model is None:
        model = _MODELS.model = cp_model.CpModel()
    proto = model.proto
    # parsing replaces the whole proto: nothing of the thread's previous model is left
    proto.parse_text_format("variables { domain: [0, 1] }" * n_pairs)
    for keys, members in (by_order, (pairs.riders, pair_index)):
        rank = np.lexsort((members, keys))
        cuts = np.flatnonzero(np.diff(keys[rank])) + 1
        for group in np.split(members[rank], cuts):
            if group.size > 1:
                proto.constraints.add().at_most_one.literals.extend(group.tolist())
    variables = pair_index.tolist()
    proto.objective.vars.extend(variables)
    proto.objective.coeffs.extend(pairs.costs.tolist())
    proto.objective.scaling_factor = 1
    proto.solution_hint.vars.extend(variables)
    proto.solution_hint.values.extend(hint.tolist())
    return model
