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

import attrs
from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Date,
    Exists,
    Float,
    Integer,
    Select,
    Subquery,
    Table,
    and_,
    bindparam,
    case,
    cast,
    exists,
    func,
    literal,
    literal_column,
    or_,
    select,
)

from crmkit.db.functions import day_number, month_day
from crmkit.db.models import Activity, Customer
from crmkit.db.types import UTCDateTime
from crmkit.zones import TimeZones, zone

if TYPE_CHECKING:
    from crmkit.specs import FieldSpec

#: The core's activity statuses that count as something that happened. A CRM's own list, with the statuses
#: its plugins declare happened (``crmkit_register_activity_statuses``), is ``crm.registry.happened``: the
#: default of a trigger's ``q`` and of the KPIs.
HAPPENED = ("done",)
_EPOCH = dt.date(1970, 1, 1)


def _kinds(kinds: str | Iterable[str]) -> list[str]:
    return [kinds] if isinstance(kinds, str) else list(kinds)


def _micros(delta: dt.timedelta) -> str:
    """A name-safe spelling of a duration (``-`` as ``m``), unique per duration."""
    micros = delta // dt.timedelta(microseconds=1)
    return f"m{-micros}" if micros < 0 else str(micros)


@attrs.frozen
class LocalDays:
    """A window of calendar days in the customer's local time (see :meth:`TriggerQuery.local_days`)."""

    days: int


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
        happened: Iterable[str] = HAPPENED,
        zones: TimeZones | None = None,
    ) -> None:
        self.as_of = as_of
        #: The CRM's and its branches' time zones: what a customer's calendar day is.
        self.zones = zones or TimeZones()
        #: The statuses the activity helpers count unless given ``statuses=``: those declared ``happened``.
        self.happened: tuple[str, ...] = tuple(happened)
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

    @property
    def as_of_param(self) -> ColumnElement[dt.datetime]:
        """``as_of`` as the named bound parameter ``crmkit_as_of`` (``q.at(q.as_of)``): to compute with in SQL.
        A statement using it runs for another moment with ``q.values(moment)``."""
        return self.at(self.as_of)

    def days_since(self, moment: ColumnElement[Any]) -> ColumnElement[int]:
        """Whole (UTC) calendar days from ``moment``'s date to ``as_of``'s: 0 on the same day, NULL for NULL
        (``q.days_since(q.last("visit")) > 30``). ``as_of``'s day number is a parameter derived from it."""
        return self._as_of_day() - day_number(moment)

    def _as_of_day(self) -> ColumnElement[int]:
        def day(as_of: dt.datetime) -> int:
            return (as_of.date() - _EPOCH).days

        name = self._derive("crmkit_as_of_day", day)
        return bindparam(name, day(self.as_of), type_=Integer())

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

    def local_days(self, days: int) -> LocalDays:
        """A window of ``days`` calendar days in the customer's local time, today (``as_of``'s day there)
        included: pass it as ``within`` (``q.count("visit", within=q.local_days(7))``, this week's visits
        as the member's own calendar has them)."""
        if not isinstance(days, int) or isinstance(days, bool) or days < 1:
            raise ValueError(f"local_days takes a whole number of days of 1 or more, got {days!r}")
        return LocalDays(days)

    def local_midnight(self, days: int = 0) -> ColumnElement[dt.datetime]:
        """When, in UTC, the customer's local calendar day ``days`` after ``as_of``'s began (``0``: today,
        ``-6``: six days ago), in their branch's zone, else the CRM's. A named parameter per zone, derived
        from ``as_of``, so the statement is still built once."""

        def midnight(zone_name: str) -> Callable[[dt.datetime], dt.datetime]:
            def start(as_of: dt.datetime) -> dt.datetime:
                place = zone(zone_name)
                day = as_of.astimezone(place).date() + dt.timedelta(days=days)
                return dt.datetime.combine(day, dt.time(), tzinfo=place).astimezone(dt.UTC)

            return start

        def param(zone_name: str) -> ColumnElement[dt.datetime]:
            key = zone_name.replace("/", "_").replace("-", "_").replace("+", "p").lower()
            name = self._derive(f"crmkit_local_midnight_{_micros(dt.timedelta(days=days))}_{key}", midnight(zone_name))
            return bindparam(name, midnight(zone_name)(self.as_of), type_=UTCDateTime())

        own = {b: z for b, z in self.zones.branches.items() if z != self.zones.default}
        if not own:
            return param(self.zones.default)
        whens = {b: param(z) for b, z in own.items()}
        return case(whens, value=self.customer.c.branch, else_=param(self.zones.default))

    def _activities(
        self,
        kinds: str | Iterable[str],
        within: dt.timedelta | LocalDays | None,
        until: dt.timedelta,
        statuses: Iterable[str] | None,
    ) -> list[ColumnElement[bool]]:
        conditions = [
            Activity.customer_id == self.customer.c.id,
            Activity.kind.in_(_kinds(kinds)),
            Activity.status.in_(list(self.happened if statuses is None else statuses)),
            Activity.occurred_at <= self.ago(until),
        ]
        if isinstance(within, LocalDays):
            conditions.append(Activity.occurred_at >= self.local_midnight(1 - within.days))
        elif within is not None:
            conditions.append(Activity.occurred_at > self.ago(within))
        return conditions

    def count(
        self,
        kinds: str | Iterable[str],
        within: dt.timedelta | LocalDays | None = None,
        *,
        until: dt.timedelta = dt.timedelta(0),
        statuses: Iterable[str] | None = None,
    ) -> ColumnElement[int]:
        """Activities of ``kinds`` in ``(as_of - within, as_of - until]``; all before ``as_of`` when
        ``within`` is ``None``."""
        where = self._activities(kinds, within, until, statuses)
        return select(func.count(Activity.id)).where(*where).scalar_subquery()

    def total(
        self,
        kinds: str | Iterable[str],
        within: dt.timedelta | LocalDays | None = None,
        *,
        statuses: Iterable[str] | None = None,
    ) -> ColumnElement[Any]:
        """Sum of ``amount`` of those activities (0 when none)."""
        where = self._activities(kinds, within, dt.timedelta(0), statuses)
        return select(func.coalesce(func.sum(Activity.amount), 0)).where(*where).scalar_subquery()

    def has(
        self,
        kinds: str | Iterable[str],
        within: dt.timedelta | LocalDays | None = None,
        *,
        statuses: Iterable[str] | None = None,
    ) -> ColumnElement[bool]:
        """Whether any such activity exists."""
        return exists_where(*self._activities(kinds, within, dt.timedelta(0), statuses))

    def aggregate(
        self,
        kinds: str | Iterable[str],
        within: dt.timedelta | LocalDays | None,
        build: Callable[[Table], ColumnElement[Any]],
        *,
        statuses: Iterable[str] | None = None,
    ) -> ColumnElement[Any]:
        """``build(activities)``, an aggregate expression, over the activities of ``kinds`` in ``(as_of - within,
        as_of]``.

        For several figures of one window, such as two counts split at :meth:`ago` and compared: the rows are
        read once, where a :meth:`count` each reads them once per count.
        """
        where = self._activities(kinds, within, dt.timedelta(0), statuses)
        activities: Table = Activity.__table__
        return select(build(activities)).where(*where).scalar_subquery()

    def last(self, kinds: str | Iterable[str], *, statuses: Iterable[str] | None = None) -> ColumnElement[dt.datetime]:
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

    # -- the customer's own cadence -------------------------------------------------------------------

    def cadence(
        self,
        kinds: str | Iterable[str],
        *,
        last: int = 5,
        min_events: int = 3,
        fallback: dt.timedelta = dt.timedelta(days=30),
        category: str | None = None,
        category_key: str = "category",
        statuses: Iterable[str] | None = None,
    ) -> ColumnElement[float]:
        """The customer's usual interval, in days, between activities of ``kinds`` up to ``as_of``: the
        median of the last ``last`` gaps between their event days (see :func:`cadence_table`), or
        ``fallback`` (in days) when they have fewer than ``min_events`` event days, or none. ``category``
        counts only the activities whose ``data[category_key]`` is that value (a salon's service category).
        """
        table = self._cadence(kinds, last, min_events, fallback, category, category_key, statuses)
        found = select(table.c.cadence_days).where(table.c.customer_id == self.customer.c.id).scalar_subquery()
        return func.coalesce(found, literal(_days(fallback), Float()))

    def overdue(
        self,
        kinds: str | Iterable[str],
        *,
        by_days: float | None = None,
        by_pct: float | None = None,
        last: int = 5,
        min_events: int = 3,
        fallback: dt.timedelta = dt.timedelta(days=30),
        category: str | None = None,
        category_key: str = "category",
        statuses: Iterable[str] | None = None,
    ) -> ColumnElement[bool]:
        """The customer is overdue against their own :meth:`cadence`: the whole calendar days from their
        last event day to ``as_of``'s day exceed ``cadence + by_days``, or ``cadence * (1 + by_pct / 100)``
        (both given: both must hold; neither: past the cadence itself). A customer without any such
        activity is never overdue (nothing to be late for: look for them with ``~q.has(kinds)``).

        One uncorrelated statement for all customers (``customer IN (SELECT ...)``), like :meth:`among`.
        """
        if by_days is None and by_pct is None:
            by_days = 0
        table = self._cadence(kinds, last, min_events, fallback, category, category_key, statuses)
        late = self._as_of_day() - table.c.last_day
        conditions = []
        if by_days is not None:
            conditions.append(late > table.c.cadence_days + literal(float(by_days), Float()))
        if by_pct is not None:
            conditions.append(late * 100 > table.c.cadence_days * literal(100 + float(by_pct), Float()))
        return self.customer.c.id.in_(select(table.c.customer_id).where(*conditions))

    def _cadence(
        self,
        kinds: str | Iterable[str],
        last: int,
        min_events: int,
        fallback: dt.timedelta,
        category: str | None,
        category_key: str,
        statuses: Iterable[str] | None,
    ) -> Subquery:
        return cadence_table(
            kinds,
            as_of=self.as_of_param,
            last=last,
            min_events=min_events,
            fallback=fallback,
            category=category,
            category_key=category_key,
            statuses=self.happened if statuses is None else statuses,
        )

    # -- assembling ---------------------------------------------------------------------------------

    def stage_filter(self, stages: Iterable[str]) -> ColumnElement[bool]:
        names = list(stages)
        return or_(self.customer.c.stage.in_(names), self.customer.c.lifecycle.in_(names))

    def from_clause(self) -> Any:
        joined: Any = self.customer
        for table in self._joined.values():
            joined = joined.outerjoin(table, table.c.customer_id == self.customer.c.id)
        return joined


