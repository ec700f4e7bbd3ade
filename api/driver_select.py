"""A hot single-statement read by the driver's own cursor on SQLite (``GET /v1/orders/{id}``'s
fast path, ``api.fast``).

Under ``make load`` a read of one order by its id cost about 0.9 ms of the event loop's GIL
(py-spy, session 13), nearly all of it SQLAlchemy's machinery around one indexed lookup:
checking a connection out into a ``Connection``, the deferred ``BEGIN`` and the rollback,
the compiled statement's cache lookup, parameter processing and the result's wrappers. Here
the statement is compiled once per dialect and run on a pooled DBAPI connection's cursor in
autocommit (one statement reads one snapshot), each parameter and each column converted by
its type's own bind and result processors for the dialect (the conversions SQLAlchemy
applies), so the row is the same (tested). On other databases the Core statement runs as
before.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import Dialect, Engine, Select

Processor = Callable[[Any], Any] | None


class DriverSelect:
    """``statement`` (a SELECT of plain columns and labels) read by the driver on SQLite."""

    def __init__(self, statement: Select[Any]) -> None:
        self.statement = statement
        # dialect name -> (SQL text, its parameters' names and bind processors in order, the
        # result columns' names and result processors)
        self._prepared: dict[
            str, tuple[str, list[tuple[str, Processor]], list[tuple[str, Processor]]]
        ] = {}

    def first(self, engine: Engine, params: Mapping[str, Any]) -> dict[str, Any] | None:
        """The first row of the statement's result for ``params``, by column name, or ``None``."""
        dialect = engine.dialect
        if dialect.name != "sqlite" or dialect.paramstyle != "qmark":
            with engine.connect() as connection:
                row = connection.execute(self.statement, dict(params)).mappings().first()
            return dict(row) if row is not None else None
        sql, binds, columns = self._prepare(dialect)
        values = [
            params[name] if process is None else process(params[name]) for name, process in binds
        ]
        raw = engine.raw_connection()
        try:
            cursor = raw.cursor()
            try:
                cursor.execute(sql, values)
                found = cursor.fetchone()
            finally:
                cursor.close()
        finally:
            raw.close()
        if found is None:
            return None
        return {
            name: value if process is None else process(value)
            for (name, process), value in zip(columns, found, strict=True)
        }

    def _prepare(
        self, dialect: Dialect
    ) -> tuple[str, list[tuple[str, Processor]], list[tuple[str, Processor]]]:
        prepared = self._prepared.get(dialect.name)
        if prepared is None:
            compiled = self.statement.compile(dialect=dialect)
            binds: list[tuple[str, Processor]] = [
                (name, compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect))
                for name in compiled.positiontup or ()
            ]
            columns: list[tuple[str, Processor]] = [
                (
                    str(column.key),
                    column.type.dialect_impl(dialect).result_processor(dialect, None),
                )
                for column in self.statement.selected_columns
            ]
            self._prepared[dialect.name] = (str(compiled), binds, columns)
            return str(compiled), binds, columns
        return prepared
