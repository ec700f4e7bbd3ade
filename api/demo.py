"""The demo behind ``make run``: the service, a demo shop with riders, and a feed of orders.

``run_demo`` starts the service (``create_app`` under uvicorn) on a demo clock that runs
``speed`` times faster than real time, creates on first start a 24-hour convenience store in
Lianyungang with three e-bike riders and a walker (through the API, with the admin token), keeps
its credentials in ``var/demo-credentials.json`` (the shop key is stored hashed by the service
and shown only once) and prints them on every start. Unless ``QUARTERHOUR_DEMO_FEED=0`` a feed
thread then plays customers and riders over HTTP, like any client would: orders arrive inside
the shop's circle (``POST /v1/orders`` with the shop key), and each simulated rider polls its
committed trip (``GET /v1/riders/{id}/trip``), rides to the shop at its mode's speed, picks up
(``POST /v1/trips/{id}/pickup``), delivers stop after stop (``POST /v1/orders/{id}/deliver``)
and reports its position on the way. One line per event goes to stdout.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import secrets
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import uvicorn
from pydantic import SecretStr, ValidationError

from api.config import Settings
from api.engine import TRAVEL_RULES
from api.models import utc_now
from router.travel import distance_m, travel_s

CREDENTIALS_PATH = Path("var/demo-credentials.json")
# Demo seconds per real second while the feed runs.
DEFAULT_SPEED = 20
# Seconds between dispatch ticks in demo mode (real time), unless QUARTERHOUR_TICK_S is set.
DEMO_TICK_S = 1
LOCAL_TIME = ZoneInfo("Asia/Shanghai")

# Wanrun 24h, Lianyungang (DESIGN.md's scenario example).
DEMO_SHOP: dict[str, Any] = {
    "name": "Wanrun 24h (demo)",
    "lat": 34.5965,
    "lon": 119.2215,
    "circle_walk_min": 15,
    "promise_min": 30,
    "timezone": "Asia/Shanghai",
}
# name, mode, capacity in bags
DEMO_RIDERS: tuple[tuple[str, str, int], ...] = (
    ("Li Wei", "ebike", 6),
    ("Zhang Min", "ebike", 6),
    ("Wang Fang", "ebike", 6),
    ("Chen Jie", "walk", 3),
)
# Residential compounds of the circle: name, metres north and east of the shop.
COMPOUNDS: tuple[tuple[str, float, float], ...] = (
    ("Haitang Garden", 420.0, 310.0),
    ("Cangwu Residence", -380.0, 520.0),
    ("Xinpu New Village", 650.0, -240.0),
    ("Huaguoshan Court", -560.0, -430.0),
    ("Jiefang Road 88", 120.0, -610.0),
    ("Tongguan Apartments", 240.0, 180.0),
)
# Share of orders to a random point of the circle rather than to a compound.
SCATTERED_SHARE = 0.3
# Drop-offs stay within this straight-line distance of the shop (the circle is a 900 m walk
# through the detour, i.e. about 900 m straight at DESIGN's walking speed).
MAX_RADIUS_M = 800.0
METRES_PER_DEGREE = 111_195.0
# Mean demo seconds between two orders.
MEAN_INTERARRIVAL_S = 75.0
# Demo seconds between two position reports of a moving rider.
PING_EVERY_S = 60.0
# Real seconds between two rounds of the feed, and between two summaries.
ROUND_S = 0.25
SUMMARY_EVERY_S = 60.0
HTTP_TIMEOUT_S = 10.0
START_TIMEOUT_S = 120.0


# --- clock and output ---------------------------------------------------------------------------


@dataclass
class DemoClock:
    """A clock that starts at ``start`` and runs ``speed`` times faster than real time."""

    start: datetime
    speed: float = 1.0
    _t0: float = field(default_factory=time.monotonic)

    def __call__(self) -> datetime:
        return self.start + timedelta(seconds=(time.monotonic() - self._t0) * self.speed)


def local(moment: datetime) -> str:
    return moment.astimezone(LOCAL_TIME).strftime("%H:%M:%S")


def hhmm(moment: datetime) -> str:
    return moment.astimezone(LOCAL_TIME).strftime("%H:%M")


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


Say = Callable[[str], None]


def say(line: str) -> None:
    print(line, flush=True)


# --- HTTP ----------------------------------------------------------------------------------------


class Api:
    """A tiny JSON client of the service (urllib: httpx is not a dependency of the service)."""

    def __init__(self, base_url: str, token: str | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token

    def call(
        self, method: str, path: str, body: Any = None, *, token: str | None = None
    ) -> tuple[int, Any]:
        """``(status, parsed JSON body)``; an HTTP error is a status, not an exception."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base_url + path, data=data, method=method)
        bearer = token or self.token
        if bearer:
            request.add_header("Authorization", f"Bearer {bearer}")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            raw = error.read()
            try:
                return error.code, json.loads(raw or b"null")
            except ValueError:
                return error.code, {"code": "?", "message": raw.decode(errors="replace")}


