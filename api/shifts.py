"""What a change of a rider's declared shifts keeps: the past as it was, the rest as sent.

The rider hours of a shop's KPIs (``api.kpis``) come from the stored shifts, so a change of them
(``PATCH /v1/riders/{id}``) only replaces what lies ahead of the service's clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

# A declared shift: ``(start, end)``, a closed interval of aware instants.
Shift = tuple[datetime, datetime]


def replace_shifts_from(old: Sequence[Shift], new: Sequence[Shift], now: datetime) -> list[Shift]:
    """The shifts once ``new`` replaces ``old`` from ``now`` on, sorted, in UTC.

    Each old shift is cut to end by ``now`` and each new one to start from it; empty pieces are
    dropped. An old piece and a new one meeting at ``now`` join into one shift, so an ongoing
    shift is extended or ended rather than split. Shifts of one list that touch stay apart, as
    declared. ``old`` and ``new`` each hold no overlapping shifts.
    """
    now = now.astimezone(UTC)
    past = sorted(
        (start.astimezone(UTC), min(end, now).astimezone(UTC))
        for start, end in old
        if start < min(end, now)
    )
    future = sorted(
        (max(start, now).astimezone(UTC), end.astimezone(UTC))
        for start, end in new
        if max(start, now) < end
    )
    if past and future and past[-1][1] == now == future[0][0]:
        return [*past[:-1], (past[-1][0], future[0][1]), *future[1:]]
    return past + future
