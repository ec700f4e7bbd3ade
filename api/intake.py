"""Order intake (``POST /v1/orders``): the request prepared outside the write transaction, then
written for a whole group-commit batch at once (``ORDER_INTAKE``, a ``api.group_commit``
batch kind).

``prepare_intake`` does every piece of work that needs no database on the event loop, before
the request joins a batch: the fingerprint, the PIN and its hash, the new order's columns, its
public body and the JSON of its idempotency record. The circle and ready-time checks run there
too, but their error is kept and raised only when the request turns out to be new (a replay or
a known ``(source, external_id)`` is answered as before, whatever its drop-off).

``take_orders`` writes a batch: one query for the idempotency records of all its keys, one for
the orders and the deferred inbound events of all its ``(source, external_id)`` pairs (each an
OR of index equalities), one for the shops' subscribers to ``order.accepted``; then one
multi-row INSERT each for the new orders, their ``placed`` events and their idempotency
records. A request that needs more than that (its order exists already, its key or order is
repeated within the batch, its shop subscribes to ``order.accepted``, a platform's cancel or
update of it came first by webhook and waits for it, ``api.inbound``) is left to
``take_order``, the same intake one request at a time, in a savepoint of its own after the
batch's inserts (so it sees them). There the waiting events are applied as a webhook
``order.created`` would, and the answer is the order after them (a cancel that came first:
the order is created cancelled).

Concurrency (PostgreSQL): a batch first locks the order keys of all its requests (one
statement, ``lock_order_keys``, the lock a webhook event of the order takes, ``api.inbound``),
and ``take_order`` locks its own again (held already, but let go if a savepoint that took it
was rolled back; a batch written one by one locks its keys in its own order). So a platform's
cancel of an order and the shop's POST of it, committed at the same moment by two processes,
cannot both read before the other's write: one waits for the other's commit, and the cancel
is applied once. SQLite's ``BEGIN IMMEDIATE`` serialises writers already: nothing is locked
there.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    CompoundSelect,
    Select,
    and_,
    bindparam,
    insert,
    literal,
    or_,
    select,
    text,
    union_all,
)
from sqlmodel import Session, SQLModel

from api.driver_insert import DriverInsert
from api.engine import walk_s
from api.errors import AppError
from api.group_commit import BatchKind, Outcome
from api.ids import new_id
from api.models import (
    IdempotencyRecord,
    InboundEvent,
    InboundStatus,
    Order,
    OrderCreate,
    OrderEvent,
    OrderPublic,
    OrderStatus,
    OutboundEventType,
    Shop,
    WebhookEndpoint,
)
from api.outbox import emit, subscriber_ids
from api.security import generate_pin, hash_pin

# How far after placing an order its ready time may be.
MAX_READY_AHEAD = timedelta(days=1)

ORDERS = SQLModel.metadata.tables[str(Order.__tablename__)]
ORDER_EVENTS = SQLModel.metadata.tables[str(OrderEvent.__tablename__)]
IDEMPOTENCY_RECORDS = SQLModel.metadata.tables[str(IdempotencyRecord.__tablename__)]
WEBHOOK_ENDPOINTS = SQLModel.metadata.tables[str(WebhookEndpoint.__tablename__)]
INBOUND_EVENTS = SQLModel.metadata.tables[str(InboundEvent.__tablename__)]


# The statements of the intake, built once (building a Core statement costs more than running
# it).


def order_key_is(table: Any, suffix: str = "") -> Any:
    """``table``'s ``(shop_id, source, external_id)`` (an order's key, in ``orders`` and in
    ``inbound_events``) equal to the parameters ``shop_id<suffix>``, ``source<suffix>`` and
    ``external_id<suffix>``."""
    return and_(
        table.c.shop_id == bindparam(f"shop_id{suffix}"),
        table.c.source == bindparam(f"source{suffix}"),
        table.c.external_id == bindparam(f"external_id{suffix}"),
    )


# Key space of the advisory locks taken per order key on PostgreSQL (``lock_order_keys``): the
# webhook events of an order (``api.inbound``) and its intake lock the same keys.
LOCK_NAMESPACE = b"quarterhour.inbound"
# The locks of any number of keys in one statement, in ascending order of key (the sort runs
# before the locking: PostgreSQL evaluates a volatile output after the ORDER BY below it).
LOCK_ORDER_KEYS = text(
    "SELECT pg_advisory_xact_lock(k) FROM unnest(CAST(:keys AS bigint[])) AS k ORDER BY k"
)


def order_lock_key(order_key: tuple[uuid.UUID, str, str]) -> int:
    """The advisory lock (a signed 64-bit integer) of an order key ``(shop_id, source,
    external_id)``."""
    shop_id, source, external_id = order_key
    digest = hashlib.sha256(
        b"\0".join([LOCK_NAMESPACE, shop_id.bytes, source.encode(), external_id.encode()])
    ).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def lock_order_keys(session: Session, order_keys: Iterable[tuple[uuid.UUID, str, str]]) -> None:
    """Hold the lock of each of ``order_keys`` until the transaction ends (PostgreSQL; SQLite's
    ``BEGIN IMMEDIATE`` serialises writers already), so that whatever reads and then writes an
    order key (a webhook event, an intake) waits for the other transactions doing so to end.
    One statement for all the keys, locked in ascending order: two transactions locking
    several keys each this way cannot deadlock over them. A lock taken in a savepoint is let go
    if the savepoint is rolled back."""
    if session.get_bind().dialect.name != "postgresql":
        return
    keys = sorted({order_lock_key(order_key) for order_key in order_keys})
    session.connection().execute(LOCK_ORDER_KEYS, {"keys": keys})


ORDER_BY_ID = select(ORDERS).where(ORDERS.c.id == bindparam("order_id"))
ORDER_OF_KEY = select(ORDERS).where(order_key_is(ORDERS))
RECORD_OF_KEY = select(
    IDEMPOTENCY_RECORDS.c.request_sha256,
    IDEMPOTENCY_RECORDS.c.response_status,
    IDEMPOTENCY_RECORDS.c.response_body,
).where(
    IDEMPOTENCY_RECORDS.c.shop_id == bindparam("shop_id"),
    IDEMPOTENCY_RECORDS.c.key == bindparam("key"),
)
LIVE_ENDPOINTS_OF_SHOPS = select(
    WEBHOOK_ENDPOINTS.c.shop_id, WEBHOOK_ENDPOINTS.c.event_types
).where(
    WEBHOOK_ENDPOINTS.c.shop_id.in_(bindparam("shop_ids", expanding=True)),
    WEBHOOK_ENDPOINTS.c.disabled_at.is_(None),
)
INSERT_ORDER = insert(ORDERS)
INSERT_EVENT = insert(ORDER_EVENTS)
INSERT_RECORD = insert(IDEMPOTENCY_RECORDS)
# The same inserts for the many rows of a batch, by the driver's executemany on SQLite
BULK_ORDERS = DriverInsert(ORDERS)
BULK_EVENTS = DriverInsert(ORDER_EVENTS)
BULK_RECORDS = DriverInsert(IDEMPOTENCY_RECORDS)


# The lookups of a batch: ORs of one index equality per item, built once per number of items.
# SQLite (3.40) answers a row-value ``IN`` list (``(shop_id, key) IN (VALUES ...)``, what the
# intake used before) by scanning the whole table: about 3 ms a batch at 5,000 rows, growing
# with them. An OR of equalities is one index search per item (about 0.05 ms for 16).
@functools.lru_cache(maxsize=128)
def records_of_keys(n_keys: int) -> Select[Any]:
    """The idempotency records of ``n_keys`` (shop, key) pairs, bound as ``shop_id_<i>`` and
    ``key_<i>`` (``key_params``)."""
    return select(
        IDEMPOTENCY_RECORDS.c.shop_id,
        IDEMPOTENCY_RECORDS.c.key,
        IDEMPOTENCY_RECORDS.c.request_sha256,
        IDEMPOTENCY_RECORDS.c.response_status,
        IDEMPOTENCY_RECORDS.c.response_body,
    ).where(
        or_(
            *(
                and_(
                    IDEMPOTENCY_RECORDS.c.shop_id == bindparam(f"shop_id_{i}"),
                    IDEMPOTENCY_RECORDS.c.key == bindparam(f"key_{i}"),
                )
                for i in range(n_keys)
            )
        )
    )


def _key_match(table: Any, n_keys: int) -> Any:
    """An OR of one ``order_key_is`` index equality per key of ``table``, bound as
    ``shop_id_<i>``, ``source_<i>`` and ``external_id_<i>`` (``key_params``)."""
    return or_(*(order_key_is(table, f"_{i}") for i in range(n_keys)))


@functools.lru_cache(maxsize=128)
def orders_of_keys(n_keys: int) -> CompoundSelect:
    """``(waiting, shop_id, source, external_id)`` of what is known of ``n_keys`` such triples:
    their orders (``waiting`` false), and their deferred inbound events, a platform's update or
    cancel that came before the order (``waiting`` true). One statement: the keys are bound
    once for both."""
    orders = select(
        literal(False).label("waiting"), ORDERS.c.shop_id, ORDERS.c.source, ORDERS.c.external_id
    ).where(_key_match(ORDERS, n_keys))
    deferred = select(
        literal(True).label("waiting"),
        INBOUND_EVENTS.c.shop_id,
        INBOUND_EVENTS.c.source,
        INBOUND_EVENTS.c.external_id,
    ).where(
        INBOUND_EVENTS.c.status == InboundStatus.deferred.value,
        _key_match(INBOUND_EVENTS, n_keys),
    )
    return union_all(orders, deferred)


def _apply_deferred_events(session: Session, request: IntakeRequest) -> bool:
    """Apply the platform events of the new order of ``request`` that came before it (a cancel
    or an update by webhook, ``api.inbound``), as a webhook ``order.created`` would; whether
    there were any."""
    from api.inbound import apply_deferred  # api.inbound imports this module

    assert request.values is not None
    return apply_deferred(
        session,
        request.shop,
        request.values["id"],
        request.source,
        request.external_id,
        request.now,
    )


def key_params(names: tuple[str, ...], keys: Sequence[tuple[Any, ...]]) -> dict[str, Any]:
    """The parameters of ``records_of_keys`` or ``orders_of_keys`` for ``keys``."""
    return {
        f"{name}_{i}": value
        for i, key in enumerate(keys)
        for name, value in zip(names, key, strict=True)
    }


# What the writer answers for one intake: (HTTP status, the public body without the PIN as JSON
# text, whether it is an idempotent replay, the PIN to show or None). The body stays text from
# ``prepare_intake`` (or the stored idempotency record) to the response: never decoded and
# encoded again.
IntakeAnswer = tuple[int, str, bool, str | None]


def dump_body(body: dict[str, Any]) -> str:
    """An order's public body as JSON text, as the response carries it (``JSONResponse``'s
    compact form, non-ASCII as is) and as its idempotency record stores it."""
    return json.dumps(body, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


# The fields of a request body its fingerprint covers (all but the PIN).
FINGERPRINT_FIELDS = tuple(name for name in OrderCreate.model_fields if name != "pin")


# The fields of the fingerprint in the order ``json.dumps(..., sort_keys=True)`` writes them.
SORTED_FINGERPRINT_FIELDS = tuple(sorted(FINGERPRINT_FIELDS))
# JSON strings as ``json.dumps`` writes them: ASCII-escaped (its default, the fingerprint's
# canonical form) and as is (``ensure_ascii=False``, the response bodies'); both C functions.
_json_ascii_str = json.encoder.encode_basestring_ascii
_json_str = json.encoder.encode_basestring


def fingerprint_fields(order_in: OrderCreate) -> dict[str, Any]:
    """``order_in.model_dump(mode="json", exclude={"pin"})``; without a ``ready_at`` (the one
    field whose JSON form is not its Python value) read off the model directly, which costs a
    fraction of pydantic's dump (tested equal)."""
    if order_in.ready_at is not None:
        return order_in.model_dump(mode="json", exclude={"pin"})
    return {name: getattr(order_in, name) for name in FINGERPRINT_FIELDS}


