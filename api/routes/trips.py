"""Trips committed by dispatch: the rider picks up its orders at the shop."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from sqlmodel import Session, col, select

from api.deps import (
    CurrentShopDep,
    CurrentShopReadDep,
    GroupCommitDep,
    NowDep,
    SessionDep,
    fetch_page,
    get_owned,
)
from api.errors import AppError
from api.models import Order, OrderStatus, Shop, Trip, TripPublic, TripsPublic, TripStatus
from api.outbox import ETA_CHANGE_THRESHOLD_S, set_eta
from api.trips import add_event, trip_public

router = APIRouter(prefix="/trips", tags=["trips"])


@router.get("")
def list_trips(
    session: SessionDep,
    shop: CurrentShopDep,
    status: TripStatus | None = None,
    rider_id: uuid.UUID | None = None,
    skip: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> TripsPublic:
    """The shop's trips, newest first, with their stops; ``count`` is the number matching the
    filters (``status``, ``rider_id``)."""
    conditions = [col(Trip.shop_id) == shop.id]
    if status is not None:
        conditions.append(col(Trip.status) == status.value)
    if rider_id is not None:
        conditions.append(col(Trip.rider_id) == rider_id)
    trips, count = fetch_page(
        session,
        Trip,
        conditions,
        (col(Trip.assigned_at).desc(), col(Trip.id).desc()),
        skip=skip,
        limit=limit,
    )
    return TripsPublic(data=[trip_public(session, trip) for trip in trips], count=count)


@router.get("/{trip_id}")
def read_trip(trip_id: uuid.UUID, session: SessionDep, shop: CurrentShopReadDep) -> TripPublic:
    """One of the shop's trips with its stops in delivery sequence (another shop's: 404)."""
    return trip_public(session, get_owned(session, Trip, shop, trip_id, "trip"))


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
