"""Synthetic one-day scenarios of 15-minute convenience circles in Haizhou, Lianyungang.

``generate_scenario(preset, seed)`` returns a JSON-ready object in format
``quarterhour.scenario/1`` (DESIGN.md, "Scenario file"). Presets:

- ``corner-store``: one 24-hour convenience store, ~300 orders, 4-5 riders (the upper part
  of the brief's 3-5): four on e-bikes and, one day in two, a walker;
- ``dark-store``: one store open 7:00-24:00, ~3000 orders, 28-34 riders, 20% on bikes;
- ``circle``: 10-14 shops of different kinds sharing 8-12 riders, ~1500 orders.

Orders follow meal-time peaks and drop off around residential compounds (gaussian
spread 30-60 m) inside the shop's circle, plus a few scattered points. About 0.5% of
the orders (at least one) lie 5-60 s of walking beyond the circle, so that intake
rejection gets exercised. No order is placed in the last 15 minutes before a shop
closes or the day ends.

Riders are staffed to demand, as a shop manager would: ``expected_orders_per_minute``
gives the expected orders of each shop by minute of the day, computed analytically from the
very rate model the orders are drawn from, and ``staff_to_demand`` gives each rider one
realistic shift template (full shifts of 8-10 h, split shifts over two peaks, night shifts
for 24-hour shops, walkers' short splits at lunch and dinner; 7-12 h a rider) so that the
riders on shift per half hour follow that demand. Whenever orders can arrive at a shop, at
least one rider serving it is on shift. The dark store's and the circle's shift edges are
then staggered by up to 30 minutes. The circle keeps one overnight rider for its 24-hour
stores; one to three of its riders serve only some of its shops.

All draws come from ``numpy.random.default_rng(seed + offset)`` with one offset per
preset; the orders are drawn first and the riders after them, so staffing never changes
the orders. Times are integer seconds from ``start``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from router.scenario import TravelRules

PRESETS = ("corner-store", "dark-store", "circle")

_SEED_OFFSETS = {"corner-store": 0, "dark-store": 1_000_003, "circle": 2_000_003}
_CENTER_LAT, _CENTER_LON = 34.5965, 119.2215
_EARTH_RADIUS_M = 6_371_008.8
_M_PER_DEG_LAT = math.radians(1.0) * _EARTH_RADIUS_M
_M_PER_DEG_LON = _M_PER_DEG_LAT * math.cos(math.radians(_CENTER_LAT))
_RULES = TravelRules()  # DESIGN.md's default travel rules, written into every scenario
_SPEEDS_MPS = _RULES.speed_mps
_DETOUR = _RULES.detour
_HORIZON_S = 86_400
_CIRCLE_S = 15 * 60  # circle_walk_min of every shop, in seconds
_RADIUS_M = _CIRCLE_S * _SPEEDS_MPS["walk"] / _DETOUR  # haversine radius of the circle
_LAST_CALL_S = 900
# Mean orders a day of the corner store and of the dark store.
_CORNER_ORDERS, _DARK_ORDERS = 300.0, 3000.0
# Mean orders a day over all shops of the circle preset. With 8-12 shared riders this is
# about twice what they can carry at the meal peaks: a stress case, not a servable day.
_CIRCLE_ORDERS = 1500.0
_CAPACITY_BAGS = {"walk": (4, 5), "bike": (4, 6), "ebike": (5, 8)}
# fmt: off
# Relative order rate by hour of day; each kind of shop adds its peaks on top.
_DAY_RATES = np.array([0.45, 0.3, 0.18, 0.12, 0.1, 0.12, 0.3, 0.7, 0.9, 0.9, 1.0, 1.0,
                       1.0, 0.9, 0.85, 0.85, 0.9, 1.0, 1.1, 1.1, 1.1, 1.0, 0.9, 0.7])
# fmt: on
_HALF_HOURS = _HORIZON_S // 1800
_RIDER_DAY_H = (7.0, 12.0)  # shortest and longest working day of a rider
_JITTER_STEPS_S = (-1800, -900, 0, 900, 1800)  # staggering of shift edges, up to 30 min

Template = tuple[tuple[float, float], ...]  # one rider's working intervals (start_h, end_h)

# Full shifts of 8-10 h, starting on the hour from 7:00.
_FULL_SHIFTS: tuple[Template, ...] = tuple(
    ((float(start_h), float(start_h + hours)),)
    for start_h in range(7, 17)
    for hours in (8, 9, 10)
    if start_h + hours <= 24
)
# fmt: off
# Split shifts over two peaks, with a break of 2-4 h in between; 8.5-10.5 h of work.
_SPLIT_SHIFTS: tuple[Template, ...] = (
    ((7.0, 11.0), (15.0, 20.0)),    # breakfast; dinner
    ((7.0, 12.5), (16.0, 20.0)),    # breakfast and lunch; dinner
    ((10.0, 14.0), (16.5, 21.0)),   # lunch; dinner
    ((10.5, 14.0), (17.0, 22.0)),   # lunch; dinner
    ((10.0, 13.5), (16.0, 23.0)),   # lunch; dinner and late evening
    ((11.0, 14.0), (17.0, 23.0)),   # lunch; dinner and late evening
    ((10.5, 13.5), (16.5, 24.0)),   # lunch; dinner and late evening
    ((11.0, 14.5), (18.0, 24.0)),   # lunch; dinner and late evening
)
# Night shifts of 24-hour shops: 0:00-8:00 and an evening block (20:00-08:00 across midnight).
_NIGHT_SHIFTS: tuple[Template, ...] = (
    ((0.0, 8.0), (20.0, 24.0)), ((0.0, 8.0), (21.0, 24.0)), ((0.0, 8.0), (22.0, 24.0)),
)
# Walkers' short split shifts at the lunch and dinner peaks, 7 h.
_WALKER_SHIFTS: tuple[Template, ...] = (
    ((10.5, 14.0), (17.0, 20.5)), ((11.0, 14.0), (16.5, 20.5)), ((11.0, 14.5), (17.5, 21.0)),
)
# fmt: on
# The circle's first rider, on every shop, for its 24-hour stores (not staggered).
_OVERNIGHT: Template = ((0.0, 7.5), (22.5, 24.0))


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
    shops, kinds, orders = build[preset](rng)
    orders = _finish_orders(rng, shops, orders)
    demand = _expected_orders(preset, kinds)
    staff = {"corner-store": _corner_riders, "dark-store": _dark_riders, "circle": _circle_riders}
    riders = staff[preset](rng, shops, kinds, demand)
    _check_staffed(shops, riders, demand)
    return {
        "format": "quarterhour.scenario/1",
        "name": f"{preset}-seed{seed}",
        "start": "2026-11-29T00:00:00+08:00",
        "horizon_s": _HORIZON_S,
        "travel": {
            "detour": _DETOUR,
            "speed_mps": dict(_SPEEDS_MPS),
            "pickup_s": _RULES.pickup_s,
            "handoff_s": _RULES.handoff_s,
        },
        "shops": shops,
        "riders": riders,
        "orders": orders,
    }


def expected_orders_per_minute(preset: str, n_shops: int = 1) -> np.ndarray:
    """Expected orders placed per minute of the day, one row per shop: (n_shops, 1440).

    Analytic, from the rate model the orders are drawn from: each shop's mean orders a day
    spread over the minutes in proportion to its rate (hour-of-day rate, its peaks, zero
    outside its opening hours and in the last 15 minutes before it closes). ``n_shops`` is
    the number of shops of the scenario (10-14 for ``circle``, 1 otherwise).
    """
    if preset not in PRESETS:
        raise ValueError(f"preset: expected one of {PRESETS}, got {preset!r}")
    low, high = (10, 14) if preset == "circle" else (1, 1)
    if not low <= n_shops <= high:
        raise ValueError(f"n_shops: expected {low}-{high} for {preset!r}, got {n_shops!r}")
    kinds = {"corner-store": ["convenience"], "dark-store": ["dark"]}.get(preset)
    return _expected_orders(preset, kinds or list(_CIRCLE_KINDS[:n_shops]))


def staff_to_demand(
    rng: np.random.Generator,
    demand: np.ndarray,
    n_riders: int,
    templates: Sequence[Template],
    on_shift: np.ndarray | None = None,
) -> list[Template]:
    """One shift template for each of ``n_riders`` riders, chosen greedily to follow demand.

    ``demand`` holds the expected orders per minute of the day (1440 values) and
    ``on_shift`` the riders already on shift per half hour (48 values; none by default).
    A half hour's share of the rider-half-hours is its share of the day's expected orders
    times the total rider-half-hours (those already on shift plus ``n_riders`` times the
    mean template length). Each step takes the template that most reduces the shortfall, the
    sum over half hours of max(0, share - riders on shift), ties broken by ``rng``; but
    first, while some half hour in which orders can arrive has nobody on shift, only the
    templates that leave fewest such half hours are candidates. Templates are returned in
    the order taken.
    """
    halves = _per_half_hour(demand)
    must = halves > 0
    masks = np.array([_half_hours(template) for template in templates], dtype=float)
    coverage = np.zeros(_HALF_HOURS) if on_shift is None else np.array(on_shift, dtype=float)
    rider_halves = coverage.sum() + n_riders * masks.sum(axis=1).mean()
    share = halves / halves.sum() * rider_halves
    chosen = []
    for _ in range(n_riders):
        after = coverage + masks
        # One more half hour with someone on shift outweighs any gain in share (<= 48).
        shortfall = np.maximum(0.0, share - after).sum(axis=1)
        shortfall += (_HALF_HOURS + 1) * (must & (after == 0)).sum(axis=1)
        best = np.flatnonzero(shortfall <= shortfall.min() + 1e-9)
        pick = int(best[rng.integers(best.size)])
        chosen.append(pick)
        coverage += masks[pick]

    # then swap one rider's template at a time while that lowers the shortfall (the greedy
    # alone can leave a peak, such as breakfast, to a single rider)
    def cost(cover: np.ndarray) -> np.ndarray:
        """The shortfall of each coverage row (or of one coverage, as a 0-d array)."""
        lone = (_HALF_HOURS + 1) * (must & (cover == 0)).sum(axis=-1)
        return np.asarray(np.maximum(0.0, share - cover).sum(axis=-1) + lone)

    improved = True
    while improved:
        improved = False
        for i, current in enumerate(chosen):
            trial = coverage - masks[current] + masks
            costs = cost(trial)
            best_pick = int(np.argmin(costs))
            if costs[best_pick] < cost(coverage) - 1e-9:
                chosen[i] = best_pick
                coverage = trial[best_pick]
                improved = True
    return [templates[pick] for pick in chosen]


def _corner_store(rng: np.random.Generator) -> tuple[list[Record], list[str], list[Record]]:
    shops = [_shop(0, "convenience", 0, (0.0, 0.0))]
    compounds = _compounds(rng, int(rng.integers(15, 31)), 0.95 * _RADIUS_M)
    orders = _shop_orders(rng, 0, shops[0], "convenience", _CORNER_ORDERS, compounds)
    return shops, ["convenience"], orders


def _dark_store(rng: np.random.Generator) -> tuple[list[Record], list[str], list[Record]]:
    shops = [_shop(0, "dark", 0, (0.0, 0.0))]
    compounds = _compounds(rng, int(rng.integers(25, 41)), 0.95 * _RADIUS_M)
    orders = _shop_orders(rng, 0, shops[0], "dark", _DARK_ORDERS, compounds)
    return shops, ["dark"], orders


def _circle(rng: np.random.Generator) -> tuple[list[Record], list[str], list[Record]]:
    kinds = list(_CIRCLE_KINDS[: int(rng.integers(10, 15))])
    east_m, north_m = _uniform_disc_m(rng, len(kinds), 750.0)  # pairwise <= 1.5 km
    east_m[0] = north_m[0] = 0.0  # the first convenience store at the centre
    shops = [
        _shop(i, kind, kinds[:i].count(kind), (east_m[i], north_m[i]))
        for i, kind in enumerate(kinds)
    ]
    compounds = _compounds(rng, int(rng.integers(55, 90)), 750.0 + _RADIUS_M)
    mean_orders = _mean_orders("circle", kinds)
    orders: list[Record] = []
    for i, kind in enumerate(kinds):
        orders += _shop_orders(rng, i, shops[i], kind, mean_orders[i], compounds)
    return shops, kinds, orders


def _corner_riders(
    rng: np.random.Generator, shops: list[Record], kinds: list[str], demand: np.ndarray
) -> list[Record]:
    """Four or five riders: four on e-bikes, the fifth a walker on a short split shift at the
    lunch and dinner peaks, staffed first; the e-bikes are staffed around the walker."""
    need = demand.sum(axis=0)
    n_riders = int(rng.integers(4, 6))
    walkers = staff_to_demand(rng, need, n_riders - 4, _WALKER_SHIFTS)
    on_shift = sum((_half_hours(template) for template in walkers), np.zeros(_HALF_HOURS))
    templates = staff_to_demand(rng, need, 4, _templates(kinds), on_shift) + walkers
    modes = ["ebike"] * 4 + ["walk"] * len(walkers)
    return [
        _rider(rng, i, modes[i], _seconds(template), shops, [0])
        for i, template in enumerate(templates)
    ]


def _dark_riders(
    rng: np.random.Generator, shops: list[Record], kinds: list[str], demand: np.ndarray
) -> list[Record]:
    """28-34 riders, 20% on bikes and the rest on e-bikes, with staggered shift edges."""
    n_riders = int(rng.integers(28, 35))
    modes = ["bike" if rng.random() < 0.2 else "ebike" for _ in range(n_riders)]
    templates = staff_to_demand(rng, demand.sum(axis=0), n_riders, _templates(kinds))
    everyone = [True] * n_riders
    shifts = _staggered(rng, templates, demand.sum(axis=0) > 0, everyone, everyone)
    return [_rider(rng, i, modes[i], shifts[i], shops, [0]) for i in range(n_riders)]


def _circle_riders(
    rng: np.random.Generator, shops: list[Record], kinds: list[str], demand: np.ndarray
) -> list[Record]:
    """An overnight rider, then 7-11 staffed to the circle's demand; 1-3 serve a subset."""
    n_riders = int(rng.integers(8, 13))
    every_shop = list(range(len(shops)))
    partial = {int(i) for i in rng.choice(np.arange(1, n_riders), rng.integers(1, 4), False)}
    served = [every_shop] + [
        _subset(rng, i, shops, kinds) if i in partial else every_shop for i in range(1, n_riders)
    ]
    modes = ["ebike"] + ["bike" if rng.random() < 0.25 else "ebike" for _ in range(1, n_riders)]
    need = demand.sum(axis=0)
    picks = staff_to_demand(rng, need, n_riders - 1, _templates(kinds), _half_hours(_OVERNIGHT))
    templates = [_OVERNIGHT, *_deal(picks, served[1:], demand, _half_hours(_OVERNIGHT))]
    full = [len(shops_served) == len(shops) for shops_served in served]
    shifts = _staggered(rng, templates, need > 0, full, [i > 0 for i in range(n_riders)])
    return [_rider(rng, i, modes[i], shifts[i], shops, served[i]) for i in range(n_riders)]


