"""Play a scenario's day on a virtual clock with one dispatch policy.

An order is revealed at its ``placed_s``; the policy sees only what has happened (a
``Snapshot`` each tick); committed trips are executed by the timing rules of DESIGN.md, computed
here from the rules, never taken from the policy.

Three options serve benchmarks with other rules: ``metric`` (``router.travel.TravelMetric``)
selects the distance and the time unit of travel, ``ready_reveal`` hides each order's ready
time from the policy until it is reached, showing an estimate before (trips are always executed
with the true ready times), and ``pay`` tells the policy how riders are paid (``RiderPay``).
"""

from __future__ import annotations

import csv
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from router.dispatch import rider_time_share, riders_active
from router.kpis import compute_kpis, merged_shift_hours
from router.scenario import Scenario
from router.snapshot import NO_TIME, Decision, Policy, Snapshot, depart_within_shift, pad_shifts
from router.travel import DEFAULT_METRIC, MODE_INDEX, TravelMetric

PENDING, OPEN, COMMITTED, REJECTED = 0, 1, 2, 3
MIN_PREP_S = 60  # prep times shorter count as this in a shop's scale (no log of zero)

OUTCOME_COLUMNS = (
    "order_id",
    "shop_id",
    "status",
    "rider_id",
    "trip_id",
    "placed_s",
    "ready_s",
    "promised_s",
    "assigned_s",
    "depart_s",
    "delivered_s",
)
TRIP_COLUMNS = (
    "trip_id",
    "rider_id",
    "shop_id",
    "assigned_s",
    "arrive_shop_s",
    "depart_s",
    "order_ids",
)


@dataclass(frozen=True)
class ReadyReveal:
    """Ready times unknown to the policy until reached; before, an estimate stands in.

    The ready time of an order counts as reached at ``ready_s + offset_s`` (a rule set that
    shifts ready times, as the MDRP adapter does, sets the shift back here). Until then the
    policy sees an estimate learnt only from what has happened: the Kaplan-Meier curve of the
    preparation times (reached ready minus placement) of the orders placed so far, those not
    ready yet counting as censored at the time elapsed, with ``prior_preps_s`` as
    pseudo-orders of ``prior_weight`` in all (the belief before the day's own orders outweigh
    it). An order not ready after ``e`` seconds is assumed ready at the ``quantile`` of the
    prep times longer than ``e``; beyond the curve's last prep time, at the next tick.
    ``quantile=None`` picks it every tick as the newsvendor does (see ``scarcity_quantile``).
    Without any prep time (no prior, none reached): ``placed_s + typical_prep_s``. Never
    earlier than the next tick.

    Shops cook at different speeds: with ``shop_prior_weight`` > 0 each shop's prep times are
    a scale of one common curve, the shop's scale the geometric mean of its reached prep
    times over the day's, shrunk towards 1 by that many pseudo-orders; the curve is learnt
    from every order's time divided by its shop's scale.

    With ``rebind_at_shop`` a rider that has reached the shop of its committed trip and waits
    for food not ready yet may change the orders it picks up there (an operating variant the
    MDRP rules allow): the policy sees it free now at the shop, serving that shop only, and its
    trip's orders open again. Committed again to the same orders, it keeps its trip; committed
    to other orders of the shop, or its orders committed to another rider, it gives the trip
    up: its orders not taken go back to the pool and the ride to the shop stays its move.
    With ``rebind_other_shops`` it may also be sent from there to another shop's orders while
    orders queue (more open orders than riders on shift and free soon).
    """

    typical_prep_s: int = 0
    offset_s: int = 0
    quantile: float | None = 0.5
    prior_preps_s: tuple[int, ...] = ()
    prior_weight: float = 0.0
    shop_prior_weight: float = 0.0
    rebind_at_shop: bool = False
    rebind_other_shops: bool = False

    def shop_scales(
        self, reached_preps_s: np.ndarray, reached_shops: np.ndarray, n_shops: int
    ) -> np.ndarray:
        """Each shop's prep times over the day's typical one (1: no shop effect learnt yet)."""
        scales = np.ones(n_shops)
        if self.shop_prior_weight <= 0 or not reached_preps_s.size:
            return scales
        log_preps = np.log(np.maximum(reached_preps_s, MIN_PREP_S).astype(np.float64))
        above = log_preps - log_preps.mean()
        sums = np.bincount(reached_shops, weights=above, minlength=n_shops)
        counts = np.bincount(reached_shops, minlength=n_shops)
        return np.exp(sums / (counts + self.shop_prior_weight))

    def survival(
        self,
        reached_preps_s: np.ndarray,
        waited_s: np.ndarray,
        reached_shops: np.ndarray | None = None,
        waiting_shops: np.ndarray | None = None,
        n_shops: int = 0,
    ) -> PrepSurvival:
        """The Kaplan-Meier curve of prep times: reached ones are events, waiting ones censored
        (with shops given, of the times each divided by its shop's scale)."""
        scales = np.ones(n_shops)
        reached = reached_preps_s.astype(np.float64)
        waited = waited_s.astype(np.float64)
        if reached_shops is not None and waiting_shops is not None:
            scales = self.shop_scales(reached_preps_s, reached_shops, n_shops)
            reached, waited = reached / scales[reached_shops], waited / scales[waiting_shops]
        prior_s = np.asarray(self.prior_preps_s, dtype=np.float64)
        times_s = np.concatenate([prior_s, reached, waited])
        prior_each = self.prior_weight / prior_s.size if prior_s.size else 0.0
        weights = np.concatenate(
            [np.full(prior_s.size, prior_each), np.ones(reached_preps_s.size + waited_s.size)]
        )
        is_event = np.zeros(times_s.size, dtype=np.bool_)
        is_event[: prior_s.size + reached_preps_s.size] = True
        if not is_event.any():
            return PrepSurvival(np.zeros(0), np.zeros(0), scales)
        order = np.argsort(times_s, kind="stable")
        sorted_s, sorted_w = times_s[order], weights[order]
        event_s = np.unique(times_s[is_event])
        deaths = np.bincount(
            np.searchsorted(event_s, times_s[is_event]),
            weights=weights[is_event],
            minlength=event_s.size,
        )
        # weight still at risk at each event time: every prep (or wait) at least that long
        tail_w = np.concatenate([np.cumsum(sorted_w[::-1])[::-1], [0.0]])
        at_risk = tail_w[np.searchsorted(sorted_s, event_s, side="left")]
        alive = np.cumprod(1.0 - deaths / np.maximum(at_risk, 1e-12))
        return PrepSurvival(event_s, alive, scales)

    def estimates_s(
        self,
        placed_s: np.ndarray,
        now_s: int,
        tick_s: int,
        survival: PrepSurvival | None = None,
        quantile: float | None = None,
        shops: np.ndarray | None = None,
    ) -> np.ndarray:
        """The ready times the policy sees for orders not ready at ``now_s`` (of ``shops``)."""
        floor_s = now_s + tick_s - self.offset_s
        if survival is None or not survival.preps_s.size:
            return np.maximum(placed_s + self.typical_prep_s, floor_s)
        q = quantile if quantile is not None else (self.quantile or 0.5)
        preps_s, alive = survival.preps_s, survival.alive
        scale = (
            1.0 if shops is None or not survival.shop_scales.size else survival.shop_scales[shops]
        )
        elapsed_s = (now_s - placed_s) / scale
        passed = np.searchsorted(preps_s, elapsed_s, side="right")  # prep times <= elapsed
        alive_now = np.where(passed > 0, alive[np.maximum(passed - 1, 0)], 1.0)
        # the first prep time by which the share q of the orders still waiting is ready
        pick = np.searchsorted(-alive, -(alive_now * (1.0 - q)) - 1e-12, side="left")
        last_s = preps_s[-1]
        prep_s = np.where(
            pick < preps_s.size,
            preps_s[np.minimum(pick, preps_s.size - 1)],
            np.where(elapsed_s < last_s, last_s, elapsed_s),
        )
        prep_s = np.ceil(prep_s * scale).astype(np.int64)
        return np.maximum(placed_s + prep_s - self.offset_s, floor_s)


