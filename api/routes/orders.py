"""Orders: idempotent intake, reads, lists, cancellation and the append-only event history."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response
from pydantic import AwareDatetime
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from api import core_writes
from api.deps import (
    CurrentShopDep,
    CurrentShopReadDep,
    GroupCommitDep,
    NowDep,
    SessionDep,
    fetch_page,
    get_owned,
    group_commit_of,
    now_of,
)
from api.errors import AppError
from api.group_commit import Batched
from api.intake import ORDER_INTAKE, new_order_values, new_pin, prepare_intake
from api.models import (
    CANCELLABLE,
    Order,
    OrderCancel,
    OrderCreate,
    OrderCreatedPublic,
    OrderDeliver,
    OrderEvent,
    OrderEventPublic,
    OrderEventsPublic,
    OrderFail,
    OrderPublic,
    OrdersPublic,
    OrderStatus,
    Shop,
)
from api.retry import RetryLostRaceRoute
from api.trips import ON_TRIP, add_event, finish_trip_if_done, leave_trip

router = APIRouter(prefix="/orders", tags=["orders"], route_class=RetryLostRaceRoute)

IDEMPOTENCY_KEY_PATTERN = r"^[\x21-\x7e]+$"

IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        pattern=IDEMPOTENCY_KEY_PATTERN,
        description="Retries with the same key and body get the same response; "
        "the same key with another body gets 422 `idempotency_key_reused`.",
    ),
]


def place_order(
    session: Session,
    shop: Shop,
    order_in: OrderCreate,
    now: datetime,
    *,
    pin: tuple[str, str] | None = None,
) -> tuple[Order, str]:
    """Store a new order placed ``now`` and its ``placed`` event (flushed, not committed);
    the order and its delivery PIN. The intake of inbound webhooks (``api.inbound``), which
    goes on changing the order as a row; ``POST /v1/orders`` writes with Core instead.

    ``pin``: the PIN and its hash (``new_pin``) when made before the write transaction.
    """
    shown_pin, pin_hash = pin or new_pin(order_in)
    order = Order.model_validate(new_order_values(shop, order_in, now, pin_hash))
    session.add(order)
    session.flush()
    add_event(session, order, "placed", now, None)
    return order, shown_pin


async def take_intake(
    request: Request, shop: Shop, order_in: OrderCreate, idempotency_key: str | None
) -> Response:
    """The intake of ``order_in`` for ``shop``, written through the group writer; its reply."""
    # The group writer and the clock come from ``request``, not as dependencies: FastAPI
    # solves each dependency anew per request, a cost this hot path notices.
    intake = prepare_intake(shop, order_in, idempotency_key, now_of(request))
    try:
        status_code, body_json, replayed, pin_shown = await group_commit_of(request.app).run(
            Batched(ORDER_INTAKE, intake)
        )
    except IntegrityError:
        # A concurrent transaction kept committing this order or this key first (the group
        # writer reran the intake, which then reads what it wrote, ``ATTEMPTS`` times).
        raise AppError(
            409, "conflict", "the order is being written by a concurrent request; retry"
        ) from None
    return intake_response(status_code, body_json, replayed, pin_shown)


def intake_response(status_code: int, body_json: str, replayed: bool, pin: str | None) -> Response:
    """The reply of an intake: the order's public body (JSON text, ``api.intake.dump_body``)
    with ``pin`` added last; the bytes ``JSONResponse({**body, "pin": pin})`` would send, made
    without decoding and encoding the body again."""
    if not (body_json.startswith("{") and body_json.endswith("}")):  # pragma: no cover
        raise ValueError(f"an order body must be a JSON object, got {body_json[:40]!r}")
    separator = "," if body_json != "{}" else ""
    content = f'{body_json[:-1]}{separator}"pin":{json.dumps(pin)}}}'
    return Response(
        content.encode(),
        status_code,
        headers=REPLAYED_HEADERS if replayed else None,
        media_type="application/json",
    )


REPLAYED_HEADERS = {"Idempotent-Replayed": "true"}


async def create_order(
    order_in: OrderCreate,
    shop: CurrentShopReadDep,
    request: Request,
    idempotency_key: IdempotencyKeyHeader = None,
) -> Response:
    """Take an order: 201 when new, 200 when its ``(source, external_id)`` is known already.

    Drop-offs outside the shop's walking circle get 422 ``outside_service_area``. The promised
    time is the placing time plus the shop's ``promise_min``. The delivery PIN (``pin`` of the
    body, or 4 random digits) is stored hashed and returned only in the 201 reply; replays with
    the same ``Idempotency-Key`` and 200 replies show ``pin: null``.

    A platform's ``order.updated`` or ``order.cancelled`` that came by webhook before the order
    (``POST /v1/webhooks/{source}``, same ``source`` and ``external_id``) applies now, as the
    platform's ``order.created`` would have: the reply is the order after it (cancelled, for a
    cancel).

    The write goes through the group writer (``api.group_commit``): the intakes of a batch are
    written together (``api.intake``, a few multi-row statements in all) in one transaction
    with one fsync, and each is answered only after that commit. Fingerprint, PIN hash and the
    order's columns and body are made before, outside it.
    """
    return await take_intake(request, shop, order_in, idempotency_key)


# A well-formed intake is answered by its fast path (``api.fast``); FastAPI's handler (this
# signature: validation, errors, OpenAPI) serves the rest.
router.add_api_route(
    "",
    create_order,
    methods=["POST"],
    status_code=201,
    response_model=OrderCreatedPublic,
    responses={
        200: {
            "model": OrderCreatedPublic,
            "description": "This shop already has an order with this (source, external_id): "
            "that order, unchanged (the first accepted version wins), without its PIN.",
        },
        201: {"description": "The order was accepted and is durable; `pin` is shown this once."},
    },
)


def as_utc(value: datetime, field: str) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise AppError(422, "validation_error", f"{field}: out of range") from None


@router.get("")
def list_orders(
    session: SessionDep,
    shop: CurrentShopDep,
    status: OrderStatus | None = None,
    since: Annotated[
        AwareDatetime | None, Query(description="Only orders changed at or after this instant.")
    ] = None,
    skip: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> OrdersPublic:
    """The shop's orders, oldest first; ``count`` is the number matching the filters."""
    conditions = [col(Order.shop_id) == shop.id]
    if status is not None:
        conditions.append(col(Order.status) == status.value)
    if since is not None:
        conditions.append(col(Order.updated_at) >= as_utc(since, "since"))
    orders, count = fetch_page(
        session, Order, conditions, (col(Order.placed_at), col(Order.id)), skip=skip, limit=limit
    )
    return OrdersPublic(data=[OrderPublic.model_validate(order) for order in orders], count=count)


