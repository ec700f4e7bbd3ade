"""Choose disjoint bundles and one rider for each: a set-packing model solved by CP-SAT.

A pair (bundle, rider) is the rider's next trip carrying that bundle. Its cost weighs lateness
first (an order late at all costs ``LATE_ORDER_COST``, a broken promise, then each second late),
then click-to-door, then rider time. Leaving an order out of every trip this tick is not
free: it costs an estimate of serving it one rider-cycle later, so the model bundles harder when
riders are scarce and delivers alone when they are not. A greedy plan is the solver's hint and
the fallback when the solver has no answer in time.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
from ortools.sat.python import cp_model

from router.bundles import LATE_ORDER_COST as SEQUENCE_LATE_ORDER_COST
from router.bundles import LATE_WEIGHT as SEQUENCE_LATE_WEIGHT
from router.bundles import Bundles
from router.jit import kernel
from router.snapshot import NO_TIME, BoolArray, IntArray, depart_within_shift

CLICK_TO_DOOR_WEIGHT = 2
# Lateness as the delivery sequences price it (``router.bundles``), in this module's units.
LATE_WEIGHT = CLICK_TO_DOOR_WEIGHT * SEQUENCE_LATE_WEIGHT
LATE_ORDER_COST = CLICK_TO_DOOR_WEIGHT * SEQUENCE_LATE_ORDER_COST
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


@dataclass(frozen=True)
class Chains:
    """A rider's next trip (a pair) and the trip after it: the look-ahead of scarce riders.

    Only the first trip can be committed; the second is planned so that the first is chosen
    knowing which orders the same rider can still carry on its way back.
    """

    firsts: IntArray  # the pair of the first trip
    bundles: IntArray  # the second trip's bundle
    leave_s: IntArray  # the second trip's: when the rider leaves its first trip's last drop-off
    arrive_shop_s: IntArray
    depart_s: IntArray
    costs: IntArray  # the first pair's net cost plus the second trip's, net of its deferrals

    @property
    def n_chains(self) -> int:
        return int(self.bundles.shape[0])

    @staticmethod
    def none() -> Chains:
        empty = np.zeros(0, dtype=np.int64)
        return Chains(empty, empty, empty, empty, empty, empty)


@kernel
def _order_cost(delivered_s: int, placed_s: int, promised_s: int) -> int:
    late_s = max(0, delivered_s - promised_s)
    return (
        CLICK_TO_DOOR_WEIGHT * (delivered_s - placed_s)
        + LATE_WEIGHT * late_s
        + (LATE_ORDER_COST if late_s > 0 else 0)
    )


@kernel
def _trip_cost(
    b: int,
    m: int,
    depart_s: int,
    leave_s: int,
    n_stops: IntArray,
    sequences: IntArray,
    offsets_s: IntArray,
    order_placed_s: IntArray,
    order_promised_s: IntArray,
    rider_weight: int,
) -> int:
    """Bundle ``b``'s orders delivered in mode ``m`` leaving the shop at ``depart_s``, and the
    rider's time from ``leave_s`` to its last drop-off."""
    cost = 0
    for step in range(n_stops[b]):
        order = sequences[b, m, step]
        cost += _order_cost(
            depart_s + offsets_s[b, m, step], order_placed_s[order], order_promised_s[order]
        )
    return cost + rider_weight * (depart_s + offsets_s[b, m, n_stops[b] - 1] - leave_s)


@kernel
def _cheapest_rows(
    n_rows: int, width: int
) -> tuple[IntArray, IntArray, IntArray, IntArray, IntArray]:
    """Empty rows of the ``width`` cheapest entries: ids (-1), costs, leave, arrive, depart."""
    ids = np.full((n_rows, width), -1, dtype=np.int64)
    costs = np.full((n_rows, width), np.iinfo(np.int64).max, dtype=np.int64)
    leave_s = np.zeros((n_rows, width), dtype=np.int64)
    arrive_s = np.zeros((n_rows, width), dtype=np.int64)
    depart_s = np.zeros((n_rows, width), dtype=np.int64)
    return ids, costs, leave_s, arrive_s, depart_s