@dataclass(frozen=True)
class Relocate:
    """Idle riders sent ahead to a shop (an operating variant the MDRP rules allow).

    A rider with nothing to do (free, no trip committed or planned, on shift, not at a shop)
    rides to the shop within ``reach_s`` where the most orders were placed in the last
    ``window_s`` less the riders already there or riding there (ties: the nearest; none in
    reach: the nearest shop), learnt only from the orders placed so far. It leaves when the
    policy has decided the tick; until it arrives it cannot be sent elsewhere (the policy sees
    it free at the shop at its arrival). No move when it would arrive less than ``min_left_s``
    before its shift ends.
    """

    window_s: int = 1800
    reach_s: int = 600
    min_left_s: int = 900


@dataclass(frozen=True)
class PrepSurvival:
    """Prep times as a survival curve: ``alive[k]``, the share not ready by ``preps_s[k]``."""

    preps_s: np.ndarray  # sorted distinct prep times at which some order became ready
    alive: np.ndarray
    shop_scales: np.ndarray = field(default_factory=lambda: np.ones(0))  # curve times x scale


def scarcity_quantile(n_orders: int, n_riders: int) -> float:
    """Where to aim a rider's arrival in the ready-time distribution, by the newsvendor rule.

    Arriving at ``a`` for an order ready at ``R`` costs the order ``max(a, R)`` and the rider
    its wait ``max(0, R - a)``; the expected cost is least where ``P(R <= a) = w_rider /
    (w_rider + w_order)``. A rider-second is priced as the policy prices it (its own weight
    plus the click-to-door of the orders queued behind it), an order-second at the
    click-to-door weight: a rider waits for food readily when riders are plenty, hardly when
    orders queue for them.
    """
    return rider_time_share(max(0, n_orders - n_riders) / max(1, n_riders))


