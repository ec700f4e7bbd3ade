"""State changes of orders and trips shared by the routes and the dispatcher.

Every change of an order appends an ``OrderEvent``; a trip is done, and its rider free, once
none of its orders is still assigned to it or carried.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import insert
from sqlmodel import Session, col, select

from api.models import (
    ACTIVE_TRIP_STATUSES,
    Order,
    OrderEvent,
    OrderStatus,
    Shop,
    Trip,
    TripPublic,
    TripShopPublic,
    TripStatus,
    TripStop,
    TripStopPublic,
)
from api.outbox import emit_for_kind

# Statuses of an order that keep it on its trip.
ON_TRIP = (OrderStatus.assigned.value, OrderStatus.picked_up.value)
ACTIVE_TRIP_VALUES = tuple(sorted(status.value for status in ACTIVE_TRIP_STATUSES))
INSERT_ORDER_EVENT = insert(OrderEvent)


def add_event(session: Session, order: Order, kind: str, at: datetime, note: str | None) -> None:
    """Append one event recording ``order``'s current status, and its outbound webhook event
    (``api.outbox.emit``) in the same transaction."""
    insert_event(session, order.id, order.shop_id, kind, order.status, at, note)
    emit_for_kind(session, order, kind, at, note)


def insert_event(
    session: Session,
    order_id: uuid.UUID,
    shop_id: uuid.UUID,
    kind: str,
    status: str,
    at: datetime,
    note: str | None,
) -> None:
    """Insert one ``OrderEvent`` row at once (Core: the event is never read back as a row in
    the transaction that writes it; the order it names must be flushed already)."""
    session.connection().execute(
        INSERT_ORDER_EVENT,
        {
            "order_id": order_id,
            "shop_id": shop_id,
            "kind": kind,
            "status": status,
            "at": at,
            "note": note,
        },
    )


def active_trip(session: Session, rider_id: uuid.UUID) -> Trip | None:
    """The rider's committed or picked-up trip, if any (the oldest, should there be two)."""
    return session.exec(
        select(Trip)
        .where(Trip.rider_id == rider_id, col(Trip.status).in_(ACTIVE_TRIP_VALUES))
        .order_by(col(Trip.assigned_at), col(Trip.id))
    ).first()


def leave_trip(order: Order) -> uuid.UUID | None:
    """Take ``order`` off its trip (delivered orders keep it); the trip it was on."""
    trip_id = order.trip_id
    if order.status != OrderStatus.delivered:
        order.trip_id = None
        order.eta_at = None
    return trip_id


def finish_trip_if_done(session: Session, trip_id: uuid.UUID | None, now: datetime) -> None:
    """Mark the trip done when none of its orders is assigned to it or carried any more."""
    if trip_id is None:
        return
    session.flush()
    trip = session.get(Trip, trip_id, with_for_update=True)
    if trip is None or trip.status == TripStatus.done:
        return
    remaining = session.exec(
        select(Order.id).where(Order.trip_id == trip_id, col(Order.status).in_(ON_TRIP))
    ).first()
    if remaining is None:
        trip.status = TripStatus.done.value
        trip.done_at = now
        session.add(trip)


def trip_public(session: Session, trip: Trip) -> TripPublic:
    """The trip with its shop and its stops in delivery sequence."""
    shop = session.get(Shop, trip.shop_id)
    assert shop is not None  # the foreign key guarantees it
    rows = session.exec(
        select(TripStop, Order)
        .join(Order, col(Order.id) == col(TripStop.order_id))
        .where(TripStop.trip_id == trip.id)
        .order_by(col(TripStop.seq))
    ).all()
    stops = [
        TripStopPublic.model_validate(
            order,
            update={
                "seq": stop.seq,
                "order_id": order.id,
                "eta_at": order.eta_at or stop.eta_at,
            },
        )
        for stop, order in rows
    ]
    return TripPublic.model_validate(
        trip,
        update={"shop": TripShopPublic.model_validate(shop), "stops": stops},
    )
