"""Tests of the baseline policies ``nearest`` and ``ortools-vrp`` against the rules of DESIGN.md."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from router.policies.nearest import NearestPolicy
from router.policies.ortools_vrp import OrToolsVrpPolicy
from router.snapshot import Decision, Snapshot, pad_shifts
from router.travel import travel_s

TICK_S = 30
NOW_S = 36_000
SPEEDS_MPS = (1.3, 4.0, 5.0)
WALK, BIKE, EBIKE = 0, 1, 2
SHOPS = ((34.5965, 119.2215), (34.6010, 119.2290))


def make_snapshot(
    riders: list[dict],
    orders: list[dict],
    now_s: int = NOW_S,
    shops: tuple[tuple[float, float], ...] = SHOPS,
) -> Snapshot:
    """A snapshot from plain records (defaults fill what a test does not care about)."""
    n_shops = len(shops)
    serves = np.zeros((len(riders), n_shops), dtype=np.bool_)
    for r, rider in enumerate(riders):
        serves[r, list(rider.get("shops", range(n_shops)))] = True
    starts, ends = pad_shifts([tuple(r.get("shifts", ((0, 86_400),))) for r in riders])
    return Snapshot(
        now_s=now_s,
        detour=1.3,
        speeds_mps=np.array(SPEEDS_MPS),
        pickup_s=60,
        handoff_s=90,
        shop_lats=np.array([s[0] for s in shops]),
        shop_lons=np.array([s[1] for s in shops]),
        order_keys=np.arange(100, 100 + len(orders), dtype=np.int64),
        order_shops=np.array([o.get("shop", 0) for o in orders], dtype=np.int64),
        order_lats=np.array([o["lat"] for o in orders], dtype=np.float64),
        order_lons=np.array([o["lon"] for o in orders], dtype=np.float64),
        order_sizes=np.array([o.get("size", 1) for o in orders], dtype=np.int64),
        order_placed_s=np.array([o.get("placed_s", now_s - 60) for o in orders], dtype=np.int64),
        order_ready_s=np.array([o.get("ready_s", now_s) for o in orders], dtype=np.int64),
        order_promised_s=np.array(
            [o.get("promised_s", o.get("placed_s", now_s - 60) + 1800) for o in orders],
            dtype=np.int64,
        ),
        rider_keys=np.arange(10, 10 + len(riders), dtype=np.int64),
        rider_modes=np.array([r.get("mode", EBIKE) for r in riders], dtype=np.int64),
        rider_capacities=np.array([r.get("capacity", 4) for r in riders], dtype=np.int64),
        rider_lats=np.array([r.get("lat", shops[0][0]) for r in riders], dtype=np.float64),
        rider_lons=np.array([r.get("lon", shops[0][1]) for r in riders], dtype=np.float64),
        rider_free_s=np.array([r.get("free_s", now_s) for r in riders], dtype=np.int64),
        rider_serves=serves,
        rider_shift_starts_s=starts,
        rider_shift_ends_s=ends,
    )


# An independent, slow and obvious reading of the rules (pure Python, no router kernels).


def _travel_bounds_s(
    lat1: float, lon1: float, lat2: float, lon2: float, speed_mps: float, detour: float
) -> tuple[int, int]:
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    a = (
        math.sin((phi2 - phi1) / 2) ** 2
        + math.cos(phi1) * math.cos(phi2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2
    )
    metres = 2 * 6_371_008.8 * math.asin(min(1.0, math.sqrt(a))) * detour
    return math.ceil(metres / speed_mps - 1e-6), math.ceil(metres / speed_mps + 1e-6)


def _depart_in_shift_s(earliest_s: int, starts: np.ndarray, ends: np.ndarray) -> int | None:
    candidates = [
        max(earliest_s, int(a))
        for a, b in zip(starts, ends, strict=True)
        if a >= 0 and earliest_s <= b
    ]
    return min(candidates) if candidates else None


def check_decision(s: Snapshot, decision: Decision, tick_s: int = TICK_S) -> None:
    """Every committed trip follows the rules; every order not committed has a reason."""
    seen_orders: set[int] = set()
    committed_riders: set[int] = set()
    committed_orders: set[int] = set()
    for trip in decision.trips:
        orders = [int(o) for o in trip.orders]
        assert orders, "a trip carries orders"
        assert not seen_orders & set(orders), "each order in at most one trip"
        seen_orders.update(orders)
        if not trip.committed:
            continue
        r = trip.rider
        assert r not in committed_riders, "each rider at most one committed trip"
        committed_riders.add(r)
        committed_orders.update(orders)
        assert all(int(s.order_shops[o]) == trip.shop for o in orders), "one shop per trip"
        assert s.rider_serves[r, trip.shop], "the rider serves the shop"
        assert sum(int(s.order_sizes[o]) for o in orders) <= s.rider_capacities[r], "capacity"
        assert s.rider_free_s[r] <= s.now_s + tick_s, "the rider is free within the tick"
        speed = float(s.speeds_mps[s.rider_modes[r]])
        assert trip.leave_s == max(s.now_s, int(s.rider_free_s[r]))
        low, high = _travel_bounds_s(
            float(s.rider_lats[r]),
            float(s.rider_lons[r]),
            float(s.shop_lats[trip.shop]),
            float(s.shop_lons[trip.shop]),
            speed,
            s.detour,
        )
        assert trip.leave_s + low <= trip.arrive_shop_s <= trip.leave_s + high
        ready_s = max(int(s.order_ready_s[o]) for o in orders)
        depart_s = _depart_in_shift_s(
            max(trip.arrive_shop_s, ready_s) + s.pickup_s,
            s.rider_shift_starts_s[r],
            s.rider_shift_ends_s[r],
        )
        assert depart_s is not None, "the trip departs within a shift"
        assert trip.depart_s == depart_s
        assert len(trip.delivered_s) == len(orders)
        at_s = trip.depart_s
        lat, lon = float(s.shop_lats[trip.shop]), float(s.shop_lons[trip.shop])
        for o, delivered_s in zip(orders, trip.delivered_s.tolist(), strict=True):
            low, high = _travel_bounds_s(
                lat, lon, float(s.order_lats[o]), float(s.order_lons[o]), speed, s.detour
            )
            assert at_s + low + s.handoff_s <= delivered_s <= at_s + high + s.handoff_s
            at_s, lat, lon = delivered_s, float(s.order_lats[o]), float(s.order_lons[o])
    for o in range(s.n_orders):
        if o in committed_orders:
            assert o not in decision.reasons, "a committed order has no waiting reason"
        else:
            assert decision.reasons.get(o), f"order {o} is not committed and has no reason"


def _drop(dlat: float, dlon: float, shop: int = 0, **fields: int) -> dict:
    return {"lat": SHOPS[shop][0] + dlat, "lon": SHOPS[shop][1] + dlon, "shop": shop, **fields}


def fixture_snapshot() -> Snapshot:
    """Two shops, three riders (one busy, one walking), eight orders."""
    riders = [
        {"mode": WALK, "capacity": 2, "shops": [0]},
        {"mode": EBIKE, "capacity": 4, "lat": SHOPS[1][0], "lon": SHOPS[1][1]},
        {"mode": BIKE, "capacity": 3, "shops": [0], "free_s": NOW_S + 600},
    ]
    orders = [
        _drop(0.004, 0.002, placed_s=NOW_S - 300, ready_s=NOW_S - 60),
        _drop(-0.003, 0.004, size=2, placed_s=NOW_S - 200, ready_s=NOW_S + 120),
        _drop(0.002, -0.005, shop=1, placed_s=NOW_S - 250),
        _drop(0.006, 0.001, shop=1, size=3, placed_s=NOW_S - 100, ready_s=NOW_S + 300),
        _drop(-0.001, -0.002, placed_s=NOW_S - 50),
        _drop(0.003, 0.003, shop=1, placed_s=NOW_S - 20, ready_s=NOW_S + 900),
        _drop(0.005, -0.001, size=5, placed_s=NOW_S - 10),  # too big for every rider
        _drop(-0.004, -0.004, placed_s=NOW_S - 5),
    ]
    return make_snapshot(riders, orders)


@st.composite
def snapshots(draw: st.DrawFn) -> Snapshot:
    """Random small snapshots: 1-2 shops, 1-3 riders, 1-10 orders near the shops."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n_shops = int(rng.integers(1, 3))
    n_riders = int(rng.integers(1, 4))
    riders = []
    for _ in range(n_riders):
        shift_start = int(rng.choice([0, NOW_S + 900, NOW_S - 3600]))
        shift_end = int(rng.choice([86_400, NOW_S + 200, NOW_S - 100]))
        riders.append(
            {
                "mode": int(rng.integers(0, 3)),
                "capacity": int(rng.integers(1, 6)),
                "shops": sorted(set(rng.integers(0, n_shops, size=2).tolist())),
                "free_s": NOW_S + int(rng.choice([-500, 0, 20, 400])),
                "lat": SHOPS[0][0] + rng.uniform(-0.005, 0.005),
                "lon": SHOPS[0][1] + rng.uniform(-0.005, 0.005),
                "shifts": [(shift_start, max(shift_start, shift_end))],
            }
        )
    orders = []
    for _ in range(int(rng.integers(1, 11))):
        placed_s = NOW_S - int(rng.integers(0, 1200))
        orders.append(
            _drop(
                rng.uniform(-0.008, 0.008),
                rng.uniform(-0.008, 0.008),
                shop=int(rng.integers(0, n_shops)),
                size=int(rng.integers(1, 4)),
                placed_s=placed_s,
                ready_s=placed_s + int(rng.integers(0, 1500)),
            )
        )
    return make_snapshot(riders, orders, shops=SHOPS[:n_shops])


