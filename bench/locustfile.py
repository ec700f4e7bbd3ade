"""Locust users of the service: POS systems, delivery platforms and riders (``make load``).

``bench/load.py`` starts the server, creates the shops, keys and riders over HTTP and writes the
run's setup to the JSON file named by ``QUARTERHOUR_LOAD_SETUP`` (see ``LoadSetup`` there); this
file reads it at import. Every answer is checked on its body, not only its status code, and every
order the service acknowledged (201, and the replays of an ``Idempotency-Key``) is written to
``acked_path`` when locust quits, for ``bench/load.py`` to look up in the database.

- ``PosUser``: a shop's till. Places orders (``POST /v1/orders`` with an ``Idempotency-Key``),
  now and then replays one with the same key (same order, ``Idempotent-Replayed: true``, no
  PIN) and polls the status of an order it placed.
- ``RiderUser``: one rider of the setup each. Goes on duty, polls its trip, picks it up at the
  shop, reports its position, delivers every stop, reports its position again.
- ``PlatformUser``: a delivery platform posting signed webhook events (``POST
  /v1/webhooks/{source}``), some sent twice (same event id) and some cancels before their
  creates. Only when the setup enables it (``platform``).

Request names group URLs (``name=``). The ``quitting`` listener fails the run (exit code 1) on
any failed request or when the p99 of all requests is over ``p99_budget_ms``.
"""

from __future__ import annotations

import gc
import hashlib
import hmac
import itertools
import json
import os
import random
import re
import time
import uuid
from collections import deque
from pathlib import Path
from typing import Any

from locust import FastHttpUser, between, constant, constant_throughput, events, task
from locust.env import Environment
from locust.exception import StopUser

SETUP: dict[str, Any] = json.loads(
    Path(os.environ.get("QUARTERHOUR_LOAD_SETUP", "bench/load-setup.json")).read_text()
)
SHOPS: list[dict[str, Any]] = SETUP["shops"]
# Drop-offs within this many degrees of the shop, in latitude and in longitude (about 450 m and
# 370 m here: inside every shop's 15-minute walking circle).
DROPOFF_SPREAD_DEG = 0.004
PIN_RE = re.compile(r"^[0-9]{4}$")
ORDER_STATUSES = frozenset({"pending", "assigned", "picked_up", "delivered", "cancelled"})

# Every order id the service acknowledged, and how many times (201 and replays).
ACKED: dict[str, int] = {}
_shop_turn = itertools.cycle(range(len(SHOPS)))
_riders = iter([(shop, rider_id) for shop in SHOPS for rider_id in shop["riders"]])
_user_numbers = itertools.count(1)


class BodyError(Exception):
    """A 2xx answer whose body is not what the request should have produced."""


def expect(condition: bool, what: str) -> None:
    if not condition:
        raise BodyError(what)


