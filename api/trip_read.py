"""``GET /v1/riders/{id}/trip``'s read as three Core statements on one connection (one read
transaction): the rider serving the shop, its active trip with the trip's shop, the stops with
their orders. Both the route and its fast path (``api.fast``) answer with ``read_rider_trip``.

The ORM version (a ``Session.get`` each for the link and the rider, ``active_trip``,
``trip_public``) cost about 1 ms of the GIL a read under ``make load``, most of it SQLAlchemy's
ORM machinery, and it ran in the thread pool; this one is cheap enough for the event loop.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Connection, bindparam, literal, select
from sqlmodel import SQLModel

from api.driver_select import DriverSelect
from api.errors import AppError, not_found
from api.models import (
    Order,
    RiderShop,
    Shop,
    Trip,
    TripPublic,
    TripShopPublic,
    TripStop,
    TripStopPublic,
)
from api.trips import ACTIVE_TRIP_VALUES

_TABLES = SQLModel.metadata.tables
RIDER_SHOPS = _TABLES[str(RiderShop.__tablename__)]
TRIPS = _TABLES[str(Trip.__tablename__)]
SHOPS = _TABLES[str(Shop.__tablename__)]
TRIP_STOPS = _TABLES[str(TripStop.__tablename__)]
ORDERS = _TABLES[str(Order.__tablename__)]

# The link is the rider's: a rider serving a shop exists (foreign key).
SERVES = select(RIDER_SHOPS.c.rider_id).where(
    RIDER_SHOPS.c.rider_id == bindparam("rider_id"), RIDER_SHOPS.c.shop_id == bindparam("shop_id")
)
TRIP_WITH_SHOP = select(
    TRIPS,
    SHOPS.c.name.label("shop_name"),
    SHOPS.c.lat.label("shop_lat"),
    SHOPS.c.lon.label("shop_lon"),
).join(SHOPS, SHOPS.c.id == TRIPS.c.shop_id)
# ``api.trips.active_trip``: the oldest committed or picked-up trip of the rider.
ACTIVE_TRIP = (
    TRIP_WITH_SHOP.where(
        TRIPS.c.rider_id == bindparam("rider_id"),
        # its items as values of the statement, not an expanding list (``api.driver_select``)
        TRIPS.c.status.in_([literal(status) for status in ACTIVE_TRIP_VALUES]),
    )
    .order_by(TRIPS.c.assigned_at, TRIPS.c.id)
    .limit(1)
)
TRIP_BY_ID = TRIP_WITH_SHOP.where(TRIPS.c.id == bindparam("trip_id"))
STOPS = (
    select(
        TRIP_STOPS.c.seq,
        TRIP_STOPS.c.eta_at.label("stop_eta_at"),
        ORDERS.c.id,
        ORDERS.c.external_id,
        ORDERS.c.address,
        ORDERS.c.dropoff_lat,
        ORDERS.c.dropoff_lon,
        ORDERS.c.size_bags,
        ORDERS.c.status,
        ORDERS.c.promised_at,
        ORDERS.c.eta_at,
    )
    .join(ORDERS, ORDERS.c.id == TRIP_STOPS.c.order_id)
    .where(TRIP_STOPS.c.trip_id == bindparam("trip_id"))
    .order_by(TRIP_STOPS.c.seq)
)


# The reads by the driver on SQLite (``api.driver_select``), in the connection's transaction.
SERVES_READ = DriverSelect(SERVES)
ACTIVE_TRIP_READ = DriverSelect(ACTIVE_TRIP)
TRIP_BY_ID_READ = DriverSelect(TRIP_BY_ID)
STOPS_READ = DriverSelect(STOPS)


def read_rider_trip(connection: Connection, shop_id: uuid.UUID, rider_id: uuid.UUID) -> TripPublic:
    """The active trip of rider ``rider_id`` for shop ``shop_id``: 404 ``not_found`` when the
    rider does not serve the shop, 404 ``no_trip`` when it has no committed or picked-up trip,
    or its oldest is another shop's."""
    if not SERVES_READ.rows(connection, {"rider_id": rider_id, "shop_id": shop_id}):
        raise not_found("rider")
    trips = ACTIVE_TRIP_READ.rows(connection, {"rider_id": rider_id})
    if not trips or trips[0]["shop_id"] != shop_id:
        raise AppError(404, "no_trip", "the rider has no committed trip")
    return _trip_public(connection, trips[0])


def read_trip(connection: Connection, trip_id: uuid.UUID) -> TripPublic:
    """``api.trips.trip_public`` of trip ``trip_id`` (which must exist), in Core."""
    (trip,) = TRIP_BY_ID_READ.rows(connection, {"trip_id": trip_id})
    return _trip_public(connection, trip)


def _trip_public(connection: Connection, trip: Any) -> TripPublic:
    """The trip of a ``TRIP_WITH_SHOP`` row, with its stops."""
    stops = [
        TripStopPublic.model_validate(
            {**stop, "order_id": stop["id"], "eta_at": stop["eta_at"] or stop["stop_eta_at"]}
        )
        for stop in STOPS_READ.rows(connection, {"trip_id": trip["id"]})
    ]
    shop = TripShopPublic(
        id=trip["shop_id"], name=trip["shop_name"], lat=trip["shop_lat"], lon=trip["shop_lon"]
    )
    return TripPublic.model_validate({**trip, "shop": shop, "stops": stops})
