"""Database engines: SQLite (embedded default) and PostgreSQL (production).

SQLite runs in WAL mode with a ``busy_timeout``; pysqlite's own transaction handling is switched
off and SQLAlchemy emits the ``BEGIN`` itself (the recipe of SQLAlchemy's SQLite dialect
documentation, "Enabling Non-Legacy SQLite Transactional Modes"), so that a write transaction
starts with ``BEGIN IMMEDIATE``: it takes the write lock at its first statement, and two writers
queue on the busy timeout instead of failing half-way. Read transactions use a plain deferred
``BEGIN``, which in WAL mode never blocks nor is blocked by a writer.

The schema is made by the Alembic migrations of ``api.migrations``, applied at start.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine, event
from sqlalchemy.engine import Connection, make_url
from sqlmodel import create_engine

from api import models  # noqa: F401  (registers the tables on SQLModel.metadata)

T = TypeVar("T")

# Execution option naming the statement that opens a SQLite transaction.
SQLITE_BEGIN_OPTION = "quarterhour_sqlite_begin"
BEGIN_IMMEDIATE = "BEGIN IMMEDIATE"
# Connections a SQLite file engine keeps open, and how many more it opens at peaks.
SQLITE_POOL_SIZE = 24
SQLITE_POOL_OVERFLOW = 24


def is_sqlite(engine: Engine) -> bool:
    """Whether ``engine`` talks to SQLite."""
    return engine.dialect.name == "sqlite"


def create_db_engine(database_url: str, *, sqlite_busy_timeout_ms: int = 5_000) -> Engine:
    """An engine for ``database_url``; for SQLite also the parent folder of the file."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True)

    if url.database and url.database != ":memory:" and not url.database.startswith("file:"):
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    pool: dict[str, int | bool] = {}
    if url.database and url.database != ":memory:" and not url.database.startswith("file:"):
        # A file: pooled connections, enough for the thread pool's readers (a connection made
        # anew costs its PRAGMAs; the default pool of 5 + 10 churned under load). Last in,
        # first out: the few connections in use keep their page caches, which a connection
        # must drop whenever another one wrote since its last transaction (WAL); taken in
        # turn, every connection's cache was stale at each use and the group writer read its
        # B-tree pages from the file again at each batch (session 13: its CPU a batch 7 % less
        # on one connection).
        pool = {
            "pool_size": SQLITE_POOL_SIZE,
            "max_overflow": SQLITE_POOL_OVERFLOW,
            "pool_use_lifo": True,
        }
    engine = create_engine(url, connect_args={"check_same_thread": False}, **pool)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Hand transaction control to SQLAlchemy (see ``_on_begin``).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={int(sqlite_busy_timeout_ms)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        # FULL: an acknowledged order survives a power cut, not only a crash of the process.
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        connection.exec_driver_sql(
            connection.get_execution_options().get(SQLITE_BEGIN_OPTION, "BEGIN")
        )

    return engine


async def run_read(engine: Engine, read: Callable[[Engine], T]) -> T:
    """``read(engine)``: on the event loop on SQLite (a read by key there is a few tens of
    microseconds, less than a thread hop, and a WAL reader never waits for the writer), in a
    thread on a networked database."""
    if is_sqlite(engine):
        return read(engine)
    return await asyncio.to_thread(read, engine)


def writer(engine: Engine) -> Engine:
    """The same engine for write transactions (``BEGIN IMMEDIATE`` on SQLite)."""
    if not is_sqlite(engine):
        return engine
    return engine.execution_options(**{SQLITE_BEGIN_OPTION: BEGIN_IMMEDIATE})


def create_tables(engine: Engine) -> None:
    """Bring the schema to the latest migration (idempotent); ``api.migrations.upgrade``."""
    from api.migrations import upgrade  # api.migrations imports this module

    upgrade(engine)
