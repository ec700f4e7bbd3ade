"""Tests of api/dispatch.py, api/engine.py's plan_shop and the trip routes: orders committed to
riders on the service's clock, picked up, delivered or failed, with their events."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import Engine, event
from sqlmodel import Session

import api.dispatch
from api.config import Settings
from api.db import writer
from api.dispatch import dispatch_all, lease_and_store, read_decision, shops_waiting
from api.engine import TRAVEL_RULES, ShopPlan, absolute_reason, plan_shop
from api.main import create_app
from api.models import Order, Rider, Shop
from router.travel import travel_s
from tests.api.conftest import Factory, create_shop
from tests.api.factories import (
    ADMIN_TOKEN,
    INSIDE_LAT,
    INSIDE_LON,
    SHOP_LAT,
    SHOP_LON,
    TICK_S,
    FakeClock,
    ShopHandle,
    assert_error,
    count_rows,
    order_body,
    rider_body,
    run_dispatch,
)


def at(text_time: str) -> datetime:
    return datetime.fromisoformat(text_time)


def on_duty_rider(client: TestClient, shop: ShopHandle, **overrides: Any) -> dict[str, Any]:
    rider: dict[str, Any] = client.post(
        "/v1/riders", json=rider_body(**overrides), headers=shop.headers
    ).json()
    url = f"/v1/riders/{rider['id']}/duty"
    assert client.post(url, json={"on_duty": True}, headers=shop.headers).status_code == 200
    return rider


def post_order(client: TestClient, shop: ShopHandle, **overrides: Any) -> dict[str, Any]:
    response = client.post("/v1/orders", json=order_body(**overrides), headers=shop.headers)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def get_order(client: TestClient, shop: ShopHandle, order: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = client.get(f"/v1/orders/{order['id']}", headers=shop.headers).json()
    return body


def dispatch_until_assigned(
    client: TestClient, shop: ShopHandle, engine: Engine, clock: FakeClock, order: dict[str, Any]
) -> dict[str, Any]:
    """Dispatch at most twice, one tick apart; the order as it is after its assignment."""
    for _ in range(2):
        run_dispatch(engine, shop.id, clock())
        current = get_order(client, shop, order)
        if current["status"] == "assigned":
            return current
        clock.advance(TICK_S)
    raise AssertionError(f"not committed within two ticks: {current}")


def event_kinds(client: TestClient, shop: ShopHandle, order: dict[str, Any]) -> list[str]:
    events = client.get(f"/v1/orders/{order['id']}/events", headers=shop.headers).json()
    return [event["kind"] for event in events["data"]]


def test_order_is_committed_within_two_ticks(
    client: TestClient, shop: ShopHandle, engine: Engine, clock: FakeClock
) -> None:
    """A ready order and a free on-duty rider at the shop: assigned within two ticks, with an
    ETA no earlier than DESIGN's lower bound."""
    on_duty_rider(client, shop)
    order = post_order(client, shop)
    assigned = dispatch_until_assigned(client, shop, engine, clock, order)
    assert assigned["trip_id"] is not None
    lower_bound_s = (
        TRAVEL_RULES.pickup_s
        + travel_s(SHOP_LAT, SHOP_LON, INSIDE_LAT, INSIDE_LON, TRAVEL_RULES.detour, 5.0)
        + TRAVEL_RULES.handoff_s
    )
    assert at(assigned["eta_at"]) >= at(order["placed_at"]) + timedelta(seconds=lower_bound_s)
    assert event_kinds(client, shop, order) == ["placed", "assigned"]
    assert count_rows(engine, "trips") == count_rows(engine, "trip_stops") == 1


def test_rider_trip_shows_the_committed_trip(
    client: TestClient, shop: ShopHandle, engine: Engine, clock: FakeClock
) -> None:
    """GET /v1/riders/{id}/trip: 404 no_trip before dispatch; then the shop and its stops."""
    rider = on_duty_rider(client, shop)
    order = post_order(client, shop)
    url = f"/v1/riders/{rider['id']}/trip"
    assert_error(client.get(url, headers=shop.headers), 404, "no_trip")
    assigned = dispatch_until_assigned(client, shop, engine, clock, order)
    trip = client.get(url, headers=shop.headers).json()
    assert trip["id"] == assigned["trip_id"]
    assert (trip["shop"]["id"], trip["rider_id"], trip["status"]) == (
        shop.id,
        rider["id"],
        "committed",
    )
    [stop] = trip["stops"]
    assert (stop["seq"], stop["order_id"], stop["address"]) == (0, order["id"], order["address"])
    assert (stop["status"], stop["eta_at"]) == ("assigned", assigned["eta_at"])
    assert at(trip["leave_at"]) <= at(trip["depart_at"]) < at(stop["eta_at"])


