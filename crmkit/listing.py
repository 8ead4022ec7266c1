"""Lists that scale: filters, ordering and keyset pagination over any ``SELECT``, one SQL statement a page.

A service describes what can be listed with a :class:`Listing`: its ``SELECT``, the id column, the fields
a caller may filter and order by (a SQL expression and the marshmallow field that reads a value for it)
and how a row becomes a record. :func:`search` and :func:`count` do the rest.

``where`` keys are Django-style: ``"field"`` (equality; ``None`` means ``IS NULL``), ``"field__in"``,
``"field__gt"``, ``"__gte"``, ``"__lt"``, ``"__lte"``, ``"field__prefix"`` (text starting with, case-sensitive)
and ``"field__isnull"`` (a boolean). Values are read by the field's own marshmallow field, so the text of
a web query string works (``"2026-01-01"``, ``"42"``, ``"true"``) and a bad value is crmkit's
:class:`~crmkit.errors.ValidationError` naming its key.

Pages follow keyset order (never ``OFFSET``): ``order_by`` is one column, ascending or descending (``"-name"``),
always tie-broken by the id in the same direction. NULLs sort after every value ascending and before every
value descending, on both databases (PostgreSQL's default, spelled out for SQLite). The cursor is the last
row's order value and id, encoded url-safe with a checksum: a garbled cursor, or one from another
``order_by``, is refused.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from typing import Any

import attrs
from marshmallow import ValidationError as FieldError
from marshmallow import fields as mf
from sqlalchemy import ColumnElement, Select, and_, false, func, or_, select
from sqlalchemy.orm import Session

from crmkit.access import Access, Actor
from crmkit.db.models import Customer
from crmkit.errors import AccessDenied, NotFound, ValidationError
from crmkit.fields import FIELD_TYPES
from crmkit.limits import INT64, MAX_IN_VALUES, MAX_PAGE_SIZE, Int, Text
from crmkit.specs import FieldSpec
from crmkit.unit import Transaction, Units

#: The lookups a filter key may end with, after ``__``.
LOOKUPS = ("in", "gt", "gte", "lt", "lte", "prefix", "isnull")
_RANGES = {"gt": "__gt__", "gte": "__ge__", "lt": "__lt__", "lte": "__le__"}
_MESSAGE = "invalid search"
_BOOLEAN = mf.Boolean()
_LIMIT = Int(min=1, max=MAX_PAGE_SIZE)
#: Bytes of the cursor's checksum: enough to tell a garbled or edited cursor from a real one (it is no
#: secret: a cursor only says where a page starts, which the caller may choose freely anyway).
_TAG = 8


@attrs.frozen
class Page:
    """One page of a list: its records, and the cursor of the next page (``None`` on the last one)."""

    items: list[dict[str, Any]]
    next_cursor: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"items": self.items, "next_cursor": self.next_cursor}


@attrs.frozen
class Filterable:
    """One name a caller may filter by: the SQL it compares and how a value for it is read.

    ``field`` reads a value for equality, ``in`` and ranges (and may normalise it, as the email filter
    does); ``prefix`` reads the text of a prefix filter (``None``: the field has no prefix lookup);
    ``cursor`` reads the order value back from a cursor (default ``field``). A field kept in JSON
    (``in_json``) filters without an index and cannot order a list.
    """

    column: ColumnElement[Any]
    field: mf.Field[Any]
    prefix: mf.Field[Any] | None = None
    nullable: bool = True
    in_json: bool = False
    ranged: bool = True
    cursor: mf.Field[Any] | None = None
    #: The lookups allowed, when fewer than the field's type allows.
    only: tuple[str, ...] | None = None
    #: The id column of the column's own table, when it is joined one to one with the listed rows (a
    #: plugin's extension table): equal to the listing's id wherever ``column`` is not NULL.
    id_alias: ColumnElement[Any] | None = None

    def lookups(self) -> tuple[str, ...]:
        return tuple(
            name
            for name in ("", *LOOKUPS)
            if (self.only is None or name in self.only)
            and (name != "prefix" or self.prefix is not None)
            and (name not in _RANGES or self.ranged)
            and (name != "isnull" or self.nullable)
        )


@attrs.frozen
class Listing:
    """What can be listed: a ``SELECT`` (one row per record), its id column, the filterable names and the
    function that turns a row into the record the service's ``get`` returns."""

    kind: str
    select: Select[Any]
    id_column: ColumnElement[Any]
    fields: Mapping[str, Filterable]
    record: Callable[[Mapping[Any, Any]], dict[str, Any]]
    id_bits: int = 32


