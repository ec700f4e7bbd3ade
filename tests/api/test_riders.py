"""Tests of api/routes/riders.py: registration with shifts, reads, lists, duty, positions and
the shops a rider serves."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from api.db import writer
from api.dispatch import LEASE_TICKS, dispatch_all, lease_and_store, read_decision
from api.models import Rider, RiderDutySpan, RiderShopSpan
from tests.api.conftest import Factory
from tests.api.factories import (
    ADMIN,
    INSIDE_LAT,
    INSIDE_LON,
    START,
    TICK_S,
    FakeClock,
    ShopHandle,
    assert_error,
    count_rows,
    order_body,
    rider_body,
)


def at(text_time: str) -> datetime:
    return datetime.fromisoformat(text_time)


def iso(moment: datetime) -> str:
    return moment.isoformat()


def post_rider(client: TestClient, shop: ShopHandle, **overrides: Any) -> dict[str, Any]:
    response = client.post("/v1/riders", json=rider_body(**overrides), headers=shop.headers)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def test_create_rider(client: TestClient, shop: ShopHandle) -> None:
    """POST /v1/riders: 201, the shop's rider, off duty, no position, no shifts by default."""
    rider = post_rider(client, shop)
    assert rider["shop_id"] == shop.id
    assert (rider["name"], rider["mode"], rider["capacity_bags"]) == ("Li Wei", "ebike", 6)
    assert rider["on_duty"] is False
    assert (rider["lat"], rider["lon"], rider["located_at"]) == (None, None, None)
    assert rider["shifts"] == []
    assert at(rider["created_at"]) == START


def test_shifts_are_stored_sorted_in_utc(client: TestClient, shop: ShopHandle) -> None:
    """Shifts come back as [start, end] pairs in UTC, in time order, and survive a read."""
    later = [iso(START + timedelta(hours=6)), iso(START + timedelta(hours=10))]
    first = [iso(START), iso(START + timedelta(hours=4))]
    rider = post_rider(client, shop, shifts=[later, first])
    shifts = [[at(start), at(end)] for start, end in rider["shifts"]]
    assert shifts == [[at(first[0]), at(first[1])], [at(later[0]), at(later[1])]]
    assert all(at(value).utcoffset() == timedelta(0) for pair in rider["shifts"] for value in pair)
    assert client.get(f"/v1/riders/{rider['id']}", headers=shop.headers).json() == rider


@pytest.mark.parametrize(
    "shifts",
    [
        pytest.param([[iso(START), iso(START)]], id="empty"),
        pytest.param([[iso(START + timedelta(hours=1)), iso(START)]], id="backwards"),
        pytest.param([[iso(START), iso(START + timedelta(hours=25))]], id="over-a-day"),
        pytest.param(
            [
                [iso(START), iso(START + timedelta(hours=4))],
                [iso(START + timedelta(hours=3)), iso(START + timedelta(hours=5))],
            ],
            id="overlap",
        ),
        pytest.param([[iso(START)]], id="one-end"),
        pytest.param([[iso(START), iso(START), iso(START)]], id="three-ends"),
        pytest.param([["2026-11-29T09:00:00", "2026-11-29T17:00:00"]], id="naive"),
        pytest.param([["yesterday", "today"]], id="text"),
        pytest.param([["0001-01-01T00:00:00+01:00", iso(START)]], id="year-1"),
        pytest.param([[iso(START), iso(START + timedelta(hours=1))]] * 51, id="too-many"),
        pytest.param({"start": iso(START)}, id="object"),
    ],
)
def test_bad_shifts_are_422(
    client: TestClient, shop: ShopHandle, engine: Engine, shifts: Any
) -> None:
    """Malformed, backwards, over-long or overlapping shifts get 422 and store no rider."""
    response = client.post("/v1/riders", json=rider_body(shifts=shifts), headers=shop.headers)
    body = assert_error(response, 422, "validation_error")
    assert "shifts" in body["message"]
    assert count_rows(engine, "riders") + count_rows(engine, "rider_shifts") == 0


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param({"mode": "car"}, id="mode-car"),
        pytest.param({"capacity_bags": 0}, id="capacity-0"),
        pytest.param({"capacity_bags": 51}, id="capacity-51"),
        pytest.param({"name": ""}, id="empty-name"),
        pytest.param({"name": "n" * 101}, id="long-name"),
        pytest.param({"name": "a\x00b"}, id="nul-name"),
        pytest.param({"phone": "123"}, id="unknown-field"),
        pytest.param({"on_duty": True}, id="on-duty-given"),
        pytest.param({"shop_id": "00000000-0000-4000-8000-000000000000"}, id="shop-given"),
    ],
)
def test_bad_rider_is_422(
    client: TestClient, shop: ShopHandle, engine: Engine, fields: dict[str, Any]
) -> None:
    """Each bad rider body gets 422 and stores nothing."""
    response = client.post("/v1/riders", json=rider_body(**fields), headers=shop.headers)
    assert_error(response, 422, "validation_error")
    assert count_rows(engine, "riders") == 0


