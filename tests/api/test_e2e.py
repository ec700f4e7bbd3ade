"""End to end: ``quarterhour serve`` as a real uvicorn process on a SQLite file, driven over HTTP
(shops, riders, orders, the riders' trips), restarted midway."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from api.demo import Api
from tests.api.factories import INSIDE_LAT, INSIDE_LON, SHOP_LAT, SHOP_LON

ROOT = Path(__file__).resolve().parents[2]
ADMIN_TOKEN = "e2e-admin-token"
TICK_S = 1
START_TIMEOUT_S = 60.0
WAIT_TIMEOUT_S = 30.0


def free_port() -> int:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        port: int = listener.getsockname()[1]
        return port


class ServiceProcess:
    """The service in a subprocess of its own, on one SQLite file and one port."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.api = Api(f"http://127.0.0.1:{self.port}")
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        env = {
            **os.environ,
            "QUARTERHOUR_DATABASE_URL": f"sqlite:///{self.directory}/var/quarterhour.db",
            "QUARTERHOUR_ADMIN_TOKEN": ADMIN_TOKEN,
            "QUARTERHOUR_TICK_S": str(TICK_S),
            "QUARTERHOUR_DEMO_FEED": "0",
        }
        self.starts += 1
        log = (self.directory / f"server-{self.starts}.log").open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "router.cli", "serve", "--port", str(self.port)],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"the server exited: {self.output()}"
            try:
                if self.api.call("GET", "/healthz")[0] == 200:
                    return
            except OSError:  # refused while the server starts
                pass
            time.sleep(0.2)
        raise AssertionError(f"the server did not answer within {START_TIMEOUT_S} s")

    def output(self) -> str:
        return (self.directory / f"server-{self.starts}.log").read_text(errors="replace")

    def stop(self) -> None:
        """SIGTERM, and the server shuts down cleanly."""
        assert self.process is not None
        self.process.terminate()
        self.process.wait(timeout=30)
        assert self.process.returncode in (0, -signal.SIGTERM), self.output()
        assert "Application shutdown complete" in self.output()
        self.process = None

    def call(self, method: str, path: str, body: Any = None, *, token: str) -> Any:
        """The JSON body of a 2xx answer (anything else fails the test)."""
        status, answer = self.api.call(method, path, body, token=token)
        assert 200 <= status < 300, (method, path, status, answer)
        return answer


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    """One running service for the module (a test may restart it)."""
    server = ServiceProcess(tmp_path_factory.mktemp("e2e"))
    server.start()
    try:
        yield server
    finally:
        if server.process is not None:
            server.stop()


def create_shop(service: ServiceProcess, name: str) -> str:
    body = {"name": name, "lat": SHOP_LAT, "lon": SHOP_LON}
    created = service.call("POST", "/v1/shops", body, token=ADMIN_TOKEN)
    key: str = created["api_key"]["key"]
    return key


def add_riders(service: ServiceProcess, key: str, riders: list[tuple[str, str, int]]) -> list[str]:
    ids = []
    for name, mode, capacity in riders:
        body = {"name": name, "mode": mode, "capacity_bags": capacity}
        rider = service.call("POST", "/v1/riders", body, token=key)
        service.call("POST", f"/v1/riders/{rider['id']}/duty", {"on_duty": True}, token=key)
        ids.append(rider["id"])
    return ids


def place_order(service: ServiceProcess, key: str, number: int) -> dict[str, Any]:
    # Drop-offs on a small grid around a point about 8 minutes' walk from the shop.
    body = {
        "source": "pos",
        "external_id": f"E-{number:03d}",
        "dropoff_lat": INSIDE_LAT + 0.0007 * (number % 3),
        "dropoff_lon": INSIDE_LON - 0.0009 * (number % 4),
        "size_bags": 1 + number % 2,
    }
    order: dict[str, Any] = service.call("POST", "/v1/orders", body, token=key)
    return order


def orders_by_id(service: ServiceProcess, key: str) -> dict[str, dict[str, Any]]:
    page = service.call("GET", "/v1/orders?limit=500", token=key)
    return {order["id"]: order for order in page["data"]}


