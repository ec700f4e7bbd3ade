"""Outbound webhooks: the outbox written with each state change, and the delivery worker.

Writing. ``api.trips.add_event`` (called for every state change of an order, in its
transaction) calls ``emit``: when one of the shop's live endpoints subscribes to the event's
type, an ``OutboxEvent`` (id ``evt_...``, the exact JSON body) and one ``WebhookDelivery`` per
subscribed endpoint are added to the same session, so the event commits or rolls back with the
change. Without a subscriber nothing is written (one indexed read per change). Order event kinds
map to types: placed -> ``order.accepted``, assigned, picked_up, delivered, cancelled, failed ->
``order.<kind>``; ``order.eta_changed`` is emitted by ``set_eta`` when an order's ETA moves by
more than ``ETA_CHANGE_THRESHOLD_S``. A retried failure (back to pending) and inbound updates
have no outbound type.

Body (the format of inbound events, ``api.inbound``)::

    {"id": "evt_...", "type": "order.assigned", "created": <unix s>, "shop_id": "...",
     "data": {"order": <the order as GET /v1/orders/{id}>, "note": "..."|null,
              "previous_eta_at": "..."  (order.eta_changed only)}}

Sending. ``deliver_due`` claims the most overdue delivery (of equally due ones, the oldest
event: ids sort by creation), one at a time, in a short write transaction
(``FOR UPDATE SKIP LOCKED`` on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite): it moves
``next_attempt_at`` to the end of a lease (``webhook_lease_s``) and sets a fresh
``lease_token``. It then POSTs the body with urllib (in the worker's thread; no async HTTP
client; to public addresses only, no redirects, no environment proxy: ``api.netguard``),
signed with the endpoint's secret (``api.signing``; headers ``Quarterhour-Signature``,
``Quarterhour-Event-Id``, ``Quarterhour-Event-Type``), and records the attempt in a second
transaction, only if the lease token is still its own. A 2xx answer delivers; anything else
(status, timeout, refused connection) schedules the next attempt after an exponential backoff
with jitter (``backoff_s``) until ``webhook_retry_window_s`` (at least 24 h) since
``queued_at`` has passed, then the delivery is ``dead``. A worker killed between sending and
recording loses nothing: the lease ends and the event is sent again with the same id. Delivery
is therefore at least once; receivers deduplicate on the event id.

``deliver_due`` sends in ``DELIVERY_LANES`` threads and never to one endpoint twice at once, so
a receiver that answers slowly or times out holds up its own deliveries, not other endpoints'.
``run_delivery_loop`` runs it every ``webhook_poll_s`` in the app's lifespan and, every hour,
``api.inbound.purge_inbound_events``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import secrets
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Collection
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, bindparam
from sqlmodel import Session, col, select

from api.config import Settings
from api.db import is_sqlite, writer
from api.models import (
    DeliveryStatus,
    Order,
    OrderPublic,
    OutboundEventType,
    OutboxEvent,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)
from api.netguard import open_guarded
from api.signing import SIGNATURE_HEADER, signature_header

logger = logging.getLogger("api.outbox")

# Order event kinds (``OrderEvent.kind``) and the outbound type each is sent as.
TYPE_OF_KIND = {
    "placed": OutboundEventType.accepted,
    "assigned": OutboundEventType.assigned,
    "picked_up": OutboundEventType.picked_up,
    "delivered": OutboundEventType.delivered,
    "cancelled": OutboundEventType.cancelled,
    "failed": OutboundEventType.failed,
}
# An ETA that moves by more than this is announced (``order.eta_changed``).
ETA_CHANGE_THRESHOLD_S = 120
# Retry schedule: the n-th failed attempt waits about BASE * 2**(n-1) s, at most MAX, each delay
# drawn uniformly from [1 - JITTER, 1] of that (so that endpoints recovering together are not
# hit together).
BACKOFF_BASE_S = 30
BACKOFF_MAX_S = 3_600
BACKOFF_JITTER = 0.25
# Deliveries sent per call of ``deliver_due`` at most (the loop calls it again at once when full).
MAX_PER_PASS = 50
# Deliveries in flight at once in one worker, each to a different endpoint.
DELIVERY_LANES = 4
# Longest error text stored, and body of a failed answer quoted in it.
ERROR_CHARS = 256
USER_AGENT = "Quarterhour-Webhooks/1"
PURGE_EVERY_S = 3_600


def new_event_id() -> str:
    """A new outbound event id: ``evt_``, the wall clock in nanoseconds (16 hex characters) and
    8 random hex characters, so that ids sort in the order events were made (within a process;
    across processes as far as their clocks agree): due deliveries are sent in that order."""
    return f"evt_{time.time_ns():016x}{secrets.token_hex(4)}"


def unix_s(at: datetime) -> int:
    return int(at.timestamp())


# Built once: ``subscriber_ids`` runs for every state change of every order, and building the
# statement (and its cache key) cost about as much as running it.
LIVE_ENDPOINTS_OF_SHOP = select(col(WebhookEndpoint.id), col(WebhookEndpoint.event_types)).where(
    col(WebhookEndpoint.shop_id) == bindparam("shop_id"), col(WebhookEndpoint.disabled_at).is_(None)
)


def subscriber_ids(
    session: Session, shop_id: uuid.UUID, type_: OutboundEventType
) -> list[uuid.UUID]:
    """The shop's live endpoints subscribed to ``type_`` (one indexed Core read, no ORM rows:
    it runs for every state change of every order)."""
    rows = session.connection().execute(LIVE_ENDPOINTS_OF_SHOP, {"shop_id": shop_id})
    return [endpoint_id for endpoint_id, types in rows if type_.value in types.split()]


def emit(
    session: Session,
    order: Order,
    type_: OutboundEventType,
    at: datetime,
    note: str | None,
    extra: dict[str, object] | None = None,
) -> OutboxEvent | None:
    """Add the event of ``order`` (its current state) for every subscribed endpoint to the
    session's transaction; ``None`` when no endpoint of the shop subscribes to ``type_``."""
    endpoint_ids = subscriber_ids(session, order.shop_id, type_)
    if not endpoint_ids:
        return None
    event_id = new_event_id()
    data: dict[str, object] = {
        "order": OrderPublic.model_validate(order).model_dump(mode="json"),
        "note": note,
        **(extra or {}),
    }
    body = {
        "id": event_id,
        "type": type_.value,
        "created": unix_s(at),
        "shop_id": str(order.shop_id),
        "data": data,
    }
    event = OutboxEvent(
        id=event_id,
        shop_id=order.shop_id,
        type=type_.value,
        order_id=order.id,
        created_at=at,
        body=json.dumps(body, separators=(",", ":"), sort_keys=True),
    )
    session.add(event)
    for endpoint_id in endpoint_ids:
        session.add(
            WebhookDelivery(
                shop_id=order.shop_id,
                endpoint_id=endpoint_id,
                event_id=event_id,
                event_type=type_.value,
                created_at=at,
                queued_at=at,
                next_attempt_at=at,
            )
        )
    return event