def auth(shop: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {shop['key']}"}


def order_body(shop: dict[str, Any], source: str, external_id: str) -> dict[str, Any]:
    return {
        "source": source,
        "external_id": external_id,
        "dropoff_lat": round(shop["lat"] + random.uniform(-1, 1) * DROPOFF_SPREAD_DEG, 6),
        "dropoff_lon": round(shop["lon"] + random.uniform(-1, 1) * DROPOFF_SPREAD_DEG, 6),
        "address": f"Building {random.randint(1, 40)}, unit {random.randint(1, 6)}",
        "size_bags": random.choice((1, 1, 2)),
    }


def check_order(body: Any, shop: dict[str, Any], sent: dict[str, Any]) -> str:
    """The order id of a reply that is the order ``sent`` of ``shop``."""
    expect(isinstance(body, dict), f"not an object: {body!r}"[:200])
    order_id = str(body.get("id"))
    try:
        uuid.UUID(order_id)
    except ValueError:
        raise BodyError(f"id is not a UUID: {order_id!r}") from None
    if SETUP["target"] == "service":  # the bare app knows no shops
        expect(body.get("shop_id") == shop["id"], f"shop_id {body.get('shop_id')!r}")
    expect(body.get("external_id") == sent["external_id"], "external_id differs")
    expect(body.get("source") == sent["source"], "source differs")
    expect(body.get("status") in ORDER_STATUSES, f"status {body.get('status')!r}")
    expect(isinstance(body.get("promised_at"), str), "no promised_at")
    return order_id


class PosUser(FastHttpUser):
    """A shop's point-of-sale system: orders with idempotency keys, replays and status polls."""

    fixed_count = int(SETUP.get("pos_users", 1))
    _rate = float(SETUP.get("pos_iterations_per_s", 0.0))
    wait_time = constant_throughput(_rate) if _rate > 0 else constant(0)

    def on_start(self) -> None:
        self.number = next(_user_numbers)
        self.seq = 0
        # (shop, key, body, order id) of recent orders, for replays and polls.
        self.recent: deque[tuple[dict[str, Any], str, dict[str, Any], str]] = deque(maxlen=50)

    @task(int(SETUP.get("pos_weights", {}).get("place", 1)))
    def place_order(self) -> None:
        shop = SHOPS[next(_shop_turn)]
        self.seq += 1
        body = order_body(shop, "pos", f"{SETUP['run_tag']}-{self.number}-{self.seq}")
        key = str(uuid.uuid4())
        with self.client.post(
            "/v1/orders",
            json=body,
            headers={**auth(shop), "Idempotency-Key": key},
            name="POST /v1/orders",
            catch_response=True,
        ) as response:
            if response.status_code != 201:
                response.failure(f"HTTP {response.status_code}: {response.text[:200]}")
                return
            try:
                answer = response.json()
                order_id = check_order(answer, shop, body)
                expect(answer.get("status") == "pending", f"status {answer.get('status')!r}")
                expect(PIN_RE.match(str(answer.get("pin"))) is not None, "no 4-digit pin")
            except (BodyError, ValueError) as error:
                response.failure(f"body: {error}")
                return
            if SETUP["target"] == "service":
                ACKED[order_id] = ACKED.get(order_id, 0) + 1
            self.recent.append((shop, key, body, order_id))

    @task(int(SETUP.get("pos_weights", {}).get("replay", 0)))
    def replay_order(self) -> None:
        """The till retries a request whose answer it lost: same key, same body."""
        if not self.recent:
            return
        shop, key, body, order_id = random.choice(self.recent)
        with self.client.post(
            "/v1/orders",
            json=body,
            headers={**auth(shop), "Idempotency-Key": key},
            name="POST /v1/orders [replay]",
            catch_response=True,
        ) as response:
            if response.status_code != 201:
                response.failure(f"HTTP {response.status_code}: {response.text[:200]}")
                return
            try:
                answer = response.json()
                expect(check_order(answer, shop, body) == order_id, "another order id")
                expect(answer.get("pin") is None, "a replay shows the PIN")
                replayed = response.headers.get("Idempotent-Replayed")
                expect(replayed == "true", f"Idempotent-Replayed: {replayed!r}")
            except (BodyError, ValueError) as error:
                response.failure(f"body: {error}")
                return
            ACKED[order_id] = ACKED.get(order_id, 0) + 1

    @task(int(SETUP.get("pos_weights", {}).get("poll", 0)))
    def poll_status(self) -> None:
        if not self.recent:
            return
        shop, _key, body, order_id = random.choice(self.recent)
        with self.client.get(
            f"/v1/orders/{order_id}",
            headers=auth(shop),
            name="GET /v1/orders/{id}",
            catch_response=True,
        ) as response:
            if response.status_code != 200:
                response.failure(f"HTTP {response.status_code}: {response.text[:200]}")
                return
            try:
                expect(check_order(response.json(), shop, body) == order_id, "another order")
            except (BodyError, ValueError) as error:
                response.failure(f"body: {error}")


class RiderUser(FastHttpUser):
    """One rider: on duty, polls its trip, picks it up, delivers each stop, reports positions."""

    fixed_count = sum(len(shop["riders"]) for shop in SHOPS) if SETUP.get("riders") else 0
    _poll_s = float(SETUP.get("rider_poll_s", 1.0))
    wait_time = between(0.5 * _poll_s, 1.5 * _poll_s)

    def on_start(self) -> None:
        try:
            self.shop, self.rider_id = next(_riders)
        except StopIteration:
            raise StopUser() from None
        answer = self._post(f"/v1/riders/{self.rider_id}/duty", {"on_duty": True}, "duty")
        if answer is not None and answer.get("on_duty") is not True:
            self.environment.events.request.fire(
                request_type="CHECK",
                name="rider on duty",
                response_time=0,
                response_length=0,
                exception=BodyError("still off duty"),
            )

    def _post(self, path: str, body: Any, what: str) -> Any:
        """The JSON answer of a 200, or ``None`` (the request is marked failed)."""
        name = f"POST /v1/riders/{{id}}/{what}" if what in ("duty", "location") else what
        with self.client.post(
            path, json=body, headers=auth(self.shop), name=name, catch_response=True
        ) as response:
            if response.status_code != 200:
                response.failure(f"HTTP {response.status_code}: {response.text[:200]}")
                return None
            try:
                answer = response.json()
                expect(isinstance(answer, dict), "not an object")
            except (BodyError, ValueError) as error:
                response.failure(f"body: {error}")
                return None
            return answer

    def _ping(self, lat: float, lon: float) -> None:
        answer = self._post(
            f"/v1/riders/{self.rider_id}/location", {"lat": lat, "lon": lon}, "location"
        )
        if answer is not None and (answer.get("lat"), answer.get("lon")) != (lat, lon):
            self.environment.events.request.fire(
                request_type="CHECK",
                name="rider position stored",
                response_time=0,
                response_length=0,
                exception=BodyError(f"position {answer.get('lat')}, {answer.get('lon')}"),
            )

    @task
    def follow_trip(self) -> None:
        with self.client.get(
            f"/v1/riders/{self.rider_id}/trip",
            headers=auth(self.shop),
            name="GET /v1/riders/{id}/trip",
            catch_response=True,
        ) as response:
            try:
                answer = response.json()
            except ValueError:
                response.failure(f"HTTP {response.status_code}: not JSON")
                return
            if response.status_code == 404 and answer.get("code") == "no_trip":
                response.success()
                return
            if response.status_code != 200:
                response.failure(f"HTTP {response.status_code}: {response.text[:200]}")
                return
            try:
                expect(answer.get("rider_id") == self.rider_id, "another rider's trip")
                expect(answer.get("shop", {}).get("id") == self.shop["id"], "another shop")
                expect(answer.get("status") in ("committed", "picked_up"), "trip not active")
                expect(bool(answer.get("stops")), "a trip without stops")
            except BodyError as error:
                response.failure(f"body: {error}")
                return
        trip = answer
        self._ping(self.shop["lat"], self.shop["lon"])  # at the shop
        picked = self._post(f"/v1/trips/{trip['id']}/pickup", None, "POST /v1/trips/{id}/pickup")
        if picked is None:
            return
        if picked.get("status") != "picked_up" or picked.get("id") != trip["id"]:
            self._fail_check("trip picked up", f"trip status {picked.get('status')!r}")
            return
        last = None
        for stop in sorted(picked["stops"], key=lambda stop: stop["seq"]):
            if stop["status"] != "picked_up":  # cancelled before the pickup
                continue
            delivered = self._post(
                f"/v1/orders/{stop['order_id']}/deliver", {}, "POST /v1/orders/{id}/deliver"
            )
            if delivered is not None and (
                delivered.get("status") != "delivered" or delivered.get("id") != stop["order_id"]
            ):
                self._fail_check("order delivered", f"status {delivered.get('status')!r}")
            last = stop
        if last is not None:
            self._ping(last["dropoff_lat"], last["dropoff_lon"])

    def _fail_check(self, name: str, message: str) -> None:
        self.environment.events.request.fire(
            request_type="CHECK",
            name=name,
            response_time=0,
            response_length=0,
            exception=BodyError(message),
        )


def sign(secret: str, raw_body: bytes, at: int) -> str:
    """``Quarterhour-Signature``: ``t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">``."""
    mac = hmac.new(secret.encode(), f"{at}.".encode() + raw_body, hashlib.sha256).hexdigest()
    return f"t={at},v1={mac}"


class PlatformUser(FastHttpUser):
    """A delivery platform posting signed order events (``POST /v1/webhooks/{source}``, format
    of ``api/routes/webhooks.py``): creates, some sent twice with the same event id, some
    cancels sent before the create they cancel, and a few cancels after it."""

    fixed_count = int(SETUP.get("platform_users", 0)) if SETUP.get("platform") else 0
    _rate = float(SETUP.get("platform_iterations_per_s", 1.0))
    wait_time = constant_throughput(_rate)

    def on_start(self) -> None:
        self.number = next(_user_numbers)
        self.seq = 0
        self.source = str(SETUP.get("platform", {}).get("source", "meituan"))

    def _send(self, shop: dict[str, Any], event: dict[str, Any], name: str) -> Any:
        """The acknowledgement of ``event`` (checked against it), or ``None`` (failed)."""
        raw = json.dumps(event, separators=(",", ":")).encode()
        headers = {
            "Content-Type": "application/json",
            "Quarterhour-Signature": sign(shop["webhook_secret"], raw, int(time.time())),
        }
        with self.client.post(
            f"/v1/webhooks/{self.source}",
            data=raw,
            headers=headers,
            name=name,
            catch_response=True,
        ) as response:
            if response.status_code != 200:
                response.failure(f"HTTP {response.status_code}: {response.text[:200]}")
                return None
            try:
                ack = response.json()
                expect(ack.get("event_id") == event["id"], "another event id")
                expect(ack.get("type") == event["type"], "another event type")
                order_id = ack.get("order_id")
                if order_id is not None:
                    uuid.UUID(str(order_id))
                    ACKED[order_id] = ACKED.get(order_id, 0) + 1
            except (BodyError, ValueError, AttributeError) as error:
                response.failure(f"body: {error}")
                return None
            return ack

    def _event(self, shop: dict[str, Any], kind: str, data: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": f"evt_{uuid.uuid4().hex}",
            "type": kind,
            "created": int(time.time()),
            "shop_id": shop["id"],
            "data": data,
        }

    def _check(self, ack: Any, name: str, statuses: tuple[str, ...], duplicate: bool) -> Any:
        if ack is None:
            return None
        if ack.get("status") not in statuses or ack.get("duplicate") is not duplicate:
            self._fail(name, f"status {ack.get('status')!r}, duplicate {ack.get('duplicate')!r}")
            return None
        return ack

    def _fail(self, name: str, message: str) -> None:
        self.environment.events.request.fire(
            request_type="CHECK",
            name=name,
            response_time=0,
            response_length=0,
            exception=BodyError(message),
        )

    @task
    def order_events(self) -> None:
        shop = random.choice(SHOPS)
        self.seq += 1
        external_id = f"{SETUP['run_tag']}-P{self.number}-{self.seq}"
        order = order_body(shop, self.source, external_id)
        del order["source"]
        create = self._event(shop, "order.created", order)
        cancel = self._event(
            shop, "order.cancelled", {"external_id": external_id, "reason": "customer"}
        )
        name = "POST /v1/webhooks/{source}"
        roll = random.random()
        if roll < 0.1:  # reordered: the cancel overtakes its create
            self._check(
                self._send(shop, cancel, f"{name} [cancel first]"),
                "cancel first",
                ("deferred", "applied"),
                False,
            )
            ack = self._send(shop, create, f"{name} [create after cancel]")
            if ack is not None and ack.get("order_id"):
                self._expect_status(shop, ack["order_id"], "cancelled")
            return
        ack = self._check(self._send(shop, create, name), "created", ("applied",), False)
        if ack is None:
            return
        if PIN_RE.match(str(ack.get("pin"))) is None:
            self._fail("created", "no 4-digit pin")
        if roll < 0.3:  # delivered twice: the same event id again
            again = self._check(
                self._send(shop, create, f"{name} [duplicate]"), "duplicate", ("applied",), True
            )
            if again is not None and again.get("order_id") != ack.get("order_id"):
                self._fail("duplicate", "another order id")
        if roll > 0.9:
            self._check(
                self._send(shop, cancel, f"{name} [cancel]"),
                "cancel",
                ("applied", "ignored"),
                False,
            )

    def _expect_status(self, shop: dict[str, Any], order_id: str, status: str) -> None:
        with self.client.get(
            f"/v1/orders/{order_id}",
            headers=auth(shop),
            name="GET /v1/orders/{id} [platform]",
            catch_response=True,
        ) as response:
            if response.status_code != 200:
                response.failure(f"HTTP {response.status_code}: {response.text[:200]}")
            elif response.json().get("status") != status:
                response.failure(f"status {response.json().get('status')!r}, not {status}")


@events.test_start.add_listener
def _freeze_heap(environment: Environment, **_kwargs: Any) -> None:
    """Hide locust's start-up heap from its cyclic collector, as the service does its own: a
    full collection of the load generator stalls every response it is timing (three of 30-56
    ms in a 40 s mixed run, session 8), and those stalls are measurement error, not latency."""
    gc.collect()
    gc.freeze()


@events.quitting.add_listener
def _on_quitting(environment: Environment, **_kwargs: Any) -> None:
    """Write the acknowledged orders; fail the run on any failure or a p99 over budget."""
    acked_path = SETUP.get("acked_path")
    if acked_path:
        Path(acked_path).write_text(
            "".join(f"{order_id} {count}\n" for order_id, count in sorted(ACKED.items()))
        )
    stats = environment.stats.total
    budget_ms = float(SETUP.get("p99_budget_ms", 0))
    p99_ms = stats.get_response_time_percentile(0.99) or 0.0
    problems = []
    if stats.num_failures:
        problems.append(f"{stats.num_failures} failed requests")
    if budget_ms and p99_ms > budget_ms:
        problems.append(f"p99 {p99_ms:.0f} ms over the {budget_ms:.0f} ms budget")
    if problems:
        print(f"locust: FAIL: {'; '.join(problems)}")
        environment.process_exit_code = 1
    else:
        environment.process_exit_code = 0
