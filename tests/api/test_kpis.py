"""Tests of api/kpis.py and GET /v1/shops/{id}/kpis: a day of orders with hand-checked counts,
on-time rate, click-to-door mean and p90, rider hours, and who may read them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from api.kpis import merged_seconds
from tests.api.conftest import Factory
from tests.api.factories import (
    ADMIN,
    TICK_S,
    FakeClock,
    ShopHandle,
    assert_error,
    count_rows,
    order_body,
    rider_body,
    run_dispatch,
    shop_body,
)

# FakeClock's start, 09:00 in Shanghai, is 01:00 UTC on 29 November.
T = datetime(2026, 11, 29, 1, 0, tzinfo=UTC)


def utc(day: int, hour: int) -> str:
    return datetime(2026, 11, day, hour, 0, tzinfo=UTC).isoformat()


def rider(client: TestClient, shop: ShopHandle, shifts: list[list[str]], on_duty: bool) -> str:
    """A new rider of ``shop`` with these shifts, put on duty now if ``on_duty``; its id."""
    created = client.post("/v1/riders", json=rider_body(shifts=shifts), headers=shop.headers)
    assert created.status_code == 201, created.text
    rider_id: str = created.json()["id"]
    if on_duty:
        duty(client, shop, rider_id, True)
    return rider_id


def duty(client: TestClient, shop: ShopHandle, rider_id: str, on_duty: bool) -> None:
    response = client.post(
        f"/v1/riders/{rider_id}/duty", json={"on_duty": on_duty}, headers=shop.headers
    )
    assert response.status_code == 200, response.text
    assert response.json()["on_duty"] is on_duty


def place(client: TestClient, shop: ShopHandle, external_id: str) -> dict[str, Any]:
    body = order_body(external_id=external_id, size_bags=1)
    response = client.post("/v1/orders", json=body, headers=shop.headers)
    assert response.status_code == 201, response.text
    placed: dict[str, Any] = response.json()
    return placed


def dispatch_and_pick_up(
    client: TestClient, engine: Engine, clock: FakeClock, shop: ShopHandle, order: dict[str, Any]
) -> None:
    """Tick the shop's dispatch until ``order`` is assigned, then pick its trip up."""
    for _ in range(10):
        run_dispatch(engine, shop.id, clock())
        assigned = client.get(f"/v1/orders/{order['id']}", headers=shop.headers).json()
        if assigned["status"] == "assigned":
            break
        clock.advance(TICK_S)
    picked = client.post(f"/v1/trips/{assigned['trip_id']}/pickup", headers=shop.headers)
    assert picked.status_code == 200, picked.text


def work_a_delivery(
    client: TestClient,
    engine: Engine,
    clock: FakeClock,
    home: ShopHandle,
    served: ShopHandle,
    rider_id: str,
) -> None:
    """28 Nov 02:00 to 06:00 on duty (through ``home``), delivering one order of ``served``."""
    clock.now = datetime(2026, 11, 28, 2, 0, tzinfo=UTC)
    duty(client, home, rider_id, True)
    order = place(client, served, "A")
    dispatch_and_pick_up(client, engine, clock, served, order)
    url = f"/v1/orders/{order['id']}/deliver"
    assert client.post(url, json={"pin": order["pin"]}, headers=served.headers).status_code == 200
    clock.now = datetime(2026, 11, 28, 6, 0, tzinfo=UTC)
    duty(client, home, rider_id, False)


