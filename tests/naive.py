"""Slow, obviously correct pure-Python twins of the engine's kernels, for tests to compare against.

Everything here follows DESIGN.md ("Travel and timing rules") and the docstring of
``router/bundles.py`` word for word, with plain lists, loops and ``itertools.permutations``.
On purpose nothing is imported from ``router/``: a bug in the engine cannot hide itself here.

Units: times are integer seconds, distances metres, speeds metres per second.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

EARTH_RADIUS_M = 6_371_008.8
DEFAULT_DETOUR = 1.3
SPEEDS_MPS = (1.3, 4.0, 5.0)  # walk, bike, ebike: the engine's mode order
LATE_WEIGHT = 5  # router/bundles.py: one second late costs five seconds of click-to-door
LATE_ORDER_COST = 3000  # router/bundles.py: an order late at all

Point = tuple[float, float]  # (lat, lon) in degrees


def haversine_m(a: Point, b: Point) -> float:
    """Great-circle distance in metres between two (lat, lon) points on the 6,371,008.8 m sphere."""
    lat1, lon1 = math.radians(a[0]), math.radians(a[1])
    lat2, lon2 = math.radians(b[0]), math.radians(b[1])
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


def distance_m(a: Point, b: Point, detour: float = DEFAULT_DETOUR) -> float:
    """Road distance: haversine times the detour factor."""
    return haversine_m(a, b) * detour


def travel_s(distance: float, speed_mps: float) -> int:
    """Whole-second travel time: the distance over the speed, rounded up."""
    return math.ceil(distance / speed_mps)


def distance_matrix_m(
    from_points: Sequence[Point], to_points: Sequence[Point], detour: float = DEFAULT_DETOUR
) -> list[list[float]]:
    """Road distance from every ``from`` point to every ``to`` point."""
    return [[distance_m(a, b, detour) for b in to_points] for a in from_points]


def travel_s_matrices(
    distances: Sequence[Sequence[float]], speeds_mps: Sequence[float]
) -> list[list[list[int]]]:
    """Travel seconds for every mode: ``[mode][from][to]``."""
    return [[[travel_s(d, speed) for d in row] for row in distances] for speed in speeds_mps]


def delivered_times_s(
    depart_s: int,
    sequence: Sequence[int],
    first_leg_s: Sequence[int],
    legs_s: Sequence[Sequence[int]],
    handoff_s: int,
) -> list[int]:
    """Delivery time of each stop: depart, then per stop the leg to it and a handoff.

    ``first_leg_s[o]`` is the travel from the shop to order ``o``'s drop-off, ``legs_s[o][p]`` the
    travel from ``o``'s drop-off to ``p``'s, both for the rider's mode.
    """
    out = []
    clock_s = depart_s
    previous = None
    for order in sequence:
        clock_s += first_leg_s[order] if previous is None else legs_s[previous][order]
        clock_s += handoff_s
        out.append(clock_s)
        previous = order
    return out


def sequence_score(
    sequence: Sequence[int],
    depart_s: int,
    first_leg_s: Sequence[int],
    legs_s: Sequence[Sequence[int]],
    handoff_s: int,
    placed_s: Sequence[int],
    promised_s: Sequence[int],
) -> int:
    """Sum over stops of click-to-door plus, for a late stop, LATE_ORDER_COST and LATE_WEIGHT
    times lateness (router/bundles.py)."""
    delivered = delivered_times_s(depart_s, sequence, first_leg_s, legs_s, handoff_s)
    return sum(
        (d - placed_s[o])
        + (LATE_ORDER_COST + LATE_WEIGHT * (d - promised_s[o]) if d > promised_s[o] else 0)
        for o, d in zip(sequence, delivered, strict=True)
    )


def bundle_depart_s(
    now_s: int, members: Sequence[int], ready_s: Sequence[int], pickup_s: int
) -> int:
    """Nominal departure of a bundle: the later of now and its latest ready time, plus pickup."""
    return max(now_s, max(ready_s[o] for o in members)) + pickup_s


def best_sequence_score(
    members: Sequence[int],
    now_s: int,
    first_leg_s: Sequence[int],
    legs_s: Sequence[Sequence[int]],
    pickup_s: int,
    handoff_s: int,
    placed_s: Sequence[int],
    ready_s: Sequence[int],
    promised_s: Sequence[int],
) -> int:
    """The lowest score over every delivery sequence of a bundle (exhaustive search)."""
    depart_s = bundle_depart_s(now_s, members, ready_s, pickup_s)
    return min(
        sequence_score(p, depart_s, first_leg_s, legs_s, handoff_s, placed_s, promised_s)
        for p in itertools.permutations(members)
    )


def depart_within_shift(earliest_s: int, shifts: Sequence[tuple[int, int]]) -> int | None:
    """The first time at or after ``earliest_s`` inside a closed shift interval, or None."""
    candidates = [max(earliest_s, start) for start, end in shifts if max(earliest_s, start) <= end]
    return min(candidates, default=None)


def trip_times_s(
    *,
    now_s: int,
    free_s: int,
    to_shop_s: int,
    ready_s: Sequence[int],
    pickup_s: int,
    shifts: Sequence[tuple[int, int]],
    legs_s: Sequence[int],
    handoff_s: int,
) -> dict[str, object] | None:
    """Leave, arrival at the shop, departure and deliveries of one trip by the DESIGN rules.

    ``legs_s`` are the travel seconds shop -> first stop -> second stop ... in sequence;
    ``ready_s`` the ready times of the bundle. None when no shift admits the departure.
    """
    leave_s = max(now_s, free_s)
    arrive_s = leave_s + to_shop_s
    depart_s = depart_within_shift(max(arrive_s, max(ready_s)) + pickup_s, shifts)
    if depart_s is None:
        return None
    delivered = []
    clock_s = depart_s
    for leg_s in legs_s:
        clock_s += leg_s + handoff_s
        delivered.append(clock_s)
    return {
        "leave_s": leave_s,
        "arrive_shop_s": arrive_s,
        "depart_s": depart_s,
        "delivered_s": delivered,
    }
