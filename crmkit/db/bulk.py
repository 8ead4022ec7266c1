"""Bulk inserts at the speed of the driver's ``executemany``.

SQLAlchemy's Core ``insert`` with a list of rows is already an ``executemany``, but it prepares the
parameters of every row through its general machinery. :class:`BulkInsert` compiles its statements once and
hands the driver rows of *driver* values: what SQLAlchemy's bind processors make of the Python values (UTC
text or naive UTC datetimes, JSON). Callers either run those processors (:meth:`BulkInsert.driver_values`)
or, in a hot loop, produce the same values more cheaply and prove in their tests that they are the same.

What the driver is given is kept to what it needs, since it works per parameter of every row:

* no ``RETURNING`` (nobody reads the new ids, and PostgreSQL would still send every one back), except in
  :meth:`BulkInsert.insert_new`, where the keys of the rows stored are the answer;
* positional placeholders where the driver takes them, so a row is the tuple as it is;
* no column that is ``NULL`` in every row of the batch and has no server default: the database stores
  ``NULL`` for it anyway, and binding a ``NULL`` per row per column is not free (a third more time for
  SQLite's driver with nine of sixteen columns empty);
* JSON as text where the statement casts its placeholder (``%s::JSONB`` on PostgreSQL): the database
  parses it into the same value, and psycopg sends a string at C speed instead of serializing, in Python,
  the wrapper object SQLAlchemy hands it for each row (about a quarter of the client's time in the ingest
  benchmark, ``bench/ingest.py``).

:meth:`BulkInsert.execute` then picks the fastest form each database has for many rows, all of which store
the same rows with the same defaults: on SQLite, multi-row ``VALUES`` of up to 30,000 parameters (the
driver binds and steps once per statement rather than once per row: 100,000 customers and their 200,000
claims went in in 0.86 s against 1.5 s with ``executemany``); on PostgreSQL through psycopg, ``COPY ...
FROM STDIN`` (the server parses a stream instead of running one ``INSERT`` per row: 1.5 s against 3.3 s for
the same customers); any other driver, ``executemany``.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence
from itertools import chain
from operator import itemgetter
from typing import Any

from sqlalchemy import JSON, Connection, Dialect, Table, insert
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.types import TypeEngine

from crmkit.db.driver import Cursor

BindProcessor = Callable[[Any], Any]
Rows = Sequence[tuple[Any, ...]]
_PYFORMAT = re.compile(r"%\((\w+)\)s(?:::(\w+))?")  # a placeholder, and the type it is cast to
#: Bound parameters per statement of :meth:`BulkInsert.insert_new`: under SQLite's limit (32,766 since
#: 3.32) and PostgreSQL's (65,535).
_MAX_PARAMETERS = 30_000


class BulkInsert:
    """``INSERT INTO table (columns) VALUES (...)`` for one dialect, run with rows of driver values given as
    tuples in ``columns`` order."""

    def __init__(self, table: Table, columns: Sequence[str], dialect: Dialect) -> None:
        self.table = table
        self.dialect = dialect
        self.columns = tuple(columns)
        every = tuple(range(len(self.columns)))
        sql, shape, casts, order = self._compile(every)
        self._statements: dict[tuple[int, ...], tuple[str, Callable[[Rows], Any], tuple[int, ...] | None]] = {
            every: (sql, shape, order)
        }
        self._form = _form(dialect)
        # SQLite's multi-row VALUES or PostgreSQL's COPY, per set of columns left out (built when first used)
        self._bulk: dict[frozenset[int], tuple[str, str, Callable[[Rows], Any]]] = {}
        #: Each column's bind processor for these statements (``None``: the value goes to the driver as it is).
        self.processors: tuple[BindProcessor | None, ...] = tuple(
            _processor(table.c[name].type, dialect, casts.get(name)) for name in self.columns
        )
        self._optional = tuple(i for i, name in enumerate(self.columns) if table.c[name].server_default is None)

    def driver_values(self, row: Mapping[str, Any]) -> tuple[Any, ...]:
        """``row`` (Python values of every column) as driver values: what SQLAlchemy's bind processors make
        of them, but JSON as text where the statement casts it."""
        return tuple(
            row[name] if process is None else process(row[name])
            for name, process in zip(self.columns, self.processors, strict=True)
        )

    def execute(self, connection: Connection, rows: Rows) -> int:
        """Insert ``rows`` of driver values in the fastest form the database has for many rows (see the
        module); return how many."""
        if not rows:
            return 0
        empty = self._empty_columns(rows)
        if self._form == "executemany" or len(rows) == 1:
            sql, shape, _ = self._statement(empty)
            connection.exec_driver_sql(sql, shape(rows))
            return len(rows)
        head, group, shape = self._bulk_statement(empty)
        self._bulk_write(connection, head, group, shape(rows))
        return len(rows)

    def execute_columns(self, connection: Connection, columns: Sequence[Sequence[Any]]) -> int:
        """:meth:`execute` of rows given a column at a time (driver values, one sequence per column, in
        ``columns`` order): a column that is all ``NULL`` is found, and the rows are put together in the
        statement's order, at C speed."""
        count = len(columns[0]) if columns else 0
        if not count:
            return 0
        empty = frozenset(i for i in self._optional if columns[i].count(None) == count)
        _, _, order = self._statement(empty)
        if self._form == "executemany" or count == 1 or order is None:
            return self.execute(connection, list(zip(*columns, strict=True)))
        head, group, _ = self._bulk_statement(empty)
        self._bulk_write(connection, head, group, list(zip(*[columns[i] for i in order], strict=True)))
        return count

    def _bulk_write(self, connection: Connection, head: str, group: str, rows: Rows) -> None:
        """Rows already in the bulk statement's order, through ``COPY`` or multi-row ``VALUES``."""
        cur = Cursor(connection)
        if self._form == "copy":
            cur.copy(head, rows)
            return
        for statement, params in values_statements(connection, head, group, rows):
            cur.execute(statement, params)

    def _bulk_statement(self, empty: frozenset[int]) -> tuple[str, str, Callable[[Rows], Any]]:
        """For the columns not ``empty``: SQLite's ``INSERT INTO t (...)`` and one row's ``(?, ...)``, or
        PostgreSQL's ``COPY t (...) FROM STDIN``; and what turns rows into the driver's values for it."""
        found = self._bulk.get(empty)
        if found is None:
            sql, shape, _ = self._statement(empty)
            if self._form == "copy":
                # the statement's columns in its placeholders' order, which is the order ``shape`` gives
                head = sql.partition(" VALUES ")[0].replace("INSERT INTO ", "COPY ", 1) + " FROM STDIN"
                found = (head, "", shape)
            else:
                head, _, group = sql.rpartition(" VALUES ")
                found = (head, group, shape)
            self._bulk[empty] = found
        return found

    def insert_new(self, connection: Connection, rows: Rows, key: Sequence[str]) -> list[tuple[Any, ...]]:
        """Insert those of ``rows`` whose ``key`` (columns of a unique index) is not in the table yet; return
        the key of each row stored, as the database has it.

        ``INSERT ... VALUES (...), (...) ON CONFLICT (key) DO NOTHING RETURNING key``, many rows per
        statement (the same statement SQLite and PostgreSQL both take). A row whose key is already there,
        committed or being written by a concurrent transaction (PostgreSQL waits for that one to end), is
        skipped and absent from the answer, so the caller knows exactly which rows went in. Rows must have
        distinct keys; lock order follows row order, so callers sort them to keep concurrent writers of
        overlapping keys from waiting on each other in a circle.
        """
        if not rows:
            return []
        sql, shape, _ = self._statement(self._empty_columns(rows))
        quote = self.dialect.identifier_preparer.quote
        columns = ", ".join(quote(name) for name in key)
        suffix = f" ON CONFLICT ({columns}) DO NOTHING RETURNING {columns}"
        head, values_keyword, group = sql.rpartition(" VALUES ")
        if not values_keyword or self.dialect.paramstyle not in ("qmark", "format", "pyformat"):
            # a named or numbered paramstyle: one row per statement, still exact
            return [
                tuple(found) for params in shape(rows) for found in connection.exec_driver_sql(sql + suffix, params)
            ]
        stored: list[tuple[Any, ...]] = []
        for statement, params in values_statements(connection, head, group, shape(rows), suffix):
            stored.extend(map(tuple, connection.exec_driver_sql(statement, params)))
        return stored

    def _empty_columns(self, rows: Rows) -> frozenset[int]:
        first, count = rows[0], len(rows)
        # the first row settles most columns; the others are scanned at C speed
        return frozenset(
            i for i in self._optional if first[i] is None and [*map(itemgetter(i), rows)].count(None) == count
        )

    def _statement(self, empty: frozenset[int]) -> tuple[str, Callable[[Rows], Any], tuple[int, ...] | None]:
        used = tuple(i for i in range(len(self.columns)) if i not in empty) or tuple(range(len(self.columns)))
        if used not in self._statements:
            sql, shape, _, order = self._compile(used)
            self._statements[used] = sql, shape, order
        return self._statements[used]

    def _compile(
        self, used: tuple[int, ...]
    ) -> tuple[str, Callable[[Rows], Any], dict[str, str], tuple[int, ...] | None]:
        """The statement inserting the columns ``used`` (positions in ``columns``), what turns rows of every
        column into the driver's parameters for it, the type each column's placeholder is cast to, and the
        position in ``columns`` behind each placeholder (``None`` for a named paramstyle)."""
        names = [self.columns[i] for i in used]
        compiled = insert(self.table).inline().compile(dialect=self.dialect, column_keys=names)
        assert isinstance(compiled, SQLCompiler)
        positional = _positional(compiled, names)
        if positional is None:  # a named paramstyle: one mapping per row
            keys = [compiled.escaped_bind_names.get(name, name) for name in names]
            pick = _picker(used)
            return compiled.string, lambda rows: [dict(zip(keys, pick(row), strict=True)) for row in rows], {}, None
        sql, placed, casts = positional
        order = tuple(used[i] for i in placed)
        if order == tuple(range(len(self.columns))):
            return sql, lambda rows: rows, casts, order
        pick = _picker(order)
        return sql, lambda rows: list(map(pick, rows)), casts, order


