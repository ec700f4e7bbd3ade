"""Quotes: does the shop serve this drop-off, and what would it promise if ordered now."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter

from api.deps import CurrentShopDep, NowDep
from api.engine import walk_s
from api.models import QuoteCreate, QuotePublic
from api.retry import RetryLostRaceRoute

router = APIRouter(prefix="/quotes", tags=["quotes"], route_class=RetryLostRaceRoute)

LOAD_NOTE = (
    "promised_at is the time of the quote plus the shop's promise_min; "
    "it does not yet account for the orders and riders of the moment"
)


@router.post("")
def create_quote(quote_in: QuoteCreate, shop: CurrentShopDep, now: NowDep) -> QuotePublic:
    """Whether the drop-off is within the shop's walking circle (DESIGN's walking rule, as at
    order intake) and, if so, the promise an order placed now would get. Nothing is stored."""
    walking_s = walk_s(shop.lat, shop.lon, quote_in.dropoff_lat, quote_in.dropoff_lon)
    inside = walking_s <= shop.circle_walk_min * 60
    return QuotePublic(
        inside_circle=inside,
        walk_s=walking_s,
        circle_walk_min=shop.circle_walk_min,
        size_bags=quote_in.size_bags,
        quoted_at=now,
        promised_at=now + timedelta(minutes=shop.promise_min) if inside else None,
        promise_min=shop.promise_min,
        note=LOAD_NOTE if inside else "the drop-off is outside the shop's walking circle",
    )