def test_every_mode_is_accepted(client: TestClient, shop: ShopHandle) -> None:
    """walk, bike and ebike riders can be registered; capacity 1 is the least."""
    for mode in ("walk", "bike", "ebike"):
        assert post_rider(client, shop, mode=mode, capacity_bags=1)["mode"] == mode


def test_list_riders(client: TestClient, shop: ShopHandle, clock: FakeClock) -> None:
    """GET /v1/riders: {data, count}, oldest first, with an on_duty filter and paging."""
    riders = []
    for name in ("A", "B", "C"):
        riders.append(post_rider(client, shop, name=name))
        clock.advance(1)
    client.post(f"/v1/riders/{riders[1]['id']}/duty", json={"on_duty": True}, headers=shop.headers)
    listed = client.get("/v1/riders", headers=shop.headers).json()
    assert listed["count"] == 3
    assert [rider["name"] for rider in listed["data"]] == ["A", "B", "C"]
    on = client.get("/v1/riders", params={"on_duty": "true"}, headers=shop.headers).json()
    assert (on["count"], [rider["name"] for rider in on["data"]]) == (1, ["B"])
    page = client.get("/v1/riders", params={"skip": 1, "limit": 1}, headers=shop.headers).json()
    assert (page["count"], [rider["name"] for rider in page["data"]]) == (3, ["B"])


def test_duty_on_and_off(client: TestClient, shop: ShopHandle) -> None:
    """POST /v1/riders/{id}/duty switches on_duty; the same value twice changes nothing."""
    rider = post_rider(client, shop)
    url = f"/v1/riders/{rider['id']}/duty"
    for value in (True, True, False):
        response = client.post(url, json={"on_duty": value}, headers=shop.headers)
        assert response.status_code == 200, response.text
        assert response.json()["on_duty"] is value
    read = client.get(f"/v1/riders/{rider['id']}", headers=shop.headers).json()
    assert read["on_duty"] is False


def duty_spans(engine: Engine, rider_id: str) -> list[tuple[datetime, datetime | None]]:
    with Session(engine) as session:
        spans = session.exec(
            select(RiderDutySpan)
            .where(RiderDutySpan.rider_id == uuid.UUID(rider_id))
            .order_by(col(RiderDutySpan.start_at))
        ).all()
        return [(span.start_at, span.end_at) for span in spans]


def test_duty_spans_follow_on_duty(
    client: TestClient, shop: ShopHandle, engine: Engine, clock: FakeClock
) -> None:
    """Going on duty opens a span at the service's time, on duty again keeps it, going off
    closes it then (off again changes nothing), and on duty once more opens a second one."""
    rider = post_rider(client, shop)
    url = f"/v1/riders/{rider['id']}/duty"
    hour = timedelta(hours=1)
    for value in (True, True, False, False, True):
        assert client.post(url, json={"on_duty": value}, headers=shop.headers).status_code == 200
        clock.advance(hour.total_seconds())
    assert duty_spans(engine, rider["id"]) == [(START, START + 2 * hour), (START + 4 * hour, None)]


def test_a_second_open_duty_span_is_refused(
    client: TestClient, shop: ShopHandle, engine: Engine
) -> None:
    """The partial unique index: a rider never has two open duty spans, whatever writes them."""
    rider = post_rider(client, shop)
    client.post(f"/v1/riders/{rider['id']}/duty", json={"on_duty": True}, headers=shop.headers)
    with Session(writer(engine)) as session:
        session.add(RiderDutySpan(rider_id=uuid.UUID(rider["id"]), start_at=START))
        with pytest.raises(IntegrityError):
            session.commit()
    assert count_rows(engine, "rider_duty_spans") == 1


@pytest.mark.parametrize(
    "body", [{}, {"on_duty": "yes"}, {"on_duty": 1}, {"on_duty": None}, {"on_duty": True, "x": 1}]
)
def test_bad_duty_is_422(client: TestClient, shop: ShopHandle, body: dict[str, Any]) -> None:
    """on_duty must be a JSON boolean, and nothing else is accepted."""
    rider = post_rider(client, shop)
    response = client.post(f"/v1/riders/{rider['id']}/duty", json=body, headers=shop.headers)
    assert_error(response, 422, "validation_error")


