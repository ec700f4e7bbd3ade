"""Tests of router/dispatch.py: QuarterhourPolicy decisions obey the DESIGN rules."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from router.dispatch import QuarterhourPolicy, warm_up
from router.snapshot import Decision, PlannedTrip, Snapshot, pad_shifts
from tests import naive

SHOPS = ((34.5965, 119.2215), (34.6010, 119.2290))
NOW_S = 36_000
TICK_S = 30
SPEEDS_MPS = (1.3, 4.0, 5.0)
PICKUP_S = 60
HANDOFF_S = 90

SETTINGS = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _make_snapshot(
    *,
    now_s: int,
    shops: list[tuple[float, float]],
    orders: list[dict[str, Any]],
    riders: list[dict[str, Any]],
) -> Snapshot:
    """A Snapshot from plain records (the defaults of DESIGN.md for travel)."""
    starts_s, ends_s = pad_shifts([tuple(r["shifts"]) for r in riders])
    serves = np.zeros((len(riders), len(shops)), dtype=np.bool_)
    for i, rider in enumerate(riders):
        serves[i, list(rider["serves"])] = True

    def floats(values: list[float]) -> np.ndarray:
        return np.array(values, dtype=np.float64)

    def ints(values: list[int]) -> np.ndarray:
        return np.array(values, dtype=np.int64)

    return Snapshot(
        now_s=now_s,
        detour=naive.DEFAULT_DETOUR,
        speeds_mps=floats(list(SPEEDS_MPS)),
        pickup_s=PICKUP_S,
        handoff_s=HANDOFF_S,
        shop_lats=floats([s[0] for s in shops]),
        shop_lons=floats([s[1] for s in shops]),
        order_keys=ints([100 + i for i in range(len(orders))]),
        order_shops=ints([o["shop"] for o in orders]),
        order_lats=floats([o["lat"] for o in orders]),
        order_lons=floats([o["lon"] for o in orders]),
        order_sizes=ints([o["size"] for o in orders]),
        order_placed_s=ints([o["placed_s"] for o in orders]),
        order_ready_s=ints([o["ready_s"] for o in orders]),
        order_promised_s=ints([o["promised_s"] for o in orders]),
        rider_keys=ints([200 + i for i in range(len(riders))]),
        rider_modes=ints([r["mode"] for r in riders]),
        rider_capacities=ints([r["capacity"] for r in riders]),
        rider_lats=floats([r["lat"] for r in riders]),
        rider_lons=floats([r["lon"] for r in riders]),
        rider_free_s=ints([r["free_s"] for r in riders]),
        rider_serves=serves,
        rider_shift_starts_s=starts_s,
        rider_shift_ends_s=ends_s,
    )


@st.composite
def snapshots(draw: st.DrawFn) -> Snapshot:
    """Random small snapshots: 1-2 shops, 0-30 orders, 1-6 riders with modes, shifts, masks."""
    n_shops = draw(st.integers(1, 2))
    shops = list(SHOPS[:n_shops])
    offset = st.floats(-0.005, 0.005, allow_nan=False)
    orders = []
    for _ in range(draw(st.integers(0, 30))):
        shop = draw(st.integers(0, n_shops - 1))
        placed_s = NOW_S - draw(st.integers(0, 1800))
        ready_s = placed_s + draw(st.integers(0, 1200))
        orders.append(
            {
                "shop": shop,
                "lat": shops[shop][0] + draw(offset),
                "lon": shops[shop][1] + draw(offset),
                "size": draw(st.sampled_from((1, 1, 1, 2, 2, 3, 4, 7))),
                "placed_s": placed_s,
                "ready_s": ready_s,
                "promised_s": placed_s + draw(st.integers(600, 2400)),
            }
        )
    riders = []
    for _ in range(draw(st.integers(1, 6))):
        home = shops[draw(st.integers(0, n_shops - 1))]
        shifts = []
        clock_s = NOW_S - draw(st.integers(0, 3600))
        for _ in range(draw(st.integers(1, 2))):
            start_s = clock_s + draw(st.integers(0, 1800))
            end_s = start_s + draw(st.integers(0, 7200))
            shifts.append((start_s, end_s))
            clock_s = end_s + draw(st.integers(0, 1800))
        riders.append(
            {
                "mode": draw(st.integers(0, 2)),
                "capacity": draw(st.integers(1, 6)),
                "lat": home[0] + draw(offset),
                "lon": home[1] + draw(offset),
                "free_s": NOW_S + draw(st.integers(-600, 1200)),
                "shifts": shifts,
                "serves": draw(
                    st.sets(
                        st.integers(0, n_shops - 1),
                        min_size=draw(st.sampled_from((0, 1, 1, 1))),
                        max_size=n_shops,
                    )
                ),
            }
        )
    return _make_snapshot(now_s=NOW_S, shops=shops, orders=orders, riders=riders)


def _point(lats: np.ndarray, lons: np.ndarray, i: int) -> naive.Point:
    return float(lats[i]), float(lons[i])


def _shifts(snapshot: Snapshot, rider: int) -> list[tuple[int, int]]:
    starts = snapshot.rider_shift_starts_s[rider]
    ends = snapshot.rider_shift_ends_s[rider]
    return [(int(s), int(e)) for s, e in zip(starts, ends, strict=True) if s >= 0]


def _expected_times(
    snapshot: Snapshot,
    rider: int,
    shop: int,
    orders: list[int],
    after: tuple[naive.Point, int] | None = None,
) -> dict[str, object] | None:
    """The trip's times recomputed with the naive twins from the snapshot alone (``after``:
    the rider's position and free time once its first trip is done, for a second trip)."""
    speed = SPEEDS_MPS[int(snapshot.rider_modes[rider])]
    detour = snapshot.detour
    shop_point = _point(snapshot.shop_lats, snapshot.shop_lons, shop)
    rider_point = _point(snapshot.rider_lats, snapshot.rider_lons, rider)
    free_s = int(snapshot.rider_free_s[rider])
    if after is not None:
        rider_point, free_s = after
    points = [shop_point] + [_point(snapshot.order_lats, snapshot.order_lons, o) for o in orders]
    legs_s = [
        naive.travel_s(naive.distance_m(a, b, detour), speed) for a, b in itertools.pairwise(points)
    ]
    return naive.trip_times_s(
        now_s=snapshot.now_s,
        free_s=free_s,
        to_shop_s=naive.travel_s(naive.distance_m(rider_point, shop_point, detour), speed),
        ready_s=[int(snapshot.order_ready_s[o]) for o in orders],
        pickup_s=snapshot.pickup_s,
        shifts=_shifts(snapshot, rider),
        legs_s=legs_s,
        handoff_s=snapshot.handoff_s,
    )