def _days(delta: dt.timedelta) -> float:
    return delta / dt.timedelta(days=1)


def cadence_table(
    kinds: str | Iterable[str],
    *,
    as_of: dt.datetime | ColumnElement[dt.datetime],
    last: int = 5,
    min_events: int = 3,
    fallback: dt.timedelta = dt.timedelta(days=30),
    category: str | None = None,
    by_category: bool = False,
    category_key: str = "category",
    statuses: Iterable[str] = HAPPENED,
) -> Subquery:
    """Every customer's usual interval between activities of ``kinds``, as a subquery for a report or a
    trigger: one statement for all customers (window functions, no per-customer work), the same numbers on
    SQLite and PostgreSQL.

    Columns: ``customer_id`` (and ``category`` with ``by_category``), ``events``, ``last_at`` (the latest
    such activity), ``last_day`` (its UTC day number, days since 1970-01-01) and ``cadence_days`` (a float).
    A customer without any such activity has no row.

    * An **event** is a UTC calendar day on which the customer had at least one activity of ``kinds`` with
      one of ``statuses`` (pass ``crm.registry.happened``, the statuses declared happened) at or before
      ``as_of``; two on one day are one event. ``category`` keeps the activities whose ``data[category_key]``
      is that text; ``by_category`` gives a row per customer and category instead (activities without
      the key are left out).
    * A **gap** is the number of days between two consecutive events. The cadence is the **median** of the
      last ``last`` gaps (the ``last + 1`` most recent events): the middle gap of an odd number, the mean of
      the two middle gaps of an even number, so 7, 9, 30, 8 gives 8.5.
    * With fewer than ``min_events`` events (at least 2: one gap needs two events) the cadence is
      ``fallback``, in days.
    """
    if last < 1:
        raise ValueError(f"cadence: last must be at least 1, got {last}")
    if min_events < 2:
        raise ValueError(f"cadence: min_events must be at least 2 (a gap needs two events), got {min_events}")
    activities: Table = Activity.__table__
    moment = literal(as_of, UTCDateTime()) if isinstance(as_of, dt.datetime) else as_of
    label = activities.c.data[category_key].as_string()
    conditions = [
        activities.c.kind.in_(_kinds(kinds)),
        activities.c.status.in_(list(statuses)),
        activities.c.occurred_at <= moment,
    ]
    if category is not None:
        conditions.append(label == category)
    if by_category:
        conditions.append(label.is_not(None))
    rows = (
        select(
            activities.c.customer_id,
            *([label.label("category")] if by_category else []),
            day_number(activities.c.occurred_at).label("day"),
            activities.c.occurred_at.label("at"),
        )
        .where(*conditions)
        .subquery()
    )

    def keys(table: Any) -> list[Any]:
        return [table.c.customer_id, *([table.c.category] if by_category else [])]

    # one row per event day (grouped by labelled columns: PostgreSQL would not match a repeated JSON path)
    days = select(*keys(rows), rows.c.day, func.max(rows.c.at).label("at")).group_by(*keys(rows), rows.c.day).subquery()
    part = keys(days)
    gaps = select(
        *part,
        days.c.day,
        days.c.at,
        (days.c.day - func.lag(days.c.day).over(partition_by=part, order_by=days.c.day)).label("gap"),
        func.count().over(partition_by=part).label("events"),
        func.row_number().over(partition_by=part, order_by=days.c.day.desc()).label("recent"),
    ).subquery()
    # the gap on the k-th most recent event joins it to the one before: the last N gaps are k = 1..N
    kept = (
        select(
            *keys(gaps),
            gaps.c.gap,
            func.row_number().over(partition_by=keys(gaps), order_by=gaps.c.gap).label("k"),
            func.count().over(partition_by=keys(gaps)).label("n"),
        )
        .where(gaps.c.recent <= last, gaps.c.gap.is_not(None))
        .subquery()
    )
    # the middle one (n odd) or two (n even): n <= 2k <= n + 2, integer arithmetic on both databases
    median = (
        select(*keys(kept), cast(func.avg(kept.c.gap), Float()).label("median"))
        .where(kept.c.k * 2 >= kept.c.n, kept.c.k * 2 <= kept.c.n + 2)
        .group_by(*keys(kept))
        .subquery()
    )
    latest = select(*keys(gaps), gaps.c.events, gaps.c.at, gaps.c.day).where(gaps.c.recent == 1).subquery()
    joined = latest.outerjoin(median, and_(*(a == b for a, b in zip(keys(latest), keys(median), strict=True))))
    cadence = case((latest.c.events >= min_events, median.c.median), else_=literal(_days(fallback), Float()))
    return (
        select(
            *keys(latest),
            latest.c.events,
            latest.c.at.label("last_at"),
            latest.c.day.label("last_day"),
            cast(cadence, Float()).label("cadence_days"),
        )
        .select_from(joined)
        .subquery()
    )


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
