"""Synthetic one-day scenarios of 15-minute convenience circles in Haizhou, Lianyungang.

``generate_scenario(preset, seed)`` returns a JSON-ready object in format
``quarterhour.scenario/1`` (DESIGN.md, "Scenario file"). Presets:

- ``corner-store``: one 24-hour convenience store, ~300 orders, 3-5 riders in shifts;
- ``dark-store``: one store open 7:00-24:00, ~3000 orders, ~30 riders;
- ``circle``: 10-14 shops of different kinds sharing 8-12 riders, ~1500 orders.

Orders follow meal-time peaks and drop off around residential compounds (gaussian
spread 30-60 m) inside the shop's circle, plus a few scattered points. About 0.5% of
the orders (at least one) lie 5-60 s of walking beyond the circle, so that intake
rejection gets exercised. No order is placed in the last 15 minutes before a shop
closes or the day ends. All draws come from ``numpy.random.default_rng(seed + offset)``
with one offset per preset. Times are integer seconds from ``start``.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np

PRESETS = ("corner-store", "dark-store", "circle")

_SEED_OFFSETS = {"corner-store": 0, "dark-store": 1_000_003, "circle": 2_000_003}
_CENTER_LAT, _CENTER_LON = 34.5965, 119.2215
_EARTH_RADIUS_M = 6_371_008.8
_M_PER_DEG_LAT = math.radians(1.0) * _EARTH_RADIUS_M
_M_PER_DEG_LON = _M_PER_DEG_LAT * math.cos(math.radians(_CENTER_LAT))
_SPEEDS_MPS = {"walk": 1.3, "bike": 4.0, "ebike": 5.0}
_DETOUR = 1.3
_HORIZON_S = 86_400
_CIRCLE_S = 15 * 60  # circle_walk_min of every shop, in seconds
_RADIUS_M = _CIRCLE_S * _SPEEDS_MPS["walk"] / _DETOUR  # haversine radius of the circle
_LAST_CALL_S = 900
# Mean orders a day over all shops of the circle preset. With 8-12 shared riders this is
# about twice what they can carry at the meal peaks: a stress case, not a servable day.
_CIRCLE_ORDERS = 1500.0
_CAPACITY_BAGS = {"walk": (4, 5), "bike": (4, 6), "ebike": (5, 8)}
# fmt: off
# Relative order rate by hour of day; each kind of shop adds its peaks on top.
_DAY_RATES = np.array([0.45, 0.3, 0.18, 0.12, 0.1, 0.12, 0.3, 0.7, 0.9, 0.9, 1.0, 1.0,
                       1.0, 0.9, 0.85, 0.85, 0.9, 1.0, 1.1, 1.1, 1.1, 1.0, 0.9, 0.7])
_SHIFTS_H: dict[str, tuple[tuple[float, float], ...]] = {
    "day": ((7.5, 19.5),), "night": ((0, 8), (19.5, 24)), "split": ((10.5, 13.5), (17, 23.5)),
    "walk-peaks": ((7, 9.5), (11, 14)), "late": ((18, 24),), "morning": ((7, 15),),
    "evening": ((15, 23.5),), "midday": ((11, 20),), "overnight": ((0, 7.5), (22.5, 24)),
    "peaks": ((10.5, 13.5), (16.5, 21.5)),
}
_CORNER_TEAM = (("day", "ebike"), ("night", "ebike"), ("split", "ebike"), ("peaks", "ebike"),
                ("walk-peaks", "walk"))
_DAY_PATTERN = ("morning", "evening", "peaks", "morning", "evening", "midday", "late",
                "morning", "peaks", "evening")
# fmt: on


class _Kind(NamedTuple):
    names: tuple[str, ...]
    sessions_h: tuple[tuple[float, float], ...]  # opening hours
    peaks: tuple[tuple[float, float, float], ...]  # start_h, end_h, extra rate
    pick_min: tuple[int, int]  # picking or preparation time
    promise_min: int
    weight: float  # share of the circle's orders
    size_p: tuple[float, float, float]  # probabilities of 1, 2 and 3 bags
    base: float = 1.0  # multiplier of the hour-of-day rate under the peaks


# fmt: off
_SMALL, _BIG = (0.75, 0.2, 0.05), (0.5, 0.35, 0.15)
_KINDS = {
    "convenience": _Kind(
        ("Wanrun 24h", "Kuaike Express Mart"), ((0, 24),),
        ((7, 9, 0.6), (11, 13, 1.3), (17, 19.5, 1.2), (21, 24, 1.0)), (2, 8), 30, 1.6, _SMALL,
        0.7),
    "dark": _Kind(
        ("Xinpu Fresh Hub",), ((7, 24),),
        ((7, 9, 0.4), (10.5, 12.5, 1.0), (16.5, 19.5, 1.5), (20.5, 23, 0.8)), (2, 5), 30, 1.0,
        _BIG),
    "supermarket": _Kind(("Huaguo Fresh Market",), ((8, 22),), ((9, 11, 0.8), (17, 19.5, 1.5)),
                         (4, 10), 30, 1.4, _BIG),
    "fruit": _Kind(("Xiyou Fruit", "Guoyuan Fruit"), ((8.5, 22.5),),
                   ((17, 19.5, 1.2), (20, 22, 1.0)), (3, 8), 30, 1.0, _SMALL),
    "pharmacy": _Kind(("Kangjian Pharmacy",), ((8, 23),), ((19, 23, 0.8),), (2, 6), 30, 0.5,
                      (0.9, 0.1, 0.0)),
    "bakery": _Kind(("Donghai Bakery",), ((7, 21),), ((7, 9, 2.0), (15, 17, 0.8)), (2, 6), 30,
                    0.7, (0.8, 0.2, 0.0)),
    "tea": _Kind(("Chaxiang Tea",), ((10, 23),), ((14, 16, 1.5), (19, 22, 1.2)), (5, 12), 30,
                 1.0, _SMALL),
    "restaurant": _Kind(
        ("Haizhou Noodle House", "Shanyu Dumplings", "Xuwei Home Kitchen",
         "Lianyun Seafood Rice", "Yuntai Grill", "Qingkou Rice Bowls"),
        ((10, 14), (16.5, 21.5)), ((11, 13, 4.0), (17, 19.5, 4.0)), (8, 20), 40, 1.2,
        (0.8, 0.18, 0.02)),
}
# The circle preset takes the first 10-14 of these.
_CIRCLE_KINDS = ("convenience", "supermarket", "fruit", "pharmacy", "bakery", "tea",
                 "restaurant", "restaurant", "restaurant", "restaurant", "convenience",
                 "restaurant", "fruit", "restaurant")
# fmt: on

Record = dict[str, Any]


def generate_scenario(preset: str, seed: int) -> Record:
    """One day of the named preset; the same (preset, seed) gives the same object."""
    if preset not in PRESETS:
        raise ValueError(f"preset: expected one of {PRESETS}, got {preset!r}")
    if seed < 0:
        raise ValueError(f"seed: expected a non-negative integer, got {seed!r}")
    rng = np.random.default_rng(seed + _SEED_OFFSETS[preset])
    build = {"corner-store": _corner_store, "dark-store": _dark_store, "circle": _circle}
    shops, riders, orders = build[preset](rng)
    return {
        "format": "quarterhour.scenario/1",
        "name": f"{preset}-seed{seed}",
        "start": "2026-11-29T00:00:00+08:00",
        "horizon_s": _HORIZON_S,
        "travel": {
            "detour": _DETOUR,
            "speed_mps": dict(_SPEEDS_MPS),
            "pickup_s": 60,
            "handoff_s": 90,
        },
        "shops": shops,
        "riders": riders,
        "orders": _finish_orders(rng, shops, orders),
    }


def _corner_store(rng: np.random.Generator) -> tuple[list[Record], ...]:
    shops = [_shop(0, "convenience", 0, (0.0, 0.0))]
    compounds = _compounds(rng, int(rng.integers(15, 31)), 0.95 * _RADIUS_M)
    orders = _shop_orders(rng, 0, shops[0], "convenience", 300.0, compounds)
    team = _CORNER_TEAM[: int(rng.integers(3, 6))]
    riders = [
        _rider(rng, i, template, mode, shops, [0], jitter=False)
        for i, (template, mode) in enumerate(team)
    ]
    return shops, riders, orders


def _dark_store(rng: np.random.Generator) -> tuple[list[Record], ...]:
    shops = [_shop(0, "dark", 0, (0.0, 0.0))]
    compounds = _compounds(rng, int(rng.integers(25, 41)), 0.95 * _RADIUS_M)
    orders = _shop_orders(rng, 0, shops[0], "dark", 3000.0, compounds)
    riders = []
    for i in range(int(rng.integers(28, 35))):
        mode = "bike" if rng.random() < 0.2 else "ebike"
        template = _DAY_PATTERN[i % len(_DAY_PATTERN)]
        riders.append(_rider(rng, i, template, mode, shops, [0], jitter=True))
    return shops, riders, orders


def _circle(rng: np.random.Generator) -> tuple[list[Record], ...]:
    kinds = list(_CIRCLE_KINDS[: int(rng.integers(10, 15))])
    east_m, north_m = _uniform_disc_m(rng, len(kinds), 750.0)  # pairwise <= 1.5 km
    east_m[0] = north_m[0] = 0.0  # the first convenience store at the centre
    shops = [
        _shop(i, kind, kinds[:i].count(kind), (east_m[i], north_m[i]))
        for i, kind in enumerate(kinds)
    ]
    compounds = _compounds(rng, int(rng.integers(55, 90)), 750.0 + _RADIUS_M)
    total_weight = sum(_KINDS[kind].weight for kind in kinds)
    orders: list[Record] = []
    for i, kind in enumerate(kinds):
        mean_orders = _CIRCLE_ORDERS * _KINDS[kind].weight / total_weight
        orders += _shop_orders(rng, i, shops[i], kind, mean_orders, compounds)
    n_riders = int(rng.integers(8, 13))
    every_shop = list(range(len(shops)))
    partial = {int(i) for i in rng.choice(np.arange(1, n_riders), rng.integers(1, 4), False)}
    riders = [_rider(rng, 0, "overnight", "ebike", shops, every_shop, jitter=False)]
    for i in range(1, n_riders):
        served = _subset(rng, i, shops, kinds) if i in partial else every_shop
        mode = "bike" if rng.random() < 0.25 else "ebike"
        template = _DAY_PATTERN[(i - 1) % len(_DAY_PATTERN)]
        riders.append(_rider(rng, i, template, mode, shops, served, jitter=True))
    return shops, riders, orders


def _subset(rng: np.random.Generator, i: int, shops: list[Record], kinds: list[str]) -> list[int]:
    """The restaurants only (odd i), or the shops within 900 m of a random anchor shop."""
    if i % 2:
        return [j for j, kind in enumerate(kinds) if kind == "restaurant"]
    anchor = shops[int(rng.integers(len(shops)))]
    lats, lons = (np.array([shop[key] for shop in shops]) for key in ("lat", "lon"))
    return np.flatnonzero(_haversine_m(anchor, lats, lons) <= 900.0).tolist()


def _shop(i: int, kind: str, nth: int, position_m: tuple[float, float]) -> Record:
    lat, lon = _to_latlon(np.array([position_m[0]]), np.array([position_m[1]]))
    return {
        "id": f"s{i + 1}",
        "name": _KINDS[kind].names[nth],
        "lat": float(lat[0]),
        "lon": float(lon[0]),
        "circle_walk_min": _CIRCLE_S // 60,
        "promise_min": _KINDS[kind].promise_min,
    }


def _rider(
    rng: np.random.Generator,
    i: int,
    template: str,
    mode: str,
    shops: list[Record],
    served: list[int],
    jitter: bool,
) -> Record:
    """A rider starting at its first served shop; jitter staggers shift edges by 30 min."""
    shifts = []
    for start_h, end_h in _SHIFTS_H[template]:
        start_s, end_s = round(start_h * 3600), round(end_h * 3600)
        if jitter and start_s > 0:
            start_s += 900 * int(rng.integers(-2, 3))
        if jitter and end_s < _HORIZON_S:
            end_s = min(_HORIZON_S, end_s + 900 * int(rng.integers(-2, 3)))
        shifts.append([start_s, end_s])
    low, high = _CAPACITY_BAGS[mode]
    home = shops[served[0]]
    return {
        "id": f"r{i + 1}",
        "mode": mode,
        "capacity": int(rng.integers(low, high + 1)),
        "shops": [shops[j]["id"] for j in served],
        "lat": home["lat"],
        "lon": home["lon"],
        "shifts": shifts,
    }


def _shop_orders(
    rng: np.random.Generator,
    i: int,
    shop: Record,
    kind: str,
    mean_orders: float,
    compounds: np.ndarray,
) -> list[Record]:
    """One shop's orders, all inside its circle; ids are given later."""
    spec = _KINDS[kind]
    n_orders = int(rng.poisson(mean_orders))
    placed_s = _placed_times_s(rng, n_orders, spec)
    pick_s = rng.integers(spec.pick_min[0] * 60, spec.pick_min[1] * 60 + 1, n_orders)
    sizes = rng.choice(3, size=n_orders, p=spec.size_p) + 1
    lats, lons = _drop_offs(rng, n_orders, shop, compounds)
    return [
        {
            "shop": shop["id"],
            "lat": float(lats[k]),
            "lon": float(lons[k]),
            "size": int(sizes[k]),
            "placed_s": int(placed_s[k]),
            "ready_s": int(placed_s[k] + pick_s[k]),
            "promised_s": int(placed_s[k]) + spec.promise_min * 60,
            "_shop": i,
        }
        for k in range(n_orders)
    ]


