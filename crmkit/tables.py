"""A validated CRUD service for a plugin's own tables. **Public and stable** (see ``docs/plugin-api.md``).

``crm.table("fitness_trainers")`` gives the :class:`TableService` of a table the plugin declared through
``crmkit_register_models``. Its input schema is built from the table's columns with the fields of
:mod:`crmkit.limits`, so every column's storage limit is checked before the database sees the value and bad
input is crmkit's :class:`~crmkit.errors.ValidationError` naming the column, on SQLite and PostgreSQL alike:

========================  ===========================================================================
column type               input field
========================  ===========================================================================
``String(n)``, ``Text``   :class:`~crmkit.limits.Text`: no NUL or lone surrogate, at most ``n`` characters
``Integer``/``BigInteger``:class:`~crmkit.limits.Int`: no bool or fraction, within 32 / 64 bits
``SmallInteger``          :class:`~crmkit.limits.Int` within -32768..32767
``Numeric(p, s)``         :class:`~crmkit.limits.Money`: finite, at most ``s`` places, never rounded
``Float``                 a finite number
``Boolean``               a boolean
``Date``                  :class:`~crmkit.limits.Day`: 1900-01-01..2199-12-31
``DateTime``              :class:`~crmkit.limits.Moment`: aware (naive is UTC), 1900..2199
``Time``                  a time of day (``"07:30"``)
``JSON``                  :class:`~crmkit.limits.JSONObject`
``Enum``                  one of its values
========================  ===========================================================================

A column that is not nullable and has no default is required; a nullable one accepts ``None``; unknown
keys are refused. A value for a foreign key must name an existing row, and a value of a unique column must
be new (both are checked, so neither reaches the database as a driver error). The integer primary key is
assigned by the database and is not input.

Narrow a column further with keyword arguments for its field in the column's ``info``:
``mapped_column(info={"crmkit": {"min": 0, "max": 6}})`` (``min_length``, ``validate``, ``load_default``...).

A column that holds a person's personal data (a guardian's phone, a passport number) says so with
``info={"crmkit": {"personal": True}}``: :meth:`TableService.get` and :meth:`TableService.list` give it as
``None`` to a user without ``customers:read_personal``, who may not filter by it either.

Records come back as JSON-safe dicts, the core's read model: dates ``"YYYY-MM-DD"``, datetimes ISO 8601 in
UTC, decimals as strings, times ``"HH:MM:SS"``. Writes run in the unit of work they are given (``tx=``: a
savepoint of it) or in their own transaction; reads given ``tx`` see its writes.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING, Any, Protocol

from marshmallow import RAISE, Schema, validate
from marshmallow import fields as mf
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Enum,
    Float,
    Integer,
    Numeric,
    SmallInteger,
    String,
    Table,
    Time,
    UniqueConstraint,
    exists,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.types import TypeDecorator, TypeEngine

from crmkit.access import Access
from crmkit.db.models import Customer
from crmkit.errors import AccessDenied, NotFound, ValidationError
from crmkit.limits import Day, Int, JSONObject, Moment, Money, Text, id_filter, load, require_id
from crmkit.listing import customer_scope

if TYPE_CHECKING:
    from sqlalchemy import Column
    from sqlalchemy.orm import Session

    from crmkit.audit import Audit
    from crmkit.unit import Transaction

__all__ = ["MAX_PAGE", "TableService", "UnitsOfWork"]

#: The most rows one :meth:`TableService.list` call returns.
MAX_PAGE = 1000
_INT16 = (-(2**15), 2**15 - 1)


class UnitsOfWork(Protocol):
    """What a :class:`TableService` needs of the CRM's unit of work (``crm.units``)."""

    def write(self, tx: Transaction | None) -> AbstractContextManager[Transaction]: ...

    def read(self, tx: Transaction | None) -> AbstractContextManager[Session]: ...


def _base_type(kind: TypeEngine[Any]) -> TypeEngine[Any]:
    while isinstance(kind, TypeDecorator):
        kind = kind.impl_instance
    return kind