def search(
    session: Session,
    listing: Listing,
    where: Mapping[str, Any] | None = None,
    *,
    order_by: str = "id",
    after: str | None = None,
    limit: int = 50,
) -> Page:
    """One page of ``listing`` as the caller asked for it, in one statement."""
    query = page_query(listing, where, order_by=order_by, after=after, limit=limit, dialect=_dialect(session))
    limit = check_limit(limit)
    rows = session.execute(query).mappings().all()
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = None
    if more:
        last = rows[-1]
        next_cursor = encode_cursor(order_by, last["_order"], last["_id"])
    return Page([listing.record(row) for row in rows], next_cursor)


def count(session: Session, listing: Listing, where: Mapping[str, Any] | None = None) -> int:
    """How many records ``where`` selects."""
    conditions = parse_where(listing, where, _dialect(session))
    # keep the FROM of the listing's columns: a filter may name none of them, and the joins stay as they are
    query = listing.select.where(*conditions).with_only_columns(func.count(), maintain_column_froms=True)
    return int(session.scalar(query) or 0)


def page_query(
    listing: Listing,
    where: Mapping[str, Any] | None,
    *,
    order_by: str,
    after: str | None,
    limit: int,
    dialect: str,
) -> Select[Any]:
    """The ``SELECT`` of one page (``limit + 1`` rows: the last tells whether a next page exists), with the
    order value and id labelled ``_order`` and ``_id``."""
    errors: dict[str, list[str]] = {}
    parsed: list[tuple[ColumnElement[bool], Filterable | None]] = []
    try:
        parsed = _parse(listing, where, dialect)
    except ValidationError as exc:
        errors.update(exc.errors)
    conditions = [condition for condition, _ in parsed]
    ident = _id_for(listing, [spec for _, spec in parsed if spec is not None])
    order: Filterable | None = None
    descending = False
    try:
        order, descending = _order(listing, order_by)
    except ValidationError as exc:
        errors.update(exc.errors)
    try:
        limit = check_limit(limit)
    except ValidationError as exc:
        errors.update(exc.errors)
    if order is not None and after is not None:
        try:
            conditions.append(_after(listing, ident, order, descending, order_by, after))
        except ValidationError as exc:
            errors.update(exc.errors)
    if errors or order is None:
        raise ValidationError(errors, _MESSAGE)
    column = ident if order.column is listing.id_column else order.column
    if descending:
        keys = [column.desc().nulls_first() if order.nullable else column.desc(), ident.desc()]
    else:
        keys = [column.asc().nulls_last() if order.nullable else column.asc(), ident.asc()]
    if column is ident:
        keys = keys[1:]
    query = (
        listing.select.add_columns(column.label("_order"), ident.label("_id"))
        .where(*conditions)
        .order_by(*keys)
        .limit(limit + 1)
    )
    return query


def check_limit(limit: object) -> int:
    if not isinstance(limit, int) or isinstance(limit, bool):
        raise ValidationError({"limit": [f"must be an integer from 1 to {MAX_PAGE_SIZE}"]}, _MESSAGE)
    number: int = _read(_LIMIT, limit, "limit")
    return number