def test_pickup_then_deliver(
    client: TestClient, shop: ShopHandle, engine: Engine, clock: FakeClock
) -> None:
    """Deliver before pickup is 409; pickup then deliver: delivered, events in order, trip done,
    rider free."""
    rider = on_duty_rider(client, shop)
    order = post_order(client, shop)
    trip_id = dispatch_until_assigned(client, shop, engine, clock, order)["trip_id"]
    deliver = f"/v1/orders/{order['id']}/deliver"
    assert_error(client.post(deliver, headers=shop.headers), 409, "order_not_picked_up")
    clock.advance(120)
    picked = client.post(f"/v1/trips/{trip_id}/pickup", headers=shop.headers)
    assert picked.status_code == 200, picked.text
    assert picked.json()["status"] == "picked_up"
    assert picked.json()["stops"][0]["status"] == "picked_up"
    again = client.post(f"/v1/trips/{trip_id}/pickup", headers=shop.headers)
    assert again.json() == picked.json()
    clock.advance(300)
    delivered = client.post(deliver, json={"pin": order["pin"]}, headers=shop.headers)
    assert delivered.status_code == 200, delivered.text
    assert delivered.json()["status"] == "delivered"
    assert client.post(deliver, headers=shop.headers).json() == delivered.json()
    assert event_kinds(client, shop, order) == ["placed", "assigned", "picked_up", "delivered"]
    url = f"/v1/riders/{rider['id']}/trip"
    assert_error(client.get(url, headers=shop.headers), 404, "no_trip")
    assert count_rows(engine, "trips", "status = 'done'") == 1
    done = client.post(f"/v1/trips/{trip_id}/pickup", headers=shop.headers)
    assert_error(done, 409, "trip_done")


def test_fail_with_retry_is_dispatched_again(
    client: TestClient, shop: ShopHandle, engine: Engine, clock: FakeClock
) -> None:
    """A failed delivery with retry goes back to pending, frees the rider, and is re-dispatched."""
    on_duty_rider(client, shop)
    order = post_order(client, shop)
    first_trip = dispatch_until_assigned(client, shop, engine, clock, order)["trip_id"]
    client.post(f"/v1/trips/{first_trip}/pickup", headers=shop.headers)
    clock.advance(300)
    body = {"reason": "nobody home", "retry": True}
    failed = client.post(f"/v1/orders/{order['id']}/fail", json=body, headers=shop.headers)
    assert failed.status_code == 200, failed.text
    assert (failed.json()["status"], failed.json()["trip_id"]) == ("pending", None)
    assert count_rows(engine, "trips", "status = 'done'") == 1
    second_trip = dispatch_until_assigned(client, shop, engine, clock, order)["trip_id"]
    assert second_trip != first_trip
    kinds = event_kinds(client, shop, order)
    assert kinds == ["placed", "assigned", "picked_up", "retry", "assigned"]


def test_fail_without_retry_closes_the_order(
    client: TestClient, shop: ShopHandle, engine: Engine, clock: FakeClock
) -> None:
    """Without retry the order is failed for good; failing it again is 409."""
    on_duty_rider(client, shop)
    order = post_order(client, shop)
    dispatch_until_assigned(client, shop, engine, clock, order)
    url = f"/v1/orders/{order['id']}/fail"
    body = {"reason": "address not found", "retry": False}
    failed = client.post(url, json=body, headers=shop.headers)
    assert failed.json()["status"] == "failed"
    assert_error(client.post(url, json=body, headers=shop.headers), 409, "order_not_on_trip")
    assert count_rows(engine, "trips", "status = 'done'") == 1
    run_dispatch(engine, shop.id, clock())
    assert get_order(client, shop, order)["status"] == "failed"