def test_nearest_fixture_follows_the_rules() -> None:
    """Nearest's committed trips on the fixture follow every rule and the rest have reasons."""
    s = fixture_snapshot()
    decision = NearestPolicy(tick_s=TICK_S).decide(s)
    check_decision(s, decision)
    assert decision.trips
    assert all(len(trip.orders) == 1 and trip.committed for trip in decision.trips)
    assert decision.reasons[6].startswith("capacity")


def test_nearest_takes_the_earliest_order_first() -> None:
    """With one free rider, nearest commits the earliest placed order, alone."""
    orders = [
        _drop(0.001, 0.001, placed_s=NOW_S - 100),
        _drop(0.004, 0.004, placed_s=NOW_S - 400),
        _drop(0.002, 0.001, placed_s=NOW_S - 300),
    ]
    s = make_snapshot([{"mode": BIKE, "capacity": 5}], orders)
    decision = NearestPolicy(tick_s=TICK_S).decide(s)
    check_decision(s, decision)
    assert [trip.orders.tolist() for trip in decision.trips] == [[1]]
    assert decision.reasons[0] == decision.reasons[2] == "no rider left this tick"


def test_nearest_picks_the_rider_who_delivers_earliest() -> None:
    """Nearest gives an order to the rider who delivers it first, not the first rider listed."""
    far = {"mode": WALK, "lat": SHOPS[0][0] + 0.01, "lon": SHOPS[0][1]}
    near = {"mode": EBIKE}
    s = make_snapshot([far, near], [_drop(0.003, 0.0)])
    decision = NearestPolicy(tick_s=TICK_S).decide(s)
    check_decision(s, decision)
    assert [trip.rider for trip in decision.trips] == [1]


