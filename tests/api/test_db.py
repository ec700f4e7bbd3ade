"""Tests of api/db.py: SQLite pragmas, BEGIN IMMEDIATE for writes, deferred BEGIN for reads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event, text
from sqlalchemy.exc import OperationalError

from api.db import create_db_engine, writer
from api.migrations import upgrade


def sqlite_engine(tmp_path: Path, busy_timeout_ms: int = 5_000) -> Engine:
    return create_db_engine(
        f"sqlite:///{tmp_path}/var/quarterhour.db", sqlite_busy_timeout_ms=busy_timeout_ms
    )


def record_statements(engine: Engine) -> list[str]:
    statements: list[str] = []

    def before(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", before)
    return statements


def test_sqlite_file_and_folder_are_created(tmp_path: Path) -> None:
    """A SQLite URL under a missing folder works: the folder is made, the schema migrated."""
    engine = sqlite_engine(tmp_path)
    upgrade(engine)
    assert (tmp_path / "var" / "quarterhour.db").is_file()
    engine.dispose()


def test_sqlite_pragmas(tmp_path: Path) -> None:
    """Every connection runs in WAL with the configured busy timeout and foreign keys on."""
    engine = sqlite_engine(tmp_path, busy_timeout_ms=1234)
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 1234
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    engine.dispose()


def test_writes_begin_immediate_reads_begin_deferred(tmp_path: Path) -> None:
    """``writer(engine)`` opens transactions with BEGIN IMMEDIATE, ``engine`` with BEGIN."""
    engine = sqlite_engine(tmp_path)
    statements = record_statements(engine)
    with writer(engine).begin() as connection:
        connection.execute(text("SELECT 1"))
    assert statements[0] == "BEGIN IMMEDIATE"
    statements.clear()
    with engine.begin() as connection:
        connection.execute(text("SELECT 1"))
    assert statements[0] == "BEGIN"
    engine.dispose()


def test_write_transaction_holds_the_lock_from_its_start(tmp_path: Path) -> None:
    """While one write transaction is open a second cannot start (busy 0 ms), a read can."""
    engine = sqlite_engine(tmp_path, busy_timeout_ms=0)
    upgrade(engine)
    with writer(engine).begin() as first:
        first.execute(text("SELECT 1"))
        with pytest.raises(OperationalError, match="locked"), writer(engine).begin() as second:
            second.execute(text("SELECT 1"))
        with engine.begin() as reader:
            assert reader.execute(text("SELECT COUNT(*) FROM shops")).scalar_one() == 0
    engine.dispose()


def test_postgresql_engine_needs_no_sqlite_hooks() -> None:
    """A PostgreSQL URL gets a psycopg engine, which ``writer`` leaves as it is."""
    engine = create_db_engine("postgresql+psycopg://postgres@127.0.0.1:5432/test")
    assert engine.dialect.name == "postgresql"
    assert engine.dialect.driver == "psycopg"
    assert writer(engine) is engine


def test_the_sqlite_pool_hands_out_the_last_connection_returned(tmp_path: Path) -> None:
    """Last in, first out: one writer after another reuses the same connection, whose page
    cache is still good, instead of the one returned longest ago (first in, first out)."""
    engine = sqlite_engine(tmp_path)
    first, second = engine.connect(), engine.connect()
    first_dbapi = first.connection.dbapi_connection
    assert first_dbapi is not second.connection.dbapi_connection
    second.close()
    first.close()  # returned last
    for _ in range(3):
        with engine.connect() as again:
            assert again.connection.dbapi_connection is first_dbapi
    engine.dispose()
