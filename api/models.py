"""Tables and the request/response models of the service (one family per entity).

Families follow the full-stack-fastapi-template: ``XBase`` (shared fields and their bounds),
``XCreate`` (request body: strict), ``X`` (table), ``XPublic`` (response), ``XsPublic`` (list
``{data, count}``). Times are timezone-aware UTC datetimes.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from itertools import pairwise
from typing import Any

from pydantic import AwareDatetime, ConfigDict, StrictBool, field_validator, model_validator
from sqlalchemy import DateTime, Dialect, Text, TypeDecorator, UniqueConstraint
from sqlmodel import Field, SQLModel


def utc_now() -> datetime:
    """The current instant, timezone-aware UTC."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored as UTC and always read back timezone-aware (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: every stored time must carry its time zone")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


# --- strict input -------------------------------------------------------------------------------


def check_text(value: str) -> str:
    """Reject text no database stores faithfully: control characters and lone surrogates."""
    if any(ord(char) < 32 or ord(char) == 127 for char in value):
        raise ValueError("must not contain control characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode (no lone surrogates)") from None
    return value


class InputModel(SQLModel):
    """A request body: unknown fields, NaN and Infinity are rejected, text is checked."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)  # type: ignore[assignment]

    @field_validator("*", mode="after")
    @classmethod
    def _check_text_fields(cls, value: Any) -> Any:
        return check_text(value) if isinstance(value, str) else value


class ErrorPublic(SQLModel):
    """Every error body: a machine-readable ``code`` and a human ``message``."""

    code: str
    message: str


# --- shops and their API keys -------------------------------------------------------------------


class ShopBase(SQLModel):
    name: str = Field(min_length=1, max_length=100)
    lat: float = Field(ge=-90.0, le=90.0)
    lon: float = Field(ge=-180.0, le=180.0)
    circle_walk_min: int = Field(default=15, ge=1, le=60)
    promise_min: int = Field(default=30, ge=5, le=240)


class ShopCreate(ShopBase, InputModel):
    pass


class Shop(ShopBase, table=True):
    __tablename__ = "shops"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    created_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime())


class ShopPublic(ShopBase):
    id: uuid.UUID
    created_at: datetime


class ApiKey(SQLModel, table=True):
    """A shop's API key; only its SHA-256 is stored, and a short prefix to recognise it by."""

    __tablename__ = "api_keys"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    shop_id: uuid.UUID = Field(foreign_key="shops.id", index=True)
    key_sha256: str = Field(max_length=64, unique=True, index=True)
    prefix: str = Field(max_length=16)
    created_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime())
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime())


class ApiKeyCreated(SQLModel):
    """A new key: ``key`` is shown this once and never again."""

    id: uuid.UUID
    prefix: str
    key: str
    created_at: datetime


class ShopCreated(SQLModel):
    shop: ShopPublic
    api_key: ApiKeyCreated


class ApiKeyPublic(SQLModel):
    """A key as listed or revoked: never the key itself."""

    id: uuid.UUID
    prefix: str
    created_at: datetime
    revoked_at: datetime | None


# --- quotes -------------------------------------------------------------------------------------


class QuoteCreate(InputModel):
    dropoff_lat: float = Field(ge=-90.0, le=90.0)
    dropoff_lon: float = Field(ge=-180.0, le=180.0)
    size_bags: int = Field(default=1, ge=1, le=50)


class QuotePublic(SQLModel):
    """Whether the shop serves a drop-off, and the promise it could make if ordered now."""

    inside_circle: bool
    walk_s: int
    circle_walk_min: int
    size_bags: int
    quoted_at: datetime
    # ``quoted_at`` plus the shop's ``promise_min``; null outside the circle.
    promised_at: datetime | None
    promise_min: int
    # The promise does not yet depend on the orders and riders of the moment.
    accounts_for_load: bool = False
    note: str


# --- riders -------------------------------------------------------------------------------------


class RiderMode(StrEnum):
    walk = "walk"
    bike = "bike"
    ebike = "ebike"


class RiderBase(SQLModel):
    name: str = Field(min_length=1, max_length=100)
    mode: RiderMode = Field(sa_type=Text())
    capacity_bags: int = Field(default=6, ge=1, le=50)


class Rider(RiderBase, table=True):
    """A rider, owned by one shop for now (a pool shared by a circle needs a link table)."""

    __tablename__ = "riders"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    shop_id: uuid.UUID = Field(foreign_key="shops.id", index=True)
    on_duty: bool = False
    lat: float | None = None
    lon: float | None = None
    located_at: datetime | None = Field(default=None, sa_type=UTCDateTime())
    created_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime())


# Bounds of a rider's declared shifts.
MAX_SHIFTS = 50
MAX_SHIFT = timedelta(hours=24)


def to_utc(value: datetime) -> datetime:
    """``value`` in UTC; an instant outside the representable range is a ``ValueError``."""
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("out of range") from None