def parse_where(listing: Listing, where: Mapping[str, Any] | None, dialect: str) -> list[ColumnElement[bool]]:
    """The SQL conditions of ``where``; every bad key or value is reported at once."""
    return [condition for condition, _ in _parse(listing, where, dialect)]


def _parse(
    listing: Listing, where: Mapping[str, Any] | None, dialect: str
) -> list[tuple[ColumnElement[bool], Filterable | None]]:
    """Each condition of ``where``, with its filter when the condition leaves out the rows where the
    filter's column is NULL."""
    if where is None:
        return []
    if not isinstance(where, Mapping):
        raise ValidationError({"where": ["expected a mapping of filter keys to values"]}, _MESSAGE)
    errors: dict[str, list[str]] = {}
    conditions: list[tuple[ColumnElement[bool], Filterable | None]] = []
    for key, value in where.items():
        try:
            conditions.append(_condition(listing, key, value, dialect))
        except ValidationError as exc:
            errors.update(exc.errors)
    if errors:
        raise ValidationError(errors, _MESSAGE)
    return conditions


def _condition(
    listing: Listing, key: object, value: Any, dialect: str
) -> tuple[ColumnElement[bool], Filterable | None]:
    if not isinstance(key, str):
        raise ValidationError({str(key): ["filter keys are text"]}, _MESSAGE)
    name, lookup = key, ""
    if key not in listing.fields and "__" in key:
        name, lookup = key.rsplit("__", 1)
    spec = listing.fields.get(name)
    if spec is None:
        raise ValidationError(
            {key: [f"unknown field {name!r}; {listing.kind} filters: {', '.join(sorted(listing.fields))}"]}, _MESSAGE
        )
    if lookup not in spec.lookups():
        allowed = ", ".join(f"{name}__{lu}" if lu else name for lu in spec.lookups())
        raise ValidationError({key: [f"unknown lookup {lookup!r} for {name!r}; allowed: {allowed}"]}, _MESSAGE)
    column = spec.column
    if lookup == "isnull":
        if _read(_BOOLEAN, value, key):
            return column.is_(None), None
        return column.is_not(None), spec
    if lookup == "" and value is None:
        return column.is_(None), None
    if lookup == "":
        return column == _read(spec.field, value, key), spec
    if lookup == "in":
        values = _values(value, key)
        return column.in_([_read(spec.field, v, key) for v in values]), spec
    if lookup == "prefix":
        assert spec.prefix is not None
        return _prefix(column, _read(spec.prefix, value, key), dialect), spec
    bound = _read(spec.field, value, key)
    result: ColumnElement[bool] = getattr(column, _RANGES[lookup])(bound)
    return result, spec


def _values(value: Any, key: str) -> list[Any]:
    """The values of an ``in`` filter: a list (tuple, set), or text separated by commas (a query string)."""
    if isinstance(value, str):
        values: list[Any] = [v.strip() for v in value.split(",")]
    elif isinstance(value, list | tuple | set | frozenset):
        values = list(value)
    else:
        raise ValidationError({key: ["expected a list of values, or text separated by commas"]}, _MESSAGE)
    if not values:
        raise ValidationError({key: ["expected at least one value"]}, _MESSAGE)
    if len(values) > MAX_IN_VALUES:
        raise ValidationError({key: [f"at most {MAX_IN_VALUES} values"]}, _MESSAGE)
    return values


def _prefix(column: ColumnElement[Any], prefix: str, dialect: str) -> ColumnElement[bool]:
    """Text starting with ``prefix``, case-sensitive, in a form the database can answer from a btree index.

    SQLite compares text by code point (its BINARY collation), so a range is exact and uses the index
    (its ``LIKE`` ignores case and does not). PostgreSQL orders text by the column's collation, where a
    range may miss rows; its ``LIKE`` is exact and becomes an index range when the collation allows it.
    """
    if prefix == "":
        return column.is_not(None)
    if dialect == "sqlite":
        upper = _successor(prefix)
        return column >= prefix if upper is None else and_(column >= prefix, column < upper)
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return column.like(escaped + "%", escape="\\")


