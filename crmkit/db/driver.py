"""Single-row statements on the unit of work's own DBAPI cursor: the validated one-at-a-time writes.

An app calls ``customers.create`` or ``activities.log`` once per request, so what each statement costs on
the client decides how fast they are. Through SQLAlchemy a statement costs tens of microseconds of Python
(building the statement, its cache key, an execution context, result processing) and a flush of the ORM
more; the database itself answers a single-row ``INSERT`` in a few. The services therefore write their hot
rows with SQL compiled once per dialect, on the DBAPI cursor of the connection the session already holds,
inside the same transaction, converting values with the columns' own bind and result processors.

What is kept from SQLAlchemy: the transaction (the session's connection, so ORM code in hooks and the
caller's own statements see these rows), and the translation of driver errors (``_handle_dbapi_exception``
runs the engine's ``handle_error`` hooks, which turn a lost lock into crmkit's ``DatabaseBusyError``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Dialect, Numeric, Table, inspect
from sqlalchemy.orm import Session
from sqlalchemy.types import TypeEngine

from crmkit.db.types import UTCDateTime

Processor = Callable[[Any], Any]
#: One name for every savepoint: nested ones shadow it, and ``RELEASE``/``ROLLBACK TO`` find the innermost
#: (both databases), so the statements' text never changes.
_SAVEPOINT = "crmkit_write"


class Cursor:
    """A DBAPI cursor of one connection, raising what SQLAlchemy would raise for a driver error."""

    __slots__ = ("_connection", "_cursor", "dialect", "mark")

    def __init__(self, connection: Connection) -> None:
        self._connection = connection
        self.dialect = connection.dialect
        #: The driver's positional placeholder.
        self.mark = mark(connection.dialect)
        self._cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        try:
            return self._cursor.execute(sql, params)
        except Exception as exc:
            self._raise(exc, sql, params)
            raise  # pragma: no cover

    def copy(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """``COPY ... FROM STDIN`` of ``rows`` (psycopg), a driver error raised as :meth:`execute` raises it."""
        try:
            with self._cursor.copy(sql) as copy:
                write = copy.write_row
                for row in rows:
                    write(row)
        except Exception as exc:
            self._raise(exc, sql, ())
            raise  # pragma: no cover

    def _raise(self, exc: Exception, sql: str, params: Sequence[Any]) -> None:
        """Raise what SQLAlchemy raises for ``exc`` when it is a driver error (through the engine's
        ``handle_error`` hooks); otherwise ``exc`` itself."""
        if not isinstance(exc, self._connection.dialect.loaded_dbapi.Error):
            raise exc
        # no cursor given: SQLAlchemy would close it, and this one is kept for the next statement
        self._connection._handle_dbapi_exception(exc, sql, params, None, None)  # always raises

    def one(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        self.execute(sql, params)
        row: tuple[Any, ...] | None = self._cursor.fetchone()
        if row is not None:
            self._cursor.fetchall()  # leave nothing pending on a cursor the next statement reuses
        return row

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        self.execute(sql, params)
        return list(self._cursor.fetchall())


def cursor(session: Session) -> Cursor:
    """The driver cursor of the session's connection (beginning its transaction, as any statement would)."""
    found: Cursor | None = session.info.get("crmkit_cursor")
    # kept with the session while its transaction lasts: asking the session for its connection costs more
    # than the statement the cursor is wanted for
    if found is not None and not found._connection.closed and found._connection.in_transaction():
        return found
    connection = session.connection()
    found = session.info["crmkit_cursor"] = Cursor(connection)
    return found


def _pending(session: Session) -> bool:
    """Whether the session holds ORM changes not flushed yet (``_is_clean`` is the cheap form of looking at
    ``new``, ``dirty`` and ``deleted``, which build sets)."""
    return not session._is_clean()


@contextmanager
def savepoint(session: Session) -> Iterator[Cursor]:
    """Run part of a transaction in a savepoint set on the driver's cursor (SQLAlchemy's ``begin_nested`` costs
    ten times more in Python); if it raises, its rows are rolled back and so is what the ORM knows of them.

    The session's pending ORM changes are flushed before the savepoint (they are the caller's) and before
    it is released (a hook's, made inside it), as ``begin_nested`` does. When the part fails, objects the
    session took in during it are dropped from it and every other is expired, so no ORM object outlives
    the rows it stood for."""
    if _pending(session):
        session.flush()
    cur = cursor(session)
    known = set(session.identity_map.keys()) if session.identity_map else set()
    cur.execute(f"SAVEPOINT {_SAVEPOINT}")
    try:
        yield cur
        if _pending(session):
            session.flush()
    except BaseException:
        cur.execute(f"ROLLBACK TO SAVEPOINT {_SAVEPOINT}")
        cur.execute(f"RELEASE SAVEPOINT {_SAVEPOINT}")
        for obj in list(session):  # what the session holds, new objects included
            if inspect(obj).identity_key not in known:
                session.expunge(obj)
        session.expire_all()
        raise
    cur.execute(f"RELEASE SAVEPOINT {_SAVEPOINT}")


def mark(dialect: Dialect) -> str:
    """The driver's positional placeholder."""
    return "?" if dialect.paramstyle == "qmark" else "%s"


def placeholders(dialect: Dialect, count: int) -> str:
    return ", ".join([mark(dialect)] * count)


def binders(table: Table, columns: Sequence[str], dialect: Dialect) -> tuple[Processor | None, ...]:
    """Each column's bind processor for ``dialect`` (``None``: the driver takes the Python value as it is)."""
    return tuple(_binder(table.c[name].type, dialect) for name in columns)


def _binder(type_: TypeEngine[Any], dialect: Dialect) -> Processor | None:
    process = type_.dialect_impl(dialect).bind_processor(dialect)
    if not isinstance(type_, UTCDateTime) or process is None:
        return process
    aware = type_.aware_binder(dialect)  # one call instead of the chain, for the aware datetimes written here
    full = process
    return lambda value: aware(value) if value is not None and value.tzinfo is not None else full(value)


def readers(table: Table, columns: Sequence[str], dialect: Dialect) -> tuple[Processor | None, ...]:
    """Each column's result processor for ``dialect`` (``None``: the driver's value is the Python value)."""
    return tuple(_reader(table.c[name].type, dialect) for name in columns)


#: The type code psycopg reports for a ``NUMERIC`` column, which SQLAlchemy's processor for it asks for.
_PG_NUMERIC = 1700


def _reader(type_: TypeEngine[Any], dialect: Dialect) -> Processor | None:
    impl = type_.dialect_impl(dialect)
    numeric = isinstance(impl, Numeric) and dialect.name == "postgresql"
    return impl.result_processor(dialect, _PG_NUMERIC if numeric else None)


def bind_named(processors: Mapping[str, Processor | None], values: Mapping[str, Any]) -> list[Any]:
    """``values`` of the named columns, in their order, converted by ``processors``."""
    out = []
    for name, value in values.items():
        process = processors[name]
        out.append(value if process is None else process(value))
    return out


def convert(processors: Sequence[Processor | None], values: Sequence[Any]) -> list[Any]:
    return [v if p is None else p(v) for p, v in zip(processors, values, strict=True)]
