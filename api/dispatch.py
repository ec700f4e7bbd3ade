"""Dispatch on the real clock: one shop's decision stored in one transaction, and the loop.

``dispatch_shop`` snapshots the shop's pending orders and on-duty riders, runs the engine
(``api.engine.plan_shop``) and stores the committed trips, their stops, each order's assignment
and ETA, and an ``assigned`` event per order; each order left waiting gets the engine's reason
in ``dispatch_note``, written only when it changed (no write per order per tick).
``run_dispatch_loop`` calls it for every shop each ``tick_s`` seconds; a failure of one shop is
logged and does not stop the others.

Many workers (API processes) may run the loop on one database: each shop is dispatched by one
worker at a time, the holder of its lease (``shop_leases``, DESIGN "Service"). A worker takes or
renews the lease in a transaction of its own (``acquire_lease``), then dispatches the shop in a
second one that first checks, and on PostgreSQL locks, the lease row with the epoch it was given
(``check_lease``): a worker whose lease expired or was taken over writes nothing for that shop.
The lease lasts ``LEASE_TICKS`` ticks, so a worker that dies is replaced within that time.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import os
import secrets
import socket
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Connection, Engine, Select, bindparam, exists, insert, update
from sqlalchemy import select as sa_select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, SQLModel, col, select
from sqlmodel.sql.expression import SelectOfScalar

from api.config import Settings
from api.db import writer
from api.engine import BusyRider, ShopPlan, plan_shop
from api.group_commit import GroupCommit
from api.ids import new_id
from api.models import (
    DISPATCH_NOTE_CHARS,
    Order,
    OrderEvent,
    OrderStatus,
    OutboundEventType,
    Rider,
    RiderShift,
    RiderShop,
    Shop,
    ShopLease,
    Trip,
    TripStatus,
    TripStop,
)
from api.outbox import emit, subscriber_ids
from api.planner import Decide, decide_in_process
from api.trips import ACTIVE_TRIP_VALUES

logger = logging.getLogger("api.dispatch")
AnySelect = TypeVar("AnySelect", bound=Select[*tuple[Any, ...]])  # any select

DEFAULT_TICK_S: int = Settings.model_fields["tick_s"].default
# A lease lasts this many ticks: its holder renews it every tick, a dead holder is replaced after.
LEASE_TICKS = 3
# A tick plans at most the oldest pending orders of a shop that its riders could carry in this
# many rounds (a bag per order at least), and never fewer than the minimum: the engine's cost
# grows faster than linearly with the orders it sees (about 16 ms for 50 orders, 60 ms for 200,
# 190 ms for 400 here), and orders beyond that cannot leave before several trips come back
# anyway. A backlog larger than that (an overload) waits, oldest first, for later ticks.
SNAPSHOT_ROUNDS = 4
MIN_SNAPSHOT_ORDERS = 32


def new_worker_id() -> str:
    """A name for one dispatch worker: host, process and a random part (unique per loop)."""
    return f"{socket.gethostname()[:32]}:{os.getpid()}:{secrets.token_hex(4)}"


# The worker of this process when a caller names none.
PROCESS_WORKER_ID = new_worker_id()


@dataclass(frozen=True)
class Lease:
    """A worker's hold on a shop: valid while the row still has this owner and epoch."""

    shop_id: uuid.UUID
    owner_id: str
    epoch: int
    expires_at: datetime


class LeaseLost(Exception):
    """The lease of a shop expired or was taken over: its former holder must write nothing."""


def acquire_lease(
    session: Session, shop_id: uuid.UUID, owner_id: str, now: datetime, lease_s: int
) -> Lease | None:
    """Take or renew ``owner_id``'s lease of the shop until ``now + lease_s``; commits.

    ``None`` while another worker holds an unexpired lease. Renewing an unexpired lease of one's
    own keeps its epoch; taking a free, expired or new lease gives the next epoch.
    """
    try:
        lease = take_lease(session, shop_id, owner_id, now, lease_s)
        if lease is None:
            session.rollback()
            return None
        session.commit()
    except IntegrityError:  # PostgreSQL: another worker inserted the first lease of this shop
        session.rollback()
        return None
    return lease