@dataclass(frozen=True)
class RiderPay:
    """Riders paid per order with an hourly guarantee, ``max(per_order * n, per_hour * h)``.

    Orders a rider carries beyond ``per_hour * h / per_order`` cost the shop ``per_order``
    each; the policy sees, for every rider, how many more it can carry within the guarantee
    earned so far (pro rata of its shift span elapsed) and prices each order beyond at
    ``extra_order_cost``.
    """

    per_order: float
    per_hour: float
    extra_order_cost: int

    def quota_left(
        self, now_s: int, shift_starts_s: np.ndarray, shift_ends_s: np.ndarray, carried: np.ndarray
    ) -> np.ndarray:
        """Orders each rider can still carry within the guarantee earned by ``now_s``."""
        first_s = np.where(shift_starts_s >= 0, shift_starts_s, np.iinfo(np.int64).max).min(axis=1)
        last_s = shift_ends_s.max(axis=1)
        span_s = np.maximum(last_s - first_s, 1).astype(np.float64)
        elapsed = np.clip((now_s - first_s) / span_s, 0.0, 1.0)
        guaranteed = self.per_hour * span_s / 3600.0 / self.per_order
        return (np.floor(guaranteed * elapsed) - carried).astype(np.int64)


@dataclass
class Trip:
    trip_id: str
    rider: int
    shop: int
    orders: list[int]
    assigned_s: int
    arrive_shop_s: int
    depart_s: int


@dataclass
class SimulationResult:
    scenario: Scenario
    policy: str
    statuses: list[str]
    order_riders: np.ndarray
    order_trips: list[str]
    assigned_s: np.ndarray
    depart_s: np.ndarray
    delivered_s: np.ndarray
    trips: list[Trip]
    kpis: dict[str, Any]
    refused_commits: int = 0
    reasons: dict[int, str] = field(default_factory=dict)  # last reason of each open order
    # ready revealed: trips given up at the shop before the pickup, because the food was not
    # ready before the rider's last departure or because the rider waiting there was given
    # other orders of the shop (``rebound_trips`` of them); the rider went to the shop, the
    # orders went back to the open pool
    abandoned_trips: list[Trip] = field(default_factory=list)
    rebound_trips: int = 0
    # idle riders sent ahead to a shop (``Relocate``): rides without orders
    relocations: list[Trip] = field(default_factory=list)


@dataclass
class _Pending:
    """A rider's committed trip whose bundle is not all ready yet (ready revealed only)."""

    trip: Trip
    legs_s: int  # from the departure to the last drop-off
    drop_distance_m: float
    release_s: int | None  # the food is too late for the rider's shifts: give up at this time