def bulk_insert(connection: Connection, table: Table, columns: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> int:
    """Insert ``rows`` (mappings of Python values holding every one of ``columns``); return how many."""
    if not rows:
        return 0
    statement = BulkInsert(table, columns, connection.dialect)
    return statement.execute(connection, [statement.driver_values(row) for row in rows])


def values_statements(
    connection: Connection, head: str, group: str, rows: Rows, suffix: str = ""
) -> Iterator[tuple[str, tuple[Any, ...]]]:
    """``{head} VALUES {group}, {group}, ...{suffix}`` and its parameters, for consecutive pages of ``rows``
    (each the parameters of one ``group``), every statement within the connection's parameter limit."""
    page = max(1, parameter_limit(connection) // max(1, len(rows[0]) if rows else 1))
    for start in range(0, len(rows), page):
        chunk = rows[start : start + page]
        yield f"{head} VALUES {', '.join([group] * len(chunk))}{suffix}", tuple(chain.from_iterable(chunk))


def parameter_limit(connection: Connection) -> int:
    """Bound parameters one statement may have on this connection: 30,000, or less where SQLite was built
    with a lower limit (999 before 3.32)."""
    if connection.dialect.name != "sqlite":
        return _MAX_PARAMETERS
    raw = connection.connection.dbapi_connection
    getlimit = getattr(raw, "getlimit", None)
    if getlimit is None:  # pragma: no cover - a driver other than the standard library's
        return 999
    return min(_MAX_PARAMETERS, int(getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)))


def _form(dialect: Dialect) -> str:
    """How :meth:`BulkInsert.execute` writes many rows on ``dialect``: multi-row ``VALUES``, ``COPY`` or
    ``executemany``."""
    if dialect.name == "sqlite" and dialect.paramstyle == "qmark":
        return "values"
    if dialect.name == "postgresql" and dialect.driver == "psycopg":
        return "copy"
    return "executemany"


def _positional(compiled: SQLCompiler, names: list[str]) -> tuple[str, list[int], dict[str, str]] | None:
    """The statement with positional placeholders, the position in ``names`` behind each, and the type each
    column's placeholder is cast to, when the driver takes positional placeholders."""
    casts: dict[str, str] = {}
    if compiled.positional:
        sql, placeholders = compiled.string, list(compiled.positiontup or ())
    elif compiled.dialect.paramstyle == "pyformat":  # psycopg: ``%(name)s`` and ``%s`` both work
        placeholders = []

        def positional(match: re.Match[str]) -> str:
            placeholders.append(match[1])
            if match[2]:
                casts[match[1]] = match[2]
                return f"%s::{match[2]}"
            return "%s"

        sql = _PYFORMAT.sub(positional, compiled.string)
    else:
        return None
    unescaped = {escaped: name for name, escaped in compiled.escaped_bind_names.items()}
    index = {name: i for i, name in enumerate(names)}
    try:
        order = [index[unescaped.get(p, p)] for p in placeholders]
    except KeyError:  # a placeholder that is not one of the columns: leave it to the named form
        return None
    return sql, order, {unescaped.get(p, p): cast for p, cast in casts.items()}


def _processor(type_: TypeEngine[Any], dialect: Dialect, cast: str | None) -> BindProcessor | None:
    impl = type_.dialect_impl(dialect)
    if isinstance(impl, JSON) and cast in ("JSON", "JSONB"):
        # SQLAlchemy's own JSON processor (its NULL rules) with the serializer it would use itself; on
        # psycopg that is also the one psycopg's Jsonb wrapper would have called
        serializer = getattr(dialect, "_json_serializer", None) or json.dumps
        # a private SQLAlchemy helper, not annotated
        process: BindProcessor = impl._make_bind_processor(None, serializer)  # type: ignore[no-untyped-call]
        return process
    return impl.bind_processor(dialect)


def _picker(positions: tuple[int, ...]) -> Callable[[tuple[Any, ...]], tuple[Any, ...]]:
    if len(positions) == 1:  # itemgetter of one position gives the value, not a tuple
        (only,) = positions
        return lambda row: (row[only],)
    return itemgetter(*positions)
