"""Independent feasibility checker of MDRP solutions (the Grubhub evaluator's rules and more).

It judges the three solution files of one instance folder, recomputing every time from the
MDRP rules of ../shared/benchmarks/mdrp/README.md, and recomputes the metrics. On purpose it
imports nothing from ``router/``: only the standard library and numpy.

Rules checked (the evaluator's, then the model's service rule it implies):

- every order is in at most one assignment; every bundle is non-empty, of known orders, from
  one restaurant; the orders file lists exactly the assigned orders, with the assignment's
  courier and pickup time;
- assignment time >= placement time of each of its orders;
- pickup time <= the courier's off time; pickup time >= every ready time of the bundle;
- drop-offs follow the listed sequence, each >= the previous + the drop-off service;
- courier moves are grouped by courier, continuous (each origin = the previous destination,
  ``0`` = the start point first), and the timeline ``on_time, departure, arrival, ...`` with
  arrival = departure + ceil(euclidean metres / meters_per_minute) never goes back in time;
- at each pickup and drop-off time the courier is at that restaurant or diner (the last event
  strictly before is the arrival there);
- the service rule: pickup >= arrival + P/2 and the courier leaves >= pickup + P/2; drop-off =
  arrival + D/2 at the earliest and the courier leaves >= drop-off + D/2.

Times are integer minutes, coordinates metres.
"""

from __future__ import annotations

import bisect
import math
import pathlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class MdrpCheck:
    violations: list[str] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def feasible(self) -> bool:
        return not self.violations


def _table(path: pathlib.Path) -> list[dict[str, str]]:
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    header = [cell.strip() for cell in lines[0].split("\t")]
    return [
        dict(zip(header, (c.strip() for c in line.split("\t")), strict=True)) for line in lines[1:]
    ]


def _travel_min(a: tuple[float, float], b: tuple[float, float], speed: float) -> int:
    # the evaluator: ceil(sqrt(dx^2 + dy^2) / meters_per_minute) in double precision
    return math.ceil(math.sqrt((b[0] - a[0]) ** 2 + (b[1] - a[1]) ** 2) / speed)


