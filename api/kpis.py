"""A shop's KPIs for one day, by DESIGN.md's "Exact definitions" where they apply.

A day is the shop's: local midnight to midnight in its ``timezone`` (23 or 25 hours when
daylight saving changes). The orders of a day are those *placed* during it, whatever happened
to them later; a day that is still running therefore counts its open orders as not (yet) on
time.

Rider hours are each rider's time on shift *or* on duty: DESIGN's on-shift hours come from
declared shifts, but a rider may work by going on duty without declaring any, and the service
records when (``rider_duty_spans``); the two are merged so that an hour counts once. A rider
counts for a shop only while it served the shop (``rider_shop_spans``: from its link to its
unlink), so that a change of the roster today leaves the shop's past days as they were; a change
of a rider's shifts replaces them from now on only (``api.shifts``), for the same reason.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import numpy as np
from sqlmodel import Session, col, or_, select

from api.errors import AppError
from api.models import (
    ClickToDoorPublic,
    Order,
    OrderEvent,
    OrderStatus,
    RiderDutySpan,
    RiderShift,
    RiderShopSpan,
    Shop,
    ShopKpisPublic,
)


def day_bounds(day: date, timezone: str = "UTC") -> tuple[datetime, datetime]:
    """``[start, end)`` in UTC of the local ``day`` in ``timezone``; 422 ``date_out_of_range``
    for a day whose bounds are not representable (the first and last ones)."""
    zone = ZoneInfo(timezone)
    try:
        start = datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)
        end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone).astimezone(UTC)
    except OverflowError:
        raise AppError(
            422, "date_out_of_range", f"date {day.isoformat()} is out of range"
        ) from None
    return start, end


def local_date(moment: datetime, timezone: str) -> date:
    """The day ``moment`` falls on in ``timezone``."""
    return moment.astimezone(ZoneInfo(timezone)).date()


def merged_seconds(
    intervals: Iterable[tuple[datetime, datetime]], start: datetime, end: datetime
) -> float:
    """Seconds covered by the union of ``intervals`` clipped to ``[start, end)``."""
    clipped = sorted(
        (max(a, start), min(b, end)) for a, b in intervals if min(b, end) > max(a, start)
    )
    total = 0.0
    current: tuple[datetime, datetime] | None = None
    for a, b in clipped:
        if current is not None and a <= current[1]:
            current = (current[0], max(current[1], b))
            continue
        if current is not None:
            total += (current[1] - current[0]).total_seconds()
        current = (a, b)
    if current is not None:
        total += (current[1] - current[0]).total_seconds()
    return total


# Who served a shop when: rider id -> its link spans ``(linked_at, unlinked_at)``.
LinkSpans = dict[uuid.UUID, list[tuple[datetime, datetime]]]


def link_spans(session: Session, shop_id: uuid.UUID, start: datetime, end: datetime) -> LinkSpans:
    """The riders that served the shop at some time in ``[start, end)``, with the spans they
    did, clipped to it (a span linked since ever starts at ``start``, one still open ends at
    ``end``)."""
    rows = session.exec(
        select(RiderShopSpan.rider_id, RiderShopSpan.linked_at, RiderShopSpan.unlinked_at).where(
            RiderShopSpan.shop_id == shop_id,
            or_(col(RiderShopSpan.linked_at).is_(None), col(RiderShopSpan.linked_at) < end),
            or_(col(RiderShopSpan.unlinked_at).is_(None), col(RiderShopSpan.unlinked_at) > start),
        )
    ).all()
    links: LinkSpans = {}
    for rider_id, linked_at, unlinked_at in rows:
        span = (
            start if linked_at is None else max(linked_at, start),
            end if unlinked_at is None else min(unlinked_at, end),
        )
        links.setdefault(rider_id, []).append(span)
    return links


def rider_seconds(
    session: Session,
    links: LinkSpans,
    start: datetime,
    end: datetime,
    now: datetime,
) -> float:
    """The riders' time on shift or on duty in ``[start, end)`` while they served the shop,
    summed: each rider's declared shifts and duty spans (one still open counting up to ``now``)
    cut to its link spans (``links``) and merged, so that an overlap counts once, and clipped
    to the day."""
    rider_ids = list(links)
    if not rider_ids:
        return 0.0
    shifts = session.exec(
        select(RiderShift.rider_id, RiderShift.start_at, RiderShift.end_at).where(
            col(RiderShift.rider_id).in_(rider_ids),
            col(RiderShift.start_at) < end,
            col(RiderShift.end_at) > start,
        )
    ).all()
    spans = session.exec(
        select(RiderDutySpan.rider_id, RiderDutySpan.start_at, RiderDutySpan.end_at).where(
            col(RiderDutySpan.rider_id).in_(rider_ids),
            col(RiderDutySpan.start_at) < end,
            or_(col(RiderDutySpan.end_at).is_(None), col(RiderDutySpan.end_at) > start),
        )
    ).all()
    by_rider: dict[uuid.UUID, list[tuple[datetime, datetime]]] = {}
    for rider_id, start_at, end_at in [*shifts, *spans]:
        worked = (start_at, now if end_at is None else end_at)
        by_rider.setdefault(rider_id, []).extend(
            (max(worked[0], linked_at), min(worked[1], unlinked_at))
            for linked_at, unlinked_at in links[rider_id]
        )
    return sum(merged_seconds(intervals, start, end) for intervals in by_rider.values())


def shop_kpis(session: Session, shop: Shop, day: date, now: datetime) -> ShopKpisPublic:
    """The KPIs of ``shop`` on its local ``day`` as they stand at ``now``."""
    start, end = day_bounds(day, shop.timezone)
    in_day = (
        Order.shop_id == shop.id,
        col(Order.placed_at) >= start,
        col(Order.placed_at) < end,
    )
    statuses = session.exec(select(Order.status).where(*in_day)).all()
    rows = session.exec(
        select(Order.id, Order.placed_at, Order.promised_at, OrderEvent.at)
        .join(OrderEvent, col(OrderEvent.order_id) == col(Order.id))
        .where(
            *in_day,
            Order.status == OrderStatus.delivered.value,
            OrderEvent.kind == "delivered",
        )
    ).all()
    delivered_at: dict[uuid.UUID, tuple[datetime, datetime, datetime]] = {}
    for order_id, placed_at, promised_at, at in rows:
        if order_id not in delivered_at or at < delivered_at[order_id][2]:
            delivered_at[order_id] = (placed_at, promised_at, at)

    n_orders = len(statuses)
    n_cancelled = sum(status == OrderStatus.cancelled for status in statuses)
    n_delivered = len(delivered_at)
    n_on_time = sum(at <= promised_at for _, promised_at, at in delivered_at.values())
    click_to_door = np.array(
        [(at - placed_at).total_seconds() for placed_at, _, at in delivered_at.values()],
        dtype=np.float64,
    )
    served = n_orders - n_cancelled
    hours = rider_seconds(session, link_spans(session, shop.id, start, end), start, end, now)
    hours /= 3600
    return ShopKpisPublic(
        shop_id=shop.id,
        date=day,
        orders=n_orders,
        delivered=n_delivered,
        cancelled=n_cancelled,
        on_time_rate=n_on_time / served if served else None,
        click_to_door_s=ClickToDoorPublic(
            mean=float(click_to_door.mean()) if n_delivered else None,
            p90=float(np.percentile(click_to_door, 90)) if n_delivered else None,
        ),
        rider_hours=hours,
        orders_per_rider_hour=n_delivered / hours if hours > 0 else None,
    )