def _trip_tuples(decision: Decision) -> list[tuple[Any, ...]]:
    return [
        (
            t.rider,
            t.shop,
            t.orders.tolist(),
            t.leave_s,
            t.arrive_shop_s,
            t.depart_s,
            t.delivered_s.tolist(),
            t.committed,
        )
        for t in decision.trips
    ]


@SETTINGS
@given(snapshots())
def test_decision_obeys_the_rules(snapshot: Snapshot) -> None:
    """Every planned trip is disjoint, feasible and timed exactly by the DESIGN rules; a rider
    has at most a next trip and, tentative, the trip after it, timed from the first's last
    drop-off."""
    decision = QuarterhourPolicy(tick_s=TICK_S).decide(snapshot)
    seen_orders: set[int] = set()
    trips_of: dict[int, list[PlannedTrip]] = {}
    committed_orders: set[int] = set()
    for trip in decision.trips:
        orders = [int(o) for o in trip.orders]
        assert orders, "a trip carries at least one order"
        assert not seen_orders & set(orders), "an order is in two trips"
        assert len(set(orders)) == len(orders), "an order appears twice in one trip"
        seen_orders |= set(orders)
        earlier = trips_of.setdefault(trip.rider, [])
        assert len(earlier) < 2, "a rider has three trips"
        after = None
        if earlier:
            assert not trip.committed, "a rider's second trip is committed"
            first = earlier[0]
            last_drop = _point(snapshot.order_lats, snapshot.order_lons, int(first.orders[-1]))
            after = (last_drop, int(first.delivered_s[-1]))
        earlier.append(trip)
        assert {int(snapshot.order_shops[o]) for o in orders} == {trip.shop}
        assert snapshot.rider_serves[trip.rider, trip.shop], "the rider does not serve the shop"
        assert (
            sum(int(snapshot.order_sizes[o]) for o in orders)
            <= snapshot.rider_capacities[trip.rider]
        )
        expected = _expected_times(snapshot, trip.rider, trip.shop, orders, after)
        assert expected is not None, "no shift admits this trip's departure"
        assert trip.leave_s == expected["leave_s"]
        assert trip.arrive_shop_s == expected["arrive_shop_s"]
        assert trip.depart_s == expected["depart_s"]
        assert trip.delivered_s.tolist() == expected["delivered_s"]
        assert any(s <= trip.depart_s <= e for s, e in _shifts(snapshot, trip.rider))
        if trip.committed:
            assert snapshot.rider_free_s[trip.rider] < snapshot.now_s + TICK_S
            committed_orders |= set(orders)
    for order in range(snapshot.n_orders):
        if order not in committed_orders:
            assert decision.reasons.get(order), f"order {order} waits without a reason"


