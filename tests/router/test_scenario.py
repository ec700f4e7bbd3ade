"""Tests of router/scenario.py: one validating reader that names the bad field, and its defaults."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from router.scenario import (
    FORMAT,
    ScenarioError,
    TravelRules,
    parse_scenario,
    read_scenario,
    scenario_document,
)

Document = dict[str, Any]


def _document() -> Document:
    """Two shops, two riders (one relying on every default), two orders (one on defaults)."""
    return {
        "format": FORMAT,
        "name": "tiny",
        "start": "2026-11-29T00:00:00+08:00",
        "horizon_s": 7200,
        "shops": [
            {"id": "s1", "name": "Corner", "lat": 34.5965, "lon": 119.2215, "promise_min": 20},
            {"id": "s2", "lat": 34.6010, "lon": 119.2290},
        ],
        "riders": [
            {"id": "r1", "mode": "ebike", "capacity": 3, "shifts": [[0, 3600]]},
            {
                "id": "r2",
                "mode": "walk",
                "capacity": 2,
                "shops": ["s2"],
                "lat": 34.6,
                "lon": 119.23,
                "shifts": [[1800, 7200], [0, 600]],
            },
        ],
        "orders": [
            {"id": "o1", "shop": "s1", "lat": 34.5980, "lon": 119.2230, "placed_s": 100},
            {
                "id": "o2",
                "shop": "s2",
                "lat": 34.6020,
                "lon": 119.2280,
                "size": 2,
                "placed_s": 200,
                "ready_s": 500,
                "promised_s": 2000,
            },
        ],
    }


def _set(path: str, value: Any) -> Callable[[Document], None]:
    """A mutation setting ``path`` (dot-separated keys and list indices) to ``value``."""

    def mutate(doc: Document) -> None:
        *parents, last = path.split(".")
        target: Any = doc
        for key in parents:
            target = target[int(key)] if isinstance(target, list) else target[key]
        target[int(last) if isinstance(target, list) else last] = value

    return mutate


def _delete(path: str) -> Callable[[Document], None]:
    """A mutation deleting the key at ``path``."""

    def mutate(doc: Document) -> None:
        *parents, last = path.split(".")
        target: Any = doc
        for key in parents:
            target = target[int(key)] if isinstance(target, list) else target[key]
        del target[last]

    return mutate


BAD_DOCUMENTS = [
    ("wrong format", _set("format", "quarterhour.scenario/2"), "format"),
    ("missing format", _delete("format"), "format"),
    ("missing horizon_s", _delete("horizon_s"), "horizon_s"),
    ("horizon_s zero", _set("horizon_s", 0), "horizon_s"),
    ("horizon_s not integral", _set("horizon_s", 7200.5), "horizon_s"),
    ("lat out of range", _set("orders.1.lat", 90.5), "orders[1].lat"),
    ("shop lat out of range", _set("shops.0.lat", -91), "shops[0].lat"),
    ("lon out of range", _set("riders.1.lon", 181.0), "riders[1].lon"),
    ("NaN lat", _set("orders.0.lat", float("nan")), "orders[0].lat"),
    ("infinite lon", _set("shops.1.lon", float("inf")), "shops[1].lon"),
    ("lat as text", _set("orders.0.lat", "north"), "orders[0].lat"),
    ("lat as bool", _set("orders.0.lat", True), "orders[0].lat"),
    ("unknown shop in an order", _set("orders.1.shop", "s9"), "orders[1].shop"),
    ("unknown shop of a rider", _set("riders.1.shops", ["s9"]), "riders[1].shops[0]"),
    ("duplicate order id", _set("orders.1.id", "o1"), "orders[1].id"),
    ("duplicate shop id", _set("shops.1.id", "s1"), "shops[1].id"),
    ("duplicate rider id", _set("riders.1.id", "r1"), "riders[1].id"),
    ("bad mode", _set("riders.0.mode", "scooter"), "riders[0].mode"),
    ("shift end before start", _set("riders.0.shifts", [[3600, 1800]]), "riders[0].shifts[0][1]"),
    ("shift not a pair", _set("riders.0.shifts", [[0, 10, 20]]), "riders[0].shifts[0]"),
    ("no shifts", _set("riders.0.shifts", []), "riders[0].shifts"),
    ("placed_s after horizon", _set("orders.0.placed_s", 7201), "orders[0].placed_s"),
    ("ready_s before placed_s", _set("orders.1.ready_s", 100), "orders[1].ready_s"),
    ("promised_s before placed_s", _set("orders.1.promised_s", 100), "orders[1].promised_s"),
    ("capacity zero", _set("riders.0.capacity", 0), "riders[0].capacity"),
    ("missing order lat", _delete("orders.0.lat"), "orders[0].lat"),
    ("missing rider mode", _delete("riders.0.mode"), "riders[0].mode"),
    ("no shops", _set("shops", []), "shops"),
    ("orders not a list", _set("orders", {"o1": {}}), "orders"),
    ("order not an object", _set("orders.0", "o1"), "orders[0]"),
    ("empty id", _set("shops.0.id", ""), "shops[0].id"),
    ("unknown speed mode", _set("travel", {"speed_mps": {"car": 10}}), "travel.speed_mps.car"),
    ("detour below 1", _set("travel", {"detour": 0.5}), "travel.detour"),
    ("negative pickup", _set("travel", {"pickup_s": -1}), "travel.pickup_s"),
]


@pytest.mark.parametrize(
    ("mutate", "field"), [case[1:] for case in BAD_DOCUMENTS], ids=[c[0] for c in BAD_DOCUMENTS]
)
def test_bad_document_is_rejected_naming_the_field(
    mutate: Callable[[Document], None], field: str
) -> None:
    """parse_scenario rejects each bad document with a ScenarioError that names the field."""
    doc = _document()
    mutate(doc)
    with pytest.raises(ScenarioError) as error:
        parse_scenario(doc)
    assert str(error.value).startswith(field + ":"), str(error.value)


def test_document_not_an_object_is_rejected() -> None:
    """A JSON array at the top level is rejected as 'scenario: expected an object'."""
    with pytest.raises(ScenarioError, match=r"^scenario: expected an object"):
        parse_scenario([_document()])


def test_read_rejects_not_json(tmp_path: Path) -> None:
    """A file that is not JSON is rejected with its path and 'not JSON'."""
    path = tmp_path / "scenario.json"
    path.write_text('{"format": "quarterhour.scenario/1",', encoding="utf-8")
    with pytest.raises(ScenarioError, match=r"scenario\.json: not JSON"):
        read_scenario(path)


def test_read_rejects_missing_file(tmp_path: Path) -> None:
    """A missing file is rejected with its path and 'cannot read file'."""
    with pytest.raises(ScenarioError, match=r"nowhere\.json: cannot read file"):
        read_scenario(tmp_path / "nowhere.json")


def test_read_rejects_bad_field(tmp_path: Path) -> None:
    """read_scenario passes a bad field's ScenarioError through from parse_scenario."""
    doc = _document()
    doc["orders"][0]["shop"] = "s9"
    path = tmp_path / "scenario.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(ScenarioError, match=r"^orders\[0\]\.shop: unknown shop 's9'"):
        read_scenario(path)