def test_location_is_stored_with_its_time(
    client: TestClient, shop: ShopHandle, clock: FakeClock
) -> None:
    """A position without ``at`` is stamped with the service's clock; with ``at``, that time."""
    rider = post_rider(client, shop)
    url = f"/v1/riders/{rider['id']}/location"
    clock.advance(60)
    body = {"lat": INSIDE_LAT, "lon": INSIDE_LON}
    moved = client.post(url, json=body, headers=shop.headers).json()
    assert (moved["lat"], moved["lon"]) == (INSIDE_LAT, INSIDE_LON)
    assert at(moved["located_at"]) == START + timedelta(seconds=60)
    clock.advance(60)
    given = iso(START + timedelta(seconds=100))
    moved = client.post(url, json={"lat": 34.6, "lon": 119.22, "at": given}, headers=shop.headers)
    assert (moved.json()["lat"], at(moved.json()["located_at"])) == (34.6, at(given))
    assert client.get(f"/v1/riders/{rider['id']}", headers=shop.headers).json() == moved.json()


def test_older_location_is_ignored(client: TestClient, shop: ShopHandle, clock: FakeClock) -> None:
    """A position older than the stored one (out-of-order report) leaves the newer one."""
    rider = post_rider(client, shop)
    url = f"/v1/riders/{rider['id']}/location"
    clock.advance(120)
    client.post(url, json={"lat": 34.6, "lon": 119.22}, headers=shop.headers)
    stale = {"lat": 34.0, "lon": 119.0, "at": iso(START)}
    kept = client.post(url, json=stale, headers=shop.headers).json()
    assert (kept["lat"], at(kept["located_at"])) == (34.6, START + timedelta(seconds=120))


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"lat": 91, "lon": 119.2}, "validation_error"),
        ({"lat": 34.6, "lon": -181}, "validation_error"),
        ({"lat": 34.6}, "validation_error"),
        ({"lat": "north", "lon": 119.2}, "validation_error"),
        ({"lat": 34.6, "lon": 119.2, "at": "2026-11-29T09:00:00"}, "validation_error"),
        ({"lat": 34.6, "lon": 119.2, "at": "0001-01-01T00:00:00+01:00"}, "validation_error"),
        ({"lat": 34.6, "lon": 119.2, "speed": 3}, "validation_error"),
        (
            {"lat": 34.6, "lon": 119.2, "at": iso(START + timedelta(minutes=3))},
            "location_in_future",
        ),
    ],
)
def test_bad_location_is_422(
    client: TestClient, shop: ShopHandle, body: dict[str, Any], code: str
) -> None:
    """Out-of-range, missing, naive-time, unknown-field and future positions get 422, unstored."""
    rider = post_rider(client, shop)
    url = f"/v1/riders/{rider['id']}/location"
    assert_error(client.post(url, json=body, headers=shop.headers), 422, code)
    assert client.get(f"/v1/riders/{rider['id']}", headers=shop.headers).json() == rider


def test_nan_location_is_422(client: TestClient, shop: ShopHandle) -> None:
    """NaN and Infinity are not positions."""
    rider = post_rider(client, shop)
    url = f"/v1/riders/{rider['id']}/location"
    for content in (b'{"lat": NaN, "lon": 119.2}', b'{"lat": 34.6, "lon": Infinity}'):
        headers = {**shop.headers, "Content-Type": "application/json"}
        assert_error(client.post(url, content=content, headers=headers), 422)


def test_rider_routes_need_a_key_and_a_real_rider(client: TestClient, shop: ShopHandle) -> None:
    """No key is 401; an unknown or malformed rider id is 404 or 422."""
    assert_error(client.post("/v1/riders", json=rider_body()), 401, "unauthorized")
    assert_error(client.get("/v1/riders"), 401, "unauthorized")
    missing = "00000000-0000-4000-8000-000000000000"
    assert_error(client.get(f"/v1/riders/{missing}", headers=shop.headers), 404, "not_found")
    response = client.post(
        f"/v1/riders/{missing}/duty", json={"on_duty": True}, headers=shop.headers
    )
    assert_error(response, 404, "not_found")
    assert_error(client.get("/v1/riders/7", headers=shop.headers), 422, "validation_error")


def test_admin_links_a_rider_to_another_shop(
    client: TestClient, make_shop: Factory, engine: Engine
) -> None:
    """POST /v1/riders/{id}/shops (admin): the rider serves both shops, home first; linking again
    changes nothing; one link row per shop."""
    home, other = make_shop(), make_shop(name="Fruit corner")
    rider = post_rider(client, home)
    url = f"/v1/riders/{rider['id']}/shops"
    expected = {"rider_id": rider["id"], "home_shop_id": home.id, "shop_ids": [home.id, other.id]}
    for _ in range(2):
        response = client.post(url, json={"shop_id": other.id}, headers=ADMIN)
        assert (response.status_code, response.json()) == (200, expected)
    same = client.post(url, json={"shop_id": home.id}, headers=ADMIN)
    assert same.json() == expected
    assert count_rows(engine, "rider_shops") == 2
    assert client.get(f"/v1/riders/{rider['id']}", headers=other.headers).json() == rider