@settings(SETTINGS, max_examples=15)
@given(snapshots())
def test_same_snapshot_same_decision(snapshot: Snapshot) -> None:
    """Deciding twice on one snapshot gives the same trips and the same reasons."""
    first = QuarterhourPolicy(tick_s=TICK_S).decide(snapshot)
    second = QuarterhourPolicy(tick_s=TICK_S).decide(snapshot)
    assert _trip_tuples(first) == _trip_tuples(second)
    assert first.reasons == second.reasons


def _one_shop_snapshot(orders: list[tuple[float, float, int]], mode: int) -> Snapshot:
    """One shop, one rider of ``mode`` standing at it and free; orders as (lat, lon, ready_s)."""
    shop = SHOPS[0]
    return _make_snapshot(
        now_s=NOW_S,
        shops=[shop],
        orders=[
            {
                "shop": 0,
                "lat": lat,
                "lon": lon,
                "size": 1,
                "placed_s": NOW_S - 60,
                "ready_s": ready_s,
                "promised_s": NOW_S + 1740,
            }
            for lat, lon, ready_s in orders
        ],
        riders=[
            {
                "mode": mode,
                "capacity": 4,
                "lat": shop[0],
                "lon": shop[1],
                "free_s": 0,
                "shifts": [(0, 86_400)],
                "serves": {0},
            }
        ],
    )


def test_ready_order_with_free_rider_is_committed_at_once() -> None:
    """A ready order and a free rider at its shop give a committed trip leaving now."""
    decision = QuarterhourPolicy(tick_s=TICK_S).decide(
        _one_shop_snapshot([(34.6000, 119.2215, NOW_S)], mode=2)
    )
    assert [t.orders.tolist() for t in decision.trips] == [[0]]
    trip = decision.trips[0]
    assert trip.committed
    assert trip.leave_s == NOW_S
    assert trip.arrive_shop_s == NOW_S  # the rider stands at the shop
    assert trip.depart_s == NOW_S + PICKUP_S
    assert decision.reasons == {}


def test_batch_not_ready_for_twenty_minutes_is_not_committed() -> None:
    """Two nearby orders ready only in 20 minutes are held back with a reason about waiting."""
    ready_s = NOW_S + 1200
    snapshot = _one_shop_snapshot(
        [(34.6035, 119.2215, ready_s), (34.6037, 119.2217, ready_s)], mode=0
    )
    decision = QuarterhourPolicy(tick_s=TICK_S).decide(snapshot)
    assert not any(t.committed for t in decision.trips)
    for order in (0, 1):
        assert "ready" in decision.reasons[order]


