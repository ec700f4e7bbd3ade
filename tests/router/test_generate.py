"""Tests of the scenario generator ``router.generate`` against DESIGN.md, "Scenario file"."""

from __future__ import annotations

import functools
import json
import math
from typing import Any

import numpy as np
import pytest

from router.generate import PRESETS, expected_orders_per_minute, generate_scenario, staff_to_demand
from router.scenario import parse_scenario

SEEDS = (1, 2, 3)
CASES = [(preset, seed) for preset in PRESETS for seed in SEEDS]
EARTH_RADIUS_M = 6_371_008.8
# preset: (orders low, orders high, riders low, riders high, shops low, shops high)
EXPECTED_COUNTS = {
    "corner-store": (240, 360, 4, 5, 1, 1),
    "dark-store": (2800, 3200, 27, 35, 1, 1),
    "circle": (1350, 1650, 8, 12, 10, 14),
}


@functools.cache
def scenario(preset: str, seed: int) -> dict[str, Any]:
    """Generated once per test session; the tests only read it."""
    return generate_scenario(preset, seed)


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance on the sphere of DESIGN.md, written independently."""
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    h = (
        math.sin((phi2 - phi1) / 2) ** 2
        + math.cos(phi1) * math.cos(phi2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2
    )
    return 2 * EARTH_RADIUS_M * math.asin(math.sqrt(h))


def on_shift(rider: dict[str, Any]) -> np.ndarray:
    """Whether the rider is on shift for the whole of each minute of the day (1440 flags)."""
    starts_s = np.arange(1440) * 60
    on = np.zeros(1440, dtype=bool)
    for start_s, end_s in rider["shifts"]:
        on |= (starts_s >= start_s) & (starts_s + 60 <= end_s)
    return on


def expected_orders(doc: dict[str, Any]) -> np.ndarray:
    """Expected orders per minute, one row per shop of the generated scenario."""
    return expected_orders_per_minute(doc["name"].rsplit("-seed", 1)[0], len(doc["shops"]))


def walk_s(doc: dict[str, Any], shop: dict[str, Any], order: dict[str, Any]) -> float:
    """Walking time from the shop to the drop-off, in seconds before the ceiling."""
    travel = doc["travel"]
    distance_m = haversine_m(shop["lat"], shop["lon"], order["lat"], order["lon"])
    return distance_m * travel["detour"] / travel["speed_mps"]["walk"]


@pytest.mark.parametrize("preset", PRESETS)
def test_same_seed_gives_the_same_scenario(preset: str) -> None:
    """Two calls with the same preset and seed return equal objects."""
    assert generate_scenario(preset, 7) == generate_scenario(preset, 7)


@pytest.mark.parametrize("preset", PRESETS)
def test_different_seeds_give_different_scenarios(preset: str) -> None:
    """Different seeds give different orders."""
    assert scenario(preset, 1)["orders"] != scenario(preset, 2)["orders"]


def test_presets_differ_for_the_same_seed() -> None:
    """Each preset draws from its own stream, so no two share their order times."""
    placed = [[o["placed_s"] for o in scenario(p, 1)["orders"][:50]] for p in PRESETS]
    assert placed[0] != placed[1] != placed[2] != placed[0]


@pytest.mark.parametrize(("preset", "seed"), CASES)
def test_counts_are_in_the_expected_ranges(preset: str, seed: int) -> None:
    """Orders, riders and shops per preset are in the ranges of the brief."""
    doc = scenario(preset, seed)
    low_o, high_o, low_r, high_r, low_s, high_s = EXPECTED_COUNTS[preset]
    assert low_o <= len(doc["orders"]) <= high_o
    assert low_r <= len(doc["riders"]) <= high_r
    assert low_s <= len(doc["shops"]) <= high_s


@pytest.mark.parametrize(("preset", "seed"), CASES)
def test_header_follows_the_format(preset: str, seed: int) -> None:
    """Format, start, horizon and travel block are the DESIGN defaults."""
    doc = scenario(preset, seed)
    assert doc["format"] == "quarterhour.scenario/1"
    assert doc["name"] == f"{preset}-seed{seed}"
    assert doc["start"] == "2026-11-29T00:00:00+08:00"
    assert doc["horizon_s"] == 86_400
    assert doc["travel"] == {
        "detour": 1.3,
        "speed_mps": {"walk": 1.3, "bike": 4.0, "ebike": 5.0},
        "pickup_s": 60,
        "handoff_s": 90,
    }


@pytest.mark.parametrize(("preset", "seed"), CASES)
def test_orders_are_inside_their_circle_except_a_deliberate_few(preset: str, seed: int) -> None:
    """All drop-offs are inside the circle but about 0.5%, which lie just outside."""
    doc = scenario(preset, seed)
    shops = {shop["id"]: shop for shop in doc["shops"]}
    outside_s = []
    for order in doc["orders"]:
        shop = shops[order["shop"]]
        seconds = walk_s(doc, shop, order)
        if math.ceil(seconds) > shop["circle_walk_min"] * 60:
            outside_s.append(seconds - shop["circle_walk_min"] * 60)
    assert 1 <= len(outside_s) <= max(1, math.ceil(0.01 * len(doc["orders"])))
    assert all(0 < excess_s <= 120 for excess_s in outside_s)


@pytest.mark.parametrize(("preset", "seed"), CASES)
def test_order_times_are_consistent(preset: str, seed: int) -> None:
    """Times are integers, placed within the day, ready after placed, sorted by placed."""
    doc = scenario(preset, seed)
    shops = {shop["id"]: shop for shop in doc["shops"]}
    for order in doc["orders"]:
        times = (order["placed_s"], order["ready_s"], order["promised_s"])
        assert all(type(t) is int for t in times)
        assert 0 <= order["placed_s"] < doc["horizon_s"]
        assert order["ready_s"] >= order["placed_s"]
        promise_s = shops[order["shop"]]["promise_min"] * 60
        assert order["promised_s"] == order["placed_s"] + promise_s
        assert type(order["size"]) is int
        assert 1 <= order["size"] <= 3
    placed = [order["placed_s"] for order in doc["orders"]]
    assert placed == sorted(placed)


@pytest.mark.parametrize(("preset", "seed"), CASES)
def test_ids_are_unique_and_numbered(preset: str, seed: int) -> None:
    """Shops, riders and orders are numbered s1.., r1.., o1.. without gaps."""
    doc = scenario(preset, seed)
    for key, prefix in (("shops", "s"), ("riders", "r"), ("orders", "o")):
        ids = [item["id"] for item in doc[key]]
        assert ids == [f"{prefix}{k + 1}" for k in range(len(ids))]


@pytest.mark.parametrize(("preset", "seed"), CASES)
def test_riders_are_valid(preset: str, seed: int) -> None:
    """Riders serve known shops, start at the first, and work sorted shifts in the day."""
    doc = scenario(preset, seed)
    shops = {shop["id"]: shop for shop in doc["shops"]}
    largest_size = max(order["size"] for order in doc["orders"])
    for rider in doc["riders"]:
        assert rider["shops"]
        assert len(set(rider["shops"])) == len(rider["shops"])
        assert set(rider["shops"]) <= set(shops)
        home = shops[rider["shops"][0]]
        assert (rider["lat"], rider["lon"]) == (home["lat"], home["lon"])
        assert rider["mode"] in doc["travel"]["speed_mps"]
        assert rider["capacity"] >= largest_size
        ends = [0] + [bound for shift in rider["shifts"] for bound in shift] + [86_400]
        assert all(type(bound) is int for bound in ends)
        assert ends == sorted(ends)
        assert all(start_s < end_s for start_s, end_s in rider["shifts"])
    served = {shop_id for rider in doc["riders"] for shop_id in rider["shops"]}
    assert served == set(shops)


def test_circle_shops_are_close_together() -> None:
    """The shops of the circle preset lie within about 1.5 km of each other."""
    for seed in SEEDS:
        shops = scenario("circle", seed)["shops"]
        for a in shops:
            for b in shops:
                assert haversine_m(a["lat"], a["lon"], b["lat"], b["lon"]) <= 1_500.0


@pytest.mark.parametrize(("preset", "seed"), CASES)
def test_scenario_is_ascii_json_accepted_by_the_reader(preset: str, seed: int) -> None:
    """The object survives an ASCII JSON round trip and passes the validating reader."""
    doc = scenario(preset, seed)
    text = json.dumps(doc, ensure_ascii=False)
    assert text.isascii()
    parsed = parse_scenario(json.loads(text))
    assert len(parsed.orders) == len(doc["orders"])


def test_unknown_preset_raises_value_error_naming_it() -> None:
    """An unknown preset is a ValueError whose message names the preset."""
    with pytest.raises(ValueError, match="corner-shop"):
        generate_scenario("corner-shop", 1)


@pytest.mark.parametrize(("preset", "seed"), CASES)
def test_expected_orders_agree_with_the_drawn_orders(preset: str, seed: int) -> None:
    """The analytic demand sums to the preset's mean orders a day, and orders are placed only
    in minutes where it is positive."""
    doc = scenario(preset, seed)
    demand = expected_orders(doc)
    mean_orders = {"corner-store": 300.0, "dark-store": 3000.0, "circle": 1500.0}[preset]
    assert demand.shape == (len(doc["shops"]), 1440)
    assert demand.sum() == pytest.approx(mean_orders)
    assert (demand >= 0).all()
    row = {shop["id"]: s for s, shop in enumerate(doc["shops"])}
    for order in doc["orders"]:
        assert demand[row[order["shop"]], order["placed_s"] // 60] > 0


@pytest.mark.parametrize(("preset", "seed"), CASES)
def test_a_rider_is_on_shift_whenever_orders_can_arrive(preset: str, seed: int) -> None:
    """Every minute (so every hour) with expected orders at a shop, including the night of
    a 24-hour store, has a rider serving that shop on shift; so has every order's placement."""
    doc = scenario(preset, seed)
    demand = expected_orders(doc)
    for s, shop in enumerate(doc["shops"]):
        covered = np.zeros(1440, dtype=bool)
        for rider in doc["riders"]:
            if shop["id"] in rider["shops"]:
                covered |= on_shift(rider)
        open_minutes = np.flatnonzero(demand[s] > 0)
        assert open_minutes.size
        assert covered[open_minutes].all(), (shop["id"], np.flatnonzero(~covered & (demand[s] > 0)))
        placed = [o["placed_s"] // 60 for o in doc["orders"] if o["shop"] == shop["id"]]
        assert covered[placed].all()


@pytest.mark.parametrize(("preset", "seed"), CASES)
def test_riders_work_7_to_12_hours_in_at_most_two_blocks(preset: str, seed: int) -> None:
    """A rider's day is a full, split or night shift: 7-12 h in one or two blocks."""
    for rider in scenario(preset, seed)["riders"]:
        hours = sum(end_s - start_s for start_s, end_s in rider["shifts"]) / 3600
        assert 7.0 <= hours <= 12.0, rider
        assert 1 <= len(rider["shifts"]) <= 2, rider


@pytest.mark.parametrize("seed", SEEDS)
def test_corner_store_riders_follow_demand(seed: int) -> None:
    """More riders on shift in the busiest hour of expected orders than in the quietest
    daytime hour (7:00-22:00), and someone on shift through the night."""
    doc = scenario("corner-store", seed)
    per_hour = expected_orders(doc).sum(axis=0).reshape(24, 60).sum(axis=1)
    riders = sum(on_shift(rider).astype(float) for rider in doc["riders"]).reshape(24, 60)
    riders_per_hour = riders.mean(axis=1)
    busiest = int(np.argmax(per_hour))
    quietest = 7 + int(np.argmin(per_hour[7:22]))
    assert riders_per_hour[busiest] >= riders_per_hour[quietest]
    assert riders_per_hour[busiest] >= 2
    assert riders.min() >= 1


@pytest.mark.parametrize("seed", SEEDS)
def test_corner_store_team_is_e_bikes_and_at_most_one_walker(seed: int) -> None:
    """Four e-bike riders, plus a walker on a short split shift at lunch and dinner."""
    riders = scenario("corner-store", seed)["riders"]
    modes = [rider["mode"] for rider in riders]
    assert modes.count("ebike") == 4
    assert modes.count("walk") == len(riders) - 4 <= 1
    for rider in riders:
        if rider["mode"] == "walk":
            (lunch_start, lunch_end), (dinner_start, dinner_end) = rider["shifts"]
            assert 10 * 3600 <= lunch_start < 13 * 3600 < lunch_end
            assert lunch_end < dinner_start < 18 * 3600 < dinner_end <= 22 * 3600


def test_dark_store_riders_are_bikes_and_e_bikes() -> None:
    """About 20% of the dark store's riders ride bikes, the rest e-bikes."""
    modes = [r["mode"] for seed in SEEDS for r in scenario("dark-store", seed)["riders"]]
    assert set(modes) <= {"bike", "ebike"}
    assert 0.05 <= modes.count("bike") / len(modes) <= 0.4


@pytest.mark.parametrize("seed", SEEDS)
def test_circle_keeps_its_overnight_rider_and_partial_riders(seed: int) -> None:
    """The circle's first rider works the night for every shop; 1-3 others serve a subset."""
    doc = scenario("circle", seed)
    every_shop = [shop["id"] for shop in doc["shops"]]
    first, *others = doc["riders"]
    assert first["shops"] == every_shop
    assert first["shifts"][0][0] == 0
    assert first["shifts"][-1][1] == 86_400
    assert 1 <= sum(rider["shops"] != every_shop for rider in others) <= 3


def test_staff_to_demand_follows_the_peak_and_covers_every_half_hour() -> None:
    """With demand around the clock peaking at noon, the first pick covers the most empty
    half hours and the rest go to the peak; the same seed gives the same staffing."""
    demand = np.full(1440, 0.01)
    demand[11 * 60 : 14 * 60] = 1.0
    templates = [((0.0, 12.0),), ((12.0, 24.0),), ((10.0, 15.0),), ((0.0, 1.0),)]
    picks = staff_to_demand(np.random.default_rng(5), demand, 4, templates)
    assert {picks[0], picks[1]} == {((0.0, 12.0),), ((12.0, 24.0),)}
    assert picks[2:] == [((10.0, 15.0),), ((10.0, 15.0),)]
    assert staff_to_demand(np.random.default_rng(5), demand, 4, templates) == picks
