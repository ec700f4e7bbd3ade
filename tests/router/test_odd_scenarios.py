"""Every policy on small random scenarios with the odd parts DESIGN.md allows, judged by the
independent checker: several shops, overridden detour, speeds and service times (zero
included), riders serving some shops, with or without a position, split shifts, orders
outside a circle, too big for every rider, or with no rider for their shop, explicit
promises, no riders at all."""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Any

import pytest

from router.cli import POLICIES, make_policy
from router.dispatch import warm_up
from router.scenario import parse_scenario
from router.simulate import simulate, write_outputs
from tests.checker import check_simulation

CENTER = (34.5965, 119.2215)
M_PER_DEG_LAT = 111_195.0


def _point(rng: random.Random, radius_m: float) -> tuple[float, float]:
    angle, distance_m = rng.uniform(0, 2 * math.pi), radius_m * math.sqrt(rng.random())
    lat = CENTER[0] + distance_m * math.cos(angle) / M_PER_DEG_LAT
    lon = CENTER[1] + distance_m * math.sin(angle) / (
        M_PER_DEG_LAT * math.cos(math.radians(CENTER[0]))
    )
    return lat, lon


def _shifts(rng: random.Random, horizon_s: int) -> list[list[int]]:
    shifts, start_s = [], rng.randint(0, horizon_s // 2)
    for _ in range(rng.randint(1, 3)):
        end_s = start_s + rng.randint(0, horizon_s // 2)
        shifts.append([start_s, end_s])
        start_s = end_s + rng.randint(1, 1800)
    return shifts


def odd_scenario(seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    horizon_s = rng.choice([3600, 7200, 14_400])
    shops: list[dict[str, Any]] = []
    for i in range(rng.randint(1, 3)):
        lat, lon = _point(rng, 800)
        shop: dict[str, Any] = {"id": f"s{i}", "name": f"Shop {i}", "lat": lat, "lon": lon}
        if rng.random() < 0.5:
            shop["circle_walk_min"] = rng.choice([5, 10, 15, 20])
        if rng.random() < 0.5:
            shop["promise_min"] = rng.choice([15, 30, 45])
        shops.append(shop)
    riders: list[dict[str, Any]] = []
    for i in range(rng.randint(0, 5)):
        rider: dict[str, Any] = {
            "id": f"r{i}",
            "mode": rng.choice(["walk", "bike", "ebike"]),
            "capacity": rng.randint(1, 8),
            "shifts": _shifts(rng, horizon_s),
        }
        if rng.random() < 0.5:
            rider["shops"] = rng.sample([s["id"] for s in shops], rng.randint(1, len(shops)))
        if rng.random() < 0.5:
            rider["lat"], rider["lon"] = _point(rng, 1500)
        riders.append(rider)
    orders: list[dict[str, Any]] = []
    for i in range(rng.randint(0, 40)):
        lat, lon = _point(rng, rng.choice([300, 900, 1300]))
        placed_s = rng.randint(0, horizon_s)
        order = {
            "id": f"o{i}",
            "shop": rng.choice(shops)["id"],
            "lat": lat,
            "lon": lon,
            "size": rng.choice([1, 1, 2, 3, 9]),
            "placed_s": placed_s,
            "ready_s": placed_s + rng.randint(0, 900),
        }
        if rng.random() < 0.3:
            order["promised_s"] = placed_s + rng.randint(600, 3600)
        orders.append(order)
    document: dict[str, Any] = {
        "format": "quarterhour.scenario/1",
        "name": f"odd-{seed}",
        "horizon_s": horizon_s,
        "shops": shops,
        "riders": riders,
        "orders": orders,
    }
    if rng.random() < 0.5:
        document["travel"] = {
            "detour": rng.choice([1.0, 1.3, 1.7]),
            "speed_mps": {
                "walk": rng.choice([1.0, 1.3]),
                "bike": rng.choice([3.0, 4.0]),
                "ebike": rng.choice([4.5, 5.0, 7.0]),
            },
            "pickup_s": rng.choice([0, 30, 60, 120]),
            "handoff_s": rng.choice([0, 45, 90]),
        }
    return document


@pytest.fixture(scope="module", autouse=True)
def _compiled() -> None:
    warm_up()


@pytest.mark.parametrize("policy_name", POLICIES)
@pytest.mark.parametrize("seed", range(8))
def test_odd_scenario_is_served_feasibly(policy_name: str, seed: int, tmp_path: Path) -> None:
    document = odd_scenario(seed)
    tick_s = random.Random(seed).choice([10, 30, 60])
    result = simulate(
        parse_scenario(document), make_policy(policy_name, tick_s, 0.2), tick_s=tick_s
    )
    write_outputs(result, tmp_path)
    assert check_simulation(document, tmp_path) == []
    assert result.refused_commits == 0
