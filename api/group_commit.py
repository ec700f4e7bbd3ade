"""Group commit: the writes of many concurrent requests in one transaction, with one fsync.

On SQLite every write transaction holds the one write lock, and with ``synchronous=FULL`` its
commit waits for an fsync (a few milliseconds here, most of an order intake's write time).
``GroupCommit.run(work)`` queues ``work`` (a function of a write ``Session``); one drain task
per event loop takes every queued piece of work (up to ``MAX_BATCH``), takes the process's
SQLite write turn (``api.deps.take_write_turn``, shared with every other write request), and
runs the batch in a worker thread in ONE write transaction (``BEGIN IMMEDIATE`` on SQLite):
each piece of work inside a SAVEPOINT of its own, then one commit. Only after that commit, so
after the fsync, is any waiting request answered: durable before acknowledged, as before.

Each piece of work has its own outcome: what it returned, or what it raised. A piece that raises
has its savepoint rolled back (nothing of it is stored) and its exception is raised in its own
request only; the rest of the batch commits. A piece that raises ``IntegrityError`` (a unique
key a concurrent transaction committed first: PostgreSQL, or another process) is run again in a
fresh savepoint, up to ``ATTEMPTS`` times, so that it reads the winner's row; after that the
``IntegrityError`` is its outcome. Should the transaction itself fail (``BEGIN`` times out, the
commit fails), every request of the batch gets that error: none of its writes is stored.

There is no timer: a batch is whatever queued while the previous one was being written (or
while the write turn was held by another request), so a lone request waits for nobody, and the
batches grow with the load. The same code path serves PostgreSQL (no write turn there; one
batch in flight per process, concurrent with other processes' transactions).

A piece of work must flush at most, never commit or roll back the session, and must return
plain data (not ORM rows, which later savepoints may expire).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from api.db import writer
from api.errors import AppError

logger = logging.getLogger("api.group_commit")

T = TypeVar("T")
Work = Callable[[Session], T]

# Most pieces of work in one transaction: bounds the wait of the last request of a batch (each
# order intake costs about 2 ms of ORM work in the transaction).
MAX_BATCH = 32
# Runs of a piece of work that raised IntegrityError (a concurrent transaction won a unique key).
ATTEMPTS = 3


@dataclass(frozen=True)
class Outcome:
    """What one piece of work returned (``error is None``) or raised."""

    value: Any = None
    error: BaseException | None = None


def _run_one(session: Session, work: Work[Any]) -> Outcome:
    """Run ``work`` in a savepoint of its own; roll the savepoint back when it raises."""
    for attempt in range(1, ATTEMPTS + 1):
        savepoint = session.begin_nested()
        try:
            value = work(session)
            savepoint.commit()  # flushes: a unique key taken meanwhile raises here
        except IntegrityError as error:
            savepoint.rollback()
            if attempt == ATTEMPTS:
                return Outcome(error=error)
        except Exception as error:
            savepoint.rollback()
            return Outcome(error=error)
        else:
            return Outcome(value=value)
    raise AssertionError("unreachable")  # pragma: no cover


def write_batch(engine: Engine, works: list[Work[Any]]) -> list[Outcome]:
    """Run ``works`` in one write transaction, each in its own savepoint, and commit once;
    each one's outcome, or the transaction's error for all of them when it failed."""
    try:
        with Session(writer(engine), expire_on_commit=False) as session:
            session.connection()  # BEGIN (IMMEDIATE on SQLite) now, outside any savepoint
            outcomes = [_run_one(session, work) for work in works]
            session.commit()
    except Exception as error:  # nothing of the batch is stored
        logger.warning("a group commit of %d writes failed: %s", len(works), error)
        return [Outcome(error=error) for _ in works]
    return outcomes


@dataclass
class _Job(Generic[T]):
    work: Work[T]
    future: asyncio.Future[T]


class GroupCommit:
    """The group writer of one engine on one event loop (see the module docstring).

    ``turns`` is the lock write requests take turns on (SQLite), or ``None`` (PostgreSQL).
    """

    def __init__(
        self, engine: Engine, turns: asyncio.Lock | None, *, max_batch: int = MAX_BATCH
    ) -> None:
        self.engine = engine
        self.turns = turns
        self.max_batch = max_batch
        self._queue: deque[_Job[Any]] = deque()
        self._drainer: asyncio.Task[None] | None = None

    async def run(self, work: Work[T]) -> T:
        """``work(session)`` committed with the batch it joins: its value once durable; what it
        raised (nothing of it stored); or the batch's error (nothing of the batch stored)."""
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.append(_Job(work, future))
        if self._drainer is None:
            self._drainer = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        batch: list[_Job[Any]] = []
        try:
            while self._queue:
                async with self.turns if self.turns is not None else contextlib.nullcontext():
                    # Taken after the turn: whatever queued meanwhile joins this batch.
                    size = min(len(self._queue), self.max_batch)
                    batch = [self._queue.popleft() for _ in range(size)]
                    outcomes = await asyncio.to_thread(
                        write_batch, self.engine, [job.work for job in batch]
                    )
                for job, outcome in zip(batch, outcomes, strict=True):
                    if job.future.done():  # the request was cancelled meanwhile
                        continue
                    if outcome.error is None:
                        job.future.set_result(outcome.value)
                    else:
                        job.future.set_exception(outcome.error)
                batch = []
        finally:
            self._drainer = None
            # Cancelled (the loop is closing) or broken: nobody may wait forever.
            for job in (*batch, *self._queue):
                if not job.future.done():
                    job.future.set_exception(
                        AppError(503, "service_unavailable", "the service is stopping; retry")
                    )
            self._queue.clear()