def _locked_leases(condition: ColumnElement[bool] | bool) -> SelectOfScalar[ShopLease]:
    """The lease rows matching ``condition``, locked until the transaction ends (PostgreSQL) and
    read fresh, not from the session's identity map."""
    return (
        select(ShopLease)
        .where(condition)
        .with_for_update()
        .execution_options(populate_existing=True)
    )


def take_lease(
    session: Session, shop_id: uuid.UUID, owner_id: str, now: datetime, lease_s: int
) -> Lease | None:
    """``acquire_lease`` flushed, not committed (raises ``IntegrityError`` when a concurrent
    worker inserted the shop's first lease row)."""
    expires_at = now.astimezone(UTC) + timedelta(seconds=lease_s)
    row = session.exec(_locked_leases(ShopLease.shop_id == shop_id)).first()
    if row is None:
        row = ShopLease(shop_id=shop_id, owner_id=owner_id, epoch=1, expires_at=expires_at)
    elif row.owner_id != owner_id and row.expires_at > now:
        return None
    else:
        if row.owner_id != owner_id or row.expires_at <= now:
            row.epoch += 1
        row.owner_id, row.expires_at = owner_id, expires_at
    session.add(row)
    session.flush()
    return Lease(shop_id=shop_id, owner_id=owner_id, epoch=row.epoch, expires_at=expires_at)


def release_leases(session: Session, owner_id: str, now: datetime) -> int:
    """End ``owner_id``'s unexpired leases at ``now`` (flushed, not committed); how many.

    Called when a worker stops, so that another takes its shops at its next tick instead of
    after ``LEASE_TICKS``. The epochs stay: the next holder's is one more, and a late write of
    the stopped worker is refused as expired (``check_lease``).
    """
    rows = session.exec(_locked_leases(ShopLease.owner_id == owner_id)).all()
    released = [row for row in rows if row.expires_at > now]
    for row in released:
        row.expires_at = now.astimezone(UTC)
        session.add(row)
    session.flush()
    return len(released)


def check_lease(session: Session, lease: Lease, now: datetime) -> None:
    """Raise ``LeaseLost`` unless ``lease`` still holds at ``now``; locks the lease row until the
    transaction ends (PostgreSQL), so that no takeover can happen before its commit."""
    row = session.exec(_locked_leases(ShopLease.shop_id == lease.shop_id)).first()
    if row is None or (row.owner_id, row.epoch) != (lease.owner_id, lease.epoch):
        held = "nobody" if row is None else f"{row.owner_id} at epoch {row.epoch}"
        raise LeaseLost(
            f"shop {lease.shop_id}: lease of {lease.owner_id} at epoch {lease.epoch} is lost; "
            f"now held by {held}"
        )
    if row.expires_at <= now:
        raise LeaseLost(
            f"shop {lease.shop_id}: lease of {lease.owner_id} at epoch {lease.epoch} expired at "
            f"{row.expires_at.isoformat()}"
        )


def snapshot_order_limit(capacities_bags: Sequence[int]) -> int:
    """Most pending orders of a shop one tick plans (the oldest ones): enough for
    ``SNAPSHOT_ROUNDS`` full rounds of the riders of these capacities, at least
    ``MIN_SNAPSHOT_ORDERS``."""
    return max(MIN_SNAPSHOT_ORDERS, SNAPSHOT_ROUNDS * sum(capacities_bags))


def _on_active_trips(statement: AnySelect) -> AnySelect:
    """``statement`` (over ``Trip``) narrowed to active trips, joined to their stops and the
    stops' orders: what makes a rider busy (``_busy_riders``, ``_has_free_rider``)."""
    return (
        statement.join(TripStop, col(TripStop.trip_id) == col(Trip.id))
        .join(Order, col(Order.id) == col(TripStop.order_id))
        .where(col(Trip.status).in_(ACTIVE_TRIP_VALUES))
    )