@kernel
def _keep_cheapest(
    ids: IntArray,
    costs: IntArray,
    leaves_s: IntArray,
    arrives_s: IntArray,
    departs_s: IntArray,
    entry: int,
    cost: int,
    leave_s: int,
    arrive_s: int,
    depart_s: int,
) -> None:
    """Insert an entry into one row of the cheapest (sorted by cost, its width kept)."""
    width = costs.shape[0]
    slot = width
    while slot > 0 and cost < costs[slot - 1]:
        slot -= 1
    if slot == width:
        return
    for k in range(width - 1, slot, -1):
        ids[k], costs[k] = ids[k - 1], costs[k - 1]
        leaves_s[k], arrives_s[k], departs_s[k] = (
            leaves_s[k - 1],
            arrives_s[k - 1],
            departs_s[k - 1],
        )
    ids[slot], costs[slot] = entry, cost
    leaves_s[slot], arrives_s[slot], departs_s[slot] = leave_s, arrive_s, depart_s


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
    rider_weights: IntArray,
    rider_quota_left: IntArray,
    extra_order_cost: int,
) -> tuple[IntArray, IntArray, IntArray, IntArray, IntArray]:
    n_bundles = bundle_shops.shape[0]
    n_riders = rider_modes.shape[0]
    out = _cheapest_rows(n_bundles, min(riders_per_bundle, n_riders))
    out_rider, out_cost, out_leave, out_arrive, out_depart = out
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
            cost = _trip_cost(
                b,
                rider_modes[r],
                depart_s,
                leave_s,
                n_stops,
                sequences,
                offsets_s,
                order_placed_s,
                order_promised_s,
                rider_weights[r],
            )
            cost += extra_order_cost * max(0, n_stops[b] - max(0, rider_quota_left[r]))
            # keep the cheapest riders of this bundle
            _keep_cheapest(
                out_rider[b],
                out_cost[b],
                out_leave[b],
                out_arrive[b],
                out_depart[b],
                r,
                cost,
                leave_s,
                arrive_s,
                depart_s,
            )
    return out_rider, out_cost, out_leave, out_arrive, out_depart


def rider_weights_of(rider_weight: int | IntArray, n_riders: int) -> IntArray:
    """One price of a second of rider time per rider, from one for all or one each."""
    weights = np.broadcast_to(np.asarray(rider_weight, dtype=np.int64), (n_riders,))
    return np.ascontiguousarray(weights)