def emit_for_kind(
    session: Session, order: Order, kind: str, at: datetime, note: str | None
) -> None:
    """``emit`` the outbound event of an order event ``kind``, if it has one."""
    type_ = TYPE_OF_KIND.get(kind)
    if type_ is not None:
        emit(session, order, type_, at, note)


def set_eta(session: Session, order: Order, eta_at: datetime | None, at: datetime) -> None:
    """Give ``order`` a new ETA; announce ``order.eta_changed`` when it moved by more than
    ``ETA_CHANGE_THRESHOLD_S`` (a first ETA comes with ``order.assigned`` instead)."""
    previous = order.eta_at
    order.eta_at = eta_at
    session.add(order)
    if previous is None or eta_at is None:
        return
    if abs((eta_at - previous).total_seconds()) > ETA_CHANGE_THRESHOLD_S:
        emit(
            session,
            order,
            OutboundEventType.eta_changed,
            at,
            None,
            {"previous_eta_at": previous.isoformat()},
        )


# --- the delivery worker -----------------------------------------------------------------------


def backoff_s(failures: int, rng: random.Random | None = None) -> float:
    """Seconds to wait after the ``failures``-th failed attempt (1, 2, ...)."""
    ceiling = min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2 ** min(failures - 1, 20))
    draw = (rng or random).random()
    return ceiling * (1 - BACKOFF_JITTER * draw)


