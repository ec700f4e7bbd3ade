"""Trips committed by dispatch: the rider picks up its orders at the shop."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from sqlmodel import Session, col

from api import core_writes
from api.deps import (
    CurrentShopDep,
    CurrentShopReadDep,
    GroupCommitDep,
    NowDep,
    SessionDep,
    fetch_page,
    get_owned,
)
from api.models import Shop, Trip, TripPublic, TripsPublic, TripStatus
from api.retry import RetryLostRaceRoute
from api.trips import trip_public

router = APIRouter(prefix="/trips", tags=["trips"], route_class=RetryLostRaceRoute)


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
        return core_writes.pick_up_trip(session, shop, trip_id, now)

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