def test_ready_order_does_not_wait_for_a_mate_twenty_minutes_away() -> None:
    """A ready order is committed at once when its neighbour is not ready for 20 minutes."""
    snapshot = _one_shop_snapshot(
        [(34.6000, 119.2215, NOW_S), (34.6002, 119.2217, NOW_S + 1200)], mode=2
    )
    decision = QuarterhourPolicy(tick_s=TICK_S).decide(snapshot)
    committed = [t.orders.tolist() for t in decision.trips if t.committed]
    assert committed == [[0]]
    assert decision.reasons.get(1)


def test_reason_of_an_order_not_ready_names_readiness() -> None:
    """An order left unplanned because it is not ready yet says so in its reason."""
    ready_s = NOW_S + 1200
    snapshot = _one_shop_snapshot(
        [(34.6000, 119.2215, ready_s), (34.6002, 119.2217, ready_s)], mode=2
    )
    decision = QuarterhourPolicy(tick_s=TICK_S).decide(snapshot)
    assert not decision.trips
    for order in (0, 1):
        reason = decision.reasons[order]
        assert "ready" in reason or "waiting" in reason, reason


def test_reason_of_a_trip_waiting_for_the_shift_does_not_claim_batching() -> None:
    """A lone ready order held until its only rider's shift starts is not said to wait to batch."""
    shop = SHOPS[0]
    snapshot = _make_snapshot(
        now_s=NOW_S,
        shops=[shop],
        orders=[
            {
                "shop": 0,
                "lat": 34.6035,
                "lon": 119.2215,
                "size": 1,
                "placed_s": NOW_S - 60,
                "ready_s": NOW_S,
                "promised_s": NOW_S + 1740,
            }
        ],
        riders=[
            {
                "mode": 0,
                "capacity": 4,
                "lat": shop[0],
                "lon": shop[1],
                "free_s": 0,
                "shifts": [(NOW_S + 1200, NOW_S + 7200)],
                "serves": {0},
            }
        ],
    )
    decision = QuarterhourPolicy(tick_s=TICK_S).decide(snapshot)
    assert [t.committed for t in decision.trips] == [False]
    assert "batch" not in decision.reasons[0], decision.reasons[0]


def test_warm_up_runs() -> None:
    """warm_up() compiles or loads every kernel of a tick without error."""
    warm_up()


def test_passing_over_a_late_order_gets_dearer_than_serving_it() -> None:
    """For a late order, the cost of deferring it grows faster than the cost of any trip."""
    import dataclasses

    from router.assign import CLICK_TO_DOOR_WEIGHT, LATE_WEIGHT, RIDER_WEIGHT
    from router.dispatch import _deferral_costs, _Geometry

    late = _one_shop_snapshot([(34.6000, 119.2215, NOW_S)], mode=2)
    late = dataclasses.replace(late, order_promised_s=np.array([NOW_S - 600], dtype=np.int64))
    later = dataclasses.replace(late, now_s=NOW_S + 600)
    costs = [int(_deferral_costs(s, _Geometry(s), 2.0, RIDER_WEIGHT)[0]) for s in (late, later)]
    # a trip's cost of the order grows by (click-to-door + lateness weight) a second at most
    assert costs[1] - costs[0] > (CLICK_TO_DOOR_WEIGHT + LATE_WEIGHT) * 600


def test_a_scarce_rider_keeps_the_promise_it_can_still_keep() -> None:
    """One e-bike carrying one order a trip, two orders ready 1 km apart on either side of the
    shop: A is a minute late already, B is on time only if it goes first. Seconds late alone
    would send A first (B then late too, 40 s fewer late in all); a late order's own cost
    sends B first, and A is late either way."""
    import dataclasses

    shop = SHOPS[0]
    north = 1000 / 111_195
    snapshot = _one_shop_snapshot(
        [(shop[0] + north, shop[1], NOW_S), (shop[0] - north, shop[1], NOW_S)], mode=2
    )
    promised_s = np.array([NOW_S - 60, NOW_S + 450], dtype=np.int64)
    capacity = np.array([1], dtype=np.int64)
    snapshot = dataclasses.replace(snapshot, order_promised_s=promised_s, rider_capacities=capacity)
    decision = QuarterhourPolicy(tick_s=TICK_S).decide(snapshot)
    first = next(trip for trip in decision.trips if trip.committed)
    assert first.orders.tolist() == [1]
    assert first.delivered_s[0] <= promised_s[1]


