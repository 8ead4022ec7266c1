"""Building blocks for trigger conditions: plugin fields, activity aggregates, time relative to ``as_of``.

Every helper returns a SQLAlchemy expression correlated to the customer row, so a condition such as
``q.field("sessions_left") <= 2`` or ``q.count("visit", within=days(14)) == 0`` is evaluated by the database
for all customers in one statement. Times are bound as parameters computed from ``as_of`` in Python, so
the same SQL runs on SQLite and PostgreSQL without dialect date arithmetic.
"""

from __future__ import annotations

import datetime as dt
import zlib
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Date,
    Exists,
    Integer,
    Select,
    Table,
    bindparam,
    exists,
    func,
    literal,
    literal_column,
    or_,
    select,
)

from crmkit.db.functions import month_day
from crmkit.db.models import Activity, Customer
from crmkit.db.types import UTCDateTime

if TYPE_CHECKING:
    from crmkit.specs import FieldSpec

#: Activity statuses that count as something that happened.
HAPPENED = ("done",)


def _kinds(kinds: str | Iterable[str]) -> list[str]:
    return [kinds] if isinstance(kinds, str) else list(kinds)


def _micros(delta: dt.timedelta) -> str:
    """A name-safe spelling of a duration (``-`` as ``m``), unique per duration."""
    micros = delta // dt.timedelta(microseconds=1)
    return f"m{-micros}" if micros < 0 else str(micros)


def exists_where(*conditions: ColumnElement[bool]) -> Exists:
    """``EXISTS (SELECT 1 FROM ... WHERE conditions)``.

    Not ``exists().where(...)``: its ``SELECT *`` makes SQLite read every matching row from the table even
    when an index holds all the columns the conditions use, which costs a lookup per customer.
    """
    return exists(literal_column("1")).where(*conditions)


