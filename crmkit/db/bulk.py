"""Bulk inserts at the speed of the driver's ``executemany``.

SQLAlchemy's Core ``insert`` with a list of rows is already an ``executemany``, but it prepares the
parameters of every row through its general machinery. Here the statement is compiled once and each
column's bind processor (the very conversion SQLAlchemy would apply: UTC datetimes, JSON, decimals) is
looked up once, then applied to the rows in one tight loop before the driver gets them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Table, insert


def bulk_insert(connection: Connection, table: Table, columns: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> int:
    """Insert ``rows`` (mappings holding every one of ``columns``) into ``table``; return how many."""
    if not rows:
        return 0
    dialect = connection.dialect
    compiled = insert(table).compile(dialect=dialect, column_keys=list(columns))
    processors = {name: table.c[name].type.dialect_impl(dialect).bind_processor(dialect) for name in columns}
    if compiled.positional:
        order = [compiled.binds[name].key for name in compiled.positiontup or ()]
        plan = [(key, processors[key]) for key in order]
        params: list[Any] = [tuple(proc(row[key]) if proc else row[key] for key, proc in plan) for row in rows]
    else:
        names = {name: bind.key for name, bind in compiled.binds.items()}
        plan = [(name, key, processors[key]) for name, key in names.items()]
        params = [{name: proc(row[key]) if proc else row[key] for name, key, proc in plan} for row in rows]
    connection.exec_driver_sql(compiled.string, params)
    return len(rows)