def test_rider_time_costs_its_own_weight_plus_the_queue_it_holds_up() -> None:
    """A rider-second costs the policy's own weight, plus the click-to-door of each order
    queued behind the rider: nothing at all for an idle courier paid by a guarantee."""
    from router.assign import CLICK_TO_DOOR_WEIGHT
    from router.dispatch import _Geometry, _rider_time_price

    one = _one_shop_snapshot([(34.6000, 119.2215, NOW_S)], mode=2)
    five = _one_shop_snapshot([(34.6000 + 0.0002 * i, 119.2215, NOW_S) for i in range(5)], mode=2)
    assert _rider_time_price(one, _Geometry(one), 0) == 0
    assert _rider_time_price(one, _Geometry(one), 1) == 1
    # one rider, five orders: four wait behind it
    assert _rider_time_price(five, _Geometry(five), 0) == 4 * CLICK_TO_DOOR_WEIGHT
    assert _rider_time_price(five, _Geometry(five), 1) == 1 + 4 * CLICK_TO_DOOR_WEIGHT


def test_a_walkers_second_costs_the_queue_less_than_an_ebikes() -> None:
    """Each rider's price of a second: its own weight, plus the queue's share scaled by its
    speed over the fastest rider's (a walker moves fewer orders a second through the queue)."""
    from router.dispatch import _rider_time_prices

    shop = SHOPS[0]
    riders = [
        {"mode": mode, "capacity": 4, "lat": shop[0], "lon": shop[1], "free_s": 0}
        | {"shifts": [(0, 86_400)], "serves": {0}}
        for mode in (2, 0, 1)  # e-bike 5.0, walker 1.3, bike 4.0 m/s
    ]
    snapshot = _make_snapshot(now_s=NOW_S, shops=[shop], orders=[], riders=riders)
    prices = _rider_time_prices(snapshot, own_weight=3, queue_price=1003)
    assert prices.tolist() == [1003, 3 + 260, 3 + 800]
    # no queue: every rider costs its own weight alone
    assert _rider_time_prices(snapshot, own_weight=3, queue_price=3).tolist() == [3, 3, 3]


def test_a_walker_takes_orders_the_ebikes_price_would_keep_from_it() -> None:
    """Four orders 200 m away, an e-bike back in 2 minutes and a walker at the shop. Priced
    like the e-bike's (the queue's full price), the walker's slow seconds lose to waiting for
    the e-bike and it stands idle; priced by its speed, it sets off with some of the orders."""
    from router.dispatch import _Geometry, _rider_time_price, _rider_time_prices

    shop = SHOPS[0]
    north = 200 / 111_195
    orders = [
        {"shop": 0, "lat": shop[0] + north + 0.0003 * i, "lon": shop[1], "size": 1}
        | {"placed_s": NOW_S - 60, "ready_s": NOW_S, "promised_s": NOW_S + 1740}
        for i in range(4)
    ]
    riders = [
        {"mode": mode, "capacity": 4, "lat": shop[0], "lon": shop[1], "free_s": free_s}
        | {"shifts": [(0, 86_400)], "serves": {0}}
        for mode, free_s in ((2, NOW_S + 120), (0, 0))
    ]
    snapshot = _make_snapshot(now_s=NOW_S, shops=[shop], orders=orders, riders=riders)
    queue_price = _rider_time_price(snapshot, _Geometry(snapshot), 1)
    assert _rider_time_prices(snapshot, 1, queue_price)[1] < queue_price
    decision = QuarterhourPolicy(tick_s=TICK_S).decide(snapshot)
    walking = [trip.orders.tolist() for trip in decision.trips if trip.rider == 1]
    assert walking and all(trip.committed for trip in decision.trips if trip.rider == 1)