def _canonical_value(value: Any) -> str | None:
    """``value`` as ``json.dumps`` writes it (ASCII), for a string, a whole number, a finite
    float or ``None``; ``None`` for anything else."""
    kind = type(value)
    if kind is str:
        return _json_ascii_str(value)
    if kind is int:
        return int.__repr__(value)
    if kind is float and math.isfinite(value):
        return float.__repr__(value)
    if value is None:
        return "null"
    return None


def canonical_body(order_in: OrderCreate) -> str:
    """``json.dumps(fingerprint_fields(order_in), sort_keys=True, separators=(",", ":"))``;
    written field by field when every field is a plain JSON value (a quarter of the time of
    ``json.dumps``; tested equal), through ``json.dumps`` otherwise (a ``ready_at``)."""
    if order_in.ready_at is None:
        parts = []
        for name in SORTED_FINGERPRINT_FIELDS:
            text = _canonical_value(getattr(order_in, name))
            if text is None:
                break
            parts.append(f'"{name}":{text}')
        else:
            return "{" + ",".join(parts) + "}"
    return json.dumps(fingerprint_fields(order_in), sort_keys=True, separators=(",", ":"))


def request_sha256(order_in: OrderCreate) -> str:
    """Fingerprint of a request body, insensitive to key order and whitespace.

    The delivery PIN is left out: the fingerprint is stored, and a PIN is stored only hashed.
    """
    canonical = canonical_body(order_in)
    return hashlib.sha256(f"POST /v1/orders\n{canonical}".encode()).hexdigest()


