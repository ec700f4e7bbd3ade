"""Independent feasibility checker: judges a simulation output folder vs its scenario.

Every time is recomputed from the rules in DESIGN.md ("Travel and timing rules", "Exact
definitions"). On purpose this module imports nothing from `router/`: only the standard
library and numpy, so that a bug in the engine cannot hide itself in the checker.

Units: times are integer seconds from the scenario start, distances metres.
"""

from __future__ import annotations

import csv
import json
import math
import pathlib
from dataclasses import dataclass
from typing import Any

import numpy as np

EARTH_RADIUS_M = 6_371_008.8
DEFAULT_DETOUR = 1.3
DEFAULT_SPEEDS_MPS = {"walk": 1.3, "bike": 4.0, "ebike": 5.0}
DEFAULT_PICKUP_S = 60
DEFAULT_HANDOFF_S = 90
DEFAULT_CIRCLE_WALK_MIN = 15
DEFAULT_PROMISE_MIN = 30

OUTCOME_HEADER = [
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
]
TRIP_HEADER = [
    "trip_id",
    "rider_id",
    "shop_id",
    "assigned_s",
    "arrive_shop_s",
    "depart_s",
    "order_ids",
]
STATUSES = frozenset({"delivered", "rejected", "undelivered", "cancelled"})
# Filled exactly when an order is delivered (a committed trip always completes).
ASSIGNMENT_CELLS = ("rider_id", "trip_id", "assigned_s", "depart_s", "delivered_s")

REL_TOL = 1e-6
ABS_TOL_ZERO = 1e-6


# --------------------------------------------------------------------------------------
# Scenario, read with the DESIGN defaults


@dataclass(frozen=True)
class _Shop:
    shop_id: str
    lat: float
    lon: float
    circle_walk_min: float


@dataclass(frozen=True)
class _Order:
    order_id: str
    shop_id: str
    lat: float
    lon: float
    size: float
    placed_s: float
    ready_s: float
    promised_s: float


@dataclass(frozen=True)
class _Rider:
    rider_id: str
    mode: str
    capacity: float
    shop_ids: tuple[str, ...]
    start: tuple[float, float] | None  # lat, lon; None if it serves no known shop
    shifts: tuple[tuple[float, float], ...]


@dataclass(frozen=True)
class _Travel:
    detour: float
    speeds_mps: dict[str, float]
    pickup_s: float
    handoff_s: float
    tol_s: float

    def distance_m(self, a: tuple[float, float], b: tuple[float, float]) -> float:
        """Haversine distance times the detour factor."""
        lat1, lon1, lat2, lon2 = map(math.radians, (a[0], a[1], b[0], b[1]))
        h = (
            math.sin((lat2 - lat1) / 2) ** 2
            + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
        )
        return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h))) * self.detour

    def time_s(self, distance_m: float, mode: str) -> tuple[int, int]:
        """Whole-second travel time (nominal, lenient) = (ceil(x - tol), ceil(x + tol)).

        They differ only when x lies within tol of an integer; equality checks accept
        either, so rounding noise in the engine is not a violation.
        """
        x = distance_m / self.speeds_mps[mode]
        return math.ceil(x - self.tol_s), math.ceil(x + self.tol_s)


@dataclass(frozen=True)
class _Scenario:
    horizon_s: float
    travel: _Travel
    shops: dict[str, _Shop]
    riders: dict[str, _Rider]
    orders: dict[str, _Order]

    def pos(self, order_or_shop: _Order | _Shop) -> tuple[float, float]:
        return order_or_shop.lat, order_or_shop.lon

    def serving(self, shop_id: str) -> list[_Rider]:
        return [r for r in self.riders.values() if shop_id in r.shop_ids]


