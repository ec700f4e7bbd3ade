"""Tests of the MDRP rule set (router/mdrp/, the euclidean metric of router/travel.py)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from router.dispatch import QuarterhourPolicy
from router.mdrp.adapter import mdrp_metric, mdrp_policy, ready_reveal, rider_pay, to_scenario
from router.mdrp.instance import MdrpError, MdrpInstance, read_instance, travel_min
from router.mdrp.run import run_instance
from router.mdrp.solution import to_solution, write_solution
from router.simulate import ReadyReveal, SimulationResult, scarcity_quantile, simulate
from router.snapshot import Decision, PlannedTrip, Snapshot
from router.travel import TravelMetric, distance_matrix_m, travel_s_matrices
from tests.mdrp_checker import check_mdrp

SETTINGS = settings(max_examples=60, deadline=None, derandomize=True)
PARAMETERS = (
    "meters_per_minute\tpickup service minutes\tdropoff service minutes\ttarget click-to-door\t"
    "maximum click-to-door\tpay per order\tguaranteed pay per hour\n320\t4\t4\t40\t90\t10\t15\n"
)


def write_instance(
    folder: Path,
    orders: list[tuple[str, int, int, int, str, int]],
    couriers: list[tuple[str, int, int, int, int]],
    restaurants: list[tuple[str, int, int]],
) -> Path:
    """A hand-made instance folder in the MDRP format (tab-separated, one header line)."""
    folder.mkdir(parents=True, exist_ok=True)

    def table(header: str, rows: list[tuple[object, ...]]) -> str:
        return header + "\n" + "".join("\t".join(map(str, row)) + "\n" for row in rows)

    (folder / "orders.txt").write_text(
        table("order\tx\ty\tplacement_time\trestaurant\tready_time", list(orders))
    )
    (folder / "couriers.txt").write_text(table("courier\tx\ty\ton_time\toff_time", list(couriers)))
    (folder / "restaurants.txt").write_text(table("restaurant\tx\ty", list(restaurants)))
    (folder / "instance_parameters.txt").write_text(PARAMETERS)
    return folder


def one_order_instance(folder: Path, ready_min: int = 10) -> Path:
    """Courier 2 min from the restaurant, diner 3 min beyond it, at 320 m/min."""
    return write_instance(
        folder,
        orders=[("o1", 640, 960, 0, "r1", ready_min)],
        couriers=[("c1", 0, 0, 0, 100)],
        restaurants=[("r1", 640, 0)],
    )


def test_minute_travel_is_decided_in_metres() -> None:
    """1281 m at 427 m/min is exactly 3 minutes, a hair more is 4, and 0 m is 0."""
    metric = TravelMetric("euclidean", 60)
    speed_mps = 427 / 60
    assert metric.travel_s(0.0, 0.0, 1281.0, 0.0, 1.0, speed_mps) == 180
    assert metric.travel_s(0.0, 0.0, 1281.001, 0.0, 1.0, speed_mps) == 240
    assert metric.travel_s(5.0, 5.0, 5.0, 5.0, 1.0, speed_mps) == 0
    assert travel_min((0, 0), (0, 1281), 427) == 3


@SETTINGS
@given(
    st.lists(st.tuples(st.integers(0, 40_000), st.integers(0, 40_000)), min_size=1, max_size=6),
    st.sampled_from([314, 320, 419, 427]),
)
def test_minute_matrices_match_the_evaluator_rule(
    points: list[tuple[int, int]], meters_per_minute: int
) -> None:
    """The kernels give 60 * ceil(euclidean metres / meters_per_minute) for integer points."""
    ys = [float(p[1]) for p in points]
    xs = [float(p[0]) for p in points]
    metric = mdrp_metric()
    distances = distance_matrix_m(ys, xs, ys, xs, 1.0, metric)
    got = travel_s_matrices(distances, [meters_per_minute / 60] * 3, 60)
    for i, a in enumerate(points):
        for j, b in enumerate(points):
            want = 60 * math.ceil(
                math.sqrt((a[0] - b[0]) ** 2 + (a[1] - b[1]) ** 2) / meters_per_minute
            )
            assert got[:, i, j].tolist() == [want] * 3


def test_default_rule_is_unchanged() -> None:
    """Without a metric the kernels still compute haversine metres and whole seconds."""
    got = distance_matrix_m([34.59], [119.22], [34.60], [119.22], 1.3)
    assert travel_s_matrices(got, [1.3, 4.0, 5.0])[:, 0, 0].tolist() == [1112, 362, 290]


def test_reader_rejects_bad_field(tmp_path: Path) -> None:
    """A ready time before placement is rejected with a message naming file, line and field."""
    folder = write_instance(
        tmp_path / "bad", [("o1", 0, 0, 10, "r1", 5)], [("c1", 0, 0, 0, 60)], [("r1", 0, 0)]
    )
    with pytest.raises(MdrpError, match=r"orders.txt:2.ready_time"):
        read_instance(folder)


def test_timing_is_the_mdrp_rule(tmp_path: Path) -> None:
    """Pickup = max(arrival + 2, ready) and drop-off = arrival at the diner + 2, in minutes."""
    instance = read_instance(one_order_instance(tmp_path / "one"))
    result = simulate(to_scenario(instance), mdrp_policy(), tick_s=60, metric=mdrp_metric())
    solution = to_solution(instance, result)
    # leaves at 0 at the earliest, at the restaurant by 2; pickup at ready 10, leaves 12,
    # at the diner 15, drop-off 17
    assert solution.pickup_min == {"o1": 10}
    assert solution.dropoff_min == {"o1": 17}


def test_no_pickup_after_off_time(tmp_path: Path) -> None:
    """An order ready after the only courier's off time is left undelivered."""
    folder = write_instance(
        tmp_path / "late", [("o1", 640, 960, 0, "r1", 50)], [("c1", 0, 0, 0, 49)], [("r1", 640, 0)]
    )
    instance = read_instance(folder)
    result = simulate(to_scenario(instance), mdrp_policy(), tick_s=60, metric=mdrp_metric())
    assert result.statuses == ["undelivered"]