def _busy_riders(session: Session, rider_ids: list[uuid.UUID]) -> dict[uuid.UUID, BusyRider]:
    """The riders with an active trip, for whichever shop: where its last stop is and its ETA
    there (a rider shared by shops is busy for all of them)."""
    if not rider_ids:
        return {}
    rows = session.exec(
        _on_active_trips(select(Trip, TripStop, Order))
        .where(col(Trip.rider_id).in_(rider_ids))
        .order_by(col(Trip.assigned_at), col(Trip.id), col(TripStop.seq))
    ).all()
    busy: dict[uuid.UUID, BusyRider] = {}
    for trip, stop, order in rows:  # the last stop of each rider's trip wins
        busy[trip.rider_id] = BusyRider(
            lat=order.dropoff_lat, lon=order.dropoff_lon, free_at=order.eta_at or stop.eta_at
        )
    return busy


def _has_free_rider(session: Session, serving: ColumnElement[bool]) -> bool:
    """Whether an on-duty rider among ``serving`` has no active trip (``_on_active_trips``). One
    query: a shop whose riders are all out (the common case under load) is skipped without
    loading its orders, riders, shifts and trips each tick."""
    active_trip = _on_active_trips(select(Trip.id)).where(col(Trip.rider_id) == col(Rider.id))
    free = select(Rider.id).where(serving, col(Rider.on_duty).is_(True), ~exists(active_trip))
    return session.exec(free.limit(1)).first() is not None


@dataclass(frozen=True)
class ShopDecision:
    """One shop's plan and the state of the rows it was made from: each pending order's
    ``updated_at``, the riders that were busy and each rider's mode, capacity and shifts'
    version (``store_decision`` checks them again)."""

    shop_id: uuid.UUID
    plan: ShopPlan
    order_updated_ats: dict[uuid.UUID, datetime]
    busy_rider_ids: frozenset[uuid.UUID]
    rider_profiles: dict[uuid.UUID, tuple[str, int, int]]


def decide_shop(
    session: Session,
    shop: Shop,
    now: datetime,
    *,
    tick_s: int,
    lock: bool,
    when_all_busy: bool = True,
    decide: Decide = decide_in_process,
) -> ShopDecision | None:
    """Snapshot ``shop``'s pending orders and on-duty riders and run the engine; ``None`` when no
    order waits, or (``when_all_busy`` off) when every on-duty rider is on a trip: no trip
    could be stored, and the orders keep the reasons of the last plan. With ``lock``
    (PostgreSQL, in a write transaction) the orders and riders stay locked until the
    transaction ends; without, nothing is locked and the plan may be stale by the time it is
    stored (``store_decision`` checks). At most ``snapshot_order_limit`` orders, the oldest.
    ``decide``: where the engine runs (``plan_shop``)."""
    now = now.astimezone(UTC)
    serving = col(Rider.id).in_(select(RiderShop.rider_id).where(RiderShop.shop_id == shop.id))
    capacities_bags = session.exec(
        select(Rider.capacity_bags).where(serving, col(Rider.on_duty).is_(True))
    ).all()
    if capacities_bags and not when_all_busy and not _has_free_rider(session, serving):
        return None  # the same answer as below, before loading the snapshot
    query = (
        select(Order)
        .where(
            Order.shop_id == shop.id,
            Order.status == OrderStatus.pending.value,
            col(Order.trip_id).is_(None),
        )
        .order_by(col(Order.placed_at), col(Order.id))
        .limit(snapshot_order_limit(capacities_bags))
    )
    orders = session.exec(query.with_for_update() if lock else query).all()
    if not orders:
        return None
    # Every on-duty rider serving the shop, its own and those shared with other shops; locked so
    # that another shop's dispatch (PostgreSQL) waits and then sees the trips committed here.
    rider_query = (
        select(Rider)
        .where(serving, col(Rider.on_duty).is_(True))
        .order_by(col(Rider.created_at), col(Rider.id))
    )
    riders = session.exec(rider_query.with_for_update() if lock else rider_query).all()
    rider_ids = [rider.id for rider in riders]
    # The shifts are read after the riders: shifts changed in between come with an older
    # ``shifts_version`` than the store finds, so the plan is dropped, never stored stale.
    shifts: dict[uuid.UUID, list[RiderShift]] = {}
    serves: dict[uuid.UUID, set[uuid.UUID]] = {}
    homes: dict[uuid.UUID, tuple[float, float]] = {}
    if riders:
        # Only the shifts not over yet (the past ones stay for the KPIs, one more a day); a
        # rider that declared shifts, all over now, has none left (and no default shift).
        for rider_id in session.exec(
            select(RiderShift.rider_id)
            .where(col(RiderShift.rider_id).in_(rider_ids))
            .group_by(col(RiderShift.rider_id))
        ).all():
            shifts[rider_id] = []
        for shift in session.exec(
            select(RiderShift)
            .where(col(RiderShift.rider_id).in_(rider_ids), col(RiderShift.end_at) >= now)
            .order_by(col(RiderShift.start_at))
        ).all():
            shifts[shift.rider_id].append(shift)
        for link in session.exec(
            select(RiderShop).where(col(RiderShop.rider_id).in_(rider_ids))
        ).all():
            serves.setdefault(link.rider_id, set()).add(link.shop_id)
        home_ids = {rider.shop_id for rider in riders}
        home_shops = session.exec(select(Shop).where(col(Shop.id).in_(home_ids))).all()
        where = {home.id: (home.lat, home.lon) for home in home_shops}
        homes = {rider.id: where[rider.shop_id] for rider in riders if rider.shop_id in where}
    busy = _busy_riders(session, rider_ids)
    if riders and not when_all_busy and busy.keys() >= set(rider_ids):
        return None
    plan = plan_shop(
        shop,
        orders,
        riders,
        shifts,
        busy,
        now,
        tick_s,
        rider_shop_ids=serves,
        rider_homes=homes,
        decide=decide,
    )
    return ShopDecision(
        shop_id=shop.id,
        plan=plan,
        order_updated_ats={order.id: order.updated_at for order in orders},
        busy_rider_ids=frozenset(busy),
        rider_profiles={
            rider.id: (str(rider.mode), rider.capacity_bags, rider.shifts_version)
            for rider in riders
        },
    )


