"""Routes that write through their own session, run again when they lose a race.

On PostgreSQL two transactions that lock the same rows in different orders deadlock, and the
database aborts one of them (a serialization failure likewise). The group writer runs its
batches again (``api.group_commit``); a route that writes in its request's own session (the
admin and profile routes: a rider's PATCH, linking a shop, keys, secrets, endpoints) would
answer its client 503 instead. ``RetryLostRaceRoute`` rolls such a request's session back and
runs its endpoint again, up to ``BATCH_ATTEMPTS`` times after a short random pause: the
aborted transaction stored nothing, so running it again gives the one effect asked for.
"""

from __future__ import annotations

import functools
import inspect
import random
import time
from collections.abc import Callable
from typing import Any

from fastapi.routing import APIRoute
from sqlmodel import Session

from api.group_commit import BATCH_ATTEMPTS, RETRY_PAUSE_S, lost_race


def retrying_lost_races(endpoint: Callable[..., Any]) -> Callable[..., Any]:
    """``endpoint`` (a plain function given its request's ``Session``) run again, after a
    rollback of that session, whenever its transaction lost a race."""

    @functools.wraps(endpoint)
    def retrying(*args: Any, **kwargs: Any) -> Any:
        sessions = [value for value in kwargs.values() if isinstance(value, Session)]
        for attempt in range(1, BATCH_ATTEMPTS + 1):
            try:
                return endpoint(*args, **kwargs)
            except Exception as error:
                if attempt == BATCH_ATTEMPTS or not sessions or not lost_race(error):
                    raise
            for session in sessions:
                session.rollback()
            time.sleep(random.uniform(0.0, RETRY_PAUSE_S * attempt))
        raise AssertionError("unreachable")  # pragma: no cover

    return retrying


class RetryLostRaceRoute(APIRoute):
    """An ``APIRoute`` whose plain (``def``) endpoint runs again when it lost a race. The
    ``async def`` routes write through the group writer, which already runs a lost batch
    again."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        if not inspect.iscoroutinefunction(endpoint):
            endpoint = retrying_lost_races(endpoint)
        super().__init__(path, endpoint, **kwargs)
