"""Helpers of the API tests: request bodies, a fake clock, shop handles and error checks."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, text
from sqlmodel import Session

from api.db import writer
from api.dispatch import dispatch_shop
from api.engine import ShopPlan
from api.models import Shop

ADMIN_TOKEN = "test-admin-token"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}

# Wanrun 24h, Lianyungang (DESIGN.md's scenario example) and a drop-off about 8 minutes' walk away.
SHOP_LAT, SHOP_LON = 34.5965, 119.2215
INSIDE_LAT, INSIDE_LON = 34.6001, 119.2250
# About 2.6 km north: a 43-minute walk by DESIGN's rule.
OUTSIDE_LAT, OUTSIDE_LON = 34.6200, 119.2215
START = datetime(2026, 11, 29, 9, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
# The dispatch tick of the tests (the default of ``Settings.tick_s``).
TICK_S = 5


@dataclass
class FakeClock:
    """A clock that moves only when told to."""

    now: datetime = START

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class ShopHandle:
    """A shop created through the API, with its first key."""

    id: str
    key: str
    body: dict[str, Any]
    headers: dict[str, str] = field(init=False)

    def __post_init__(self) -> None:
        self.headers = {"Authorization": f"Bearer {self.key}"}


def shop_body(**overrides: Any) -> dict[str, Any]:
    return {"name": "Wanrun 24h", "lat": SHOP_LAT, "lon": SHOP_LON, **overrides}


def order_body(**overrides: Any) -> dict[str, Any]:
    return {
        "source": "pos",
        "external_id": "A-1001",
        "dropoff_lat": INSIDE_LAT,
        "dropoff_lon": INSIDE_LON,
        "address": "3-2-501 Haitang Road",
        "size_bags": 2,
        **overrides,
    }


def rider_body(**overrides: Any) -> dict[str, Any]:
    return {"name": "Li Wei", "mode": "ebike", "capacity_bags": 6, **overrides}


def assert_error(response: Any, status_code: int, code: str | None = None) -> dict[str, Any]:
    """The response is an error with exactly ``{"code", "message"}`` (and the given code)."""
    assert response.status_code == status_code, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == {"code", "message"}, body
    assert isinstance(body["code"], str) and body["code"]
    assert isinstance(body["message"], str) and body["message"]
    if code is not None:
        assert body["code"] == code, body
    return body


def count_rows(engine: Engine, table: str, where: str = "", **params: Any) -> int:
    with engine.connect() as connection:
        sql = f"SELECT COUNT(*) FROM {table}" + (f" WHERE {where}" if where else "")
        return int(connection.execute(text(sql), params).scalar_one())


def run_dispatch(engine: Engine, shop_id: str, now: datetime, tick_s: int = TICK_S) -> ShopPlan:
    """One dispatch decision for the shop at ``now``, in a write transaction of its own."""
    with Session(writer(engine), expire_on_commit=False) as session:
        shop = session.get(Shop, uuid.UUID(shop_id))
        assert shop is not None
        return dispatch_shop(session, shop, now, tick_s=tick_s)


def add_webhook_secret(client: Any, shop: ShopHandle, secret: str | None = None) -> str:
    """A new inbound webhook secret of ``shop`` (the given one, or made by the service)."""
    body = {"secret": secret} if secret is not None else None
    response = client.post(f"/v1/shops/{shop.id}/webhook-secrets", json=body, headers=shop.headers)
    assert response.status_code == 201, response.text
    made: str = response.json()["secret"]
    return made


def inbound_event(
    shop_id: str,
    event_type: str = "order.created",
    event_id: str = "evt_1",
    created: int | None = None,
    **data: Any,
) -> dict[str, Any]:
    """An inbound event of our format; ``data`` defaults to ``order_body``'s order."""
    if event_type == "order.cancelled":
        payload: dict[str, Any] = {"external_id": "A-1001", **data}
    else:
        payload = {key: value for key, value in order_body(**data).items() if key != "source"}
    return {
        "id": event_id,
        "type": event_type,
        "created": int(START.timestamp()) if created is None else created,
        "shop_id": shop_id,
        "data": payload,
    }


def post_signed(
    client: Any,
    event: Any,
    secret: str | None,
    *,
    source: str = "meituan",
    at: datetime = START,
    raw: bytes | None = None,
) -> Any:
    """POST ``event`` (or the bytes ``raw``) to ``/v1/webhooks/{source}`` signed with ``secret``
    at ``at`` (no signature header when ``secret`` is None)."""
    import json

    from api.signing import signature_header

    body = raw if raw is not None else json.dumps(event).encode()
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers["Quarterhour-Signature"] = signature_header([secret], int(at.timestamp()), body)
    return client.post(f"/v1/webhooks/{source}", content=body, headers=headers)