@dataclass(frozen=True)
class Claim:
    """A delivery claimed by one worker until ``lease_token`` is replaced."""

    delivery_id: uuid.UUID
    lease_token: str
    attempt: int
    endpoint_id: uuid.UUID
    url: str
    secret: str
    event_id: str
    event_type: str
    body: bytes


@dataclass(frozen=True)
class Outcome:
    status_code: int | None
    error: str | None
    duration_ms: int

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def _due(now: datetime, skip_endpoints: Collection[uuid.UUID]) -> Any:
    query = (
        select(WebhookDelivery)
        .join(WebhookEndpoint, col(WebhookEndpoint.id) == col(WebhookDelivery.endpoint_id))
        .where(
            WebhookDelivery.status == DeliveryStatus.pending.value,
            col(WebhookDelivery.next_attempt_at) <= now,
            col(WebhookEndpoint.disabled_at).is_(None),
        )
        .order_by(col(WebhookDelivery.next_attempt_at), col(WebhookDelivery.event_id))
        .limit(1)
    )
    if skip_endpoints:
        query = query.where(col(WebhookDelivery.endpoint_id).not_in(list(skip_endpoints)))
    return query


def claim_next(
    engine: Engine, now: datetime, lease_s: int, skip_endpoints: Collection[uuid.UUID] = ()
) -> Claim | None:
    """Claim the most overdue pending delivery of a live endpoint not in ``skip_endpoints`` (one
    write transaction, taken only when a read finds one due: an idle worker never holds
    SQLite's write lock)."""
    with Session(engine) as session:
        if session.exec(_due(now, skip_endpoints)).first() is None:
            return None
    with Session(writer(engine), expire_on_commit=False) as session:
        query = _due(now, skip_endpoints)
        if not is_sqlite(engine):
            query = query.with_for_update(skip_locked=True, of=WebhookDelivery)
        delivery = session.exec(query).first()
        if delivery is None:
            session.rollback()
            return None
        endpoint = session.get(WebhookEndpoint, delivery.endpoint_id)
        event = session.get(OutboxEvent, delivery.event_id)
        assert endpoint is not None and event is not None  # foreign keys
        token = secrets.token_hex(16)
        delivery.lease_token = token
        delivery.next_attempt_at = now + timedelta(seconds=lease_s)
        session.add(delivery)
        claim = Claim(
            delivery_id=delivery.id,
            lease_token=token,
            attempt=delivery.attempts + 1,
            endpoint_id=endpoint.id,
            url=endpoint.url,
            secret=endpoint.secret,
            event_id=event.id,
            event_type=event.type,
            body=event.body.encode("utf-8"),
        )
        session.commit()
        return claim


def send(claim: Claim, now: datetime, timeout_s: float, *, allow_private: bool = False) -> Outcome:
    """POST the claimed event to its endpoint, signed at ``now``; never raises. Only to public
    addresses unless ``allow_private``; no redirect is followed (``api.netguard``)."""
    request = urllib.request.Request(
        claim.url,
        data=claim.body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            SIGNATURE_HEADER: signature_header([claim.secret], unix_s(now), claim.body),
            "Quarterhour-Event-Id": claim.event_id,
            "Quarterhour-Event-Type": claim.event_type,
        },
    )
    started = time.perf_counter()
    status_code: int | None = None
    error: str | None = None
    try:
        with open_guarded(request, timeout_s, allow_private=allow_private) as response:
            status_code = response.status
            response.read(1_024)
    except urllib.error.HTTPError as http_error:
        status_code = http_error.code
        error = f"HTTP {http_error.code} {http_error.reason}"
        http_error.close()
    except Exception as other:  # refused, reset, timeout, bad URL: all are a failed attempt
        error = f"{type(other).__name__}: {other}"
    duration_ms = int((time.perf_counter() - started) * 1_000)
    if error is not None:
        error = error[:ERROR_CHARS]
    return Outcome(status_code=status_code, error=error, duration_ms=duration_ms)