class TriggerQuery:
    """What a trigger's condition is written against. One is built per trigger and run.

    It is given what it reads: ``as_of``, the plugin fields by name (the registry's ``fields``), the tables
    by name (the CRM's ``metadata.tables``) and each plugin's extension table (``extension_tables``).
    """

    def __init__(
        self,
        as_of: dt.datetime,
        *,
        fields: Mapping[str, FieldSpec],
        tables: Mapping[str, Table],
        extension_tables: Mapping[str, Table],
    ) -> None:
        self.as_of = as_of
        # the parameters derived from as_of, by name: a statement built once can be run for another as_of
        # with the values of values(as_of) (see Triggers.matching)
        self._derived: dict[str, Callable[[dt.datetime], Any]] = {}
        self._fields = fields
        self._tables = tables
        self._extension_tables = extension_tables
        self.customer: Table = Customer.__table__
        self._joined: dict[str, Table] = {}

    # -- the customer -------------------------------------------------------------------------------

    def field(self, name: str) -> ColumnElement[Any]:
        """A plugin field of the customer (its extension table is joined for you)."""
        spec = self._fields.get(name)
        if spec is None:
            raise KeyError(f"no plugin field named {name!r}")
        table = self._extension_tables[spec.owner]
        self._joined[spec.owner] = table
        return table.c[name]

    def exists(self, *conditions: ColumnElement[bool]) -> Exists:
        """A correlated ``EXISTS`` over your own conditions, e.g. on a plugin table (see :func:`exists_where`)."""
        return exists_where(*conditions)

    def among(self, customer_ids: Select[Any]) -> ColumnElement[bool]:
        """The customer is one of ``customer_ids``: a ``SELECT`` of customer ids, not correlated.

        Better than a correlated :meth:`exists` when few rows qualify on their own (frozen memberships, those
        ending this week): the database runs the select once and looks the customers up in its result, where
        SQLite would search the table once per customer for an ``EXISTS``.
        """
        return self.customer.c.id.in_(customer_ids)

    def table(self, name: str) -> Table:
        """A plugin's own table, for a correlated subquery of your own (``.where(t.c.customer_id ==
        q.customer.c.id)``)."""
        return self._tables[name]

    def in_stage_since(self, delta: dt.timedelta) -> ColumnElement[bool]:
        """The customer has been in the current stage for at least ``delta``."""
        return self.customer.c.stage_changed_at <= self.ago(delta)

    def birthday_within(self, days: int) -> ColumnElement[bool]:
        """The birthday falls within the next ``days`` days (today included), across a year end."""

        def dates(as_of: dt.datetime) -> list[str]:
            start = as_of.date()
            return sorted({(start + dt.timedelta(days=i)).strftime("%m-%d") for i in range(days + 1)})

        name = self._derive(f"crmkit_birthdays_{days}", dates)
        return month_day(self.customer.c.birthday).in_(bindparam(name, dates(self.as_of), expanding=True))

    # -- time ---------------------------------------------------------------------------------------

    def at(self, moment: dt.datetime) -> ColumnElement[dt.datetime]:
        """A fixed moment as a bound parameter (``as_of`` itself is the named parameter ``crmkit_as_of``)."""
        if moment == self.as_of:
            return self._moment("crmkit_as_of", dt.timedelta(0))
        return literal(moment, UTCDateTime())

    def ago(self, delta: dt.timedelta) -> ColumnElement[dt.datetime]:
        """``as_of - delta`` as a named bound parameter, derived from ``as_of``."""
        return self._moment(f"crmkit_as_of_minus_{_micros(delta)}", -delta)

    def ahead(self, delta: dt.timedelta) -> ColumnElement[dt.datetime]:
        """``as_of + delta`` as a named bound parameter, derived from ``as_of``."""
        return self._moment(f"crmkit_as_of_plus_{_micros(delta)}", delta)

    def today(self, delta: dt.timedelta = dt.timedelta(0)) -> ColumnElement[dt.date]:
        """The ``as_of`` date (plus ``delta``), for comparing with date fields."""

        def day(as_of: dt.datetime) -> dt.date:
            return (as_of + delta).date()

        name = self._derive(f"crmkit_today_plus_{_micros(delta)}", day)
        return bindparam(name, day(self.as_of), type_=Date())

    def values(self, as_of: dt.datetime) -> dict[str, Any]:
        """The value of every parameter derived from ``as_of`` that the conditions built so far use."""
        return {name: derive(as_of) for name, derive in self._derived.items()}

    def _derive(self, name: str, derive: Callable[[dt.datetime], Any]) -> str:
        self._derived[name] = derive
        return name

    def _moment(self, name: str, delta: dt.timedelta) -> ColumnElement[dt.datetime]:
        def moment(as_of: dt.datetime) -> dt.datetime:
            return as_of + delta

        self._derive(name, moment)
        return bindparam(name, moment(self.as_of), type_=UTCDateTime())

    # -- activity aggregates (correlated, so they use the customer/kind/time index) -------------------

    def _activities(
        self,
        kinds: str | Iterable[str],
        within: dt.timedelta | None,
        until: dt.timedelta,
        statuses: Iterable[str],
    ) -> list[ColumnElement[bool]]:
        conditions = [
            Activity.customer_id == self.customer.c.id,
            Activity.kind.in_(_kinds(kinds)),
            Activity.status.in_(list(statuses)),
            Activity.occurred_at <= self.ago(until),
        ]
        if within is not None:
            conditions.append(Activity.occurred_at > self.ago(within))
        return conditions

    def count(
        self,
        kinds: str | Iterable[str],
        within: dt.timedelta | None = None,
        *,
        until: dt.timedelta = dt.timedelta(0),
        statuses: Iterable[str] = HAPPENED,
    ) -> ColumnElement[int]:
        """Activities of ``kinds`` in ``(as_of - within, as_of - until]``; all before ``as_of`` when
        ``within`` is ``None``."""
        where = self._activities(kinds, within, until, statuses)
        return select(func.count(Activity.id)).where(*where).scalar_subquery()

    def total(
        self, kinds: str | Iterable[str], within: dt.timedelta | None = None, *, statuses: Iterable[str] = HAPPENED
    ) -> ColumnElement[Any]:
        """Sum of ``amount`` of those activities (0 when none)."""
        where = self._activities(kinds, within, dt.timedelta(0), statuses)
        return select(func.coalesce(func.sum(Activity.amount), 0)).where(*where).scalar_subquery()

    def has(
        self, kinds: str | Iterable[str], within: dt.timedelta | None = None, *, statuses: Iterable[str] = HAPPENED
    ) -> ColumnElement[bool]:
        """Whether any such activity exists."""
        return exists_where(*self._activities(kinds, within, dt.timedelta(0), statuses))

    def aggregate(
        self,
        kinds: str | Iterable[str],
        within: dt.timedelta | None,
        build: Callable[[Table], ColumnElement[Any]],
        *,
        statuses: Iterable[str] = HAPPENED,
    ) -> ColumnElement[Any]:
        """``build(activities)``, an aggregate expression, over the activities of ``kinds`` in ``(as_of - within,
        as_of]``.

        For several figures of one window, such as two counts split at :meth:`ago` and compared: the rows are
        read once, where a :meth:`count` each reads them once per count.
        """
        where = self._activities(kinds, within, dt.timedelta(0), statuses)
        activities: Table = Activity.__table__
        return select(build(activities)).where(*where).scalar_subquery()

    def last(self, kinds: str | Iterable[str], *, statuses: Iterable[str] = HAPPENED) -> ColumnElement[dt.datetime]:
        """Time of the latest such activity up to ``as_of`` (NULL when none)."""
        where = self._activities(kinds, None, dt.timedelta(0), statuses)
        return select(func.max(Activity.occurred_at)).where(*where).scalar_subquery()

    def planned(self, kinds: str | Iterable[str], within: dt.timedelta | None = None) -> ColumnElement[bool]:
        """Whether the customer has an activity booked ahead: one of ``kinds`` with status ``planned`` whose
        ``occurred_at`` is strictly after ``as_of`` and, when ``within`` is given, at most ``as_of + within``
        (``as_of < occurred_at <= as_of + within``).

        Only status ``planned`` counts, whatever the helpers' ``statuses=`` default: not ``in_progress``,
        and not a ``planned`` activity whose time is ``as_of`` or earlier (booked, then never logged as
        done or missed). There is no ``statuses=`` parameter.
        """
        conditions = [
            Activity.customer_id == self.customer.c.id,
            Activity.kind.in_(_kinds(kinds)),
            Activity.status == "planned",
            Activity.occurred_at > self.at(self.as_of),
        ]
        if within is not None:
            conditions.append(Activity.occurred_at <= self.ahead(within))
        return exists_where(*conditions)

    # -- assembling ---------------------------------------------------------------------------------

    def stage_filter(self, stages: Iterable[str]) -> ColumnElement[bool]:
        names = list(stages)
        return or_(self.customer.c.stage.in_(names), self.customer.c.lifecycle.in_(names))

    def from_clause(self) -> Any:
        joined: Any = self.customer
        for table in self._joined.values():
            joined = joined.outerjoin(table, table.c.customer_id == self.customer.c.id)
        return joined