def _successor(prefix: str) -> str | None:
    """The least text greater than every text starting with ``prefix`` (in code point order)."""
    chars = list(prefix)
    while chars:
        code = ord(chars.pop()) + 1
        if code == 0xD800:  # surrogates cannot be stored
            code = 0xE000
        if code <= 0x10FFFF:
            return "".join(chars) + chr(code)
    return None


def _order(listing: Listing, order_by: object) -> tuple[Filterable, bool]:
    orderable = sorted(n for n, f in listing.fields.items() if not f.in_json)
    if isinstance(order_by, str):
        name = order_by.removeprefix("-")
        spec = listing.fields.get(name)
        if spec is not None and not spec.in_json:
            return spec, order_by.startswith("-")
    raise ValidationError(
        {"order_by": [f"expected a field, or -field for descending; {listing.kind} orders by: {', '.join(orderable)}"]},
        _MESSAGE,
    )


def _id_for(listing: Listing, filters: list[Filterable]) -> ColumnElement[Any]:
    """The column to order and page by id: the listing's, or the id of another table a filter has already
    joined one to one (a plugin's extension table) when the filter leaves out its NULLs. The two are equal
    on every row selected, and the database can then walk the filter's index in id order instead of
    sorting every match for each page (SQLite keeps the row id in every index)."""
    for spec in filters:
        if spec.id_alias is not None:
            return spec.id_alias
    return listing.id_column


def _after(
    listing: Listing, ident: ColumnElement[Any], order: Filterable, descending: bool, order_by: str, cursor: str
) -> ColumnElement[bool]:
    value, last_id = decode_cursor(cursor, order_by, order, listing.id_bits)
    column = order.column
    if column is listing.id_column:
        if ident is column:
            return ident < last_id if descending else ident > last_id
        # the same bound on both ids: PostgreSQL carries equalities across a join but not ranges, and
        # without it would walk the listed table's key from its first row on every page
        if descending:
            return and_(ident < last_id, column < last_id)
        return and_(ident > last_id, column > last_id)
    if descending:  # NULLs first, then values high to low
        if value is None:
            return or_(and_(column.is_(None), ident < last_id), column.is_not(None))
        return or_(column < value, and_(column == value, ident < last_id))
    if value is None:  # ascending: values low to high, then NULLs
        return and_(column.is_(None), ident > last_id)
    later = or_(column > value, and_(column == value, ident > last_id))
    return or_(later, column.is_(None)) if order.nullable else later


def encode_cursor(order_by: str, value: Any, last_id: int) -> str:
    payload = json.dumps([order_by, _plain(value), last_id], separators=(",", ":")).encode()
    tag = hashlib.blake2b(payload, digest_size=_TAG).digest()
    return base64.urlsafe_b64encode(tag + payload).decode().rstrip("=")


def decode_cursor(cursor: object, order_by: str, order: Filterable, id_bits: int = 32) -> tuple[Any, int]:
    """The order value and id a cursor holds: ``ValidationError`` on anything but a cursor this listing
    gave for the same ``order_by``."""

    def bad(reason: str) -> ValidationError:
        return ValidationError({"after": [reason]}, _MESSAGE)

    if not isinstance(cursor, str) or not cursor.isascii() or len(cursor) > 4096:
        raise bad("not a cursor of this list")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    except (binascii.Error, ValueError):
        raise bad("not a cursor of this list") from None
    tag, payload = raw[:_TAG], raw[_TAG:]
    if len(tag) != _TAG or hashlib.blake2b(payload, digest_size=_TAG).digest() != tag:
        raise bad("not a cursor of this list (garbled or edited)")
    try:
        cursor_order, value, last_id = json.loads(payload)
    except (ValueError, TypeError):
        raise bad("not a cursor of this list") from None
    if cursor_order != order_by:
        raise bad(f"a cursor of a list ordered by {cursor_order!r}, not {order_by!r}")
    high = INT64[1] if id_bits == 64 else 2**31 - 1
    if not isinstance(last_id, int) or isinstance(last_id, bool) or not 1 <= last_id <= high:
        raise bad("not a cursor of this list")
    if value is None:
        if not order.nullable:
            raise bad("not a cursor of this list")
        return None, last_id
    return _read(order.cursor or order.field, value, "after"), last_id


