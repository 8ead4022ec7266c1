"""The rows of many new customers at once: what :mod:`crmkit.db.customer_rows` writes for one, written with a
statement per table per batch (each database's bulk form, :class:`crmkit.db.bulk.BulkInsert`), for imports.

Ids are taken before the rows are written, so the rows that point at a customer (extension, history,
claims) need no ``RETURNING`` to be matched to it: on PostgreSQL from the table's sequence, as an ``INSERT``
would take them; on SQLite, whose writers run one at a time (``BEGIN IMMEDIATE``), after the largest id
and past the largest id it ever gave (``AUTOINCREMENT``'s ``sqlite_sequence``), as SQLite would.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from operator import itemgetter
from typing import Any

from sqlalchemy import Connection, Dialect, Table

from crmkit.db.bulk import BulkInsert, values_statements
from crmkit.db.driver import Cursor
from crmkit.errors import DuplicateCustomerError

_HISTORY = ("customer_id", "from_stage", "to_stage", "to_lifecycle", "at", "cause", "actor_id")
#: Values per ``IN (...)`` and rows per multi-row statement: under SQLite's limit of bound parameters.
_PAGE = 5000
#: Where a new customer's claims are: its normalised email and phone.
_KINDS = (("email", "email_normalized"), ("phone", "phone_normalized"))


class CustomerBatch:
    """Multi-row statements of the customer tables of one CRM on one dialect."""

    def __init__(
        self,
        customers: Table,
        history: Table,
        claims: Table,
        extensions: Mapping[str, tuple[Table, Sequence[str]]],
        dialect: Dialect,
    ) -> None:
        self.dialect = dialect
        self._customers = customers
        self._postgres = dialect.name == "postgresql"
        self._mark = "%s" if self._postgres else "?"
        self.columns = ("id", *(c.name for c in customers.c if c.name != "id"))
        self._customer_insert = BulkInsert(customers, self.columns, dialect)
        self._extension_names = {plugin: tuple(names) for plugin, (_, names) in extensions.items()}
        self._extension_inserts = {
            plugin: BulkInsert(table, ("customer_id", *names), dialect) for plugin, (table, names) in extensions.items()
        }
        self._history_insert = BulkInsert(history, _HISTORY, dialect)
        self._claims = claims.name

    def new_ids(self, connection: Connection, count: int) -> list[int]:
        """``count`` ids for new customers, ascending."""
        table = self._customers.name
        if self._postgres:
            sql = f"SELECT nextval(pg_get_serial_sequence('{table}', 'id')) FROM generate_series(1, %s)"
            return sorted(int(r[0]) for r in connection.exec_driver_sql(sql, (count,)))
        last = connection.exec_driver_sql(f"SELECT COALESCE(MAX(id), 0) FROM {table}").scalar_one()
        if self._customers.dialect_options["sqlite"].get("autoincrement"):
            # AUTOINCREMENT: never the id of a customer deleted since (merged, erased), as SQLite would not
            seq = connection.exec_driver_sql("SELECT seq FROM sqlite_sequence WHERE name = ?", (table,)).scalar()
            last = max(int(last), int(seq or 0))
        return list(range(int(last) + 1, int(last) + 1 + count))

    def insert(
        self,
        connection: Connection,
        ids: Sequence[int],
        rows: Sequence[Mapping[str, Any]],
        causes: Sequence[tuple[str, int | None]],
    ) -> None:
        """The customers (each a mapping of their column values and their plugins' field values), their
        extension rows and their first history rows (cause, actor)."""
        if not rows:
            return
        # column by column: the batch's values of a column are converted together, and its rows are put
        # together by zip, at C speed (a loop over rows and processors took a tenth of an import's time)
        columns = _columns(rows, self.columns[1:])
        self._customer_insert.execute_columns(connection, driver_columns(self._customer_insert, [ids, *columns]))
        for plugin, statement in self._extension_inserts.items():
            values = _columns(rows, self._extension_names[plugin])
            statement.execute_columns(connection, driver_columns(statement, [ids, *values]))
        stage, lifecycle, moved = _columns(rows, ("stage", "lifecycle", "stage_changed_at"))
        cause, actor = _transposed(causes, 2)
        history = [ids, [None] * len(ids), stage, lifecycle, moved, cause, actor]
        self._history_insert.execute_columns(connection, driver_columns(self._history_insert, history))

    def claim_unique(self, connection: Connection, ids: Sequence[int], rows: Sequence[Mapping[str, Any]]) -> None:
        """Take the new customers' claims (as :func:`crmkit.claims.take_claims`: upserts in (kind, value)
        order, which wait for any concurrent writer of the same values), then refuse, with
        ``DuplicateCustomerError``, a value that another customer has. Called before the new customers are
        written, so any customer found with one of their values is another one."""
        claims: list[tuple[str, str, int]] = []
        clashes: set[int] = set()
        matched: set[str] = set()
        for kind, column in _KINDS:  # in kind order, then value order: the order locks are taken in
            mine = [(value, cid) for value, cid in zip(map(itemgetter(column), rows), ids, strict=True) if value]
            owners = dict(mine)
            if len(owners) < len(mine):  # two of the batch share a value: refused before anything is written
                first: dict[str, int] = {}
                for value, cid in mine:
                    if value in first:
                        clashes.add(first[value])
                        matched.add(kind)
                    first[value] = cid
            claims.extend([(kind, value, cid) for value, cid in sorted(owners.items())])
        if clashes:
            raise DuplicateCustomerError(sorted(clashes), sorted(matched))
        m = self._mark
        head = f"INSERT INTO {self._claims} (kind, value, customer_id)"
        group = f"({m}, {m}, {m})"
        conflict = " ON CONFLICT (kind, value) DO UPDATE SET customer_id = excluded.customer_id"
        cur = Cursor(connection)  # the driver's cursor: no SQLAlchemy result per statement
        if claims and self._postgres:  # psycopg pipelines an executemany; a long VALUES measured slower
            connection.exec_driver_sql(f"{head} VALUES {group}{conflict}", claims)
        elif claims:  # SQLite: many rows per statement, bound and stepped once rather than once per row
            for statement, bound in values_statements(connection, head, group, claims, conflict):
                cur.execute(statement, bound)
        found: set[int] = set()
        for kind, column in _KINDS:
            values = [value for k, value, _ in claims if k == kind]
            for start in range(0, len(values), _PAGE):
                page = values[start : start + _PAGE]
                sql = f"SELECT id FROM {self._customers.name} WHERE {column}"
                params: tuple[Any, ...]
                if self._postgres:  # one array parameter: the server plans it once, not per value
                    query, params = f"{sql} = ANY(%s)", (page,)
                else:
                    query, params = f"{sql} IN ({', '.join([m] * len(page))})", tuple(page)
                for (cid,) in cur.all(query, params):
                    found.add(int(cid))
                    matched.add(kind)
        if found:
            raise DuplicateCustomerError(sorted(found), sorted(matched))


def _columns(rows: Sequence[Mapping[str, Any]], names: Sequence[str]) -> list[Sequence[Any]]:
    """The values of ``names`` in ``rows``, a sequence per name."""
    if not names:
        return []
    if len(names) == 1:
        return [[row[names[0]] for row in rows]]
    return _transposed(list(map(itemgetter(*names), rows)), len(names))


def _transposed(rows: Sequence[Sequence[Any]], width: int) -> list[Sequence[Any]]:
    """``rows`` of ``width`` values each as ``width`` columns."""
    if not rows:
        return [() for _ in range(width)]
    return list(zip(*rows, strict=True))


def driver_columns(statement: BulkInsert, columns: Sequence[Sequence[Any]]) -> list[Sequence[Any]]:
    """The driver values of ``statement``'s columns from their Python values (one sequence per column, in
    the statement's column order): each column that has a bind processor converted by
    :func:`driver_column`, for :meth:`BulkInsert.execute_columns`."""
    return [
        values if process is None else driver_column(process, values)
        for process, values in zip(statement.processors, columns, strict=True)
    ]


def driver_column(process: Callable[[Any], Any], values: Sequence[Any]) -> list[Any]:
    """``process`` of each of ``values``, each distinct value converted once (``None`` too: JSON makes it
    ``null``).

    A batch's rows mostly share a column's value (the batch's one ``now``, an empty JSON object): when every
    value is equal and of one type, the first is converted and repeated, checked at C speed."""
    count = len(values)
    if not count:
        return []
    first = values[0]
    shared = not (first and isinstance(first, (dict, list)))  # equal JSON need not be the same text (1, true)
    if shared and values.count(first) == count and len(set(map(type, values))) == 1:
        return [process(first)] * count
    seen: dict[tuple[type, Any], Any] = {}
    out = []
    for value in values:
        if isinstance(value, (dict, list)):  # not hashable
            out.append(process(value))
            continue
        key = (type(value), value)
        found = seen.get(key, seen)
        if found is seen:
            found = seen[key] = process(value)
        out.append(found)
    return out
