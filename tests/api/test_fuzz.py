"""Property-based fuzzing of every operation of the OpenAPI document with schemathesis, in
process (ASGI), with valid credentials of a seeded shop and the admin token.

Every answer must be a non-5xx response that conforms to the document (status code, content
type, body schema); every error body is exactly ``{"code", "message"}``. Half of the
generated path ids (chosen by a hash of the generated value, so the run is reproducible) are
replaced by the ids of the seeded shop, rider, orders, trip and key, so that the operations
reach their real work and not only their 404s.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from pydantic import SecretStr
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from starlette.types import Receive, Scope, Send

from api.config import Settings
from api.main import create_app
from api.signing import shopify_hmac, signature_header
from tests.api.conftest import BACKENDS, create_shop, open_database
from tests.api.factories import (
    ADMIN_TOKEN,
    INSIDE_LAT,
    INSIDE_LON,
    START,
    FakeClock,
    order_body,
    rider_body,
    run_dispatch,
)

# Examples per operation and generation mode (positive and negative): about 20 operations.
MAX_EXAMPLES = 30
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


class CurrentApp:
    """The ASGI app schemathesis calls: it forwards each request to the app of the backend
    under test (``app``). Lifespan events are answered here; each backend's app runs its own
    lifespan in the ``seeded`` fixture."""

    def __init__(self, app: FastAPI | None = None) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        assert self.app is not None, "the seeded fixture sets the app under test"
        await self.app(scope, receive, send)


def fuzz_settings(database_url: str) -> Settings:
    return Settings(
        database_url=database_url,
        admin_token=SecretStr(ADMIN_TOKEN),
        dispatch_enabled=False,
        webhook_delivery_enabled=False,
        webhook_allow_private_urls=True,  # the seeded endpoint is on loopback
    )


# The OpenAPI document is the same on every backend: read it from an app that never connects.
CURRENT = CurrentApp(create_app(fuzz_settings("sqlite://")))
schema = schemathesis.openapi.from_asgi("/openapi.json", CURRENT)
schema.config.generation.update(max_examples=MAX_EXAMPLES, deterministic=True)


@dataclass
class Seeded:
    """The ids of the rows seeded in the app under test, and the shop's key."""

    shop_key: str
    ids: dict[str, list[str]]
    # The shop's inbound webhook secret: about half of the webhook bodies are signed with it.
    webhook_secret: str = ""


@pytest.fixture(scope="module", params=BACKENDS)
def seeded(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Seeded]:
    """An app on its own database with a shop, a second key, riders, orders and a trip."""
    directory: Path = tmp_path_factory.mktemp("fuzz")
    for database_url in open_database(request, directory):
        clock = FakeClock()
        app = create_app(fuzz_settings(database_url), clock=clock)
        with TestClient(app) as client:
            shop = create_shop(client)
            headers = shop.headers
            second_key = client.post(f"/v1/shops/{shop.id}/keys", headers=headers).json()["id"]
            riders = [
                client.post("/v1/riders", json=rider_body(name=name), headers=headers).json()["id"]
                for name in ("Li Wei", "Zhang Min")
            ]
            client.post(f"/v1/riders/{riders[0]}/duty", json={"on_duty": True}, headers=headers)
            orders = [
                client.post(
                    "/v1/orders", json=order_body(external_id=f"F-{n}"), headers=headers
                ).json()["id"]
                for n in range(3)
            ]
            # One trip, picked up (its orders can be delivered or fail), and a pending order.
            plan = run_dispatch(app.state.engine, shop.id, clock.now)
            trips = [
                client.get(f"/v1/riders/{riders[0]}/trip", headers=headers).json()["id"]
                for _ in plan.trips[:1]
            ]
            for trip_id in trips:
                client.post(f"/v1/trips/{trip_id}/pickup", headers=headers)
            # A webhook secret, and an endpoint with one (never attempted) delivery.
            hooks = f"/v1/shops/{shop.id}/webhook-secrets"
            secret = client.post(hooks, headers=headers).json()
            endpoint = client.post(
                "/v1/webhook-endpoints",
                json={"url": "http://127.0.0.1:9/hook", "event_types": ["order.accepted"]},
                headers=headers,
            ).json()["id"]
            pending = client.post("/v1/orders", json=order_body(external_id="F-9"), headers=headers)
            orders.append(pending.json()["id"])
            delivery = client.get(
                f"/v1/webhook-endpoints/{endpoint}/deliveries", headers=headers
            ).json()["data"][0]["id"]
            ids = {
                "shop_id": [shop.id],
                "key_id": [second_key],
                "rider_id": riders,
                "order_id": orders,
                "trip_id": trips,
                "secret_id": [secret["id"]],
                "endpoint_id": [endpoint],
                "delivery_id": [delivery],
                "source": ["pos"],
            }
            CURRENT.app = app
            try:
                yield Seeded(shop_key=shop.key, ids=ids, webhook_secret=secret["secret"])
            finally:
                CURRENT.app = None