def _plain(value: Any) -> Any:
    """An order value as JSON: what the column's marshmallow field reads back."""
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def _read(field: mf.Field[Any], value: Any, key: str) -> Any:
    try:
        return field.deserialize(value)
    except FieldError as exc:
        messages = exc.messages if isinstance(exc.messages, list) else [str(exc.messages)]
        raise ValidationError({key: messages}, _MESSAGE) from None


def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


class Normalised(mf.Field[Any]):
    """A value read by ``inner``, then passed through ``convert`` (a ``ValueError`` is a field error): the
    email filter lower-cases, the phone filter reads the number as the CRM stores it. Text is trimmed
    first, as every input schema trims it."""

    def __init__(self, inner: mf.Field[Any], convert: Callable[[Any], Any]) -> None:
        super().__init__()
        self.inner = inner
        self.convert = convert

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        loaded = self.inner.deserialize(value.strip() if isinstance(value, str) else value)
        try:
            return self.convert(loaded)
        except ValueError as exc:
            raise FieldError(str(exc)) from None


def field_filter(spec: FieldSpec, column: ColumnElement[Any], *, nullable: bool = True) -> Filterable:
    """How a declared field (a plugin's column) is filtered: its values read by its own input field."""
    field = FIELD_TYPES[spec.type].field(spec, {})
    text = spec.type in ("string", "text")
    prefix = Text(max_length=spec.max_length if spec.type == "string" else None) if text else None
    return Filterable(column, field, prefix=prefix, nullable=nullable, ranged=spec.type != "boolean")


def json_filter(spec: FieldSpec, document: ColumnElement[Any]) -> Filterable:
    """How a run-time field, kept in the JSON column ``document``, is filtered: through the database's JSON
    extraction, so without an index.

    A run-time datetime is stored as the text it was given, with whatever UTC offset that had, so neither
    its text nor its order is its instant: it filters by ``__isnull`` only (declare the field in a plugin to
    filter it by time)."""
    item = document[spec.name]
    column: ColumnElement[Any]
    if spec.type == "integer":
        column = item.as_integer()
    elif spec.type == "decimal":
        column = item.as_float()
    elif spec.type == "boolean":
        column = item.as_boolean()
    else:  # text, and dates as ISO text (which orders as the dates do)
        column = item.as_string()
    base = field_filter(spec, column)
    if spec.type == "decimal":
        base = attrs.evolve(base, field=Normalised(base.field, float))
    if spec.type == "date":
        base = attrs.evolve(base, field=Normalised(base.field, dt.date.isoformat))
    only = ("isnull",) if spec.type == "datetime" else None
    return attrs.evolve(base, in_json=True, only=only)