class DemoError(Exception):
    """The demo could not set itself up (the message says why)."""


def expect(answer: tuple[int, Any], status: int, what: str) -> Any:
    code, body = answer
    if code != status:
        raise DemoError(f"{what}: HTTP {code} {body}")
    return body


# --- credentials and the demo shop --------------------------------------------------------------


def load_credentials(path: Path) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return document if isinstance(document, dict) else {}


def save_credentials(path: Path, credentials: dict[str, Any]) -> None:
    """Write the file readable by its owner only (it holds the admin token and the shop key)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".tmp")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(json.dumps(credentials, indent=1) + "\n")
    partial.replace(path)


def stored(credentials: dict[str, Any]) -> dict[str, Any]:
    """What the credentials file keeps (not the facts of this run only)."""
    return {k: v for k, v in credentials.items() if k not in ("path", "speed")}


def ensure_demo_shop(api: Api, credentials: dict[str, Any], admin_token: str) -> bool:
    """Reuse the shop of ``credentials`` if its key still works, else create it; riders on duty.

    Updates ``credentials`` in place; whether a new shop was created.
    """
    shop_id, key = credentials.get("shop_id"), credentials.get("shop_key")
    created = False
    if not (shop_id and key and api.call("GET", f"/v1/shops/{shop_id}", token=key)[0] == 200):
        body = expect(
            api.call("POST", "/v1/shops", DEMO_SHOP, token=admin_token), 201, "creating the shop"
        )
        shop_id, key = body["shop"]["id"], body["api_key"]["key"]
        credentials.update(shop_id=shop_id, shop_key=key, created_at=body["shop"]["created_at"])
        for name, mode, capacity in DEMO_RIDERS:
            rider = {"name": name, "mode": mode, "capacity_bags": capacity}
            expect(api.call("POST", "/v1/riders", rider, token=key), 201, f"creating {name}")
        created = True
    riders = expect(api.call("GET", "/v1/riders", token=key), 200, "listing the riders")["data"]
    for rider in riders:
        if not rider["on_duty"]:
            duty = {"on_duty": True}
            path = f"/v1/riders/{rider['id']}/duty"
            expect(api.call("POST", path, duty, token=key), 200, f"{rider['name']} on duty")
    return created


def banner(base_url: str, credentials: dict[str, Any], *, created: bool, feed: bool) -> str:
    docs = f"{base_url}/docs"
    key_note = "new shop" if created else "the demo shop of an earlier run"
    lines = [
        "",
        "=" * 78,
        "Quarterhour demo",
        f"  API docs     {docs}",
        f"  admin token  {credentials['admin_token']}",
        f"  shop         {DEMO_SHOP['name']}, id {credentials['shop_id']} ({key_note})",
        f"  shop API key {credentials['shop_key']}",
        f"  kept in      {credentials['path']} (the service stores the key hashed)",
        "  try          curl -H 'Authorization: Bearer <shop API key>' "
        f"{base_url}/v1/orders?status=pending",
    ]
    if feed:
        lines.append(
            f"  demo clock   {credentials['speed']}x real time: one real minute is "
            f"{credentials['speed']} demo minutes; riders move at demo speed"
        )
        lines.append(
            "  feed         orders and riders are simulated; QUARTERHOUR_DEMO_FEED=0 stops it"
        )
    else:
        lines.append("  feed         off (QUARTERHOUR_DEMO_FEED=0): the clock is real time")
    lines += ["  stop         Ctrl-C", "=" * 78, ""]
    return "\n".join(lines)


# --- the simulated world -------------------------------------------------------------------------


def offset(lat: float, lon: float, north_m: float, east_m: float) -> tuple[float, float]:
    """The point ``north_m`` north and ``east_m`` east of ``(lat, lon)`` (flat-earth, small)."""
    return (
        lat + north_m / METRES_PER_DEGREE,
        lon + east_m / (METRES_PER_DEGREE * math.cos(math.radians(lat))),
    )


@dataclass
class Waypoint:
    at: datetime
    lat: float
    lon: float


@dataclass
class Step:
    """Something a rider does at ``at``: pick up its trip, or deliver one order."""

    at: datetime
    kind: str  # "pickup" or "deliver"
    stop: dict[str, Any] | None = None


@dataclass
class RiderAgent:
    """A simulated rider following its committed trip at its mode's speed."""

    id: str
    name: str
    mode: str
    lat: float
    lon: float
    trip: dict[str, Any] | None = None
    steps: list[Step] = field(default_factory=list)
    waypoints: list[Waypoint] = field(default_factory=list)
    next_ping: datetime | None = None

    def travel_s(self, lat: float, lon: float, to_lat: float, to_lon: float) -> int:
        speed = TRAVEL_RULES.speed_mps[self.mode]
        return travel_s(lat, lon, to_lat, to_lon, TRAVEL_RULES.detour, speed)

    def follow(self, trip: dict[str, Any], now: datetime) -> None:
        """Plan the moves of ``trip`` from the rider's position at ``now``."""
        self.trip = trip
        self.steps, self.waypoints = [], [Waypoint(now, self.lat, self.lon)]
        at, lat, lon = now, self.lat, self.lon
        if trip["status"] == "committed":
            shop = trip["shop"]
            at += timedelta(seconds=self.travel_s(lat, lon, shop["lat"], shop["lon"]))
            lat, lon = shop["lat"], shop["lon"]
            self.waypoints.append(Waypoint(at, lat, lon))
            at = max(at + timedelta(seconds=TRAVEL_RULES.pickup_s), parse_time(trip["depart_at"]))
            self.waypoints.append(Waypoint(at, lat, lon))
            self.steps.append(Step(at, "pickup"))
        for stop in trip["stops"]:
            if stop["status"] not in ("assigned", "picked_up"):
                continue
            to_lat, to_lon = stop["dropoff_lat"], stop["dropoff_lon"]
            at += timedelta(seconds=self.travel_s(lat, lon, to_lat, to_lon))
            lat, lon = to_lat, to_lon
            self.waypoints.append(Waypoint(at, lat, lon))
            at += timedelta(seconds=TRAVEL_RULES.handoff_s)
            self.waypoints.append(Waypoint(at, lat, lon))
            self.steps.append(Step(at, "deliver", stop))
        self.next_ping = now

    def position(self, now: datetime) -> tuple[float, float]:
        """Where the rider is at ``now`` along its waypoints (straight lines between them)."""
        if not self.waypoints:
            return self.lat, self.lon
        for before, after in pairwise(self.waypoints):
            if before.at <= now < after.at:
                share = (now - before.at) / (after.at - before.at)
                return (
                    before.lat + share * (after.lat - before.lat),
                    before.lon + share * (after.lon - before.lon),
                )
        last = self.waypoints[-1] if now >= self.waypoints[-1].at else self.waypoints[0]
        return last.lat, last.lon