ORDERS = SQLModel.metadata.tables[str(Order.__tablename__)]
TRIPS = SQLModel.metadata.tables[str(Trip.__tablename__)]
RIDERS = SQLModel.metadata.tables[str(Rider.__tablename__)]
TRIP_STOPS = SQLModel.metadata.tables[str(TripStop.__tablename__)]
ORDER_EVENTS = SQLModel.metadata.tables[str(OrderEvent.__tablename__)]
# The statements of ``store_decision``, built once (Core: no ORM rows, one statement per table
# and step, the updates of many orders as one executemany).
SNAPSHOT_STATES = sa_select(
    ORDERS.c.id, ORDERS.c.status, ORDERS.c.trip_id, ORDERS.c.updated_at, ORDERS.c.dispatch_note
).where(ORDERS.c.id.in_(bindparam("order_ids", expanding=True)))
# The recheck's read: the rows locked (PostgreSQL), in id order, until the trips are stored, so
# that a cancel or a change of an order waits instead of being overwritten by the trip's write.
LOCKED_SNAPSHOT_STATES = SNAPSHOT_STATES.order_by(ORDERS.c.id).with_for_update()
LOCK_RIDERS = (
    sa_select(RIDERS.c.id)
    .where(RIDERS.c.id.in_(bindparam("rider_ids", expanding=True)))
    .order_by(RIDERS.c.id)
    .with_for_update()
)
INSERT_TRIP = insert(TRIPS)
INSERT_STOPS = insert(TRIP_STOPS)
INSERT_EVENTS = insert(ORDER_EVENTS)
ASSIGN_ORDERS = (
    update(ORDERS)
    .where(ORDERS.c.id == bindparam("order_id"))
    .values(
        status=OrderStatus.assigned.value,
        trip_id=bindparam("trip_id"),
        eta_at=bindparam("eta_at"),
        updated_at=bindparam("now"),
        dispatch_note=None,
    )
)
NOTE_ORDERS = (
    update(ORDERS)
    .where(ORDERS.c.id == bindparam("order_id"))
    .values(dispatch_note=bindparam("note"))
)


