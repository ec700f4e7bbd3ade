"""Group commit: the writes of many concurrent requests in one transaction, with one fsync.

On SQLite every write transaction holds the one write lock, and with ``synchronous=FULL`` its
commit waits for an fsync (a few milliseconds here, most of an order intake's write time).
``GroupCommit.run(work)`` queues ``work`` (a function of a write ``Session``); one drain task
per event loop takes every queued piece of work (up to ``MAX_BATCH``), takes the process's
SQLite write turn (``api.deps.take_write_turn``, shared with every other write request), and
runs the batch in the writer's thread in ONE write transaction (``BEGIN IMMEDIATE`` on SQLite):
each piece of work inside a SAVEPOINT of its own, then one commit. Only after that commit, so
after the fsync, is any waiting request answered: durable before acknowledged, as before.

Each piece of work has its own outcome: what it returned, or what it raised. A piece that raises
has its savepoint rolled back (nothing of it is stored) and its exception is raised in its own
request only; the rest of the batch commits. A piece that raises ``IntegrityError`` (a unique
key a concurrent transaction committed first: PostgreSQL, or another process) is run again in a
fresh savepoint, up to ``ATTEMPTS`` times, so that it reads the winner's row; after that the
``IntegrityError`` is its outcome. Should the transaction itself fail (``BEGIN`` times out, the
commit fails), every request of the batch gets that error: none of its writes is stored.

A transaction that loses to a concurrent one (PostgreSQL: a deadlock, or a serialization
failure) is rolled back whole and the batch run again from the start, up to
``BATCH_ATTEMPTS`` times, after a short random pause. Retrying only the piece that lost would
not do: the transaction still holds the locks of the pieces before it, which the winner may be
waiting for. Two batches of two processes deadlock when they take the same locks (order keys,
rows) in different orders: each batch takes them in the order its requests arrived.

There is no timer: a batch is whatever queued while the previous one was being written (or
while the write turn was held by another request), so a lone request waits for nobody, and the
batches grow with the load. The same code path serves PostgreSQL (no write turn there; one
batch in flight per process, concurrent with other processes' transactions).

A piece of work must flush at most, never commit or roll back the session, and must return
plain data (not ORM rows, which later savepoints may expire). It may be run more than once (see
below), so it must be a function of the database only.

A batch is first written without savepoints (``_trust_one``, ``_trust_group``): most pieces
of work succeed, and a savepoint costs two more statements a piece, each a wait for the GIL
behind the event loop. Only when a piece raises is the whole transaction rolled back and the
batch written again as above, a savepoint each, so that the piece fails alone.

Batch kinds: a piece of work may be ``Batched(kind, item)``, one item of a ``BatchKind`` (order
intake, ``api.intake``). The items of one kind in a batch are written together by
``kind.many(session, items)`` in ONE savepoint (a multi-row INSERT per table instead of a few
statements per item), at the place of the kind's first item in the batch (concurrent requests
have no order among them). ``many`` answers each item's outcome, or ``None`` for an item it
leaves to ``kind.one(session, item)``, which then runs in a savepoint of its own after the
group, like any piece of work. Should ``many`` raise (a unique key taken meanwhile by another
process), its savepoint is rolled back and every item of the group runs through ``kind.one``:
a bad item still fails alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from api.db import writer
from api.errors import AppError

logger = logging.getLogger("api.group_commit")

T = TypeVar("T")
I = TypeVar("I")  # noqa: E741  (an item of a batch kind)
Work = Callable[[Session], T]

# Most pieces of work in one transaction: bounds the wait of the last request of a batch (an
# order intake costs about 0.3 ms in a batch's group, an ORM write 1-5 ms).
MAX_BATCH = 32
# Runs of a piece of work that raised IntegrityError (a concurrent transaction won a unique key).
ATTEMPTS = 3
# Runs of a whole batch whose transaction lost to a concurrent one (``lost_race``), and the
# longest pause before the next run, times the runs so far (random, so that two losers part).
BATCH_ATTEMPTS = 5
RETRY_PAUSE_S = 0.005
# PostgreSQL's SQLSTATEs of a transaction that may simply be run again: deadlock_detected,
# serialization_failure.
LOST_RACE_SQLSTATES = frozenset({"40P01", "40001"})
# The thread every batch of the process runs in: batches never queue behind the reads and the
# dispatch plans of the loop's default executor (one transaction at a time, whole, per batch).
WRITER_THREAD = ThreadPoolExecutor(max_workers=1, thread_name_prefix="group-commit")


@dataclass(frozen=True)
class Outcome:
    """What one piece of work returned (``error is None``) or raised."""

    value: Any = None
    error: BaseException | None = None


@dataclass(frozen=True)
class BatchKind(Generic[I, T]):
    """A kind of write the writer stores for many requests at once (see the module docstring):
    ``many`` writes a group of items (outcome per item, ``None``: left to ``one``), ``one``
    writes one item."""

    name: str
    many: Callable[[Session, Sequence[I]], list[Outcome | None]]
    one: Callable[[Session, I], T]


@dataclass(frozen=True)
class Batched(Generic[I, T]):
    """One item of a batch kind, as a piece of work (alone, it is ``kind.one``)."""

    kind: BatchKind[I, T]
    item: I

    def __call__(self, session: Session) -> T:
        return self.kind.one(session, self.item)


class _Lost(Exception):
    """The batch's transaction lost to a concurrent one: it is run again, whole."""


