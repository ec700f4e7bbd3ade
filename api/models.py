"""Tables and the request/response models of the service (one family per entity).

Families follow the full-stack-fastapi-template: ``XBase`` (shared fields and their bounds),
``XCreate`` (request body: strict), ``X`` (table), ``XPublic`` (response), ``XsPublic`` (list
``{data, count}``). Times are timezone-aware UTC datetimes.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from itertools import pairwise
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AwareDatetime, ConfigDict, StrictBool, field_validator, model_validator
from pydantic import Field as PydanticField
from sqlalchemy import DateTime, Dialect, Index, Text, TypeDecorator, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from api.ids import new_id

# Names of constraints and indexes (Alembic's batch mode on SQLite alters only named ones).
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


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


# Characters no stored text may hold: C0 controls and DEL.
CONTROL_CHARS = re.compile("[\x00-\x1f\x7f]")


def check_text(value: str) -> str:
    """Reject text no database stores faithfully: control characters and lone surrogates."""
    if CONTROL_CHARS.search(value):  # a regular expression: a loop per character cost more
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
    # Deliveries must carry the order's PIN (otherwise a PIN is checked only when given).
    require_pin: bool = False
    # The IANA time zone of the shop's days (its KPIs' "date"), e.g. "Asia/Shanghai".
    timezone: str = Field(
        default="UTC", min_length=1, max_length=64, sa_column_kwargs={"server_default": "UTC"}
    )


def check_timezone(name: str) -> str:
    """``name`` if it is an IANA time zone this machine knows, else ``ValueError``."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError("must be an IANA time zone name such as Asia/Shanghai or UTC") from None
    return name


class ShopCreate(ShopBase, InputModel):
    require_pin: StrictBool = False

    @field_validator("timezone", mode="after")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        return check_timezone(value)


class ShopUpdate(InputModel):
    """The shop settings a manager may change; fields left out stay as they are."""

    name: str | None = Field(default=None, min_length=1, max_length=100)
    timezone: str | None = Field(default=None, min_length=1, max_length=64)

    @field_validator("timezone", mode="after")
    @classmethod
    def _known_timezone(cls, value: str | None) -> str | None:
        return None if value is None else check_timezone(value)


class Shop(ShopBase, table=True):
    __tablename__ = "shops"

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    created_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime())


class ShopPublic(ShopBase):
    id: uuid.UUID
    created_at: datetime


class ApiKey(SQLModel, table=True):
    """A shop's API key; only its SHA-256 is stored, and a short prefix to recognise it by."""

    __tablename__ = "api_keys"

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
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
    """A rider, registered by its home shop (``shop_id``); the shops it serves, the home shop
    and any the admin linked (a pool shared by the shops of a circle), are in ``rider_shops``."""

    __tablename__ = "riders"

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    shop_id: uuid.UUID = Field(foreign_key="shops.id", index=True)
    on_duty: bool = False
    # One more each time the declared shifts change (``PATCH /v1/riders/{id}``): a plan made
    # with the shifts of another version is not stored (``api.dispatch.store_decision``).
    shifts_version: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    lat: float | None = None
    lon: float | None = None
    located_at: datetime | None = Field(default=None, sa_type=UTCDateTime())
    created_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime())


class RiderShop(SQLModel, table=True):
    """A shop a rider serves now: its dispatch may give the rider trips, its keys see the rider
    (``created_at``: when it was linked last). Its history is in ``rider_shop_spans``."""

    __tablename__ = "rider_shops"

    rider_id: uuid.UUID = Field(foreign_key="riders.id", primary_key=True)
    shop_id: uuid.UUID = Field(foreign_key="shops.id", primary_key=True, index=True)
    created_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime())


