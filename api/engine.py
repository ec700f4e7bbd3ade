"""The one place the service calls the engine (``router``): rows in, the engine's arrays, plans
back out as ids and times.

Times in a snapshot are integer seconds from an epoch of one shop's decision: the decision time
itself (``now_s == 0``). ``router`` never imports the service.
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np

from api.models import Order, Rider, RiderShift, Shop
from api.planner import Decide, decide_in_process
from router.dispatch import warm_up as warm_up_dispatch
from router.scenario import TravelRules
from router.snapshot import Snapshot, pad_shifts
from router.travel import MODE_INDEX, travel_s

# DESIGN.md, "Travel and timing rules": the default detour, speeds, pickup and handoff times.
TRAVEL_RULES = TravelRules()
# A rider on duty who declared no shifts works from now for this long.
DEFAULT_SHIFT = timedelta(hours=12)


def walk_s(from_lat: float, from_lon: float, to_lat: float, to_lon: float) -> int:
    """Walking time in whole seconds between two points, by DESIGN's distance rule."""
    return travel_s(
        from_lat, from_lon, to_lat, to_lon, TRAVEL_RULES.detour, TRAVEL_RULES.speed_mps["walk"]
    )


def warm_up(*, dispatch: bool = False) -> None:
    """Compile (or load from cache) the travel kernels, and with ``dispatch`` those of a tick."""
    walk_s(0.0, 0.0, 0.0, 0.001)
    if dispatch:
        warm_up_dispatch()


@dataclass(frozen=True)
class BusyRider:
    """Where and when a rider's committed trip ends (its last drop-off and that ETA)."""

    lat: float
    lon: float
    free_at: datetime


@dataclass(frozen=True)
class TripPlan:
    """A trip the engine commits now: orders in delivery sequence, each with its ETA."""

    rider_id: uuid.UUID
    order_ids: list[uuid.UUID]
    eta_ats: list[datetime]
    leave_at: datetime
    depart_at: datetime


@dataclass
class ShopPlan:
    """The committed trips of one decision, and why each other pending order waits."""

    trips: list[TripPlan] = field(default_factory=list)
    reasons: dict[uuid.UUID, str] = field(default_factory=dict)


def _seconds(moment: datetime, epoch: datetime, *, up: bool = False) -> int:
    """Whole seconds from ``epoch`` to ``moment``, rounded down (or up)."""
    seconds = (moment - epoch).total_seconds()
    return math.ceil(seconds) if up else math.floor(seconds)


# A time in an engine reason: "... until 1795", "... starts at 60" (seconds from the decision).
REASON_TIME = re.compile(r"\b(until|at) (-?\d+)\b")


def absolute_reason(reason: str, now: datetime) -> str:
    """The engine's reason with its times (seconds from ``now``) as UTC instants to the second,
    so that it reads on its own and stays the same from one tick to the next."""

    def instant(match: re.Match[str]) -> str:
        moment = now + timedelta(seconds=int(match.group(2)))
        return f"{match.group(1)} {moment.astimezone(UTC).isoformat(timespec='seconds')}"

    return REASON_TIME.sub(instant, reason)


def _shifts_s(shifts: Sequence[RiderShift] | None, now: datetime) -> tuple[tuple[int, int], ...]:
    """A rider's shifts that have not ended, in seconds from ``now`` (a running one from 0);
    ``shifts`` ``None``: it never declared any, and works ``DEFAULT_SHIFT`` from now."""
    if shifts is None:
        return ((0, _seconds(now + DEFAULT_SHIFT, now)),)
    return tuple(
        (max(0, _seconds(shift.start_at, now, up=True)), _seconds(shift.end_at, now))
        for shift in sorted(shifts, key=lambda shift: shift.start_at)
        if shift.end_at >= now
    )


