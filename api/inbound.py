"""Inbound webhooks: authenticate, deduplicate and apply platform order events.

Authentication (``authenticate``): the event names its shop (``shop_id`` in our format, a query
parameter for Shopify); it must be signed with one of that shop's valid webhook secrets (at most
two during a rotation, ``api.routes.webhook_secrets``). An unknown shop, a shop without a valid
secret and a wrong signature are the same 401 ``invalid_signature``, so that the answer does
not tell which shops exist. Nothing is stored for a request that is not authentic.

Processing (``process_event``), in the request's one write transaction, so that an event is
durable before it is acknowledged and never half applied:

- deduplication: ``(shop, source, event id)`` is unique in ``inbound_events``; a second delivery
  of an id changes nothing and gets the first one's outcome with ``duplicate: true``. Ids are
  kept ``webhook_dedupe_days`` (at least 7) after they arrive (``purge_inbound_events``);
  deferred events are kept until their order arrives.
- ``order.created``: exactly ``POST /v1/orders`` by the shop with ``source`` = the path's
  ``{source}`` (same validation, circle rule and delivery PIN); an order known already under
  ``(source, external_id)`` stays as it is (the first accepted version wins).
- ``order.updated``: carries the whole order (``data`` as in ``order.created``). It applies to
  a pending order, and only when its ``created`` is not older than the last applied event of
  the order (a late, stale update is ``ignored``): drop-off (circle rule), address, size, ready
  time (from the order's placing time). An order a rider already has is not changed (``ignored``).
- ``order.cancelled``: cancels a pending or assigned order, like ``POST /v1/orders/{id}/cancel``;
  a cancelled order stays cancelled; an order picked up or closed is not changed (``ignored``).
- out of order: an update or a cancel whose order is not known yet is stored as ``deferred``
  and applied, in ``created`` order, in the transaction that creates the order. A cancel that
  came first makes the order exist and be cancelled at once (events ``placed`` then
  ``cancelled``; ``order.accepted`` then ``order.cancelled`` out), so that a late create can
  never bring a cancelled order to life and the shop still sees it. A deferred update that does
  not pass validation then is ``rejected`` (with its reason in ``note``).

Concurrency: every event first takes a lock on its order's key (``pg_advisory_xact_lock`` on
PostgreSQL, ``api.intake.lock_order_keys``; SQLite's ``BEGIN IMMEDIATE`` serialises writers),
so that a cancel and its create arriving together cannot miss each other. ``POST /v1/orders``
(``api.intake``) takes the same lock for every order of its batch, so a cancel and the shop's
own POST of the order cannot either.
"""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import TypeAdapter, ValidationError
from sqlalchemy import Engine, bindparam, delete
from sqlalchemy import select as core_select
from sqlmodel import Session, SQLModel, col, select

from api.core_writes import insert_inbound_event, insert_new_order
from api.db import run_read, writer
from api.errors import AppError, describe_validation_errors
from api.intake import check_in_circle, lock_order_keys, order_key_is, ready_time
from api.key_cache import cached_webhook_auth, read_webhook_auth, remember_webhook_auth
from api.models import (
    CANCELLABLE,
    DISPATCH_NOTE_CHARS,
    InboundCancelEvent,
    InboundEvent,
    InboundEventAck,
    InboundEventIn,
    InboundEventType,
    InboundOrderData,
    InboundOrderEvent,
    InboundStatus,
    Order,
    OrderCreate,
    OrderStatus,
    Shop,
)
from api.trips import add_event, finish_trip_if_done, leave_trip

EVENT_ADAPTER: TypeAdapter[InboundOrderEvent | InboundCancelEvent] = TypeAdapter(InboundEventIn)
INVALID_SIGNATURE = "invalid_signature"
BAD_SIGNATURE_MESSAGE = "the signature does not match a valid webhook secret of the named shop"

# The reads of every event, built once (Core: building one costs about as much as running it).
_TABLES = SQLModel.metadata.tables
INBOUND_EVENTS = _TABLES[str(InboundEvent.__tablename__)]
ORDERS = _TABLES[str(Order.__tablename__)]
SEEN_EVENT = core_select(
    INBOUND_EVENTS.c.event_id,
    INBOUND_EVENTS.c.type,
    INBOUND_EVENTS.c.status,
    INBOUND_EVENTS.c.order_id,
    INBOUND_EVENTS.c.note,
).where(
    INBOUND_EVENTS.c.shop_id == bindparam("shop_id"),
    INBOUND_EVENTS.c.source == bindparam("source"),
    INBOUND_EVENTS.c.event_id == bindparam("event_id"),
)
ORDER_ID_OF_KEY = core_select(ORDERS.c.id).where(order_key_is(ORDERS)).with_for_update()
ANY_DEFERRED_OF_KEY = (
    core_select(INBOUND_EVENTS.c.id)
    .where(order_key_is(INBOUND_EVENTS), INBOUND_EVENTS.c.status == InboundStatus.deferred.value)
    .limit(1)
)


