"""The yardstick of ``make load``: a bare FastAPI app with one ``POST /v1/orders``.

It parses a body of the same shape as the service's ``OrderCreate`` with pydantic (same field
constraints, unknown fields and NaN rejected) and answers 201 with a JSON body of the order's
public shape, touching no database, no key and no hash. ``bench/load.py`` runs it under the same
uvicorn command line as the service and drives it with the same locust POS user, so that
``ours / bare`` is the share of a plain FastAPI endpoint's throughput that the real intake keeps.

The endpoint is an ``async def``, like the service's ``POST /v1/orders`` (which awaits its group
commit): neither hops through FastAPI's thread pool per request, so the ratio measures the work
of the intake, not a difference of execution model. (Earlier runs used a plain ``def``
here while the service's intake was already ``async``: that flattered the service.)
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import FastAPI, Header
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

app = FastAPI(title="bare FastAPI yardstick")


class BareOrderIn(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    source: str = Field(min_length=1, max_length=32, pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    external_id: str = Field(min_length=1, max_length=128)
    dropoff_lat: float = Field(ge=-90.0, le=90.0)
    dropoff_lon: float = Field(ge=-180.0, le=180.0)
    address: str = Field(default="", max_length=256)
    size_bags: int = Field(default=1, ge=1, le=50)
    ready_at: AwareDatetime | None = None
    pin: str | None = Field(default=None, pattern=r"^[0-9]{4,8}$")
    picking_min: int | None = Field(default=None, ge=0, le=240)


class BareOrderOut(BaseModel):
    id: uuid.UUID
    shop_id: uuid.UUID
    source: str
    external_id: str
    dropoff_lat: float
    dropoff_lon: float
    address: str
    size_bags: int
    status: str
    placed_at: datetime
    ready_at: datetime
    promised_at: datetime
    updated_at: datetime
    trip_id: uuid.UUID | None = None
    eta_at: datetime | None = None
    dispatch_note: str | None = None
    pin: str | None = None


SHOP_ID = uuid.uuid4()


@app.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/v1/orders", status_code=201)
async def create_order(
    order_in: BareOrderIn,
    idempotency_key: str | None = Header(default=None, alias="Idempotency-Key"),
) -> BareOrderOut:
    """Echo the order as accepted, with a fresh id and the times the service would set."""
    now = datetime.now(UTC)
    fields: dict[str, Any] = order_in.model_dump(exclude={"ready_at", "pin", "picking_min"})
    return BareOrderOut(
        **fields,
        id=uuid.uuid4(),
        shop_id=SHOP_ID,
        status="pending",
        placed_at=now,
        ready_at=now + timedelta(minutes=order_in.picking_min or 0),
        promised_at=now + timedelta(minutes=30),
        updated_at=now,
        pin=order_in.pin or "0000",
    )
