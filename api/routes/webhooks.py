"""Inbound webhooks: platform order events in our signed format, and Shopify's orders/create.

The processing rules (deduplication, out-of-order events, what each type does) are in
``api.inbound``; the signature schemes in ``api.signing``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query, Request
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from api.config import Settings
from api.deps import EngineDep, GroupCommitDep, NowDep, SettingsDep
from api.errors import AppError, describe_validation_errors
from api.group_commit import GroupCommit
from api.inbound import (
    authentic_shop,
    parse_json,
    process_event,
    unauthorized,
    validate_event,
)
from api.models import (
    SOURCE_PATTERN,
    ErrorPublic,
    InboundEventAck,
    InboundEventIn,
    InboundOrderData,
    InboundOrderEvent,
    Shop,
    check_text,
)
from api.retry import RetryLostRaceRoute
from api.signing import (
    SIGNATURE_HEADER,
    SignatureError,
    check_timestamp,
    matches,
    parse_signature_header,
    shopify_matches,
)

router = APIRouter(prefix="/webhooks", tags=["webhooks"], route_class=RetryLostRaceRoute)

SHOPIFY_SOURCE = "shopify"
SHOPIFY_TOPIC = "orders/create"
# Bags of a Shopify order: one per this many items (line item quantities), at least one.
ITEMS_PER_BAG = 5
MAX_BAGS = 50
ADDRESS_CHARS = 256

UNAUTHORIZED_RESPONSE: dict[int | str, dict[str, Any]] = {
    401: {
        "model": ErrorPublic,
        "description": "Missing, malformed, expired or wrong signature, or an unknown shop "
        "(code `invalid_signature`, alike): nothing was stored.",
    },
}


async def raw_body(request: Request) -> bytes:
    """The request body exactly as received: signatures are over these bytes."""
    return await request.body()


RawBodyDep = Annotated[bytes, Depends(raw_body)]


def inline_refs(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with every ``$ref`` to its own ``$defs`` replaced by the definition (the
    request body of a raw-body route is written into the OpenAPI document by hand)."""
    definitions = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return resolve(definitions[ref.removeprefix("#/$defs/")])
            return {key: resolve(value) for key, value in node.items()}
        if isinstance(node, list):
            return [resolve(item) for item in node]
        return node

    resolved: dict[str, Any] = resolve(schema)
    return resolved


def request_body(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "description": description,
            "content": {"application/json": {"schema": inline_refs(schema)}},
        }
    }


EVENT_BODY = request_body(
    TypeAdapter(InboundEventIn).json_schema(),
    "An order event, signed with the shop's webhook secret (see the operation).",
)


# --- Shopify ------------------------------------------------------------------------------------


class ShopifyModel(BaseModel):
    """Shopify sends many more fields than these: they are ignored."""

    model_config = ConfigDict(extra="ignore")


class ShopifyAddress(ShopifyModel):
    address1: str | None = None
    address2: str | None = None
    city: str | None = None
    zip: str | None = None
    latitude: float | None = None
    longitude: float | None = None


class ShopifyLineItem(ShopifyModel):
    quantity: int = 1


class ShopifyOrder(ShopifyModel):
    """The fields of Shopify's order payload (``orders/create``) the service reads."""

    id: int
    line_items: list[ShopifyLineItem] = []
    shipping_address: ShopifyAddress | None = None


SHOPIFY_BODY = request_body(
    ShopifyOrder.model_json_schema(),
    "Shopify's order payload (only the fields shown are read), signed by Shopify.",
)


async def _write_processed(
    group_commit: GroupCommit, work: Callable[[Session], InboundEventAck]
) -> InboundEventAck:
    """``work`` (``process_event``, authenticated before or first) through the group writer:
    durable when answered. An event whose order a concurrent transaction kept writing first
    (the writer reran it ``ATTEMPTS`` times) is 409."""
    try:
        return await group_commit.run(work)
    except IntegrityError:
        raise AppError(
            409, "conflict", "the event's order is being written concurrently; retry"
        ) from None