def store_decision(
    session: Session, decision: ShopDecision, now: datetime, *, recheck: bool
) -> int:
    """Store the committed trips of ``decision`` and the reasons of the orders left waiting
    (written, not committed); the number of trips stored.

    With ``recheck`` (a plan made outside this transaction) a trip is stored only when each of
    its orders is still pending, off any trip and unchanged since the snapshot, and its rider is
    still on duty, still serving the shop, with the mode, capacity and shifts it was planned
    with (the shifts by their version: a trip's departure must fall within one) and with no
    active trip; otherwise it is dropped, and its orders are planned again at the next tick.

    On PostgreSQL the recheck locks what it checks, the snapshot's orders and then the planned
    riders (in id order), so that no cancel, duty change, unlink or other shop's trip for a
    shared rider commits between the check and the writes (SQLite's ``BEGIN IMMEDIATE`` already
    keeps every other writer out).

    Core statements, not ORM rows: a read of the snapshot orders' state, then one INSERT per
    trip and one executemany each for its stops, its orders' assignment and their ``assigned``
    events, and one executemany for the changed reasons of the orders left waiting (this used
    to be about 20 ms of ORM work a shop, mostly one UPDATE flushed an order). Only a shop with
    an endpoint subscribed to ``order.assigned`` reads each assigned order back as a row, for
    its outbox event (``api.outbox.emit``), in the same transaction as before.
    """
    now = now.astimezone(UTC)
    connection = session.connection()
    states = {
        row.id: row
        for row in connection.execute(
            LOCKED_SNAPSHOT_STATES if recheck else SNAPSHOT_STATES,
            {"order_ids": list(decision.order_updated_ats)},
        )
    }
    taken = set(decision.busy_rider_ids)
    available: set[uuid.UUID] | None = None
    if recheck:
        planned_riders = [trip.rider_id for trip in decision.plan.trips]
        # Locked first, read after: a statement that waited for a lock still sees, in its
        # subqueries, what was committed before it began (PostgreSQL), e.g. a link unlinked.
        connection.execute(LOCK_RIDERS, {"rider_ids": planned_riders})
        available = {
            rider_id
            for rider_id, mode, capacity_bags, shifts_version in session.exec(
                select(Rider.id, Rider.mode, Rider.capacity_bags, Rider.shifts_version).where(
                    col(Rider.id).in_(planned_riders),
                    col(Rider.on_duty),
                    # still serving the shop: the admin may have unlinked it meanwhile
                    col(Rider.id).in_(
                        select(RiderShop.rider_id).where(RiderShop.shop_id == decision.shop_id)
                    ),
                )
            ).all()
            # and planned with its present mode, capacity and shifts (the home shop's to change)
            if decision.rider_profiles.get(rider_id) == (str(mode), capacity_bags, shifts_version)
        }
        taken |= set(_busy_riders(session, planned_riders))

    def unchanged(order_id: uuid.UUID) -> bool:
        state = states.get(order_id)
        return (
            state is not None
            and state.status == OrderStatus.pending
            and state.trip_id is None
            and state.updated_at == decision.order_updated_ats[order_id]
        )

    announce: bool | None = None  # whether the shop subscribes to order.assigned (read once)
    assigned: set[uuid.UUID] = set()
    stored = 0
    for trip_plan in decision.plan.trips:
        if trip_plan.rider_id in taken:  # the engine never does this; the rows must not either
            if not recheck:
                logger.error(
                    "shop %s: trip for busy rider %s dropped", decision.shop_id, trip_plan.rider_id
                )
            continue
        if available is not None and (
            trip_plan.rider_id not in available
            or not all(unchanged(order_id) for order_id in trip_plan.order_ids)
        ):
            continue
        trip_id = new_id()
        connection.execute(
            INSERT_TRIP,
            {
                "id": trip_id,
                "shop_id": decision.shop_id,
                "rider_id": trip_plan.rider_id,
                "status": TripStatus.committed.value,
                "assigned_at": now,
                "leave_at": trip_plan.leave_at,
                "depart_at": trip_plan.depart_at,
                "done_at": None,
            },
        )
        stops = list(enumerate(zip(trip_plan.order_ids, trip_plan.eta_ats, strict=True)))
        connection.execute(
            INSERT_STOPS,
            [
                {"trip_id": trip_id, "order_id": order_id, "seq": seq, "eta_at": eta_at}
                for seq, (order_id, eta_at) in stops
            ],
        )
        connection.execute(
            ASSIGN_ORDERS,
            [
                {"order_id": order_id, "trip_id": trip_id, "eta_at": eta_at, "now": now}
                for _, (order_id, eta_at) in stops
            ],
        )
        notes = [f"trip {trip_id}, stop {seq + 1}" for seq, _ in stops]
        connection.execute(
            INSERT_EVENTS,
            [
                {
                    "order_id": order_id,
                    "shop_id": decision.shop_id,
                    "kind": "assigned",
                    "status": OrderStatus.assigned.value,
                    "at": now,
                    "note": note,
                }
                for (_, (order_id, _eta)), note in zip(stops, notes, strict=True)
            ],
        )
        if announce is None:
            announce = bool(subscriber_ids(session, decision.shop_id, OutboundEventType.assigned))
        if announce:
            for (_, (order_id, _eta)), note in zip(stops, notes, strict=True):
                order = session.get(Order, order_id, populate_existing=True)
                assert order is not None  # updated just above
                emit(session, order, OutboundEventType.assigned, now, note)
        assigned.update(trip_plan.order_ids)
        taken.add(trip_plan.rider_id)
        stored += 1
    waiting = [
        state
        for order_id, state in states.items()
        if order_id not in assigned and (not recheck or unchanged(order_id))
    ]
    _note_reasons(connection, waiting, decision.plan)
    return stored


