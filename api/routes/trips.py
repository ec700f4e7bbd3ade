"""Trips committed by dispatch: the rider picks up its orders at the shop."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime

from fastapi import APIRouter
from sqlmodel import Session, col, select

from api.deps import CurrentShopReadDep, GroupCommitDep, NowDep, get_owned
from api.errors import AppError
from api.models import Order, OrderStatus, Shop, Trip, TripPublic, TripStatus
from api.outbox import ETA_CHANGE_THRESHOLD_S, set_eta
from api.trips import add_event, trip_public

router = APIRouter(prefix="/trips", tags=["trips"])


def pickup_work(shop: Shop, trip_id: uuid.UUID, now: datetime) -> Callable[[Session], TripPublic]:
    """The write of ``POST /v1/trips/{trip_id}/pickup`` (for the group writer); also the fast
    path's (``api.fast``)."""

    def pick_up(session: Session) -> TripPublic:
        trip = get_owned(session, Trip, shop, trip_id, "trip", lock=True)
        if trip.status == TripStatus.done:
            raise AppError(409, "trip_done", "the trip is done: every stop was delivered or failed")
        if trip.status == TripStatus.committed:
            orders = session.exec(
                select(Order)
                .where(Order.trip_id == trip.id, Order.status == OrderStatus.assigned.value)
                .order_by(col(Order.id))
                .with_for_update()
            ).all()
            delay = now - trip.depart_at
            late = delay.total_seconds() > ETA_CHANGE_THRESHOLD_S
            for order in orders:
                order.status = OrderStatus.picked_up.value
                order.updated_at = now
                session.add(order)
                add_event(session, order, "picked_up", now, f"trip {trip.id}")
                if late and order.eta_at is not None:
                    set_eta(session, order, order.eta_at + delay, now)
            trip.status = TripStatus.picked_up.value
            session.add(trip)
            session.flush()
        return trip_public(session, trip)

    return pick_up


@router.post("/{trip_id}/pickup")
async def pick_up_trip(
    trip_id: uuid.UUID, group_commit: GroupCommitDep, shop: CurrentShopReadDep, now: NowDep
) -> TripPublic:
    """The rider left the shop with the trip's orders: each assigned order is picked up.

    Picking up a picked-up trip changes nothing; a done trip gets 409 ``trip_done``. A pickup
    later than the planned departure by more than ``ETA_CHANGE_THRESHOLD_S`` (120 s) moves
    each order's ETA back by the delay (``order.eta_changed`` to webhook endpoints); an early
    or nearly punctual one leaves the ETAs as planned. Written through the group writer.
    """
    return await group_commit.run(pickup_work(shop, trip_id, now))