def test_nearest_waits_for_a_busy_best_rider_and_lets_later_orders_go() -> None:
    """An order whose best rider is busy waits; a later order still takes a free rider."""
    busy_fast = {"mode": EBIKE, "shops": [0], "free_s": NOW_S + 120}
    free_slow = {"mode": WALK, "shops": [0, 1], "lat": SHOPS[1][0], "lon": SHOPS[1][1]}
    orders = [_drop(0.006, 0.0, placed_s=NOW_S - 300), _drop(0.001, 0.0, shop=1)]
    s = make_snapshot([busy_fast, free_slow], orders)
    decision = NearestPolicy(tick_s=TICK_S).decide(s)
    check_decision(s, decision)
    assert decision.reasons[0] == f"no rider free until {NOW_S + 120}"
    assert [(trip.rider, trip.orders.tolist()) for trip in decision.trips] == [(1, [1])]


def test_nearest_commits_a_rider_free_within_the_tick() -> None:
    """A rider free before the next tick may be committed; its trip starts when it is free."""
    s = make_snapshot([{"free_s": NOW_S + 20}], [_drop(0.002, 0.002)])
    decision = NearestPolicy(tick_s=TICK_S).decide(s)
    check_decision(s, decision)
    assert [trip.leave_s for trip in decision.trips] == [NOW_S + 20]


