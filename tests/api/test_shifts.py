"""Tests of api/shifts.py: new shifts replace the old ones from now on, the past stays."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from api.shifts import Shift, replace_shifts_from

DAY = datetime(2026, 11, 29, tzinfo=UTC)
NOW = DAY + timedelta(hours=12)


def at(hours: float) -> datetime:
    return DAY + timedelta(hours=hours)


def shifts(*pairs: tuple[float, float]) -> list[Shift]:
    return [(at(start), at(end)) for start, end in pairs]


@pytest.mark.parametrize(
    ("old", "new", "kept"),
    [
        # An ongoing shift extended: one shift, not two touching at now.
        (shifts((7, 15)), shifts((7, 17)), shifts((7, 17))),
        # An ongoing shift sent again unchanged stays as it is.
        (shifts((7, 15)), shifts((7, 15)), shifts((7, 15))),
        # An ongoing shift ended now, the future ones dropped.
        (shifts((7, 15), (18, 20)), [], shifts((7, 12))),
        # An ongoing shift moved: its worked part stays, the new one starts later.
        (shifts((7, 15)), shifts((13, 16)), shifts((7, 12), (13, 16))),
        # A new shift overlapping now joins the worked part; its past start does not count.
        (shifts((7, 15)), shifts((9, 13)), shifts((7, 13))),
        # An old shift ended at now and a new one starting at now touch: one shift.
        (shifts((7, 12)), shifts((12, 14)), shifts((7, 14))),
        # Entirely past old shifts stay; new shifts entirely past change nothing.
        (shifts((1, 3), (5, 6)), shifts((2, 4), (13, 14)), shifts((1, 3), (5, 6), (13, 14))),
        (shifts((1, 3)), shifts((1, 3)), shifts((1, 3))),
        # Entirely future old shifts are replaced.
        (shifts((13, 15), (16, 18)), shifts((14, 20)), shifts((14, 20))),
        # Empty pieces are dropped: an old shift starting now, a new one ending now.
        (shifts((12, 15)), shifts((10, 12)), []),
        ([], [], []),
        # Touching shifts of one list stay apart, as declared.
        (
            shifts((1, 2), (2, 3)),
            shifts((13, 14), (14, 15)),
            shifts((1, 2), (2, 3), (13, 14), (14, 15)),
        ),
    ],
)
def test_replace_shifts_from(old: list[Shift], new: list[Shift], kept: list[Shift]) -> None:
    """Each case's stored shifts after the change at 12:00."""
    assert replace_shifts_from(old, new, NOW) == kept


def test_the_result_is_sorted_and_in_utc() -> None:
    """Shifts and ``now`` in another zone give sorted UTC pairs."""
    shanghai = ZoneInfo("Asia/Shanghai")
    old = [(at(7).astimezone(shanghai), at(15).astimezone(shanghai))]
    new = [(at(18).astimezone(shanghai), at(20)), (at(7), at(14).astimezone(shanghai))]
    kept = replace_shifts_from(old, new, NOW.astimezone(shanghai))
    assert kept == shifts((7, 14), (18, 20))
    assert all(moment.tzinfo is UTC for shift in kept for moment in shift)


def union(intervals: list[Shift], start: datetime, end: datetime) -> list[Shift]:
    """The union of ``intervals`` clipped to ``[start, end]``, as disjoint closed intervals."""
    clipped = sorted(
        (max(a, start), min(b, end)) for a, b in intervals if max(a, start) < min(b, end)
    )
    merged: list[Shift] = []
    for a, b in clipped:
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    return merged


def disjoint_shifts(hours: list[int]) -> list[Shift]:
    """Shifts between consecutive pairs of the sorted ``hours``: none overlap, some touch."""
    points = sorted(hours)
    pairs = zip(points[::2], points[1::2], strict=False)
    return [(at(start), at(end)) for start, end in pairs if start < end]


HOURS = st.lists(st.integers(min_value=0, max_value=24), max_size=10).map(disjoint_shifts)


@given(old=HOURS, new=HOURS, now_h=st.integers(min_value=0, max_value=24))
def test_the_past_is_the_old_and_the_future_the_new(
    old: list[Shift], new: list[Shift], now_h: int
) -> None:
    """Before now the result covers what the old shifts did, after it what the new ones do; it
    is sorted, has no overlap, and the same change again changes nothing."""
    now, before, after = at(now_h), at(-1), at(25)
    kept = replace_shifts_from(old, new, now)
    assert union(kept, before, now) == union(old, before, now)
    assert union(kept, now, after) == union(new, now, after)
    assert all(start < end for start, end in kept)
    assert all(end <= start for (_, end), (start, _) in pairwise(kept))
    assert replace_shifts_from(kept, new, now) == kept
