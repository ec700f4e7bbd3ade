"""Tests of outbound webhooks (api/outbox.py, api/routes/webhook_endpoints.py): the outbox is
written with each state change, deliveries reach a local receiver signed, failures are retried
with backoff for a day, replays resend, and a worker killed mid-way loses nothing."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session

from api.config import Settings
from api.db import writer
from api.models import Order, OrderCreate, Shop
from api.outbox import BACKOFF_BASE_S, BACKOFF_JITTER, deliver_due, set_eta
from api.routes.orders import place_order
from api.signing import check_timestamp, matches, parse_signature_header
from tests.api.conftest import Factory
from tests.api.factories import (
    START,
    FakeClock,
    ShopHandle,
    assert_error,
    count_rows,
    order_body,
    rider_body,
    run_dispatch,
)

ROOT = Path(__file__).resolve().parents[2]
ALL_TYPES = [
    "order.accepted",
    "order.assigned",
    "order.picked_up",
    "order.delivered",
    "order.cancelled",
    "order.failed",
    "order.eta_changed",
]


class Receiver:
    """A local HTTP server that records each request and answers with the next queued status
    (200 once the queue is empty); ``hold`` makes it wait before answering."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.statuses: list[int] = []
        self.hold = threading.Event()
        self.hold.set()
        self.arrived = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.requests.append((dict(self.headers.items()), body))
                receiver.arrived.set()
                receiver.hold.wait(timeout=30)
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:  # the client is gone (killed)
                    pass

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _, body in self.requests]

    def close(self) -> None:
        self.hold.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