def test_cancelling_an_assigned_order_frees_the_rider(
    client: TestClient, shop: ShopHandle, engine: Engine, clock: FakeClock
) -> None:
    """Cancelling the only order of a committed trip makes the trip done."""
    rider = on_duty_rider(client, shop)
    order = post_order(client, shop)
    dispatch_until_assigned(client, shop, engine, clock, order)
    client.post(f"/v1/orders/{order['id']}/cancel", headers=shop.headers)
    url = f"/v1/riders/{rider['id']}/trip"
    assert_error(client.get(url, headers=shop.headers), 404, "no_trip")


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"reason": ""},
        {"reason": "x", "retry": "yes"},
        {"reason": "r" * 201},
        {"reason": "x", "extra": 1},
    ],
)
def test_bad_fail_is_422(
    client: TestClient, shop: ShopHandle, engine: Engine, clock: FakeClock, body: dict[str, Any]
) -> None:
    """A failure needs a short reason and a boolean retry, nothing else."""
    on_duty_rider(client, shop)
    order = post_order(client, shop)
    dispatch_until_assigned(client, shop, engine, clock, order)
    response = client.post(f"/v1/orders/{order['id']}/fail", json=body, headers=shop.headers)
    assert_error(response, 422, "validation_error")
    assert get_order(client, shop, order)["status"] == "assigned"


@pytest.mark.parametrize("pin", ["12", "123456789", "12a4", 1234])
def test_bad_pin_is_422(client: TestClient, shop: ShopHandle, pin: Any) -> None:
    """A PIN is a string of 4 to 8 digits."""
    order = post_order(client, shop)
    url = f"/v1/orders/{order['id']}/deliver"
    assert_error(client.post(url, json={"pin": pin}, headers=shop.headers), 422)


def test_off_duty_rider_gets_nothing(
    client: TestClient, shop: ShopHandle, engine: Engine, clock: FakeClock
) -> None:
    """Riders off duty, or on duty with every shift over, get no trip; the order waits."""
    client.post("/v1/riders", json=rider_body(), headers=shop.headers)
    past = [(clock() - timedelta(hours=5)).isoformat(), (clock() - timedelta(hours=1)).isoformat()]
    on_duty_rider(client, shop, name="Zhang Min", shifts=[past])
    order = post_order(client, shop)
    for _ in range(3):
        plan = run_dispatch(engine, shop.id, clock())
        assert plan.trips == []
        clock.advance(TICK_S)
    assert plan.reasons
    assert get_order(client, shop, order)["status"] == "pending"
    assert count_rows(engine, "trips") == 0


def test_a_rider_with_past_shifts_works_in_its_running_one(
    client: TestClient, shop: ShopHandle, engine: Engine, clock: FakeClock
) -> None:
    """The dispatch reads only the shifts not over: yesterday's shifts kept for the KPIs
    neither stop a rider on a running shift nor stand for it."""

    def hours_ago(first: int, last: int) -> list[str]:
        return [(clock() - timedelta(hours=h)).isoformat() for h in (first, last)]

    running = [hours_ago(1, 0)[0], (clock() + timedelta(hours=3)).isoformat()]
    rider = on_duty_rider(client, shop, shifts=[hours_ago(30, 22), hours_ago(6, 2), running])
    order = post_order(client, shop)
    assigned = dispatch_until_assigned(client, shop, engine, clock, order)
    trip = client.get(f"/v1/riders/{rider['id']}/trip", headers=shop.headers).json()
    assert trip["id"] == assigned["trip_id"]


def test_busy_rider_gets_no_second_trip(
    client: TestClient, shop: ShopHandle, engine: Engine, clock: FakeClock
) -> None:
    """A rider with a committed trip is not given another until that trip is done."""
    rider = on_duty_rider(client, shop, capacity_bags=2)
    first = post_order(client, shop)
    dispatch_until_assigned(client, shop, engine, clock, first)
    second = post_order(client, shop, external_id="A-1002")
    for _ in range(3):
        clock.advance(TICK_S)
        assert run_dispatch(engine, shop.id, clock()).trips == []
    assert get_order(client, shop, second)["status"] == "pending"
    trip = client.get(f"/v1/riders/{rider['id']}/trip", headers=shop.headers).json()
    assert [stop["order_id"] for stop in trip["stops"]] == [first["id"]]


