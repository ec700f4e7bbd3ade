"""Rows of one table inserted with the driver's own ``executemany`` on SQLite (the intake's
hot inserts, ``api.intake``).

SQLAlchemy's ``executemany`` of a Core INSERT builds and converts each row's parameters in
Python, row by row, with its own machinery around each value; under ``make load`` the group
writer's thread held the GIL for about 15 % of the samples, most of it in that per-row work
of the intake's three INSERTs (orders, their ``placed`` events, idempotency records). Here
each value goes through its column's own bind processor for the dialect (the conversion
SQLAlchemy applies: ``dialect_impl(dialect).bind_processor``), so the stored values are the
same (tested), and the rows as tuples go to ``cursor.executemany`` in one call. Values are
converted a column at a time, each distinct value object once, and a time already in UTC
(every time the service makes) is written as SQLite's text in one C call: the conversions had
been most of the writer's own CPU for an intake batch (py-spy, session 13).

On other databases the Core statement runs as before: on PostgreSQL SQLAlchemy batches the
rows into multi-row statements ("insertmanyvalues"), which is what makes it fast there.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Column, Connection, Dialect, Table, insert

from api.models import UTCDateTime

# "YYYY-MM-DD HH:MM:SS.ffffff": SQLAlchemy's SQLite ``DATETIME`` text (its default format)
SQLITE_DATETIME_CHARS = 26
Processor = Callable[[Any], Any] | None


def by_driver(dialect: Dialect) -> bool:
    """Whether the hot statements run on the driver's own cursor (SQLite, ``?`` parameters);
    elsewhere Core runs them (here and in ``api.driver_select``)."""
    return dialect.name == "sqlite" and dialect.paramstyle == "qmark"


def converted(values: list[Any], process: Processor, done: dict[int, Any]) -> list[Any]:
    """One column's ``values`` through its bind ``process``, each distinct value object once.
    ``done`` (value's id -> converted) is shared by the columns of one ``process`` in a call:
    the rows of an intake batch share their times (placing, update and often ready time are
    one object) and their shop's id. By identity, the objects all alive in the call's rows."""
    if process is None:
        return values
    todo = {id(value): value for value in values if id(value) not in done}
    done.update({key: process(value) for key, value in todo.items()})
    return [done[id(value)] for value in values]


def _utc_datetime_text(generic: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``generic`` (``UTCDateTime``'s bind processor on SQLite: the time in UTC, without its
    zone, as SQLAlchemy's ``DATETIME`` text) with a shortcut for a time already in UTC, the
    service's own: one C call instead of two conversions and a ``%``-format (tested equal)."""

    def process(value: Any) -> Any:
        if type(value) is datetime and value.tzinfo is UTC:
            return value.isoformat(" ", "microseconds")[:SQLITE_DATETIME_CHARS]
        return generic(value)

    return process


class DriverInsert:
    """``INSERT INTO table (columns) VALUES (...)`` for rows that all give the same columns."""

    def __init__(self, table: Table) -> None:
        self.table = table
        self.statement = insert(table)
        # (dialect name, columns) -> (SQL text, each column's bind processor)
        self._prepared: dict[tuple[str, tuple[str, ...]], tuple[str, list[Processor]]] = {}

    def execute(self, connection: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        """Insert ``rows`` (not committed)."""
        if not rows:
            return
        if not by_driver(connection.dialect):
            connection.execute(self.statement, list(rows))
            return
        names = tuple(rows[0])
        sql, processors = self._prepare(connection, names)
        done: dict[int, dict[int, Any]] = {id(process): {} for process in processors}
        columns = [
            converted([row[name] for row in rows], process, done[id(process)])
            for name, process in zip(names, processors, strict=True)
        ]
        connection.exec_driver_sql(sql, list(zip(*columns, strict=True)))

    def _prepare(
        self, connection: Connection, names: tuple[str, ...]
    ) -> tuple[str, list[Processor]]:
        dialect = connection.dialect
        prepared = self._prepared.get((dialect.name, names))
        if prepared is None:
            columns = [self.table.c[name] for name in names]
            missing = [
                column.name
                for column in self.table.columns
                if column.name not in names and column.default is not None
            ]
            if missing:  # SQLAlchemy would fill them in; rows here must give them
                raise ValueError(f"{self.table.name}: rows without {', '.join(missing)}")
            preparer = dialect.identifier_preparer
            sql = (
                f"INSERT INTO {preparer.format_table(self.table)} "
                f"({', '.join(preparer.format_column(column) for column in columns)}) "
                f"VALUES ({', '.join('?' for _ in columns)})"
            )
            # One processor object for the columns of one type (its repr names its parameters),
            # so that a value shared by such columns is converted once (``converted``).
            by_type: dict[str, Processor] = {}
            processors: list[Processor] = [
                by_type.setdefault(repr(column.type), bind_processor_of(column, dialect))
                for column in columns
            ]
            prepared = (sql, processors)
            self._prepared[(dialect.name, names)] = prepared
        return prepared


def bind_processor_of(column: Column[Any], dialect: Dialect) -> Processor:
    """The conversion SQLAlchemy applies to ``column``'s values for ``dialect``."""
    process = column.type.dialect_impl(dialect).bind_processor(dialect)
    if process is not None and isinstance(column.type, UTCDateTime) and dialect.name == "sqlite":
        return _utc_datetime_text(process)
    return process