def unauthorized(message: str = BAD_SIGNATURE_MESSAGE) -> AppError:
    return AppError(401, INVALID_SIGNATURE, message)


async def authentic_shop(
    engine: Engine, shop_id: object, now: datetime, verify: Callable[[list[str]], bool]
) -> Shop:
    """The shop named ``shop_id`` when ``verify`` accepts one of its secrets valid at ``now``;
    401 alike for a malformed or unknown shop id, a shop without secrets and a wrong signature.

    The shop and its secrets come from ``api.key_cache`` (read on a miss in a short read
    transaction of its own, ``api.db.run_read``), so that most events read nothing here."""
    auth = None
    if isinstance(shop_id, str):
        try:
            shop_uuid = uuid.UUID(shop_id)
        except ValueError:
            pass
        else:
            auth = cached_webhook_auth(shop_uuid)
            if auth is None:
                auth = await run_read(
                    engine, functools.partial(read_webhook_auth, shop_id=shop_uuid)
                )
                if auth is not None:
                    remember_webhook_auth(auth)
    candidates = auth.valid_secrets(now) if auth is not None else []
    # Verify even without a shop (against a throwaway secret): the time taken tells nothing.
    if not verify(candidates or ["whsec_unknown-shop"]) or auth is None or not candidates:
        raise unauthorized()
    return auth.shop


def parse_json(body: bytes) -> Any:
    """The JSON value of ``body``, or ``None`` when it is not JSON (then nothing is authentic:
    the shop cannot be read)."""
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        return None


def validate_event(payload: Any) -> InboundOrderEvent | InboundCancelEvent:
    """The event of an authentic body; 422 naming the field when it is not our format."""
    try:
        return EVENT_ADAPTER.validate_python(payload)
    except ValidationError as error:
        code, message = describe_validation_errors(error.errors())
        raise AppError(422, code, message) from None


def _find_order(session: Session, shop: Shop, source: str, external_id: str) -> uuid.UUID | None:
    """The id of the shop's order ``(source, external_id)``, its row locked (PostgreSQL)."""
    return (
        session.connection()
        .execute(
            ORDER_ID_OF_KEY, {"shop_id": shop.id, "source": source, "external_id": external_id}
        )
        .scalar()
    )


def _load_order(session: Session, order_id: uuid.UUID) -> Order:
    order = session.get(Order, order_id, with_for_update=True)
    if order is None:  # pragma: no cover - found (and locked) in this transaction
        raise AssertionError(f"order {order_id} not found")
    return order


def _order_in(source: str, data: InboundOrderData) -> OrderCreate:
    """The ``POST /v1/orders`` body of an event's order (validated as that body)."""
    try:
        return OrderCreate.model_validate({**data.model_dump(exclude_unset=True), "source": source})
    except ValidationError as error:  # pragma: no cover - the fields and bounds are the same
        code, message = describe_validation_errors(error.errors())
        raise AppError(422, code, message) from None


def _ack(row: Any, *, duplicate: bool, pin: str | None = None) -> InboundEventAck:
    """The answer of an event: ``row`` is its ``InboundEvent``, or the ``SEEN_EVENT`` row of a
    duplicate."""
    return InboundEventAck(
        event_id=row.event_id,
        type=InboundEventType(row.type),
        status=InboundStatus(row.status),
        duplicate=duplicate,
        order_id=row.order_id,
        note=row.note,
        pin=pin,
    )


def _note(text_: str) -> str:
    return text_[:DISPATCH_NOTE_CHARS]


def _last_applied_at(session: Session, order: Order) -> datetime | None:
    """``sent_at`` of the latest applied event of ``order`` (to drop stale updates)."""
    rows = session.exec(
        select(InboundEvent.sent_at)
        .where(
            InboundEvent.order_id == order.id,
            InboundEvent.status == InboundStatus.applied.value,
        )
        .order_by(col(InboundEvent.sent_at).desc())
        .limit(1)
    ).all()
    return rows[0] if rows else None


def _apply_update(
    session: Session,
    shop: Shop,
    order: Order,
    order_in: OrderCreate,
    sent_at: datetime,
    now: datetime,
) -> tuple[InboundStatus, str | None]:
    """Apply an update to ``order``; raises ``AppError`` 422 when the new drop-off is outside
    the circle or the ready time out of range (nothing changed then)."""
    last = _last_applied_at(session, order)
    if last is not None and sent_at < last:
        return InboundStatus.ignored, "stale: a later event of this order was applied already"
    if order.status != OrderStatus.pending:
        return InboundStatus.ignored, f"the order is {order.status}; only pending orders change"
    check_in_circle(shop, order_in)
    order.dropoff_lat, order.dropoff_lon = order_in.dropoff_lat, order_in.dropoff_lon
    order.address, order.size_bags = order_in.address, order_in.size_bags
    order.ready_at = ready_time(order_in, order.placed_at)
    order.updated_at = now
    order.dispatch_note = None
    session.add(order)
    add_event(session, order, "updated", now, "inbound order.updated")
    return InboundStatus.applied, None