def _plan_by_names(
    client: TestClient, shop: ShopHandle, plan: ShopPlan
) -> list[tuple[str, list[str], list[datetime]]]:
    """A plan with riders and orders named as the shop knows them (names, external ids)."""
    riders = client.get("/v1/riders", headers=shop.headers).json()["data"]
    orders = client.get("/v1/orders", headers=shop.headers).json()["data"]
    rider_names = {rider["id"]: rider["name"] for rider in riders}
    external = {order["id"]: order["external_id"] for order in orders}
    return [
        (
            rider_names[str(trip.rider_id)],
            [external[str(order_id)] for order_id in trip.order_ids],
            trip.eta_ats,
        )
        for trip in plan.trips
    ]


def test_dispatch_is_deterministic(
    client: TestClient, make_shop: Factory, engine: Engine, clock: FakeClock
) -> None:
    """Two shops with the same rows get the same plan at the same time."""
    shops = [make_shop(), make_shop(name="Wanrun twin")]
    offsets = [(0.0, 0.0), (0.002, -0.003), (-0.003, 0.001), (0.001, 0.004)]
    for shop in shops:
        on_duty_rider(client, shop, name="Li Wei")
        on_duty_rider(client, shop, name="Zhang Min", mode="bike", capacity_bags=3)
    for i, (north, east) in enumerate(offsets):
        for shop in shops:
            post_order(
                client,
                shop,
                external_id=f"A-{i}",
                dropoff_lat=INSIDE_LAT + north,
                dropoff_lon=INSIDE_LON + east,
                size_bags=1,
            )
        clock.advance(20)
    plans = [run_dispatch(engine, shop.id, clock()) for shop in shops]
    named = [_plan_by_names(client, shop, plan) for shop, plan in zip(shops, plans, strict=True)]
    assert named[0] == named[1]
    assert named[0]
    reasons = [sorted(plan.reasons.values()) for plan in plans]
    assert reasons[0] == reasons[1]


def test_one_failing_shop_does_not_stop_the_others(
    client: TestClient,
    make_shop: Factory,
    engine: Engine,
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """dispatch_all logs a shop whose dispatch raises and still dispatches the others."""
    shop_a, shop_b = make_shop(), make_shop(name="Fruit corner")
    for shop in (shop_a, shop_b):
        on_duty_rider(client, shop)
        post_order(client, shop)
    real = api.dispatch.dispatch_shop

    def broken_for_a(session: Any, shop: Any, now: datetime, **options: Any) -> ShopPlan:
        if str(shop.id) == shop_a.id:
            raise RuntimeError("shop A is broken")
        return real(session, shop, now, **options)

    monkeypatch.setattr(api.dispatch, "dispatch_shop", broken_for_a)
    assert dispatch_all(engine, clock(), TICK_S) == 1
    statuses = [client.get("/v1/orders", headers=s.headers).json() for s in (shop_a, shop_b)]
    assert [listed["data"][0]["status"] for listed in statuses] == ["pending", "assigned"]


def test_the_loop_of_a_running_app_commits_orders(database_url: str) -> None:
    """With dispatch enabled, the app's own loop assigns an order (polled, up to 30 s)."""
    settings = Settings(database_url=database_url, admin_token=SecretStr(ADMIN_TOKEN), tick_s=1)
    with TestClient(create_app(settings, clock=FakeClock())) as client:
        shop = create_shop(client)
        on_duty_rider(client, shop)
        order = post_order(client, shop)
        deadline = time.monotonic() + 30
        while get_order(client, shop, order)["status"] != "assigned":
            assert time.monotonic() < deadline, "the loop assigned nothing in 30 s"
            time.sleep(0.1)


def test_a_waiting_order_shows_why(
    client: TestClient, shop: ShopHandle, engine: Engine, clock: FakeClock
) -> None:
    """After a tick a pending order carries the engine's reason, with times as UTC instants;
    the note is cleared once the order is committed."""
    order = post_order(client, shop, picking_min=20)
    assert get_order(client, shop, order)["dispatch_note"] is None
    run_dispatch(engine, shop.id, clock())
    assert get_order(client, shop, order)["dispatch_note"] == "no rider on duty"
    on_duty_rider(client, shop)
    clock.advance(TICK_S)
    run_dispatch(engine, shop.id, clock())
    waiting = get_order(client, shop, order)
    assert waiting["status"] == "pending"
    ready = at(waiting["ready_at"]).astimezone(UTC).isoformat(timespec="seconds")
    assert waiting["dispatch_note"].endswith(f"until {ready}"), waiting["dispatch_note"]
    clock.advance(20 * 60)
    assert dispatch_until_assigned(client, shop, engine, clock, order)["dispatch_note"] is None


def test_an_unchanged_reason_is_not_written_again(
    client: TestClient, shop: ShopHandle, engine: Engine, clock: FakeClock
) -> None:
    """A second tick giving the same reason updates no order row."""
    post_order(client, shop, picking_min=20)
    on_duty_rider(client, shop)
    run_dispatch(engine, shop.id, clock())
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement.lstrip().upper())

    event.listen(engine, "before_cursor_execute", record)
    try:
        clock.advance(TICK_S)
        run_dispatch(engine, shop.id, clock())
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert any(statement.startswith("SELECT") for statement in statements)
    assert not [statement for statement in statements if statement.startswith("UPDATE ORDERS")]