class RiderShopSpan(SQLModel, table=True):
    """A time a rider served a shop: from its link (``linked_at``; null, since ever, for the
    home shop and for the links older than this table) to its unlink (``unlinked_at``, null
    while linked). A rider linked to a shop (a row of ``rider_shops``) has exactly one open
    span for it, one unlinked none (``api.routes.riders`` keeps them so; the partial unique
    index makes a second open span an error); the KPIs count a rider's hours for a shop only
    within these spans, so that unlinking it leaves the shop's past days as they were."""

    __tablename__ = "rider_shop_spans"
    __table_args__ = (
        Index("ix_rider_shop_spans_shop_rider", "shop_id", "rider_id"),
        Index(
            "uq_rider_shop_spans_open",
            "rider_id",
            "shop_id",
            unique=True,
            sqlite_where=text("unlinked_at IS NULL"),
            postgresql_where=text("unlinked_at IS NULL"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    rider_id: uuid.UUID = Field(foreign_key="riders.id")
    shop_id: uuid.UUID = Field(foreign_key="shops.id")
    linked_at: datetime | None = Field(default=None, sa_type=UTCDateTime())
    unlinked_at: datetime | None = Field(default=None, sa_type=UTCDateTime())


class RiderShopLink(InputModel):
    """Another shop for a rider to serve (admin token)."""

    shop_id: uuid.UUID


class RiderShopsPublic(SQLModel):
    """The shops a rider serves, its home shop first, then in the order they were linked."""

    rider_id: uuid.UUID
    home_shop_id: uuid.UUID
    shop_ids: list[uuid.UUID]


# Bounds of a rider's declared shifts.
MAX_SHIFTS = 50
MAX_SHIFT = timedelta(hours=24)


def to_utc(value: datetime) -> datetime:
    """``value`` in UTC; an instant outside the representable range is a ``ValueError``."""
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("out of range") from None


def check_shifts(shifts: list[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    """``shifts`` in UTC and in order; ``ValueError`` for one not ending after it starts, one
    over 24 hours or two overlapping."""
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
        return check_shifts(shifts)


class RiderUpdate(InputModel):
    """A change of a rider's profile; fields left out stay as they are, ``shifts`` replaces
    the declared shifts from now on and the past stays as it was (``api.shifts``): the shifts
    before now may be left out, ``[]`` ends them now."""

    name: str | None = Field(default=None, min_length=1, max_length=100)
    mode: RiderMode | None = None
    capacity_bags: int | None = Field(default=None, ge=1, le=50)
    shifts: list[tuple[AwareDatetime, AwareDatetime]] | None = Field(
        default=None, max_length=MAX_SHIFTS
    )

    @field_validator("shifts", mode="after")
    @classmethod
    def _check_shifts(
        cls, shifts: list[tuple[datetime, datetime]] | None
    ) -> list[tuple[datetime, datetime]] | None:
        return None if shifts is None else check_shifts(shifts)


class RiderShift(SQLModel, table=True):
    """One declared shift of a rider (a table of its own: the riders table predates shifts)."""

    __tablename__ = "rider_shifts"

    id: int | None = Field(default=None, primary_key=True)
    rider_id: uuid.UUID = Field(foreign_key="riders.id", index=True)
    start_at: datetime = Field(sa_type=UTCDateTime())
    end_at: datetime = Field(sa_type=UTCDateTime())


class RiderDutySpan(SQLModel, table=True):
    """A time a rider was on duty: from going on duty (``start_at``) to going off (``end_at``,
    null while it is still on duty). A rider on duty has exactly one open span, one off duty
    none (``api.core_writes.store_duty`` keeps them so; the partial unique index makes a
    second open span an error)."""

    __tablename__ = "rider_duty_spans"
    __table_args__ = (
        Index("ix_rider_duty_spans_rider_start", "rider_id", "start_at"),
        Index(
            "uq_rider_duty_spans_open",
            "rider_id",
            unique=True,
            sqlite_where=text("end_at IS NULL"),
            postgresql_where=text("end_at IS NULL"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    rider_id: uuid.UUID = Field(foreign_key="riders.id")
    start_at: datetime = Field(sa_type=UTCDateTime())
    end_at: datetime | None = Field(default=None, sa_type=UTCDateTime())


class RiderPublic(RiderBase):
    id: uuid.UUID
    shop_id: uuid.UUID
    on_duty: bool
    lat: float | None
    lon: float | None
    located_at: datetime | None
    created_at: datetime
    shifts: list[tuple[datetime, datetime]] = Field(
        description=(
            f"the latest {MAX_SHIFTS} declared shifts, oldest first (earlier ones are kept for "
            "the KPIs' rider hours); sent back in a PATCH they change nothing"
        )
    )


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


# PIN proof of a delivery: 4 to 8 digits.
PIN_PATTERN = r"^[0-9]{4,8}$"


class OrderCreate(OrderBase, InputModel):
    """An order at intake: give ``ready_at`` or ``picking_min`` (neither: ready when placed).

    ``pin``: the customer's delivery PIN; without it the service makes a 4-digit one.
    """

    ready_at: AwareDatetime | None = None
    pin: str | None = Field(default=None, schema_extra={"pattern": PIN_PATTERN})
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


# Longest stored dispatch reason (longer ones are cut).
DISPATCH_NOTE_CHARS = 256


class Order(OrderBase, table=True):
    __tablename__ = "orders"
    __table_args__ = (
        UniqueConstraint("shop_id", "source", "external_id", name="uq_orders_shop_source_ext"),
        # A shop's orders of one status, oldest first: the dispatch's snapshot of its pending
        # orders, the orders list filtered by status (no index on shop_id or status alone).
        Index("ix_orders_shop_status_placed", "shop_id", "status", "placed_at"),
    )

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    shop_id: uuid.UUID = Field(foreign_key="shops.id")
    status: str = Field(default=OrderStatus.pending.value, max_length=16)
    placed_at: datetime = Field(sa_type=UTCDateTime())
    ready_at: datetime = Field(sa_type=UTCDateTime())
    promised_at: datetime = Field(sa_type=UTCDateTime())
    updated_at: datetime = Field(sa_type=UTCDateTime(), index=True)
    # The trip the order is on (assigned or picked up) and its current ETA there.
    trip_id: uuid.UUID | None = Field(default=None, foreign_key="trips.id", index=True)
    eta_at: datetime | None = Field(default=None, sa_type=UTCDateTime())
    # The delivery PIN, salted and hashed (``api.security.hash_pin``); never stored in clear.
    pin_hash: str | None = Field(default=None, max_length=128)
    # Why the last dispatch decision left the order waiting (written only when it changes).
    dispatch_note: str | None = Field(default=None, max_length=DISPATCH_NOTE_CHARS)


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
    # Why dispatch has not committed the order yet (its latest reason); null once committed.
    dispatch_note: str | None = None


class OrderCreatedPublic(OrderPublic):
    """The reply to an intake: ``pin`` is the delivery PIN, shown only in the 201 reply that
    created the order (null in replays and for an order known already)."""

    pin: str | None = None


class OrdersPublic(SQLModel):
    data: list[OrderPublic]
    count: int


class OrderCancel(InputModel):
    reason: str | None = Field(default=None, max_length=200)


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
    # No index: events are read by order (migration 0008).
    shop_id: uuid.UUID = Field(foreign_key="shops.id")
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

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
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


class TripsPublic(SQLModel):
    data: list[TripPublic]
    count: int


# --- KPIs --------------------------------------------------------------------------------------


class ClickToDoorPublic(SQLModel):
    """Seconds from placing to delivery of the delivered orders; null when none was delivered."""

    mean: float | None
    p90: float | None


class ShopKpisPublic(SQLModel):
    """A shop's figures for one local day (see ``GET /v1/shops/{id}/kpis`` for the definitions)."""

    shop_id: uuid.UUID
    date: date
    orders: int
    delivered: int
    cancelled: int
    on_time_rate: float | None
    click_to_door_s: ClickToDoorPublic
    rider_hours: float
    orders_per_rider_hour: float | None


# --- dispatch leases ----------------------------------------------------------------------------


class ShopLease(SQLModel, table=True):
    """Which dispatch worker owns a shop, until when; ``epoch`` grows each time it changes hands
    (or is taken again after expiring), and every dispatch write checks it."""

    __tablename__ = "shop_leases"

    shop_id: uuid.UUID = Field(foreign_key="shops.id", primary_key=True)
    owner_id: str = Field(max_length=64)
    epoch: int
    expires_at: datetime = Field(sa_type=UTCDateTime())


# --- idempotency --------------------------------------------------------------------------------


class IdempotencyRecord(SQLModel, table=True):
    """The stored response of a request made with an ``Idempotency-Key``, per shop."""

    __tablename__ = "idempotency_records"
    __table_args__ = (UniqueConstraint("shop_id", "key", name="uq_idempotency_shop_key"),)

    id: int | None = Field(default=None, primary_key=True)
    # No index of its own: ``uq_idempotency_shop_key`` begins with it.
    shop_id: uuid.UUID = Field(foreign_key="shops.id")
    key: str = Field(max_length=255)
    request_sha256: str = Field(max_length=64)
    response_status: int
    response_body: str = Field(sa_type=Text())
    created_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime())


# --- webhooks: the shop's inbound signing secrets -----------------------------------------------

# A webhook secret given by the caller: 16 to 128 printable ASCII characters.
WEBHOOK_SECRET_PATTERN = r"^[\x21-\x7e]{16,128}$"


class WebhookSecretCreate(InputModel):
    """A new inbound signing secret: ``secret`` to register one a platform made (Shopify's
    webhook signing secret), or nothing to have the service make one."""

    secret: str | None = Field(default=None, schema_extra={"pattern": WEBHOOK_SECRET_PATTERN})


class WebhookSecret(SQLModel, table=True):
    """A secret the shop's platforms sign inbound webhooks with (``api.signing``).

    Stored in clear, unlike API keys: verifying an HMAC needs the secret itself. It is valid
    while ``retired_at`` is null and ``expires_at`` (set when a newer secret replaced it) is in
    the future; a shop has at most two valid secrets.
    """

    __tablename__ = "webhook_secrets"

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    shop_id: uuid.UUID = Field(foreign_key="shops.id", index=True)
    secret: str = Field(max_length=128)
    prefix: str = Field(max_length=16)
    created_at: datetime = Field(sa_type=UTCDateTime())
    expires_at: datetime | None = Field(default=None, sa_type=UTCDateTime())
    retired_at: datetime | None = Field(default=None, sa_type=UTCDateTime())


class WebhookSecretPublic(SQLModel):
    """A secret as listed or retired: never the secret itself."""

    id: uuid.UUID
    prefix: str
    created_at: datetime
    # When the secret stops being accepted (null: until it is replaced or retired).
    expires_at: datetime | None
    retired_at: datetime | None


class WebhookSecretCreated(WebhookSecretPublic):
    """A new secret: ``secret`` is shown this once; ``previous`` is the secret that stays valid
    until its ``expires_at`` (the rotation window), null when there was none."""

    secret: str
    previous: WebhookSecretPublic | None


class WebhookSecretsPublic(SQLModel):
    data: list[WebhookSecretPublic]
    count: int


# --- webhooks in --------------------------------------------------------------------------------


class InboundEventType(StrEnum):
    created = "order.created"
    updated = "order.updated"
    cancelled = "order.cancelled"


class InboundStatus(StrEnum):
    applied = "applied"  # the event changed the order (or created it)
    deferred = "deferred"  # its order is not known yet: applied when its order.created arrives
    ignored = "ignored"  # authentic but without effect (stale update, order past the change)
    rejected = "rejected"  # a deferred event that turned out invalid once its order arrived


EVENT_ID_PATTERN = r"^[\x21-\x7e]{1,255}$"


class InboundOrderData(InputModel):
    """``data`` of ``order.created`` and ``order.updated``: the body of ``POST /v1/orders``
    without ``source`` (the path's ``{source}``), validated exactly as that body."""

    external_id: str = Field(min_length=1, max_length=128)
    dropoff_lat: float = Field(ge=-90.0, le=90.0)
    dropoff_lon: float = Field(ge=-180.0, le=180.0)
    address: str = Field(default="", max_length=256)
    size_bags: int = Field(default=1, ge=1, le=50)
    ready_at: AwareDatetime | None = None
    pin: str | None = Field(default=None, schema_extra={"pattern": PIN_PATTERN})
    picking_min: int | None = Field(default=None, ge=0, le=240)


class InboundCancelData(InputModel):
    """``data`` of ``order.cancelled``."""

    external_id: str = Field(min_length=1, max_length=128)
    reason: str | None = Field(default=None, max_length=200)


class InboundEnvelope(InputModel):
    id: str = Field(schema_extra={"pattern": EVENT_ID_PATTERN})
    # When the platform made the event, Unix seconds: orders the updates of one order.
    created: int = Field(ge=0, le=100_000_000_000)
    shop_id: uuid.UUID


class InboundOrderEvent(InboundEnvelope):
    type: Literal["order.created", "order.updated"]
    data: InboundOrderData


class InboundCancelEvent(InboundEnvelope):
    type: Literal["order.cancelled"]
    data: InboundCancelData


InboundEventIn = Annotated[
    InboundOrderEvent | InboundCancelEvent, PydanticField(discriminator="type")
]


class InboundEvent(SQLModel, table=True):
    """One authentic inbound event, kept for deduplication (at least ``webhook_dedupe_days``)
    and, while ``deferred``, until its order arrives."""

    __tablename__ = "inbound_events"
    __table_args__ = (
        UniqueConstraint("shop_id", "source", "event_id", name="uq_inbound_events_shop_event"),
        Index("ix_inbound_events_order_key", "shop_id", "source", "external_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    shop_id: uuid.UUID = Field(foreign_key="shops.id")
    source: str = Field(max_length=32)
    event_id: str = Field(max_length=255)
    type: str = Field(max_length=32)
    external_id: str = Field(max_length=128)
    # The platform's time of the event (``created``), and ours of its arrival.
    sent_at: datetime = Field(sa_type=UTCDateTime())
    received_at: datetime = Field(sa_type=UTCDateTime(), index=True)
    status: str = Field(max_length=16)
    order_id: uuid.UUID | None = Field(default=None, foreign_key="orders.id")
    # ``data`` as received (JSON), to apply a deferred event later.
    data: str = Field(sa_type=Text())
    note: str | None = Field(default=None, max_length=256)


class InboundEventAck(SQLModel):
    """The answer to an authentic event: what it did. ``duplicate``: the event id was seen
    before and this delivery changed nothing (the first one's outcome is shown). ``pin``: the
    delivery PIN of an order created by this delivery, shown this once."""

    event_id: str
    type: InboundEventType
    status: InboundStatus
    duplicate: bool
    order_id: uuid.UUID | None
    note: str | None
    pin: str | None = None


# --- webhooks out -------------------------------------------------------------------------------


class OutboundEventType(StrEnum):
    accepted = "order.accepted"
    assigned = "order.assigned"
    picked_up = "order.picked_up"
    delivered = "order.delivered"
    cancelled = "order.cancelled"
    failed = "order.failed"
    eta_changed = "order.eta_changed"


class WebhookEndpointCreate(InputModel):
    """An endpoint to receive the shop's order events; ``secret`` signs them (made by the
    service when not given, and then shown once in the reply)."""

    url: str = Field(min_length=8, max_length=2048)
    event_types: list[OutboundEventType] = Field(min_length=1, max_length=len(OutboundEventType))
    secret: str | None = Field(default=None, schema_extra={"pattern": WEBHOOK_SECRET_PATTERN})

    @field_validator("url", mode="after")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise ValueError("must be an absolute http:// or https:// URL")
        if parts.username is not None or parts.password is not None or " " in value:
            raise ValueError("must not carry credentials or spaces")
        try:
            parts.port  # noqa: B018  (raises on a port out of range)
        except ValueError:
            raise ValueError("has an invalid port") from None
        return value

    @field_validator("event_types", mode="after")
    @classmethod
    def _distinct(cls, values: list[OutboundEventType]) -> list[OutboundEventType]:
        if len(set(values)) != len(values):
            raise ValueError("must not repeat an event type")
        return sorted(values)


class WebhookEndpoint(SQLModel, table=True):
    """A receiver of the shop's order events. ``secret`` is stored in clear (it signs)."""

    __tablename__ = "webhook_endpoints"

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    shop_id: uuid.UUID = Field(foreign_key="shops.id", index=True)
    url: str = Field(max_length=2048)
    # The subscribed event types, space-separated.
    event_types: str = Field(max_length=256)
    secret: str = Field(max_length=128)
    created_at: datetime = Field(sa_type=UTCDateTime())
    disabled_at: datetime | None = Field(default=None, sa_type=UTCDateTime())


class WebhookEndpointPublic(SQLModel):
    id: uuid.UUID
    url: str
    event_types: list[OutboundEventType]
    created_at: datetime
    disabled_at: datetime | None


class WebhookEndpointCreated(WebhookEndpointPublic):
    """A new endpoint: ``secret`` is shown this once."""

    secret: str


class WebhookEndpointsPublic(SQLModel):
    data: list[WebhookEndpointPublic]
    count: int


class OutboxEvent(SQLModel, table=True):
    """An order event to send, written in the transaction of the state change. ``id`` is the
    event id receivers deduplicate on; ``body`` the exact JSON sent each time."""

    __tablename__ = "outbox_events"

    id: str = Field(primary_key=True, max_length=32)
    shop_id: uuid.UUID = Field(foreign_key="shops.id", index=True)
    type: str = Field(max_length=32)
    order_id: uuid.UUID = Field(foreign_key="orders.id", index=True)
    created_at: datetime = Field(sa_type=UTCDateTime())
    body: str = Field(sa_type=Text())


class DeliveryStatus(StrEnum):
    pending = "pending"  # due at ``next_attempt_at`` (or being sent, under a lease)
    delivered = "delivered"  # the endpoint answered 2xx
    dead = "dead"  # every attempt of the retry window failed (a replay queues it again)


class WebhookDelivery(SQLModel, table=True):
    """One event for one endpoint: its state and retry schedule (the outbox proper).

    A worker claims a due row by moving ``next_attempt_at`` to the end of a lease and setting
    ``lease_token``; a worker killed before recording the outcome leaves the row due again when
    the lease ends, so the event is sent again (at least once).
    """

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
        Index("ix_webhook_deliveries_endpoint", "endpoint_id", "created_at"),
    )

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    shop_id: uuid.UUID = Field(foreign_key="shops.id", index=True)
    endpoint_id: uuid.UUID = Field(foreign_key="webhook_endpoints.id")
    event_id: str = Field(foreign_key="outbox_events.id", index=True, max_length=32)
    event_type: str = Field(max_length=32)
    status: str = Field(default=DeliveryStatus.pending.value, max_length=16)
    attempts: int = 0
    created_at: datetime = Field(sa_type=UTCDateTime())
    # Start of the current retry window (creation, or the last replay).
    queued_at: datetime = Field(sa_type=UTCDateTime())
    next_attempt_at: datetime = Field(sa_type=UTCDateTime())
    lease_token: str | None = Field(default=None, max_length=32)
    last_status_code: int | None = None
    last_error: str | None = Field(default=None, max_length=256)
    delivered_at: datetime | None = Field(default=None, sa_type=UTCDateTime())


class WebhookAttempt(SQLModel, table=True):
    """One recorded attempt of a delivery (the delivery log)."""

    __tablename__ = "webhook_attempts"

    id: int | None = Field(default=None, primary_key=True)
    delivery_id: uuid.UUID = Field(foreign_key="webhook_deliveries.id", index=True)
    attempt: int
    started_at: datetime = Field(sa_type=UTCDateTime())
    duration_ms: int
    status_code: int | None = None
    error: str | None = Field(default=None, max_length=256)


class WebhookAttemptPublic(SQLModel):
    attempt: int
    started_at: datetime
    duration_ms: int
    # The endpoint's HTTP status (null: no answer, see ``error``).
    status_code: int | None
    error: str | None


class WebhookDeliveryPublic(SQLModel):
    id: uuid.UUID
    endpoint_id: uuid.UUID
    event_id: str
    event_type: OutboundEventType
    status: DeliveryStatus
    attempts: int
    created_at: datetime
    queued_at: datetime
    # When the next attempt is due (pending deliveries only).
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    delivered_at: datetime | None


class WebhookDeliveryDetail(WebhookDeliveryPublic):
    """A delivery with its recorded attempts, oldest first."""

    attempt_log: list[WebhookAttemptPublic]


class WebhookDeliveriesPublic(SQLModel):
    data: list[WebhookDeliveryPublic]
    count: int
