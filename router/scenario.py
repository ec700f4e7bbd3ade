"""Scenario files (format ``quarterhour.scenario/1``): one validating reader into typed records.

Every bad file is rejected with a ``ScenarioError`` whose message names the field, for example
``orders[3].lat: expected a number in [-90, 90], got 'north'``.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from router.travel import MODES

FORMAT = "quarterhour.scenario/1"
DEFAULT_SPEEDS_MPS = {"walk": 1.3, "bike": 4.0, "ebike": 5.0}


class ScenarioError(ValueError):
    """A scenario file that does not follow the format; the message names the field."""


@dataclass(frozen=True)
class TravelRules:
    detour: float = 1.3
    speed_mps: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_SPEEDS_MPS))
    pickup_s: int = 60
    handoff_s: int = 90

    def speeds_by_mode(self) -> list[float]:
        """Speeds in the engine's mode order (``router.travel.MODES``)."""
        return [self.speed_mps[mode] for mode in MODES]


@dataclass(frozen=True)
class Shop:
    id: str
    name: str
    lat: float
    lon: float
    circle_walk_min: float = 15.0
    promise_min: float = 30.0


@dataclass(frozen=True)
class Rider:
    id: str
    mode: str
    capacity: int
    shops: tuple[str, ...]
    lat: float
    lon: float
    shifts: tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class Order:
    id: str
    shop: str
    lat: float
    lon: float
    size: int
    placed_s: int
    ready_s: int
    promised_s: int


@dataclass(frozen=True)
class Scenario:
    name: str
    start: str
    horizon_s: int
    travel: TravelRules
    shops: tuple[Shop, ...]
    riders: tuple[Rider, ...]
    orders: tuple[Order, ...]