def _input_field(col: Column[Any]) -> mf.Field[Any]:
    kind = _base_type(col.type)
    has_default = col.default is not None or col.server_default is not None
    kwargs: dict[str, Any] = {"allow_none": bool(col.nullable), "required": not col.nullable and not has_default}
    kwargs.update({k: v for k, v in col.info.get("crmkit", {}).items() if k != "personal"})
    if isinstance(kind, Boolean):
        return mf.Boolean(**kwargs)
    if isinstance(kind, Enum):
        kwargs.setdefault("validate", validate.OneOf(list(kind.enums)))
        return Text(max_length=kind.length, **kwargs)
    if isinstance(kind, String):
        return Text(max_length=kind.length, **kwargs)
    if isinstance(kind, BigInteger):
        return Int(bits=64, **kwargs)
    if isinstance(kind, SmallInteger):
        kwargs.setdefault("min", _INT16[0])
        kwargs.setdefault("max", _INT16[1])
        return Int(**kwargs)
    if isinstance(kind, Integer):
        return Int(**kwargs)
    if isinstance(kind, Float):
        return mf.Float(allow_nan=False, **kwargs)
    if isinstance(kind, Numeric):
        if kind.precision is None:
            return mf.Decimal(allow_nan=False, **kwargs)
        return Money(kind.precision, kind.scale or 0, **kwargs)
    if isinstance(kind, DateTime):
        return Moment(**kwargs)
    if isinstance(kind, Date):
        return Day(**kwargs)
    if isinstance(kind, Time):
        return mf.Time(**kwargs)
    if isinstance(kind, JSON):
        return JSONObject(**kwargs)
    raise TypeError(f"column {col.table.name}.{col.name}: no crmkit input field for type {col.type!r}")


def _output_field(col: Column[Any]) -> mf.Field[Any]:
    kind = _base_type(col.type)
    if isinstance(kind, Boolean):
        return mf.Boolean()
    if isinstance(kind, Integer):
        return mf.Integer()
    if isinstance(kind, Float):
        return mf.Float()
    if isinstance(kind, Numeric):
        return mf.Decimal(as_string=True)
    if isinstance(kind, DateTime):
        return mf.DateTime()
    if isinstance(kind, Date):
        return mf.Date()
    if isinstance(kind, Time):
        return mf.Time()
    if isinstance(kind, String):
        return mf.String()
    return mf.Raw()


def _as_is(record: dict[str, Any]) -> dict[str, Any]:
    return record