def test_read_rejects_non_utf8_file(tmp_path: Path) -> None:
    """A file of bytes that are not UTF-8 is rejected with a ScenarioError."""
    path = tmp_path / "scenario.json"
    path.write_bytes(b"\xff\xfe{}")
    with pytest.raises(ScenarioError):
        read_scenario(path)


def test_read_rejects_huge_integer_literal(tmp_path: Path) -> None:
    """A file with a 5000-digit integer literal is rejected with a ScenarioError."""
    path = tmp_path / "scenario.json"
    path.write_text(
        '{"format": "quarterhour.scenario/1", "horizon_s": 1' + "0" * 5000 + "}", encoding="utf-8"
    )
    with pytest.raises(ScenarioError):
        read_scenario(path)


def test_rider_shop_list_entry_must_be_a_string() -> None:
    """A rider's shops entry that is a list is rejected with a ScenarioError naming it."""
    doc = _document()
    doc["riders"][1]["shops"] = [["s2"]]
    with pytest.raises(ScenarioError, match=r"^riders\[1\]\.shops\[0\]"):
        parse_scenario(doc)


def test_number_too_large_for_a_float_is_rejected() -> None:
    """A latitude given as a 400-digit integer is rejected with a ScenarioError naming it."""
    doc = _document()
    doc["orders"][0]["lat"] = 10**400
    with pytest.raises(ScenarioError, match=r"^orders\[0\]\.lat"):
        parse_scenario(doc)