def _read_scenario(scenario: dict[str, Any], tol_s: float) -> _Scenario:
    travel_in = scenario.get("travel") or {}
    speeds = dict(DEFAULT_SPEEDS_MPS)
    speeds.update({k: float(v) for k, v in (travel_in.get("speed_mps") or {}).items()})
    travel = _Travel(
        detour=float(travel_in.get("detour", DEFAULT_DETOUR)),
        speeds_mps=speeds,
        pickup_s=travel_in.get("pickup_s", DEFAULT_PICKUP_S),
        handoff_s=travel_in.get("handoff_s", DEFAULT_HANDOFF_S),
        tol_s=tol_s,
    )
    shops: dict[str, _Shop] = {}
    promise_min: dict[str, float] = {}
    for s in scenario.get("shops", []):
        shops[s["id"]] = _Shop(
            s["id"],
            float(s["lat"]),
            float(s["lon"]),
            s.get("circle_walk_min", DEFAULT_CIRCLE_WALK_MIN),
        )
        promise_min[s["id"]] = s.get("promise_min", DEFAULT_PROMISE_MIN)
    riders: dict[str, _Rider] = {}
    for r in scenario.get("riders", []):
        shop_ids = tuple(r["shops"]) if r.get("shops") is not None else tuple(shops)
        if r.get("lat") is not None and r.get("lon") is not None:
            start: tuple[float, float] | None = (float(r["lat"]), float(r["lon"]))
        elif shop_ids and shop_ids[0] in shops:
            first = shops[shop_ids[0]]
            start = (first.lat, first.lon)
        else:
            start = None
        riders[r["id"]] = _Rider(
            r["id"],
            r["mode"],
            r["capacity"],
            shop_ids,
            start,
            tuple((a, b) for a, b in r.get("shifts", [])),
        )
    orders: dict[str, _Order] = {}
    for o in scenario.get("orders", []):
        promised = o.get("promised_s")
        if promised is None:
            promised = o["placed_s"] + promise_min.get(o["shop"], DEFAULT_PROMISE_MIN) * 60
        orders[o["id"]] = _Order(
            o["id"],
            o["shop"],
            float(o["lat"]),
            float(o["lon"]),
            o["size"],
            o["placed_s"],
            o["ready_s"],
            promised,
        )
    return _Scenario(scenario.get("horizon_s", 86400), travel, shops, riders, orders)


# --------------------------------------------------------------------------------------
# Output files


@dataclass
class _Outcome:
    order_id: str
    shop_id: str
    status: str
    rider_id: str
    trip_id: str
    times: dict[str, int | None]  # placed_s .. delivered_s


@dataclass
class _Trip:
    trip_id: str
    rider_id: str
    shop_id: str
    assigned_s: int
    arrive_shop_s: int
    depart_s: int
    order_ids: list[str]  # known orders only, in delivery sequence


def _read_csv(path: pathlib.Path, header: list[str], v: list[str]) -> list[dict[str, str]] | None:
    """Rows as dicts, or None (and a violation) if the file or header is unusable."""
    if not path.is_file():
        v.append(f"{path.name}: missing")
        return None
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        got = next(reader, None)
        if got != header:
            v.append(f"{path.name}: header {got} != {header}")
            return None
        rows = []
        for line_no, cells in enumerate(reader, start=2):
            if not cells:
                continue
            if len(cells) != len(header):
                v.append(
                    f"{path.name}: line {line_no} has {len(cells)} cells, expected {len(header)}"
                )
                continue
            rows.append(dict(zip(header, cells, strict=True)))
        return rows


def _int_cell(value: str, where: str, v: list[str]) -> int | None:
    """An integer-seconds cell; '' is None; a non-integral value is a violation."""
    value = value.strip()
    if value == "":
        return None
    try:
        return int(value)
    except ValueError:
        pass
    try:
        f = float(value)
    except ValueError:
        f = math.nan
    if math.isfinite(f) and f == int(f):
        return int(f)
    v.append(f"{where}: {value!r} is not integer seconds")
    return None


# --------------------------------------------------------------------------------------
# Checks


def _must_reject(sc: _Scenario, order: _Order) -> tuple[bool | None, str]:
    """Whether the order must be rejected (None: on the circle's rounding edge); why."""
    shop = sc.shops.get(order.shop_id)
    if shop is None:
        return True, f"unknown shop {order.shop_id}"
    if order.size <= 0:
        return True, f"size {order.size} <= 0"
    serving = sc.serving(shop.shop_id)
    if not serving:
        return True, f"no rider serves shop {shop.shop_id}"
    max_cap = max(r.capacity for r in serving)
    if order.size > max_cap:
        return (
            True,
            f"size {order.size} > largest capacity {max_cap} of its shop's riders",
        )
    limit_s = shop.circle_walk_min * 60
    lo, hi = sc.travel.time_s(sc.travel.distance_m(sc.pos(shop), sc.pos(order)), "walk")
    if lo > limit_s:
        return True, f"outside the circle (walk {lo} s > {limit_s} s)"
    if hi > limit_s:
        return None, f"on the circle's edge (walk {lo}..{hi} s, limit {limit_s} s)"
    return False, f"inside the circle (walk {lo} s <= {limit_s} s) and valid"