class _Spy:
    """The MDRP policy, recording every snapshot it is shown."""

    name = "spy"

    def __init__(self) -> None:
        self.policy: QuarterhourPolicy = mdrp_policy()
        self.seen: list[Snapshot] = []

    def decide(self, snapshot: Snapshot) -> Decision:
        self.seen.append(snapshot)
        return self.policy.decide(snapshot)


def test_revealed_ready_is_hidden_until_reached(tmp_path: Path) -> None:
    """With ready revealed, the policy sees an estimate until the ready minute, then the truth."""
    instance = read_instance(one_order_instance(tmp_path / "one", ready_min=30))
    scenario = to_scenario(instance)
    reveal = ready_reveal(instance)
    spy = _Spy()
    result = simulate(scenario, spy, tick_s=60, metric=mdrp_metric(), ready_reveal=reveal)
    true_ready_s = scenario.orders[0].ready_s
    assert spy.seen
    for snapshot in spy.seen:
        shown = int(snapshot.order_ready_s[0])
        if snapshot.now_s < 30 * 60:
            assert shown >= snapshot.now_s + 60 - reveal.offset_s
        else:
            assert shown == true_ready_s
    assert to_solution(instance, result).pickup_min["o1"] >= 30


def _seen_until(
    folder: Path, until_s: int
) -> tuple[list[tuple[object, ...]], dict[str, object], MdrpInstance]:
    """What the policy is shown before ``until_s`` with ready revealed, and the day's kpis."""
    instance = read_instance(folder)
    spy = _Spy()
    result = simulate(
        to_scenario(instance),
        spy,
        tick_s=60,
        metric=mdrp_metric(),
        ready_reveal=ready_reveal(instance),
    )
    seen = [
        (
            s.now_s,
            s.order_keys.tolist(),
            s.order_ready_s.tolist(),
            s.rider_keys.tolist(),
            s.rider_free_s.tolist(),
            s.rider_lats.tolist(),
            s.rider_lons.tolist(),
            None if s.rider_quota_left is None else s.rider_quota_left.tolist(),
        )
        for s in spy.seen
        if s.now_s < until_s
    ]
    return seen, {"abandoned": len(result.abandoned_trips), **result.kpis}, instance


