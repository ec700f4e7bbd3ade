"""Tests of the independent feasibility checker on a tiny hand-built simulation."""

from __future__ import annotations

import copy
import csv
import json
import math
import pathlib
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from tests.checker import OUTCOME_HEADER, TRIP_HEADER, check_simulation

SPEEDS_MPS = {"walk": 1.3, "bike": 4.0, "ebike": 5.0}
PICKUP_S = 60
HANDOFF_S = 90
SHOP = (34.5965, 119.2215)
R2_START = (34.5975, 119.2230)
HORIZON_S = 7200

Tables = dict[str, Any]


def _distance_m(a: tuple[float, float], b: tuple[float, float]) -> float:
    lat1, lon1, lat2, lon2 = (math.radians(x) for x in (*a, *b))
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * 6_371_008.8 * math.asin(math.sqrt(h)) * 1.3


def _travel_s(a: tuple[float, float], b: tuple[float, float], mode: str) -> int:
    return math.ceil(_distance_m(a, b) / SPEEDS_MPS[mode] - 1e-6)


def _order(
    oid: str,
    pos: tuple[float, float],
    size: int,
    placed_s: int,
    ready_s: int,
    **kw: int,
) -> dict[str, Any]:
    return {
        "id": oid,
        "shop": "s1",
        "lat": pos[0],
        "lon": pos[1],
        "size": size,
        "placed_s": placed_s,
        "ready_s": ready_s,
        **kw,
    }


def _scenario() -> dict[str, Any]:
    """1 shop, 2 riders, 4 orders; o4 is about 3.7 km away, outside the circle."""
    return {
        "format": "quarterhour.scenario/1",
        "name": "tiny",
        "start": "2026-11-29T00:00:00+08:00",
        "horizon_s": HORIZON_S,
        "shops": [{"id": "s1", "name": "Corner", "lat": SHOP[0], "lon": SHOP[1]}],
        "riders": [
            # At the shop by default; a shift gap at 420..600 forces a wait.
            {
                "id": "r1",
                "mode": "ebike",
                "capacity": 3,
                "shops": ["s1"],
                "shifts": [[0, 420], [600, 3600]],
            },
            # Serves every shop by default; the second shift is clipped at the horizon.
            {
                "id": "r2",
                "mode": "walk",
                "capacity": 2,
                "lat": R2_START[0],
                "lon": R2_START[1],
                "shifts": [[600, 1800], [3000, 9000]],
            },
        ],
        "orders": [
            _order("o1", (34.5990, 119.2240), 1, 100, 300),
            _order("o2", (34.5940, 119.2250), 2, 150, 400, promised_s=800),
            _order("o3", (34.5980, 119.2190), 1, 450, 480),
            _order("o4", (34.6300, 119.2215), 1, 200, 300),
        ],
    }