def _deal(
    picks: list[Template], served: list[list[int]], demand: np.ndarray, on_shift: np.ndarray
) -> list[Template]:
    """The staffed templates dealt out to riders. Each rider serving only some shops gets, in
    turn, the one that spends the largest part of its time in half hours when orders arrive
    at its shops, among those the riders serving every shop can spare (they alone keep
    someone on shift whenever orders can arrive); the others get the rest in staffing order."""
    masks = [_half_hours(template).astype(int) for template in picks]
    must = _per_half_hour(demand.sum(axis=0)) > 0
    left = list(range(len(picks)))
    dealt: dict[int, int] = {}
    for rider, shops_served in enumerate(served):
        if len(shops_served) == demand.shape[0]:
            continue
        busy = (_per_half_hour(demand[shops_served].sum(axis=0)) > 0).astype(int)
        spare = [
            k
            for k in left
            if np.all(~must | (sum((masks[j] for j in left if j != k), on_shift.astype(int)) > 0))
        ]
        best = max(spare or left, key=lambda k: ((masks[k] * busy).sum() / masks[k].sum(), -k))
        dealt[rider] = best
        left.remove(best)
    rest = iter(left)
    return [picks[dealt[r]] if r in dealt else picks[next(rest)] for r in range(len(served))]


def _per_half_hour(per_minute: np.ndarray) -> np.ndarray:
    return np.asarray(per_minute, dtype=float).reshape(_HALF_HOURS, -1).sum(axis=1)