@router.post(
    "/shopify",
    responses=UNAUTHORIZED_RESPONSE,
    openapi_extra=SHOPIFY_BODY,
)
async def receive_shopify_order(
    body: RawBodyDep,
    engine: EngineDep,
    group_commit: GroupCommitDep,
    now: NowDep,
    shop_id: Annotated[
        str | None,
        Query(max_length=64, description="The Quarterhour shop the Shopify store delivers from."),
    ] = None,
    hmac_header: Annotated[str | None, Header(alias="X-Shopify-Hmac-Sha256")] = None,
    webhook_id: Annotated[str | None, Header(alias="X-Shopify-Webhook-Id", max_length=255)] = None,
    topic: Annotated[str | None, Header(alias="X-Shopify-Topic", max_length=64)] = None,
) -> InboundEventAck:
    """Shopify's ``orders/create`` webhook: the order becomes an order of source ``shopify``.

    Subscribe ``https://<host>/v1/webhooks/shopify?shop_id=<shop id>`` to the topic
    ``orders/create`` (JSON) and register Shopify's webhook signing secret as the shop's
    webhook secret (``POST /v1/shops/{shop_id}/webhook-secrets`` with ``secret``).
    ``X-Shopify-Hmac-Sha256`` (base64 HMAC-SHA256 of the raw body) must match; a missing or
    wrong one, or an unknown shop, is 401 and nothing is stored. Deliveries are deduplicated
    on ``X-Shopify-Webhook-Id`` (also required), which stands for the event id.

    Mapping: ``external_id`` = the order's ``id``; drop-off = ``shipping_address.latitude``
    and ``longitude`` (required: 422 ``missing_coordinates`` without them); ``address`` =
    ``address1``, ``address2``, ``city`` and ``zip`` joined by commas; ``size_bags`` = the
    items (sum of ``line_items[].quantity``) divided by 5, rounded up, from 1 to 50; ready when
    placed. Then as ``order.created`` of ``POST /v1/webhooks/{source}``: the circle rule
    applies (422 ``outside_service_area``), the first version of an order wins.
    """
    if hmac_header is None or webhook_id is None or not webhook_id.strip():
        raise unauthorized("missing X-Shopify-Hmac-Sha256 or X-Shopify-Webhook-Id header")
    event_id = webhook_id.strip()

    shop = await authentic_shop(
        engine, shop_id, now, lambda secrets: shopify_matches(hmac_header, secrets, body)
    )

    def take(session: Session) -> InboundEventAck:
        if topic != SHOPIFY_TOPIC:
            raise AppError(
                422,
                "unsupported_topic",
                f"X-Shopify-Topic {topic!r}: only {SHOPIFY_TOPIC} is taken",
            )
        event = shopify_event(parse_json(body), event_id, shop, int(now.timestamp()))
        return process_event(session, shop, SHOPIFY_SOURCE, event, now)

    return await _write_processed(group_commit, take)