def test_nearest_respects_shifts() -> None:
    """A rider whose shifts are over is never given a trip; its order says why."""
    s = make_snapshot([{"shifts": [(0, NOW_S - 10)]}], [_drop(0.002, 0.002)])
    decision = NearestPolicy(tick_s=TICK_S).decide(s)
    assert decision.trips == []
    assert decision.reasons[0] == "outside shifts"


def test_nearest_departs_at_the_start_of_a_later_shift() -> None:
    """A trip whose rider's shift starts later departs at the shift start."""
    s = make_snapshot([{"shifts": [(NOW_S + 600, NOW_S + 3600)]}], [_drop(0.002, 0.002)])
    decision = NearestPolicy(tick_s=TICK_S).decide(s)
    check_decision(s, decision)
    assert [trip.depart_s for trip in decision.trips] == [NOW_S + 600]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(snapshots())
def test_nearest_always_follows_the_rules(s: Snapshot) -> None:
    """On random small snapshots nearest commits only one-order trips that follow the rules."""
    decision = NearestPolicy(tick_s=TICK_S).decide(s)
    check_decision(s, decision)
    assert all(len(trip.orders) == 1 for trip in decision.trips)


def naive_nearest(s: Snapshot, tick_s: int = TICK_S) -> list[tuple[int, int, int]]:
    """The slow, obvious nearest: (order, rider, delivered_s) of each commit, in order."""
    commits = []
    used: set[int] = set()
    for o in sorted(range(s.n_orders), key=lambda o: (int(s.order_placed_s[o]), o)):
        shop = int(s.order_shops[o])
        best: tuple[int, int] | None = None
        for r in range(s.n_riders):
            if r in used or not s.rider_serves[r, shop]:
                continue
            if s.rider_capacities[r] < s.order_sizes[o]:
                continue
            speed = float(s.speeds_mps[s.rider_modes[r]])
            arrive_s = max(s.now_s, int(s.rider_free_s[r])) + travel_s(
                float(s.rider_lats[r]),
                float(s.rider_lons[r]),
                float(s.shop_lats[shop]),
                float(s.shop_lons[shop]),
                s.detour,
                speed,
            )
            depart_s = _depart_in_shift_s(
                max(arrive_s, int(s.order_ready_s[o])) + s.pickup_s,
                s.rider_shift_starts_s[r],
                s.rider_shift_ends_s[r],
            )
            if depart_s is None:
                continue
            delivered_s = (
                depart_s
                + s.handoff_s
                + travel_s(
                    float(s.shop_lats[shop]),
                    float(s.shop_lons[shop]),
                    float(s.order_lats[o]),
                    float(s.order_lons[o]),
                    s.detour,
                    speed,
                )
            )
            if best is None or delivered_s < best[1]:
                best = (r, delivered_s)
        if best is not None and s.rider_free_s[best[0]] <= s.now_s + tick_s:
            used.add(best[0])
            commits.append((o, best[0], best[1]))
    return commits


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(snapshots())
def test_nearest_matches_its_naive_twin(s: Snapshot) -> None:
    """The nearest kernel commits exactly what the slow, obvious reading of the policy does."""
    decision = NearestPolicy(tick_s=TICK_S).decide(s)
    got = [(int(t.orders[0]), t.rider, int(t.delivered_s[0])) for t in decision.trips]
    assert got == naive_nearest(s)


def test_nearest_without_orders_or_riders() -> None:
    """An empty snapshot gives an empty decision; orders without riders all have reasons."""
    empty = make_snapshot([{}], [])
    assert NearestPolicy().decide(empty) == Decision()
    no_riders = make_snapshot([], [_drop(0.001, 0.001)])
    check_decision(no_riders, NearestPolicy().decide(no_riders))


def test_ortools_fixture_follows_the_rules() -> None:
    """OR-Tools' committed first trips on the fixture follow every rule; the rest have reasons."""
    s = fixture_snapshot()
    decision = OrToolsVrpPolicy(tick_s=TICK_S, time_limit_s=2.0).decide(s)
    check_decision(s, decision)
    assert any(trip.committed for trip in decision.trips)
    assert decision.reasons[6].startswith("capacity")