def test_linking_needs_the_admin_and_existing_objects(
    client: TestClient, make_shop: Factory, engine: Engine
) -> None:
    """A shop key, even the rider's home shop's, gets 401; a missing rider or shop 404; a bad
    body 422; nothing is linked."""
    home, other = make_shop(), make_shop(name="Fruit corner")
    rider = post_rider(client, home)
    url = f"/v1/riders/{rider['id']}/shops"
    body = {"shop_id": other.id}
    for headers in (home.headers, other.headers, {}):
        assert_error(client.post(url, json=body, headers=headers), 401, "unauthorized")
    missing = "00000000-0000-4000-8000-000000000000"
    assert_error(
        client.post(f"/v1/riders/{missing}/shops", json=body, headers=ADMIN), 404, "not_found"
    )
    assert_error(client.post(url, json={"shop_id": missing}, headers=ADMIN), 404, "not_found")
    for bad in ({}, {"shop_id": "nope"}, {"shop_id": other.id, "extra": 1}, [other.id]):
        assert_error(client.post(url, json=bad, headers=ADMIN), 422)
    assert count_rows(engine, "rider_shops") == 1


def linked_rider(client: TestClient, home: ShopHandle, other: ShopHandle) -> dict[str, Any]:
    """A rider of ``home`` on duty, linked to ``other`` too."""
    rider = post_rider(client, home)
    linked = client.post(
        f"/v1/riders/{rider['id']}/shops", json={"shop_id": other.id}, headers=ADMIN
    )
    assert linked.status_code == 200, linked.text
    duty = client.post(
        f"/v1/riders/{rider['id']}/duty", json={"on_duty": True}, headers=home.headers
    )
    assert duty.status_code == 200, duty.text
    return rider


def test_admin_unlinks_a_rider_from_a_shop(
    client: TestClient, make_shop: Factory, engine: Engine
) -> None:
    """DELETE /v1/riders/{id}/shops/{shop_id} (admin): the rider serves its home shop only and
    the other shop's key no longer sees it; unlinking again changes nothing; the home shop is
    409 ``home_shop``; a shop key 401, a missing rider or shop 404."""
    home, other = make_shop(), make_shop(name="Fruit corner")
    rider = linked_rider(client, home, other)
    url = f"/v1/riders/{rider['id']}/shops/{other.id}"
    for headers in (home.headers, other.headers, {}):
        assert_error(client.delete(url, headers=headers), 401, "unauthorized")
    expected = {"rider_id": rider["id"], "home_shop_id": home.id, "shop_ids": [home.id]}
    for _ in range(2):
        response = client.delete(url, headers=ADMIN)
        assert (response.status_code, response.json()) == (200, expected)
    assert count_rows(engine, "rider_shops") == 1
    assert_error(client.get(f"/v1/riders/{rider['id']}", headers=other.headers), 404, "not_found")
    assert client.get(f"/v1/riders/{rider['id']}", headers=home.headers).status_code == 200
    home_url = f"/v1/riders/{rider['id']}/shops/{home.id}"
    assert_error(client.delete(home_url, headers=ADMIN), 409, "home_shop")
    missing = "00000000-0000-4000-8000-000000000000"
    assert_error(
        client.delete(f"/v1/riders/{missing}/shops/{other.id}", headers=ADMIN), 404, "not_found"
    )
    assert_error(
        client.delete(f"/v1/riders/{rider['id']}/shops/{missing}", headers=ADMIN), 404, "not_found"
    )
    assert count_rows(engine, "rider_shops") == 1


def test_a_rider_carrying_a_trip_of_the_shop_is_not_unlinked(
    client: TestClient, make_shop: Factory, engine: Engine, clock: FakeClock
) -> None:
    """While the rider carries a trip of the linked shop, unlinking it is 409
    ``trip_in_progress`` and nothing changes; once delivered it is unlinked."""
    home, other = make_shop(), make_shop(name="Fruit corner")
    rider = linked_rider(client, home, other)
    order = client.post("/v1/orders", json=order_body(external_id="F-1"), headers=other.headers)
    assert order.status_code == 201, order.text
    assert dispatch_all(engine, clock(), TICK_S) == 1
    trip = client.get(f"/v1/riders/{rider['id']}/trip", headers=other.headers).json()
    url = f"/v1/riders/{rider['id']}/shops/{other.id}"
    assert_error(client.delete(url, headers=ADMIN), 409, "trip_in_progress")
    assert count_rows(engine, "rider_shops") == 2
    pickup = client.post(f"/v1/trips/{trip['id']}/pickup", headers=other.headers)
    assert pickup.status_code == 200, pickup.text
    order_id = order.json()["id"]
    delivered = client.post(
        f"/v1/orders/{order_id}/deliver", json={"pin": order.json()["pin"]}, headers=other.headers
    )
    assert delivered.status_code == 200, delivered.text
    assert client.delete(url, headers=ADMIN).status_code == 200
    assert count_rows(engine, "rider_shops") == 1