class RiderCreate(RiderBase, InputModel):
    """A new rider; ``shifts`` are ``[start, end]`` pairs, each under a day, not overlapping."""

    shifts: list[tuple[AwareDatetime, AwareDatetime]] = Field(
        default_factory=list, max_length=MAX_SHIFTS
    )

    @field_validator("shifts", mode="after")
    @classmethod
    def _check_shifts(
        cls, shifts: list[tuple[datetime, datetime]]
    ) -> list[tuple[datetime, datetime]]:
        shifts = sorted((to_utc(start), to_utc(end)) for start, end in shifts)
        for start, end in shifts:
            shown = f"shift {start.isoformat()} to {end.isoformat()}"
            if end <= start:
                raise ValueError(f"{shown} does not end after it starts")
            if end - start > MAX_SHIFT:
                raise ValueError(f"{shown} is over 24 hours")
        for (_, end), (start, _) in pairwise(shifts):
            if start < end:
                raise ValueError(f"shifts overlap at {start.isoformat()}")
        return shifts


class RiderShift(SQLModel, table=True):
    """One declared shift of a rider (a table of its own: the riders table predates shifts)."""

    __tablename__ = "rider_shifts"

    id: int | None = Field(default=None, primary_key=True)
    rider_id: uuid.UUID = Field(foreign_key="riders.id", index=True)
    start_at: datetime = Field(sa_type=UTCDateTime())
    end_at: datetime = Field(sa_type=UTCDateTime())


class RiderPublic(RiderBase):
    id: uuid.UUID
    shop_id: uuid.UUID
    on_duty: bool
    lat: float | None
    lon: float | None
    located_at: datetime | None
    created_at: datetime
    shifts: list[tuple[datetime, datetime]]


class RidersPublic(SQLModel):
    data: list[RiderPublic]
    count: int


class RiderDuty(InputModel):
    on_duty: StrictBool


class RiderLocation(InputModel):
    """A rider's position; ``at`` defaults to the time the service receives it."""

    lat: float = Field(ge=-90.0, le=90.0)
    lon: float = Field(ge=-180.0, le=180.0)
    at: AwareDatetime | None = None

    @field_validator("at", mode="after")
    @classmethod
    def _at_in_utc(cls, value: datetime | None) -> datetime | None:
        return None if value is None else to_utc(value)


# --- orders -------------------------------------------------------------------------------------


class OrderStatus(StrEnum):
    pending = "pending"  # accepted, waiting for a rider
    assigned = "assigned"  # in a committed trip
    picked_up = "picked_up"
    delivered = "delivered"
    failed = "failed"
    cancelled = "cancelled"


# Statuses from which an order can still be cancelled.
CANCELLABLE = frozenset({OrderStatus.pending, OrderStatus.assigned})

SOURCE_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,31}$"


class OrderBase(SQLModel):
    source: str = Field(min_length=1, max_length=32, schema_extra={"pattern": SOURCE_PATTERN})
    external_id: str = Field(min_length=1, max_length=128)
    dropoff_lat: float = Field(ge=-90.0, le=90.0)
    dropoff_lon: float = Field(ge=-180.0, le=180.0)
    address: str = Field(default="", max_length=256)
    size_bags: int = Field(default=1, ge=1, le=50)