def test_a_lone_rider_runs_the_ready_order_while_the_batch_cooks() -> None:
    """One e-bike: A ready now 500 m north, B and C ready in 12 minutes 600 m east. The rider
    takes A at once (committed) and plans B and C as its next trip, tentative, leaving from
    A's drop-off when A is delivered."""
    shop = SHOPS[0]
    north, east = 500 / 111_195, 600 / (111_195 * np.cos(np.radians(shop[0])))
    snapshot = _one_shop_snapshot(
        [
            (shop[0] + north, shop[1], NOW_S),
            (shop[0], shop[1] + east, NOW_S + 720),
            (shop[0] + 0.0005, shop[1] + east, NOW_S + 720),
        ],
        mode=2,
    )
    decision = QuarterhourPolicy(tick_s=TICK_S).decide(snapshot)
    first, second = decision.trips
    assert (first.orders.tolist(), first.committed) == ([0], True)
    assert (sorted(second.orders.tolist()), second.committed) == ([1, 2], False)
    assert second.leave_s == first.delivered_s[-1]
    assert decision.reasons[1].startswith(("no rider free until", "not ready until"))


def test_breaking_a_hold_costs_the_switch_price() -> None:
    """A pair costs ``switch_cost`` more per hold it breaks (the rider leaves orders it holds
    out, or takes orders another rider holds); keeping or adding to its own costs nothing."""
    from router.assign import Pairs
    from router.bundles import Bundles
    from router.dispatch import _price_switches

    def ints(*values: int) -> np.ndarray:
        return np.array(values, dtype=np.int64)

    orders = np.array([[0, -1], [1, -1], [0, 1]], dtype=np.int64)  # {0}, {1}, {0, 1}
    zeros = np.zeros((3, 1, 2), dtype=np.int64)
    bundles = Bundles(
        orders, ints(1, 1, 2), ints(0, 0, 0), ints(1, 1, 2), ints(0, 0, 0), zeros, zeros
    )
    pair_bundles, pair_riders = ints(0, 1, 2, 0, 1, 2), ints(0, 0, 0, 1, 1, 1)
    pairs = Pairs(pair_bundles, pair_riders, *(ints(0, 0, 0, 0, 0, 0),) * 3, ints(5, 5, 5, 5, 5, 5))
    priced = _price_switches(pairs, bundles, ints(0, -1), 2, 100)  # rider 0 holds order 0
    assert priced.costs.tolist() == [5, 105, 5, 105, 5, 105]


def test_bundles_reach_farther_when_orders_queue() -> None:
    """Bundle more when orders queue: two orders of one shop whose drop-offs are farther apart
    than the bundle radius go in one trip when they queue for a single rider (``scarce_reach``),
    and not without it; with riders to spare the limits are unchanged."""
    from router.bundles import BundleLimits
    from router.dispatch import bundle_reach, scarce_limits

    # drop-offs 1 km apart as the crow flies, 1.3 km by road: beyond the default 900 m
    apart = [(SHOPS[0][0] + 0.0045, SHOPS[0][1], NOW_S), (SHOPS[0][0] - 0.0045, SHOPS[0][1], NOW_S)]
    snapshot = _one_shop_snapshot(apart, mode=1)
    planned = QuarterhourPolicy(tick_s=TICK_S, scarce_reach=True).decide(snapshot)
    assert [sorted(t.orders.tolist()) for t in planned.trips] == [[0, 1]]
    fixed = QuarterhourPolicy(tick_s=TICK_S).decide(snapshot)
    assert all(t.orders.size == 1 for t in fixed.trips)

    limits = BundleLimits()
    assert bundle_reach(0.0) == 1.0
    assert scarce_limits(limits, 0.0) == limits
    reaches = [bundle_reach(q) for q in (0.5, 1.0, 3.0, 100.0)]
    assert reaches == sorted(reaches)
    assert reaches[0] > 1.0
    assert reaches[-1] < 3.0
    scaled = scarce_limits(limits, 1.0)
    assert scaled.radius_m == limits.radius_m * reaches[1]
    assert scaled.max_stops == limits.max_stops and scaled.neighbours == limits.neighbours