def shop_spans(
    engine: Engine, rider_id: str
) -> list[tuple[uuid.UUID, datetime | None, datetime | None]]:
    with Session(engine) as session:
        spans = session.exec(
            select(RiderShopSpan)
            .where(RiderShopSpan.rider_id == uuid.UUID(rider_id))
            .order_by(col(RiderShopSpan.id))
        ).all()
        return [(span.shop_id, span.linked_at, span.unlinked_at) for span in spans]


def test_link_spans_follow_the_links(
    client: TestClient, make_shop: Factory, engine: Engine, clock: FakeClock
) -> None:
    """The home shop is served since ever; linking opens a span at the service's time (linking
    again keeps it), unlinking closes it then (unlinking again changes nothing), and linking
    once more opens a second one: the rider serves the shop again and its key sees the rider."""
    home, other = make_shop(), make_shop(name="Fruit corner")
    rider = post_rider(client, home)
    url = f"/v1/riders/{rider['id']}/shops"
    hour = timedelta(hours=1)
    for method in ("link", "link", "unlink", "unlink", "link"):
        if method == "link":
            response = client.post(url, json={"shop_id": other.id}, headers=ADMIN)
        else:
            response = client.delete(f"{url}/{other.id}", headers=ADMIN)
        assert response.status_code == 200, response.text
        clock.advance(hour.total_seconds())
    assert response.json()["shop_ids"] == [home.id, other.id]
    assert client.get(f"/v1/riders/{rider['id']}", headers=other.headers).json() == rider
    home_id, other_id = uuid.UUID(home.id), uuid.UUID(other.id)
    assert shop_spans(engine, rider["id"]) == [
        (home_id, None, None),
        (other_id, START, START + 2 * hour),
        (other_id, START + 4 * hour, None),
    ]
    assert count_rows(engine, "rider_shops") == 2


def test_a_second_open_link_span_is_refused(
    client: TestClient, make_shop: Factory, engine: Engine
) -> None:
    """The partial unique index: a rider never has two open spans for one shop, whatever
    writes them; one for another shop is fine."""
    home, other = make_shop(), make_shop(name="Fruit corner")
    rider_id = uuid.UUID(post_rider(client, home)["id"])
    with Session(writer(engine)) as session:
        session.add(RiderShopSpan(rider_id=rider_id, shop_id=uuid.UUID(home.id), linked_at=START))
        with pytest.raises(IntegrityError):
            session.commit()
    with Session(writer(engine)) as session:
        session.add(RiderShopSpan(rider_id=rider_id, shop_id=uuid.UUID(other.id), linked_at=START))
        session.commit()
    assert count_rows(engine, "rider_shop_spans") == 2


def test_a_plan_made_before_the_unlink_is_not_stored(
    client: TestClient, make_shop: Factory, engine: Engine, clock: FakeClock
) -> None:
    """A shop planned outside the write with a rider the admin then unlinks stores no trip for
    that rider (the store rechecks who serves the shop); the order stays pending."""
    home, other = make_shop(), make_shop(name="Fruit corner")
    rider = linked_rider(client, home, other)
    order = client.post("/v1/orders", json=order_body(external_id="F-1"), headers=other.headers)
    assert order.status_code == 201, order.text
    decision = read_decision(engine, uuid.UUID(other.id), clock(), TICK_S)
    assert decision is not None and len(decision.plan.trips) == 1
    unlink = client.delete(f"/v1/riders/{rider['id']}/shops/{other.id}", headers=ADMIN)
    assert unlink.status_code == 200, unlink.text
    with Session(writer(engine)) as session:
        stored = lease_and_store(session, decision, "w1", clock(), LEASE_TICKS * TICK_S)
        session.commit()
    assert stored == 0 and count_rows(engine, "trips") == 0
    status = client.get(f"/v1/orders/{order.json()['id']}", headers=other.headers).json()
    assert status["status"] == "pending"