def _check_outcomes(sc: _Scenario, raw: list[dict[str, str]], v: list[str]) -> dict[str, _Outcome]:
    rows: dict[str, _Outcome] = {}
    for raw_row in raw:
        oid = raw_row["order_id"]
        where = f"outcomes.csv order {oid}"
        if oid in rows:
            v.append(f"{where}: more than one row")
            continue
        order = sc.orders.get(oid)
        if order is None:
            v.append(f"{where}: not an order of the scenario")
            continue
        times = {k: _int_cell(raw_row[k], f"{where} {k}", v) for k in OUTCOME_HEADER[5:]}
        row = _Outcome(
            oid,
            raw_row["shop_id"],
            raw_row["status"],
            raw_row["rider_id"],
            raw_row["trip_id"],
            times,
        )
        rows[oid] = row
        if row.status not in STATUSES:
            v.append(f"{where}: status {row.status!r} not in {sorted(STATUSES)}")
        if row.shop_id != order.shop_id:
            v.append(f"{where}: shop_id {row.shop_id} != scenario shop {order.shop_id}")
        for key, want in (
            ("placed_s", order.placed_s),
            ("ready_s", order.ready_s),
            ("promised_s", order.promised_s),
        ):
            if times[key] is None or times[key] != want:
                v.append(f"{where}: {key} {times[key]} != scenario {want}")
        must, why = _must_reject(sc, order)
        if must is True and row.status != "rejected":
            v.append(f"{where}: must be rejected ({why}) but status is {row.status}")
        elif must is False and row.status == "rejected":
            v.append(f"{where}: rejected but {why}")
        cells = {
            "rider_id": row.rider_id,
            "trip_id": row.trip_id,
            **{k: times[k] for k in ASSIGNMENT_CELLS[2:]},
        }
        if row.status == "delivered":
            empty = [k for k, c in cells.items() if c in (None, "")]
            if empty:
                v.append(f"{where}: delivered but {', '.join(empty)} empty")
        elif row.status in STATUSES:
            filled = [k for k, c in cells.items() if c not in (None, "")]
            if filled:
                v.append(f"{where}: status {row.status} but {', '.join(filled)} filled")
    for oid in sc.orders:
        if oid not in rows:
            v.append(f"outcomes.csv: no row for scenario order {oid}")
    return rows


def _in_shift(t: float, shifts: tuple[tuple[float, float], ...]) -> bool:
    return any(a <= t <= b for a, b in shifts)