def test_estimates_learn_only_from_orders_already_ready(tmp_path: Path) -> None:
    """Changing the prep times of orders not yet ready changes nothing the policy saw before."""
    couriers = [("c1", 0, 0, 0, 200), ("c2", 300, 300, 0, 200)]
    restaurants = [("r1", 640, 0), ("r2", 0, 640)]

    def day(late_extra_min: int) -> list[tuple[str, int, int, int, str, int]]:
        # the first ten orders are ready by minute 40; the last ten are placed after that
        early = [(f"o{i}", 100 * i, 900, 2 * i, "r1", 2 * i + 8 + i % 3) for i in range(1, 11)]
        late = [
            (f"o{i}", 90 * i, 300, 40 + i, f"r{1 + i % 2}", 40 + i + 10 + late_extra_min)
            for i in range(11, 21)
        ]
        return early + late

    seen_a, _, _ = _seen_until(
        write_instance(tmp_path / "a", day(0), couriers, restaurants), 51 * 60
    )
    seen_b, _, _ = _seen_until(
        write_instance(tmp_path / "b", day(25), couriers, restaurants), 51 * 60
    )
    assert seen_a and seen_a == seen_b  # the late orders' first ready minute is 51 in day a


def test_food_late_for_the_shift_tells_the_policy_nothing(tmp_path: Path) -> None:
    """A courier sent for food that is ready only after its off time is not refused: the policy
    sees the same until it could know, the courier gives up, and the solution stays feasible."""
    couriers = [("c1", 0, 0, 0, 20), ("c2", 0, 0, 30, 120)]
    restaurants = [("r1", 640, 0)]
    views = {}
    for ready_min in (16, 40):  # c1 can pick up by its off time at 16, not at 40
        folder = write_instance(
            tmp_path / f"r{ready_min}",
            [("o1", 640, 960, 0, "r1", ready_min)],
            couriers,
            restaurants,
        )
        views[ready_min] = _seen_until(folder, 16 * 60)
        out = tmp_path / f"out{ready_min}"
        run_instance(folder, out, ready="revealed")
        assert check_mdrp(folder, out).violations == []
    assert views[16][0] and views[16][0] == views[40][0]
    assert views[16][1]["abandoned"] == 0
    assert views[40][1]["abandoned"] == 1
    assert views[40][1]["delivered"] == 1  # the order went back to the pool; c2 took it


def test_prep_survival_is_kaplan_meier() -> None:
    """Ready orders are events, waiting ones censored: the textbook product-limit curve."""
    reveal = ReadyReveal(offset_s=120, quantile=0.5)
    # ready after 600 and 1200 s; one order has waited 900 s so far
    curve = reveal.survival(np.array([600, 1200]), np.array([900]))
    assert curve.preps_s.tolist() == [600, 1200]
    assert np.allclose(curve.alive, [2 / 3, 0.0])
    placed = np.array([0])
    # the median is where the share still waiting falls to a half of it: 1200, shifted back
    assert reveal.estimates_s(placed, 0, 60, curve).tolist() == [1080]
    # past every prep time seen: ready at the next tick at the earliest
    assert reveal.estimates_s(placed, 2000, 60, curve).tolist() == [1940]
    # a prior of pseudo-orders counts as ready orders of its weight
    prior = ReadyReveal(prior_preps_s=(300, 900), prior_weight=2.0)
    curve = prior.survival(np.zeros(0, np.int64), np.zeros(0, np.int64))
    assert np.allclose(curve.alive, [0.5, 0.0])


def test_conditional_quantile_of_prep_times() -> None:
    """The estimate is the quantile of the prep times longer than the time since placement."""
    reveal = ReadyReveal(offset_s=120, quantile=0.5)
    curve = reveal.survival(np.array([600, 900, 1200, 1800]), np.zeros(0, np.int64))
    placed = np.array([0])
    assert reveal.estimates_s(placed, 0, 60, curve).tolist() == [780]
    # 1000 s elapsed: only 1200 and 1800 are still possible; the median of those is 1200
    assert reveal.estimates_s(placed, 1000, 60, curve).tolist() == [1080]
    assert reveal.estimates_s(placed, 1000, 60, curve, quantile=0.9).tolist() == [1680]


def test_each_shop_cooks_at_its_own_learnt_speed() -> None:
    """A shop whose ready orders took twice the others' is expected to take longer; a shop
    with no ready order yet keeps the common curve; the pseudo-orders shrink the scales."""
    reveal = ReadyReveal(offset_s=0, quantile=0.5, shop_prior_weight=2.0)
    preps_s = np.array([600, 600, 1200, 1200])
    shops = np.array([0, 0, 1, 1])
    scales = reveal.shop_scales(preps_s, shops, 3)
    # log scale: the shop's mean log-prep over the day's, over (its orders + 2 pseudo-orders)
    assert scales == pytest.approx([2 ** (-0.5 * 2 / 4), 2 ** (0.5 * 2 / 4), 1.0])
    curve = reveal.survival(preps_s, np.zeros(0, np.int64), shops, np.zeros(0, np.int64), 3)
    placed = np.zeros(3, np.int64)
    fast, slow, unknown = reveal.estimates_s(placed, 0, 60, curve, shops=np.arange(3)).tolist()
    assert fast < unknown < slow
    # without shops (or with no shop weight) every shop shares one curve
    flat = ReadyReveal(offset_s=0, quantile=0.5).survival(
        preps_s, np.zeros(0, np.int64), shops, np.zeros(0, np.int64), 3
    )
    assert flat.shop_scales.tolist() == [1.0, 1.0, 1.0]