def test_the_home_shop_changes_a_riders_profile_and_shifts(
    client: TestClient, shop: ShopHandle
) -> None:
    """PATCH /v1/riders/{id}: name, mode and capacity change; ``shifts`` replaces them from now
    on, here all of them (sorted, in UTC), and ``[]`` clears them; fields left out stay."""
    rider = post_rider(client, shop, shifts=[[iso(START), iso(START + timedelta(hours=8))]])
    url = f"/v1/riders/{rider['id']}"
    late = [
        [iso(START + timedelta(hours=30)), iso(START + timedelta(hours=34))],
        ["2026-11-30T09:00:00+08:00", "2026-11-30T13:00:00+08:00"],
    ]
    changed = client.patch(
        url, json={"mode": "walk", "capacity_bags": 4, "shifts": late}, headers=shop.headers
    )
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert (body["name"], body["mode"], body["capacity_bags"]) == ("Li Wei", "walk", 4)
    assert [[at(a), at(b)] for a, b in body["shifts"]] == sorted([[at(a), at(b)] for a, b in late])
    assert body["shifts"][0][0] == "2026-11-30T01:00:00Z"  # 09:00 in Shanghai, in UTC
    assert client.get(url, headers=shop.headers).json() == body
    renamed = client.patch(url, json={"name": "Li Wei (e-bike)"}, headers=shop.headers).json()
    assert renamed == {**body, "name": "Li Wei (e-bike)"}
    cleared = client.patch(url, json={"shifts": []}, headers=shop.headers).json()
    assert cleared["shifts"] == [] and cleared["mode"] == "walk"


def shifts_version(engine: Engine, rider_id: str) -> int:
    with Session(engine) as session:
        rider = session.get(Rider, uuid.UUID(rider_id))
        assert rider is not None
        return rider.shifts_version


def hours(*pairs: tuple[float, float]) -> list[list[str]]:
    """Shifts as the API answers them (UTC, ``Z``), ``pairs`` in hours from the clock's start."""

    def shown(hour: float) -> str:
        return (START + timedelta(hours=hour)).astimezone(UTC).isoformat().replace("+00:00", "Z")

    return [[shown(start), shown(end)] for start, end in pairs]


def test_a_shift_change_replaces_the_shifts_from_now_on(
    client: TestClient, shop: ShopHandle, engine: Engine, clock: FakeClock
) -> None:
    """Shifts declared a day ahead: at +12 h the ongoing one (+7 to +15) extended to +17 stays
    one shift, the one ahead moves and the day before stays; ``[]`` at +13 h ends the ongoing
    shift then and drops the one ahead; each change adds one to ``shifts_version``."""
    clock.now = START - timedelta(days=1)
    declared = hours((-20, -16), (7, 15), (18, 20))
    rider = post_rider(client, shop, shifts=declared)
    assert rider["shifts"] == declared  # registration keeps shifts in the past
    url = f"/v1/riders/{rider['id']}"
    clock.now = START + timedelta(hours=12)
    changed = client.patch(url, json={"shifts": hours((7, 17), (19, 21))}, headers=shop.headers)
    assert changed.status_code == 200, changed.text
    assert changed.json()["shifts"] == hours((-20, -16), (7, 17), (19, 21))
    assert client.get(url, headers=shop.headers).json() == changed.json()
    assert shifts_version(engine, rider["id"]) == 1
    clock.now = START + timedelta(hours=13)
    cleared = client.patch(url, json={"shifts": []}, headers=shop.headers)
    assert cleared.json()["shifts"] == hours((-20, -16), (7, 13))
    assert shifts_version(engine, rider["id"]) == 2


def test_a_shift_change_only_in_the_past_changes_nothing(
    client: TestClient, shop: ShopHandle, engine: Engine, clock: FakeClock
) -> None:
    """At +12 h, shifts differing from the stored ones only before now (an earlier start of the
    ongoing shift, a past shift left out, another added) store nothing new and keep the
    shifts' version, so a plan made before stays valid."""
    rider = post_rider(client, shop, shifts=hours((1, 3), (7, 15), (18, 20)))
    url = f"/v1/riders/{rider['id']}"
    clock.now = START + timedelta(hours=12)
    for pairs in [((7, 15), (18, 20)), ((4, 5), (5.5, 15), (18, 20)), ((1, 3), (7, 15), (18, 20))]:
        sent = client.patch(url, json={"shifts": hours(*pairs)}, headers=shop.headers)
        assert sent.status_code == 200, sent.text
        assert sent.json() == rider
    assert shifts_version(engine, rider["id"]) == 0