def _apply_cancel(
    session: Session, order: Order, reason: str | None, now: datetime
) -> tuple[InboundStatus, str | None]:
    if order.status == OrderStatus.cancelled:
        return InboundStatus.applied, "the order was cancelled already"
    if order.status not in CANCELLABLE:
        return InboundStatus.ignored, f"the order is {order.status}; it cannot be cancelled"
    order.status = OrderStatus.cancelled.value
    order.updated_at = now
    trip_id = leave_trip(order)
    session.add(order)
    add_event(session, order, "cancelled", now, reason)
    finish_trip_if_done(session, trip_id, now)
    return InboundStatus.applied, None


def apply_deferred(
    session: Session, shop: Shop, order_id: uuid.UUID, source: str, external_id: str, now: datetime
) -> bool:
    """Apply the events of the new order ``order_id`` that arrived before it, oldest
    ``created`` first (the order is loaded as a row only when there are some); whether there
    were any. Also ``POST /v1/orders``'s (``api.intake``): an order is the same whichever way
    it arrives."""
    key = {"shop_id": shop.id, "source": source, "external_id": external_id}
    if session.connection().execute(ANY_DEFERRED_OF_KEY, key).first() is None:
        return False  # the usual case: one indexed read, no ORM query
    rows = session.exec(
        select(InboundEvent)
        .where(
            InboundEvent.shop_id == shop.id,
            InboundEvent.source == source,
            InboundEvent.external_id == external_id,
            InboundEvent.status == InboundStatus.deferred.value,
        )
        .order_by(col(InboundEvent.sent_at), col(InboundEvent.id))
    ).all()
    if not rows:
        return False
    order = _load_order(session, order_id)
    for row in rows:
        data = json.loads(row.data)
        row.order_id = order.id
        try:
            if row.type == InboundEventType.cancelled:
                status, note = _apply_cancel(session, order, data.get("reason"), now)
            else:
                order_in = _order_in(source, InboundOrderData.model_validate(data))
                status, note = _apply_update(session, shop, order, order_in, row.sent_at, now)
        except AppError as error:
            status, note = InboundStatus.rejected, error.message
        row.status, row.note = status.value, _note(note) if note else None
        session.add(row)
    session.flush()  # for the Core reads after it
    return True


def process_event(
    session: Session,
    shop: Shop,
    source: str,
    event: InboundOrderEvent | InboundCancelEvent,
    now: datetime,
) -> InboundEventAck:
    """Deduplicate, store and apply one authentic event (flushed, not committed)."""
    external_id = event.data.external_id
    lock_order_keys(session, [(shop.id, source, external_id)])
    seen = (
        session.connection()
        .execute(SEEN_EVENT, {"shop_id": shop.id, "source": source, "event_id": event.id})
        .first()
    )
    if seen is not None:
        return _ack(seen, duplicate=True)

    sent_at = datetime.fromtimestamp(event.created, UTC)
    row = InboundEvent(
        shop_id=shop.id,
        source=source,
        event_id=event.id,
        type=event.type,
        external_id=external_id,
        sent_at=sent_at,
        received_at=now,
        status=InboundStatus.applied.value,
        data=event.data.model_dump_json(exclude_unset=True),
    )
    order_id = _find_order(session, shop, source, external_id)
    pin = None
    note: str | None = None
    if isinstance(event, InboundCancelEvent):
        if order_id is None:
            row.status, note = InboundStatus.deferred.value, "no such order yet"
        else:
            order = _load_order(session, order_id)
            status, note = _apply_cancel(session, order, event.data.reason, now)
            row.status = status.value
    elif event.type == InboundEventType.created:
        if order_id is None:
            order, pin = insert_new_order(session, shop, _order_in(source, event.data), now)
            order_id = order.id
            apply_deferred(session, shop, order_id, source, external_id, now)
        else:
            row.status, note = InboundStatus.ignored.value, "the order exists already"
    elif order_id is None:
        row.status, note = InboundStatus.deferred.value, "no such order yet"
    else:
        order = _load_order(session, order_id)
        status, note = _apply_update(
            session, shop, order, _order_in(source, event.data), sent_at, now
        )
        row.status = status.value
    row.order_id = order_id
    row.note = _note(note) if note else None
    insert_inbound_event(session, row)  # Core: the row is never read back in this transaction
    return _ack(row, duplicate=False, pin=pin)


def purge_inbound_events(engine: Engine, now: datetime, dedupe_days: int) -> int:
    """Forget the ids of events received over ``dedupe_days`` ago (deferred ones are kept);
    how many were deleted."""
    cutoff = now.astimezone(UTC) - timedelta(days=dedupe_days)
    with Session(writer(engine)) as session:
        result = session.execute(
            delete(InboundEvent).where(
                col(InboundEvent.received_at) < cutoff,
                col(InboundEvent.status) != InboundStatus.deferred.value,
            )
        )
        session.commit()
        return int(result.rowcount or 0)  # type: ignore[attr-defined]