class _World:
    """The mutable state of the day: orders, riders, trips."""

    def __init__(
        self,
        scenario: Scenario,
        metric: TravelMetric = DEFAULT_METRIC,
        pay: RiderPay | None = None,
        reveal: ReadyReveal | None = None,
        relocation: Relocate | None = None,
    ) -> None:
        self.scenario = scenario
        self.relocation = relocation
        self.relocations: list[Trip] = []
        self.metric = metric
        self.pay = pay
        self.reveal = reveal
        self.pending: dict[int, _Pending] = {}  # rider -> its trip waiting for food
        self.abandoned_trips: list[Trip] = []
        # riders at the shop of their pending trip, shown free there (ReadyReveal.rebind_at_shop)
        self.rebindable: dict[int, _Pending] = {}
        # riders that gave a trip up and are still at its shop: (shop, arrived there at)
        self.at_shop: dict[int, tuple[int, int]] = {}
        self.rebound_trips = 0
        self.n_trips_made = 0
        self.all_placed_s = np.array([o.placed_s for o in scenario.orders], dtype=np.int64)
        self.all_ready_s = np.array([o.ready_s for o in scenario.orders], dtype=np.int64)
        self.rider_carried = np.zeros(len(scenario.riders), dtype=np.int64)
        rules = scenario.travel
        self.shop_index = {shop.id: i for i, shop in enumerate(scenario.shops)}
        self.speeds_mps = np.array(rules.speeds_by_mode(), dtype=np.float64)
        n_orders, n_riders = len(scenario.orders), len(scenario.riders)
        self.order_state = np.full(n_orders, PENDING, dtype=np.int64)
        self.order_shops = np.array([self.shop_index[o.shop] for o in scenario.orders], np.int64)
        self.order_riders = np.full(n_orders, -1, dtype=np.int64)
        self.order_trips = [""] * n_orders
        self.assigned_s = np.full(n_orders, NO_TIME, dtype=np.int64)
        self.depart_s = np.full(n_orders, NO_TIME, dtype=np.int64)
        self.delivered_s = np.full(n_orders, NO_TIME, dtype=np.int64)
        self.rider_modes = np.array([MODE_INDEX[r.mode] for r in scenario.riders], np.int64)
        self.rider_lats = np.array([r.lat for r in scenario.riders], dtype=np.float64)
        self.rider_lons = np.array([r.lon for r in scenario.riders], dtype=np.float64)
        self.rider_free_s = np.array([r.shifts[0][0] for r in scenario.riders], dtype=np.int64)
        self.rider_last_end_s = np.array([r.shifts[-1][1] for r in scenario.riders], np.int64)
        self.rider_serves = np.zeros((n_riders, len(scenario.shops)), dtype=np.bool_)
        for i, rider in enumerate(scenario.riders):
            for shop_id in rider.shops:
                self.rider_serves[i, self.shop_index[shop_id]] = True
        self.shift_starts_s, self.shift_ends_s = pad_shifts([r.shifts for r in scenario.riders])
        self.trips: list[Trip] = []
        self.distance_m = 0.0
        self.refused_commits = 0

    def travel(self, lat1: float, lon1: float, lat2: float, lon2: float, mode: int) -> int:
        return self.metric.travel_s(
            lat1, lon1, lat2, lon2, self.scenario.travel.detour, float(self.speeds_mps[mode])
        )

    def distance(self, lat1: float, lon1: float, lat2: float, lon2: float) -> float:
        return self.metric.distance_m(lat1, lon1, lat2, lon2, self.scenario.travel.detour)

    def admit(self, index: int) -> None:
        """Intake: accept the order, or reject it when outside the circle or invalid."""
        order = self.scenario.orders[index]
        shop = self.scenario.shops[self.order_shops[index]]
        walk_s = self.travel(shop.lat, shop.lon, order.lat, order.lon, MODE_INDEX["walk"])
        servers = self.rider_serves[:, self.order_shops[index]]
        capacities = np.array([r.capacity for r in self.scenario.riders], dtype=np.int64)
        valid = (
            order.size > 0
            and bool(servers.any())
            and order.size <= int(capacities[servers].max(initial=0))
        )
        inside = walk_s <= shop.circle_walk_min * 60
        self.order_state[index] = OPEN if inside and valid else REJECTED

    def snapshot(
        self, now_s: int, open_orders: np.ndarray, reveal: ReadyReveal | None, tick_s: int
    ) -> Snapshot:
        orders = self.scenario.orders
        riders = np.flatnonzero(self.rider_last_end_s >= now_s)
        rules = self.scenario.travel
        placed_s = np.array([orders[i].placed_s for i in open_orders], dtype=np.int64)
        ready_s = np.array([orders[i].ready_s for i in open_orders], dtype=np.int64)
        rider_free_s = self.rider_free_s[riders]
        rider_lats, rider_lons = self.rider_lats[riders], self.rider_lons[riders]
        rider_serves = self.rider_serves[riders]
        carried = self.rider_carried[riders]
        held_by = None
        self.rebindable = {}
        if reveal is not None:
            survival = self.prep_survival(now_s, reveal)
            self.forget_ready_pending(now_s, reveal)
            # riders free soon as the policy can know it: a rider waiting for food not ready
            # counts by the median of its food's ready time, never by the true one
            median_free_s = self.shown_free_s(now_s, riders, reveal, survival, 0.5, tick_s)
            n_active = self.active_riders(now_s, riders, median_free_s)
            other_shops = reveal.rebind_other_shops and open_orders.size > n_active
            quantile = reveal.quantile
            if quantile is None:
                quantile = scarcity_quantile(open_orders.size, n_active)
            if reveal.rebind_at_shop:
                self.rebindable = {
                    r: p
                    for r, p in self.pending.items()
                    if p.trip.arrive_shop_s <= now_s and self.rider_last_end_s[r] >= now_s
                }
            if self.rebindable:
                held = [i for p in self.rebindable.values() for i in p.trip.orders]
                open_orders = np.sort(np.concatenate([open_orders, held])).astype(np.int64)
                placed_s = self.all_placed_s[open_orders]
                ready_s = self.all_ready_s[open_orders]
            shops = self.order_shops[open_orders]
            estimate_s = reveal.estimates_s(placed_s, now_s, tick_s, survival, quantile, shops)
            ready_s = np.where(ready_s + reveal.offset_s <= now_s, ready_s, estimate_s)
            rider_free_s = self.shown_free_s(now_s, riders, reveal, survival, quantile, tick_s)
            if self.rebindable:
                rider_lats, rider_lons = rider_lats.copy(), rider_lons.copy()
                rider_serves, carried = rider_serves.copy(), carried.copy()
                held_by = np.full(open_orders.size, -1, dtype=np.int64)
                for k, rider in enumerate(riders.tolist()):
                    pending = self.rebindable.get(rider)
                    if pending is None:
                        continue
                    shop = self.scenario.shops[pending.trip.shop]
                    rider_free_s[k] = now_s
                    rider_lats[k], rider_lons[k] = shop.lat, shop.lon
                    if not other_shops:
                        rider_serves[k] = False
                        rider_serves[k, pending.trip.shop] = True
                    carried[k] -= len(pending.trip.orders)
                    held_by[np.searchsorted(open_orders, pending.trip.orders)] = k
        return Snapshot(
            now_s=now_s,
            detour=rules.detour,
            speeds_mps=self.speeds_mps,
            pickup_s=rules.pickup_s,
            handoff_s=rules.handoff_s,
            shop_lats=np.array([s.lat for s in self.scenario.shops], dtype=np.float64),
            shop_lons=np.array([s.lon for s in self.scenario.shops], dtype=np.float64),
            order_keys=open_orders.astype(np.int64),
            order_shops=self.order_shops[open_orders],
            order_lats=np.array([orders[i].lat for i in open_orders], dtype=np.float64),
            order_lons=np.array([orders[i].lon for i in open_orders], dtype=np.float64),
            order_sizes=np.array([orders[i].size for i in open_orders], dtype=np.int64),
            order_placed_s=placed_s,
            order_ready_s=ready_s,
            order_promised_s=np.array([orders[i].promised_s for i in open_orders], np.int64),
            rider_keys=riders.astype(np.int64),
            rider_modes=self.rider_modes[riders],
            rider_capacities=np.array(
                [self.scenario.riders[i].capacity for i in riders], dtype=np.int64
            ),
            rider_lats=rider_lats,
            rider_lons=rider_lons,
            rider_free_s=rider_free_s,
            rider_serves=rider_serves,
            rider_shift_starts_s=self.shift_starts_s[riders],
            rider_shift_ends_s=self.shift_ends_s[riders],
            metric=self.metric.metric,
            time_unit_s=self.metric.time_unit_s,
            rider_quota_left=None
            if self.pay is None
            else self.pay.quota_left(
                now_s,
                self.shift_starts_s[riders],
                self.shift_ends_s[riders],
                carried,
            ),
            extra_order_cost=0 if self.pay is None else self.pay.extra_order_cost,
            order_held_by=held_by,
        )

    def prep_survival(self, now_s: int, reveal: ReadyReveal) -> PrepSurvival:
        """The prep times learnt by ``now_s``: reached ones, and the waits of the others."""
        placed = (self.order_state != PENDING) & (self.order_state != REJECTED)
        reached_s = self.all_ready_s + reveal.offset_s
        done = placed & (reached_s <= now_s)
        waiting = placed & ~done
        return reveal.survival(
            reached_s[done] - self.all_placed_s[done],
            now_s - self.all_placed_s[waiting],
            self.order_shops[done],
            self.order_shops[waiting],
            len(self.scenario.shops),
        )

    def active_riders(self, now_s: int, riders: np.ndarray, free_s: np.ndarray) -> int:
        """Riders on shift and free soon (at ``free_s``), counted as the policy counts them
        (its queue rule)."""
        return int(
            riders_active(
                now_s, free_s, self.shift_starts_s[riders], self.shift_ends_s[riders]
            ).sum()
        )

    def forget_ready_pending(self, now_s: int, reveal: ReadyReveal) -> None:
        """Trips whose food is all ready stop waiting: the policy sees the truth from now."""
        for rider, pending in list(self.pending.items()):
            ready_s = int(self.all_ready_s[pending.trip.orders].max())
            if ready_s + reveal.offset_s <= now_s and pending.release_s is None:
                del self.pending[rider]

    def shown_free_s(
        self,
        now_s: int,
        riders: np.ndarray,
        reveal: ReadyReveal,
        survival: PrepSurvival,
        quantile: float,
        tick_s: int,
    ) -> np.ndarray:
        """When riders are free as the policy can know it: a rider waiting for food not ready
        yet is free at its trip's legs after the estimated ready time, not the true one."""
        free_s = self.rider_free_s[riders].copy()
        for k, rider in enumerate(riders.tolist()):
            pending = self.pending.get(rider)
            if pending is None:
                continue
            trip = pending.trip
            bundle = np.array(trip.orders, dtype=np.int64)
            true_s = self.all_ready_s[bundle]
            guess_s = reveal.estimates_s(
                self.all_placed_s[bundle],
                now_s,
                tick_s,
                survival,
                quantile,
                self.order_shops[bundle],
            )
            shown_s = np.where(true_s + reveal.offset_s <= now_s, true_s, guess_s)
            depart_s = max(trip.arrive_shop_s, int(shown_s.max())) + self.scenario.travel.pickup_s
            free_s[k] = depart_s + pending.legs_s
        return free_s

    def relocate(self, now_s: int, planned: set[int]) -> None:
        """Idle riders ride ahead to a shop where orders are being placed (``Relocate``)."""
        rules = self.relocation
        if rules is None:
            return
        shops = self.scenario.shops
        recent = (
            (self.order_state != PENDING)
            & (self.order_state != REJECTED)
            & (self.all_placed_s > now_s - rules.window_s)
        )
        score = np.bincount(self.order_shops[recent], minlength=len(shops)).astype(np.int64)
        for shop, _ in self.at_shop.values():
            score[shop] -= 1
        for rider in np.flatnonzero(self.rider_free_s <= now_s).tolist():
            if rider in planned or rider in self.pending or rider in self.at_shop:
                continue
            starts_s, ends_s = self.shift_starts_s[rider], self.shift_ends_s[rider]
            if depart_within_shift(now_s, starts_s, ends_s) != now_s:
                continue  # off shift now
            lat, lon = self.rider_lats[rider], self.rider_lons[rider]
            mode = int(self.rider_modes[rider])
            served = np.flatnonzero(self.rider_serves[rider])
            if not served.size:
                continue
            ride_s = np.array(
                [self.travel(lat, lon, shops[k].lat, shops[k].lon, mode) for k in served.tolist()],
                dtype=np.int64,
            )
            near = ride_s <= rules.reach_s
            if near.any():
                # most recent orders less riders there, then the nearest
                pick = int(np.lexsort((ride_s[near], -score[served[near]]))[0])
                shop, travel_s = int(served[near][pick]), int(ride_s[near][pick])
            else:
                pick = int(np.argmin(ride_s))
                shop, travel_s = int(served[pick]), int(ride_s[pick])
            arrive_s = now_s + travel_s
            if arrive_s > int(self.rider_last_end_s[rider]) - rules.min_left_s:
                continue
            score[shop] -= 1
            self.at_shop[rider] = (shop, arrive_s)
            if travel_s == 0:
                continue  # already there: no move
            rec = shops[shop]
            self.distance_m += self.distance(lat, lon, rec.lat, rec.lon)
            self.rider_lats[rider], self.rider_lons[rider] = rec.lat, rec.lon
            self.rider_free_s[rider] = arrive_s
            self.relocations.append(
                Trip(f"m{len(self.relocations) + 1}", rider, shop, [], now_s, arrive_s, arrive_s)
            )

    def release_abandoned(self, now_s: int) -> None:
        """Trips whose food cannot be ready before the rider's last departure, as soon as the
        policy could know it: the orders reopen, the rider stays at the shop."""
        for rider, pending in list(self.pending.items()):
            if pending.release_s is None or pending.release_s > now_s:
                continue
            self.give_up(rider, pending.release_s)

    def give_up(self, rider: int, free_s: int) -> None:
        """The rider gives its pending trip up at the shop: the orders reopen, the ride to the
        shop stays its move, and it is free there at ``free_s``."""
        pending = self.pending.pop(rider)
        trip = pending.trip
        for i in trip.orders:
            self.order_state[i] = OPEN
            self.order_riders[i] = -1
            self.order_trips[i] = ""
            self.assigned_s[i] = self.depart_s[i] = self.delivered_s[i] = NO_TIME
        shop = self.scenario.shops[trip.shop]
        self.rider_lats[rider], self.rider_lons[rider] = shop.lat, shop.lon
        self.rider_free_s[rider] = free_s
        self.rider_carried[rider] -= len(trip.orders)
        self.distance_m -= pending.drop_distance_m
        self.trips.remove(trip)
        self.abandoned_trips.append(trip)
        self.at_shop[rider] = (trip.shop, trip.arrive_shop_s)

    def commit(self, now_s: int, rider: int, order_list: list[int]) -> bool:
        """Execute a committed trip by the rules; refuse it (False) if it breaks one."""
        orders = self.scenario.orders
        spec = self.scenario.riders[rider]
        if not order_list or len(set(order_list)) != len(order_list):
            return False
        if any(self.order_state[i] != OPEN for i in order_list):
            return False
        shop = int(self.order_shops[order_list[0]])
        if (
            any(self.order_shops[i] != shop for i in order_list)
            or not self.rider_serves[rider, shop]
        ):
            return False
        if sum(orders[i].size for i in order_list) > spec.capacity:
            return False
        mode = int(self.rider_modes[rider])
        shop_rec = self.scenario.shops[shop]
        leave_s = max(now_s, int(self.rider_free_s[rider]))
        arrive_shop_s = leave_s + self.travel(
            self.rider_lats[rider], self.rider_lons[rider], shop_rec.lat, shop_rec.lon, mode
        )
        at_shop = self.at_shop.get(rider)
        if at_shop is not None and at_shop[0] == shop and self.reveal is not None:
            # still at the shop since at_shop[1], told now: it picks up no earlier than now,
            # the part of the pickup service before the ready time already served
            arrive_shop_s = max(at_shop[1], now_s - self.reveal.offset_s)
        earliest_s = max(arrive_shop_s, max(orders[i].ready_s for i in order_list))
        depart_s = int(
            depart_within_shift(
                earliest_s + self.scenario.travel.pickup_s,
                self.shift_starts_s[rider],
                self.shift_ends_s[rider],
            )
        )
        release_s = None
        if depart_s == NO_TIME:
            # ready revealed: refusing here would tell the policy the food is late; the rider
            # goes, waits and gives up when the policy could know it (see release_abandoned)
            release_s = self._give_up_s(now_s, rider, order_list, arrive_shop_s)
            if release_s is None:
                return False
            depart_s = earliest_s + self.scenario.travel.pickup_s
        self.pending.pop(rider, None)
        self.at_shop.pop(rider, None)
        self.n_trips_made += 1
        trip = Trip(
            f"t{self.n_trips_made}", rider, shop, list(order_list), now_s, arrive_shop_s, depart_s
        )
        self.trips.append(trip)
        lat, lon = self.rider_lats[rider], self.rider_lons[rider]
        self.distance_m += self.distance(lat, lon, shop_rec.lat, shop_rec.lon)
        lat, lon, clock_s = shop_rec.lat, shop_rec.lon, depart_s
        drop_distance_m = 0.0
        for i in order_list:
            order = orders[i]
            clock_s += self.travel(lat, lon, order.lat, order.lon, mode)
            clock_s += self.scenario.travel.handoff_s
            drop_distance_m += self.distance(lat, lon, order.lat, order.lon)
            lat, lon = order.lat, order.lon
            self.order_state[i] = COMMITTED
            self.order_riders[i] = rider
            self.order_trips[i] = trip.trip_id
            self.assigned_s[i] = now_s
            self.depart_s[i] = depart_s
            self.delivered_s[i] = clock_s
        self.distance_m += drop_distance_m
        self.rider_lats[rider], self.rider_lons[rider] = lat, lon
        self.rider_free_s[rider] = clock_s
        self.rider_carried[rider] += len(order_list)
        if self.reveal is not None and (
            release_s is not None
            or int(self.all_ready_s[order_list].max()) + self.reveal.offset_s > now_s
        ):
            self.pending[rider] = _Pending(trip, clock_s - depart_s, drop_distance_m, release_s)
        return True

    def _give_up_s(
        self, now_s: int, rider: int, order_list: list[int], arrive_shop_s: int
    ) -> int | None:
        """When the policy could first know that a trip it committed cannot depart within the
        rider's shifts (None: it can know now, and the commit is refused).

        The trip fails because the bundle is ready after ``last_end - pickup``. An order not
        ready at ``t`` is known to be ready after ``t - offset``: the policy can tell at
        ``last_end - pickup + offset``, or now if what it sees (the rider's arrival, the ready
        times already reached) already breaks the shift.
        """
        if self.reveal is None:
            return None
        offset_s, pickup_s = self.reveal.offset_s, self.scenario.travel.pickup_s
        ready_s = self.all_ready_s[order_list]
        seen_s = np.where(ready_s + offset_s <= now_s, ready_s, 0)
        seen_depart_s = max(arrive_shop_s, int(seen_s.max())) + pickup_s
        starts_s, ends_s = self.shift_starts_s[rider], self.shift_ends_s[rider]
        if depart_within_shift(seen_depart_s, starts_s, ends_s) == NO_TIME:
            return None
        release_s = int(self.rider_last_end_s[rider]) - pickup_s + offset_s
        return release_s if release_s > now_s else None

    def apply(self, now_s: int, snapshot: Snapshot, decision: Decision) -> None:
        used_riders: set[int] = set()
        for trip in decision.trips:
            if not trip.committed:
                continue
            rider = int(snapshot.rider_keys[trip.rider])
            order_list = [int(snapshot.order_keys[i]) for i in trip.orders]
            if rider in used_riders:
                self.refused_commits += 1
                continue
            held = self.rebindable.get(rider)
            if held is not None and sorted(held.trip.orders) == sorted(order_list):
                used_riders.add(rider)  # the same orders again: the rider keeps its trip
                continue
            self.rebind(now_s, rider, order_list)
            if not self.commit(now_s, rider, order_list):
                self.refused_commits += 1
                continue
            used_riders.add(rider)

    def rebind(self, now_s: int, rider: int, order_list: list[int]) -> None:
        """Riders waiting at a shop that a commit changes give their trips up: the rider itself
        and those whose orders it takes (ReadyReveal.rebind_at_shop)."""
        taken = set(order_list)
        for other, pending in list(self.rebindable.items()):
            if self.pending.get(other) is not pending:
                continue
            if other == rider or taken.intersection(pending.trip.orders):
                self.give_up(other, now_s)
                self.rebound_trips += 1