def test_a_rider_shows_its_latest_shifts_and_they_go_back_unchanged(
    client: TestClient, shop: ShopHandle, engine: Engine, clock: FakeClock
) -> None:
    """50 shifts declared at registration, the days before, and 3 more sent later: 53 stored
    (the KPIs count them all), the rider shows the latest 50, oldest first, on every read. That
    list sent back in a PATCH is accepted and changes nothing."""
    past = hours(*[(-100 + 2 * day, -99 + 2 * day) for day in range(50)])  # -100 h to -1 h
    rider = post_rider(client, shop, shifts=past)
    url = f"/v1/riders/{rider['id']}"
    clock.now = START + timedelta(hours=1)
    ahead = hours((2, 4), (5, 7), (8, 10))
    changed = client.patch(url, json={"shifts": ahead}, headers=shop.headers)
    assert changed.status_code == 200, changed.text
    assert count_rows(engine, "rider_shifts") == 53
    assert changed.json()["shifts"] == past[3:] + ahead
    listed = client.get("/v1/riders", headers=shop.headers).json()["data"]
    on_duty = client.post(f"{url}/duty", json={"on_duty": True}, headers=shop.headers).json()
    assert [listed[0]["shifts"], on_duty["shifts"]] == [past[3:] + ahead] * 2
    again = client.patch(url, json={"shifts": changed.json()["shifts"]}, headers=shop.headers)
    assert again.status_code == 200, again.text
    assert again.json()["shifts"] == past[3:] + ahead
    assert (count_rows(engine, "rider_shifts"), shifts_version(engine, rider["id"])) == (53, 1)


def test_a_shift_over_24_hours_once_joined_to_its_past_is_422(
    client: TestClient, shop: ShopHandle, engine: Engine, clock: FakeClock
) -> None:
    """A shift running since 20 hours ago extended by 6 from now would last 26 hours: 422
    naming ``shifts``, and nothing of the change (not even its name) is stored."""
    rider = post_rider(client, shop, shifts=hours((0, 22)))
    url = f"/v1/riders/{rider['id']}"
    clock.now = START + timedelta(hours=20)
    body = {"name": "Li Wei (late)", "shifts": hours((20, 26))}
    response = client.patch(url, json=body, headers=shop.headers)
    message = assert_error(response, 422, "validation_error")["message"]
    assert "shifts" in message
    assert client.get(url, headers=shop.headers).json() == rider
    assert shifts_version(engine, rider["id"]) == 0
    shorter = client.patch(url, json={"shifts": hours((20, 24))}, headers=shop.headers)
    assert shorter.json()["shifts"] == hours((0, 24))


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"capacity_bags": 0}, "capacity_bags"),
        ({"mode": "horse"}, "mode"),
        ({"name": ""}, "name"),
        ({"name": None}, "name"),
        ({"shifts": None}, "shifts"),
        ({"shop_id": str(uuid.UUID(int=1))}, "shop_id"),
        ({"shifts": [["2026-11-29T10:00:00+00:00", "2026-11-29T09:00:00+00:00"]]}, "shifts"),
        (
            {
                "shifts": [
                    ["2026-11-29T08:00:00+00:00", "2026-11-29T12:00:00+00:00"],
                    ["2026-11-29T11:00:00+00:00", "2026-11-29T13:00:00+00:00"],
                ]
            },
            "shifts",
        ),
    ],
)
def test_a_bad_rider_change_is_422_and_changes_nothing(
    client: TestClient, shop: ShopHandle, body: dict[str, Any], field: str
) -> None:
    rider = post_rider(client, shop)
    url = f"/v1/riders/{rider['id']}"
    response = client.patch(url, json=body, headers=shop.headers)
    assert_error(response, 422)
    assert field in response.json()["message"]
    assert client.get(url, headers=shop.headers).json() == rider


def test_only_the_home_shop_changes_a_rider(client: TestClient, make_shop: Factory) -> None:
    """A shop the rider serves through the admin's link sees it but gets 403 changing it; an
    unrelated shop gets 404, no key 401."""
    home, other, stranger = make_shop(), make_shop(name="Fruit corner"), make_shop(name="Pharmacy")
    rider = linked_rider(client, home, other)
    url = f"/v1/riders/{rider['id']}"
    assert_error(
        client.patch(url, json={"capacity_bags": 2}, headers=other.headers), 403, "not_home_shop"
    )
    assert_error(client.patch(url, json={"capacity_bags": 2}, headers=stranger.headers), 404)
    assert_error(client.patch(url, json={"capacity_bags": 2}), 401)
    assert client.get(url, headers=home.headers).json()["capacity_bags"] == 6


