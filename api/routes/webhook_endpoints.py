"""The shop's outbound webhook endpoints, their delivery logs and replays (``api.outbox``)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query
from sqlmodel import Session, col, select

from api.deps import CurrentShopDep, NowDep, SessionDep, SettingsDep, fetch_page, get_owned
from api.errors import AppError, not_found
from api.models import (
    DeliveryStatus,
    OutboundEventType,
    WebhookAttempt,
    WebhookAttemptPublic,
    WebhookDeliveriesPublic,
    WebhookDelivery,
    WebhookDeliveryDetail,
    WebhookDeliveryPublic,
    WebhookEndpoint,
    WebhookEndpointCreate,
    WebhookEndpointCreated,
    WebhookEndpointPublic,
    WebhookEndpointsPublic,
)
from api.netguard import url_problem
from api.retry import RetryLostRaceRoute
from api.signing import generate_webhook_secret

router = APIRouter(prefix="/webhook-endpoints", tags=["webhooks"], route_class=RetryLostRaceRoute)


def endpoint_public(endpoint: WebhookEndpoint) -> WebhookEndpointPublic:
    return WebhookEndpointPublic.model_validate(
        endpoint,
        update={"event_types": [OutboundEventType(t) for t in endpoint.event_types.split()]},
    )


def delivery_public(delivery: WebhookDelivery) -> WebhookDeliveryPublic:
    pending = delivery.status == DeliveryStatus.pending
    return WebhookDeliveryPublic.model_validate(
        delivery, update={"next_attempt_at": delivery.next_attempt_at if pending else None}
    )


@router.post("", status_code=201)
def create_webhook_endpoint(
    endpoint_in: WebhookEndpointCreate,
    session: SessionDep,
    shop: CurrentShopDep,
    now: NowDep,
    settings: SettingsDep,
) -> WebhookEndpointCreated:
    """Send the shop's order events of ``event_types`` to ``url`` from now on.

    Each event is POSTed as JSON ``{"id": "evt_...", "type", "created": <unix s>, "shop_id",
    "data": {"order": <as GET /v1/orders/{id}>, "note", "previous_eta_at" (eta_changed)}}``
    with the headers ``Quarterhour-Signature: t=<unix s>,v1=<hex HMAC-SHA256 of
    "<t>.<raw body>">`` (keyed with ``secret``), ``Quarterhour-Event-Id`` and
    ``Quarterhour-Event-Type``. A 2xx answer delivers it; anything else is retried with
    exponential backoff (30 s doubling up to an hour, with jitter) for 24 hours, then the
    delivery is ``dead`` (a replay sends it again). Delivery is at least once: deduplicate on
    the event id. ``secret``, given or made (``whsec_...``), is shown only in this reply.
    Events go to public internet hosts only: a URL whose host is a loopback, private,
    link-local or reserved address (or ``localhost``) gets 422 ``url_not_public``, and a host
    name resolving only to such addresses fails each attempt; redirects are not followed.
    """
    problem = None if settings.webhook_allow_private_urls else url_problem(endpoint_in.url)
    if problem is not None:
        raise AppError(422, "url_not_public", f"url: {problem}; webhooks go to public hosts only")
    secret = endpoint_in.secret or generate_webhook_secret()
    endpoint = WebhookEndpoint(
        shop_id=shop.id,
        url=endpoint_in.url,
        event_types=" ".join(t.value for t in endpoint_in.event_types),
        secret=secret,
        created_at=now,
    )
    session.add(endpoint)
    session.commit()
    return WebhookEndpointCreated.model_validate(
        endpoint_public(endpoint), update={"secret": secret}
    )


@router.get("")
def list_webhook_endpoints(session: SessionDep, shop: CurrentShopDep) -> WebhookEndpointsPublic:
    """The shop's endpoints, oldest first, disabled ones included."""
    rows = session.exec(
        select(WebhookEndpoint)
        .where(WebhookEndpoint.shop_id == shop.id)
        .order_by(col(WebhookEndpoint.created_at), col(WebhookEndpoint.id))
    ).all()
    return WebhookEndpointsPublic(data=[endpoint_public(row) for row in rows], count=len(rows))