def dispatch_shop(
    session: Session,
    shop: Shop,
    now: datetime,
    *,
    tick_s: int = DEFAULT_TICK_S,
    lease: Lease | None = None,
) -> ShopPlan:
    """Decide for ``shop`` at ``now`` and store the committed trips, in one transaction; commits.

    ``session`` must write (``api.db.writer``: ``BEGIN IMMEDIATE`` on SQLite); on PostgreSQL
    the pending orders and on-duty riders are locked until the commit, so that a cancellation
    or a duty change waits for the decision instead of being overwritten by it. With ``lease``
    the lease is checked first (``LeaseLost``: nothing written); without, the caller is the
    shop's only dispatcher (tests, tools). The service's loop decides outside the write
    transaction instead (``dispatch_tick``).
    """
    now = now.astimezone(UTC)
    if lease is not None:
        check_lease(session, lease, now)
    decision = decide_shop(session, shop, now, tick_s=tick_s, lock=True)
    if decision is None:
        session.commit()
        return ShopPlan()
    store_decision(session, decision, now, recheck=False)
    session.commit()
    return decision.plan


def _note_reasons(connection: Connection, orders: Sequence[Any], plan: ShopPlan) -> None:
    """Store the engine's reason on each order still pending (rows with ``id``, ``status`` and
    ``dispatch_note``), where it differs from the last: one executemany."""
    changed = []
    for order in orders:
        reason = plan.reasons.get(order.id)
        if order.status != OrderStatus.pending or reason is None:
            continue
        note = reason[:DISPATCH_NOTE_CHARS]
        if order.dispatch_note != note:
            changed.append({"order_id": order.id, "note": note})
    if changed:
        connection.execute(NOTE_ORDERS, changed)


def shops_waiting(engine: Engine) -> list[uuid.UUID]:
    """The shops with an order waiting for a trip (a read transaction): for each shop, one
    search of ``ix_orders_shop_status_placed`` that stops at its first waiting order (not a
    walk of every shop's pending orders)."""
    waiting = (
        select(Order.id)
        .where(
            Order.shop_id == Shop.id,
            Order.status == OrderStatus.pending.value,
            col(Order.trip_id).is_(None),
        )
        .exists()
    )
    with Session(engine) as session:
        return list(session.exec(select(Shop.id).where(waiting).order_by(col(Shop.id))).all())


def read_decision(
    engine: Engine,
    shop_id: uuid.UUID,
    now: datetime,
    tick_s: int,
    decide: Decide = decide_in_process,
) -> ShopDecision | None:
    """``decide_shop`` in a read transaction (no write lock is held while the engine plans);
    ``None`` also when every rider of the shop is on a trip (nothing to plan for)."""
    with Session(engine, expire_on_commit=False) as session:
        shop = session.get(Shop, shop_id)
        if shop is None:
            return None
        return decide_shop(
            session, shop, now, tick_s=tick_s, lock=False, when_all_busy=False, decide=decide
        )


