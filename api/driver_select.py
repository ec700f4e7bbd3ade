"""Hot reads by the driver's own cursor on SQLite: ``GET /v1/orders/{id}``'s fast path
(``api.fast``) and the three reads of a rider's trip (``api.trip_read``).

Under ``make load`` a read of one order by its id cost about 0.9 ms of the event loop's GIL
(py-spy, session 13), nearly all of it SQLAlchemy's machinery around one indexed lookup:
checking a connection out into a ``Connection``, the deferred ``BEGIN`` and the rollback,
the compiled statement's cache lookup, parameter processing and the result's wrappers. Here
the statement is compiled once per dialect and run on the DBAPI connection's cursor: in
autocommit for one read (``first``: one statement reads one snapshot), or in the connection's
transaction for several (``rows``), each parameter and each column converted by
its type's own bind and result processors for the dialect (the conversions SQLAlchemy
applies), so the row is the same (tested). On other databases the Core statement runs as
before.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, Dialect, Engine, Select

from api.driver_insert import Processor, by_driver

# A parameter: its name, its bind processor, its value when the statement holds one (a literal
# such as a LIMIT or an IN list's items)
Bind = tuple[str, Processor, Any]


class DriverSelect:
    """``statement`` (a SELECT of plain columns and labels) read by the driver on SQLite."""

    def __init__(self, statement: Select[Any]) -> None:
        self.statement = statement
        # dialect name -> (SQL text, its parameters in order, the result columns' names and
        # result processors)
        self._prepared: dict[str, tuple[str, list[Bind], list[tuple[str, Processor]]]] = {}

    def first(self, engine: Engine, params: Mapping[str, Any]) -> dict[str, Any] | None:
        """The first row of the statement's result for ``params``, by column name, or ``None``."""
        if not by_driver(engine.dialect):
            with engine.connect() as connection:
                row = connection.execute(self.statement, dict(params)).mappings().first()
            return dict(row) if row is not None else None
        sql, binds, columns = self._prepare(engine.dialect)
        raw = engine.raw_connection()
        try:
            cursor = raw.cursor()
            try:
                cursor.execute(sql, _bound(binds, params))
                found = cursor.fetchone()
            finally:
                cursor.close()
        finally:
            raw.close()
        return _row(columns, found) if found is not None else None

    def rows(self, connection: Connection, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Every row of the statement's result for ``params``, by column name, read in
        ``connection``'s transaction (begun here if none is: a deferred ``BEGIN`` on SQLite,
        so that several reads see one snapshot)."""
        if not by_driver(connection.dialect):
            return [
                dict(row) for row in connection.execute(self.statement, dict(params)).mappings()
            ]
        if not connection.in_transaction():
            connection.begin()
        sql, binds, columns = self._prepare(connection.dialect)
        cursor = connection.connection.cursor()
        try:
            cursor.execute(sql, _bound(binds, params))
            found = cursor.fetchall()
        finally:
            cursor.close()
        return [_row(columns, values) for values in found]

    def _prepare(self, dialect: Dialect) -> tuple[str, list[Bind], list[tuple[str, Processor]]]:
        prepared = self._prepared.get(dialect.name)
        if prepared is None:
            compiled = self.statement.compile(dialect=dialect)
            if compiled.has_out_parameters or "POSTCOMPILE" in str(compiled):
                # an expanding IN list: its items as ``literal()`` values instead
                raise ValueError(f"not a plain positional statement: {compiled}")
            binds: list[Bind] = []
            for name in compiled.positiontup or ():
                bind = compiled.binds[name]
                process = bind.type.dialect_impl(dialect).bind_processor(dialect)
                binds.append((name, process, bind.value))
            columns: list[tuple[str, Processor]] = [
                (
                    str(column.key),
                    column.type.dialect_impl(dialect).result_processor(dialect, None),
                )
                for column in self.statement.selected_columns
            ]
            prepared = (str(compiled), binds, columns)
            self._prepared[dialect.name] = prepared
        return prepared


def _bound(binds: list[Bind], params: Mapping[str, Any]) -> list[Any]:
    """The positional parameters of ``params`` (or the statement's own values)."""
    bound = []
    for name, process, own in binds:
        value = params.get(name, own)
        bound.append(value if process is None else process(value))
    return bound


def _row(columns: list[tuple[str, Processor]], values: Any) -> dict[str, Any]:
    return {
        name: value if process is None else process(value)
        for (name, process), value in zip(columns, values, strict=True)
    }
