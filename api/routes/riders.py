"""Riders of a shop: registration, reads, going on or off duty, and reported positions.

A rider is registered by its home shop (``riders.shop_id``) and serves the shops linked to it in
``rider_shops``: its home shop, and any other the admin links (``POST /v1/riders/{id}/shops``)
until the admin unlinks it (``DELETE /v1/riders/{id}/shops/{shop_id}``), so that the shops of a
circle can share a pool. A shop's key sees and manages the riders serving that shop, and no
other; a rider's trip is shown only to the shop of that trip. Each link and unlink also opens
and closes the rider's span for the shop (``rider_shop_spans``, in the same transaction): the
shop's KPIs count the rider's hours only while it served the shop.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query
from sqlmodel import Session, col, select

from api import trip_read
from api.core_writes import latest_shifts, store_duty, store_location
from api.deps import (
    AdminDep,
    CurrentShopDep,
    CurrentShopReadDep,
    GroupCommitDep,
    NowDep,
    SessionDep,
    changes_of,
    fetch_page,
)
from api.errors import AppError, not_found
from api.models import (
    ErrorPublic,
    Rider,
    RiderCreate,
    RiderDuty,
    RiderLocation,
    RiderPublic,
    RiderShift,
    RiderShop,
    RiderShopLink,
    RiderShopSpan,
    RiderShopsPublic,
    RidersPublic,
    RiderUpdate,
    Shop,
    TripPublic,
    check_shifts,
)
from api.retry import RetryLostRaceRoute
from api.shifts import replace_shifts_from
from api.trips import active_trip

router = APIRouter(prefix="/riders", tags=["riders"], route_class=RetryLostRaceRoute)

# How far ahead of the service's clock a reported position may be (phones' clocks drift).
MAX_LOCATION_AHEAD = timedelta(minutes=2)


def serving(shop_id: uuid.UUID) -> Any:
    """Condition: the rider serves the shop ``shop_id`` (for ``select(Rider)``)."""
    return col(Rider.id).in_(select(RiderShop.rider_id).where(RiderShop.shop_id == shop_id))


def get_served_rider(
    session: Session, shop: Shop, rider_id: uuid.UUID, *, lock: bool = False
) -> Rider:
    """The rider ``rider_id`` if it serves ``shop``; 404 otherwise, as if it did not exist."""
    link = session.get(RiderShop, (rider_id, shop.id))
    rider = session.get(Rider, rider_id, with_for_update=lock) if link is not None else None
    if rider is None:
        raise not_found("rider")
    return rider


def rider_public(session: Session, rider: Rider) -> RiderPublic:
    """The rider as answered, with its latest shifts (``api.core_writes.latest_shifts``)."""
    return RiderPublic.model_validate(rider, update={"shifts": latest_shifts(session, rider.id)})


@router.post("", status_code=201)
def create_rider(
    rider_in: RiderCreate, session: SessionDep, shop: CurrentShopDep, now: NowDep
) -> RiderPublic:
    """Register a rider of the calling shop, off duty and with no known position."""
    rider = Rider.model_validate(
        rider_in.model_dump(exclude={"shifts"}), update={"shop_id": shop.id, "created_at": now}
    )
    session.add(rider)
    session.flush()
    session.add(RiderShop(rider_id=rider.id, shop_id=shop.id, created_at=now))
    # The home shop is served since ever: shifts declared before the registration count there.
    session.add(RiderShopSpan(rider_id=rider.id, shop_id=shop.id, linked_at=None))
    for start_at, end_at in rider_in.shifts:
        session.add(RiderShift(rider_id=rider.id, start_at=start_at, end_at=end_at))
    session.commit()
    return rider_public(session, rider)


@router.get("")
def list_riders(
    session: SessionDep,
    shop: CurrentShopDep,
    on_duty: bool | None = None,
    skip: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> RidersPublic:
    """The riders serving the shop, oldest first; ``count`` is the number matching the filter."""
    conditions = [serving(shop.id)]
    if on_duty is not None:
        conditions.append(col(Rider.on_duty) == on_duty)
    riders, count = fetch_page(
        session, Rider, conditions, (col(Rider.created_at), col(Rider.id)), skip=skip, limit=limit
    )
    return RidersPublic(data=[rider_public(session, rider) for rider in riders], count=count)


@router.get("/{rider_id}")
def read_rider(rider_id: uuid.UUID, session: SessionDep, shop: CurrentShopDep) -> RiderPublic:
    return rider_public(session, get_served_rider(session, shop, rider_id))


@router.patch(
    "/{rider_id}",
    responses={403: {"model": ErrorPublic, "description": "Not the rider's home shop."}},
)
def update_rider(
    rider_id: uuid.UUID,
    rider_update: RiderUpdate,
    session: SessionDep,
    shop: CurrentShopDep,
    now: NowDep,
) -> RiderPublic:
    """Change a rider's ``name``, ``mode``, ``capacity_bags`` or ``shifts``; the fields left out
    stay as they are. ``shifts`` replace the declared ones from now on and the past stays as it
    was (``api.shifts``): a shift running now is ended (``[]``) or extended by a new one covering
    now, and the stored result is answered; 422 if that makes a shift over 24 hours. Only the
    rider's home shop may; another shop it serves gets 403 ``not_home_shop``. A trip already
    committed keeps its plan; the next plans use the new profile (a plan made from the old one
    is not stored: the shifts' version goes up when the stored shifts change)."""
    rider = get_served_rider(session, shop, rider_id, lock=True)
    if rider.shop_id != shop.id:
        raise AppError(403, "not_home_shop", "only the rider's home shop may change it")
    changes = changes_of(rider_update)
    shifts = changes.pop("shifts", None)
    for name, value in changes.items():
        setattr(rider, name, value)
    session.add(rider)
    if shifts is not None:
        store_shifts_from(session, rider, shifts, now)
    session.commit()
    return rider_public(session, rider)


def store_shifts_from(
    session: Session, rider: Rider, shifts: list[tuple[datetime, datetime]], now: datetime
) -> None:
    """Replace the rider's stored shifts by ``shifts`` from ``now`` on, keeping the past rows as
    they are; one more ``shifts_version`` if the stored shifts change. 422 ``validation_error``
    naming ``shifts`` if the result breaks the rules of declared shifts."""
    rows = session.exec(select(RiderShift).where(RiderShift.rider_id == rider.id)).all()
    old = sorted((row.start_at, row.end_at) for row in rows)
    kept = replace_shifts_from(old, shifts, now)
    try:
        check_shifts(kept)
    except ValueError as error:
        raise AppError(
            422,
            "validation_error",
            f"shifts: {error}: the part of a shift before now ({now.isoformat()}) is kept and "
            "joined to the new one",
        ) from None
    if kept == old:
        return
    for row in rows:
        if (row.start_at, row.end_at) not in kept:
            session.delete(row)
    for start_at, end_at in sorted(set(kept) - set(old)):
        session.add(RiderShift(rider_id=rider.id, start_at=start_at, end_at=end_at))
    rider.shifts_version += 1


@router.post("/{rider_id}/duty")
async def set_duty(
    rider_id: uuid.UUID,
    duty_in: RiderDuty,
    group_commit: GroupCommitDep,
    shop: CurrentShopReadDep,
    now: NowDep,
) -> RiderPublic:
    """Put the rider on duty (dispatch may give them trips) or off duty, for every shop served;
    the time on duty counts in the shops' rider hours (``GET /v1/shops/{id}/kpis``). Written
    through the group writer (``api.group_commit``), the duty span in the same transaction."""

    def set_rider_duty(session: Session) -> RiderPublic:
        return store_duty(session, shop, rider_id, duty_in.on_duty, now)

    return await group_commit.run(set_rider_duty)


def location_work(
    shop: Shop, rider_id: uuid.UUID, location_in: RiderLocation, now: datetime
) -> Callable[[Session], RiderPublic]:
    """The write of ``POST /v1/riders/{rider_id}/location`` (for the group writer); also the
    fast path's (``api.fast``). 422 ``location_in_future`` at once, before any write."""
    at = location_in.at or now
    if at > now + MAX_LOCATION_AHEAD:
        raise AppError(
            422,
            "location_in_future",
            f"at {at.isoformat()} is more than 2 minutes after the service's clock "
            f"({now.isoformat()})",
        )

    def store(session: Session) -> RiderPublic:
        return store_location(session, shop, rider_id, location_in, at)

    return store


@router.post("/{rider_id}/location")
async def report_location(
    rider_id: uuid.UUID,
    location_in: RiderLocation,
    group_commit: GroupCommitDep,
    shop: CurrentShopReadDep,
    now: NowDep,
) -> RiderPublic:
    """Store the rider's position and its time (``at``, default now).

    A position older than the one stored is ignored (reports may arrive out of order); one more
    than two minutes ahead of the service's clock gets 422 ``location_in_future``. Written
    through the group writer (``api.group_commit``).
    """
    return await group_commit.run(location_work(shop, rider_id, location_in, now))


def rider_trip(session: Session, shop: Shop, rider_id: uuid.UUID) -> TripPublic:
    """What ``GET /v1/riders/{rider_id}/trip`` answers (Core reads, ``api.trip_read``; the
    fast path, ``api.fast``, reads the same on a connection of its own)."""
    return trip_read.read_rider_trip(session.connection(), shop.id, rider_id)


@router.get(
    "/{rider_id}/trip",
    responses={
        404: {
            "model": ErrorPublic,
            "description": "No such rider, or (code `no_trip`) no committed trip.",
        }
    },
)
def read_rider_trip(
    rider_id: uuid.UUID, session: SessionDep, shop: CurrentShopReadDep
) -> TripPublic:
    """The rider's committed trip: the shop, the stops in delivery sequence, their ETAs.

    404 ``no_trip`` when the rider has no committed or picked-up trip for the calling shop (a
    shared rider's trip for another shop is that shop's data).
    """
    return rider_trip(session, shop, rider_id)


def rider_shops_public(session: Session, rider: Rider) -> RiderShopsPublic:
    links = session.exec(
        select(RiderShop)
        .where(RiderShop.rider_id == rider.id)
        .order_by(col(RiderShop.created_at), col(RiderShop.shop_id))
    ).all()
    others = [link.shop_id for link in links if link.shop_id != rider.shop_id]
    return RiderShopsPublic(
        rider_id=rider.id, home_shop_id=rider.shop_id, shop_ids=[rider.shop_id, *others]
    )


def close_shop_spans(
    session: Session, rider_id: uuid.UUID, shop_id: uuid.UUID, now: datetime
) -> None:
    """Close the rider's open span for the shop at ``now`` (never before it started: the clocks
    of processes differ)."""
    spans = session.exec(
        select(RiderShopSpan).where(
            RiderShopSpan.rider_id == rider_id,
            RiderShopSpan.shop_id == shop_id,
            col(RiderShopSpan.unlinked_at).is_(None),
        )
    ).all()
    for span in spans:
        span.unlinked_at = now if span.linked_at is None else max(now, span.linked_at)
        session.add(span)


@router.post("/{rider_id}/shops", dependencies=[AdminDep])
def link_rider_shop(
    rider_id: uuid.UUID, link_in: RiderShopLink, session: SessionDep, now: NowDep
) -> RiderShopsPublic:
    """Let the rider serve another shop too (admin token): that shop's dispatch may give it
    trips and that shop's keys see it, and its hours count in that shop's KPIs from now on.
    Linking a linked shop changes nothing; a missing rider or shop is 404."""
    rider = session.get(Rider, rider_id, with_for_update=True)
    if rider is None:
        raise not_found("rider")
    if session.get(Shop, link_in.shop_id) is None:
        raise not_found("shop")
    if session.get(RiderShop, (rider.id, link_in.shop_id)) is None:
        session.add(RiderShop(rider_id=rider.id, shop_id=link_in.shop_id, created_at=now))
        session.add(RiderShopSpan(rider_id=rider.id, shop_id=link_in.shop_id, linked_at=now))
        session.commit()
    return rider_shops_public(session, rider)


@router.delete(
    "/{rider_id}/shops/{shop_id}",
    dependencies=[AdminDep],
    responses={
        404: {"model": ErrorPublic, "description": "No such rider or shop."},
        409: {
            "model": ErrorPublic,
            "description": "`home_shop`: the rider's home shop; `trip_in_progress`: the rider "
            "has a committed or picked-up trip of that shop.",
        },
    },
)
def unlink_rider_shop(
    rider_id: uuid.UUID, shop_id: uuid.UUID, session: SessionDep, now: NowDep
) -> RiderShopsPublic:
    """Stop the rider serving a linked shop (admin token): that shop's dispatch gives it no more
    trips and that shop's keys no longer see it; its hours stop counting in that shop's KPIs
    from now on, and the days before keep theirs. Unlinking a shop it does not serve changes
    nothing. Its home shop cannot be unlinked (409 ``home_shop``), nor a shop whose trip it is
    carrying (409 ``trip_in_progress``: unlink once it is delivered)."""
    rider = session.get(Rider, rider_id, with_for_update=True)
    if rider is None:
        raise not_found("rider")
    if session.get(Shop, shop_id) is None:
        raise not_found("shop")
    if shop_id == rider.shop_id:
        raise AppError(409, "home_shop", "a rider's home shop cannot be unlinked")
    link = session.get(RiderShop, (rider.id, shop_id))
    if link is not None:
        trip = active_trip(session, rider.id)
        if trip is not None and trip.shop_id == shop_id:
            raise AppError(
                409,
                "trip_in_progress",
                f"the rider is carrying trip {trip.id} of this shop; unlink it once delivered",
            )
        session.delete(link)
        close_shop_spans(session, rider.id, shop_id, now)
        session.commit()
    return rider_shops_public(session, rider)