def kpis(client: TestClient, shop: ShopHandle, **params: str) -> dict[str, Any]:
    response = client.get(f"/v1/shops/{shop.id}/kpis", params=params, headers=shop.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_a_hand_checked_day(
    client: TestClient, make_shop: Factory, engine: Engine, clock: FakeClock
) -> None:
    """29 Nov: A, B, C delivered after 600, 900 and 2100 s (C late, promise 1800 s), D cancelled,
    E open: 5 orders, on time 2 / 4, mean 1200 s, p90 900 + 0.8 * 1200 = 1860 s; riders on
    shifts 4 h and 2 h + 1 h in the day: 7 h, 3 / 7 orders per rider-hour. F, placed on 28 Nov,
    counts only there."""
    shop, other = make_shop(), make_shop(name="Fruit corner")
    rider(client, shop, [[utc(29, 0), utc(29, 4)]], on_duty=True)
    rider(client, shop, [[utc(28, 22), utc(29, 2)], [utc(29, 10), utc(29, 11)]], on_duty=True)
    rider(client, shop, [], on_duty=False)  # no declared shift, never on duty: no hours
    rider(client, other, [[utc(29, 0), utc(29, 12)]], on_duty=True)  # another shop's

    clock.now = T - timedelta(hours=2)
    place(client, shop, "F")
    clock.now = T
    a, b, c, d = (place(client, shop, name) for name in "ABCD")
    cancel = client.post(f"/v1/orders/{d['id']}/cancel", headers=shop.headers)
    assert cancel.json()["status"] == "cancelled"
    for _ in range(10):
        run_dispatch(engine, shop.id, clock())
        mine = [client.get(f"/v1/orders/{o['id']}", headers=shop.headers).json() for o in (a, b, c)]
        if all(order["status"] == "assigned" for order in mine):
            break
        clock.advance(TICK_S)
    assert all(order["status"] == "assigned" for order in mine), mine
    for trip_id in {order["trip_id"] for order in mine}:
        picked = client.post(f"/v1/trips/{trip_id}/pickup", headers=shop.headers)
        assert picked.status_code == 200, picked.text
    for order, after_s in ((a, 600), (b, 900), (c, 2100)):
        clock.now = T + timedelta(seconds=after_s)
        url = f"/v1/orders/{order['id']}/deliver"
        assert client.post(url, headers=shop.headers).json()["status"] == "delivered"
    clock.now = T + timedelta(seconds=2200)
    place(client, shop, "E")

    day = kpis(client, shop)
    assert day == {
        "shop_id": shop.id,
        "date": "2026-11-29",
        "orders": 5,
        "delivered": 3,
        "cancelled": 1,
        "on_time_rate": 0.5,
        "click_to_door_s": {"mean": 1200.0, "p90": pytest.approx(1860.0)},
        "rider_hours": 7.0,
        "orders_per_rider_hour": pytest.approx(3 / 7),
    }
    day_before = kpis(client, shop, date="2026-11-28")
    assert (day_before["orders"], day_before["delivered"], day_before["cancelled"]) == (1, 0, 0)
    assert day_before["on_time_rate"] == 0.0
    assert day_before["rider_hours"] == 2.0  # 22:00 to 24:00 of the second rider
    assert day_before["orders_per_rider_hour"] == 0.0
    other_day = kpis(client, other)
    assert (other_day["orders"], other_day["rider_hours"]) == (0, 12.0)


def test_an_empty_day_has_nulls(client: TestClient, shop: ShopHandle) -> None:
    """No orders and no rider hours: counts 0, every rate and time null."""
    assert kpis(client, shop, date="2020-02-29") == {
        "shop_id": shop.id,
        "date": "2020-02-29",
        "orders": 0,
        "delivered": 0,
        "cancelled": 0,
        "on_time_rate": None,
        "click_to_door_s": {"mean": None, "p90": None},
        "rider_hours": 0.0,
        "orders_per_rider_hour": None,
    }


def test_admin_reads_any_shop_other_shops_key_gets_404(
    client: TestClient, make_shop: Factory
) -> None:
    """The admin token reads a shop's KPIs; another shop's key gets 404, no key 401."""
    shop_a, shop_b = make_shop(), make_shop(name="Fruit corner")
    url = f"/v1/shops/{shop_a.id}/kpis"
    assert client.get(url, headers=ADMIN).json()["shop_id"] == shop_a.id
    assert_error(client.get(url, headers=shop_b.headers), 404, "not_found")
    assert_error(client.get(url), 401, "unauthorized")


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("2026-02-30", "validation_error"),
        ("yesterday", "validation_error"),
        ("2026-11-29x", "validation_error"),
        ("9999-12-31", "date_out_of_range"),
    ],
)
def test_bad_dates_are_422(client: TestClient, shop: ShopHandle, value: str, code: str) -> None:
    """A date that is no calendar day, or the last one representable, gets 422."""
    response = client.get(f"/v1/shops/{shop.id}/kpis?date={value}", headers=shop.headers)
    assert_error(response, 422, code)