def test_scarce_riders_aim_later_in_the_ready_distribution() -> None:
    """The newsvendor quantile: a third with riders to spare, rising as orders queue."""
    assert scarcity_quantile(3, 10) == pytest.approx(1 / 3)
    assert scarcity_quantile(20, 10) == pytest.approx(3 / 5)
    assert scarcity_quantile(10, 10) < scarcity_quantile(40, 10) < 1.0


def test_run_writes_files_the_checker_accepts(tmp_path: Path) -> None:
    """A small hand-made day, both ready modes: feasible, and kpis.json agrees with the checker."""
    orders = [
        (f"o{i}", 300 * (i % 5), 200 * (i % 7), 3 * i, f"r{1 + i % 2}", 3 * i + 5 + i % 4)
        for i in range(1, 25)
    ]
    couriers = [("c1", 0, 0, 0, 60), ("c2", 500, 500, 10, 120), ("c3", 900, 100, 30, 90)]
    folder = write_instance(
        tmp_path / "day", orders, couriers, [("r1", 100, 100), ("r2", 800, 600)]
    )
    for ready in ("known", "revealed"):
        kpis = run_instance(folder, tmp_path / ready, ready=ready)
        check = check_mdrp(folder, tmp_path / ready)
        assert check.violations == []
        assert check.metrics["delivered"] == kpis["delivered"]
        assert np.isclose(check.metrics["click_to_door_mean"], kpis["click_to_door_min"]["mean"])
        assert np.isclose(check.metrics["cost_per_order"], kpis["cost_per_order"])
        assert np.isclose(check.metrics["courier_utilisation"], kpis["courier_utilisation"])