def test_a_plan_made_before_a_capacity_change_is_not_stored(
    client: TestClient, shop: ShopHandle, engine: Engine, clock: FakeClock
) -> None:
    """A plan made outside the write with the rider's old capacity stores no trip once the home
    shop lowered it; the order stays pending and the next plan uses the new capacity."""
    rider = post_rider(client, shop)
    client.post(f"/v1/riders/{rider['id']}/duty", json={"on_duty": True}, headers=shop.headers)
    order = client.post("/v1/orders", json=order_body(size_bags=3), headers=shop.headers)
    assert order.status_code == 201, order.text
    decision = read_decision(engine, uuid.UUID(shop.id), clock(), TICK_S)
    assert decision is not None and len(decision.plan.trips) == 1
    lowered = client.patch(
        f"/v1/riders/{rider['id']}", json={"capacity_bags": 2}, headers=shop.headers
    )
    assert lowered.status_code == 200, lowered.text
    with Session(writer(engine)) as session:
        stored = lease_and_store(session, decision, "w1", clock(), LEASE_TICKS * TICK_S)
        session.commit()
    assert stored == 0 and count_rows(engine, "trips") == 0
    status = client.get(f"/v1/orders/{order.json()['id']}", headers=shop.headers).json()
    assert status["status"] == "pending"
    clock.advance(TICK_S)
    replanned = read_decision(engine, uuid.UUID(shop.id), clock(), TICK_S)
    assert replanned is not None and replanned.plan.trips == []  # 3 bags do not fit in 2


def test_a_plan_made_before_a_shift_change_is_not_stored(
    client: TestClient, shop: ShopHandle, engine: Engine, clock: FakeClock
) -> None:
    """A plan made outside the write, its trip departing within the rider's shift, stores no
    trip once the home shop moved the shift two hours later; the order stays pending, the next
    plan has no trip before the new shift, and the order is dispatched when it starts."""
    rider = post_rider(client, shop, shifts=[[iso(START), iso(START + timedelta(hours=8))]])
    client.post(f"/v1/riders/{rider['id']}/duty", json={"on_duty": True}, headers=shop.headers)
    order = client.post("/v1/orders", json=order_body(), headers=shop.headers)
    assert order.status_code == 201, order.text
    decision = read_decision(engine, uuid.UUID(shop.id), clock(), TICK_S)
    assert decision is not None and len(decision.plan.trips) == 1
    later = [[iso(START + timedelta(hours=2)), iso(START + timedelta(hours=10))]]
    moved = client.patch(f"/v1/riders/{rider['id']}", json={"shifts": later}, headers=shop.headers)
    assert moved.status_code == 200, moved.text
    with Session(writer(engine)) as session:
        stored = lease_and_store(session, decision, "w1", clock(), LEASE_TICKS * TICK_S)
        session.commit()
    assert stored == 0 and count_rows(engine, "trips") == 0
    url = f"/v1/orders/{order.json()['id']}"
    assert client.get(url, headers=shop.headers).json()["status"] == "pending"
    clock.advance(TICK_S)
    replanned = read_decision(engine, uuid.UUID(shop.id), clock(), TICK_S)
    assert replanned is not None and replanned.plan.trips == []
    clock.now = START + timedelta(hours=2)
    decision = read_decision(engine, uuid.UUID(shop.id), clock(), TICK_S)
    assert decision is not None and len(decision.plan.trips) == 1
    with Session(writer(engine)) as session:
        stored = lease_and_store(session, decision, "w1", clock(), LEASE_TICKS * TICK_S)
        session.commit()
    assert stored == 1
    assigned = client.get(url, headers=shop.headers).json()
    assert assigned["status"] == "assigned"
    trip = client.get(f"/v1/riders/{rider['id']}/trip", headers=shop.headers).json()
    assert START + timedelta(hours=2) <= at(trip["depart_at"]) <= START + timedelta(hours=10)


def test_a_change_leaving_the_shifts_as_they_are_keeps_the_plan(
    client: TestClient, shop: ShopHandle, engine: Engine, clock: FakeClock
) -> None:
    """A PATCH giving the same shifts again, or changing only the name, between the plan and
    its store does not drop the plan's trip (its shifts did not change)."""
    shifts = [[iso(START), iso(START + timedelta(hours=8))]]
    rider = post_rider(client, shop, shifts=shifts)
    client.post(f"/v1/riders/{rider['id']}/duty", json={"on_duty": True}, headers=shop.headers)
    assert client.post("/v1/orders", json=order_body(), headers=shop.headers).status_code == 201
    decision = read_decision(engine, uuid.UUID(shop.id), clock(), TICK_S)
    assert decision is not None and len(decision.plan.trips) == 1
    url = f"/v1/riders/{rider['id']}"
    for change in ({"shifts": shifts}, {"name": "Li Wei (e-bike)"}):
        assert client.patch(url, json=change, headers=shop.headers).status_code == 200
    with Session(writer(engine)) as session:
        stored = lease_and_store(session, decision, "w1", clock(), LEASE_TICKS * TICK_S)
        session.commit()
    assert stored == 1