def test_first_representable_day_is_fine(client: TestClient, shop: ShopHandle) -> None:
    """0001-01-01 is a day like any other (nothing in it)."""
    assert kpis(client, shop, date="0001-01-01")["date"] == "0001-01-01"


def test_merged_seconds_merges_overlaps_and_clips() -> None:
    """Overlapping and touching intervals count once; parts outside the window are dropped."""
    start = datetime(2026, 1, 1, tzinfo=UTC)
    end = start + timedelta(days=1)

    def at(hours: float) -> datetime:
        return start + timedelta(hours=hours)

    spans = [(at(-2), at(1)), (at(0.5), at(2)), (at(2), at(3)), (at(10), at(11)), (at(23), at(26))]
    assert merged_seconds(spans, start, end) == (3 + 1 + 1) * 3600
    assert merged_seconds([(at(25), at(26))], start, end) == 0
    assert merged_seconds([], start, end) == 0


def test_a_shops_day_is_its_local_day(
    client: TestClient, make_shop: Factory, clock: FakeClock
) -> None:
    """A Shanghai shop (UTC+8): 28 Nov 17:00 UTC is 29 Nov 01:00 there and counts on the 29th,
    28 Nov 15:30 UTC (23:30 there) on the 28th; a shift 28 Nov 12:00 to 29 Nov 00:00 UTC is
    8 h of the local 29th; "today" is the local date."""
    shop = make_shop(timezone="Asia/Shanghai")
    assert shop.body["shop"]["timezone"] == "Asia/Shanghai"
    rider(client, shop, [[utc(28, 12), utc(29, 0)]], on_duty=True)
    for moment, name in ((datetime(2026, 11, 28, 15, 30, tzinfo=UTC), "late"), (T, "morning")):
        clock.now = moment
        place(client, shop, name)
    clock.now = datetime(2026, 11, 28, 17, 0, tzinfo=UTC)
    place(client, shop, "night")
    clock.now = T
    today = kpis(client, shop)
    assert (today["date"], today["orders"], today["rider_hours"]) == ("2026-11-29", 2, 8.0)
    day_before = kpis(client, shop, date="2026-11-28")
    assert (day_before["orders"], day_before["rider_hours"]) == (1, 4.0)  # 20:00 to 24:00
    clock.now = datetime(2026, 11, 29, 17, 0, tzinfo=UTC)  # 30 Nov, 01:00 in Shanghai
    assert kpis(client, shop)["date"] == "2026-11-30"


@pytest.mark.parametrize(("day", "hours"), [("2026-03-29", 23.0), ("2026-10-25", 25.0)])
def test_a_daylight_saving_day_is_23_or_25_hours(
    client: TestClient, make_shop: Factory, day: str, hours: float
) -> None:
    """Berlin's days of the clock change: a rider on shift all week counts 23 and 25 hours."""
    shop = make_shop(timezone="Europe/Berlin")
    year, month, date_of_month = (int(part) for part in day.split("-"))
    start = datetime(year, month, date_of_month, tzinfo=UTC) - timedelta(days=2)
    shifts = [
        [(start + timedelta(days=i)).isoformat(), (start + timedelta(days=i + 1)).isoformat()]
        for i in range(4)
    ]
    rider(client, shop, shifts, on_duty=False)
    assert kpis(client, shop, date=day)["rider_hours"] == pytest.approx(hours)