def test_time_beyond_int64_is_rejected() -> None:
    """A placed_s (and horizon_s) beyond the int64 range is rejected by the reader."""
    doc = _document()
    doc["horizon_s"] = 2**63
    doc["orders"][0]["placed_s"] = 2**63
    with pytest.raises(ScenarioError):
        parse_scenario(doc)


def test_defaults_are_applied() -> None:
    """Omitted fields take the DESIGN defaults: promise, ready, size, rider shops and position."""
    scenario = parse_scenario(_document())
    o1, o2 = scenario.orders
    assert o1.promised_s == 100 + 20 * 60  # s1 promises in 20 minutes
    assert o1.ready_s == 100
    assert o1.size == 1
    assert o2.promised_s == 2000
    r1, r2 = scenario.riders
    assert r1.shops == ("s1", "s2")  # every shop, in file order
    assert (r1.lat, r1.lon) == (34.5965, 119.2215)  # at its first shop
    assert (r2.lat, r2.lon) == (34.6, 119.23)
    assert r2.shifts == ((0, 600), (1800, 7200))  # sorted
    s2 = scenario.shops[1]
    assert (s2.name, s2.circle_walk_min, s2.promise_min) == ("s2", 15.0, 30.0)
    assert scenario.travel == TravelRules()
    assert scenario.travel.speeds_by_mode() == [1.3, 4.0, 5.0]


def test_default_promise_uses_the_order_shop() -> None:
    """An order of a shop with the default promise is promised 30 minutes after placement."""
    doc = _document()
    del doc["orders"][1]["promised_s"]
    assert parse_scenario(doc).orders[1].promised_s == 200 + 30 * 60


def test_rider_position_defaults_to_its_first_served_shop() -> None:
    """A rider serving only s2 and giving no position starts at s2."""
    doc = _document()
    del doc["riders"][1]["lat"], doc["riders"][1]["lon"]
    rider = parse_scenario(doc).riders[1]
    assert (rider.lat, rider.lon) == (34.6010, 119.2290)


def test_travel_overrides_are_read() -> None:
    """A scenario's travel block overrides detour, one speed and the service times."""
    doc = _document()
    doc["travel"] = {"detour": 1.5, "speed_mps": {"bike": 3.5}, "pickup_s": 30, "handoff_s": 45}
    travel = parse_scenario(doc).travel
    assert travel.detour == 1.5
    assert travel.speeds_by_mode() == [1.3, 3.5, 5.0]
    assert (travel.pickup_s, travel.handoff_s) == (30, 45)


def test_integral_floats_are_accepted_as_integers() -> None:
    """A time written as 100.0 is read as the integer 100."""
    doc = _document()
    doc["orders"][0]["placed_s"] = 100.0
    placed_s = parse_scenario(doc).orders[0].placed_s
    assert placed_s == 100
    assert isinstance(placed_s, int)


def test_document_round_trips() -> None:
    """scenario_document then parse_scenario (also through JSON text) gives the same scenario."""
    doc = _document()
    doc["travel"] = {"detour": 1.4, "speed_mps": {"walk": 1.2}, "pickup_s": 30}
    scenario = parse_scenario(doc)
    again = scenario_document(scenario)
    assert parse_scenario(again) == scenario
    assert parse_scenario(json.loads(json.dumps(again))) == scenario
    assert scenario_document(parse_scenario(again)) == again


def test_read_scenario_of_written_document(tmp_path: Path) -> None:
    """A document written to a file is read back by read_scenario to the same scenario."""
    path = tmp_path / "scenario.json"
    path.write_text(json.dumps(_document()), encoding="utf-8")
    assert read_scenario(path) == parse_scenario(_document())


def test_parse_does_not_modify_its_input() -> None:
    """parse_scenario leaves the document it was given unchanged."""
    doc = _document()
    before = copy.deepcopy(doc)
    parse_scenario(doc)
    assert doc == before


def test_document_is_a_copy() -> None:
    """Editing the document of a scenario leaves the (frozen) scenario unchanged."""
    scenario = parse_scenario(_document())
    doc = scenario_document(scenario)
    doc["shops"][0]["lat"] = 0.0
    doc["orders"][0]["size"] = 99
    assert scenario.shops[0].lat == 34.5965
    assert scenario.orders[0].size == 1