def _check_trips(
    sc: _Scenario, raw: list[dict[str, str]], rows: dict[str, _Outcome], v: list[str]
) -> list[_Trip]:
    trips: list[_Trip] = []
    seen_trip_ids: set[str] = set()
    trip_of: dict[str, str] = {}  # order id -> first trip carrying it
    for raw_trip in raw:
        tid = raw_trip["trip_id"]
        where = f"trips.csv trip {tid}"
        if tid in seen_trip_ids:
            v.append(f"{where}: trip_id used more than once")
        seen_trip_ids.add(tid)
        rider = sc.riders.get(raw_trip["rider_id"])
        shop = sc.shops.get(raw_trip["shop_id"])
        if rider is None:
            v.append(f"{where}: unknown rider {raw_trip['rider_id']}")
        if shop is None:
            v.append(f"{where}: unknown shop {raw_trip['shop_id']}")
        if rider is not None and shop is not None and shop.shop_id not in rider.shop_ids:
            v.append(f"{where}: rider {rider.rider_id} does not serve shop {shop.shop_id}")
        t = {
            k: _int_cell(raw_trip[k], f"{where} {k}", v)
            for k in ("assigned_s", "arrive_shop_s", "depart_s")
        }
        for k, val in t.items():
            if val is None:
                v.append(f"{where}: {k} empty")
        order_ids = raw_trip["order_ids"].split()
        if not order_ids:
            v.append(f"{where}: no orders")
        known: list[str] = []
        for oid in order_ids:
            order = sc.orders.get(oid)
            if order is None:
                v.append(f"{where}: unknown order {oid}")
                continue
            if oid in trip_of:
                v.append(f"order {oid} is in more than one trip ({trip_of[oid]}, {tid})")
                continue
            trip_of[oid] = tid
            known.append(oid)
            if order.shop_id != raw_trip["shop_id"]:
                v.append(
                    f"{where}: order {oid} belongs to shop {order.shop_id}, "
                    f"not {raw_trip['shop_id']}"
                )
            if t["assigned_s"] is not None and t["assigned_s"] < order.placed_s:
                v.append(
                    f"{where}: assigned_s {t['assigned_s']} is before order {oid}'s "
                    f"placed_s {order.placed_s} (committed before it was revealed)"
                )
            row = rows.get(oid)
            if row is None:
                continue
            if row.status != "delivered":
                v.append(f"{where}: carries order {oid} whose status is {row.status}")
                continue
            for key, want, got in (
                ("rider_id", raw_trip["rider_id"], row.rider_id),
                ("trip_id", tid, row.trip_id),
                ("assigned_s", t["assigned_s"], row.times["assigned_s"]),
                ("depart_s", t["depart_s"], row.times["depart_s"]),
            ):
                if got != want:
                    v.append(f"outcomes.csv order {oid}: {key} {got} != trip {tid}'s {want}")
        if rider is not None:
            size = sum(sc.orders[oid].size for oid in known)
            if size > rider.capacity:
                v.append(
                    f"{where}: bundle size {size} exceeds capacity {rider.capacity} "
                    f"of rider {rider.rider_id}"
                )
            if t["depart_s"] is not None and not _in_shift(t["depart_s"], rider.shifts):
                v.append(
                    f"{where}: depart_s {t['depart_s']} is outside every shift of "
                    f"rider {rider.rider_id} {[list(s) for s in rider.shifts]}"
                )
        if (
            t["assigned_s"] is not None
            and t["depart_s"] is not None
            and t["assigned_s"] > t["depart_s"]
        ):
            v.append(f"{where}: assigned_s {t['assigned_s']} > depart_s {t['depart_s']}")
        if (
            rider is not None
            and shop is not None
            and t["assigned_s"] is not None
            and t["arrive_shop_s"] is not None
            and t["depart_s"] is not None
        ):
            trips.append(
                _Trip(
                    tid,
                    rider.rider_id,
                    shop.shop_id,
                    t["assigned_s"],
                    t["arrive_shop_s"],
                    t["depart_s"],
                    known,
                )
            )
    for oid, row in rows.items():
        if row.status == "delivered" and oid not in trip_of:
            v.append(f"outcomes.csv order {oid}: delivered but in no trip")
    return trips