#: Holdout buckets: a share ``h`` of a trigger's matches is held out when the bucket is below ``h * 10000``.
HOLDOUT_BUCKETS = 10_000
_MASK = 0xFFFFFFFF
_MULTIPLIER = 0x45D9F3B  # 27 bits: a 32-bit value times it stays below 2**59


def holdout_bucket(trigger: str, customer_id: int) -> int:
    """The customer's bucket (0-9999) for a trigger; the SQL of :func:`holdout_sql` computes the same.

    A 32-bit hash of the customer id and the trigger's salt: a multiply and add, then two rounds of
    xor-shift and multiply, each of which spreads every input bit over the higher output bits, and the
    bucket taken from the top bits (``x * 10000 >> 32``, the best mixed ones). The held-out groups of two
    triggers are then as independent as random draws (about ``share**2`` of the customers are in both), so
    the uplift of one trigger is not confounded with another's; ``tests/test_triggers.py`` checks the
    overlaps. Every intermediate value stays below 2**59, so SQLite (whose integers silently overflow into
    floats) and PostgreSQL (which raises) compute exactly the same.
    """
    x = ((customer_id & _MASK) * _MULTIPLIER + _salt(trigger)) & _MASK
    x = ((x >> 16) ^ x) * _MULTIPLIER & _MASK
    x = ((x >> 16) ^ x) * _MULTIPLIER & _MASK
    return (x * HOLDOUT_BUCKETS) >> 32


def holdout_sql(trigger: str, customer_id: ColumnElement[int]) -> ColumnElement[int]:
    """:func:`holdout_bucket` in SQL, the same on SQLite and PostgreSQL (integer ``+ * & | - >>`` only).

    SQLite has no XOR operator, so ``a ^ b`` is written ``(a | b) - (a & b)``; that repeats its operands,
    which is why the hash has two xor rounds and not more: the statement stays small."""
    x = _and(_and(customer_id, _MASK) * _big(_MULTIPLIER) + _big(_salt(trigger)), _MASK)
    x = _and(_xor(_shift(x, 16), x) * _big(_MULTIPLIER), _MASK)
    x = _and(_xor(_shift(x, 16), x) * _big(_MULTIPLIER), _MASK)
    return _shift(x * _big(HOLDOUT_BUCKETS), 32)


def _big(value: int) -> ColumnElement[int]:
    # BIGINT from the first step, so that PostgreSQL computes in 64 bits
    return literal(value, BigInteger())


def _and(x: ColumnElement[int], mask: int | ColumnElement[int]) -> ColumnElement[int]:
    other = _big(mask) if isinstance(mask, int) else mask
    return x.self_group().op("&", return_type=BigInteger())(other.self_group()).self_group()


def _shift(x: ColumnElement[int], bits: int) -> ColumnElement[int]:
    # PostgreSQL shifts a bigint by an integer only
    return x.self_group().op(">>", return_type=BigInteger())(literal(bits, Integer())).self_group()


def _xor(a: ColumnElement[int], b: ColumnElement[int]) -> ColumnElement[int]:
    either = a.self_group().op("|", return_type=BigInteger())(b.self_group()).self_group()
    return (either - _and(a, b)).self_group()


def _salt(trigger: str) -> int:
    return zlib.crc32(trigger.encode())