def check_in_circle(shop: Shop, order_in: OrderCreate) -> None:
    """422 ``outside_service_area`` unless the drop-off is within the shop's walking circle."""
    walking_s = walk_s(shop.lat, shop.lon, order_in.dropoff_lat, order_in.dropoff_lon)
    if walking_s > shop.circle_walk_min * 60:
        raise AppError(
            422,
            "outside_service_area",
            f"the drop-off is a {walking_s / 60:.1f}-minute walk from the shop ({walking_s} s); "
            f"the shop serves a {shop.circle_walk_min}-minute walk",
        )


def ready_time(order_in: OrderCreate, placed_at: datetime) -> datetime:
    if order_in.picking_min is not None:
        return placed_at + timedelta(minutes=order_in.picking_min)
    if order_in.ready_at is None:
        return placed_at
    if order_in.ready_at > placed_at + MAX_READY_AHEAD:
        raise AppError(
            422,
            "ready_at_out_of_range",
            f"ready_at {order_in.ready_at.isoformat()} is more than a day after now",
        )
    return max(order_in.ready_at, placed_at)


def new_pin(order_in: OrderCreate) -> tuple[str, str]:
    """The order's delivery PIN (``pin`` of the body, or a random one) and its stored hash."""
    pin = order_in.pin or generate_pin()
    return pin, hash_pin(pin)