def test_ortools_commits_a_ready_order_to_a_free_rider() -> None:
    """A single ready order and a single free rider: the rider goes now with it."""
    s = make_snapshot([{"mode": BIKE}], [_drop(0.003, -0.002)])
    decision = OrToolsVrpPolicy(tick_s=TICK_S, time_limit_s=1.0).decide(s)
    check_decision(s, decision)
    assert [(trip.rider, trip.orders.tolist(), trip.committed) for trip in decision.trips] == [
        (0, [0], True)
    ]


def test_ortools_holds_a_rider_for_an_order_not_ready() -> None:
    """An order ready in an hour is planned but not committed: the rider need not go yet."""
    s = make_snapshot([{"mode": BIKE}], [_drop(0.003, -0.002, ready_s=NOW_S + 3600)])
    decision = OrToolsVrpPolicy(tick_s=TICK_S, time_limit_s=1.0).decide(s)
    check_decision(s, decision)
    assert not any(trip.committed for trip in decision.trips)
    assert decision.reasons[0].startswith("waiting")


def test_ortools_bundles_pay_the_pickup_once() -> None:
    """Two ready orders to one door from one shop go together, with one pickup time."""
    orders = [_drop(0.003, 0.003), _drop(0.003, 0.003)]
    s = make_snapshot([{"mode": BIKE, "capacity": 2}], orders)
    decision = OrToolsVrpPolicy(tick_s=TICK_S, time_limit_s=1.0).decide(s)
    check_decision(s, decision)
    (trip,) = decision.trips
    assert trip.committed and sorted(trip.orders.tolist()) == [0, 1]
    assert trip.depart_s == trip.arrive_shop_s + s.pickup_s


def test_ortools_with_a_tiny_time_limit_returns_a_decision() -> None:
    """Even with a one-millisecond limit the policy answers with a valid decision."""
    s = fixture_snapshot()
    decision = OrToolsVrpPolicy(tick_s=TICK_S, time_limit_s=0.001).decide(s)
    assert isinstance(decision, Decision)
    check_decision(s, decision)


@pytest.mark.parametrize("first_solution", ["PARALLEL_CHEAPEST_INSERTION", "PATH_CHEAPEST_ARC"])
def test_ortools_is_deterministic(first_solution: str) -> None:
    """The same snapshot and seed give the same decision (the search ends before its limit)."""
    s = fixture_snapshot()

    def plan() -> list[tuple]:
        policy = OrToolsVrpPolicy(
            tick_s=TICK_S, time_limit_s=5.0, seed=7, first_solution=first_solution
        )
        decision = policy.decide(s)
        trips = [
            (t.rider, t.orders.tolist(), t.depart_s, t.delivered_s.tolist(), t.committed)
            for t in decision.trips
        ]
        return [*trips, sorted(decision.reasons.items())]

    first = plan()
    assert all(plan() == first for _ in range(3))


def test_ortools_reports_orders_nobody_can_serve() -> None:
    """Orders of a shop nobody serves or on a roster with no shift left get reasons, no trips."""
    s = make_snapshot([{"shops": [0]}], [_drop(0.002, 0.0, shop=1)])
    decision = OrToolsVrpPolicy(tick_s=TICK_S, time_limit_s=0.5).decide(s)
    assert decision.trips == []
    assert decision.reasons[0] == "no rider on shift serves its shop"
    off = make_snapshot([{"shifts": [(0, NOW_S - 10)]}], [_drop(0.002, 0.0)])
    assert OrToolsVrpPolicy(time_limit_s=0.5).decide(off).reasons[0]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(snapshots())
def test_ortools_always_follows_the_rules(s: Snapshot) -> None:
    """On random small snapshots OR-Tools commits only trips that follow the rules."""
    check_decision(s, OrToolsVrpPolicy(tick_s=TICK_S, time_limit_s=0.2).decide(s))


def test_ortools_rejects_an_unknown_first_solution_strategy() -> None:
    """A misspelt first-solution strategy is a ValueError naming the parameter."""
    with pytest.raises(ValueError, match="first_solution"):
        OrToolsVrpPolicy(first_solution="CHEAPEST_EVERYTHING")


@pytest.mark.parametrize("policy", [NearestPolicy(), OrToolsVrpPolicy()])
def test_policies_have_their_benchmark_names(policy: NearestPolicy | OrToolsVrpPolicy) -> None:
    """The baselines carry the names the benchmark tables use."""
    assert policy.name in {"nearest", "ortools-vrp"}