@router.post("/{source}", responses=UNAUTHORIZED_RESPONSE, openapi_extra=EVENT_BODY)
async def receive_event(
    source: Annotated[str, Path(max_length=32, pattern=SOURCE_PATTERN)],
    body: RawBodyDep,
    engine: EngineDep,
    group_commit: GroupCommitDep,
    settings: SettingsDep,
    now: NowDep,
    signature: Annotated[
        str | None,
        Header(
            alias=SIGNATURE_HEADER,
            description='`t=<unix s>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">`',
        ),
    ] = None,
) -> InboundEventAck:
    """Take one order event of platform ``{source}`` (e.g. ``meituan``, ``pos``).

    **Body**: ``{"id": "evt_...", "type": "order.created" | "order.updated" |
    "order.cancelled", "created": <unix s>, "shop_id": "<shop id>", "data": {...}}``.
    ``data`` of ``order.created`` and ``order.updated`` is the body of ``POST /v1/orders``
    without ``source`` (``external_id``, ``dropoff_lat``, ``dropoff_lon``, ``address``,
    ``size_bags``, optional ``ready_at`` or ``picking_min``, optional ``pin``); ``order.updated``
    carries the whole order again. ``data`` of ``order.cancelled`` is ``{"external_id",
    "reason"?}``. Orders are matched on ``(source, external_id)``: an order created here is
    exactly one posted by the shop with ``source`` = ``{source}``.

    **Signature**: header ``Quarterhour-Signature: t=<unix s>,v1=<hex>``, where ``v1`` is the
    HMAC-SHA256, keyed with one of the shop's webhook secrets (UTF-8), of the ASCII timestamp,
    a dot and the raw body bytes. ``t`` must be within 300 s of the service's clock. During a
    secret rotation either of the two valid secrets signs (or both: several ``v1=`` entries).
    A missing, malformed, expired or wrong signature, or an unknown ``shop_id``: 401
    ``invalid_signature``, and nothing is stored. A body over the size limit: 413.

    **Answer** (200, once the event is durable): ``status`` ``applied``, ``deferred`` (an
    update or cancel whose order is not known yet: applied when its ``order.created``
    arrives; a cancel that came first makes the order be created cancelled), or ``ignored``
    (authentic but without effect, reason in ``note``). The same event ``id`` again: the
    first outcome with ``duplicate: true``, nothing changes (ids are kept at least 7 days).
    ``pin``: the delivery PIN of an order this event created. An authentic event that is not
    valid (fields, circle rule): 422 and nothing is stored. Retry on 409, 413 excluded, 5xx.
    """
    return await take_event(source, body, signature, engine, group_commit, settings, now)


async def take_event(
    source: str,
    body: bytes,
    signature: str | None,
    engine: Engine,
    group_commit: GroupCommit,
    settings: Settings,
    now: datetime,
) -> InboundEventAck:
    """``receive_event`` once its parameters are read (also the fast path's, ``api.fast``)."""
    try:
        timestamp, signatures = parse_signature_header(signature)
        check_timestamp(timestamp, now.timestamp(), settings.webhook_tolerance_s)
    except SignatureError as error:
        raise unauthorized(str(error)) from None
    payload = parse_json(body)
    shop_id = payload.get("shop_id") if isinstance(payload, dict) else None

    # Signature and body checked before the write: the group writer, which every write of the
    # process waits for, only stores the event.
    shop = await authentic_shop(
        engine, shop_id, now, lambda keys: matches(signatures, keys, timestamp, body)
    )
    event = validate_event(payload)

    def take(session: Session) -> InboundEventAck:
        return process_event(session, shop, source, event, now)

    return await _write_processed(group_commit, take)


def _clean(text_: str | None) -> str:
    """Address text the order accepts: control characters become spaces."""
    return "".join(
        " " if ord(char) < 32 or ord(char) == 127 else char for char in text_ or ""
    ).strip()


def shopify_event(payload: Any, webhook_id: str, shop: Shop, now_s: int) -> InboundOrderEvent:
    """Our ``order.created`` event for a Shopify order payload; 422 when it cannot be one."""
    try:
        order = ShopifyOrder.model_validate(payload)
    except ValidationError as error:
        code, message = describe_validation_errors(error.errors())
        raise AppError(422, code, message) from None
    where = order.shipping_address
    if where is None or where.latitude is None or where.longitude is None:
        raise AppError(
            422,
            "missing_coordinates",
            "shipping_address.latitude and longitude are required to route the order",
        )
    parts = [_clean(part) for part in (where.address1, where.address2, where.city, where.zip)]
    address = ", ".join(part for part in parts if part)[:ADDRESS_CHARS]
    items = sum(max(0, item.quantity) for item in order.line_items)
    size_bags = min(MAX_BAGS, max(1, math.ceil(items / ITEMS_PER_BAG)))
    try:
        check_text(address)
        data = InboundOrderData(
            external_id=str(order.id),
            dropoff_lat=where.latitude,
            dropoff_lon=where.longitude,
            address=address,
            size_bags=size_bags,
        )
        return InboundOrderEvent(
            id=webhook_id, type="order.created", created=now_s, shop_id=shop.id, data=data
        )
    except (ValidationError, ValueError) as error:
        message = str(error).splitlines()[0] if str(error) else "invalid order"
        raise AppError(422, "validation_error", f"Shopify order: {message}") from None