def _valid_tables(scenario: dict[str, Any]) -> Tables:
    """A feasible plan, timed by hand: t1 = r1 carries o1, o2; t2 = r2 carries o3."""
    orders = {o["id"]: o for o in scenario["orders"]}
    pos = {oid: (o["lat"], o["lon"]) for oid, o in orders.items()}
    # promised_s defaults to placed_s + promise_min (30) * 60.
    promised = {oid: o.get("promised_s", o["placed_s"] + 1800) for oid, o in orders.items()}

    # t1: committed at 400 with r1 at the shop; earliest departure 460 falls in the
    # shift gap, so r1 waits for the shift starting at 600.
    t1_depart = 600
    o1_done = t1_depart + _travel_s(SHOP, pos["o1"], "ebike") + HANDOFF_S
    o2_done = o1_done + _travel_s(pos["o1"], pos["o2"], "ebike") + HANDOFF_S
    # t2: committed at 500; r2 is free from its first shift start, 600.
    t2_arrive = 600 + _travel_s(R2_START, SHOP, "walk")
    t2_depart = max(t2_arrive, 480) + PICKUP_S
    o3_done = t2_depart + _travel_s(SHOP, pos["o3"], "walk") + HANDOFF_S

    trips = [
        {
            "trip_id": "t1",
            "rider_id": "r1",
            "shop_id": "s1",
            "assigned_s": 400,
            "arrive_shop_s": 400,
            "depart_s": t1_depart,
            "order_ids": "o1 o2",
        },
        {
            "trip_id": "t2",
            "rider_id": "r2",
            "shop_id": "s1",
            "assigned_s": 500,
            "arrive_shop_s": t2_arrive,
            "depart_s": t2_depart,
            "order_ids": "o3",
        },
    ]
    done = {"o1": ("t1", o1_done), "o2": ("t1", o2_done), "o3": ("t2", o3_done)}
    outcomes = []
    for oid, o in orders.items():
        row = {
            "order_id": oid,
            "shop_id": "s1",
            "status": "rejected",
            "rider_id": "",
            "trip_id": "",
            "placed_s": o["placed_s"],
            "ready_s": o["ready_s"],
            "promised_s": promised[oid],
            "assigned_s": "",
            "depart_s": "",
            "delivered_s": "",
        }
        if oid in done:
            trip = next(t for t in trips if t["trip_id"] == done[oid][0])
            row.update(
                status="delivered",
                rider_id=trip["rider_id"],
                trip_id=trip["trip_id"],
                assigned_s=trip["assigned_s"],
                depart_s=trip["depart_s"],
                delivered_s=done[oid][1],
            )
        outcomes.append(row)

    delivered = [(oid, t) for oid, (_, t) in done.items()]
    c2d = np.array([t - orders[oid]["placed_s"] for oid, t in delivered], dtype=float)
    late = np.array([max(0, t - promised[oid]) for oid, t in delivered], dtype=float)
    lower = np.array(
        [
            max(orders[oid]["placed_s"], orders[oid]["ready_s"])
            + PICKUP_S
            + _travel_s(SHOP, pos[oid], "ebike")
            + HANDOFF_S
            - orders[oid]["placed_s"]
            for oid, _ in delivered
        ]
    )
    distance_m = (
        _distance_m(SHOP, pos["o1"])
        + _distance_m(pos["o1"], pos["o2"])
        + _distance_m(R2_START, SHOP)
        + _distance_m(SHOP, pos["o3"])
    )
    rider_hours = (420 + 3000 + 1200 + 4200) / 3600
    kpis = {
        "orders": 4,
        "delivered": 3,
        "rejected": 1,
        "undelivered": 0,
        "on_time_rate": sum(t <= promised[oid] for oid, t in delivered) / 3,
        "click_to_door_s": {
            "mean": c2d.mean(),
            "p50": np.percentile(c2d, 50),
            "p90": np.percentile(c2d, 90),
            "p99": np.percentile(c2d, 99),
            "max": c2d.max(),
        },
        "lateness_s": {
            "mean": late.mean(),
            "p90": np.percentile(late, 90),
            "max": late.max(),
        },
        "lower_bound_ratio": c2d.mean() / lower.mean(),
        "orders_per_trip": 3 / 2,
        "orders_per_rider_hour": 3 / rider_hours,
        "rider_distance_m": distance_m,
        "tick_ms": {"p50": 0.5, "p99": 2.0, "max": 3.0},
        "policy": "hand",
        "scenario": "tiny",
    }
    kpis = json.loads(json.dumps(kpis, default=float))  # numpy scalars to plain floats
    return {"outcomes": outcomes, "trips": trips, "kpis": kpis}