def rider_trips(service: ServiceProcess, key: str, rider_ids: list[str]) -> dict[str, Any]:
    """Each rider's active trip, or None."""
    trips = {}
    for rider_id in rider_ids:
        status, trip = service.api.call("GET", f"/v1/riders/{rider_id}/trip", token=key)
        assert status in (200, 404), trip
        trips[rider_id] = trip if status == 200 else None
    return trips


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_TIMEOUT_S
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def walk_trip(service: ServiceProcess, key: str, trip: dict[str, Any]) -> None:
    """The rider picks the trip up (if not yet) and delivers every stop, over HTTP."""
    if trip["status"] == "committed":
        service.call("POST", f"/v1/trips/{trip['id']}/pickup", token=key)
    for stop in trip["stops"]:
        delivered = service.call("POST", f"/v1/orders/{stop['order_id']}/deliver", token=key)
        assert delivered["status"] == "delivered"


def test_every_order_is_delivered_across_a_restart(service: ServiceProcess) -> None:
    """Orders posted over HTTP are all delivered by riders walking their trips, and a restart
    midway loses no accepted order and no committed (or picked-up) trip."""
    key = create_shop(service, "E2E corner store")
    riders = [("Li Wei", "ebike", 4), ("Zhang Min", "ebike", 4), ("Chen Jie", "walk", 3)]
    rider_ids = add_riders(service, key, riders)
    accepted = [place_order(service, key, number) for number in range(1, 11)]
    assert {order["status"] for order in accepted} == {"pending"}

    def some_trip_committed() -> bool:
        return any(rider_trips(service, key, rider_ids).values())

    wait_for(some_trip_committed, "a committed trip")
    first = next(trip for trip in rider_trips(service, key, rider_ids).values() if trip)
    service.call("POST", f"/v1/trips/{first['id']}/pickup", token=key)
    before_orders = orders_by_id(service, key)
    before_trips = rider_trips(service, key, rider_ids)

    service.stop()
    service.start()

    after_orders = orders_by_id(service, key)
    assert set(after_orders) == {order["id"] for order in accepted}
    for order_id, order in before_orders.items():
        if order["status"] != "pending":  # dispatch may have committed more since
            after = after_orders[order_id]
            assert (after["status"], after["trip_id"]) == (order["status"], order["trip_id"])
    after_trips = rider_trips(service, key, rider_ids)
    for rider_id, trip in before_trips.items():
        if trip is not None:
            after = after_trips[rider_id]
            assert after is not None, f"rider {rider_id} lost trip {trip['id']}"
            assert (after["id"], after["status"]) == (trip["id"], trip["status"])
            assert [s["order_id"] for s in after["stops"]] == [s["order_id"] for s in trip["stops"]]
    assert after_trips[first["rider_id"]]["status"] == "picked_up"

    def all_delivered() -> bool:
        for trip in rider_trips(service, key, rider_ids).values():
            if trip is not None:
                walk_trip(service, key, trip)
        orders = orders_by_id(service, key).values()
        return all(order["status"] == "delivered" for order in orders)

    wait_for(all_delivered, "every order delivered")
    assert rider_trips(service, key, rider_ids) == dict.fromkeys(rider_ids)


def test_an_order_is_committed_within_two_ticks(service: ServiceProcess) -> None:
    """An order posted to the running service with a free rider on duty is committed to that
    rider within two dispatch ticks (by the service's own clock)."""
    key = create_shop(service, "E2E two ticks")
    (rider_id,) = add_riders(service, key, [("Wang Fang", "ebike", 6)])
    order = place_order(service, key, 1)

    def assigned() -> bool:
        return bool(service.call("GET", f"/v1/orders/{order['id']}", token=key)["trip_id"])

    wait_for(assigned, "the order's trip")
    trip = service.call("GET", f"/v1/riders/{rider_id}/trip", token=key)
    assert [stop["order_id"] for stop in trip["stops"]] == [order["id"]]
    placed_at = datetime.fromisoformat(order["placed_at"])
    committed_at = datetime.fromisoformat(trip["assigned_at"])
    assert (committed_at - placed_at).total_seconds() <= 2 * TICK_S