def _finish_orders(
    rng: np.random.Generator, shops: list[Record], orders: list[Record]
) -> list[Record]:
    """Sort by placement, move a few just outside their circle, number them o1..oN."""
    orders.sort(key=lambda order: (order["placed_s"], order["_shop"]))
    n_outside = min(len(orders), max(1, round(0.005 * len(orders))))
    for k in rng.choice(len(orders), size=n_outside, replace=False):
        order = orders[int(k)]
        order["lat"], order["lon"] = _just_outside(rng, shops[order["_shop"]])
    return [
        {"id": f"o{k + 1}", **{key: value for key, value in order.items() if key != "_shop"}}
        for k, order in enumerate(orders)
    ]


def _placed_times_s(rng: np.random.Generator, n_orders: int, spec: _Kind) -> np.ndarray:
    """Sorted placement times: base rate by hour plus flat-topped peaks, open hours only."""
    minutes = np.arange(_HORIZON_S // 60)
    hours = (minutes + 0.5) / 60.0
    rates = spec.base * _DAY_RATES[minutes // 60]
    for start_h, end_h, extra in spec.peaks:
        phase = np.clip((hours - start_h) / (end_h - start_h), 0.0, 1.0)
        rates += extra * np.minimum(1.0, 2.0 * np.sin(np.pi * phase))
    is_open = np.zeros(minutes.size, dtype=bool)
    for open_h, close_h in spec.sessions_h:
        last_call_s = close_h * 3600 - _LAST_CALL_S
        is_open |= (minutes * 60 >= open_h * 3600) & ((minutes + 1) * 60 <= last_call_s)
    rates *= is_open
    chosen = rng.choice(minutes.size, size=n_orders, p=rates / rates.sum())
    return np.sort(chosen * 60 + rng.integers(0, 60, size=n_orders))


def _compounds(rng: np.random.Generator, n_compounds: int, radius_m: float) -> np.ndarray:
    """Residential compounds as rows: east_m, north_m, spread_m, households weight."""
    east_m, north_m = _uniform_disc_m(rng, n_compounds, radius_m)
    spreads_m = rng.uniform(30.0, 60.0, size=n_compounds)
    weights = rng.lognormal(0.0, 0.6, size=n_compounds)
    return np.column_stack([east_m, north_m, spreads_m, weights])


def _drop_offs(
    rng: np.random.Generator, n_orders: int, shop: Record, compounds: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Drop-offs at least 1 s of walking inside the circle; 5% scattered, rest clustered."""
    shop_m = (
        (shop["lon"] - _CENTER_LON) * _M_PER_DEG_LON,
        (shop["lat"] - _CENTER_LAT) * _M_PER_DEG_LAT,
    )
    centre_lats, centre_lons = _to_latlon(compounds[:, 0], compounds[:, 1])
    nearby = compounds[_walk_s(shop, centre_lats, centre_lons) < _CIRCLE_S]
    lats, lons = np.zeros(n_orders), np.zeros(n_orders)
    todo = np.arange(n_orders)
    while todo.size:
        east_m, north_m = _uniform_disc_m(rng, todo.size, _RADIUS_M)
        east_m, north_m = east_m + shop_m[0], north_m + shop_m[1]
        if len(nearby):
            p = nearby[:, 3] / nearby[:, 3].sum()
            picks = nearby[rng.choice(len(nearby), size=todo.size, p=p)]
            clustered = rng.random(todo.size) >= 0.05
            east_m = np.where(clustered, rng.normal(picks[:, 0], picks[:, 2]), east_m)
            north_m = np.where(clustered, rng.normal(picks[:, 1], picks[:, 2]), north_m)
        lat, lon = _to_latlon(east_m, north_m)
        inside = _walk_s(shop, lat, lon) <= _CIRCLE_S - 1
        lats[todo[inside]], lons[todo[inside]] = lat[inside], lon[inside]
        todo = todo[~inside]
    return lats, lons


def _just_outside(rng: np.random.Generator, shop: Record) -> tuple[float, float]:
    """A point 5 s to 60 s of walking beyond the edge of the shop's circle."""
    while True:
        bearing = rng.uniform(0.0, 2.0 * math.pi)
        radius_m = _RADIUS_M * rng.uniform(1.01, 1.06)
        lat = np.round([shop["lat"] + radius_m * math.cos(bearing) / _M_PER_DEG_LAT], 6)
        lon = np.round([shop["lon"] + radius_m * math.sin(bearing) / _M_PER_DEG_LON], 6)
        if _CIRCLE_S + 5 <= _walk_s(shop, lat, lon)[0] <= _CIRCLE_S + 60:
            return float(lat[0]), float(lon[0])


def _uniform_disc_m(
    rng: np.random.Generator, n_points: int, radius_m: float
) -> tuple[np.ndarray, np.ndarray]:
    radii_m = radius_m * np.sqrt(rng.random(n_points))
    bearings = rng.uniform(0.0, 2.0 * np.pi, n_points)
    return radii_m * np.sin(bearings), radii_m * np.cos(bearings)


def _to_latlon(east_m: np.ndarray, north_m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Metres east and north of the circle's centre to degrees, rounded to 1e-6."""
    return (
        np.round(_CENTER_LAT + north_m / _M_PER_DEG_LAT, 6),
        np.round(_CENTER_LON + east_m / _M_PER_DEG_LON, 6),
    )


def _haversine_m(shop: Record, lats: np.ndarray, lons: np.ndarray) -> np.ndarray:
    phi, phis = math.radians(shop["lat"]), np.radians(lats)
    a = (
        np.sin((phis - phi) / 2) ** 2
        + math.cos(phi) * np.cos(phis) * np.sin(np.radians(lons - shop["lon"]) / 2) ** 2
    )
    distances_m: np.ndarray = 2 * _EARTH_RADIUS_M * np.arcsin(np.sqrt(a))
    return distances_m


def _walk_s(shop: Record, lats: np.ndarray, lons: np.ndarray) -> np.ndarray:
    """Walking travel time from the shop in seconds, before the ceiling."""
    return _haversine_m(shop, lats, lons) * _DETOUR / _SPEEDS_MPS["walk"]