def check_mdrp(instance_dir: str | pathlib.Path, solution_dir: str | pathlib.Path) -> MdrpCheck:
    """Every violation of the MDRP rules in a solution folder, and its metrics if feasible."""
    inst, sol = pathlib.Path(instance_dir), pathlib.Path(solution_dir)
    out = MdrpCheck()
    v = out.violations
    params = _table(inst / "instance_parameters.txt")[0]
    speed = float(params["meters_per_minute"])
    pickup_service = int(params["pickup service minutes"])
    drop_service = int(params["dropoff service minutes"])
    orders = {r["order"]: r for r in _table(inst / "orders.txt")}
    couriers = {r["courier"]: r for r in _table(inst / "couriers.txt")}
    places: dict[str, tuple[float, float]] = {}
    for r in _table(inst / "restaurants.txt"):
        places[r["restaurant"]] = (float(r["x"]), float(r["y"]))
    for table in (orders, couriers):
        for key, r in table.items():
            places[key] = (float(r["x"]), float(r["y"]))

    # assignments
    lines = (sol / "solution_info_assignments.txt").read_text(encoding="utf-8").splitlines()
    assignments: list[tuple[int, int, str, list[str]]] = []
    seen: dict[str, int] = {}
    for number, line in enumerate(lines[1:], start=2):
        cells = line.split()
        if not cells:
            continue
        where = f"assignments line {number}"
        if len(cells) < 4:
            v.append(f"{where}: expected time, pickup, courier and at least one order")
            continue
        assigned, pickup, courier, bundle = int(cells[0]), int(cells[1]), cells[2], cells[3:]
        if courier not in couriers:
            v.append(f"{where}: unknown courier {courier}")
            continue
        unknown = [o for o in bundle if o not in orders]
        if unknown:
            v.append(f"{where}: unknown orders {unknown}")
            continue
        for o in bundle:
            if o in seen:
                v.append(f"{where}: order {o} already in assignment line {seen[o]}")
            seen[o] = number
            if assigned < int(orders[o]["placement_time"]):
                v.append(f"{where}: assigned at {assigned} before {o} is placed")
            if pickup < int(orders[o]["ready_time"]):
                v.append(f"{where}: pickup {pickup} before {o} is ready")
        if len({orders[o]["restaurant"] for o in bundle}) != 1:
            v.append(f"{where}: orders from more than one restaurant")
        if pickup > int(couriers[courier]["off_time"]):
            v.append(f"{where}: pickup {pickup} after {courier}'s off time")
        assignments.append((assigned, pickup, courier, bundle))

    # orders file: single spaces, exact columns
    lines = (sol / "solution_info_orders.txt").read_text(encoding="utf-8").splitlines()
    header = "order placement_time ready_time pickup_time dropoff_time courier"
    if not lines or lines[0] != header:
        v.append(f"orders file: header {lines[:1]} != {header!r}")
        return out
    dropoff: dict[str, int] = {}
    listed: dict[str, tuple[int, str]] = {}
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        cells = line.split(" ")
        if len(cells) != 6:
            v.append(f"orders file line {number}: {len(cells)} single-space cells, expected 6")
            continue
        o = cells[0]
        if o not in orders or o in listed:
            v.append(f"orders file line {number}: unknown or repeated order {o}")
            continue
        row = orders[o]
        if (cells[1], cells[2]) != (row["placement_time"], row["ready_time"]):
            v.append(f"orders file line {number}: placement/ready differ from the instance")
        listed[o] = (int(cells[3]), cells[5])
        dropoff[o] = int(cells[4])
    by_order = {o: (pickup, courier) for _, pickup, courier, bundle in assignments for o in bundle}
    if set(by_order) != set(listed):
        v.append(
            f"orders file and assignments disagree on {sorted(set(by_order) ^ set(listed))[:5]}"
        )
    for o, (pickup, courier) in listed.items():
        if o in by_order and by_order[o] != (pickup, courier):
            v.append(f"order {o}: pickup/courier {(pickup, courier)} != assignment {by_order[o]}")

    # drop-off sequence
    for _, pickup, _, bundle in assignments:
        previous = None
        for o in bundle:
            if o not in dropoff:
                continue
            if previous is not None and dropoff[o] < previous + drop_service:
                v.append(f"order {o}: drop-off {dropoff[o]} < previous {previous} + service")
            if dropoff[o] < pickup:
                v.append(f"order {o}: drop-off {dropoff[o]} before pickup {pickup}")
            previous = dropoff[o]

    # courier timelines
    lines = (sol / "solution_info_couriers.txt").read_text(encoding="utf-8").splitlines()
    times: dict[str, list[int]] = {}
    stops: dict[str, list[str]] = {}
    driving: dict[str, int] = {}
    finished: set[str] = set()
    current = None
    for number, line in enumerate(lines[1:], start=2):
        cells = line.split()
        if not cells:
            continue
        where = f"couriers line {number}"
        if len(cells) != 4 or cells[0] not in couriers:
            v.append(f"{where}: expected courier departure_time origin destination")
            continue
        courier, departure, origin, destination = cells[0], int(cells[1]), cells[2], cells[3]
        if courier != current:
            if courier in finished:
                v.append(f"{where}: moves of {courier} are not grouped")
            if current is not None:
                finished.add(current)
            current = courier
        if courier not in times:
            times[courier] = [int(couriers[courier]["on_time"])]
            stops[courier] = [courier]
            driving[courier] = 0
        origin = courier if origin == "0" else origin
        if origin != stops[courier][-1] or destination not in places or destination in couriers:
            v.append(f"{where}: move {origin}->{destination} after {stops[courier][-1]}")
            continue
        travel = _travel_min(places[origin], places[destination], speed)
        times[courier] += [departure, departure + travel]
        stops[courier] += ["", destination]
        driving[courier] += travel
    for courier, timeline in times.items():
        if timeline != sorted(timeline):
            v.append(f"courier {courier}: timeline goes back in time")

    def event(courier: str, t: int) -> int:
        """Index of the last timeline event strictly before t (the evaluator's location)."""
        return bisect.bisect_left(times.get(courier, []), t) - 1

    for _, pickup, courier, bundle in assignments:
        restaurant = orders[bundle[0]]["restaurant"]
        i = event(courier, pickup)
        if i < 0 or stops[courier][i] != restaurant:
            v.append(f"courier {courier}: not at {restaurant} at pickup {pickup}")
            continue
        arrival = times[courier][i]
        leave = times[courier][i + 1] if i + 1 < len(times[courier]) else math.inf
        if pickup < arrival + pickup_service / 2 or leave < pickup + pickup_service / 2:
            v.append(f"courier {courier}: pickup {pickup} breaks the service rule at {restaurant}")
    for o, (_, courier) in listed.items():
        i = event(courier, dropoff[o])
        if i < 0 or stops[courier][i] != o:
            v.append(f"courier {courier}: not at {o} at drop-off {dropoff[o]}")
            continue
        arrival = times[courier][i]
        leave = times[courier][i + 1] if i + 1 < len(times[courier]) else math.inf
        if dropoff[o] < arrival + drop_service / 2 or leave < dropoff[o] + drop_service / 2:
            v.append(f"courier {courier}: drop-off {dropoff[o]} breaks the service rule at {o}")
    if not v:
        out.metrics = _metrics(params, orders, couriers, assignments, listed, dropoff, driving)
    return out