def _templates(kinds: list[str]) -> tuple[Template, ...]:
    """Full and split shifts, and night shifts if a shop is open around the clock."""
    around_the_clock = any(_KINDS[kind].sessions_h == ((0, 24),) for kind in kinds)
    return _FULL_SHIFTS + _SPLIT_SHIFTS + (_NIGHT_SHIFTS if around_the_clock else ())


def _half_hours(template: Template) -> np.ndarray:
    """Whether the template is on shift in each half hour of the day (48 booleans)."""
    starts_h = np.arange(_HALF_HOURS) / 2.0
    on = np.zeros(_HALF_HOURS, dtype=bool)
    for start_h, end_h in template:
        on |= (starts_h >= start_h) & (starts_h + 0.5 <= end_h)
    return on


def _seconds(template: Template) -> list[list[int]]:
    return [[round(start_h * 3600), round(end_h * 3600)] for start_h, end_h in template]


def _minutes_on(shifts: list[list[int]]) -> np.ndarray:
    """Whether the shifts cover each whole minute of the day (1440 booleans)."""
    starts_s = np.arange(_HORIZON_S // 60) * 60
    on = np.zeros(starts_s.size, dtype=bool)
    for start_s, end_s in shifts:
        on |= (starts_s >= start_s) & (starts_s + 60 <= end_s)
    return on


def _staggered(
    rng: np.random.Generator,
    templates: list[Template],
    must: np.ndarray,
    counted: list[bool],
    movable: list[bool],
) -> list[list[list[int]]]:
    """Shifts in seconds; each edge of a movable rider inside the day moves by -30..+30 min
    in 15-min steps, unless that leaves a minute in which orders can arrive (``must``)
    without a counted rider on shift, a rider's day outside 7-12 h, or shifts out of order."""
    shifts = [_seconds(template) for template in templates]
    on = np.array([_minutes_on(rider_shifts) for rider_shifts in shifts], dtype=int)
    weight = np.array(counted, dtype=int)
    for r, rider_shifts in enumerate(shifts):
        if not movable[r]:
            continue
        for shift in rider_shifts:
            for edge in (0, 1):
                if not 0 < shift[edge] < _HORIZON_S:
                    continue
                before = shift[edge]
                step = _JITTER_STEPS_S[int(rng.integers(len(_JITTER_STEPS_S)))]
                shift[edge] = min(_HORIZON_S, max(0, before + step))
                moved = _minutes_on(rider_shifts)
                covered_before = weight @ on > 0
                covered_after = (
                    covered_before if not counted[r] else (weight @ on - on[r] + moved) > 0
                )
                bounds = [bound for pair in rider_shifts for bound in pair]
                worked_h = sum(end_s - start_s for start_s, end_s in rider_shifts) / 3600
                if (
                    np.any(must & covered_before & ~covered_after)
                    or not _RIDER_DAY_H[0] <= worked_h <= _RIDER_DAY_H[1]
                    or any(a >= b for a, b in itertools.pairwise(bounds))
                ):
                    shift[edge] = before
                else:
                    on[r] = moved
    return shifts


def _check_staffed(shops: list[Record], riders: list[Record], demand: np.ndarray) -> None:
    """Whenever orders can arrive at a shop, a rider serving it is on shift."""
    for s, shop in enumerate(shops):
        on = np.zeros(demand.shape[1], dtype=bool)
        for rider in riders:
            if shop["id"] in rider["shops"]:
                on |= _minutes_on(rider["shifts"])
        gaps = np.flatnonzero((demand[s] > 0) & ~on)
        if gaps.size:
            raise RuntimeError(
                f"no rider for {shop['id']} at minute {int(gaps[0])}: a template bug"
            )


def _expected_orders(preset: str, kinds: list[str]) -> np.ndarray:
    rows = []
    for kind, mean_orders in zip(kinds, _mean_orders(preset, kinds), strict=True):
        rates = _minute_rates(_KINDS[kind])
        rows.append(mean_orders * rates / rates.sum())
    return np.array(rows)


def _mean_orders(preset: str, kinds: list[str]) -> list[float]:
    """Mean orders a day of each shop."""
    if preset == "corner-store":
        return [_CORNER_ORDERS]
    if preset == "dark-store":
        return [_DARK_ORDERS]
    total_weight = sum(_KINDS[kind].weight for kind in kinds)
    return [_CIRCLE_ORDERS * _KINDS[kind].weight / total_weight for kind in kinds]


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
    mode: str,
    shifts: list[list[int]],
    shops: list[Record],
    served: list[int],
) -> Record:
    """A rider starting at its first served shop."""
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
    rates = _minute_rates(spec)
    chosen = rng.choice(rates.size, size=n_orders, p=rates / rates.sum())
    return np.sort(chosen * 60 + rng.integers(0, 60, size=n_orders))


def _minute_rates(spec: _Kind) -> np.ndarray:
    """Relative order rate of each minute of the day; zero when no order can be placed."""
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
    return rates


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