class TableService:
    """Insert, update, get and list the rows of one table, every input validated against its columns.

    Build it with ``crm.table(name)``; ``TableService(table, units)`` works for any table with a single
    integer primary key. Given ``access``, its reads mask the personal columns for the acting user when
    they may not read personal data.
    """

    def __init__(
        self, table: Table, units: UnitsOfWork, *, access: Access | None = None, audit: Audit | None = None
    ) -> None:
        keys = list(table.primary_key.columns)
        if len(keys) != 1 or not isinstance(_base_type(keys[0].type), Integer):
            raise TypeError(f"table {table.name!r} needs a single integer primary key for a TableService")
        self.table = table
        self.name = table.name
        self._units = units
        # the log the writes are recorded in (``crm.table`` gives it); none for a service built by hand
        self._audit = audit
        self._key = keys[0]
        self._bits = 64 if isinstance(_base_type(self._key.type), BigInteger) else 32
        writable = [c for c in table.columns if c is not self._key]
        #: The input schema: what :meth:`insert` (and, partially, :meth:`update`) accepts.
        self.schema_in: Schema = Schema.from_dict({c.key: _input_field(c) for c in writable}, name=f"{table.name}In")(
            unknown=RAISE
        )
        #: The output schema: how a record is dumped.
        self.schema_out: Schema = Schema.from_dict(
            {c.key: _output_field(c) for c in table.columns}, name=f"{table.name}Out"
        )()
        self._filters = {c.key: _input_field(c) for c in table.columns}
        self._access = access
        #: The columns declared personal (``info={"crmkit": {"personal": True}}``).
        self.personal: tuple[str, ...] = tuple(
            c.key for c in table.columns if c.info.get("crmkit", {}).get("personal") is True
        )
        # a table about customers (a foreign key to crm_customers.id) is read and written under the
        # customers' permissions and keeps to the customers the acting user reaches
        self._customer = next(
            (c for c in table.columns for fk in c.foreign_keys if fk.target_fullname.endswith("crm_customers.id")),
            None,
        )

    # -- writes ----------------------------------------------------------------------------------------

    def insert(self, data: Mapping[str, Any], *, tx: Transaction | None = None) -> dict[str, Any]:
        """Validate ``data`` and insert the row; returns the stored record."""
        message = f"invalid {self.name} row"
        values = load(self.schema_in, data, message=message)
        with self._write(tx, message, values, None) as t:
            self._check_reach(t, values, message)
            row = t.session.execute(insert(self.table).values(**values).returning(*self.table.columns)).one()
            record = self.dump(row._mapping)
            self._record(t, "inserted", record, {k: [None, v] for k, v in record.items() if v is not None})
            return record

    def update(self, key: int, data: Mapping[str, Any], *, tx: Transaction | None = None) -> dict[str, Any]:
        """Validate the columns given in ``data`` and change them; returns the record. ``NotFound`` if the
        row does not exist."""
        ident = require_id(key, self.name, bits=self._bits)
        message = f"invalid {self.name} row"
        values = load(self.schema_in, data, partial=True, message=message)
        with self._write(tx, message, values, ident) as t:
            # the row as it was, locked as the update would lock it: its old values go to the audit log
            reached = self._reached(t, "customers:write")
            found = select(self.table).where(self._key == ident, *reached).with_for_update()
            before = t.session.execute(found).first()
            if before is None:
                raise NotFound(self.name, ident)
            self._check_reach(t, values, message)
            row = before
            if values:
                statement = update(self.table).where(self._key == ident)
                row = t.session.execute(statement.values(**values).returning(*self.table.columns)).one()
            old, record = self.dump(before._mapping), self.dump(row._mapping)
            changed = {k: [old[k], v] for k, v in record.items() if old[k] != v}
            if changed:
                self._record(t, "updated", record, changed)
            return record

    def _record(self, t: Transaction, what: str, record: Mapping[str, Any], changes: Mapping[str, Any]) -> None:
        if self._audit is None:
            return
        customer = record.get("customer_id")
        self._audit.record(
            t, f"{self.name}.{what}"[:60], self.name[:60], entity_id=record[self._key.key],
            customer_id=customer if isinstance(customer, int) else None, changes=changes,
        )  # fmt: skip

    # -- reads -----------------------------------------------------------------------------------------

    def get(self, key: int, *, tx: Transaction | None = None) -> dict[str, Any]:
        """The record with primary key ``key``; ``NotFound`` if there is none."""
        ident = require_id(key, self.name, bits=self._bits)
        reached = self._reached(tx, "customers:read")
        with self._units.read(tx) as session:
            row = session.execute(select(self.table).where(self._key == ident, *reached)).first()
        if row is None:
            raise NotFound(self.name, ident)
        return self._shown(tx)(self.dump(row._mapping))

    def list(
        self,
        where: Mapping[str, Any] | None = None,
        *,
        after: int | None = None,
        limit: int = 100,
        tx: Transaction | None = None,
    ) -> list[dict[str, Any]]:
        """Records in primary key order, at most ``limit`` (1..``MAX_PAGE``), those after the key ``after``
        (pass the last record's key for the next page: keyset, not OFFSET). ``where`` maps columns to the
        value they must equal (``None``: IS NULL); each value is checked like input."""
        shown = self._shown(tx)
        hidden = sorted(set(where or {}) & set(self.personal)) if shown is not _as_is else []
        if hidden:
            actor = self._actor(tx)
            detail = f"{actor} may not filter by personal data ({', '.join(hidden)})"
            raise AccessDenied(actor, "customers:read_personal", detail)
        filters = self._where(where or {})
        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_PAGE:
            raise ValidationError({"limit": [f"must be an integer from 1 to {MAX_PAGE}"]}, "invalid list")
        reached = self._reached(tx, "customers:read")
        statement = select(self.table).where(*filters, *reached).order_by(self._key).limit(limit)
        if after is not None:
            cursor = id_filter(after, "after", bits=self._bits)
            if cursor is None:  # beyond the key column's range: nothing comes after it, nothing before 1
                if int(after) > 0:
                    return []
            else:
                statement = statement.where(self._key > cursor)
        with self._units.read(tx) as session:
            return [shown(self.dump(r._mapping)) for r in session.execute(statement)]

    def dump(self, row: Mapping[Any, Any]) -> dict[str, Any]:
        """A row (a mapping of column keys, as ``select(table)`` gives) as a JSON-safe record."""
        return dict(self.schema_out.dump(dict(row)))

    # -- helpers ---------------------------------------------------------------------------------------

    def _shown(self, tx: Transaction | None) -> Callable[[dict[str, Any]], dict[str, Any]]:
        """How a record is shown to the acting user: as it is, or with its personal columns ``None``."""
        if not self.personal or self._access is None or self._access.actor(tx).sees_personal:
            return _as_is
        hidden = self.personal
        return lambda record: {**record, **dict.fromkeys(hidden)}

    def _reached(self, tx: Transaction | None, permission: str) -> builtins.list[ColumnElement[bool]]:
        """For a table about customers: the permission checked, and the condition that keeps to the rows
        about customers the acting user reaches (and to those about no customer)."""
        if self._access is None or self._customer is None:
            return []
        actor = self._access.require(permission, tx)
        scope = customer_scope(actor, Customer.__table__)
        if scope is None:
            return []
        return [or_(self._customer.is_(None), self._customer.in_(select(Customer.__table__.c.id).where(scope)))]

    def _check_reach(self, t: Transaction, values: Mapping[str, Any], message: str) -> None:
        """A row may be written about a customer the acting user reaches only; another reads as missing."""
        column = self._customer
        if column is None or self._access is None or values.get(column.key) is None:
            return
        scope = customer_scope(self._access.require("customers:write", t), Customer.__table__)
        customer = values[column.key]
        reached = exists().where(Customer.__table__.c.id == customer, scope) if scope is not None else None
        if reached is not None and not t.session.scalar(select(reached)):
            raise ValidationError({column.key: [f"no crm_customers row with id {customer!r}"]}, message)

    def _actor(self, tx: Transaction | None) -> str:
        return "the application" if self._access is None else self._access.actor(tx).describe()

    @contextmanager
    def _write(
        self, tx: Transaction | None, message: str, values: Mapping[str, Any], key: int | None
    ) -> Iterator[Transaction]:
        try:
            with self._units.write(tx) as t:
                self._check_references(t.session, values, message, key)
                yield t
        except IntegrityError as exc:
            # a concurrent write won the race (the same unique value): the checks, run again now that it
            # has committed, name the column; a constraint they cannot see is reported as the database says
            with self._units.read(tx) as session:
                self._check_references(session, values, message, key)
            problem = str(exc.orig).splitlines()[0] if exc.orig is not None else "violates a constraint"
            raise ValidationError({"_schema": [problem]}, message) from None

    def _where(self, where: Mapping[str, Any]) -> builtins.list[ColumnElement[bool]]:
        if not isinstance(where, Mapping):
            raise ValidationError({"where": ["must map column names to values"]}, "invalid list")
        errors: dict[str, list[str]] = {}
        filters: builtins.list[ColumnElement[bool]] = []
        for name, value in where.items():
            field = self._filters.get(name)
            if field is None:
                errors[name] = [f"{self.name} has no column {name!r}"]
                continue
            if value is None:
                filters.append(self.table.c[name].is_(None))
                continue
            try:
                filters.append(self.table.c[name] == field.deserialize(value))
            except Exception as exc:  # marshmallow's ValidationError: report it like any input
                errors[name] = list(getattr(exc, "messages", [str(exc)]))
        if errors:
            raise ValidationError(errors, "invalid list")
        return filters

    def _check_references(self, session: Session, values: Mapping[str, Any], message: str, key: int | None) -> None:
        """Foreign keys name existing rows and unique columns stay unique, so the driver never refuses them."""
        errors: dict[str, list[str]] = {}
        for name, value in values.items():
            col = self.table.c[name]
            if value is None:
                continue
            for fk in col.foreign_keys:
                target = fk.column
                if not session.scalar(select(exists().where(target == value))):
                    errors[name] = [f"no {target.table.name} row with {target.name} {value!r}"]
            if col.unique or any(
                isinstance(u, UniqueConstraint) and set(u.columns.keys()) == {name} for u in self.table.constraints
            ):
                taken = exists().where(col == value)
                if key is not None:
                    taken = taken.where(self._key != key)
                if session.scalar(select(taken)):
                    errors[name] = [f"a {self.name} row with {name} {value!r} exists"]
        if errors:
            raise ValidationError(errors, message)