@dataclass
class Tally:
    accepted: int = 0
    rejected: int = 0
    trips: int = 0
    orders_in_trips: int = 0
    delivered: int = 0
    on_time: int = 0
    click_to_door_s: float = 0.0


class DemoFeed:
    """Customers placing orders and riders following their trips, all over HTTP."""

    def __init__(
        self,
        api: Api,
        clock: Callable[[], datetime],
        shop: dict[str, Any],
        riders: list[dict[str, Any]],
        *,
        first_order_number: int,
        seed: int,
        out: Say = say,
    ) -> None:
        self.api = api
        self.clock = clock
        self.shop = shop
        self.random = random.Random(seed)
        self.out = out
        self.tally = Tally()
        self.order_number = first_order_number
        self.agents = [
            RiderAgent(
                id=rider["id"],
                name=rider["name"],
                mode=rider["mode"],
                lat=rider["lat"] if rider["lat"] is not None else shop["lat"],
                lon=rider["lon"] if rider["lon"] is not None else shop["lon"],
            )
            for rider in riders
        ]
        self.next_order_at = clock() + timedelta(seconds=5)

    def log(self, now: datetime, kind: str, text: str) -> None:
        self.out(f"[{local(now)}] {kind:<10}{text}")

    # customers

    def drop_off(self) -> tuple[float, float, str]:
        if self.random.random() < SCATTERED_SHARE:
            radius = MAX_RADIUS_M * math.sqrt(self.random.random())
            angle = self.random.uniform(0.0, 2.0 * math.pi)
            north, east = radius * math.cos(angle), radius * math.sin(angle)
            building = self.random.randint(1, 120)
            address = f"No. {building} {self.random.choice(('Haizhou', 'Jiefang', 'Tongguan'))} Rd"
        else:
            name, north, east = self.random.choice(COMPOUNDS)
            north += self.random.uniform(-60.0, 60.0)
            east += self.random.uniform(-60.0, 60.0)
            flat = self.random.randint(1, 18) * 100 + self.random.randint(1, 4)
            address = f"{name} {self.random.randint(1, 12)}-{self.random.randint(1, 3)}-{flat}"
        lat, lon = offset(self.shop["lat"], self.shop["lon"], north, east)
        return lat, lon, address

    def place_order(self, now: datetime) -> None:
        lat, lon, address = self.drop_off()
        body = {
            "source": "demo",
            "external_id": f"A-{self.order_number:04d}",
            "dropoff_lat": round(lat, 6),
            "dropoff_lon": round(lon, 6),
            "address": address,
            "size_bags": self.random.choice((1, 1, 1, 2, 2, 3)),
            "picking_min": self.random.randint(1, 5),
        }
        self.order_number += 1
        status, order = self.api.call("POST", "/v1/orders", body)
        if status == 201:
            self.tally.accepted += 1
            metres = distance_m(self.shop["lat"], self.shop["lon"], lat, lon, 1.0)
            self.log(
                now,
                "order",
                f"{body['external_id']} accepted: {body['size_bags']} bag(s) to {address} "
                f"({metres:.0f} m), ready {hhmm(parse_time(order['ready_at']))}, "
                f"promised by {hhmm(parse_time(order['promised_at']))}",
            )
        elif status == 200:  # the number was used by an earlier run: take the next one
            self.place_order(now)
        else:
            self.tally.rejected += 1
            self.log(now, "rejected", f"{body['external_id']}: HTTP {status} {order}")

    # riders

    def poll_trip(self, agent: RiderAgent, now: datetime) -> None:
        status, trip = self.api.call("GET", f"/v1/riders/{agent.id}/trip")
        if status != 200:
            return
        agent.follow(trip, now)
        labels = ", ".join(stop["external_id"] for stop in trip["stops"])
        if trip["status"] == "committed":
            self.tally.trips += 1
            self.tally.orders_in_trips += len(trip["stops"])
            bags = sum(stop["size_bags"] for stop in trip["stops"])
            etas = ", ".join(hhmm(parse_time(stop["eta_at"])) for stop in trip["stops"])
            promises = ", ".join(hhmm(parse_time(stop["promised_at"])) for stop in trip["stops"])
            self.log(
                now,
                "trip",
                f"{agent.name} ({agent.mode}) committed with {labels} "
                f"({len(trip['stops'])} order(s), {bags} bag(s)): ETAs {etas}, "
                f"promised {promises}",
            )
        else:
            self.log(now, "resume", f"{agent.name} carries {labels} (trip picked up earlier)")

    def ping(self, agent: RiderAgent, now: datetime) -> None:
        agent.lat, agent.lon = agent.position(now)
        body = {"lat": round(agent.lat, 6), "lon": round(agent.lon, 6)}
        self.api.call("POST", f"/v1/riders/{agent.id}/location", body)
        agent.next_ping = now + timedelta(seconds=PING_EVERY_S)

    def take_step(self, agent: RiderAgent, step: Step, now: datetime) -> None:
        trip = agent.trip
        assert trip is not None
        labels = ", ".join(stop["external_id"] for stop in trip["stops"])
        if step.kind == "pickup":
            status, body = self.api.call("POST", f"/v1/trips/{trip['id']}/pickup")
            if status == 200:
                self.log(now, "pickup", f"{agent.name} left the shop with {labels}")
            else:
                self.log(now, "pickup", f"{agent.name}: HTTP {status} {body}; trip dropped")
                agent.steps = []
            return
        assert step.stop is not None
        label = step.stop["external_id"]
        status, order = self.api.call("POST", f"/v1/orders/{step.stop['order_id']}/deliver")
        if status != 200:
            self.log(now, "skipped", f"{label} by {agent.name}: HTTP {status} {order}")
            return
        delivered_at = parse_time(order["updated_at"])
        click_to_door_min = (delivered_at - parse_time(order["placed_at"])).total_seconds() / 60
        slack_min = (parse_time(order["promised_at"]) - delivered_at).total_seconds() / 60
        self.tally.delivered += 1
        self.tally.click_to_door_s += click_to_door_min * 60
        if slack_min >= 0:
            self.tally.on_time += 1
            verdict = f"ON TIME, {slack_min:.1f} min before the promise"
        else:
            verdict = f"LATE by {-slack_min:.1f} min"
        self.log(
            now,
            "delivered",
            f"{label} by {agent.name}: {verdict} ({click_to_door_min:.1f} min click-to-door)",
        )

    def step_rider(self, agent: RiderAgent, now: datetime) -> None:
        while agent.steps and agent.steps[0].at <= now:
            self.take_step(agent, agent.steps.pop(0), now)
        if agent.trip is not None and agent.next_ping is not None and now >= agent.next_ping:
            self.ping(agent, now)
        if agent.trip is not None and not agent.steps:
            agent.lat, agent.lon = agent.position(now)
            self.ping(agent, now)
            agent.trip, agent.waypoints = None, []
        if agent.trip is None:
            self.poll_trip(agent, now)

    def summary(self, now: datetime) -> None:
        tally = self.tally
        if not tally.accepted and not tally.delivered:
            return
        on_time = f"{tally.on_time / tally.delivered:.0%}" if tally.delivered else "-"
        mean_min = tally.click_to_door_s / tally.delivered / 60 if tally.delivered else 0.0
        per_trip = tally.orders_in_trips / tally.trips if tally.trips else 0.0
        self.log(
            now,
            "summary",
            f"this run: {tally.accepted} accepted, {tally.trips} trips "
            f"({per_trip:.1f} orders/trip), {tally.delivered} delivered, on time {on_time}, "
            f"click-to-door mean {mean_min:.1f} min",
        )

    def round(self) -> None:
        """One round: orders that are due, then every rider's due moves."""
        now = self.clock()
        while now >= self.next_order_at:
            self.place_order(now)
            gap_s = self.random.expovariate(1.0 / MEAN_INTERARRIVAL_S)
            self.next_order_at += timedelta(seconds=gap_s)
        for agent in self.agents:
            self.step_rider(agent, self.clock())

    def run(self, stopping: Callable[[], bool], on_round: Callable[[], None] | None = None) -> None:
        """Play rounds until ``stopping()``; a dropped connection ends nothing but that round."""
        next_summary = time.monotonic() + SUMMARY_EVERY_S
        while not stopping():
            try:
                self.round()
            except OSError as error:  # the server is restarting or shutting down
                if not stopping():
                    self.log(self.clock(), "feed", f"HTTP failed: {error}; retrying")
                    time.sleep(1.0)
            except (KeyError, TypeError, ValueError) as error:  # an answer of unexpected shape
                self.log(self.clock(), "feed", f"unexpected answer ({error!r}); going on")
                time.sleep(1.0)
            if on_round is not None:
                on_round()
            if time.monotonic() >= next_summary:
                self.summary(self.clock())
                next_summary += SUMMARY_EVERY_S
            time.sleep(ROUND_S)


