"""The FastAPI application: ``create_app(settings)``.

Run it with ``uvicorn --factory api.main:create_app`` (settings from ``QUARTERHOUR_*``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime

from fastapi import APIRouter, FastAPI
from sqlalchemy import text

from api.config import Settings, get_settings
from api.db import create_db_engine
from api.deps import EngineDep, group_commit_of
from api.dispatch import new_worker_id, release_leases, run_dispatch_loop
from api.engine import warm_up
from api.errors import BodySizeLimit, install_error_handlers
from api.fast import QuarterhourApp
from api.migrations import upgrade
from api.models import ErrorPublic, utc_now
from api.outbox import run_delivery_loop
from api.planner import Planner
from api.routes import (
    orders,
    quotes,
    riders,
    shops,
    trips,
    webhook_endpoints,
    webhook_secrets,
    webhooks,
)

ERROR_RESPONSES: dict[int | str, dict[str, object]] = {
    status: {"model": ErrorPublic} for status in (400, 401, 404, 409, 413, 422, 503)
}

health_router = APIRouter(tags=["health"])
# The /v1 resources, in the order their routes are matched and documented.
V1_RESOURCES = (
    shops,
    quotes,
    orders,
    riders,
    trips,
    webhook_secrets,
    webhooks,
    webhook_endpoints,
)

logger = logging.getLogger("api.main")
# CPython's GIL switch interval while the service runs (its default is 5 ms). The group
# writer's thread gives the GIL up at every SQLite call and waits for it again behind the event
# loop; at 1 ms a mixed ``make load`` run had a lower p99 and less CPU a request (session 6).
GIL_SWITCH_INTERVAL_S = 0.001


def freeze_start_up_heap() -> None:
    """Hide what the start-up made (modules, kernels, the app) from the cyclic collector,
    once a process: its full collections then walk only what requests made since. Under
    ``make load`` they had taken 100-230 ms each, with every request waiting, several times a
    minute; after this, 10-35 ms (session 7)."""
    if gc.get_freeze_count() == 0:
        gc.collect()
        gc.freeze()


@health_router.get("/healthz")
def healthz(engine: EngineDep) -> dict[str, str]:
    """The service is up and its database answers."""
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))
    return {"status": "ok"}


async def _release_leases(app: FastAPI, owner_id: str, now: datetime) -> None:
    """At shutdown, the dispatch leases of this process's loop end now (``release_leases``),
    through the group writer: after any trips the loop still had queued there."""
    try:
        released = await group_commit_of(app).run(
            functools.partial(release_leases, owner_id=owner_id, now=now)
        )
    except Exception:  # a stopping process must still stop: its leases then simply lapse
        logger.exception("releasing the dispatch leases of %s failed", owner_id)
        return
    logger.info("released %d dispatch leases of %s", released, owner_id)


def create_app(
    settings: Settings | None = None, *, clock: Callable[[], datetime] = utc_now
) -> FastAPI:
    """A service instance on ``settings`` (default: from the environment) and ``clock``."""
    settings = settings or get_settings()
    engine = create_db_engine(
        settings.database_url, sqlite_busy_timeout_ms=settings.sqlite_busy_timeout_ms
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
        upgrade(engine)  # Alembic migrations to head
        warm_up(dispatch=settings.dispatch_enabled)
        freeze_start_up_heap()
        loops = []
        owner_id = new_worker_id()
        planner = Planner()
        if settings.dispatch_enabled:
            if settings.planner_process:
                planner.start()
            writer = functools.partial(group_commit_of, _app)
            loops.append(
                asyncio.create_task(
                    run_dispatch_loop(engine, settings, clock, writer, owner_id, planner.decide)
                )
            )
        if settings.webhook_delivery_enabled:
            loops.append(asyncio.create_task(run_delivery_loop(engine, settings, clock)))
        yield
        for loop in loops:
            loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await loop
        if settings.dispatch_enabled:
            await _release_leases(_app, owner_id, clock())
        await asyncio.to_thread(planner.stop)
        engine.dispose()

    app = QuarterhourApp(
        title="Quarterhour",
        summary="Routes the online orders of neighbourhood shops to their riders.",
        version="0.1.0",
        lifespan=lifespan,
        responses=ERROR_RESPONSES,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.clock = clock
    install_error_handlers(app)
    app.add_middleware(BodySizeLimit, max_body_bytes=settings.max_body_bytes)

    # Each resource's router straight on the app under /v1, not in a /v1 router of its own:
    # FastAPI matches a request again at each level of included routers, to choose and again
    # to handle it (the extra level was a fifth of the Python calls of an order intake).
    for resource in V1_RESOURCES:
        app.include_router(resource.router, prefix="/v1")
    app.include_router(health_router)
    # The hot routes' fast paths in front of FastAPI's machinery (``api.fast``).
    app.install_fast_paths([resource.router for resource in V1_RESOURCES], settings.max_body_bytes)
    return app
