"""A simulated MDRP day in the evaluator's files, and its metrics (times in minutes).

Files (the names the Grubhub evaluator opens):

- ``solution_info_assignments.txt``: ``assignment_time pickup_time courier order_1 ...``;
- ``solution_info_orders.txt``: ``order placement_time ready_time pickup_time dropoff_time
  courier`` (single spaces; undelivered orders are left out);
- ``solution_info_couriers.txt``: ``courier departure_time origin destination``, grouped by
  courier in execution order (origin ``0`` is the courier's start point).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from router.mdrp.adapter import MINUTE_S, half_dropoff_s, half_pickup_s
from router.mdrp.instance import MdrpInstance
from router.simulate import SimulationResult

ASSIGNMENTS_FILE = "solution_info_assignments.txt"
ORDERS_FILE = "solution_info_orders.txt"
COURIERS_FILE = "solution_info_couriers.txt"


@dataclass(frozen=True)
class Assignment:
    assignment_min: int
    pickup_min: int
    courier: str
    orders: tuple[str, ...]  # delivery sequence


@dataclass(frozen=True)
class Move:
    courier: str
    departure_min: int
    origin: str  # "0": the courier's start point
    destination: str


@dataclass
class MdrpSolution:
    assignments: list[Assignment] = field(default_factory=list)
    pickup_min: dict[str, int] = field(default_factory=dict)  # delivered orders only
    dropoff_min: dict[str, int] = field(default_factory=dict)
    courier_of: dict[str, str] = field(default_factory=dict)
    moves: list[Move] = field(default_factory=list)  # grouped by courier, in execution order
    driving_min: dict[str, int] = field(default_factory=dict)


def _minutes(seconds: int) -> int:
    if seconds % MINUTE_S:
        raise ValueError(f"time {seconds} s is not a whole minute")
    return seconds // MINUTE_S


def to_solution(instance: MdrpInstance, result: SimulationResult) -> MdrpSolution:
    """The MDRP solution of a simulated day (engine seconds back to MDRP minutes)."""
    shift_s, drop_shift_s = half_pickup_s(instance), half_dropoff_s(instance)
    restaurants = {r.id: (r.x_m, r.y_m) for r in instance.restaurants}
    drops = {o.id: (o.x_m, o.y_m) for o in instance.orders}
    orders = instance.orders
    solution = MdrpSolution()
    by_courier: dict[int, list[Move]] = {}
    # trips given up at the restaurant (ready revealed: food not ready in time, or the courier
    # waiting there given other orders) are only the ride to it; a courier's next trip from
    # the restaurant it waited at needs no move. Each courier's trips in the order committed
    # (idle couriers sent ahead to a restaurant, ``Relocate``: a ride with no orders, first
    # among what a courier did at its minute)
    abandoned = {id(trip) for trip in [*result.abandoned_trips, *result.relocations]}
    all_trips = sorted(
        [*result.trips, *result.abandoned_trips, *result.relocations],
        key=lambda t: (t.assigned_s, bool(t.orders), int(t.trip_id[1:])),
    )
    for trip in all_trips:
        courier = instance.couriers[trip.rider]
        ids = tuple(orders[i].id for i in trip.orders)
        restaurant = (
            orders[trip.orders[0]].restaurant if trip.orders else instance.restaurants[trip.shop].id
        )
        moves = by_courier.setdefault(trip.rider, [])
        origin = moves[-1].destination if moves else "0"
        driving = 0
        if origin != restaurant:
            if origin == "0":
                here = (courier.x_m, courier.y_m)
            else:
                here = restaurants[origin] if origin in restaurants else drops[origin]
            driving = instance.travel_min(here, restaurants[restaurant])
            leave_min = _minutes(trip.arrive_shop_s) - driving
            moves.append(Move(courier.id, leave_min, origin, restaurant))
        if id(trip) in abandoned:
            solution.driving_min[courier.id] = solution.driving_min.get(courier.id, 0) + driving
            continue
        pickup_min = _minutes(trip.depart_s - shift_s)
        solution.assignments.append(
            Assignment(_minutes(trip.assigned_s), pickup_min, courier.id, ids)
        )
        place, clock_min = restaurants[restaurant], _minutes(trip.depart_s)
        previous = restaurant
        for i, order_id in zip(trip.orders, ids, strict=True):
            moves.append(Move(courier.id, clock_min, previous, order_id))
            driving += instance.travel_min(place, drops[order_id])
            delivered_s = int(result.delivered_s[i])
            solution.pickup_min[order_id] = pickup_min
            solution.dropoff_min[order_id] = _minutes(delivered_s - drop_shift_s)
            solution.courier_of[order_id] = courier.id
            place, clock_min, previous = drops[order_id], _minutes(delivered_s), order_id
        solution.driving_min[courier.id] = solution.driving_min.get(courier.id, 0) + driving
    for rider in sorted(by_courier):
        solution.moves.extend(by_courier[rider])
    return solution


def write_solution(instance: MdrpInstance, solution: MdrpSolution, out_dir: str | Path) -> None:
    """Write the three files the Grubhub evaluator reads."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    lines = ["assignment_time pickup_time courier orders"]
    lines += [
        f"{a.assignment_min} {a.pickup_min} {a.courier} {' '.join(a.orders)}"
        for a in solution.assignments
    ]
    (out / ASSIGNMENTS_FILE).write_text("\n".join(lines) + "\n", encoding="utf-8")
    lines = ["order placement_time ready_time pickup_time dropoff_time courier"]
    lines += [
        f"{o.id} {o.placement_min} {o.ready_min} {solution.pickup_min[o.id]} "
        f"{solution.dropoff_min[o.id]} {solution.courier_of[o.id]}"
        for o in instance.orders
        if o.id in solution.dropoff_min
    ]
    (out / ORDERS_FILE).write_text("\n".join(lines) + "\n", encoding="utf-8")
    lines = ["courier departure_time origin destination"]
    lines += [f"{m.courier} {m.departure_min} {m.origin} {m.destination}" for m in solution.moves]
    (out / COURIERS_FILE).write_text("\n".join(lines) + "\n", encoding="utf-8")