def lease_and_store(
    session: Session, decision: ShopDecision, owner_id: str, now: datetime, lease_s: int
) -> int:
    """Take or renew the shop's lease and store ``decision`` rechecked (flushed, not committed),
    in one transaction; the number of trips stored (0 while another worker holds the lease)."""
    if take_lease(session, decision.shop_id, owner_id, now, lease_s) is None:
        return 0
    return store_decision(session, decision, now, recheck=True)


async def dispatch_tick(
    engine: Engine,
    group_commit: GroupCommit,
    now: datetime,
    tick_s: int,
    owner_id: str,
    decide: Decide = decide_in_process,
) -> int:
    """One tick of the service's loop: each shop with orders waiting is planned in a worker
    thread outside any write transaction, then its lease and its trips are written through the
    group writer (``api.group_commit``) with the other writes of the moment; the number of
    trips committed. A shop whose dispatch fails is logged and skipped. ``decide``: where the
    engine runs (``plan_shop``)."""
    committed = 0
    for shop_id in await asyncio.to_thread(shops_waiting, engine):
        try:
            decision = await asyncio.to_thread(read_decision, engine, shop_id, now, tick_s, decide)
            if decision is None:
                continue
            committed += await group_commit.run(
                functools.partial(
                    lease_and_store,
                    decision=decision,
                    owner_id=owner_id,
                    now=now,
                    lease_s=LEASE_TICKS * tick_s,
                )
            )
        except Exception:
            logger.exception("dispatch of shop %s failed; the other shops go on", shop_id)
    return committed


def dispatch_all(
    engine: Engine, now: datetime, tick_s: int, *, owner_id: str = PROCESS_WORKER_ID
) -> int:
    """One tick of worker ``owner_id`` over every shop whose lease it holds or can take, each
    shop in its own transactions; the number of trips committed.

    A shop whose dispatch raises is logged and skipped; the other shops go on. A shop with no
    order waiting for a trip is skipped before any write (no lease taken, no transaction): on
    SQLite an idle shop would otherwise take the one write lock and an fsync twice a tick. Its
    lease, if any, lapses after ``LEASE_TICKS`` idle ticks and is taken again (next epoch) by
    whichever worker first finds work there.
    """
    committed = 0
    for shop_id in shops_waiting(engine):
        try:
            with Session(writer(engine), expire_on_commit=False) as session:
                lease = acquire_lease(session, shop_id, owner_id, now, LEASE_TICKS * tick_s)
            if lease is None:
                continue
            with Session(writer(engine), expire_on_commit=False) as session:
                shop = session.get(Shop, shop_id)
                if shop is not None:
                    plan = dispatch_shop(session, shop, now, tick_s=tick_s, lease=lease)
                    committed += len(plan.trips)
        except LeaseLost as lost:
            logger.warning("%s; skipped", lost)
        except Exception:
            logger.exception("dispatch of shop %s failed; the other shops go on", shop_id)
    return committed


async def run_dispatch_loop(
    engine: Engine,
    settings: Settings,
    clock: Callable[[], datetime],
    group_commit: Callable[[], GroupCommit],
    owner_id: str | None = None,
    decide: Decide = decide_in_process,
) -> None:
    """Tick every ``settings.tick_s`` seconds until cancelled, as worker ``owner_id`` (a new
    name by default); never stops on an error.

    A clock faster than real time (the demo's, with a ``speed`` attribute) moves ``tick_s *
    speed`` of its seconds between two ticks: that is the horizon each tick plans for.
    """
    owner_id = owner_id or new_worker_id()
    horizon_s = max(1, math.ceil(settings.tick_s * float(getattr(clock, "speed", 1.0))))
    while True:
        try:
            await dispatch_tick(engine, group_commit(), clock(), horizon_s, owner_id, decide)
        except Exception:
            logger.exception("dispatch tick failed")
        await asyncio.sleep(settings.tick_s)
