"""The Quarterhour policy: a rolling-horizon dispatcher over candidate bundles.

Each tick plans one next trip for every rider on the roster (busy riders included, from the
time they are free), and for scarce riders the trip after it; it commits the trips whose rider
should leave now and keeps the rest tentative, to be re-optimised at the next tick. An order is
held back only when its plan says so: its trip waits for a batch-mate to be ready or for a
better rider to come free.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from router.assign import (
    CLICK_TO_DOOR_WEIGHT,
    LATE_ORDER_COST,
    LATE_WEIGHT,
    RIDER_WEIGHT,
    Chains,
    Pairs,
    price_chains,
    price_pairs,
    shortlist_pairs,
    solve_choice,
)
from router.bundles import BundleLimits, Bundles, build_bundles
from router.snapshot import BoolArray, Decision, IntArray, PlannedTrip, Snapshot
from router.travel import TravelMetric, distance_matrix_m, travel_s_matrices

ACTIVE_WITHIN_S = 1800  # riders free and on shift within this count towards the queue estimates


@dataclass
class QuarterhourPolicy:
    """Batch with Numba, assign with CP-SAT, commit only what must start now."""

    tick_s: int = 30
    limits: BundleLimits = field(default_factory=BundleLimits)
    riders_per_bundle: int = 8  # cheapest riders priced per bundle
    pairs_per_rider: int = 50  # the solver's shortlist: best pairs of each rider ...
    pairs_per_order: int = 2  # ... and of each order
    # The look-ahead of scarce riders: with at most ``chain_max_riders`` riders active, each
    # rider's ``chain_firsts`` best next trips are also priced followed by its
    # ``chain_seconds`` best trips after them (only the first can be committed). With few
    # riders a rider's next round is its own; it then runs a short trip with the food that is
    # ready rather than wait for a batch-mate's. Corner-store seeds 7-26: LB ratio 1.572 ->
    # 1.560, on-time 95.4 -> 95.8 %, undelivered 9 -> 6 (docs/benchmarks.md).
    chain_firsts: int = 8
    chain_seconds: int = 8
    chain_max_riders: int = 4
    batch_guess: float = 2.0  # orders a rider carries per round, for the queue estimate
    # the cost of one second of a rider's own time, before the queue it holds up: a shop's
    # riders cost by the hour; riders paid by a guarantee cost nothing more while idle
    rider_own_weight: int = RIDER_WEIGHT
    # breaking a hold (``Snapshot.order_held_by``): a rider waiting at a shop for orders it
    # holds is given others, or another rider takes them; priced on top of the plan's cost so
    # that a rider is moved only when another use is clearly better, never back and forth
    switch_cost: int = 0
    # bundle more when orders queue: the bundles' reach (drop-off radius, ready-time spread)
    # grows with the price of a rider's time (``scarce_reach``)
    scarce_reach: bool = False
    seed: int = 0
    deterministic_limit: float = 0.5  # CP-SAT work units: the normal, reproducible stop
    time_limit_s: float = 0.4  # hard wall-clock cap; the greedy plan stands in if it hits
    name: str = "quarterhour"
    last_method: str = ""

    def decide(self, snapshot: Snapshot) -> Decision:
        if snapshot.n_orders == 0 or snapshot.n_riders == 0:
            return Decision(reasons=dict.fromkeys(range(snapshot.n_orders), "no rider on shift"))
        geometry = _Geometry(snapshot)
        limits = self.limits
        if self.scarce_reach:
            limits = scarce_limits(limits, _queued_per_rider(snapshot, geometry))
        bundles = build_bundles(
            now_s=snapshot.now_s,
            order_shops=snapshot.order_shops,
            order_sizes=snapshot.order_sizes,
            order_ready_s=snapshot.order_ready_s,
            order_placed_s=snapshot.order_placed_s,
            order_promised_s=snapshot.order_promised_s,
            order_distances_m=geometry.order_order_m,
            shop_order_s=geometry.shop_order_s,
            order_order_s=geometry.order_order_s,
            shop_max_capacity=geometry.shop_max_capacity,
            modes_used=geometry.modes_used,
            pickup_s=snapshot.pickup_s,
            handoff_s=snapshot.handoff_s,
            limits=limits,
        )
        rider_weight = _rider_time_price(snapshot, geometry, self.rider_own_weight)
        deferral_costs = _deferral_costs(snapshot, geometry, self.batch_guess, rider_weight)
        rider_weights = _rider_time_prices(snapshot, self.rider_own_weight, rider_weight)
        pairs = price_pairs(
            bundles,
            rider_modes=snapshot.rider_modes,
            rider_capacities=snapshot.rider_capacities,
            rider_free_s=snapshot.rider_free_s,
            rider_serves=snapshot.rider_serves,
            rider_shop_s=geometry.rider_shop_s,
            shift_starts_s=snapshot.rider_shift_starts_s,
            shift_ends_s=snapshot.rider_shift_ends_s,
            order_placed_s=snapshot.order_placed_s,
            order_promised_s=snapshot.order_promised_s,
            deferral_costs=deferral_costs,
            now_s=snapshot.now_s,
            pickup_s=snapshot.pickup_s,
            riders_per_bundle=self.riders_per_bundle,
            rider_weight=rider_weights,
            rider_quota_left=snapshot.rider_quota_left,
            extra_order_cost=snapshot.extra_order_cost,
        )
        if snapshot.order_held_by is not None and self.switch_cost:
            pairs = _price_switches(
                pairs, bundles, snapshot.order_held_by, snapshot.n_riders, self.switch_cost
            )
        pairs = shortlist_pairs(
            pairs,
            bundles,
            snapshot.n_orders,
            snapshot.n_riders,
            per_rider=self.pairs_per_rider,
            per_order=self.pairs_per_order,
        )
        look_ahead = int(geometry.rider_active.sum()) <= self.chain_max_riders
        chains = price_chains(
            pairs,
            bundles,
            firsts_per_rider=self.chain_firsts if look_ahead else 0,
            seconds_per_first=self.chain_seconds,
            rider_modes=snapshot.rider_modes,
            rider_capacities=snapshot.rider_capacities,
            rider_serves=snapshot.rider_serves,
            shop_order_s=geometry.shop_order_s,
            shift_starts_s=snapshot.rider_shift_starts_s,
            shift_ends_s=snapshot.rider_shift_ends_s,
            order_placed_s=snapshot.order_placed_s,
            order_promised_s=snapshot.order_promised_s,
            deferral_costs=deferral_costs,
            pickup_s=snapshot.pickup_s,
            rider_weight=rider_weights,
            rider_quota_left=snapshot.rider_quota_left,
            extra_order_cost=snapshot.extra_order_cost,
        )
        chosen, self.last_method = solve_choice(
            pairs,
            bundles,
            snapshot.n_orders,
            snapshot.n_riders,
            seed=self.seed,
            deterministic_limit=self.deterministic_limit,
            time_limit_s=self.time_limit_s,
            chains=chains,
        )
        return self._decision(snapshot, geometry, bundles, pairs, chains, chosen)

    def _decision(
        self,
        snapshot: Snapshot,
        geometry: _Geometry,
        bundles: Bundles,
        pairs: Pairs,
        chains: Chains,
        chosen: IntArray,
    ) -> Decision:
        decision = Decision()
        horizon_s = snapshot.now_s + self.tick_s
        for choice in chosen:
            c = int(choice) - pairs.n_pairs
            p = int(choice) if c < 0 else int(chains.firsts[c])
            b, r = int(pairs.bundles[p]), int(pairs.riders[p])
            depart_s = int(pairs.depart_s[p])
            to_shop_s = int(geometry.rider_shop_s[r, bundles.shops[b]])
            # the latest leave that still gives this departure: waiting longer delays the trip
            latest_leave_s = depart_s - snapshot.pickup_s - to_shop_s
            leave_s = int(pairs.leave_s[p])
            committed = leave_s < horizon_s and latest_leave_s < horizon_s
            arrive_s = int(pairs.arrive_shop_s[p])
            trip = _trip(snapshot, bundles, b, r, leave_s, arrive_s, depart_s, committed)
            decision.trips.append(trip)
            if not committed:
                self._hold(decision, snapshot, bundles, trip, b, to_shop_s)
            if c >= 0:  # the trip after it: never committed now, planned again next tick
                b = int(chains.bundles[c])
                leave_s, arrive_s = int(chains.leave_s[c]), int(chains.arrive_shop_s[c])
                depart_s = int(chains.depart_s[c])
                trip = _trip(snapshot, bundles, b, r, leave_s, arrive_s, depart_s, False)
                decision.trips.append(trip)
                self._hold(decision, snapshot, bundles, trip, b, arrive_s - leave_s)
        planned = {int(o) for trip in decision.trips for o in trip.orders}
        for order in range(snapshot.n_orders):
            if order not in planned:
                decision.reasons[order] = _unplanned_reason(snapshot, geometry, order)
        return decision

    @staticmethod
    def _hold(
        decision: Decision,
        snapshot: Snapshot,
        bundles: Bundles,
        trip: PlannedTrip,
        bundle: int,
        to_shop_s: int,
    ) -> None:
        for order in trip.orders:
            decision.reasons[int(order)] = _held_reason(
                snapshot, trip, int(order), int(bundles.ready_s[bundle]), to_shop_s
            )


def _trip(
    snapshot: Snapshot,
    bundles: Bundles,
    bundle: int,
    rider: int,
    leave_s: int,
    arrive_shop_s: int,
    depart_s: int,
    committed: bool,
) -> PlannedTrip:
    """Rider ``rider``'s trip carrying ``bundle`` in its best sequence for the rider's mode."""
    mode, k = int(snapshot.rider_modes[rider]), int(bundles.n_stops[bundle])
    return PlannedTrip(
        rider=rider,
        shop=int(bundles.shops[bundle]),
        orders=bundles.sequences[bundle, mode, :k].copy(),
        leave_s=leave_s,
        arrive_shop_s=arrive_shop_s,
        depart_s=depart_s,
        delivered_s=depart_s + bundles.offsets_s[bundle, mode, :k],
        committed=committed,
    )


class _Geometry:
    """Distances and travel times of one snapshot, computed once per tick."""

    def __init__(self, snapshot: Snapshot) -> None:
        speeds = snapshot.speeds_mps
        metric = TravelMetric(snapshot.metric, snapshot.time_unit_s)
        self.order_order_m = distance_matrix_m(
            snapshot.order_lats,
            snapshot.order_lons,
            snapshot.order_lats,
            snapshot.order_lons,
            snapshot.detour,
            metric,
        )
        shop_order_m = distance_matrix_m(
            snapshot.shop_lats,
            snapshot.shop_lons,
            snapshot.order_lats,
            snapshot.order_lons,
            snapshot.detour,
            metric,
        )
        rider_shop_m = distance_matrix_m(
            snapshot.rider_lats,
            snapshot.rider_lons,
            snapshot.shop_lats,
            snapshot.shop_lons,
            snapshot.detour,
            metric,
        )
        self.modes_used = np.zeros(speeds.shape[0], dtype=np.bool_)
        self.modes_used[snapshot.rider_modes] = True
        unit_s = snapshot.time_unit_s
        self.order_order_s = travel_s_matrices(self.order_order_m, speeds, unit_s)
        self.shop_order_s = travel_s_matrices(shop_order_m, speeds, unit_s)
        all_rider_shop_s = travel_s_matrices(rider_shop_m, speeds, unit_s)
        self.rider_shop_s = all_rider_shop_s[snapshot.rider_modes, np.arange(snapshot.n_riders)]
        capacities = np.where(snapshot.rider_serves, snapshot.rider_capacities[:, None], 0)
        self.shop_max_capacity = capacities.max(axis=0).astype(np.int64)
        # the fastest mode serving each shop (by speed), for the cycle estimate
        speed_by_rider = np.where(snapshot.rider_serves, speeds[snapshot.rider_modes][:, None], 0.0)
        self.shop_fastest_mode = snapshot.rider_modes[speed_by_rider.argmax(axis=0)]
        # when each rider's current or next shift starts, and who works within the hour ahead
        self.rider_next_shift_s = next_shift_starts_s(
            snapshot.now_s, snapshot.rider_shift_starts_s, snapshot.rider_shift_ends_s
        )
        self.rider_active = riders_active(
            snapshot.now_s,
            snapshot.rider_free_s,
            snapshot.rider_shift_starts_s,
            snapshot.rider_shift_ends_s,
        )


def next_shift_starts_s(now_s: int, shift_starts_s: IntArray, shift_ends_s: IntArray) -> IntArray:
    """When each rider's current or next shift starts (far in the future: none left)."""
    upcoming = (shift_ends_s >= now_s) & (shift_starts_s >= 0)
    return np.where(upcoming, shift_starts_s, np.iinfo(np.int64).max // 4).min(axis=1)


def riders_active(
    now_s: int, free_s: IntArray, shift_starts_s: IntArray, shift_ends_s: IntArray
) -> BoolArray:
    """Riders on shift and free within ``ACTIVE_WITHIN_S``: those the queue estimates count."""
    next_start_s = next_shift_starts_s(now_s, shift_starts_s, shift_ends_s)
    return np.maximum(next_start_s, free_s) <= now_s + ACTIVE_WITHIN_S


def _deferral_costs(
    snapshot: Snapshot, geometry: _Geometry, batch_guess: float, rider_weight: int
) -> IntArray:
    """What leaving each order out of this tick's trips costs: its delivery some rounds later.

    The orders queue in urgency order for the riders serving their shop in order of when each
    is back at the shop, ``batch_guess`` orders a rider a round; an order left out of this
    round waits for its place in that queue and at least one round trip the length of its
    own. This makes the model bundle harder as the queue grows, and deliver alone when
    riders are plenty.
    """
    shops = snapshot.order_shops
    fastest = geometry.shop_fastest_mode[shops]
    one_way_s = geometry.shop_order_s[fastest, shops, np.arange(snapshot.n_orders)]
    serving = snapshot.rider_serves[:, shops]
    at_shop_s = np.maximum(
        np.maximum(snapshot.rider_free_s, snapshot.now_s)[:, None]
        + geometry.rider_shop_s[:, shops],
        geometry.rider_next_shift_s[:, None],
    )
    big = np.iinfo(np.int64).max // 4
    cycle_s = 2 * one_way_s + snapshot.pickup_s + snapshot.handoff_s
    # the queue: orders in urgency order take the riders in order of availability, each
    # rider carrying batch_guess orders a round
    urgency = np.argsort(np.argsort(snapshot.order_promised_s, kind="stable"), kind="stable")
    available = serving & geometry.rider_active[:, None]
    at_shop_sorted = np.sort(np.where(available, at_shop_s, big), axis=0)
    riders_serving = np.maximum(1, available.sum(axis=0))
    slot = (urgency / batch_guess).astype(np.int64)
    rounds = slot // riders_serving
    which = slot % riders_serving
    first_free_s = at_shop_sorted[which, np.arange(snapshot.n_orders)]
    first_free_s = np.where(first_free_s >= big, at_shop_s.min(axis=0), first_free_s)
    start_s = np.maximum(first_free_s + np.maximum(rounds, 1) * cycle_s, snapshot.order_ready_s)
    deferred_s = start_s + snapshot.pickup_s + one_way_s + snapshot.handoff_s
    costs = (
        CLICK_TO_DOOR_WEIGHT * (deferred_s - snapshot.order_placed_s)
        + LATE_WEIGHT * np.maximum(0, deferred_s - snapshot.order_promised_s)
        + LATE_ORDER_COST * (deferred_s > snapshot.order_promised_s)
        + rider_weight * cycle_s
        # no starvation: an order already late costs more to pass over with every tick, so an
        # order whose trips always lose to others' (a far drop-off) is served in the end
        + LATE_WEIGHT * np.maximum(0, snapshot.now_s - snapshot.order_promised_s)
    )
    return np.where(serving.any(axis=0), costs, 0).astype(np.int64)


def _queued_per_rider(snapshot: Snapshot, geometry: _Geometry) -> float:
    """Open orders beyond the active riders, per active rider (0 with riders to spare)."""
    n_riders = max(1, int(geometry.rider_active.sum()))
    return max(0, snapshot.n_orders - n_riders) / n_riders


def bundle_reach(queued_per_rider: float) -> float:
    """How much farther apart a bundle's orders may be when orders queue: 1 with riders to
    spare, rising to 3.

    A second drop-off (or a batch-mate's later food) worth ``d`` seconds costs the bundle's
    other order ``d`` of click-to-door and the rider ``d`` of its time, and saves a rider a
    trip of its own; it pays while ``d`` is below a share ``w / (w + c)`` of that trip, ``w``
    a rider-second's price (its own weight plus the click-to-door of the orders queued behind
    it, as ``router.simulate.scarcity_quantile`` prices it) and ``c`` an order-second's. The
    limits of ``BundleLimits`` hold with no queue; they grow with that share.
    """
    return rider_time_share(queued_per_rider) / rider_time_share(0.0)


def rider_time_share(queued_per_rider: float) -> float:
    """``w / (w + c)``: a rider-second's price ``w`` (the engine's rider weight plus the
    click-to-door of the orders queued behind it) over that and an order-second's ``c``. The
    newsvendor's quantile (``router.simulate.scarcity_quantile``) and the bundles' reach."""
    rider_w = RIDER_WEIGHT + CLICK_TO_DOOR_WEIGHT * queued_per_rider
    return rider_w / (rider_w + CLICK_TO_DOOR_WEIGHT)


def scarce_limits(limits: BundleLimits, queued_per_rider: float) -> BundleLimits:
    """``limits`` with the drop-off radius and the ready-time spread scaled by the reach."""
    reach = bundle_reach(queued_per_rider)
    if reach <= 1.0:
        return limits
    return replace(
        limits,
        radius_m=limits.radius_m * reach,
        ready_spread_s=round(limits.ready_spread_s * reach),
    )


def _rider_time_price(snapshot: Snapshot, geometry: _Geometry, own_weight: int) -> int:
    """The cost of one second of rider time: its own weight plus the queue it holds up.

    When more orders wait than riders can take in one round, every second a rider spends
    delays the orders queued behind it; its price is the click-to-door cost of that delay.
    """
    return own_weight + round(CLICK_TO_DOOR_WEIGHT * _queued_per_rider(snapshot, geometry))


def _rider_time_prices(snapshot: Snapshot, own_weight: int, queue_price: int) -> IntArray:
    """Each rider's price of a second: the queue's share scaled by the rider's speed.

    A second of a slow rider's (a walker's) time moves fewer orders through the queue than
    an e-bike's, so it holds the queue up less: priced like the fastest rider's, a walker
    would sit idle at the peaks while orders wait.
    """
    speeds_mps = snapshot.speeds_mps[snapshot.rider_modes]
    share = speeds_mps / max(float(speeds_mps.max()), 1e-9)
    return (own_weight + np.rint((queue_price - own_weight) * share)).astype(np.int64)


def _price_switches(
    pairs: Pairs, bundles: Bundles, order_held_by: IntArray, n_riders: int, switch_cost: int
) -> Pairs:
    """Each pair's cost plus ``switch_cost`` per hold it breaks: the rider leaves orders it
    holds out of the bundle, or the bundle takes orders another rider holds."""
    held = order_held_by[np.maximum(bundles.orders, 0)]
    held = np.where(bundles.orders >= 0, held, -1)[pairs.bundles]  # (n_pairs, max_stops)
    riders = pairs.riders[:, None]
    takes_others = ((held >= 0) & (held != riders)).any(axis=1)
    holds = np.bincount(order_held_by[order_held_by >= 0], minlength=n_riders)
    kept = (held == riders).sum(axis=1)
    leaves_own = kept < holds[pairs.riders]
    costs = pairs.costs + switch_cost * (takes_others.astype(np.int64) + leaves_own)
    return Pairs(
        pairs.bundles, pairs.riders, pairs.leave_s, pairs.arrive_shop_s, pairs.depart_s, costs
    )


def _held_reason(
    snapshot: Snapshot, trip: PlannedTrip, order: int, bundle_ready_s: int, to_shop_s: int
) -> str:
    """Why an order planned on a tentative trip is not on its way yet."""
    arrive_shop_s = trip.leave_s + to_shop_s
    if trip.depart_s > max(arrive_shop_s, bundle_ready_s) + snapshot.pickup_s:
        return f"rider's shift starts at {trip.depart_s}"
    if trip.leave_s > snapshot.now_s and arrive_shop_s >= bundle_ready_s:
        return f"no rider free until {trip.leave_s}"
    if snapshot.order_ready_s[order] < bundle_ready_s:
        return f"waiting to batch with an order ready at {bundle_ready_s}"
    return f"not ready until {bundle_ready_s}"


def _unplanned_reason(snapshot: Snapshot, geometry: _Geometry, order: int) -> str:
    shop = int(snapshot.order_shops[order])
    serving = np.flatnonzero(snapshot.rider_serves[:, shop])
    if not serving.size:
        return "no rider serves the shop"
    if snapshot.order_sizes[order] > snapshot.rider_capacities[serving].max():
        return "capacity"
    ends_s = snapshot.rider_shift_ends_s[serving]
    if ends_s.max() < snapshot.now_s:
        return "outside shifts"
    if snapshot.order_ready_s[order] > snapshot.now_s:
        return f"not ready until {snapshot.order_ready_s[order]}"
    next_free_s = int(np.maximum(snapshot.rider_free_s[serving], snapshot.now_s).min())
    if next_free_s > snapshot.now_s:
        return f"no rider free until {next_free_s}"
    return "queued behind more urgent orders"


def warm_up() -> None:
    """Compile (or load from cache) every kernel of a tick before the first real decision."""
    from router.snapshot import pad_shifts

    starts, ends = pad_shifts([((0, 3600),)])
    snapshot = Snapshot(
        now_s=0,
        detour=1.3,
        speeds_mps=np.array([1.3, 4.0, 5.0]),
        pickup_s=60,
        handoff_s=90,
        shop_lats=np.array([34.6]),
        shop_lons=np.array([119.2]),
        order_keys=np.arange(3, dtype=np.int64),
        order_shops=np.zeros(3, np.int64),
        order_lats=np.array([34.601, 34.602, 34.603]),
        order_lons=np.array([119.2] * 3),
        order_sizes=np.ones(3, np.int64),
        order_placed_s=np.zeros(3, np.int64),
        order_ready_s=np.zeros(3, np.int64),
        order_promised_s=np.full(3, 1800, np.int64),
        rider_keys=np.zeros(1, np.int64),
        rider_modes=np.array([2], np.int64),
        rider_capacities=np.array([4], np.int64),
        rider_lats=np.array([34.6]),
        rider_lons=np.array([119.2]),
        rider_free_s=np.zeros(1, np.int64),
        rider_serves=np.ones((1, 1), np.bool_),
        rider_shift_starts_s=starts,
        rider_shift_ends_s=ends,
    )
    QuarterhourPolicy().decide(snapshot)