def solution_kpis(instance: MdrpInstance, solution: MdrpSolution) -> dict[str, Any]:
    """The evaluator's metrics of a solution (minutes, dollars), with the papers' cost/order."""
    params = instance.parameters
    delivered = [o for o in instance.orders if o.id in solution.dropoff_min]
    click_to_door = np.array(
        [solution.dropoff_min[o.id] - o.placement_min for o in delivered], dtype=np.float64
    )
    ready_to_pickup = np.array(
        [solution.pickup_min[o.id] - o.ready_min for o in delivered], dtype=np.float64
    )
    ready_to_door = np.array(
        [solution.dropoff_min[o.id] - o.ready_min for o in delivered], dtype=np.float64
    )
    overage = np.maximum(0.0, click_to_door - params.target_click_to_door_min)
    orders_by_courier: dict[str, int] = {}
    bundles_by_courier: dict[str, int] = {}
    for a in solution.assignments:
        orders_by_courier[a.courier] = orders_by_courier.get(a.courier, 0) + len(a.orders)
        bundles_by_courier[a.courier] = bundles_by_courier.get(a.courier, 0) + 1
    pay, on_guarantee, utilisation = 0.0, 0, []
    for c in instance.couriers:
        shift_min = c.off_min - c.on_min
        guaranteed = shift_min * params.guaranteed_pay_per_hour / 60.0
        earned = orders_by_courier.get(c.id, 0) * params.pay_per_order
        pay += max(guaranteed, earned)
        on_guarantee += earned < guaranteed
        busy_min = (
            solution.driving_min.get(c.id, 0)
            + params.dropoff_service_min * orders_by_courier.get(c.id, 0)
            + params.pickup_service_min * bundles_by_courier.get(c.id, 0)
        )
        utilisation.append(busy_min / shift_min if shift_min else 0.0)
    n_orders, n_delivered = len(instance.orders), len(delivered)

    def stats(values: np.ndarray) -> dict[str, float]:
        if not values.size:
            return {"mean": 0.0, "p50": 0.0, "p90": 0.0, "max": 0.0}
        return {
            "mean": float(values.mean()),
            "p50": float(np.percentile(values, 50)),
            "p90": float(np.percentile(values, 90)),
            "max": float(values.max()),
        }

    return {
        "instance": instance.name,
        "orders": n_orders,
        "delivered": n_delivered,
        "undelivered_pct": 100.0 * (n_orders - n_delivered) / n_orders if n_orders else 0.0,
        "click_to_door_min": stats(click_to_door),
        "ready_to_pickup_min": stats(ready_to_pickup),
        "ready_to_door_min": stats(ready_to_door),
        "overage_min": stats(overage),
        "orders_per_bundle": (
            sum(len(a.orders) for a in solution.assignments) / len(solution.assignments)
            if solution.assignments
            else 0.0
        ),
        "courier_utilisation": float(np.mean(utilisation)) if utilisation else 0.0,
        "total_pay": pay,
        "share_on_guarantee": on_guarantee / len(instance.couriers) if instance.couriers else 0.0,
        "cost_per_order": pay / n_delivered if n_delivered else 0.0,
    }