def add_endpoint(
    client: TestClient, shop: ShopHandle, url: str, types: list[str] | None = None
) -> dict[str, Any]:
    response = client.post(
        "/v1/webhook-endpoints",
        json={"url": url, "event_types": types or ALL_TYPES},
        headers=shop.headers,
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def deliveries(client: TestClient, shop: ShopHandle, endpoint_id: str) -> list[dict[str, Any]]:
    listed = client.get(f"/v1/webhook-endpoints/{endpoint_id}/deliveries", headers=shop.headers)
    assert listed.status_code == 200, listed.text
    data: list[dict[str, Any]] = listed.json()["data"]
    return data


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def test_each_state_change_sends_a_signed_event(
    client: TestClient,
    shop: ShopHandle,
    engine: Engine,
    settings: Settings,
    clock: FakeClock,
    receiver: Receiver,
) -> None:
    """Placed, assigned, picked up and delivered: four events reach the receiver, each signed
    with the endpoint's secret, with distinct ids and the order's state at that change."""
    endpoint = add_endpoint(client, shop, receiver.url)
    rider = client.post("/v1/riders", json=rider_body(), headers=shop.headers).json()
    client.post(f"/v1/riders/{rider['id']}/duty", json={"on_duty": True}, headers=shop.headers)
    order = client.post("/v1/orders", json=order_body(), headers=shop.headers).json()
    run_dispatch(engine, shop.id, clock())
    trip = client.get(f"/v1/riders/{rider['id']}/trip", headers=shop.headers).json()
    client.post(f"/v1/trips/{trip['id']}/pickup", headers=shop.headers)
    client.post(
        f"/v1/orders/{order['id']}/deliver", json={"pin": order["pin"]}, headers=shop.headers
    )
    assert deliver_due(engine, clock(), settings) == 4
    events = receiver.events()
    assert [e["type"] for e in events] == [
        "order.accepted",
        "order.assigned",
        "order.picked_up",
        "order.delivered",
    ]
    assert [e["data"]["order"]["status"] for e in events] == [
        "pending",
        "assigned",
        "picked_up",
        "delivered",
    ]
    assert len({e["id"] for e in events}) == 4
    assert all(e["shop_id"] == shop.id and e["data"]["order"]["id"] == order["id"] for e in events)
    assert "pin" not in events[0]["data"]["order"]
    for headers, body in receiver.requests:
        timestamp, signatures = parse_signature_header(headers["Quarterhour-Signature"])
        check_timestamp(timestamp, clock().timestamp(), 300)
        assert matches(signatures, [endpoint["secret"]], timestamp, body)
        assert headers["Quarterhour-Event-Id"] == json.loads(body)["id"]
    logged = deliveries(client, shop, endpoint["id"])
    assert {d["status"] for d in logged} == {"delivered"}
    assert all(d["attempts"] == 1 and d["last_status_code"] == 200 for d in logged)
    assert deliver_due(engine, clock(), settings) == 0


def test_only_subscribed_types_of_live_endpoints_are_written(
    client: TestClient, shop: ShopHandle, engine: Engine, receiver: Receiver
) -> None:
    """An endpoint for order.cancelled gets no order.accepted; without any endpoint, or with a
    disabled one, nothing is written to the outbox."""
    client.post("/v1/orders", json=order_body(external_id="none"), headers=shop.headers)
    assert count_rows(engine, "outbox_events") == 0
    endpoint = add_endpoint(client, shop, receiver.url, ["order.cancelled"])
    order = client.post("/v1/orders", json=order_body(), headers=shop.headers).json()
    assert count_rows(engine, "outbox_events") == 0
    client.post(f"/v1/orders/{order['id']}/cancel", headers=shop.headers)
    assert count_rows(engine, "outbox_events", "type = 'order.cancelled'") == 1
    assert count_rows(engine, "webhook_deliveries") == 1
    client.delete(f"/v1/webhook-endpoints/{endpoint['id']}", headers=shop.headers)
    other = client.post("/v1/orders", json=order_body(external_id="x"), headers=shop.headers)
    client.post(f"/v1/orders/{other.json()['id']}/cancel", headers=shop.headers)
    assert count_rows(engine, "outbox_events") == 1


def test_the_outbox_commits_or_rolls_back_with_the_change(
    client: TestClient, shop: ShopHandle, engine: Engine, receiver: Receiver, clock: FakeClock
) -> None:
    """An order placed and rolled back leaves no outbox row; committed, it leaves one."""
    add_endpoint(client, shop, receiver.url)
    for commit in (False, True):
        with Session(writer(engine), expire_on_commit=False) as session:
            row = session.get(Shop, uuid.UUID(shop.id))
            assert row is not None
            place_order(session, row, OrderCreate.model_validate(order_body()), clock())
            assert count_rows(engine, "outbox_events") == 0  # not visible before the commit
            session.commit() if commit else session.rollback()
        assert count_rows(engine, "outbox_events") == int(commit)
        assert count_rows(engine, "orders") == int(commit)


def test_failures_are_retried_with_backoff_until_delivered(
    client: TestClient, shop: ShopHandle, engine: Engine, settings: Settings, receiver: Receiver
) -> None:
    """Two 500s then a 200: three attempts of the same event id, spaced by the jittered
    exponential backoff, each in the delivery log."""
    endpoint = add_endpoint(client, shop, receiver.url, ["order.accepted"])
    client.post("/v1/orders", json=order_body(), headers=shop.headers)
    receiver.statuses = [500, 503]
    now = START
    assert deliver_due(engine, now, settings) == 1
    (delivery,) = deliveries(client, shop, endpoint["id"])
    wait_s = (at(delivery["next_attempt_at"]) - now).total_seconds()
    assert BACKOFF_BASE_S * (1 - BACKOFF_JITTER) <= wait_s <= BACKOFF_BASE_S + 1
    assert deliver_due(engine, now + timedelta(seconds=wait_s - 1), settings) == 0
    now = at(delivery["next_attempt_at"])
    assert deliver_due(engine, now, settings) == 1
    (delivery,) = deliveries(client, shop, endpoint["id"])
    second_wait_s = (at(delivery["next_attempt_at"]) - now).total_seconds()
    assert 2 * BACKOFF_BASE_S * (1 - BACKOFF_JITTER) <= second_wait_s <= 2 * BACKOFF_BASE_S + 1
    assert deliver_due(engine, at(delivery["next_attempt_at"]), settings) == 1
    detail = client.get(
        f"/v1/webhook-endpoints/{endpoint['id']}/deliveries/{delivery['id']}",
        headers=shop.headers,
    ).json()
    assert detail["status"] == "delivered" and detail["next_attempt_at"] is None
    assert [a["status_code"] for a in detail["attempt_log"]] == [500, 503, 200]
    assert len({json.loads(body)["id"] for _, body in receiver.requests}) == 1


def test_a_failing_endpoint_is_retried_a_day_then_dead_and_replayable(
    client: TestClient, shop: ShopHandle, engine: Engine, settings: Settings, receiver: Receiver
) -> None:
    """A refusing endpoint is retried for at least 24 hours, then the delivery is dead; a
    replay sends the same event again and it is delivered."""
    endpoint = add_endpoint(client, shop, receiver.url, ["order.accepted"])
    client.post("/v1/orders", json=order_body(), headers=shop.headers)
    now = START
    for _ in range(100):
        receiver.statuses = [502]
        assert deliver_due(engine, now, settings, rng=random.Random(1)) == 1
        (delivery,) = deliveries(client, shop, endpoint["id"])
        if delivery["status"] == "dead":
            break
        now = at(delivery["next_attempt_at"])
    assert delivery["status"] == "dead"
    assert now - START >= timedelta(hours=24)
    assert now - START <= timedelta(hours=26)
    assert 10 <= delivery["attempts"] <= 40
    assert deliver_due(engine, now + timedelta(days=2), settings) == 0
    url = f"/v1/webhook-endpoints/{endpoint['id']}/deliveries/{delivery['id']}/replay"
    replayed = client.post(url, headers=shop.headers)
    assert replayed.status_code == 202, replayed.text
    assert replayed.json()["status"] == "pending"
    assert deliver_due(engine, START, settings) == 1
    (delivery,) = deliveries(client, shop, endpoint["id"])
    assert delivery["status"] == "delivered"
    assert len({json.loads(body)["id"] for _, body in receiver.requests}) == 1


def test_an_unreachable_endpoint_records_the_error(
    client: TestClient, shop: ShopHandle, engine: Engine, settings: Settings
) -> None:
    """A refused connection is a failed attempt with no status code and the error's text."""
    receiver = Receiver()
    url = receiver.url
    receiver.close()
    endpoint = add_endpoint(client, shop, url, ["order.accepted"])
    client.post("/v1/orders", json=order_body(), headers=shop.headers)
    assert deliver_due(engine, START, settings) == 1
    (delivery,) = deliveries(client, shop, endpoint["id"])
    assert delivery["status"] == "pending"
    assert delivery["last_status_code"] is None and delivery["last_error"]


WORKER = """
import sys
from datetime import datetime
from api.config import Settings
from api.db import create_db_engine
from api.outbox import deliver_due
url, now = sys.argv[1], datetime.fromisoformat(sys.argv[2])
settings = Settings(
    database_url=url,
    dispatch_enabled=False,
    webhook_delivery_enabled=False,
    webhook_allow_private_urls=True,
)
print("sent", deliver_due(create_db_engine(url), now, settings), flush=True)
"""


def test_a_worker_killed_mid_delivery_loses_nothing(
    client: TestClient,
    shop: ShopHandle,
    engine: Engine,
    settings: Settings,
    receiver: Receiver,
    database_url: str,
) -> None:
    """A worker process killed (SIGKILL) while its request is at the receiver records nothing;
    once its lease ends another worker sends the same event again and records it."""
    endpoint = add_endpoint(client, shop, receiver.url, ["order.accepted"])
    client.post("/v1/orders", json=order_body(), headers=shop.headers)
    receiver.hold.clear()
    worker = subprocess.Popen(
        [sys.executable, "-c", WORKER, database_url, START.isoformat()],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
    )
    try:
        assert receiver.arrived.wait(timeout=60), "the worker never sent the event"
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=30)
    receiver.hold.set()
    (delivery,) = deliveries(client, shop, endpoint["id"])
    assert (delivery["status"], delivery["attempts"]) == ("pending", 0)
    assert deliver_due(engine, START, settings) == 0  # still leased to the dead worker
    after_lease = START + timedelta(seconds=settings.webhook_lease_s)
    assert deliver_due(engine, after_lease, settings) == 1
    (delivery,) = deliveries(client, shop, endpoint["id"])
    assert (delivery["status"], delivery["attempts"]) == ("delivered", 1)
    ids = [json.loads(body)["id"] for _, body in receiver.requests]
    assert len(ids) == 2 and len(set(ids)) == 1