class OrderCreate(OrderBase, InputModel):
    """An order at intake: give ``ready_at`` or ``picking_min`` (neither: ready when placed)."""

    ready_at: AwareDatetime | None = None
    picking_min: int | None = Field(default=None, ge=0, le=240)

    @field_validator("ready_at", mode="after")
    @classmethod
    def _ready_at_in_utc(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        try:
            return value.astimezone(UTC)
        except OverflowError:
            raise ValueError("out of range") from None

    @model_validator(mode="after")
    def _one_ready_rule(self) -> OrderCreate:
        if self.ready_at is not None and self.picking_min is not None:
            raise ValueError("give ready_at or picking_min, not both")
        return self


class Order(OrderBase, table=True):
    __tablename__ = "orders"
    __table_args__ = (
        UniqueConstraint("shop_id", "source", "external_id", name="uq_orders_shop_source_ext"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    shop_id: uuid.UUID = Field(foreign_key="shops.id", index=True)
    status: str = Field(default=OrderStatus.pending.value, max_length=16, index=True)
    placed_at: datetime = Field(sa_type=UTCDateTime())
    ready_at: datetime = Field(sa_type=UTCDateTime())
    promised_at: datetime = Field(sa_type=UTCDateTime())
    updated_at: datetime = Field(sa_type=UTCDateTime(), index=True)
    # The trip the order is on (assigned or picked up) and its current ETA there.
    trip_id: uuid.UUID | None = Field(default=None, foreign_key="trips.id", index=True)
    eta_at: datetime | None = Field(default=None, sa_type=UTCDateTime())


class OrderPublic(OrderBase):
    id: uuid.UUID
    shop_id: uuid.UUID
    status: OrderStatus
    placed_at: datetime
    ready_at: datetime
    promised_at: datetime
    updated_at: datetime
    trip_id: uuid.UUID | None = None
    eta_at: datetime | None = None


class OrdersPublic(SQLModel):
    data: list[OrderPublic]
    count: int


class OrderCancel(InputModel):
    reason: str | None = Field(default=None, max_length=200)


# PIN proof of a delivery: 4 to 8 digits.
PIN_PATTERN = r"^[0-9]{4,8}$"


class OrderDeliver(InputModel):
    pin: str | None = Field(default=None, schema_extra={"pattern": PIN_PATTERN})


class OrderFail(InputModel):
    """A delivery that did not happen: ``retry`` puts the order back to dispatch."""

    reason: str = Field(min_length=1, max_length=200)
    retry: StrictBool = False


class OrderEvent(SQLModel, table=True):
    """One state change of an order; rows are only ever inserted (append-only history)."""

    __tablename__ = "order_events"

    id: int | None = Field(default=None, primary_key=True)
    order_id: uuid.UUID = Field(foreign_key="orders.id", index=True)
    shop_id: uuid.UUID = Field(foreign_key="shops.id", index=True)
    kind: str = Field(max_length=32)
    status: str = Field(max_length=16)
    at: datetime = Field(sa_type=UTCDateTime())
    note: str | None = Field(default=None, max_length=256)


class OrderEventPublic(SQLModel):
    id: int
    order_id: uuid.UUID
    kind: str
    status: OrderStatus
    at: datetime
    note: str | None


class OrderEventsPublic(SQLModel):
    data: list[OrderEventPublic]
    count: int


# --- trips -------------------------------------------------------------------------------------


class TripStatus(StrEnum):
    committed = "committed"  # the rider is on the way to the shop or waiting there
    picked_up = "picked_up"  # the rider carries the orders
    done = "done"  # every stop delivered or failed: the rider is free


# Statuses of a trip that keep its rider busy.
ACTIVE_TRIP_STATUSES = frozenset({TripStatus.committed, TripStatus.picked_up})


class Trip(SQLModel, table=True):
    """A trip committed by dispatch: one rider, one shop, stops in ``trip_stops``."""

    __tablename__ = "trips"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    shop_id: uuid.UUID = Field(foreign_key="shops.id", index=True)
    rider_id: uuid.UUID = Field(foreign_key="riders.id", index=True)
    status: str = Field(default=TripStatus.committed.value, max_length=16, index=True)
    assigned_at: datetime = Field(sa_type=UTCDateTime())
    # Planned: when the rider leaves its position, and when it leaves the shop with the orders.
    leave_at: datetime = Field(sa_type=UTCDateTime())
    depart_at: datetime = Field(sa_type=UTCDateTime())
    done_at: datetime | None = Field(default=None, sa_type=UTCDateTime())


class TripStop(SQLModel, table=True):
    """One drop-off of a trip, in delivery sequence (``seq`` from 0), with its planned ETA."""

    __tablename__ = "trip_stops"
    __table_args__ = (UniqueConstraint("trip_id", "seq", name="uq_trip_stops_trip_seq"),)

    id: int | None = Field(default=None, primary_key=True)
    trip_id: uuid.UUID = Field(foreign_key="trips.id", index=True)
    order_id: uuid.UUID = Field(foreign_key="orders.id", index=True)
    seq: int
    eta_at: datetime = Field(sa_type=UTCDateTime())


class TripShopPublic(SQLModel):
    id: uuid.UUID
    name: str
    lat: float
    lon: float


class TripStopPublic(SQLModel):
    seq: int
    order_id: uuid.UUID
    external_id: str
    address: str
    dropoff_lat: float
    dropoff_lon: float
    size_bags: int
    status: OrderStatus
    promised_at: datetime
    eta_at: datetime


class TripPublic(SQLModel):
    id: uuid.UUID
    shop: TripShopPublic
    rider_id: uuid.UUID
    status: TripStatus
    assigned_at: datetime
    leave_at: datetime
    depart_at: datetime
    done_at: datetime | None
    stops: list[TripStopPublic]


# --- idempotency --------------------------------------------------------------------------------


class IdempotencyRecord(SQLModel, table=True):
    """The stored response of a request made with an ``Idempotency-Key``, per shop."""

    __tablename__ = "idempotency_records"
    __table_args__ = (UniqueConstraint("shop_id", "key", name="uq_idempotency_shop_key"),)

    id: int | None = Field(default=None, primary_key=True)
    shop_id: uuid.UUID = Field(foreign_key="shops.id", index=True)
    key: str = Field(max_length=255)
    request_sha256: str = Field(max_length=64)
    response_status: int
    response_body: str = Field(sa_type=Text())
    created_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime())