def _check_timing(
    sc: _Scenario, trips: list[_Trip], rows: dict[str, _Outcome], v: list[str]
) -> float:
    """Replays each rider's trips; returns the total distance travelled (metres)."""
    tr = sc.travel
    total_m = 0.0
    by_rider: dict[str, list[_Trip]] = {}
    for trip in trips:
        by_rider.setdefault(trip.rider_id, []).append(trip)
    for rider_id, rider_trips in by_rider.items():
        rider = sc.riders[rider_id]
        pos = rider.start
        free_s: float = min((a for a, _ in rider.shifts), default=0)
        for trip in sorted(rider_trips, key=lambda x: (x.assigned_s, x.depart_s, x.trip_id)):
            where = f"trips.csv trip {trip.trip_id}"
            shop = sc.shops[trip.shop_id]
            shop_pos = sc.pos(shop)
            leave_s = max(trip.assigned_s, free_s)
            d = tr.distance_m(pos, shop_pos) if pos is not None else 0.0
            total_m += d
            lo, hi = tr.time_s(d, rider.mode)
            if not leave_s + lo <= trip.arrive_shop_s <= leave_s + hi:
                v.append(
                    f"{where}: arrive_shop_s {trip.arrive_shop_s} != {leave_s + lo} "
                    f"(leave {leave_s} = max(assigned_s, rider free) + travel {lo} s)"
                )
            ready_s = max((sc.orders[o].ready_s for o in trip.order_ids), default=-math.inf)
            earliest_s = max(trip.arrive_shop_s, ready_s) + tr.pickup_s
            if trip.depart_s < earliest_s:
                v.append(
                    f"{where}: depart_s {trip.depart_s} < {earliest_s} = max("
                    f"arrive_shop_s {trip.arrive_shop_s}, max ready_s {ready_s})"
                    f" + pickup_s {tr.pickup_s}"
                )
            elif trip.depart_s > earliest_s:
                # Later than the earliest only when waiting for the next shift to start.
                later = [a for a, _ in rider.shifts if a > earliest_s]
                waits = bool(later) and not _in_shift(earliest_s, rider.shifts)
                if not waits or trip.depart_s != min(later):
                    v.append(
                        f"{where}: depart_s {trip.depart_s} later than earliest "
                        f"{earliest_s} without waiting for a shift start"
                    )
            t_s: float = trip.depart_s
            prev = shop_pos
            for oid in trip.order_ids:
                order = sc.orders[oid]
                d = tr.distance_m(prev, sc.pos(order))
                total_m += d
                lo, hi = tr.time_s(d, rider.mode)
                want_lo, want_hi = t_s + lo + tr.handoff_s, t_s + hi + tr.handoff_s
                row = rows.get(oid)
                got = row.times["delivered_s"] if row is not None else None
                if got is not None and not want_lo <= got <= want_hi:
                    v.append(
                        f"{where}: order {oid} delivered_s {got} != {want_lo} (leave "
                        f"{t_s} + travel {lo} s + handoff_s {tr.handoff_s})"
                    )
                # Continue from the reported time so one error is reported once.
                t_s = want_lo if got is None else got
                prev = sc.pos(order)
            free_s = t_s
            pos = prev
    return total_m


# --------------------------------------------------------------------------------------
# KPIs


def _is_number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def _compare(name: str, got: Any, want: float | None, v: list[str]) -> None:
    """Relative tolerance 1e-6 (absolute 1e-6 around zero); want None means undefined
    (empty set), where null, NaN or 0 are accepted."""
    if want is None:
        if got is None or (_is_number(got) and (math.isnan(got) or got == 0)):
            return
        v.append(f"kpis.json: {name} {got!r}, expected null (undefined on an empty set)")
        return
    if not _is_number(got):
        v.append(f"kpis.json: {name} {got!r} is not a number (expected {want})")
        return
    abs_tol = ABS_TOL_ZERO if want == 0 else 0.0
    if not math.isclose(got, want, rel_tol=REL_TOL, abs_tol=abs_tol):
        v.append(f"kpis.json: {name} {got} != recomputed {want}")


def _merged_hours(shifts: tuple[tuple[float, float], ...], horizon_s: float) -> float:
    clipped = sorted((max(a, 0), min(b, horizon_s)) for a, b in shifts)
    total_s = 0.0
    cur: list[float] | None = None
    for a, b in clipped:
        if b <= a:
            continue
        if cur is not None and a <= cur[1]:
            cur[1] = max(cur[1], b)
            continue
        if cur is not None:
            total_s += cur[1] - cur[0]
        cur = [a, b]
    if cur is not None:
        total_s += cur[1] - cur[0]
    return total_s / 3600