def simulate(
    scenario: Scenario,
    policy: Policy,
    tick_s: int = 30,
    *,
    metric: TravelMetric = DEFAULT_METRIC,
    ready_reveal: ReadyReveal | None = None,
    pay: RiderPay | None = None,
    relocate: Relocate | None = None,
) -> SimulationResult:
    """Play the day: reveal orders, tick the policy, execute commits, until nothing can move."""
    if tick_s <= 0:
        raise ValueError(f"tick_s: expected a positive integer, got {tick_s}")
    world = _World(scenario, metric, pay, ready_reveal, relocate)
    placed_s = np.array([o.placed_s for o in scenario.orders], dtype=np.int64)
    reveal_order = np.argsort(placed_s, kind="stable")
    next_reveal = 0
    last_shift_end_s = int(world.rider_last_end_s.max(initial=-1))
    tick_ms: list[float] = []
    reasons: dict[int, str] = {}
    now_s = 0
    while True:
        while next_reveal < len(reveal_order) and placed_s[reveal_order[next_reveal]] <= now_s:
            world.admit(int(reveal_order[next_reveal]))
            next_reveal += 1
        world.release_abandoned(now_s)
        open_orders = np.flatnonzero(world.order_state == OPEN)
        planned: set[int] = set()
        if open_orders.size and now_s <= last_shift_end_s:
            snapshot = world.snapshot(now_s, open_orders, ready_reveal, tick_s)
            started = time.perf_counter()
            decision = policy.decide(snapshot)
            tick_ms.append((time.perf_counter() - started) * 1000.0)
            world.apply(now_s, snapshot, decision)
            for index, reason in decision.reasons.items():
                reasons[int(snapshot.order_keys[index])] = reason
            planned = {int(snapshot.rider_keys[t.rider]) for t in decision.trips if not t.committed}
        if now_s <= last_shift_end_s:
            world.relocate(now_s, planned)
        idle = not open_orders.size and not any(
            p.release_s is not None for p in world.pending.values()
        )
        if now_s >= scenario.horizon_s and (idle or now_s > last_shift_end_s):
            break
        if relocate is not None and now_s < last_shift_end_s:
            now_s += tick_s  # idle riders may ride ahead at any tick
        elif idle and next_reveal < len(reveal_order):
            # Nothing to decide until the next order arrives: jump to the tick that reveals it.
            next_placed_s = int(placed_s[reveal_order[next_reveal]])
            now_s = max(now_s + tick_s, -(-next_placed_s // tick_s) * tick_s)
        elif idle:
            now_s = max(now_s + tick_s, -(-scenario.horizon_s // tick_s) * tick_s)
        else:
            now_s += tick_s
    return _result(world, policy.name, tick_ms, reasons)


def _result(
    world: _World, policy: str, tick_ms: list[float], reasons: dict[int, str]
) -> SimulationResult:
    scenario = world.scenario
    status_names = {
        OPEN: "undelivered",
        PENDING: "undelivered",
        COMMITTED: "delivered",
        REJECTED: "rejected",
    }
    statuses = [status_names[int(s)] for s in world.order_state]
    placed_s = np.array([o.placed_s for o in scenario.orders], dtype=np.int64)
    ready_s = np.array([o.ready_s for o in scenario.orders], dtype=np.int64)
    promised_s = np.array([o.promised_s for o in scenario.orders], dtype=np.int64)
    lower_bound_s = _lower_bounds_s(world, np.maximum(placed_s, ready_s))
    hours = sum(merged_shift_hours(r.shifts, scenario.horizon_s) for r in scenario.riders)
    kpis = compute_kpis(
        statuses=statuses,
        placed_s=placed_s,
        promised_s=promised_s,
        delivered_s=world.delivered_s,
        lower_bound_s=lower_bound_s,
        orders_in_trips=sum(len(t.orders) for t in world.trips),
        n_trips=len(world.trips),
        rider_hours=hours,
        rider_distance_m=world.distance_m,
        tick_ms=tick_ms,
        policy=policy,
        scenario=scenario.name,
    )
    last_shift_end_s = int(world.rider_last_end_s.max(initial=-1))
    open_reasons = {
        i: reasons.get(i, f"no rider on shift after {last_shift_end_s}")
        for i, status in enumerate(statuses)
        if status == "undelivered"
    }
    return SimulationResult(
        scenario,
        policy,
        statuses,
        world.order_riders,
        world.order_trips,
        world.assigned_s,
        world.depart_s,
        world.delivered_s,
        world.trips,
        kpis,
        world.refused_commits,
        open_reasons,
        world.abandoned_trips,
        world.rebound_trips,
        world.relocations,
    )


def _lower_bounds_s(world: _World, start_s: np.ndarray) -> np.ndarray:
    """Physical limit of each order: start + pickup + fastest travel + handoff."""
    scenario = world.scenario
    out = np.full(len(scenario.orders), NO_TIME, dtype=np.int64)
    for i, order in enumerate(scenario.orders):
        servers = np.flatnonzero(world.rider_serves[:, world.order_shops[i]])
        if not servers.size:
            continue
        fastest = int(max(world.rider_modes[servers], key=lambda m: world.speeds_mps[m]))
        shop = scenario.shops[world.order_shops[i]]
        out[i] = (
            int(start_s[i])
            + scenario.travel.pickup_s
            + world.travel(shop.lat, shop.lon, order.lat, order.lon, fastest)
            + scenario.travel.handoff_s
        )
    return out


def write_outputs(result: SimulationResult, out_dir: str | Path) -> None:
    """Write ``outcomes.csv``, ``trips.csv`` and ``kpis.json`` as DESIGN.md defines them."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    scenario = result.scenario

    def cell(value: int) -> str:
        return "" if value == NO_TIME else str(int(value))

    with (out / "outcomes.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(OUTCOME_COLUMNS)
        for i, order in enumerate(scenario.orders):
            delivered = result.statuses[i] == "delivered"
            rider = int(result.order_riders[i])
            writer.writerow(
                [
                    order.id,
                    order.shop,
                    result.statuses[i],
                    scenario.riders[rider].id if delivered else "",
                    result.order_trips[i] if delivered else "",
                    order.placed_s,
                    order.ready_s,
                    order.promised_s,
                    cell(result.assigned_s[i]),
                    cell(result.depart_s[i]),
                    cell(result.delivered_s[i]),
                ]
            )
    with (out / "trips.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(TRIP_COLUMNS)
        for trip in result.trips:
            writer.writerow(
                [
                    trip.trip_id,
                    scenario.riders[trip.rider].id,
                    scenario.shops[trip.shop].id,
                    trip.assigned_s,
                    trip.arrive_shop_s,
                    trip.depart_s,
                    " ".join(scenario.orders[i].id for i in trip.orders),
                ]
            )
    (out / "kpis.json").write_text(json.dumps(result.kpis, indent=2) + "\n", encoding="utf-8")