def record(
    engine: Engine,
    claim: Claim,
    outcome: Outcome,
    started_at: datetime,
    settings: Settings,
    rng: random.Random | None = None,
) -> bool:
    """Store the attempt and the delivery's next state; ``False`` (nothing stored) when the
    lease was lost meanwhile (another worker claimed the delivery again, or it was replayed)."""
    with Session(writer(engine), expire_on_commit=False) as session:
        delivery = session.get(WebhookDelivery, claim.delivery_id, with_for_update=True)
        if delivery is None or delivery.lease_token != claim.lease_token:
            session.rollback()
            return False
        finished_at = started_at + timedelta(milliseconds=outcome.duration_ms)
        delivery.attempts += 1
        delivery.lease_token = None
        delivery.last_status_code = outcome.status_code
        delivery.last_error = outcome.error
        if outcome.ok:
            delivery.status = DeliveryStatus.delivered.value
            delivery.delivered_at = finished_at
        else:
            window_end = delivery.queued_at + timedelta(seconds=settings.webhook_retry_window_s)
            if finished_at >= window_end:
                delivery.status = DeliveryStatus.dead.value
            else:
                wait = timedelta(seconds=backoff_s(delivery.attempts, rng))
                delivery.next_attempt_at = finished_at + wait
        session.add(delivery)
        session.add(
            WebhookAttempt(
                delivery_id=delivery.id,
                attempt=delivery.attempts,
                started_at=started_at,
                duration_ms=outcome.duration_ms,
                status_code=outcome.status_code,
                error=outcome.error,
            )
        )
        session.commit()
        return True


def deliver_due(
    engine: Engine,
    now: datetime,
    settings: Settings,
    *,
    limit: int = MAX_PER_PASS,
    rng: random.Random | None = None,
    lanes: int = DELIVERY_LANES,
) -> int:
    """Send up to ``limit`` deliveries due at ``now``, ``lanes`` at a time and never two to one
    endpoint at once; how many were sent.

    Tests drive it by hand with a fake ``now``; the loop passes the app's clock.
    """
    in_flight: set[uuid.UUID] = set()  # endpoints with a delivery being sent
    guard = threading.Lock()
    sent = 0

    def take() -> Claim | None:
        nonlocal sent
        with guard:  # claims one at a time, so that no endpoint is claimed twice
            if sent >= limit:
                return None
            claim = claim_next(engine, now, settings.webhook_lease_s, in_flight)
            if claim is not None:
                in_flight.add(claim.endpoint_id)
                sent += 1
            return claim

    def lane(claim: Claim | None) -> None:
        while claim is not None:
            try:
                outcome = send(
                    claim,
                    now,
                    settings.webhook_timeout_s,
                    allow_private=settings.webhook_allow_private_urls,
                )
                if not record(engine, claim, outcome, now, settings, rng):
                    logger.warning(
                        "delivery %s: lease lost before its outcome was stored", claim.delivery_id
                    )
            finally:
                with guard:
                    in_flight.discard(claim.endpoint_id)
            claim = take()

    first = take()
    if first is None:  # nothing due (the idle loop's every pass): one read, no lane started
        return 0
    with ThreadPoolExecutor(max_workers=lanes, thread_name_prefix="webhook-lane") as pool:
        # the other lanes claim their first delivery themselves, in their own threads
        running = [pool.submit(lane, first)]
        running += [pool.submit(lambda: lane(take())) for _ in range(lanes - 1)]
        for lane_run in running:
            lane_run.result()  # a lane's error (the database's) is the pass's
    return sent


async def run_delivery_loop(
    engine: Engine, settings: Settings, clock: Callable[[], datetime]
) -> None:
    """Deliver due webhooks every ``webhook_poll_s`` until cancelled; never stops on an error.
    Every ``PURGE_EVERY_S`` it also drops inbound event ids older than the dedupe window."""
    from api.inbound import purge_inbound_events  # api.inbound imports this module

    last_purge = float("-inf")
    while True:
        sent = 0
        try:
            sent = await asyncio.to_thread(deliver_due, engine, clock(), settings)
            if time.monotonic() - last_purge >= PURGE_EVERY_S:
                last_purge = time.monotonic()
                await asyncio.to_thread(
                    purge_inbound_events, engine, clock(), settings.webhook_dedupe_days
                )
        except Exception:
            logger.exception("webhook delivery pass failed")
        if sent < MAX_PER_PASS:
            await asyncio.sleep(settings.webhook_poll_s)