def test_changing_the_time_zone_moves_the_days(
    client: TestClient, make_shop: Factory, clock: FakeClock
) -> None:
    """PATCH /v1/shops/{id}: a UTC shop's order of 28 Nov 20:00 UTC moves to the 29th when the
    shop says it is in Shanghai; bad zones, nulls and unknown fields get 422, another shop's key
    404, and the name can change too."""
    shop, other = make_shop(), make_shop(name="Fruit corner")
    assert shop.body["shop"]["timezone"] == "UTC"
    clock.now = datetime(2026, 11, 28, 20, 0, tzinfo=UTC)
    place(client, shop, "evening")
    assert kpis(client, shop, date="2026-11-28")["orders"] == 1
    url = f"/v1/shops/{shop.id}"
    changed = client.patch(url, json={"timezone": "Asia/Shanghai"}, headers=shop.headers)
    assert changed.status_code == 200, changed.text
    assert changed.json()["timezone"] == "Asia/Shanghai"
    assert client.get(url, headers=shop.headers).json()["timezone"] == "Asia/Shanghai"
    assert kpis(client, shop, date="2026-11-28")["orders"] == 0
    assert kpis(client, shop, date="2026-11-29")["orders"] == 1
    renamed = client.patch(url, json={"name": "Wanrun 24h"}, headers=ADMIN)
    assert renamed.json()["name"] == "Wanrun 24h" and renamed.json()["timezone"] == "Asia/Shanghai"
    for body in (
        {"timezone": "Mars/Olympus"},
        {"timezone": "../etc/passwd"},
        {"timezone": ""},
        {"timezone": None},
        {"name": None},
        {"lat": 1.0},
    ):
        response = client.patch(url, json=body, headers=shop.headers)
        assert_error(response, 422)
        assert next(iter(body)) in response.json()["message"]
    assert_error(client.patch(url, json={"name": "x"}, headers=other.headers), 404, "not_found")
    assert client.get(url, headers=shop.headers).json()["name"] == "Wanrun 24h"


def test_a_shop_created_with_an_unknown_time_zone_gets_422(client: TestClient) -> None:
    response = client.post(
        "/v1/shops", json={**shop_body(), "timezone": "Asia/Atlantis"}, headers=ADMIN
    )
    assert_error(response, 422, "validation_error")
    assert "timezone" in response.json()["message"]


def test_time_on_duty_without_shifts_counts(
    client: TestClient, shop: ShopHandle, engine: Engine, clock: FakeClock
) -> None:
    """A rider without declared shifts on duty from 01:00 to 03:00 and delivering one order:
    2 rider hours, 0.5 orders per rider-hour (not null, as when only shifts counted)."""
    rider_id = rider(client, shop, [], on_duty=True)
    order = place(client, shop, "A")
    dispatch_and_pick_up(client, engine, clock, shop, order)
    clock.now = T + timedelta(seconds=600)
    client.post(f"/v1/orders/{order['id']}/deliver", headers=shop.headers)
    clock.now = T + timedelta(hours=2)
    duty(client, shop, rider_id, False)
    clock.now = T + timedelta(hours=5)
    day = kpis(client, shop)
    assert (day["delivered"], day["rider_hours"]) == (1, 2.0)
    assert day["orders_per_rider_hour"] == 0.5


def test_a_shift_and_time_on_duty_overlapping_count_once(
    client: TestClient, shop: ShopHandle, clock: FakeClock
) -> None:
    """A shift 00:00 to 02:00 and on duty 01:00 to 03:00: 3 hours, not 4; another rider on
    duty 01:00 to 03:00 within its shift 00:00 to 04:00 adds 4, not 6."""
    first = rider(client, shop, [[utc(29, 0), utc(29, 2)]], on_duty=True)
    second = rider(client, shop, [[utc(29, 0), utc(29, 4)]], on_duty=True)
    clock.now = T + timedelta(hours=2)
    duty(client, shop, first, False)
    duty(client, shop, second, False)
    clock.now = T + timedelta(hours=6)
    assert kpis(client, shop)["rider_hours"] == 3.0 + 4.0


