"""Hot writes of the rider's routes and the platform webhooks as Core statements (the group
writer runs them).

``POST /v1/orders/{id}/deliver`` used to load the order and its trip as ORM rows and flush them:
about 3.5 ms of the writer thread's CPU a delivery under ``make load`` (session 6), most of it
the ORM's unit of work. Here the same reads and writes are single Core statements, in the same
order (the order row locked, then the trip row, as ``api.trips.finish_trip_if_done`` does on
PostgreSQL), with the same events and outbound webhook events. Likewise the order a platform's
``order.created`` makes (``insert_new_order``, ``place_order`` of ``api.routes.orders`` in
Core) and the stored inbound event (``insert_inbound_event``): about 4 ms of the writer's CPU
an event before. And a rider's location report and duty change (``store_location``,
``store_duty``: 2.4 and 3-4 ms of the writer's CPU as ORM reads and a flush, session 8).

The group writer's session is shared by the pieces of work of one batch: an ORM row another
piece loaded earlier in the batch would not see a Core write. Each function here expires the
rows it changed in the session's identity map (``forget``), so that a later piece reads them
again.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select, update
from sqlmodel import Session, SQLModel

from api.errors import AppError, not_found
from api.intake import new_order_values, new_pin
from api.models import (
    MAX_SHIFTS,
    InboundEvent,
    Order,
    OrderCreate,
    OrderPublic,
    OrderStatus,
    OutboundEventType,
    Rider,
    RiderDutySpan,
    RiderLocation,
    RiderPublic,
    RiderShift,
    RiderShop,
    Shop,
    Trip,
    TripPublic,
    TripStatus,
)
from api.outbox import ETA_CHANGE_THRESHOLD_S, emit
from api.security import verify_pin
from api.trip_read import read_trip
from api.trips import ON_TRIP, add_event

_TABLES = SQLModel.metadata.tables
ORDERS = _TABLES[str(Order.__tablename__)]
TRIPS = _TABLES[str(Trip.__tablename__)]
INBOUND_EVENTS = _TABLES[str(InboundEvent.__tablename__)]
RIDERS = _TABLES[str(Rider.__tablename__)]
RIDER_SHOPS = _TABLES[str(RiderShop.__tablename__)]
RIDER_SHIFTS = _TABLES[str(RiderShift.__tablename__)]
DUTY_SPANS = _TABLES[str(RiderDutySpan.__tablename__)]

ORDER_FOR_UPDATE = select(ORDERS).where(ORDERS.c.id == bindparam("order_id")).with_for_update()
TRIP_STATUS_FOR_UPDATE = (
    select(TRIPS.c.status).where(TRIPS.c.id == bindparam("trip_id")).with_for_update()
)
TRIP_FOR_UPDATE = select(TRIPS).where(TRIPS.c.id == bindparam("trip_id")).with_for_update()
ASSIGNED_ON_TRIP_FOR_UPDATE = (
    select(ORDERS)
    .where(
        ORDERS.c.trip_id == bindparam("trip_id"),
        ORDERS.c.status == OrderStatus.assigned.value,
    )
    .order_by(ORDERS.c.id)
    .with_for_update()
)
STILL_ON_TRIP = (
    select(ORDERS.c.id)
    .where(ORDERS.c.trip_id == bindparam("trip_id"), ORDERS.c.status.in_(ON_TRIP))
    .limit(1)
)
# The writes, built once (building a statement cost about as much as running it).
FINISH_TRIP = (
    update(TRIPS)
    .where(TRIPS.c.id == bindparam("trip_id"))
    .values(status=TripStatus.done.value, done_at=bindparam("done_at"))
)
SET_ORDER_STATUS = (
    update(ORDERS)
    .where(ORDERS.c.id == bindparam("order_id"))
    .values(status=bindparam("status"), updated_at=bindparam("updated_at"))
)
PICK_UP_ORDER = (
    update(ORDERS)
    .where(ORDERS.c.id == bindparam("order_id"))
    .values(
        status=bindparam("status"), updated_at=bindparam("updated_at"), eta_at=bindparam("eta_at")
    )
)
PICK_UP_TRIP = (
    update(TRIPS)
    .where(TRIPS.c.id == bindparam("trip_id"))
    .values(status=TripStatus.picked_up.value)
)
INSERT_ORDER = insert(ORDERS)
SERVED_RIDER_FOR_UPDATE = (
    select(RIDERS)
    .where(
        RIDERS.c.id == bindparam("rider_id"),
        select(RIDER_SHOPS.c.rider_id)
        .where(RIDER_SHOPS.c.rider_id == RIDERS.c.id, RIDER_SHOPS.c.shop_id == bindparam("shop_id"))
        .exists(),
    )
    .with_for_update(of=RIDERS)
)
SET_RIDER_LOCATION = (
    update(RIDERS)
    .where(RIDERS.c.id == bindparam("rider_id"))
    .values(lat=bindparam("lat"), lon=bindparam("lon"), located_at=bindparam("located_at"))
)
SET_RIDER_ON_DUTY = (
    update(RIDERS).where(RIDERS.c.id == bindparam("rider_id")).values(on_duty=bindparam("duty"))
)
OPEN_DUTY_SPANS = select(DUTY_SPANS.c.id, DUTY_SPANS.c.start_at).where(
    DUTY_SPANS.c.rider_id == bindparam("rider_id"), DUTY_SPANS.c.end_at.is_(None)
)
CLOSE_DUTY_SPAN = (
    update(DUTY_SPANS)
    .where(DUTY_SPANS.c.id == bindparam("span_id"))
    .values(end_at=bindparam("ended_at"))
)
INSERT_DUTY_SPAN = insert(DUTY_SPANS)
SHIFTS_OF_RIDER = (
    select(RIDER_SHIFTS.c.start_at, RIDER_SHIFTS.c.end_at)
    .where(RIDER_SHIFTS.c.rider_id == bindparam("rider_id"))
    .order_by(RIDER_SHIFTS.c.start_at.desc())
    .limit(MAX_SHIFTS)
)
INSERT_INBOUND_EVENT = insert(INBOUND_EVENTS)


def forget(session: Session, model: type[SQLModel], row_id: Any) -> None:
    """Expire ``model`` row ``row_id`` in ``session``'s identity map, if it is there."""
    row = session.identity_map.get(session.identity_key(model, row_id))
    if row is not None:
        session.expire(row)