# --- putting it together ------------------------------------------------------------------------


def wait_until_up(api: Api, started: Callable[[], bool], stopping: Callable[[], bool]) -> bool:
    """Whether our server started (not another one on the port) and answers ``/healthz``."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline and not stopping():
        if started():
            with contextlib.suppress(OSError):
                if api.call("GET", "/healthz")[0] == 200:
                    return True
        time.sleep(0.2)
    return False


def drive(
    api: Api,
    clock: DemoClock,
    credentials: dict[str, Any],
    path: Path,
    *,
    feed: bool,
    started: Callable[[], bool],
    stopping: Callable[[], bool],
) -> None:
    """Set up the demo shop, print the banner, then (``feed``) play orders and riders."""
    if not wait_until_up(api, started, stopping):
        return
    try:
        created = ensure_demo_shop(api, credentials, credentials["admin_token"])
    except (DemoError, OSError) as error:
        print(f"quarterhour: demo: {error}", file=sys.stderr, flush=True)
        return
    save_credentials(path, stored(credentials))
    say(banner(api.base_url, credentials, created=created, feed=feed))
    if not feed:
        return
    key = credentials["shop_key"]
    try:
        shop = expect(
            api.call("GET", f"/v1/shops/{credentials['shop_id']}", token=key), 200, "shop"
        )
        riders = expect(api.call("GET", "/v1/riders", token=key), 200, "riders")["data"]
        n_orders = expect(api.call("GET", "/v1/orders?limit=1", token=key), 200, "orders")["count"]
    except (DemoError, OSError) as error:
        print(f"quarterhour: demo: no feed: {error}", file=sys.stderr, flush=True)
        return
    demo = DemoFeed(
        Api(api.base_url, key),
        clock,
        shop,
        riders,
        first_order_number=n_orders + 1,
        seed=secrets.randbits(32),
    )
    last_saved = [time.monotonic()]

    def remember_clock() -> None:
        if time.monotonic() - last_saved[0] >= 5.0:
            credentials["clock_at"] = clock().isoformat()
            save_credentials(path, stored(credentials))
            last_saved[0] = time.monotonic()

    demo.run(stopping, remember_clock)


def run_demo(
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    speed: int = DEFAULT_SPEED,
    credentials_path: Path = CREDENTIALS_PATH,
) -> int:
    """Serve the API with the demo shop (and, unless ``QUARTERHOUR_DEMO_FEED=0``, the feed)."""
    from api.main import create_app

    try:
        settings = Settings()
    except ValidationError as error:
        problems = "; ".join(
            f"QUARTERHOUR_{'.'.join(map(str, e['loc'])).upper()}: {e['msg']}"
            for e in error.errors()
        )
        print(f"quarterhour: serve: {problems}", file=sys.stderr)
        return 2
    credentials = load_credentials(credentials_path)
    if settings.admin_token is not None and settings.admin_token.get_secret_value():
        credentials["admin_token"] = settings.admin_token.get_secret_value()
    elif not credentials.get("admin_token"):
        credentials["admin_token"] = secrets.token_urlsafe(24)
    save_credentials(credentials_path, credentials)
    updates: dict[str, Any] = {"admin_token": SecretStr(credentials["admin_token"])}
    if "QUARTERHOUR_TICK_S" not in os.environ:
        updates["tick_s"] = DEMO_TICK_S
    settings = settings.model_copy(update=updates)

    # The demo clock never goes back: it resumes where the previous run stopped.
    start = utc_now()
    if credentials.get("clock_at"):
        with contextlib.suppress(ValueError):
            start = max(start, parse_time(credentials["clock_at"]))
    clock = DemoClock(start, speed if settings.demo_feed else 1)
    credentials.update(path=str(credentials_path), speed=clock.speed)

    app = create_app(settings, clock=clock)
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, access_log=False))
    stopped = threading.Event()

    def stopping() -> bool:
        return stopped.is_set() or server.should_exit

    client_host = "127.0.0.1" if host in ("0.0.0.0", "") else host
    api = Api(f"http://{client_host}:{port}")
    driver = threading.Thread(
        target=drive,
        args=(api, clock, credentials, credentials_path),
        kwargs={
            "feed": settings.demo_feed,
            "started": lambda: server.started,
            "stopping": stopping,
        },
        name="quarterhour-demo",
        daemon=True,
    )
    driver.start()
    try:
        server.run()
    except KeyboardInterrupt:  # uvicorn re-raises the Ctrl-C it handled, once shut down
        pass
    finally:
        stopped.set()
        driver.join(timeout=HTTP_TIMEOUT_S)
        if "shop_id" in credentials:
            credentials["clock_at"] = clock().isoformat()
            save_credentials(credentials_path, stored(credentials))
    say("quarterhour demo stopped")
    return 0