def test_time_on_duty_still_running_counts_until_now(
    client: TestClient, shop: ShopHandle, clock: FakeClock
) -> None:
    """A rider on duty since 01:00 and not yet off: 1.5 hours at 02:30, 3 at 04:00; the next
    day has nothing yet."""
    rider(client, shop, [], on_duty=True)
    clock.now = T + timedelta(minutes=90)
    assert kpis(client, shop)["rider_hours"] == 1.5
    clock.now = T + timedelta(hours=3)
    assert kpis(client, shop)["rider_hours"] == 3.0
    assert kpis(client, shop, date="2026-11-30")["rider_hours"] == 0.0


def test_going_on_duty_twice_counts_once(
    client: TestClient, shop: ShopHandle, engine: Engine, clock: FakeClock
) -> None:
    """On duty at 01:00, on duty again at 02:00 (nothing changes), off at 03:00: one span of
    2 hours, not two overlapping ones."""
    rider_id = rider(client, shop, [], on_duty=True)
    clock.now = T + timedelta(hours=1)
    duty(client, shop, rider_id, True)
    clock.now = T + timedelta(hours=2)
    duty(client, shop, rider_id, False)
    duty(client, shop, rider_id, False)
    assert count_rows(engine, "rider_duty_spans") == 1
    assert kpis(client, shop)["rider_hours"] == 2.0


def test_time_on_duty_is_clipped_to_the_shops_local_day(
    client: TestClient, make_shop: Factory, clock: FakeClock
) -> None:
    """A Shanghai shop (UTC+8): on duty 28 Nov 14:00 to 18:00 UTC, all on the 28th in UTC, is
    22:00 to 02:00 there: 2 hours on the local 28th and 2 on the 29th."""
    shop = make_shop(timezone="Asia/Shanghai")
    clock.now = datetime(2026, 11, 28, 14, 0, tzinfo=UTC)
    rider_id = rider(client, shop, [], on_duty=True)
    clock.now = datetime(2026, 11, 28, 18, 0, tzinfo=UTC)
    duty(client, shop, rider_id, False)
    clock.now = T
    assert kpis(client, shop, date="2026-11-28")["rider_hours"] == 2.0
    assert kpis(client, shop, date="2026-11-29")["rider_hours"] == 2.0


def link(client: TestClient, rider_id: str, shop: ShopHandle) -> None:
    response = client.post(f"/v1/riders/{rider_id}/shops", json={"shop_id": shop.id}, headers=ADMIN)
    assert response.status_code == 200, response.text
    assert shop.id in response.json()["shop_ids"]


def unlink(client: TestClient, rider_id: str, shop: ShopHandle) -> None:
    response = client.delete(f"/v1/riders/{rider_id}/shops/{shop.id}", headers=ADMIN)
    assert response.status_code == 200, response.text
    assert shop.id not in response.json()["shop_ids"]


def test_unlinking_a_rider_leaves_the_shops_past_days_as_they_were(
    client: TestClient, make_shop: Factory, engine: Engine, clock: FakeClock
) -> None:
    """A rider of ``home`` linked to ``other`` on 28 Nov 01:00 delivers one of its orders and is
    on shift 02:00 to 06:00 on the 28th and 29th; unlinked on the 29th at 03:00: the 28th of
    ``other`` keeps its 4 hours and 0.25 orders per rider-hour, the 29th counts 1 hour (the
    shift after the unlink does not count there); ``home`` counts 4 hours on both days."""
    home, other = make_shop(), make_shop(name="Fruit corner")
    clock.now = T - timedelta(days=1)
    shifts = [[utc(28, 2), utc(28, 6)], [utc(29, 2), utc(29, 6)]]
    rider_id = rider(client, home, shifts, on_duty=False)
    link(client, rider_id, other)
    work_a_delivery(client, engine, clock, home, other, rider_id)

    clock.now = datetime(2026, 11, 29, 3, 0, tzinfo=UTC)
    before = kpis(client, other, date="2026-11-28")
    assert (before["delivered"], before["rider_hours"]) == (1, 4.0)
    assert before["orders_per_rider_hour"] == 0.25
    unlink(client, rider_id, other)
    clock.now = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
    assert kpis(client, other, date="2026-11-28") == before
    assert kpis(client, other)["rider_hours"] == 1.0
    assert kpis(client, home, date="2026-11-28")["rider_hours"] == 4.0
    assert kpis(client, home)["rider_hours"] == 4.0