def read_scenario(path: str | Path) -> Scenario:
    """Read and validate a scenario file."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise ScenarioError(f"{path}: cannot read file ({error.strerror})") from None
    except UnicodeDecodeError:
        raise ScenarioError(f"{path}: not UTF-8 text") from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise ScenarioError(f"{path}: not JSON ({error.msg} at line {error.lineno})") from None
    except ValueError as error:  # e.g. an integer literal too long to convert
        raise ScenarioError(f"{path}: not usable JSON ({error})") from None
    return parse_scenario(document)


def parse_scenario(document: Any) -> Scenario:
    """Validate a decoded scenario document and turn it into typed records."""
    doc = _object(document, "scenario")
    if doc.get("format") != FORMAT:
        raise ScenarioError(f"format: expected {FORMAT!r}, got {doc.get('format')!r}")
    name = _string(doc.get("name", "scenario"), "name")
    start = _string(doc.get("start", "1970-01-01T00:00:00+00:00"), "start")
    horizon_s = _integer(_required(doc, "horizon_s", ""), "horizon_s", low=1)
    travel = _travel(doc.get("travel", {}))
    shops = tuple(_shop(item, f"shops[{i}]") for i, item in enumerate(_list(doc, "shops")))
    if not shops:
        raise ScenarioError("shops: expected at least one shop")
    shop_by_id = _unique({shop.id: shop for shop in shops}, shops, "shops")
    riders = tuple(
        _rider(item, f"riders[{i}]", shop_by_id) for i, item in enumerate(_list(doc, "riders"))
    )
    _unique({rider.id: rider for rider in riders}, riders, "riders")
    orders = tuple(
        _order(item, f"orders[{i}]", shop_by_id) for i, item in enumerate(_list(doc, "orders"))
    )
    _unique({order.id: order for order in orders}, orders, "orders")
    for i, order in enumerate(orders):
        if order.placed_s > horizon_s:
            raise ScenarioError(
                f"orders[{i}].placed_s: {order.placed_s} is after horizon_s {horizon_s}"
            )
    return Scenario(name, start, horizon_s, travel, shops, riders, orders)


def scenario_document(scenario: Scenario) -> dict[str, Any]:
    """The JSON-ready document of a scenario (the inverse of ``parse_scenario``)."""
    return {
        "format": FORMAT,
        "name": scenario.name,
        "start": scenario.start,
        "horizon_s": scenario.horizon_s,
        "travel": {
            "detour": scenario.travel.detour,
            "speed_mps": dict(scenario.travel.speed_mps),
            "pickup_s": scenario.travel.pickup_s,
            "handoff_s": scenario.travel.handoff_s,
        },
        "shops": [asdict(shop) for shop in scenario.shops],
        "riders": [
            {**asdict(rider), "shops": list(rider.shops), "shifts": [list(s) for s in rider.shifts]}
            for rider in scenario.riders
        ],
        "orders": [asdict(order) for order in scenario.orders],
    }


def _travel(value: Any) -> TravelRules:
    doc = _object(value, "travel")
    speeds = dict(DEFAULT_SPEEDS_MPS)
    raw_speeds = _object(doc.get("speed_mps", {}), "travel.speed_mps")
    for mode, speed in raw_speeds.items():
        if mode not in MODES:
            raise ScenarioError(f"travel.speed_mps.{mode}: unknown mode, expected one of {MODES}")
        speeds[mode] = _number(speed, f"travel.speed_mps.{mode}", low=1e-3)
    return TravelRules(
        detour=_number(doc.get("detour", 1.3), "travel.detour", low=1.0, high=10.0),
        speed_mps=speeds,
        pickup_s=_integer(doc.get("pickup_s", 60), "travel.pickup_s", low=0),
        handoff_s=_integer(doc.get("handoff_s", 90), "travel.handoff_s", low=0),
    )


def _shop(value: Any, where: str) -> Shop:
    doc = _object(value, where)
    shop_id = _string(_required(doc, "id", where), f"{where}.id")
    return Shop(
        id=shop_id,
        name=_string(doc.get("name", shop_id), f"{where}.name"),
        lat=_number(_required(doc, "lat", where), f"{where}.lat", low=-90.0, high=90.0),
        lon=_number(_required(doc, "lon", where), f"{where}.lon", low=-180.0, high=180.0),
        circle_walk_min=_number(
            doc.get("circle_walk_min", 15), f"{where}.circle_walk_min", low=0.0, high=1440.0
        ),
        promise_min=_number(
            doc.get("promise_min", 30), f"{where}.promise_min", low=0.0, high=1440.0
        ),
    )


def _rider(value: Any, where: str, shop_by_id: dict[str, Shop]) -> Rider:
    doc = _object(value, where)
    mode = _string(_required(doc, "mode", where), f"{where}.mode")
    if mode not in MODES:
        raise ScenarioError(f"{where}.mode: expected one of {MODES}, got {mode!r}")
    shop_ids = doc.get("shops", list(shop_by_id))
    if not isinstance(shop_ids, list) or not shop_ids:
        raise ScenarioError(f"{where}.shops: expected a non-empty list of shop ids")
    for j, shop_id in enumerate(shop_ids):
        if not isinstance(shop_id, str) or shop_id not in shop_by_id:
            raise ScenarioError(f"{where}.shops[{j}]: unknown shop {shop_id!r}")
    home = shop_by_id[shop_ids[0]]
    shifts_raw = _required(doc, "shifts", where)
    if not isinstance(shifts_raw, list) or not shifts_raw:
        raise ScenarioError(f"{where}.shifts: expected a non-empty list of [start_s, end_s]")
    shifts = []
    for j, shift in enumerate(shifts_raw):
        if not isinstance(shift, list) or len(shift) != 2:
            raise ScenarioError(f"{where}.shifts[{j}]: expected [start_s, end_s]")
        start_s = _integer(shift[0], f"{where}.shifts[{j}][0]", low=0)
        end_s = _integer(shift[1], f"{where}.shifts[{j}][1]", low=start_s)
        shifts.append((start_s, end_s))
    return Rider(
        id=_string(_required(doc, "id", where), f"{where}.id"),
        mode=mode,
        capacity=_integer(_required(doc, "capacity", where), f"{where}.capacity", low=1),
        shops=tuple(shop_ids),
        lat=_number(doc.get("lat", home.lat), f"{where}.lat", low=-90.0, high=90.0),
        lon=_number(doc.get("lon", home.lon), f"{where}.lon", low=-180.0, high=180.0),
        shifts=tuple(sorted(shifts)),
    )


def _order(value: Any, where: str, shop_by_id: dict[str, Shop]) -> Order:
    doc = _object(value, where)
    shop_id = _string(_required(doc, "shop", where), f"{where}.shop")
    if shop_id not in shop_by_id:
        raise ScenarioError(f"{where}.shop: unknown shop {shop_id!r}")
    placed_s = _integer(_required(doc, "placed_s", where), f"{where}.placed_s", low=0)
    ready_s = _integer(doc.get("ready_s", placed_s), f"{where}.ready_s", low=placed_s)
    default_promise_s = placed_s + round(shop_by_id[shop_id].promise_min * 60)
    return Order(
        id=_string(_required(doc, "id", where), f"{where}.id"),
        shop=shop_id,
        lat=_number(_required(doc, "lat", where), f"{where}.lat", low=-90.0, high=90.0),
        lon=_number(_required(doc, "lon", where), f"{where}.lon", low=-180.0, high=180.0),
        # size <= 0 is a valid file but an invalid order: the simulator rejects it at intake.
        size=_integer(doc.get("size", 1), f"{where}.size"),
        placed_s=placed_s,
        ready_s=ready_s,
        promised_s=_integer(
            doc.get("promised_s", default_promise_s), f"{where}.promised_s", low=placed_s
        ),
    )


def _required(doc: dict[str, Any], key: str, where: str) -> Any:
    if key not in doc:
        raise ScenarioError(f"{where + '.' if where else ''}{key}: missing")
    return doc[key]


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ScenarioError(f"{where}: expected an object, got {type(value).__name__}")
    return value


def _list(doc: dict[str, Any], key: str) -> list[Any]:
    value = _required(doc, key, "")
    if not isinstance(value, list):
        raise ScenarioError(f"{key}: expected a list, got {type(value).__name__}")
    return value


def _string(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value or len(value) > 200:
        raise ScenarioError(f"{where}: expected a non-empty string, got {value!r}")
    return value


def _number(value: Any, where: str, low: float = -math.inf, high: float = math.inf) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    try:
        number = float(value) if ok else math.nan
    except OverflowError:
        number = math.nan
    if not math.isfinite(number) or not low <= number <= high:
        shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:40] + "..."
        raise ScenarioError(f"{where}: expected a number in [{low}, {high}], got {shown}")
    return number


MAX_INTEGER = 10**12  # far beyond any day in seconds or any capacity, well inside int64


def _integer(value: Any, where: str, low: int = -MAX_INTEGER) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= MAX_INTEGER:
        shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:40] + "..."
        raise ScenarioError(f"{where}: expected an integer in [{low}, {MAX_INTEGER}], got {shown}")
    return value


def _unique(by_id: dict[str, Any], items: tuple[Any, ...], where: str) -> dict[str, Any]:
    if len(by_id) != len(items):
        seen: set[str] = set()
        for i, item in enumerate(items):
            if item.id in seen:
                raise ScenarioError(f"{where}[{i}].id: duplicate id {item.id!r}")
            seen.add(item.id)
    return by_id