def new_order_values(
    shop: Shop, order_in: OrderCreate, now: datetime, pin_hash: str
) -> dict[str, Any]:
    """The columns of a new order of ``shop`` placed ``now`` (its circle checked first)."""
    check_in_circle(shop, order_in)
    return {
        "id": new_id(),
        "shop_id": shop.id,
        "source": order_in.source,
        "external_id": order_in.external_id,
        "dropoff_lat": order_in.dropoff_lat,
        "dropoff_lon": order_in.dropoff_lon,
        "address": order_in.address,
        "size_bags": order_in.size_bags,
        "status": OrderStatus.pending.value,
        "placed_at": now,
        "ready_at": ready_time(order_in, now),
        "promised_at": now + timedelta(minutes=shop.promise_min),
        "updated_at": now,
        "trip_id": None,
        "eta_at": None,
        "pin_hash": pin_hash,
        "dispatch_note": None,
    }


def public_body(row: Any) -> dict[str, Any]:
    """The JSON body of an order (``OrderPublic``) from its columns."""
    return OrderPublic.model_validate(dict(row)).model_dump(mode="json")


def _json_time(value: datetime) -> str:
    """A datetime as pydantic writes it in JSON (UTC as ``Z``)."""
    return value.isoformat().replace("+00:00", "Z")


def new_order_body_json(values: dict[str, Any]) -> str:
    """``dump_body(public_body(values))`` of a new order's columns (``new_order_values``:
    pending, on no trip), written directly as JSON text: the same text (tested equal) in a
    fraction of the time of pydantic's validate and dump and of ``json.dumps`` (the intake's
    largest piece of work on the event loop). A time that is the placing time itself (the same
    object: the update time, usually the ready time) is formatted once."""
    placed_at = values["placed_at"]
    placed_json = _json_time(placed_at)

    def json_time(value: datetime) -> str:
        return placed_json if value is placed_at else _json_time(value)

    lat, lon = values["dropoff_lat"], values["dropoff_lon"]
    if not (math.isfinite(lat) and math.isfinite(lon)):  # pragma: no cover - validated
        raise ValueError(f"a drop-off must be finite, got {lat!r}, {lon!r}")
    return (
        f'{{"source":{_json_str(values["source"])},'
        f'"external_id":{_json_str(values["external_id"])},'
        f'"dropoff_lat":{float.__repr__(float(lat))},'
        f'"dropoff_lon":{float.__repr__(float(lon))},'
        f'"address":{_json_str(values["address"])},'
        f'"size_bags":{int.__repr__(int(values["size_bags"]))},'
        f'"id":"{values["id"]}","shop_id":"{values["shop_id"]}",'
        f'"status":"{OrderStatus.pending.value}",'
        f'"placed_at":"{placed_json}","ready_at":"{json_time(values["ready_at"])}",'
        f'"promised_at":"{_json_time(values["promised_at"])}",'
        f'"updated_at":"{json_time(values["updated_at"])}",'
        '"trip_id":null,"eta_at":null,"dispatch_note":null}'
    )