def finish_trip(connection: Connection, trip_id: uuid.UUID | None, now: datetime) -> bool:
    """``api.trips.finish_trip_if_done`` in Core: the trip is done once none of its orders is
    assigned to it or carried; whether it changed."""
    if trip_id is None:
        return False
    status = connection.execute(TRIP_STATUS_FOR_UPDATE, {"trip_id": trip_id}).scalar()
    if status is None or status == TripStatus.done.value:
        return False
    if connection.execute(STILL_ON_TRIP, {"trip_id": trip_id}).first() is not None:
        return False
    connection.execute(FINISH_TRIP, {"trip_id": trip_id, "done_at": now})
    return True


def deliver_order(
    session: Session, shop: Shop, order_id: uuid.UUID, pin: str | None, now: datetime
) -> OrderPublic:
    """Deliver the picked-up order ``order_id`` of ``shop`` (see ``POST .../deliver``)."""
    connection = session.connection()
    row = connection.execute(ORDER_FOR_UPDATE, {"order_id": order_id}).mappings().first()
    if row is None or row["shop_id"] != shop.id:
        raise not_found("order")
    if pin is not None and not verify_pin(pin, row["pin_hash"]):
        raise AppError(422, "wrong_pin", "the PIN is not this order's delivery PIN")
    if row["status"] == OrderStatus.delivered:
        return OrderPublic.model_validate(dict(row))
    if row["status"] != OrderStatus.picked_up:
        raise AppError(
            409,
            "order_not_picked_up",
            f"the order is {row['status']}; only a picked-up order can be delivered",
        )
    if pin is None and shop.require_pin:
        raise AppError(
            422, "pin_required", "the shop requires the customer's delivery PIN: give pin"
        )
    status = OrderStatus.delivered.value
    connection.execute(
        SET_ORDER_STATUS, {"order_id": order_id, "status": status, "updated_at": now}
    )
    forget(session, Order, order_id)
    delivered = {**row, "status": status, "updated_at": now}
    # A detached row (never added to the session) for the event and the outbound event.
    add_event(
        session, Order.model_validate(delivered), "delivered", now, "PIN checked" if pin else None
    )
    if finish_trip(connection, row["trip_id"], now):
        forget(session, Trip, row["trip_id"])
    return OrderPublic.model_validate(delivered)


def pick_up_trip(session: Session, shop: Shop, trip_id: uuid.UUID, now: datetime) -> TripPublic:
    """Pick up trip ``trip_id`` of ``shop`` (see ``POST /v1/trips/{id}/pickup``): each assigned
    order picked up, with its event; a pickup later than the planned departure by more than
    ``ETA_CHANGE_THRESHOLD_S`` moves each ETA back by the delay (``api.outbox.set_eta``)."""
    connection = session.connection()
    trip = connection.execute(TRIP_FOR_UPDATE, {"trip_id": trip_id}).mappings().first()
    if trip is None or trip["shop_id"] != shop.id:
        raise not_found("trip")
    if trip["status"] == TripStatus.done.value:
        raise AppError(409, "trip_done", "the trip is done: every stop was delivered or failed")
    if trip["status"] == TripStatus.committed.value:
        orders = connection.execute(ASSIGNED_ON_TRIP_FOR_UPDATE, {"trip_id": trip_id}).mappings()
        delay = now - trip["depart_at"]
        late = delay.total_seconds() > ETA_CHANGE_THRESHOLD_S
        for row in orders.all():
            picked = {**row, "status": OrderStatus.picked_up.value, "updated_at": now}
            add_event(session, Order.model_validate(picked), "picked_up", now, f"trip {trip_id}")
            if late and row["eta_at"] is not None:
                _move_eta(session, picked, row["eta_at"] + delay, now)
            connection.execute(
                PICK_UP_ORDER,
                {
                    "order_id": row["id"],
                    "status": picked["status"],
                    "updated_at": now,
                    "eta_at": picked["eta_at"],
                },
            )
            forget(session, Order, row["id"])
        connection.execute(PICK_UP_TRIP, {"trip_id": trip_id})
        forget(session, Trip, trip_id)
    return read_trip(connection, trip_id)


