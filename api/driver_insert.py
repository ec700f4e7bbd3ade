"""Rows of one table inserted with the driver's own ``executemany`` on SQLite (the intake's
hot inserts, ``api.intake``).

SQLAlchemy's ``executemany`` of a Core INSERT builds and converts each row's parameters in
Python, row by row, with its own machinery around each value; under ``make load`` the group
writer's thread held the GIL for about 15 % of the samples, most of it in that per-row work
of the intake's three INSERTs (orders, their ``placed`` events, idempotency records). Here
each value goes through its column's own bind processor for the dialect (the conversion
SQLAlchemy applies: ``dialect_impl(dialect).bind_processor``), so the stored values are the
same (tested), and the rows as tuples go to ``cursor.executemany`` in one call.

On other databases the Core statement runs as before: on PostgreSQL SQLAlchemy batches the
rows into multi-row statements ("insertmanyvalues"), which is what makes it fast there.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Table, insert

Processor = Callable[[Any], Any] | None


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
        dialect = connection.dialect
        if dialect.name != "sqlite" or dialect.paramstyle != "qmark":
            connection.execute(self.statement, list(rows))
            return
        names = tuple(rows[0])
        sql, processors = self._prepare(connection, names)
        # A value object seen before in this call is converted once: the rows of an intake
        # batch share their times (placing, update and often ready time are one object) and
        # their shop's id. By identity, the objects all alive in ``rows`` meanwhile.
        seen: dict[tuple[int, int], Any] = {}

        def convert(process: Processor, value: Any) -> Any:
            if process is None:
                return value
            key = (id(process), id(value))
            if key not in seen:
                seen[key] = process(value)
            return seen[key]

        converted = [
            tuple(
                convert(process, value)
                for process, value in zip(processors, (row[name] for name in names), strict=True)
            )
            for row in rows
        ]
        connection.exec_driver_sql(sql, converted)

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
            processors: list[Processor] = [
                column.type.dialect_impl(dialect).bind_processor(dialect) for column in columns
            ]
            prepared = (sql, processors)
            self._prepared[(dialect.name, names)] = prepared
        return prepared