def _metrics(
    params: dict[str, str],
    orders: dict[str, dict[str, str]],
    couriers: dict[str, dict[str, str]],
    assignments: list[tuple[int, int, str, list[str]]],
    listed: dict[str, tuple[int, str]],
    dropoff: dict[str, int],
    driving: dict[str, int],
) -> dict[str, Any]:
    target = int(params["target click-to-door"])
    c2d = np.array([dropoff[o] - int(orders[o]["placement_time"]) for o in listed], float)
    r2p = np.array([listed[o][0] - int(orders[o]["ready_time"]) for o in listed], float)
    n_orders: dict[str, int] = {}
    n_bundles: dict[str, int] = {}
    for _, _, courier, bundle in assignments:
        n_orders[courier] = n_orders.get(courier, 0) + len(bundle)
        n_bundles[courier] = n_bundles.get(courier, 0) + 1
    pay, utilisation = 0.0, []
    for c, row in couriers.items():
        shift = int(row["off_time"]) - int(row["on_time"])
        pay += max(
            n_orders.get(c, 0) * float(params["pay per order"]),
            shift * float(params["guaranteed pay per hour"]) / 60.0,
        )
        busy = (
            driving.get(c, 0)
            + int(params["dropoff service minutes"]) * n_orders.get(c, 0)
            + int(params["pickup service minutes"]) * n_bundles.get(c, 0)
        )
        utilisation.append(busy / shift if shift else 0.0)
    delivered = len(listed)
    return {
        "delivered": delivered,
        "undelivered_pct": 100.0 * (len(orders) - delivered) / len(orders),
        "click_to_door_mean": float(c2d.mean()) if delivered else 0.0,
        "click_to_door_p90": float(np.percentile(c2d, 90)) if delivered else 0.0,
        "ready_to_pickup_mean": float(r2p.mean()) if delivered else 0.0,
        "overage_mean": float(np.maximum(0, c2d - target).mean()) if delivered else 0.0,
        "orders_per_bundle": delivered / len(assignments) if assignments else 0.0,
        "courier_utilisation": float(np.mean(utilisation)),
        "cost_per_order": pay / delivered if delivered else 0.0,
    }
