"""Read one MDRP instance folder (tab-separated text files, times in minutes, metres).

Bad folders raise ``MdrpError`` with a message naming the file, the line and the field.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

PARAMETER_COLUMNS = (
    "meters_per_minute",
    "pickup service minutes",
    "dropoff service minutes",
    "target click-to-door",
    "maximum click-to-door",
    "pay per order",
    "guaranteed pay per hour",
)


class MdrpError(ValueError):
    """An instance folder that does not follow the MDRP format; the message names the field."""


@dataclass(frozen=True)
class MdrpRestaurant:
    id: str
    x_m: float
    y_m: float


@dataclass(frozen=True)
class MdrpOrder:
    id: str
    x_m: float
    y_m: float
    placement_min: int
    restaurant: str
    ready_min: int


@dataclass(frozen=True)
class MdrpCourier:
    id: str
    x_m: float
    y_m: float
    on_min: int
    off_min: int


@dataclass(frozen=True)
class MdrpParameters:
    meters_per_minute: float
    pickup_service_min: int
    dropoff_service_min: int
    target_click_to_door_min: int
    max_click_to_door_min: int
    pay_per_order: float
    guaranteed_pay_per_hour: float


@dataclass(frozen=True)
class MdrpInstance:
    name: str
    restaurants: tuple[MdrpRestaurant, ...]
    orders: tuple[MdrpOrder, ...]
    couriers: tuple[MdrpCourier, ...]
    parameters: MdrpParameters

    def travel_min(self, a: tuple[float, float], b: tuple[float, float]) -> int:
        """Whole minutes from point ``a`` to point ``b``: ceil(euclidean metres / speed)."""
        return travel_min(a, b, self.parameters.meters_per_minute)


def travel_min(a: tuple[float, float], b: tuple[float, float], meters_per_minute: float) -> int:
    """ceil(euclidean distance / meters_per_minute), the ceiling decided in metres."""
    distance_m = math.hypot(b[0] - a[0], b[1] - a[1])
    k = math.ceil(distance_m / meters_per_minute)
    if k > 0 and (k - 1) * meters_per_minute >= distance_m:
        k -= 1
    return k


def read_instance(folder: str | Path) -> MdrpInstance:
    """Read and validate the four text files of an instance folder."""
    path = Path(folder)
    if not path.is_dir():
        raise MdrpError(f"{path}: not a directory")
    restaurants = tuple(
        MdrpRestaurant(row[0], _number(row[1], where), _number(row[2], where))
        for row, where in _rows(path / "restaurants.txt", ("restaurant", "x", "y"))
    )
    known = {r.id for r in restaurants}
    orders: list[MdrpOrder] = []
    columns = ("order", "x", "y", "placement_time", "restaurant", "ready_time")
    for row, where in _rows(path / "orders.txt", columns):
        if row[4] not in known:
            raise MdrpError(f"{where}.restaurant: unknown restaurant {row[4]!r}")
        placement = _minute(row[3], f"{where}.placement_time")
        ready = _minute(row[5], f"{where}.ready_time")
        if ready < placement:
            raise MdrpError(f"{where}.ready_time: {ready} is before placement_time {placement}")
        orders.append(
            MdrpOrder(
                row[0], _number(row[1], where), _number(row[2], where), placement, row[4], ready
            )
        )
    couriers: list[MdrpCourier] = []
    for row, where in _rows(path / "couriers.txt", ("courier", "x", "y", "on_time", "off_time")):
        on = _minute(row[3], f"{where}.on_time")
        off = _minute(row[4], f"{where}.off_time")
        if off < on:
            raise MdrpError(f"{where}.off_time: {off} is before on_time {on}")
        couriers.append(
            MdrpCourier(row[0], _number(row[1], where), _number(row[2], where), on, off)
        )
    params = list(_rows(path / "instance_parameters.txt", PARAMETER_COLUMNS))
    if len(params) != 1:
        raise MdrpError(f"{path / 'instance_parameters.txt'}: expected one data row")
    values, where = params[0]
    parameters = MdrpParameters(
        meters_per_minute=_number(values[0], f"{where}.meters_per_minute", positive=True),
        pickup_service_min=_minute(values[1], f"{where}.pickup service minutes"),
        dropoff_service_min=_minute(values[2], f"{where}.dropoff service minutes"),
        target_click_to_door_min=_minute(values[3], f"{where}.target click-to-door"),
        max_click_to_door_min=_minute(values[4], f"{where}.maximum click-to-door"),
        pay_per_order=_number(values[5], f"{where}.pay per order"),
        guaranteed_pay_per_hour=_number(values[6], f"{where}.guaranteed pay per hour"),
    )
    for name in ("orders", "couriers"):
        items = orders if name == "orders" else couriers
        if len({item.id for item in items}) != len(items):
            raise MdrpError(f"{path / (name + '.txt')}: duplicate ids")
    return MdrpInstance(path.name, restaurants, tuple(orders), tuple(couriers), parameters)


def _rows(file: Path, header: tuple[str, ...]) -> list[tuple[list[str], str]]:
    """Data rows of a tab-separated file with the expected header, each with its location."""
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as error:
        raise MdrpError(f"{file}: cannot read file ({error.strerror})") from None
    lines = list(csv.reader(text.splitlines(), delimiter="\t"))
    if not lines or tuple(cell.strip() for cell in lines[0]) != header:
        got = lines[0] if lines else []
        raise MdrpError(f"{file}: header {got} != {list(header)}")
    out = []
    for number, cells in enumerate(lines[1:], start=2):
        if not cells or not "".join(cells).strip():
            continue
        where = f"{file.name}:{number}"
        if len(cells) != len(header):
            raise MdrpError(f"{where}: {len(cells)} cells, expected {len(header)}")
        out.append(([cell.strip() for cell in cells], where))
    return out


def _number(text: str, where: str, positive: bool = False) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or (positive and value <= 0):
        raise MdrpError(
            f"{where}: expected a {'positive ' if positive else ''}number, got {text!r}"
        )
    return value


def _minute(text: str, where: str) -> int:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value != int(value) or value < 0:
        raise MdrpError(f"{where}: expected a whole number of minutes >= 0, got {text!r}")
    return int(value)