def _move_eta(session: Session, order: dict[str, Any], eta_at: datetime, now: datetime) -> None:
    """``api.outbox.set_eta`` on an order's columns (``order["eta_at"]`` is set)."""
    previous = order["eta_at"]
    order["eta_at"] = eta_at
    if abs((eta_at - previous).total_seconds()) > ETA_CHANGE_THRESHOLD_S:
        extra = {"previous_eta_at": previous.isoformat()}
        emit(session, Order.model_validate(order), OutboundEventType.eta_changed, now, None, extra)


def _served_rider(session: Session, shop: Shop, rider_id: uuid.UUID) -> dict[str, Any]:
    """The columns of rider ``rider_id``, locked (PostgreSQL), if it serves ``shop``; 404
    ``not_found`` otherwise, as if it did not exist."""
    params = {"rider_id": rider_id, "shop_id": shop.id}
    row = session.connection().execute(SERVED_RIDER_FOR_UPDATE, params).mappings().first()
    if row is None:
        raise not_found("rider")
    return dict(row)


def latest_shifts(session: Session, rider_id: uuid.UUID) -> list[tuple[datetime, datetime]]:
    """The rider's latest ``MAX_SHIFTS`` shifts, oldest first: what its public body shows (a
    PATCH keeps the past ones, so they add up; the list stays one a PATCH accepts)."""
    rows = session.connection().execute(SHIFTS_OF_RIDER, {"rider_id": rider_id}).all()
    return [(start_at, end_at) for start_at, end_at in reversed(rows)]


def _rider_public(session: Session, rider: dict[str, Any]) -> RiderPublic:
    return RiderPublic.model_validate({**rider, "shifts": latest_shifts(session, rider["id"])})


def store_duty(
    session: Session, shop: Shop, rider_id: uuid.UUID, on_duty: bool, now: datetime
) -> RiderPublic:
    """Put rider ``rider_id`` of ``shop`` on or off duty at ``now``, with its duty spans: going
    on duty opens a span at ``now``, going off closes the open one at ``now`` (never before it
    started: the clocks of processes differ); the same value again changes nothing. Every
    change of ``riders.on_duty`` goes through here, so that a rider on duty has exactly one open
    span and a rider off duty none (the KPIs' rider hours, ``api.kpis``)."""
    rider = _served_rider(session, shop, rider_id)
    if rider["on_duty"] != on_duty:
        connection = session.connection()
        connection.execute(SET_RIDER_ON_DUTY, {"rider_id": rider_id, "duty": on_duty})
        if on_duty:
            connection.execute(INSERT_DUTY_SPAN, {"rider_id": rider_id, "start_at": now})
        else:
            for span_id, start_at in connection.execute(OPEN_DUTY_SPANS, {"rider_id": rider_id}):
                ended_at = max(now, start_at)
                connection.execute(CLOSE_DUTY_SPAN, {"span_id": span_id, "ended_at": ended_at})
                forget(session, RiderDutySpan, span_id)
        forget(session, Rider, rider_id)
        rider["on_duty"] = on_duty
    return _rider_public(session, rider)


def store_location(
    session: Session, shop: Shop, rider_id: uuid.UUID, location_in: RiderLocation, at: datetime
) -> RiderPublic:
    """``POST /v1/riders/{id}/location`` of a rider serving ``shop``: its position at ``at``
    stored unless a later one is (reports may arrive out of order); the rider as it is then.
    404 ``not_found`` for a rider that does not serve the shop."""
    rider = _served_rider(session, shop, rider_id)
    if rider["located_at"] is None or at >= rider["located_at"]:
        rider.update(lat=location_in.lat, lon=location_in.lon, located_at=at)
        session.connection().execute(
            SET_RIDER_LOCATION,
            {"rider_id": rider_id, "lat": rider["lat"], "lon": rider["lon"], "located_at": at},
        )
        forget(session, Rider, rider_id)
    return _rider_public(session, rider)


def insert_new_order(
    session: Session, shop: Shop, order_in: OrderCreate, now: datetime
) -> tuple[Order, str]:
    """``api.routes.orders.place_order`` in Core: the new order (its circle checked first) and
    its ``placed`` event inserted; the order as a detached row (never add it to the session:
    ``session.get`` it to change it) and its delivery PIN."""
    pin, pin_hash = new_pin(order_in)
    values = new_order_values(shop, order_in, now, pin_hash)
    session.connection().execute(INSERT_ORDER, values)
    order = Order.model_validate(values)
    add_event(session, order, "placed", now, None)
    return order, pin


def insert_inbound_event(session: Session, row: InboundEvent) -> None:
    """Insert ``row`` (not added to the session; its ``id`` stays unset)."""
    session.connection().execute(INSERT_INBOUND_EVENT, row.model_dump(exclude={"id"}))