def test_a_relinked_rider_counts_again_from_the_relink_and_once(
    client: TestClient, make_shop: Factory, clock: FakeClock
) -> None:
    """On shift 00:00 to 08:00 and on duty 01:00 to 07:00, linked to ``other`` at 01:00 (twice),
    unlinked at 03:00 (twice), linked again at 05:00: ``other`` counts 01:00 to 03:00 and 05:00
    to 08:00, 5 hours, each hour once; ``home`` all 8."""
    home, other = make_shop(), make_shop(name="Fruit corner")
    rider_id = rider(client, home, [[utc(29, 0), utc(29, 8)]], on_duty=True)
    link(client, rider_id, other)
    link(client, rider_id, other)
    clock.now = T + timedelta(hours=2)
    unlink(client, rider_id, other)
    unlink(client, rider_id, other)
    clock.now = T + timedelta(hours=4)
    link(client, rider_id, other)
    clock.now = T + timedelta(hours=6)
    duty(client, home, rider_id, False)
    clock.now = T + timedelta(hours=10)
    assert kpis(client, other)["rider_hours"] == 5.0
    assert kpis(client, home)["rider_hours"] == 8.0


def test_a_rider_linked_today_adds_nothing_to_the_days_before(
    client: TestClient, make_shop: Factory, clock: FakeClock
) -> None:
    """A rider of ``home`` on shift 28 Nov 00:00 to 29 Nov 00:00 and linked to ``other`` on the
    29th: ``other``'s 28th has no rider hours (before the link it did not serve that shop),
    ``home``'s has 24."""
    home, other = make_shop(), make_shop(name="Fruit corner")
    rider_id = rider(client, home, [[utc(28, 0), utc(29, 0)]], on_duty=False)
    link(client, rider_id, other)
    assert kpis(client, other, date="2026-11-28")["rider_hours"] == 0.0
    assert kpis(client, home, date="2026-11-28")["rider_hours"] == 24.0


def test_a_shift_change_leaves_the_past_hours_as_they_were(
    client: TestClient, shop: ShopHandle, engine: Engine, clock: FakeClock
) -> None:
    """A rider on shift 28 Nov 02:00 to 06:00, delivering one order then, and on the 29th 00:00
    to 04:00 and 08:00 to 10:00. At 02:00 on the 29th the home shop sends shifts 28 Nov 00:00
    to 12:00 and 29 Nov 01:00 to 03:00: the 28th keeps its 4 hours and 0.25 orders per
    rider-hour; the 29th keeps its 2 hours worked and counts 1 ahead as sent (3, not 6 as
    before nor the 2 of the shifts sent)."""
    clock.now = T - timedelta(days=1)
    shifts = [[utc(28, 2), utc(28, 6)], [utc(29, 0), utc(29, 4)], [utc(29, 8), utc(29, 10)]]
    rider_id = rider(client, shop, shifts, on_duty=False)
    work_a_delivery(client, engine, clock, shop, shop, rider_id)

    clock.now = datetime(2026, 11, 29, 2, 0, tzinfo=UTC)
    day_before = kpis(client, shop, date="2026-11-28")
    assert (day_before["delivered"], day_before["rider_hours"]) == (1, 4.0)
    assert day_before["orders_per_rider_hour"] == 0.25
    assert kpis(client, shop)["rider_hours"] == 6.0
    sent = [[utc(28, 0), utc(28, 12)], [utc(29, 1), utc(29, 3)]]
    changed = client.patch(f"/v1/riders/{rider_id}", json={"shifts": sent}, headers=shop.headers)
    assert changed.status_code == 200, changed.text
    assert kpis(client, shop, date="2026-11-28") == day_before
    assert kpis(client, shop)["rider_hours"] == 3.0
    clock.now = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
    assert kpis(client, shop, date="2026-11-28") == day_before
    assert kpis(client, shop)["rider_hours"] == 3.0