def test_absolute_reason_turns_seconds_into_instants() -> None:
    """'until 90' and 'at -30' become UTC instants; text without times is unchanged."""
    now = datetime(2026, 11, 29, 9, 0, 0, 400_000, tzinfo=ZoneInfo("Asia/Shanghai"))
    assert absolute_reason("not ready until 90", now) == "not ready until 2026-11-29T01:01:30+00:00"
    assert absolute_reason("rider's shift starts at -30", now) == (
        "rider's shift starts at 2026-11-29T00:59:30+00:00"
    )
    assert absolute_reason("queued behind more urgent orders", now) == (
        "queued behind more urgent orders"
    )


def test_a_shared_rider_serves_both_shops_one_trip_at_a_time(
    client: TestClient, make_shop: Factory, engine: Engine, clock: FakeClock
) -> None:
    """A's rider linked to B gets B's order; while on that trip A's order waits; once it is done
    A's order goes to the same rider. A rider not linked to B never gets B's orders."""
    shop_a, shop_b = make_shop(), make_shop(name="Fruit corner")
    loner = make_shop(name="Elsewhere")
    rider = on_duty_rider(client, shop_a)
    loner_rider = on_duty_rider(client, loner, mode="walk")
    post_order(client, loner)
    plan = run_dispatch(engine, loner.id, clock())  # the ebike of A is free, and faster
    assert [str(trip.rider_id) for trip in plan.trips] == [loner_rider["id"]]
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    linked = client.post(
        f"/v1/riders/{rider['id']}/shops", json={"shop_id": shop_b.id}, headers=admin
    )
    assert linked.status_code == 200, linked.text
    order_b = post_order(client, shop_b)
    trip_b = dispatch_until_assigned(client, shop_b, engine, clock, order_b)["trip_id"]
    trip = client.get(f"/v1/riders/{rider['id']}/trip", headers=shop_b.headers).json()
    assert (trip["id"], trip["shop"]["id"]) == (trip_b, shop_b.id)

    order_a = post_order(client, shop_a)
    for _ in range(3):
        assert run_dispatch(engine, shop_a.id, clock()).trips == []
        clock.advance(TICK_S)
    assert get_order(client, shop_a, order_a)["status"] == "pending"

    client.post(f"/v1/trips/{trip_b}/pickup", headers=shop_b.headers)
    clock.advance(300)
    client.post(f"/v1/orders/{order_b['id']}/deliver", headers=shop_b.headers)
    assigned = dispatch_until_assigned(client, shop_a, engine, clock, order_a)
    trip = client.get(f"/v1/riders/{rider['id']}/trip", headers=shop_a.headers).json()
    assert (trip["id"], trip["shop"]["id"]) == (assigned["trip_id"], shop_a.id)