@dataclass(frozen=True)
class IntakeRequest:
    """One ``POST /v1/orders``, prepared for the writer (``prepare_intake``)."""

    shop: Shop
    shop_id: uuid.UUID
    idempotency_key: str | None
    fingerprint: str
    source: str
    external_id: str
    now: datetime
    # The new order: its columns and its public body as JSON; or why it cannot be.
    values: dict[str, Any] | None
    body_json: str | None
    error: AppError | None
    pin: str

    @property
    def order_key(self) -> tuple[uuid.UUID, str, str]:
        return (self.shop_id, self.source, self.external_id)


def prepare_intake(
    shop: Shop, order_in: OrderCreate, idempotency_key: str | None, now: datetime
) -> IntakeRequest:
    """Everything of an intake that needs no database (see the module docstring)."""
    pin, pin_hash = new_pin(order_in)
    values = body_json = error = None
    try:
        values = new_order_values(shop, order_in, now, pin_hash)
    except AppError as invalid:
        error = invalid
    else:
        body_json = new_order_body_json(values)
    return IntakeRequest(
        shop=shop,
        shop_id=shop.id,
        idempotency_key=idempotency_key,
        fingerprint=request_sha256(order_in),
        source=order_in.source,
        external_id=order_in.external_id,
        now=now,
        values=values,
        body_json=body_json,
        error=error,
        pin=pin,
    )


def _replay(request: IntakeRequest, record: Any) -> IntakeAnswer:
    """The stored answer of ``request``'s key; 422 when the key came with another body."""
    if record.request_sha256 != request.fingerprint:
        raise AppError(
            422,
            "idempotency_key_reused",
            f"Idempotency-Key {request.idempotency_key!r} was used before with a different body",
        )
    return record.response_status, record.response_body, True, None


def _record_values(request: IntakeRequest, status_code: int, body_json: str) -> dict[str, Any]:
    return {
        "shop_id": request.shop_id,
        "key": request.idempotency_key,
        "request_sha256": request.fingerprint,
        "response_status": status_code,
        "response_body": body_json,
        "created_at": request.now,
    }


def _event_values(values: dict[str, Any]) -> dict[str, Any]:
    return {
        "order_id": values["id"],
        "shop_id": values["shop_id"],
        "kind": "placed",
        "status": values["status"],
        "at": values["placed_at"],
        "note": None,
    }


def take_order(session: Session, request: IntakeRequest) -> IntakeAnswer:
    """One intake, written but not committed: the replay of its key, the known order of its
    ``(source, external_id)`` (200), or the new order with its event, its ``order.accepted``
    outbox rows and its idempotency record (201). Its order key is locked first (PostgreSQL):
    it is held already after its batch's ``take_orders``, but not once a savepoint that took it
    was rolled back (``take_orders``'s, before the batch's items are written one by one, or
    this intake's own, before it is run again)."""
    lock_order_keys(session, [request.order_key])
    connection = session.connection()
    if request.idempotency_key is not None:
        record = connection.execute(
            RECORD_OF_KEY, {"shop_id": request.shop_id, "key": request.idempotency_key}
        ).first()
        if record is not None:
            return _replay(request, record)
    row = (
        connection.execute(
            ORDER_OF_KEY,
            {
                "shop_id": request.shop_id,
                "source": request.source,
                "external_id": request.external_id,
            },
        )
        .mappings()
        .first()
    )
    if row is not None:
        status_code, body_json, shown_pin = 200, dump_body(public_body(row)), None
    else:
        if request.error is not None:
            raise request.error
        assert request.values is not None and request.body_json is not None
        connection.execute(INSERT_ORDER, request.values)
        connection.execute(INSERT_EVENT, _event_values(request.values))
        if subscriber_ids(session, request.shop_id, OutboundEventType.accepted):
            order = session.get(Order, request.values["id"])
            assert order is not None  # inserted just above
            emit(session, order, OutboundEventType.accepted, request.now, None)
        status_code, body_json, shown_pin = 201, request.body_json, request.pin
        if _apply_deferred_events(session, request):
            params = {"order_id": request.values["id"]}
            after = connection.execute(ORDER_BY_ID, params).mappings().one()
            body_json = dump_body(public_body(after))
    if request.idempotency_key is not None:
        connection.execute(INSERT_RECORD, _record_values(request, status_code, body_json))
    return status_code, body_json, False, shown_pin