def _write(out_dir: pathlib.Path, tables: Tables) -> pathlib.Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, header in (("outcomes", OUTCOME_HEADER), ("trips", TRIP_HEADER)):
        with (out_dir / f"{name}.csv").open("w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=header)
            writer.writeheader()
            writer.writerows(tables[name])
    (out_dir / "kpis.json").write_text(json.dumps(tables["kpis"]), encoding="utf-8")
    return out_dir


def _row(tables: Tables, oid: str) -> dict[str, Any]:
    return next(r for r in tables["outcomes"] if r["order_id"] == oid)


def _trip(tables: Tables, tid: str) -> dict[str, Any]:
    return next(t for t in tables["trips"] if t["trip_id"] == tid)


def test_valid_plan_has_no_violations(tmp_path: pathlib.Path) -> None:
    """The hand-timed plan (a shift wait, a rider starting off-shop) is feasible."""
    scenario = _scenario()
    tables = _valid_tables(scenario)
    assert _trip(tables, "t2")["arrive_shop_s"] > 600  # r2's first leg is not empty
    assert check_simulation(scenario, _write(tmp_path, tables)) == []


# Each mutation edits (scenario, tables) in place; expected text is in some violation.
def _arrive_early(sc: dict[str, Any], tb: Tables) -> None:
    _trip(tb, "t2")["arrive_shop_s"] -= 1


def _depart_before_ready(sc: dict[str, Any], tb: Tables) -> None:
    sc["orders"][0]["ready_s"] = 1000
    _row(tb, "o1")["ready_s"] = 1000


def _over_capacity(sc: dict[str, Any], tb: Tables) -> None:
    sc["riders"][0]["capacity"] = 2


def _order_in_two_trips(sc: dict[str, Any], tb: Tables) -> None:
    _trip(tb, "t2")["order_ids"] = "o3 o1"


def _depart_off_shift(sc: dict[str, Any], tb: Tables) -> None:
    _trip(tb, "t1")["depart_s"] = 460
    _row(tb, "o1")["depart_s"] = _row(tb, "o2")["depart_s"] = 460


def _reject_inside(sc: dict[str, Any], tb: Tables) -> None:
    _row(tb, "o3").update(
        status="rejected",
        rider_id="",
        trip_id="",
        assigned_s="",
        depart_s="",
        delivered_s="",
    )
    tb["trips"].remove(_trip(tb, "t2"))


def _accept_outside(sc: dict[str, Any], tb: Tables) -> None:
    _row(tb, "o4")["status"] = "undelivered"


def _wrong_on_time_rate(sc: dict[str, Any], tb: Tables) -> None:
    tb["kpis"]["on_time_rate"] += 0.1


def _wrong_distance(sc: dict[str, Any], tb: Tables) -> None:
    tb["kpis"]["rider_distance_m"] += 1.0


def _unserved_shop(sc: dict[str, Any], tb: Tables) -> None:
    sc["riders"][1]["shops"] = []


def _committed_before_placed(sc: dict[str, Any], tb: Tables) -> None:
    _trip(tb, "t2")["assigned_s"] = 400
    _row(tb, "o3")["assigned_s"] = 400


def _late_delivery_time(sc: dict[str, Any], tb: Tables) -> None:
    _row(tb, "o2")["delivered_s"] += 1


def _missing_row(sc: dict[str, Any], tb: Tables) -> None:
    tb["outcomes"].remove(_row(tb, "o4"))


MUTATIONS: list[tuple[Callable[[dict[str, Any], Tables], None], str]] = [
    (_arrive_early, "arrive_shop_s"),
    (_depart_before_ready, "max ready_s 1000"),
    (_over_capacity, "exceeds capacity"),
    (_order_in_two_trips, "more than one trip"),
    (_depart_off_shift, "outside every shift"),
    (_reject_inside, "rejected but inside the circle"),
    (_accept_outside, "must be rejected (outside the circle"),
    (_wrong_on_time_rate, "on_time_rate"),
    (_wrong_distance, "rider_distance_m"),
    (_unserved_shop, "does not serve shop s1"),
    (_committed_before_placed, "before order o3's placed_s"),
    (_late_delivery_time, "o2 delivered_s"),
    (_missing_row, "no row for scenario order o4"),
]


@pytest.mark.parametrize(
    ("mutate", "expected"), MUTATIONS, ids=[m.__name__.strip("_") for m, _ in MUTATIONS]
)
def test_mutation_is_reported(
    tmp_path: pathlib.Path,
    mutate: Callable[[dict[str, Any], Tables], None],
    expected: str,
) -> None:
    """Each single infeasibility yields a violation naming what is wrong."""
    scenario = _scenario()
    tables = copy.deepcopy(_valid_tables(scenario))
    mutate(scenario, tables)
    violations = check_simulation(scenario, _write(tmp_path, tables))
    assert any(expected in v for v in violations), violations


def test_wrong_header_is_reported(tmp_path: pathlib.Path) -> None:
    """A trips.csv whose header differs from DESIGN.md is a violation."""
    scenario = _scenario()
    out_dir = _write(tmp_path, _valid_tables(scenario))
    text = (out_dir / "trips.csv").read_text(encoding="utf-8")
    (out_dir / "trips.csv").write_text(text.replace("arrive_shop_s", "arrive_s", 1))
    assert any("trips.csv: header" in v for v in check_simulation(scenario, out_dir))