def _check_kpis(
    sc: _Scenario,
    rows: dict[str, _Outcome],
    raw_trips: list[dict[str, str]],
    distance_m: float,
    kpis: dict[str, Any],
    v: list[str],
) -> None:
    tr = sc.travel
    status_count = {s: sum(r.status == s for r in rows.values()) for s in STATUSES}
    delivered = [
        (sc.orders[oid], r.times["delivered_s"])
        for oid, r in rows.items()
        if r.status == "delivered" and r.times["delivered_s"] is not None
    ]
    n_orders = len(sc.orders)
    for key, count in (
        ("orders", n_orders),
        ("delivered", status_count["delivered"]),
        ("rejected", status_count["rejected"]),
        ("undelivered", status_count["undelivered"]),
    ):
        _compare(key, kpis.get(key), count, v)

    open_orders = n_orders - status_count["rejected"] - status_count["cancelled"]
    on_time = sum(d <= o.promised_s for o, d in delivered)
    _compare(
        "on_time_rate",
        kpis.get("on_time_rate"),
        on_time / open_orders if open_orders else None,
        v,
    )

    c2d = np.array([d - o.placed_s for o, d in delivered], dtype=np.float64)
    late = np.maximum(0.0, np.array([d - o.promised_s for o, d in delivered], dtype=np.float64))
    for block, values, stats in (
        ("click_to_door_s", c2d, ("mean", "p50", "p90", "p99", "max")),
        ("lateness_s", late, ("mean", "p90", "max")),
    ):
        got_block = kpis.get(block)
        if not isinstance(got_block, dict):
            v.append(f"kpis.json: {block} is not an object")
            continue
        for stat in stats:
            stat_want: float | None = None
            if values.size:
                if stat == "mean":
                    stat_want = float(values.mean())
                elif stat == "max":
                    stat_want = float(values.max())
                else:
                    stat_want = float(np.percentile(values, float(stat[1:])))
            _compare(f"{block}.{stat}", got_block.get(stat), stat_want, v)

    lower: list[float] = []
    for o, _ in delivered:
        shop = sc.shops.get(o.shop_id)
        modes = {r.mode for r in sc.serving(o.shop_id)}
        if shop is None or not modes:
            continue  # already a violation: such an order must be rejected
        d = tr.distance_m(sc.pos(shop), sc.pos(o))
        fastest_s = min(tr.time_s(d, m)[0] for m in modes)
        lower.append(
            max(o.placed_s, o.ready_s) + tr.pickup_s + fastest_s + tr.handoff_s - o.placed_s
        )
    ratio = None
    if c2d.size and len(lower) == c2d.size and sum(lower) > 0:
        ratio = float(c2d.mean()) / float(np.mean(lower))
    _compare("lower_bound_ratio", kpis.get("lower_bound_ratio"), ratio, v)

    carried = sum(len(t["order_ids"].split()) for t in raw_trips)
    _compare(
        "orders_per_trip",
        kpis.get("orders_per_trip"),
        carried / len(raw_trips) if raw_trips else None,
        v,
    )
    hours = sum(_merged_hours(r.shifts, sc.horizon_s) for r in sc.riders.values())
    _compare(
        "orders_per_rider_hour",
        kpis.get("orders_per_rider_hour"),
        status_count["delivered"] / hours if hours else None,
        v,
    )
    _compare("rider_distance_m", kpis.get("rider_distance_m"), distance_m, v)

    tick = kpis.get("tick_ms")
    if not isinstance(tick, dict) or not all(
        _is_number(tick.get(k)) for k in ("p50", "p99", "max")
    ):
        v.append(f"kpis.json: tick_ms {tick!r} is not an object with numbers p50, p99, max")
    for key in ("policy", "scenario"):
        if not isinstance(kpis.get(key), str):
            v.append(f"kpis.json: {key} {kpis.get(key)!r} is not a string")


# --------------------------------------------------------------------------------------
# Entry point


def check_simulation(
    scenario: dict[str, Any], out_dir: pathlib.Path, *, tol_s: float = 1e-6
) -> list[str]:
    """Judges a simulation output folder against its scenario; returns human-readable
    violations (an empty list means feasible)."""
    out_dir = pathlib.Path(out_dir)
    v: list[str] = []
    sc = _read_scenario(scenario, tol_s)
    raw_outcomes = _read_csv(out_dir / "outcomes.csv", OUTCOME_HEADER, v)
    raw_trips = _read_csv(out_dir / "trips.csv", TRIP_HEADER, v)
    kpis: dict[str, Any] | None = None
    kpis_path = out_dir / "kpis.json"
    if not kpis_path.is_file():
        v.append("kpis.json: missing")
    else:
        try:
            loaded = json.loads(kpis_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            v.append(f"kpis.json: not valid JSON ({exc})")
        else:
            if isinstance(loaded, dict):
                kpis = loaded
            else:
                v.append("kpis.json: not a JSON object")
    if raw_outcomes is None or raw_trips is None:
        return v
    rows = _check_outcomes(sc, raw_outcomes, v)
    trips = _check_trips(sc, raw_trips, rows, v)
    distance_m = _check_timing(sc, trips, rows, v)
    if kpis is not None:
        _check_kpis(sc, rows, raw_trips, distance_m, kpis, v)
    return v