def test_engine_rider_serves_excludes_riders_not_serving_the_shop(
    client: TestClient, make_shop: Factory, engine: Engine, clock: FakeClock
) -> None:
    """plan_shop with rider_shop_ids: a rider not serving the shop gets no trip."""
    shop = make_shop()
    rider = on_duty_rider(client, shop)
    order = post_order(client, shop)
    with Session(engine) as session:
        shop_row = session.get(Shop, uuid.UUID(shop.id))
        rider_row = session.get(Rider, uuid.UUID(rider["id"]))
        order_row = session.get(Order, uuid.UUID(order["id"]))
        assert shop_row and rider_row and order_row
        args = (shop_row, [order_row], [rider_row], {}, {}, clock(), TICK_S)
        serving = plan_shop(*args, rider_shop_ids={rider_row.id: {shop_row.id}})
        elsewhere = plan_shop(*args, rider_shop_ids={rider_row.id: {uuid.uuid4()}})
    assert [trip.rider_id for trip in serving.trips] == [rider_row.id]
    assert elsewhere.trips == []
    assert elsewhere.reasons[order_row.id]


def _store_rechecked(engine: Engine, decision: Any, now: datetime) -> int:
    with Session(writer(engine), expire_on_commit=False) as session:
        stored = lease_and_store(session, decision, "w1", now, 3 * TICK_S)
        session.commit()
        return stored