def test_same_instance_same_solution(tmp_path: Path) -> None:
    """Two runs of one instance write byte-identical solution files."""
    folder = one_order_instance(tmp_path / "one")
    run_instance(folder, tmp_path / "a")
    run_instance(folder, tmp_path / "b")
    for name in ("solution_info_assignments.txt", "solution_info_orders.txt"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_cli_writes_the_evaluator_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``quarterhour mdrp`` writes the three solution files and kpis.json; a bad folder exits 2."""
    from router.cli import main

    folder = one_order_instance(tmp_path / "one")
    assert main(["mdrp", str(folder), "--out", str(tmp_path / "out"), "--ready", "revealed"]) == 0
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == [
        "kpis.json",
        "solution_info_assignments.txt",
        "solution_info_couriers.txt",
        "solution_info_orders.txt",
    ]
    assert main(["mdrp", str(tmp_path / "missing"), "--out", str(tmp_path / "x")]) == 2
    assert "not a directory" in capsys.readouterr().err


class _Script:
    """Commits courier 0 to the given orders at the given minutes; records what it is shown."""

    name = "script"

    def __init__(self, plan: dict[int, list[int]]) -> None:
        self.plan = plan  # minute -> order indices of the scenario
        self.seen: dict[int, Snapshot] = {}

    def decide(self, snapshot: Snapshot) -> Decision:
        self.seen[snapshot.now_s // 60] = snapshot
        keys = snapshot.order_keys.tolist()
        wanted = self.plan.get(snapshot.now_s // 60, [])
        if not wanted or not set(wanted) <= set(keys) or 0 not in snapshot.rider_keys:
            return Decision()
        index = np.array([keys.index(o) for o in wanted], dtype=np.int64)
        now_s = snapshot.now_s
        trip = PlannedTrip(
            0, int(snapshot.order_shops[index[0]]), index, now_s, now_s, now_s, index * 0, True
        )
        return Decision(trips=[trip])


def _play_revealed(instance: MdrpInstance, script: _Script) -> SimulationResult:
    """The instance's day, ready revealed, with the scripted commits of ``script``."""
    return simulate(
        to_scenario(instance),
        script,
        tick_s=60,
        metric=mdrp_metric(),
        ready_reveal=ready_reveal(instance),
        pay=rider_pay(instance),
    )


def test_courier_waiting_at_the_restaurant_takes_a_ready_order_of_it(tmp_path: Path) -> None:
    """Ready revealed: a courier waiting for food not ready is shown free at the restaurant
    with its order open again; sent for another order of it that is ready, it picks that up
    at once, the first order goes back to the pool, and the solution passes the checker."""
    folder = write_instance(
        tmp_path / "rebind",
        [("o1", 640, 960, 0, "r1", 30), ("o2", 640, -960, 5, "r1", 8)],
        [("c1", 0, 0, 0, 100)],
        [("r1", 640, 0)],
    )
    instance = read_instance(folder)
    script = _Script({0: [0], 9: [1], 40: [0]})
    result = _play_revealed(instance, script)
    waiting = script.seen[9]  # at the restaurant since minute 2, o1 not ready until 30
    assert waiting.order_keys.tolist() == [0, 1]
    assert int(waiting.rider_free_s[0]) == 9 * 60
    assert (waiting.rider_lats[0], waiting.rider_lons[0]) == (0.0, 640.0)
    assert result.rebound_trips == 1
    solution = to_solution(instance, result)
    assert solution.pickup_min == {"o2": 9, "o1": 45}  # o1: from o2's diner, 3 min
    assert [(a.assignment_min, a.orders) for a in solution.assignments] == [
        (9, ("o2",)),
        (40, ("o1",)),
    ]
    write_solution(instance, solution, tmp_path / "out")
    assert check_mdrp(folder, tmp_path / "out").violations == []


def test_waiting_courier_serves_other_restaurants_only_while_orders_queue(tmp_path: Path) -> None:
    """A courier waiting at a restaurant is shown serving it alone while couriers are enough,
    every restaurant once more orders are open than couriers; sent to another restaurant, it
    rides there from where it waited and the solution passes the checker."""
    folder = write_instance(
        tmp_path / "queue",
        [
            ("o1", 640, 960, 0, "r1", 40),
            ("o2", -640, 640, 5, "r2", 6),
            ("o3", -640, 960, 7, "r2", 8),
        ],
        [("c1", 0, 0, 0, 100)],
        [("r1", 640, 0), ("r2", 0, 640)],
    )
    instance = read_instance(folder)
    script = _Script({0: [0], 9: [1]})
    result = _play_revealed(instance, script)
    assert script.seen[6].rider_serves[0].tolist() == [True, False]  # o2 open, one courier
    assert script.seen[8].rider_serves[0].tolist() == [True, True]  # o2 and o3 open
    assert result.rebound_trips == 1
    solution = to_solution(instance, result)
    assert [(m.origin, m.destination) for m in solution.moves][:3] == [
        ("0", "r1"),
        ("r1", "r2"),
        ("r2", "o2"),
    ]
    write_solution(instance, solution, tmp_path / "out")
    assert check_mdrp(folder, tmp_path / "out").violations == []


def test_idle_courier_rides_ahead_to_a_restaurant(tmp_path: Path) -> None:
    """A courier with nothing to do after a drop-off rides back to the restaurant where orders
    were placed (a move with no assignment); the next order of it is picked up at its ready
    time instead of 10 min later, in both ready modes, and the solution passes the checker."""
    folder = write_instance(
        tmp_path / "ahead",
        [("o1", 640, 3200, 0, "r1", 5), ("o2", 640, 960, 40, "r1", 42)],
        [("c1", 0, 0, 0, 100)],
        [("r1", 640, 0)],
    )
    for ready in ("known", "revealed"):
        run_instance(folder, tmp_path / ready, ready=ready)
        assert check_mdrp(folder, tmp_path / ready).violations == []
        moves = (tmp_path / ready / "solution_info_couriers.txt").read_text().splitlines()[1:]
        assert [m.split()[2:] for m in moves] == [
            ["0", "r1"],
            ["r1", "o1"],
            ["o1", "r1"],
            ["r1", "o2"],
        ]
        # back to r1 (no assignment) right after the drop-off, long before o2 is placed
        assert int(moves[2].split()[1]) < 30
        orders = (tmp_path / ready / "solution_info_orders.txt").read_text().splitlines()[1:]
        pickup = {line.split()[0]: int(line.split()[3]) for line in orders}
        assert pickup["o2"] == 42  # without the move 52: from o1's diner, 10 min away