@router.get("/{order_id}")
def read_order(order_id: uuid.UUID, session: SessionDep, shop: CurrentShopReadDep) -> OrderPublic:
    return OrderPublic.model_validate(get_owned(session, Order, shop, order_id, "order"))


# The state changes below are written through the group writer (``api.group_commit``), like the
# intake: each one in a savepoint of a shared transaction, answered once that commit is durable.


@router.post("/{order_id}/cancel")
async def cancel_order(
    order_id: uuid.UUID,
    group_commit: GroupCommitDep,
    shop: CurrentShopReadDep,
    now: NowDep,
    cancel_in: OrderCancel | None = None,
) -> OrderPublic:
    """Cancel a pending or assigned order; cancelling a cancelled order changes nothing."""

    def cancel(session: Session) -> OrderPublic:
        order = get_owned(session, Order, shop, order_id, "order", lock=True)
        if order.status == OrderStatus.cancelled:
            return OrderPublic.model_validate(order)
        if order.status not in CANCELLABLE:
            raise AppError(
                409,
                "order_not_cancellable",
                f"the order is {order.status}; only pending or assigned orders can be cancelled",
            )
        order.status = OrderStatus.cancelled.value
        order.updated_at = now
        trip_id = leave_trip(order)
        session.add(order)
        add_event(session, order, "cancelled", now, cancel_in.reason if cancel_in else None)
        finish_trip_if_done(session, trip_id, now)
        return OrderPublic.model_validate(order)

    return await group_commit.run(cancel)


def deliver_work(
    shop: Shop, order_id: uuid.UUID, pin: str | None, now: datetime
) -> Callable[[Session], OrderPublic]:
    """The write of ``POST /v1/orders/{order_id}/deliver`` (for the group writer); also the
    fast path's (``api.fast``)."""

    def deliver(session: Session) -> OrderPublic:
        return core_writes.deliver_order(session, shop, order_id, pin, now)

    return deliver


@router.post("/{order_id}/deliver")
async def deliver_order(
    order_id: uuid.UUID,
    group_commit: GroupCommitDep,
    shop: CurrentShopReadDep,
    now: NowDep,
    deliver_in: OrderDeliver | None = None,
) -> OrderPublic:
    """The rider handed the order over, with the customer's PIN as proof when given.

    The order must be picked up first (409 ``order_not_picked_up``); delivering a delivered
    order changes nothing. A PIN that is not the order's gets 422 ``wrong_pin``; no PIN gets
    422 ``pin_required`` when the shop requires one (``require_pin``). Either way the order
    stays as it was. The last stop of a trip delivered or failed makes the trip done.
    """
    pin = deliver_in.pin if deliver_in else None
    return await group_commit.run(deliver_work(shop, order_id, pin, now))


@router.post("/{order_id}/fail")
async def fail_order(
    order_id: uuid.UUID,
    fail_in: OrderFail,
    group_commit: GroupCommitDep,
    shop: CurrentShopReadDep,
    now: NowDep,
) -> OrderPublic:
    """The rider could not deliver: with ``retry`` the order goes back to dispatch (pending),
    otherwise it is closed as failed. Only an assigned or picked-up order can fail (409
    ``order_not_on_trip``)."""

    def fail(session: Session) -> OrderPublic:
        order = get_owned(session, Order, shop, order_id, "order", lock=True)
        if order.status not in ON_TRIP:
            raise AppError(
                409,
                "order_not_on_trip",
                f"the order is {order.status}; only an assigned or picked-up order can fail",
            )
        order.status = (OrderStatus.pending if fail_in.retry else OrderStatus.failed).value
        order.updated_at = now
        trip_id = leave_trip(order)
        session.add(order)
        kind = "retry" if fail_in.retry else "failed"
        add_event(session, order, kind, now, fail_in.reason)
        finish_trip_if_done(session, trip_id, now)
        return OrderPublic.model_validate(order)

    return await group_commit.run(fail)


@router.get("/{order_id}/events")
def list_order_events(
    order_id: uuid.UUID, session: SessionDep, shop: CurrentShopDep
) -> OrderEventsPublic:
    """The order's history, oldest first (append-only)."""
    order = get_owned(session, Order, shop, order_id, "order")
    events = session.exec(
        select(OrderEvent).where(OrderEvent.order_id == order.id).order_by(col(OrderEvent.id))
    ).all()
    return OrderEventsPublic(
        data=[OrderEventPublic.model_validate(event) for event in events], count=len(events)
    )