def test_concurrent_workers_send_each_event_once(
    client: TestClient, shop: ShopHandle, engine: Engine, settings: Settings, receiver: Receiver
) -> None:
    """Four workers draining one outbox at once: every event reaches the receiver exactly once
    (claims skip each other's rows)."""
    add_endpoint(client, shop, receiver.url, ["order.accepted"])
    for n in range(12):
        client.post("/v1/orders", json=order_body(external_id=f"C-{n}"), headers=shop.headers)
    sent: list[int] = []
    workers = [
        threading.Thread(target=lambda: sent.append(deliver_due(engine, START, settings)))
        for _ in range(4)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert sum(sent) == 12
    ids = [json.loads(body)["id"] for _, body in receiver.requests]
    assert len(ids) == 12 and len(set(ids)) == 12


def test_a_slow_endpoint_holds_up_only_its_own_deliveries(
    client: TestClient, make_shop: Factory, engine: Engine, settings: Settings
) -> None:
    """While one endpoint's receiver holds its request, another endpoint's events, queued
    after it, are all delivered; the held endpoint gets no second request meanwhile."""
    slow, fast = Receiver(), Receiver()
    try:
        slow_shop, fast_shop = make_shop(), make_shop(name="Fruit corner")
        add_endpoint(client, slow_shop, slow.url, ["order.accepted"])
        fast_endpoint = add_endpoint(client, fast_shop, fast.url, ["order.accepted"])
        for n in range(3):
            body = order_body(external_id=f"S-{n}")
            client.post("/v1/orders", json=body, headers=slow_shop.headers)
        for n in range(3):
            body = order_body(external_id=f"F-{n}")
            client.post("/v1/orders", json=body, headers=fast_shop.headers)
        slow.hold.clear()
        sent: list[int] = []
        worker = threading.Thread(target=lambda: sent.append(deliver_due(engine, START, settings)))
        worker.start()
        try:
            assert slow.arrived.wait(timeout=30), "the slow endpoint's first event never came"
            for _ in range(300):
                if len(fast.requests) == 3:
                    break
                threading.Event().wait(0.1)
            assert len(fast.requests) == 3 and len(slow.requests) == 1
            statuses = {d["status"] for d in deliveries(client, fast_shop, fast_endpoint["id"])}
            assert statuses == {"delivered"}
        finally:
            slow.hold.set()
            worker.join(timeout=60)
        assert sent == [6] and len(slow.requests) == 3
    finally:
        slow.close()
        fast.close()


def test_an_eta_move_over_the_threshold_is_announced(
    client: TestClient, shop: ShopHandle, engine: Engine, receiver: Receiver
) -> None:
    """set_eta announces order.eta_changed with the previous ETA only past 120 s of change."""
    add_endpoint(client, shop, receiver.url, ["order.eta_changed"])
    order = client.post("/v1/orders", json=order_body(), headers=shop.headers).json()
    eta = START + timedelta(minutes=20)
    with Session(writer(engine), expire_on_commit=False) as session:
        row = session.get(Order, uuid.UUID(order["id"]))
        assert row is not None
        set_eta(session, row, eta, START)
        set_eta(session, row, eta + timedelta(seconds=120), START)
        set_eta(session, row, eta + timedelta(seconds=300), START)
        session.commit()
    assert count_rows(engine, "outbox_events", "type = 'order.eta_changed'") == 1


def test_endpoints_validate_their_input(client: TestClient, shop: ShopHandle) -> None:
    """A URL that is not http(s), no event type, an unknown or repeated one: 422."""
    for body in (
        {"url": "ftp://example.com/hook", "event_types": ["order.accepted"]},
        {"url": "http://user:pw@example.com/hook", "event_types": ["order.accepted"]},
        {"url": "https://example.com/hook", "event_types": []},
        {"url": "https://example.com/hook", "event_types": ["order.exploded"]},
        {"url": "https://example.com/hook", "event_types": ["order.failed", "order.failed"]},
    ):
        assert_error(client.post("/v1/webhook-endpoints", json=body, headers=shop.headers), 422)
    made = add_endpoint(client, shop, "https://example.com/hook", ["order.failed"])
    assert made["secret"].startswith("whsec_")
    listed = client.get("/v1/webhook-endpoints", headers=shop.headers).json()
    assert listed["count"] == 1 and "secret" not in listed["data"][0]


def test_other_shops_endpoints_and_deliveries_are_404(
    client: TestClient, make_shop: Factory, receiver: Receiver
) -> None:
    """Shop B's key sees none of A's endpoints, deliveries or replays."""
    shop_a, shop_b = make_shop(), make_shop(name="Fruit corner")
    endpoint = add_endpoint(client, shop_a, receiver.url, ["order.accepted"])
    client.post("/v1/orders", json=order_body(), headers=shop_a.headers)
    (delivery,) = deliveries(client, shop_a, endpoint["id"])
    base = f"/v1/webhook-endpoints/{endpoint['id']}"
    for method, path in (
        ("GET", base),
        ("DELETE", base),
        ("GET", f"{base}/deliveries"),
        ("GET", f"{base}/deliveries/{delivery['id']}"),
        ("POST", f"{base}/deliveries/{delivery['id']}/replay"),
    ):
        assert_error(client.request(method, path, headers=shop_b.headers), 404, "not_found")
    assert client.get("/v1/webhook-endpoints", headers=shop_b.headers).json()["count"] == 0
    assert client.get(base, headers=shop_a.headers).json()["disabled_at"] is None


def test_a_late_pickup_announces_the_later_eta(
    client: TestClient, shop: ShopHandle, engine: Engine, clock: FakeClock, receiver: Receiver
) -> None:
    """A trip picked up 10 minutes after its planned departure moves the ETA back 10 minutes
    and sends order.eta_changed with the previous ETA; a punctual pickup sends none."""
    add_endpoint(client, shop, receiver.url, ["order.eta_changed"])
    rider = client.post("/v1/riders", json=rider_body(), headers=shop.headers).json()
    client.post(f"/v1/riders/{rider['id']}/duty", json={"on_duty": True}, headers=shop.headers)
    order = client.post("/v1/orders", json=order_body(), headers=shop.headers).json()
    run_dispatch(engine, shop.id, clock())
    trip = client.get(f"/v1/riders/{rider['id']}/trip", headers=shop.headers).json()
    planned = at(trip["stops"][0]["eta_at"])
    clock.now = at(trip["depart_at"]) + timedelta(minutes=10)
    client.post(f"/v1/trips/{trip['id']}/pickup", headers=shop.headers)
    moved = client.get(f"/v1/orders/{order['id']}", headers=shop.headers).json()
    assert at(moved["eta_at"]) == planned + timedelta(minutes=10)
    assert count_rows(engine, "outbox_events", "type = 'order.eta_changed'") == 1