def use_seeded_ids(case: Any, seeded: Seeded) -> None:
    """Swap about half of the generated path ids for seeded ones (by a hash of the value)."""
    for name, value in list((case.path_parameters or {}).items()):
        known = seeded.ids.get(name)
        if not known:
            continue
        digest = zlib.crc32(repr(value).encode())
        if digest % 2 == 0:
            case.path_parameters[name] = known[digest // 2 % len(known)]


def move_drop_off_inside(case: Any) -> None:
    """Put about half of the generated drop-offs inside the seeded shop's circle, so that order
    intake and quotes get past the circle check."""
    body = case.body
    if not (isinstance(body, dict) and {"dropoff_lat", "dropoff_lon"} <= set(body)):
        return
    digest = zlib.crc32(repr(sorted(body.items(), key=str)).encode())
    if digest % 2 == 0:
        body["dropoff_lat"] = INSIDE_LAT + (digest % 1000) * 1e-6
        body["dropoff_lon"] = INSIDE_LON - (digest // 1000 % 1000) * 1e-6


def sign_webhook(case: Any, seeded: Seeded) -> None:
    """For about half of the inbound webhook bodies (JSON objects): name the seeded shop, move
    a drop-off inside its circle, and sign the body as sent, so that they get past the 401."""
    body = case.body
    webhook = case.method.upper() == "POST" and case.path.startswith("/v1/webhooks/")
    if not webhook or not isinstance(body, dict):
        return
    digest = zlib.crc32(repr(sorted(body.items(), key=str)).encode())
    if digest % 2:
        return
    headers = dict(case.headers or {})
    if case.path == "/v1/webhooks/shopify":
        case.query = {**(case.query or {}), "shop_id": seeded.ids["shop_id"][0]}
        raw = json.dumps(body).encode()
        headers["X-Shopify-Hmac-Sha256"] = shopify_hmac(seeded.webhook_secret, raw)
        headers.setdefault("X-Shopify-Webhook-Id", f"w-{digest}")
    else:
        body["shop_id"] = seeded.ids["shop_id"][0]
        data = body.get("data")
        if isinstance(data, dict) and {"dropoff_lat", "dropoff_lon"} <= set(data):
            data["dropoff_lat"] = INSIDE_LAT + (digest % 1000) * 1e-6
            data["dropoff_lon"] = INSIDE_LON
        raw = json.dumps(body).encode()
        signed_at = int(START.timestamp())
        headers["Quarterhour-Signature"] = signature_header([seeded.webhook_secret], signed_at, raw)
    case.body = raw
    case.headers = headers


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_operation_never_fails(case: Any, seeded: Seeded) -> None:
    """No generated request, valid or not, gets a 5xx or an answer the document does not
    describe, and every error body is exactly {"code", "message"}."""
    use_seeded_ids(case, seeded)
    move_drop_off_inside(case)
    sign_webhook(case, seeded)
    admin = case.method.upper() == "POST" and case.path == "/v1/shops"
    token = ADMIN_TOKEN if admin else seeded.shop_key
    case.headers = {**(case.headers or {}), "Authorization": f"Bearer {token}"}
    response = case.call()
    case.validate_response(response, checks=CHECKS)
    if response.status_code >= 400:
        body = response.json()
        assert isinstance(body, dict) and set(body) == {"code", "message"}, body