@router.get("/{endpoint_id}")
def read_webhook_endpoint(
    endpoint_id: uuid.UUID, session: SessionDep, shop: CurrentShopDep
) -> WebhookEndpointPublic:
    return endpoint_public(get_owned(session, WebhookEndpoint, shop, endpoint_id, "endpoint"))


@router.delete("/{endpoint_id}")
def disable_webhook_endpoint(
    endpoint_id: uuid.UUID, session: SessionDep, shop: CurrentShopDep, now: NowDep
) -> WebhookEndpointPublic:
    """Stop sending to the endpoint: no new events, pending deliveries are not attempted (its
    log stays readable). Disabling a disabled endpoint changes nothing."""
    endpoint = get_owned(session, WebhookEndpoint, shop, endpoint_id, "endpoint", lock=True)
    if endpoint.disabled_at is None:
        endpoint.disabled_at = now
        session.add(endpoint)
        session.commit()
    return endpoint_public(endpoint)


@router.get("/{endpoint_id}/deliveries")
def list_deliveries(
    endpoint_id: uuid.UUID,
    session: SessionDep,
    shop: CurrentShopDep,
    status: DeliveryStatus | None = None,
    skip: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> WebhookDeliveriesPublic:
    """The endpoint's delivery log, newest first: each event's state, attempts, last answer."""
    endpoint = get_owned(session, WebhookEndpoint, shop, endpoint_id, "endpoint")
    conditions = [col(WebhookDelivery.endpoint_id) == endpoint.id]
    if status is not None:
        conditions.append(col(WebhookDelivery.status) == status.value)
    rows, count = fetch_page(
        session,
        WebhookDelivery,
        conditions,
        (col(WebhookDelivery.created_at).desc(), col(WebhookDelivery.id)),
        skip=skip,
        limit=limit,
    )
    return WebhookDeliveriesPublic(data=[delivery_public(row) for row in rows], count=count)


def _owned_delivery(
    session: Session,
    shop: CurrentShopDep,
    endpoint_id: uuid.UUID,
    delivery_id: uuid.UUID,
    *,
    lock: bool = False,
) -> WebhookDelivery:
    endpoint = get_owned(session, WebhookEndpoint, shop, endpoint_id, "endpoint")
    delivery = session.get(WebhookDelivery, delivery_id, with_for_update=lock)
    if delivery is None or delivery.endpoint_id != endpoint.id:
        raise not_found("delivery")
    return delivery


def delivery_detail(session: Session, delivery: WebhookDelivery) -> WebhookDeliveryDetail:
    attempts = session.exec(
        select(WebhookAttempt)
        .where(WebhookAttempt.delivery_id == delivery.id)
        .order_by(col(WebhookAttempt.id))
    ).all()
    return WebhookDeliveryDetail.model_validate(
        delivery_public(delivery),
        update={"attempt_log": [WebhookAttemptPublic.model_validate(a) for a in attempts]},
    )


@router.get("/{endpoint_id}/deliveries/{delivery_id}")
def read_delivery(
    endpoint_id: uuid.UUID, delivery_id: uuid.UUID, session: SessionDep, shop: CurrentShopDep
) -> WebhookDeliveryDetail:
    """One delivery with every recorded attempt (status code, error, duration)."""
    return delivery_detail(session, _owned_delivery(session, shop, endpoint_id, delivery_id))


@router.post("/{endpoint_id}/deliveries/{delivery_id}/replay", status_code=202)
def replay_delivery(
    endpoint_id: uuid.UUID,
    delivery_id: uuid.UUID,
    session: SessionDep,
    shop: CurrentShopDep,
    now: NowDep,
) -> WebhookDeliveryDetail:
    """Queue the delivery to be sent again now, whatever its state (dead, delivered or
    pending), with the same event id and body, and a fresh 24-hour retry window. An attempt
    in flight when the replay comes is sent but not recorded."""
    delivery = _owned_delivery(session, shop, endpoint_id, delivery_id, lock=True)
    delivery.status = DeliveryStatus.pending.value
    delivery.queued_at = now
    delivery.next_attempt_at = now
    delivery.lease_token = None
    session.add(delivery)
    session.commit()
    return delivery_detail(session, delivery)