class Searchable:
    """``search`` and ``count`` for a service whose records a :class:`Listing` describes (customers,
    activities, tasks): the service gives ``_units`` and ``_listing()``."""

    _units: Units
    _access: Access
    #: what reading the records takes (``"customers:read"``...)
    _read_permission: str

    def _listing(self) -> Listing:
        raise NotImplementedError

    def search(
        self,
        where: Mapping[str, Any] | None = None,
        *,
        order_by: str = "id",
        after: str | None = None,
        limit: int = 50,
        tx: Transaction | None = None,
    ) -> Page:
        """One page of the records ``where`` selects, as the service's ``get`` returns them, in ``order_by``
        order (``"-field"`` descending); ``after=page.next_cursor`` fetches the next page. See this module
        for the filter grammar; bad filters, orders, limits and cursors are a ``ValidationError``."""
        actor = self._access.require(self._read_permission, tx)
        self._guard_personal(actor, where, order_by)
        listing = self._scoped(actor)
        with self._units.read(tx) as s:
            page = search(s, listing, where, order_by=order_by, after=after, limit=limit)
        if actor.sees_personal or not self._personal():
            return page
        return Page([self._conceal(record) for record in page.items], page.next_cursor)

    def _conceal(self, record: dict[str, Any]) -> dict[str, Any]:
        """``record`` as a role without ``customers:read_personal`` reads it: its personal keys ``None``."""
        return mask(record, self._personal())

    def _shown(self, actor: Actor, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """``records`` as ``actor`` reads them."""
        if actor.sees_personal or not self._personal():
            return records
        return [self._conceal(record) for record in records]

    def count(self, where: Mapping[str, Any] | None = None, *, tx: Transaction | None = None) -> int:
        """How many records ``where`` selects (all of them without it)."""
        actor = self._access.require(self._read_permission, tx)
        self._guard_personal(actor, where, "id")
        listing = self._scoped(actor)
        with self._units.read(tx) as s:
            return count(s, listing, where)

    def _scope(self, actor: Actor) -> ColumnElement[bool] | None:
        """The condition that keeps a list to the records ``actor`` reaches (``None``: all of them)."""
        return None

    def _scoped(self, actor: Actor) -> Listing:
        listing = self._listing()
        condition = None if actor.unscoped else self._scope(actor)
        return listing if condition is None else attrs.evolve(listing, select=listing.select.where(condition))

    def _personal(self) -> tuple[str, ...]:
        """The record's keys that hold personal data: masked for an actor without
        ``customers:read_personal``, who may not filter or order by them either."""
        return ()

    def _guard_personal(self, actor: Actor, where: Mapping[str, Any] | None, order_by: Any) -> None:
        personal = self._personal()
        if not personal or actor.sees_personal:
            return
        keys = [str(k).split("__", 1)[0] for k in (where or {}) if isinstance(k, str)]
        if isinstance(order_by, str):
            keys.append(order_by.lstrip("-"))
        used = sorted(set(keys) & set(personal))
        if used:
            detail = f"{actor.describe()} may not filter or order by personal data ({', '.join(used)})"
            raise AccessDenied(actor.describe(), "customers:read_personal", detail)


def mask(record: dict[str, Any], personal: Iterable[str]) -> dict[str, Any]:
    """``record`` with its personal fields set to ``None``: what a role without ``customers:read_personal``
    reads."""
    return {**record, **{key: None for key in personal if key in record}}


def customer_scope(actor: Actor, customers: Any) -> ColumnElement[bool] | None:
    """The SQL condition on the customer table ``customers`` (a ``Table``) that keeps to the customers
    ``actor`` reaches; ``None`` when they reach all. The same rule as :meth:`crmkit.access.Actor.reaches`."""
    if actor.unscoped:
        return None
    if actor.scope == "own":
        return customers.c.owner_id == actor.user_id if actor.user_id is not None else false()
    return or_(customers.c.branch.is_(None), customers.c.branch.in_(sorted(actor.branches or ())))


def require_reached(session: Session, actor: Actor, customer_id: int, *, lock: bool = False) -> None:
    """``NotFound`` unless customer ``customer_id`` exists and ``actor`` reaches them: one out of reach reads
    as one that does not exist. With ``lock``, the customer's row stays locked until the transaction ends
    (``FOR UPDATE`` on PostgreSQL), so writers of one customer take turns."""
    customers = Customer.__table__
    query = select(customers.c.branch, customers.c.owner_id).where(customers.c.id == customer_id)
    row = session.execute(query.with_for_update() if lock else query).first()
    if row is None or not actor.reaches(row.branch, row.owner_id):
        raise NotFound("customer", customer_id)