def _accepted_subscribers(session: Session, shop_ids: set[uuid.UUID]) -> set[uuid.UUID]:
    """The shops among ``shop_ids`` with a live endpoint subscribed to ``order.accepted``."""
    rows = session.connection().execute(LIVE_ENDPOINTS_OF_SHOPS, {"shop_ids": list(shop_ids)})
    accepted = OutboundEventType.accepted.value
    return {shop_id for shop_id, types in rows if accepted in types.split()}


def take_orders(session: Session, requests: Sequence[IntakeRequest]) -> list[Outcome | None]:
    """The intakes of one batch, written but not committed: each one's outcome, or ``None``
    for the ones left to ``take_order`` (see the module docstring). Writes nothing for a
    request whose outcome is an error. The order keys of the whole batch are locked first
    (PostgreSQL), in one statement, so that a webhook event of one of them (``api.inbound``)
    and its intake never read before the other has committed."""
    lock_order_keys(session, [request.order_key for request in requests])
    connection = session.connection()
    shop_keys = [
        (request.shop_id, request.idempotency_key)
        for request in requests
        if request.idempotency_key is not None
    ]
    records: dict[tuple[uuid.UUID, str], Any] = {}
    if shop_keys:
        statement = records_of_keys(len(shop_keys))
        for row in connection.execute(statement, key_params(("shop_id", "key"), shop_keys)):
            records[(row.shop_id, row.key)] = row
    order_keys = [request.order_key for request in requests]
    known_orders: set[tuple[uuid.UUID, str, str]] = set()
    awaited: set[tuple[uuid.UUID, str, str]] = set()
    for waiting, *key in connection.execute(
        orders_of_keys(len(order_keys)),
        key_params(("shop_id", "source", "external_id"), order_keys),
    ):
        (awaited if waiting else known_orders).add((key[0], key[1], key[2]))
    subscribed = _accepted_subscribers(session, {request.shop_id for request in requests})

    outcomes: list[Outcome | None] = []
    new: list[IntakeRequest] = []
    seen_keys: set[tuple[uuid.UUID, str]] = set()
    seen_orders: set[tuple[uuid.UUID, str, str]] = set()
    for request in requests:
        shop_key = None
        if request.idempotency_key is not None:
            shop_key = (request.shop_id, request.idempotency_key)
        repeated = shop_key in seen_keys or request.order_key in seen_orders
        if shop_key is not None:
            seen_keys.add(shop_key)
        seen_orders.add(request.order_key)
        record = records.get(shop_key) if shop_key is not None else None
        if repeated:
            outcomes.append(None)  # after the inserts, it sees what the first one wrote
        elif record is not None:
            try:
                outcomes.append(Outcome(value=_replay(request, record)))
            except AppError as reused:
                outcomes.append(Outcome(error=reused))
        elif (
            request.order_key in known_orders
            or request.order_key in awaited
            or request.shop_id in subscribed
        ):
            outcomes.append(None)
        elif request.error is not None:
            outcomes.append(Outcome(error=request.error))
        else:
            assert request.values is not None and request.body_json is not None
            new.append(request)
            outcomes.append(Outcome(value=(201, request.body_json, False, request.pin)))
    if new:
        BULK_ORDERS.execute(connection, [request.values or {} for request in new])
        BULK_EVENTS.execute(connection, [_event_values(request.values or {}) for request in new])
        BULK_RECORDS.execute(
            connection,
            [
                _record_values(request, 201, request.body_json or "")
                for request in new
                if request.idempotency_key is not None
            ],
        )
    return outcomes


# The batch kind of the group writer that ``POST /v1/orders`` writes through.
ORDER_INTAKE: BatchKind[IntakeRequest, IntakeAnswer] = BatchKind(
    "order intake", many=take_orders, one=take_order
)
