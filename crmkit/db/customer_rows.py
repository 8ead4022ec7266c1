"""The rows one customer write touches, as SQL compiled once per dialect (see :mod:`crmkit.db.driver`).

A customer is a row of ``crm_customers``, a row per plugin with fields in its extension table, its stage
history and the claim rows of its normalised email and phone (:mod:`crmkit.claims`). Values go in and come
out as Python values; the columns' own bind and result processors convert them, so the database holds
what SQLAlchemy would have written.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Dialect, Table

from crmkit.db.driver import Cursor, bind_named, binders, convert, mark, placeholders, readers

#: (kind, value) -> customer id, as in :mod:`crmkit.claims`.
Claims = Mapping[tuple[str, str], int]
_HISTORY = ("customer_id", "from_stage", "to_stage", "to_lifecycle", "at", "cause", "actor_id")


class CustomerRows:
    """Single-row statements of the customer tables of one CRM (its plugins' extension tables) on one
    dialect; statements that depend on which columns change are compiled on first use and kept."""

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
        self._extensions = {plugin: (table, tuple(names)) for plugin, (table, names) in extensions.items()}
        self._mark = mark(dialect)
        self._postgres = dialect.name == "postgresql"
        self.columns = tuple(c.name for c in customers.c if c.name != "id")
        self._bind = dict(zip(self.columns, binders(customers, self.columns, dialect), strict=True))
        self._insert = (
            f"INSERT INTO {customers.name} ({', '.join(self.columns)})"
            f" VALUES ({placeholders(dialect, len(self.columns))}) RETURNING id"
        )
        self._history_bind = binders(history, _HISTORY, dialect)
        self._history = (
            f"INSERT INTO {history.name} ({', '.join(_HISTORY)}) VALUES ({placeholders(dialect, len(_HISTORY))})"
        )
        self._claims = claims.name
        self._extension_bind = {
            plugin: binders(table, names, dialect) for plugin, (table, names) in self._extensions.items()
        }
        self._extension_insert = {
            plugin: f"INSERT INTO {table.name} (customer_id, {', '.join(names)})"
            f" VALUES ({placeholders(dialect, len(names) + 1)})"
            for plugin, (table, names) in self._extensions.items()
        }
        self._insert_all = self._compile_insert_all(history.name) if self._postgres else ""
        self._updates: dict[tuple[str, tuple[str, ...]], str] = {}
        self._read, self._read_names, self._read_processors = self._compile_read(False)
        self._lock = self._compile_read(True)[0]

    # -- writes ----------------------------------------------------------------------------------

    def insert_new(
        self, cur: Cursor, values: Mapping[str, Any], extensions: Mapping[str, Sequence[Any]], history: Sequence[Any]
    ) -> int:
        """Insert a new customer, its extension rows (each plugin's field values in declaration order) and
        its first history row (from, to, lifecycle, at, cause, actor); its new id.

        On PostgreSQL it is one statement (each row a round trip to the server otherwise; the rows that
        point at the customer take its id from the statement's own ``INSERT``); on SQLite, where a
        statement is a function call, one per row."""
        if not self._postgres:
            customer_id = self.insert(cur, values)
            for plugin, row in extensions.items():
                self.insert_extension(cur, plugin, customer_id, row)
            self.history(cur, (customer_id, *history))
            return customer_id
        params = bind_named(self._bind, {name: values[name] for name in self.columns})
        for plugin in self._extensions:
            params.extend(convert(self._extension_bind[plugin], extensions[plugin]))
        params.extend(convert(self._history_bind[1:], history))
        found = cur.one(self._insert_all, params)
        assert found is not None
        return int(found[0])

    def insert(self, cur: Cursor, values: Mapping[str, Any]) -> int:
        """Insert a customer (``values`` of every column but ``id``); its new id."""
        params = bind_named(self._bind, {name: values[name] for name in self.columns})
        row = cur.one(self._insert, params)
        assert row is not None
        return int(row[0])

    def insert_extension(self, cur: Cursor, plugin: str, customer_id: int, values: Sequence[Any]) -> None:
        """The plugin's extension row: ``values`` of its fields, in declaration order."""
        cur.execute(self._extension_insert[plugin], (customer_id, *convert(self._extension_bind[plugin], values)))

    def update(self, cur: Cursor, customer_id: int, values: Mapping[str, Any]) -> None:
        """Set some columns of a customer."""
        names = tuple(values)
        key = ("", names)
        if key not in self._updates:
            sets = ", ".join(f"{name} = {self._mark}" for name in names)
            self._updates[key] = f"UPDATE {self._customers.name} SET {sets} WHERE id = {self._mark}"
        cur.execute(self._updates[key], (*bind_named(self._bind, values), customer_id))

    def write_extension(self, cur: Cursor, plugin: str, customer_id: int, values: Mapping[str, Any]) -> None:
        """Set some plugin fields of a customer, creating its row when the customer predates the plugin."""
        if not values:
            return
        table, names = self._extensions[plugin]
        changed = tuple(values)
        key = (plugin, changed)
        if key not in self._updates:
            sets = ", ".join(f"{name} = {self._mark}" for name in changed)
            self._updates[key] = f"UPDATE {table.name} SET {sets} WHERE customer_id = {self._mark}"
        params = bind_named(dict(zip(names, self._extension_bind[plugin], strict=True)), values)
        if cur.execute(self._updates[key], (*params, customer_id)).rowcount == 0:
            self.insert_extension(cur, plugin, customer_id, [values.get(name) for name in names])

    def history(self, cur: Cursor, values: Sequence[Any]) -> None:
        """A stage history row: customer, from, to, lifecycle, at, cause, actor."""
        cur.execute(self._history, convert(self._history_bind, values))

    def claim(self, cur: Cursor, take: Claims, release: Claims) -> None:
        """Upsert the claims of ``take`` and delete those of ``release`` still naming the customer given, in
        (kind, value) order, as :func:`crmkit.claims.take_claims` does (consecutive upserts go in one
        statement, which takes its rows' locks in the order given)."""
        m = self._mark
        pending: list[tuple[str, str, int]] = []
        for claim in sorted(take.keys() | release.keys()):
            if claim in take:
                pending.append((*claim, take[claim]))
                continue
            self._upsert(cur, pending)
            pending = []
            kind, value = claim
            cur.execute(
                f"DELETE FROM {self._claims} WHERE kind = {m} AND value = {m} AND customer_id = {m}",
                (kind, value, release[claim]),
            )
        self._upsert(cur, pending)

    def _upsert(self, cur: Cursor, rows: list[tuple[str, str, int]]) -> None:
        if not rows:
            return
        group = f"({placeholders(self.dialect, 3)})"
        cur.execute(
            f"INSERT INTO {self._claims} (kind, value, customer_id) VALUES {', '.join([group] * len(rows))}"
            " ON CONFLICT (kind, value) DO UPDATE SET customer_id = excluded.customer_id",
            [v for row in rows for v in row],
        )

    # -- reads -----------------------------------------------------------------------------------

    def duplicates(
        self, cur: Cursor, email: str | None, phone: str | None, exclude: int
    ) -> list[tuple[int, str | None, str | None]]:
        """Other customers with this normalised email or phone (either may be ``None``): id, email, phone."""
        m = self._mark
        checks, params = [], []
        for column, value in (("email_normalized", email), ("phone_normalized", phone)):
            if value:
                checks.append(f"{column} = {m}")
                params.append(value)
        if not checks:
            return []
        rows = cur.all(
            f"SELECT id, email_normalized, phone_normalized FROM {self._customers.name}"
            f" WHERE ({' OR '.join(checks)}) AND id <> {m} ORDER BY id",
            (*params, exclude),
        )
        return [(int(r[0]), r[1], r[2]) for r in rows]

    def read(self, cur: Cursor, customer_id: int, *, lock: bool = False) -> dict[str, Any] | None:
        """Every column and plugin field of a customer as Python values (``extra`` as stored), or ``None``;
        with ``lock``, the customer's row is locked until the transaction ends (``FOR UPDATE``)."""
        row = cur.one(self._lock if lock else self._read, (customer_id,))
        if row is None:
            return None
        return {
            name: value if process is None or value is None else process(value)
            for name, process, value in zip(self._read_names, self._read_processors, row, strict=True)
        }

    def _compile_insert_all(self, history: str) -> str:
        new_id = "(SELECT id FROM new_customer)"
        parts = [f"new_customer AS ({self._insert})"]
        for i, (table, names) in enumerate(self._extensions.values()):
            marks = placeholders(self.dialect, len(names))
            parts.append(
                f"e{i} AS (INSERT INTO {table.name} (customer_id, {', '.join(names)}) VALUES ({new_id}, {marks}))"
            )
        marks = placeholders(self.dialect, len(_HISTORY) - 1)
        parts.append(f"h AS (INSERT INTO {history} ({', '.join(_HISTORY)}) VALUES ({new_id}, {marks}))")
        return f"WITH {', '.join(parts)} SELECT id FROM new_customer"

    def _compile_read(self, lock: bool) -> tuple[str, tuple[str, ...], tuple[Any, ...]]:
        customers = self._customers
        names = ["id", *self.columns]
        columns = [f"c.{name}" for name in names]
        processors = list(readers(customers, names, self.dialect))
        joins = []
        for i, (table, fields) in enumerate(self._extensions.values()):
            joins.append(f" LEFT OUTER JOIN {table.name} e{i} ON e{i}.customer_id = c.id")
            columns.extend(f"e{i}.{name}" for name in fields)
            names.extend(fields)
            processors.extend(readers(table, fields, self.dialect))
        suffix = " FOR UPDATE OF c" if lock and self._postgres else ""
        sql = f"SELECT {', '.join(columns)} FROM {customers.name} c{''.join(joins)} WHERE c.id = {self._mark}{suffix}"
        return sql, tuple(names), tuple(processors)