def plan_shop(
    shop: Shop,
    orders: Sequence[Order],
    riders: Sequence[Rider],
    shifts: Mapping[uuid.UUID, Sequence[RiderShift]],
    busy: Mapping[uuid.UUID, BusyRider],
    now: datetime,
    tick_s: int,
    *,
    rider_shop_ids: Mapping[uuid.UUID, Collection[uuid.UUID]] | None = None,
    rider_homes: Mapping[uuid.UUID, tuple[float, float]] | None = None,
    decide: Decide = decide_in_process,
) -> ShopPlan:
    """Run the Quarterhour policy on one shop's pending ``orders`` and on-duty ``riders``.

    ``rider_shop_ids`` are the shops each rider serves (``rider_shops``; default: every rider
    serves ``shop``): the engine's ``rider_serves``, so a rider not serving the shop gets no
    trip. A free rider with no reported position is at its home shop (``rider_homes``, default
    ``shop``), as DESIGN's "first served shop". A rider absent from ``shifts`` never declared
    any and works from ``now`` for ``DEFAULT_SHIFT``; one present works only in the shifts
    given (those not over: none left, no trip). A busy rider is placed at its last drop-off,
    free when it is delivered and never before the next tick, so that no second trip is
    committed to it. The same rows and ``now`` give the same plan. ``decide`` runs the policy
    on the snapshot (in this process by default; ``api.planner.Planner.decide`` in a worker
    process).
    """
    orders = sorted(orders, key=lambda order: (order.placed_at, str(order.id)))
    riders = sorted(riders, key=lambda rider: (rider.created_at, str(rider.id)))
    if not orders:
        return ShopPlan()
    if not riders:
        return ShopPlan(reasons={order.id: "no rider on duty" for order in orders})
    n_orders, n_riders = len(orders), len(riders)
    rider_lats, rider_lons, rider_free_s = [], [], []
    for rider in riders:
        if rider.id in busy:
            where = busy[rider.id]
            rider_lats.append(where.lat)
            rider_lons.append(where.lon)
            rider_free_s.append(max(tick_s, _seconds(where.free_at, now, up=True)))
        else:
            if rider.lat is not None and rider.lon is not None:
                rider_lats.append(rider.lat)
                rider_lons.append(rider.lon)
            else:
                home_lat, home_lon = (rider_homes or {}).get(rider.id, (shop.lat, shop.lon))
                rider_lats.append(home_lat)
                rider_lons.append(home_lon)
            rider_free_s.append(0)
    starts_s, ends_s = pad_shifts([_shifts_s(shifts.get(r.id), now) for r in riders])
    snapshot = Snapshot(
        now_s=0,
        detour=TRAVEL_RULES.detour,
        speeds_mps=np.array(TRAVEL_RULES.speeds_by_mode(), dtype=np.float64),
        pickup_s=TRAVEL_RULES.pickup_s,
        handoff_s=TRAVEL_RULES.handoff_s,
        shop_lats=np.array([shop.lat], dtype=np.float64),
        shop_lons=np.array([shop.lon], dtype=np.float64),
        order_keys=np.arange(n_orders, dtype=np.int64),
        order_shops=np.zeros(n_orders, dtype=np.int64),
        order_lats=np.array([order.dropoff_lat for order in orders], dtype=np.float64),
        order_lons=np.array([order.dropoff_lon for order in orders], dtype=np.float64),
        order_sizes=np.array([order.size_bags for order in orders], dtype=np.int64),
        order_placed_s=np.array([_seconds(o.placed_at, now) for o in orders], dtype=np.int64),
        order_ready_s=np.array(
            [_seconds(o.ready_at, now, up=True) for o in orders], dtype=np.int64
        ),
        order_promised_s=np.array([_seconds(o.promised_at, now) for o in orders], dtype=np.int64),
        rider_keys=np.arange(n_riders, dtype=np.int64),
        rider_modes=np.array([MODE_INDEX[str(rider.mode)] for rider in riders], dtype=np.int64),
        rider_capacities=np.array([rider.capacity_bags for rider in riders], dtype=np.int64),
        rider_lats=np.array(rider_lats, dtype=np.float64),
        rider_lons=np.array(rider_lons, dtype=np.float64),
        rider_free_s=np.array(rider_free_s, dtype=np.int64),
        rider_serves=np.array(
            [
                [rider_shop_ids is None or shop.id in rider_shop_ids.get(rider.id, ())]
                for rider in riders
            ],
            dtype=np.bool_,
        ).reshape(n_riders, 1),
        rider_shift_starts_s=starts_s,
        rider_shift_ends_s=ends_s,
    )
    decision = decide(snapshot, tick_s)
    plan = ShopPlan(
        reasons={
            orders[i].id: absolute_reason(reason, now) for i, reason in decision.reasons.items()
        }
    )
    for trip in decision.trips:
        if not trip.committed:
            continue
        plan.trips.append(
            TripPlan(
                rider_id=riders[trip.rider].id,
                order_ids=[orders[int(i)].id for i in trip.orders],
                eta_ats=[now + timedelta(seconds=int(s)) for s in trip.delivered_s],
                leave_at=now + timedelta(seconds=trip.leave_s),
                depart_at=now + timedelta(seconds=trip.depart_s),
            )
        )
    return plan