def lost_race(error: BaseException | None) -> bool:
    """Whether ``error`` (a SQLAlchemy error, or what it wraps) is a lost deadlock or a
    serialization failure: the transaction is aborted, and running it again may succeed."""
    for _ in range(8):  # a SQLAlchemy error, the DBAPI error it wraps, a cause or two
        if error is None:
            return False
        if getattr(error, "sqlstate", None) in LOST_RACE_SQLSTATES:
            return True
        error = getattr(error, "orig", None) or error.__cause__
    return False


def _run_one(session: Session, work: Work[Any]) -> Outcome:
    """Run ``work`` in a savepoint of its own; roll the savepoint back when it raises
    (``_Lost`` when it lost a race: the batch must run again, whole)."""
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
            if lost_race(error):
                raise _Lost from error
            return Outcome(error=error)
        else:
            return Outcome(value=value)
    raise AssertionError("unreachable")  # pragma: no cover


def _run_group(session: Session, group: list[Batched[Any, Any]]) -> list[Outcome]:
    """The items of one batch kind: ``many`` in one savepoint, then ``one`` for the rest."""
    kind = group[0].kind
    savepoint = session.begin_nested()
    try:
        found = kind.many(session, [batched.item for batched in group])
        savepoint.commit()
    except Exception as error:  # e.g. a unique key another process took: one at a time
        savepoint.rollback()
        if lost_race(error):
            raise _Lost from error
        logger.info("%s of %d written one by one: %s", kind.name, len(group), error)
        found = [None] * len(group)
    return [
        outcome if outcome is not None else _run_one(session, batched)
        for batched, outcome in zip(group, found, strict=True)
    ]


class _Raised(Exception):
    """A piece of work raised in the trusting pass: the batch is written again, with savepoints."""


def _trust_one(session: Session, work: Work[Any]) -> Outcome:
    """Run ``work`` and flush, no savepoint; ``_Raised`` when either raises (the transaction
    then holds a part of the batch only)."""
    try:
        value = work(session)
        session.flush()
    except Exception as error:
        raise _Raised from error
    return Outcome(value=value)


def _trust_group(session: Session, group: list[Batched[Any, Any]]) -> list[Outcome]:
    """``_run_group`` without savepoints: ``many``, then ``one`` for the rest, or ``_Raised``."""
    kind = group[0].kind
    try:
        found = kind.many(session, [batched.item for batched in group])
        session.flush()
    except Exception as error:
        raise _Raised from error
    return [
        outcome if outcome is not None else _trust_one(session, batched)
        for batched, outcome in zip(group, found, strict=True)
    ]


def _run_all(
    session: Session,
    works: list[Work[Any]],
    run_one: Callable[[Session, Work[Any]], Outcome] = _run_one,
    run_group: Callable[[Session, list[Batched[Any, Any]]], list[Outcome]] = _run_group,
) -> list[Outcome]:
    """Every piece of work of a batch, the items of each batch kind as one group (at the place
    of its first item): each in a savepoint of its own by default, or trusting (``_trust_one``
    and ``_trust_group``)."""
    groups: dict[BatchKind[Any, Any], list[tuple[int, Batched[Any, Any]]]] = {}
    steps: list[int | BatchKind[Any, Any]] = []
    for index, work in enumerate(works):
        if isinstance(work, Batched):
            if work.kind not in groups:
                groups[work.kind] = []
                steps.append(work.kind)
            groups[work.kind].append((index, work))
        else:
            steps.append(index)
    outcomes: dict[int, Outcome] = {}
    for step in steps:
        if isinstance(step, int):
            outcomes[step] = run_one(session, works[step])
            continue
        members = groups[step]
        written = run_group(session, [batched for _, batched in members])
        outcomes.update(zip((index for index, _ in members), written, strict=True))
    return [outcomes[index] for index in range(len(works))]


def write_batch(engine: Engine, works: list[Work[Any]]) -> list[Outcome]:
    """Run ``works`` in one write transaction, each failing alone (in its own savepoint when
    one fails), and commit once; each one's outcome, or the transaction's error for all of
    them when it failed. A transaction that lost a race is run again (``BATCH_ATTEMPTS``)."""
    for attempt in range(1, BATCH_ATTEMPTS + 1):
        try:
            return _write_once(engine, works)
        except _Lost as lost:
            error = lost.__cause__ or lost
            if attempt == BATCH_ATTEMPTS:
                logger.warning(
                    "a group commit of %d writes lost %d races: %s", len(works), attempt, error
                )
                return [Outcome(error=error) for _ in works]
            logger.info("a group commit of %d writes run again: %s", len(works), error)
            time.sleep(random.uniform(0.0, RETRY_PAUSE_S * attempt))
    raise AssertionError("unreachable")  # pragma: no cover


def _write_once(engine: Engine, works: list[Work[Any]]) -> list[Outcome]:
    """``write_batch``'s one run: ``_Lost`` when its transaction lost a race (rolled back)."""
    try:
        with Session(writer(engine), expire_on_commit=False) as session:
            session.connection()  # BEGIN (IMMEDIATE on SQLite) now, outside any savepoint
            try:
                outcomes = _run_all(session, works, _trust_one, _trust_group)
            except _Raised as raised:
                if lost_race(raised.__cause__):
                    raise _Lost from raised.__cause__
                logger.debug("batch of %d written again, savepoints: %r", len(works), raised)
                session.rollback()
                session.connection()  # BEGIN again
                outcomes = _run_all(session, works)
            session.commit()
    except _Lost:
        raise
    except Exception as error:  # nothing of the batch is stored
        if lost_race(error):  # e.g. at the commit
            raise _Lost from error
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
                    outcomes = await asyncio.get_running_loop().run_in_executor(
                        WRITER_THREAD, write_batch, self.engine, [job.work for job in batch]
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