def _store_rechecked_with(
    engine: Engine, decision: Any, now: datetime, meanwhile: Callable[[], None]
) -> int:
    """``_store_rechecked``, with ``meanwhile`` started in a thread once the store's recheck
    has read and before its first trip is written, and given a second to finish there (it
    does unless the recheck holds what it needs); the trips stored."""
    store_thread = threading.current_thread()
    other = threading.Thread(target=meanwhile)

    def start_meanwhile(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if threading.current_thread() is store_thread and statement.startswith("INSERT INTO trips"):
            other.start()
            other.join(timeout=1.0)

    event.listen(engine, "before_cursor_execute", start_meanwhile)
    try:
        stored = _store_rechecked(engine, decision, now)
    finally:
        event.remove(engine, "before_cursor_execute", start_meanwhile)
    other.join(timeout=30)
    return stored


def _plan_with_trips(
    engine: Engine, shop: ShopHandle, clock: FakeClock
) -> api.dispatch.ShopDecision | None:
    """The loop's read-only plan of the shop, a tick later if the first has no trip yet."""
    for _ in range(2):
        decision = read_decision(engine, uuid.UUID(shop.id), clock(), TICK_S)
        assert decision is not None
        if decision.plan.trips:
            return decision
        clock.advance(TICK_S)
    return decision


def test_a_plan_made_outside_the_write_stores_its_trips(
    client: TestClient, shop: ShopHandle, engine: Engine, clock: FakeClock
) -> None:
    """The loop's path (plan in a read transaction, then lease and store): the trip is stored."""
    on_duty_rider(client, shop)
    order = post_order(client, shop)
    decision = _plan_with_trips(engine, shop, clock)
    assert _store_rechecked(engine, decision, clock()) == 1
    assert get_order(client, shop, order)["status"] == "assigned"


def test_a_stale_plan_is_dropped_when_an_order_changed_meanwhile(
    client: TestClient, shop: ShopHandle, engine: Engine, clock: FakeClock
) -> None:
    """An order cancelled, or a rider gone off duty, between the plan and its storing: no trip
    is stored; the orders that did not change stay pending for the next tick."""
    rider = on_duty_rider(client, shop)
    order = post_order(client, shop)
    decision = _plan_with_trips(engine, shop, clock)
    assert decision.plan.trips
    cancelled = client.post(f"/v1/orders/{order['id']}/cancel", headers=shop.headers)
    assert cancelled.status_code == 200
    assert _store_rechecked(engine, decision, clock()) == 0
    assert get_order(client, shop, order)["status"] == "cancelled"
    assert count_rows(engine, "trips") == 0

    second = post_order(client, shop, external_id="A-1002")
    clock.advance(TICK_S)
    decision = read_decision(engine, uuid.UUID(shop.id), clock(), TICK_S)
    assert decision is not None and decision.plan.trips
    off = client.post(
        f"/v1/riders/{rider['id']}/duty", json={"on_duty": False}, headers=shop.headers
    )
    assert off.status_code == 200
    assert _store_rechecked(engine, decision, clock()) == 0
    assert get_order(client, shop, second)["status"] == "pending"


def test_a_cancel_racing_the_store_of_a_plan_is_never_overwritten(
    client: TestClient, shop: ShopHandle, engine: Engine, clock: FakeClock
) -> None:
    """A cancel arriving while a plan is being stored, after its recheck read the order as
    pending and before its writes: the recheck holds the order's row (PostgreSQL; SQLite's
    write lock does the same), so the cancel waits for the trip's commit and then cancels the
    assigned order. Unlocked, the cancel committed first and the trip's write turned the
    cancelled order back into an assigned one."""
    on_duty_rider(client, shop)
    order = post_order(client, shop)
    decision = _plan_with_trips(engine, shop, clock)
    assert decision is not None and decision.plan.trips
    answers: list[Any] = []

    def cancel() -> None:
        answers.append(client.post(f"/v1/orders/{order['id']}/cancel", headers=shop.headers))

    assert _store_rechecked_with(engine, decision, clock(), cancel) == 1
    assert [answer.status_code for answer in answers] == [200]
    assert get_order(client, shop, order)["status"] == "cancelled"
    assert event_kinds(client, shop, order) == ["placed", "assigned", "cancelled"]


def test_two_shops_storing_plans_for_one_shared_rider_at_once_give_it_one_trip(
    client: TestClient, make_shop: Factory, engine: Engine, clock: FakeClock
) -> None:
    """Shops A and B each planned a trip for the rider they share, and store the plans at the
    same time (two workers): the second store waits for the rider's row, then finds it busy
    and stores nothing. Unlocked (PostgreSQL), both trips were stored: one rider, two trips."""
    shop_a, shop_b = make_shop(), make_shop(name="Fruit corner")
    rider = on_duty_rider(client, shop_a)
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    linked = client.post(
        f"/v1/riders/{rider['id']}/shops", json={"shop_id": shop_b.id}, headers=admin
    )
    assert linked.status_code == 200, linked.text
    post_order(client, shop_a)
    post_order(client, shop_b)
    decision_a = _plan_with_trips(engine, shop_a, clock)
    decision_b = read_decision(engine, uuid.UUID(shop_b.id), clock(), TICK_S)
    assert decision_a is not None and decision_b is not None
    assert [trip.rider_id for trip in decision_b.plan.trips] == [uuid.UUID(rider["id"])]
    stored_b: list[int] = []

    def store_b() -> None:
        stored_b.append(_store_rechecked(engine, decision_b, clock()))

    assert _store_rechecked_with(engine, decision_a, clock(), store_b) == 1
    assert stored_b == [0]
    assert count_rows(engine, "trips") == 1


def test_the_loop_skips_a_shop_whose_riders_are_all_on_a_trip(
    client: TestClient, shop: ShopHandle, engine: Engine, clock: FakeClock
) -> None:
    """The loop's plan is ``None`` while every on-duty rider of the shop has an active trip,
    and the shop is planned again as soon as one rider is free."""
    on_duty_rider(client, shop)
    post_order(client, shop)
    assert _store_rechecked(engine, _plan_with_trips(engine, shop, clock), clock()) == 1
    waiting = post_order(client, shop, external_id="A-1002")
    clock.advance(TICK_S)
    assert read_decision(engine, uuid.UUID(shop.id), clock(), TICK_S) is None
    on_duty_rider(client, shop, name="Zhang Min")
    decision = read_decision(engine, uuid.UUID(shop.id), clock(), TICK_S)
    assert decision is not None and uuid.UUID(waiting["id"]) in decision.order_updated_ats


def test_shops_waiting_are_those_with_an_order_waiting_for_a_trip(
    client: TestClient, make_shop: Factory, engine: Engine, clock: FakeClock
) -> None:
    """A shop counts while it has a pending order on no trip; its order assigned or cancelled,
    it no longer does; a shop with no order never does. In id order."""
    assigned, cancelled, waiting, idle = (make_shop() for _ in range(4))
    on_duty_rider(client, assigned)
    order_of = {shop.id: post_order(client, shop) for shop in (assigned, cancelled, waiting)}
    assert shops_waiting(engine) == sorted(
        uuid.UUID(shop.id) for shop in (assigned, cancelled, waiting)
    )
    dispatch_until_assigned(client, assigned, engine, clock, order_of[assigned.id])
    url = f"/v1/orders/{order_of[cancelled.id]['id']}/cancel"
    assert client.post(url, headers=cancelled.headers).status_code == 200
    assert shops_waiting(engine) == [uuid.UUID(waiting.id)]
    assert uuid.UUID(idle.id) not in shops_waiting(engine)