def bundle_deferral_costs(bundles: Bundles, deferral_costs: IntArray) -> IntArray:
    """What deferring each bundle's orders costs: their deferral costs summed."""
    present = bundles.orders >= 0
    deferred = np.where(present, deferral_costs[np.where(present, bundles.orders, 0)], 0)
    return deferred.sum(axis=1).astype(np.int64)


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
    rider_weight: int | IntArray = RIDER_WEIGHT,
    rider_quota_left: IntArray | None = None,
    extra_order_cost: int = 0,
) -> Pairs:
    """Feasible (bundle, rider) pairs worth more than deferring their orders, with times.

    ``rider_weight`` prices one second of the rider's time (travel, waiting, stops), one
    price for all riders or one each;
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
        rider_weights_of(rider_weight, rider_modes.shape[0]),
        np.ascontiguousarray(rider_quota_left, dtype=np.int64),
        int(extra_order_cost),
    )
    net = costs - bundle_deferral_costs(bundles, deferral_costs)[:, None]
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
def _price_chains(
    first_pairs: IntArray,
    pair_bundles: IntArray,
    pair_riders: IntArray,
    pair_depart_s: IntArray,
    bundle_orders: IntArray,
    bundle_shops: IntArray,
    bundle_sizes: IntArray,
    bundle_ready_s: IntArray,
    n_stops: IntArray,
    sequences: IntArray,
    offsets_s: IntArray,
    bundle_deferral: IntArray,
    rider_modes: IntArray,
    rider_capacities: IntArray,
    rider_serves: BoolArray,
    shop_order_s: IntArray,
    shift_starts_s: IntArray,
    shift_ends_s: IntArray,
    order_placed_s: IntArray,
    order_promised_s: IntArray,
    pickup_s: int,
    rider_weights: IntArray,
    rider_quota_left: IntArray,
    extra_order_cost: int,
    per_first: int,
) -> tuple[IntArray, IntArray, IntArray, IntArray, IntArray]:
    n_firsts = first_pairs.shape[0]
    n_bundles = bundle_shops.shape[0]
    out = _cheapest_rows(n_firsts, per_first)
    out_bundle, out_cost, out_leave, out_arrive, out_depart = out
    for f in range(n_firsts):
        p = first_pairs[f]
        first, r = pair_bundles[p], pair_riders[p]
        m, k_first = rider_modes[r], n_stops[pair_bundles[p]]
        last_order = sequences[first, m, k_first - 1]
        # the rider is free at its first trip's last drop-off and rides back from there
        leave_s = pair_depart_s[p] + offsets_s[first, m, k_first - 1]
        quota_left = max(0, rider_quota_left[r] - k_first)
        for b in range(n_bundles):
            shop = bundle_shops[b]
            if not rider_serves[r, shop] or rider_capacities[r] < bundle_sizes[b]:
                continue
            clash = False
            for i in range(k_first):
                for j in range(n_stops[b]):
                    if bundle_orders[first, i] == bundle_orders[b, j]:
                        clash = True
            if clash:
                continue
            arrive_s = leave_s + shop_order_s[m, shop, last_order]
            depart_s = depart_within_shift(
                max(arrive_s, bundle_ready_s[b]) + pickup_s, shift_starts_s[r], shift_ends_s[r]
            )
            if depart_s == NO_TIME:
                continue
            cost = _trip_cost(
                b,
                m,
                depart_s,
                leave_s,
                n_stops,
                sequences,
                offsets_s,
                order_placed_s,
                order_promised_s,
                rider_weights[r],
            )
            cost += extra_order_cost * max(0, n_stops[b] - quota_left) - bundle_deferral[b]
            if cost < 0:
                _keep_cheapest(
                    out_bundle[f],
                    out_cost[f],
                    out_leave[f],
                    out_arrive[f],
                    out_depart[f],
                    b,
                    cost,
                    leave_s,
                    arrive_s,
                    depart_s,
                )
    return out_bundle, out_cost, out_leave, out_arrive, out_depart


def price_chains(
    pairs: Pairs,
    bundles: Bundles,
    *,
    firsts_per_rider: int,
    seconds_per_first: int,
    rider_modes: IntArray,
    rider_capacities: IntArray,
    rider_serves: BoolArray,
    shop_order_s: IntArray,
    shift_starts_s: IntArray,
    shift_ends_s: IntArray,
    order_placed_s: IntArray,
    order_promised_s: IntArray,
    deferral_costs: IntArray,
    pickup_s: int,
    rider_weight: int | IntArray = RIDER_WEIGHT,
    rider_quota_left: IntArray | None = None,
    extra_order_cost: int = 0,
) -> Chains:
    """Each rider's ``firsts_per_rider`` best pairs, each followed by the ``seconds_per_first``
    best second trips worth more than deferring their orders (``shop_order_s``: travel times
    by mode, shop and order, the ride back from a drop-off being the same as the way out)."""
    if firsts_per_rider <= 0 or seconds_per_first <= 0 or pairs.n_pairs == 0:
        return Chains.none()
    if rider_quota_left is None:
        rider_quota_left = np.zeros(rider_modes.shape[0], dtype=np.int64)
        extra_order_cost = 0
    by_rider = np.lexsort((np.arange(pairs.n_pairs), pairs.costs, pairs.riders))
    riders_sorted = pairs.riders[by_rider]
    group_start = np.searchsorted(riders_sorted, riders_sorted, side="left")
    rank = np.arange(pairs.n_pairs) - group_start
    first_pairs = np.sort(by_rider[rank < firsts_per_rider]).astype(np.int64)
    seconds, costs, leave_s, arrive_s, depart_s = _price_chains(
        first_pairs,
        pairs.bundles,
        pairs.riders,
        pairs.depart_s,
        bundles.orders,
        bundles.shops,
        bundles.sizes,
        bundles.ready_s,
        bundles.n_stops,
        bundles.sequences,
        bundles.offsets_s,
        bundle_deferral_costs(bundles, deferral_costs),
        rider_modes,
        rider_capacities,
        rider_serves,
        shop_order_s,
        shift_starts_s,
        shift_ends_s,
        order_placed_s,
        order_promised_s,
        pickup_s,
        rider_weights_of(rider_weight, rider_modes.shape[0]),
        np.ascontiguousarray(rider_quota_left, dtype=np.int64),
        int(extra_order_cost),
        seconds_per_first,
    )
    keep = seconds >= 0
    firsts = np.broadcast_to(first_pairs[:, None], seconds.shape)[keep]
    return Chains(
        firsts.astype(np.int64),
        seconds[keep],
        leave_s[keep],
        arrive_s[keep],
        depart_s[keep],
        pairs.costs[firsts] + costs[keep],
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
    chains: Chains | None = None,
) -> tuple[IntArray, str]:
    """The chosen pairs and how they were found (``cp-sat``, ``cp-sat-feasible``, ``greedy``).

    With ``chains``, an index ``n_pairs + i`` stands for chain ``i``: its first pair and its
    second trip, instead of the pair alone.
    """
    chains = chains if chains is not None else Chains.none()
    greedy = greedy_choice(pairs, bundles, n_orders, n_riders)
    if pairs.n_pairs + chains.n_chains <= 1:
        return greedy, "greedy"
    width = bundles.orders.shape[1]
    orders = np.full((pairs.n_pairs + chains.n_chains, 2 * width), -1, dtype=np.int64)
    orders[: pairs.n_pairs, :width] = bundles.orders[pairs.bundles]
    orders[pairs.n_pairs :, :width] = bundles.orders[pairs.bundles[chains.firsts]]
    orders[pairs.n_pairs :, width:] = bundles.orders[chains.bundles]
    riders = np.concatenate([pairs.riders, pairs.riders[chains.firsts]])
    costs = np.concatenate([pairs.costs, chains.costs])
    hint = np.zeros(costs.shape[0], dtype=np.int64)
    hint[greedy] = 1
    model = _choice_model(orders, riders, costs, hint)
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
    if int(costs[values].sum()) > int(pairs.costs[greedy].sum()):
        return greedy, "greedy"
    return np.flatnonzero(values).astype(np.int64), (
        "cp-sat" if status == cp_model.OPTIMAL else "cp-sat-feasible"
    )


def _choice_model(
    orders: IntArray, riders: IntArray, costs: IntArray, hint: IntArray
) -> cp_model.CpModel:
    """One Boolean per choice (a pair or a chain; ``orders`` the orders it carries, padded
    with -1), at most one chosen per order and per rider, least total cost.

    Written into the model's proto in bulk: the same model as ``new_bool_var``, one
    ``add_at_most_one`` per order then per rider (groups of two or more, choices in index
    order), ``minimize`` and ``add_hint`` would build, at a quarter of their Python cost. The
    thread's one ``CpModel`` is reused: the model returned is valid until the next call.
    """
    n_choices = costs.shape[0]
    choice_index = np.arange(n_choices, dtype=np.int64)
    present = orders >= 0
    by_order = (orders[present], np.broadcast_to(choice_index[:, None], orders.shape)[present])
    model = getattr(_MODELS, "model", None)
    if model is None:
        model = _MODELS.model = cp_model.CpModel()
    proto = model.proto
    # parsing replaces the whole proto: nothing of the thread's previous model is left
    proto.parse_text_format("variables { domain: [0, 1] }" * n_choices)
    for keys, members in (by_order, (riders, choice_index)):
        rank = np.lexsort((members, keys))
        cuts = np.flatnonzero(np.diff(keys[rank])) + 1
        for group in np.split(members[rank], cuts):
            if group.size > 1:
                proto.constraints.add().at_most_one.literals.extend(group.tolist())
    variables = choice_index.tolist()
    proto.objective.vars.extend(variables)
    proto.objective.coeffs.extend(costs.tolist())
    proto.objective.scaling_factor = 1
    proto.solution_hint.vars.extend(variables)
    proto.solution_hint.values.extend(hint.tolist())
    return model
