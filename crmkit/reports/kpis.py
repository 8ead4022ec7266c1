"""The KPI library: the numbers a CRM is judged by, each computed by the database in one statement.

Every function takes a :class:`~crmkit.reports.ReportContext` (or anything with an ``engine``, such as
the CRM) and keyword parameters and returns a list of rows (plain dicts holding only
``str``, ``int``, ``float`` and ``None``), ready for a :class:`~crmkit.reports.spec.Report` to render.

Every function counts only the customers an actor reaches (``crmkit.access``), by a condition inside its
statement: the ``actor`` keyword's, else the context's (``ctx.actor``, who runs the report). Given the CRM
itself and no ``actor``, a KPI counts every customer, as the application would.

Conventions shared by all KPIs (see ``docs/kpis.md``):

* A period is half-open, ``[since, until)``, given as two ``datetime.date``; both are read as UTC midnight.
  Months are UTC calendar months keyed ``"YYYY-MM"``; the first and last month of a period are clipped to
  it.
* Rates are percentages (per 100). A rate whose denominator is zero is ``None``, never an error.
* Rates, money, hours and days are rounded to 2 decimals once, when the row leaves this module, so
  SQLite's floating point and PostgreSQL's exact numerics give the same numbers; the renderer only
  formats them.
* Anything that differs between SQLite and PostgreSQL goes through a function compiled per dialect
  (``crmkit.sql`` or the private ones below); lists of months or stages are sent as a
  ``VALUES`` list, so empty months and stages still get a row.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import (
    Date,
    Float,
    Integer,
    RowMapping,
    String,
    Table,
    and_,
    case,
    cast,
    exists,
    func,
    literal,
    not_,
    or_,
    select,
    union_all,
)
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import CTE, Subquery

from crmkit.access import Actor
from crmkit.db.functions import add_days, seconds_between, year_month
from crmkit.db.models import Activity, Customer, StageHistory, Target, User
from crmkit.db.types import UTCDateTime, utcnow
from crmkit.listing import customer_scope
from crmkit.specs import CORE_ACTIVITY_STATUSES
from crmkit.sql import values_cte

if TYPE_CHECKING:
    from crmkit.reports.spec import HasEngine as CRM  # a ReportContext, or anything with an engine

__all__ = [
    "ACTIVE_BASE",
    "CONTACT_KINDS",
    "CORE_STAGES",
    "GROUPINGS",
    "active_growth",
    "average_check",
    "cohort_retention",
    "customer_growth",
    "lead_processing_time",
    "leads_to_deals",
    "lifecycle_funnel",
    "plan_vs_fact",
    "stage_durations",
]

Row = dict[str, Any]

#: The core lifecycle stages, in funnel order. Plugin sub-stages roll up into these (``to_lifecycle``).
CORE_STAGES = ("lead", "active", "loyal", "lost")
#: Activity kinds that count as a contact in plan vs fact.
CONTACT_KINDS = ("call", "email", "sms", "chat")
#: Customer columns :func:`leads_to_deals` can group by.
GROUPINGS = ("source", "campaign", "branch")
#: The core's statuses that count as happened (a CRM's own list is ``crm.registry.happened``).
_CORE_HAPPENED = tuple(s.name for s in CORE_ACTIVITY_STATUSES if s.happened)
_NONE = "(none)"
_ALL = "(all)"
_UNASSIGNED = "(unassigned)"

_customers: Table = Customer.__table__
_history: Table = StageHistory.__table__
_activities: Table = Activity.__table__
_targets: Table = Target.__table__
_users: Table = User.__table__


# -- dialect-specific SQL (kept here so the KPIs stay portable) --------------------------------------


# -- shared helpers --------------------------------------------------------------------------------


def _check_period(since: dt.date, until: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """The period as aware UTC midnights; refuses datetimes, which would silently lose their time."""
    for name, value in (("since", since), ("until", until)):
        if isinstance(value, dt.datetime) or not isinstance(value, dt.date):
            raise TypeError(f"{name} must be a datetime.date, got {value!r}")
    if until < since:
        raise ValueError(f"until ({until}) is before since ({since})")
    return _midnight(since), _midnight(until)


def _midnight(day: dt.date) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)


def _at(moment: dt.datetime) -> ColumnElement[dt.datetime]:
    return literal(moment, UTCDateTime())


def _add_months(day: dt.date, months: int) -> dt.date:
    """The first day of the month ``months`` after ``day``'s month."""
    index = day.year * 12 + day.month - 1 + months
    return dt.date(index // 12, index % 12 + 1, 1)


def _calendar(since: dt.date, until: dt.date, period: Literal["month", "year"] = "month") -> list[tuple[str, dt.date]]:
    """``(key, first day)`` of every calendar month (or year) that intersects ``[since, until)``; an empty
    period (``since == until``) intersects none, whatever day of the month it is."""
    out: list[tuple[str, dt.date]] = []
    if until <= since:
        return out
    if period == "year":
        for year in range(since.year, until.year + 1):
            first = dt.date(year, 1, 1)
            if first < until:
                out.append((f"{year:04d}", first))
        return out
    first = since.replace(day=1)
    while first < until:
        out.append((f"{first.year:04d}-{first.month:02d}", first))
        first = _add_months(first, 1)
    return out


def _keys(name: str, calendar: Sequence[tuple[str, dt.date]]) -> CTE:
    """The keys of a period's months (or years) as the constant table ``name(idx, key)``, ``idx`` in order."""
    return values_cte(name, [("idx", Integer()), ("key", String())], [(i, k) for i, (k, _) in enumerate(calendar)])


def _pct(part: ColumnElement[Any], whole: ColumnElement[Any]) -> ColumnElement[float]:
    """``part * 100 / whole``, NULL when ``whole`` is 0. The cast keeps SQLite off integer division."""
    return cast(part, Float()) * 100 / func.nullif(whole, 0)


def _ratio(part: ColumnElement[Any], whole: ColumnElement[Any]) -> ColumnElement[float]:
    return cast(part, Float()) / func.nullif(whole, 0)


def _r2(value: Any) -> float | None:
    return None if value is None else round(float(value), 2)


def _int(value: Any) -> int:
    # PostgreSQL sums of counts come back as Decimal
    return int(value or 0)


def _iso(value: Any) -> str | None:
    return None if value is None else value.isoformat()


def _history_with_previous(reach: ColumnElement[bool] | None = None) -> Subquery:
    """Every history row (of the reached customers) with the lifecycle of the customer's previous row (NULL
    for the first)."""
    h = _history
    previous = func.lag(h.c.to_lifecycle).over(partition_by=h.c.customer_id, order_by=(h.c.at, h.c.id))
    return (
        select(h.c.id, h.c.customer_id, h.c.to_lifecycle, h.c.at, previous.label("previous"))
        .where(*_of_reached(h.c.customer_id, reach))
        .subquery("hp")
    )


def _entered_active() -> Subquery:
    """History rows where a customer entered ``active`` from outside it: created as active, or moved from
    lead or lost. Moves between sub-stages of active and downgrades from loyal are not entries."""
    hp = _history_with_previous()
    return (
        select(hp.c.customer_id, hp.c.at)
        .where(
            hp.c.to_lifecycle == "active",
            or_(hp.c.previous.is_(None), hp.c.previous.not_in(["active", "loyal"])),
        )
        .subquery("entered_active")
    )


def _created_in(start: dt.datetime, end: dt.datetime) -> ColumnElement[bool]:
    return and_(_customers.c.created_at >= _at(start), _customers.c.created_at < _at(end))


def _reach(crm: CRM, actor: Actor | None) -> ColumnElement[bool] | None:
    """The condition on ``crm_customers`` that keeps to the customers ``actor`` (else the context's actor)
    reaches; ``None`` for all of them."""
    if actor is None:
        actor = getattr(crm, "actor", None)
    return customer_scope(actor, _customers) if isinstance(actor, Actor) else None


def _of_reached(customer_id: ColumnElement[Any], reach: ColumnElement[bool] | None) -> list[ColumnElement[bool]]:
    """The condition that ``customer_id`` is a reached customer, as a list to splat into ``where``
    (empty when every customer is reached, so the statement stays as it was)."""
    if reach is None:
        return []
    return [customer_id.in_(select(_customers.c.id).where(reach))]


def _happened(crm: CRM) -> tuple[str, ...]:
    """The activity statuses that count as happened: the registry's (``done`` and those plugins declare), the
    core's for an object without a registry."""
    registry = getattr(crm, "registry", None)
    return tuple(registry.happened) if registry is not None else _CORE_HAPPENED


def _fetch(crm: CRM, query: Any) -> list[RowMapping]:
    with crm.engine.connect() as conn:
        return list(conn.execute(query).mappings())


# -- 1. leads to deals -------------------------------------------------------------------------------


def leads_to_deals(
    crm: CRM,
    *,
    since: dt.date,
    until: dt.date,
    by: Literal["source", "campaign", "branch"] = "source",
    actor: Actor | None = None,
) -> list[Row]:
    """Leads to deals per 100 leads, by source.

    The leads are the customers created in ``[since, until)`` (whatever their first stage: a customer
    created directly as ``active`` is a lead and a deal). A lead is a deal when its stage history has a
    row with ``to_lifecycle = 'active'`` dated before ``until``, so a past period's numbers do not change
    as its leads convert later. ``per_100 = deals * 100 / leads``. Rows are grouped by the customer's
    ``by`` column (``source``, ``campaign`` or ``branch``; NULL shown as ``"(none)"``), the most leads
    first (ties by name, ``"(none)"`` last), then a total row keyed ``"(all)"``, which is always present
    (0 leads and ``per_100`` None when there are no leads).

    Row keys: ``<by>`` (``source`` by default), ``leads``, ``deals``, ``per_100``.
    """
    if by not in GROUPINGS:
        raise ValueError(f"by must be one of {GROUPINGS}, got {by!r}")
    start, end = _check_period(since, until)
    reach = _reach(crm, actor)
    c = _customers
    is_deal = exists().where(
        _history.c.customer_id == c.c.id,
        _history.c.to_lifecycle == "active",
        _history.c.at < _at(end),
    )
    deal = case((is_deal, 1), else_=0)

    grouped = (
        select(c.c[by].label("key"), func.count().label("leads"), func.sum(deal).label("deals"))
        .where(_created_in(start, end), *([] if reach is None else [reach]))
        .group_by(c.c[by])
        .cte("grouped")
    )
    # the total adds up the groups: counting the leads again would run the EXISTS for each one twice
    groups = select(grouped.c.key, literal(0).label("is_total"), grouped.c.leads, grouped.c.deals)
    total = select(
        literal(None, String()).label("key"),
        literal(1).label("is_total"),
        func.coalesce(func.sum(grouped.c.leads), 0).label("leads"),
        func.coalesce(func.sum(grouped.c.deals), 0).label("deals"),
    )
    both = union_all(groups, total).subquery("counts")
    query = select(both, _pct(both.c.deals, both.c.leads).label("per_100"))
    rows = [
        {
            by: _ALL if r["is_total"] else (_NONE if r["key"] is None else r["key"]),
            "leads": _int(r["leads"]),
            "deals": _int(r["deals"]),
            "per_100": _r2(r["per_100"]),
            "_total": r["is_total"],
        }
        for r in _fetch(crm, query)
    ]
    # a handful of group rows: sorted here so the order does not depend on the database's collation
    rows.sort(key=lambda r: (r["_total"], -r["leads"], r[by] == _NONE, r[by]))
    for r in rows:
        del r["_total"]
    return rows


# -- 2. average check --------------------------------------------------------------------------------


def average_check(
    crm: CRM,
    *,
    since: dt.date,
    until: dt.date,
    period: Literal["month", "year"] = "month",
    currency: str | None = None,
    actor: Actor | None = None,
) -> list[Row]:
    """Average check per calendar month (or year).

    Counts ``purchase`` activities with status ``done`` whose ``occurred_at`` is in ``[since, until)``,
    grouped by the UTC calendar month (``period="month"``, key ``"YYYY-MM"``) or year (``"YYYY"``) of
    ``occurred_at``: ``revenue`` is the sum of ``amount``, ``purchases`` the number of purchases,
    ``paying_customers`` the number of distinct customers who bought; ``average_check = revenue /
    paying_customers`` (what a paying customer spent in the period, on average) and ``avg_ticket =
    revenue / purchases`` (the mean purchase). Every month (year) of the period has a row; one without
    purchases has zeros and ``None`` averages. Amounts are added as they are: one currency is assumed,
    so pass ``currency="EUR"`` to count only purchases in that currency when several are recorded.

    Row keys: ``period``, ``revenue``, ``purchases``, ``paying_customers``, ``average_check``,
    ``avg_ticket``.
    """
    if period not in ("month", "year"):
        raise ValueError(f"period must be 'month' or 'year', got {period!r}")
    start, end = _check_period(since, until)
    calendar = _calendar(since, until, period)
    if not calendar:
        return []
    periods = _keys("periods", calendar)
    a = _activities
    key: ColumnElement[Any] = year_month(a.c.occurred_at)
    if period == "year":
        key = func.substr(key, 1, 4)
    conditions = [
        a.c.kind == "purchase",
        a.c.status.in_(_happened(crm)),
        a.c.occurred_at >= _at(start),
        a.c.occurred_at < _at(end),
    ]
    if currency is not None:
        conditions.append(a.c.currency == currency)
    conditions += _of_reached(a.c.customer_id, _reach(crm, actor))
    sums = (
        select(
            key.label("key"),
            func.sum(a.c.amount).label("revenue"),
            func.count(a.c.id).label("purchases"),
            func.count(a.c.customer_id.distinct()).label("paying"),
        )
        .where(*conditions)
        .group_by(key)
        .subquery("sums")
    )
    query = (
        select(
            periods.c.key,
            sums.c.revenue,
            sums.c.purchases,
            sums.c.paying,
            _ratio(sums.c.revenue, sums.c.paying).label("average_check"),
            _ratio(sums.c.revenue, sums.c.purchases).label("avg_ticket"),
        )
        .select_from(periods.outerjoin(sums, sums.c.key == periods.c.key))
        .order_by(periods.c.idx)
    )
    return [
        {
            "period": r["key"],
            "revenue": _r2(r["revenue"] or 0),
            "purchases": _int(r["purchases"]),
            "paying_customers": _int(r["paying"]),
            "average_check": _r2(r["average_check"]),
            "avg_ticket": _r2(r["avg_ticket"]),
        }
        for r in _fetch(crm, query)
    ]


# -- 3. customer growth ------------------------------------------------------------------------------


def customer_growth(crm: CRM, *, since: dt.date, until: dt.date, actor: Actor | None = None) -> list[Row]:
    """Customer-base growth per calendar month.

    For every UTC calendar month that intersects ``[since, until)`` (the first and last months clipped to
    the period): ``start`` is the number of customers created before the month began, ``new`` those
    created in the month, ``end = start + new`` those created before it ended, and ``growth_pct = (end -
    start) * 100 / start`` (``None`` when ``start`` is 0). Customers are the rows of ``crm_customers``
    today: a merged duplicate is deleted, so it is not counted in any month, and nobody leaves the base
    by becoming ``lost``.

    Row keys: ``month``, ``start``, ``new``, ``end``, ``growth_pct``.
    """
    start, end = _check_period(since, until)
    calendar = _calendar(since, until)
    if not calendar:
        return []
    months = _keys("months", calendar)
    c = _customers
    key = year_month(c.c.created_at)
    reach = _reach(crm, actor)
    reached = [] if reach is None else [reach]
    new = (
        select(key.label("key"), func.count().label("joined"), literal(0).label("left"))
        .where(_created_in(start, end), *reached)
        .group_by(key)
        .subquery("moves")
    )
    before = select(func.count()).select_from(c).where(c.c.created_at < _at(start), *reached).scalar_subquery()
    return [
        {"month": r["month"], "start": r["start"], "new": r["joined"], "end": r["end"], "growth_pct": r["growth_pct"]}
        for r in _base_per_month(crm, months, new, before)
    ]


def _base_per_month(crm: CRM, months: CTE, moves: Subquery, before: Any) -> list[Row]:
    """The size of a base month by month: ``before`` at the start of the period, then per month (keyed
    like ``months``) the ``joined`` and ``left`` of ``moves`` (a subquery keyed ``key``), summed as they
    go; the rows of :func:`customer_growth` and :func:`active_growth`."""
    ins, outs = func.coalesce(moves.c.joined, 0), func.coalesce(moves.c.left, 0)
    running = (before + func.sum(ins - outs).over(order_by=months.c.idx)).label("end")
    per_month = (
        select(months.c.idx, months.c.key, ins.label("joined"), outs.label("left"), running)
        .select_from(months.outerjoin(moves, moves.c.key == months.c.key))
        .subquery("per_month")
    )
    opening = per_month.c.end - per_month.c.joined + per_month.c.left
    query = select(
        per_month.c.key,
        opening.label("start"),
        per_month.c.joined,
        per_month.c.left,
        per_month.c.end,
        _pct(per_month.c.end - opening, opening).label("growth_pct"),
    ).order_by(per_month.c.idx)
    return [
        {
            "month": r["key"],
            "start": _int(r["start"]),
            "joined": _int(r["joined"]),
            "left": _int(r["left"]),
            "end": _int(r["end"]),
            "growth_pct": _r2(r["growth_pct"]),
        }
        for r in _fetch(crm, query)
    ]


#: The lifecycles of the active base: a customer who buys or uses the service.
ACTIVE_BASE = ("active", "loyal")


def active_growth(crm: CRM, *, since: dt.date, until: dt.date, actor: Actor | None = None) -> list[Row]:
    """Growth of the active base per calendar month.

    The active base at a moment is the customers whose latest stage move before it put them in an active
    or loyal stage (``ACTIVE_BASE``; a vertical's sub-stages count with their core stage). For every UTC
    calendar month that intersects ``[since, until)`` (the first and last months clipped to the period):
    ``start`` is the base when the month began, ``joined`` the moves into the base in the month (created
    active, or moved there from lead or lost), ``left`` the moves out of it (to lost, or back to a lead
    stage), ``end = start + joined - left`` the base when it ended, and ``growth_pct = (end - start) * 100
    / start`` (``None`` when ``start`` is 0). A customer who joins and leaves twice in a month counts twice
    in each; moves between active and loyal are neither.

    Row keys: ``month``, ``start``, ``joined``, ``left``, ``end``, ``growth_pct``.
    """
    start, end = _check_period(since, until)
    calendar = _calendar(since, until)
    if not calendar:
        return []
    months = _keys("months", calendar)
    hp = _history_with_previous(_reach(crm, actor))
    inside = hp.c.to_lifecycle.in_(ACTIVE_BASE)
    was_inside = and_(hp.c.previous.is_not(None), hp.c.previous.in_(ACTIVE_BASE))
    joined = and_(inside, not_(was_inside))
    left = and_(not_(inside), was_inside)
    step = case((joined, 1), (left, -1), else_=0)
    key = year_month(hp.c.at)
    moves = (
        select(
            key.label("key"),
            func.sum(case((joined, 1), else_=0)).label("joined"),
            func.sum(case((left, 1), else_=0)).label("left"),
        )
        .where(hp.c.at >= _at(start), hp.c.at < _at(end))
        .group_by(key)
        .subquery("moves")
    )
    before = select(func.coalesce(func.sum(step), 0)).where(hp.c.at < _at(start)).scalar_subquery()
    return _base_per_month(crm, months, moves, before)


# -- 4. lead processing time -------------------------------------------------------------------------


def lead_processing_time(crm: CRM, *, since: dt.date, until: dt.date, actor: Actor | None = None) -> list[Row]:
    """Average time to process a lead, per manager.

    The leads are the customers created in ``[since, until)``, grouped by their owner today (``owner_id``
    and the user's name; no owner is ``owner_id`` None, owner ``"(unassigned)"``). A lead is contacted
    when it has an activity with ``direction = 'outbound'`` and status ``done`` at or after its
    ``created_at``, of any kind and at any time (a contact after ``until`` counts). ``avg_hours`` is the
    mean, over contacted leads only, of the hours from ``created_at`` to the first such activity
    (``None`` when none was contacted); uncontacted leads count in ``leads`` only. Owners without leads
    in the period have no row; rows are ordered by ``owner_id``, unassigned last.

    Row keys: ``owner_id``, ``owner``, ``leads``, ``contacted``, ``avg_hours``.
    """
    start, end = _check_period(since, until)
    c, a, u = _customers, _activities, _users
    first_contact = (
        select(func.min(a.c.occurred_at))
        .where(
            a.c.customer_id == c.c.id,
            a.c.direction == "outbound",
            a.c.status.in_(_happened(crm)),
            a.c.occurred_at >= c.c.created_at,
        )
        .scalar_subquery()
    )
    reach = _reach(crm, actor)
    leads = (
        select(c.c.owner_id, c.c.created_at, first_contact.label("first_contact"))
        .where(_created_in(start, end), *([] if reach is None else [reach]))
        .subquery("leads")
    )
    query = (
        select(
            leads.c.owner_id,
            u.c.name,
            func.count().label("leads"),
            func.count(leads.c.first_contact).label("contacted"),
            (func.avg(seconds_between(leads.c.created_at, leads.c.first_contact)) / 3600).label("avg_hours"),
        )
        .select_from(leads.outerjoin(u, u.c.id == leads.c.owner_id))
        .group_by(leads.c.owner_id, u.c.name)
        .order_by(leads.c.owner_id.is_(None), leads.c.owner_id)
    )
    return [
        {
            "owner_id": r["owner_id"],
            "owner": _UNASSIGNED if r["owner_id"] is None else r["name"],
            "leads": _int(r["leads"]),
            "contacted": _int(r["contacted"]),
            "avg_hours": _r2(r["avg_hours"]),
        }
        for r in _fetch(crm, query)
    ]


# -- 5. plan vs fact ---------------------------------------------------------------------------------


def plan_vs_fact(crm: CRM, *, since: dt.date, until: dt.date, actor: Actor | None = None) -> list[Row]:
    """Plan vs fact per member of staff.

    One row per target (``crm_targets``) whose own period ``[period_start, period_end]`` (inclusive dates)
    overlaps ``[since, until)``. The fact is counted over the target's own period, from ``period_start``
    00:00 UTC up to the end of ``period_end``, whatever ``since`` and ``until`` are:

    * ``contacts``: activities owned by the user, ``direction = 'outbound'``, status ``done``, of kind
      ``call``, ``email``, ``sms`` or ``chat``;
    * ``meetings``: activities owned by the user, kind ``meeting``, status ``done``;
    * ``deals``: distinct customers owned by the user today who entered ``active`` in the period — a
      history row with ``to_lifecycle = 'active'`` whose previous row (by ``at``, ``id``) is not
      ``active`` or ``loyal``: created as active, or moved from lead or lost (a win-back). Moves between
      sub-stages of active and loyal-to-active downgrades are not deals.

    ``progress_pct = done * 100 / planned`` (``None`` when ``planned`` is 0). Rows are ordered by user,
    period start, then metric (contacts, meetings, deals).

    Row keys: ``user_id``, ``user``, ``metric``, ``period_start``, ``period_end`` (ISO dates),
    ``planned``, ``done``, ``progress_pct``.
    """
    _check_period(since, until)
    reach = _reach(crm, actor)
    t, a, c, u = _targets, _activities, _customers, _users
    chosen = (
        select(t.c.id, t.c.user_id, t.c.metric, t.c.period_start, t.c.period_end, t.c.planned)
        .where(t.c.period_start < literal(until, Date()), t.c.period_end >= literal(since, Date()))
        .cte("chosen")
    )

    def in_target(moment: ColumnElement[Any]) -> ColumnElement[bool]:
        return and_(moment >= chosen.c.period_start, moment < add_days(chosen.c.period_end, 1))

    def activity_fact(metric: str, *conditions: ColumnElement[bool]) -> Any:
        joined = chosen.join(
            a, and_(a.c.owner_id == chosen.c.user_id, a.c.status.in_(_happened(crm)), in_target(a.c.occurred_at))
        )
        return (
            select(chosen.c.id.label("target_id"), func.count(a.c.id).label("n"))
            .select_from(joined)
            .where(chosen.c.metric == metric, *conditions, *_of_reached(a.c.customer_id, reach))
            .group_by(chosen.c.id)
        )

    contacts = activity_fact("contacts", a.c.direction == "outbound", a.c.kind.in_(CONTACT_KINDS))
    meetings = activity_fact("meetings", a.c.kind == "meeting")
    entered = _entered_active()
    deals = (
        select(chosen.c.id.label("target_id"), func.count(entered.c.customer_id.distinct()).label("n"))
        .select_from(
            chosen.join(c, c.c.owner_id == chosen.c.user_id).join(
                entered, and_(entered.c.customer_id == c.c.id, in_target(entered.c.at))
            )
        )
        .where(chosen.c.metric == "deals", *([] if reach is None else [reach]))
        .group_by(chosen.c.id)
    )
    facts = union_all(contacts, meetings, deals).subquery("facts")
    done = func.coalesce(facts.c.n, 0)
    metric_order = case({m: i for i, m in enumerate(("contacts", "meetings", "deals"))}, value=chosen.c.metric)
    query = (
        select(
            chosen.c.user_id,
            u.c.name,
            chosen.c.metric,
            chosen.c.period_start,
            chosen.c.period_end,
            chosen.c.planned,
            done.label("done"),
            _pct(done, chosen.c.planned).label("progress_pct"),
        )
        .select_from(chosen.join(u, u.c.id == chosen.c.user_id).outerjoin(facts, facts.c.target_id == chosen.c.id))
        .order_by(chosen.c.user_id, chosen.c.period_start, metric_order)
    )
    return [
        {
            "user_id": r["user_id"],
            "user": r["name"],
            "metric": r["metric"],
            "period_start": _iso(r["period_start"]),
            "period_end": _iso(r["period_end"]),
            "planned": _int(r["planned"]),
            "done": _int(r["done"]),
            "progress_pct": _r2(r["progress_pct"]),
        }
        for r in _fetch(crm, query)
    ]


# -- 6. lifecycle funnel and time in stage -------------------------------------------------------------


def _stages() -> CTE:
    return values_cte("stages", [("idx", Integer()), ("stage", String())], list(enumerate(CORE_STAGES)))


def lifecycle_funnel(crm: CRM, *, since: dt.date, until: dt.date, actor: Actor | None = None) -> list[Row]:
    """Lifecycle funnel of a cohort.

    The cohort is the customers created in ``[since, until)``. For each core stage, in the order lead,
    active, loyal, lost, ``customers`` is the number of cohort members whose stage history has a row with
    that ``to_lifecycle`` at any time up to now (sub-stages count as their core stage; a customer created
    directly as active never reached ``lead``), and ``pct = customers * 100 / cohort size`` (``None``
    for an empty cohort). All four stages always have a row.

    Row keys: ``stage``, ``customers``, ``pct``.
    """
    start, end = _check_period(since, until)
    c, h = _customers, _history
    stages = _stages()
    reach = _reach(crm, actor)
    cohort = [_created_in(start, end), *([] if reach is None else [reach])]
    size = select(func.count()).select_from(c).where(*cohort).scalar_subquery()
    reached = (
        select(h.c.to_lifecycle, func.count(h.c.customer_id.distinct()).label("n"))
        .select_from(h.join(c, c.c.id == h.c.customer_id))
        .where(*cohort)
        .group_by(h.c.to_lifecycle)
        .subquery("reached")
    )
    n = func.coalesce(reached.c.n, 0)
    query = (
        select(stages.c.stage, n.label("customers"), _pct(n, size).label("pct"))
        .select_from(stages.outerjoin(reached, reached.c.to_lifecycle == stages.c.stage))
        .order_by(stages.c.idx)
    )
    return [{"stage": r["stage"], "customers": _int(r["customers"]), "pct": _r2(r["pct"])} for r in _fetch(crm, query)]


def stage_durations(crm: CRM, *, since: dt.date, until: dt.date, actor: Actor | None = None) -> list[Row]:
    """Time spent in each core stage.

    A stay in a core stage begins when a customer enters it (a history row whose ``to_lifecycle`` differs
    from the customer's previous row's, or the first row) and ends at the customer's next such entry, so
    consecutive rows within one core stage (moves between its sub-stages) are one stay. Only completed
    stays count, and only those that began in ``[since, until)`` (they may end later). For each core
    stage, in the order lead, active, loyal, lost: ``stays`` is their number and ``avg_days`` their mean
    length in days (``None`` when there are none). All four stages always have a row.

    Row keys: ``stage``, ``stays``, ``avg_days``.
    """
    start, end = _check_period(since, until)
    stages = _stages()
    hp = _history_with_previous(_reach(crm, actor))
    entries = (
        select(hp.c.id, hp.c.customer_id, hp.c.to_lifecycle, hp.c.at)
        .where(or_(hp.c.previous.is_(None), hp.c.previous != hp.c.to_lifecycle))
        .subquery("entries")
    )
    ended = func.lead(entries.c.at).over(partition_by=entries.c.customer_id, order_by=(entries.c.at, entries.c.id))
    stays = select(entries.c.to_lifecycle, entries.c.at, ended.label("ended")).subquery("stays")
    lengths = (
        select(
            stays.c.to_lifecycle,
            func.count().label("stays"),
            (func.avg(seconds_between(stays.c.at, stays.c.ended)) / 86400).label("avg_days"),
        )
        .where(stays.c.ended.is_not(None), stays.c.at >= _at(start), stays.c.at < _at(end))
        .group_by(stays.c.to_lifecycle)
        .subquery("lengths")
    )
    query = (
        select(stages.c.stage, lengths.c.stays, lengths.c.avg_days)
        .select_from(stages.outerjoin(lengths, lengths.c.to_lifecycle == stages.c.stage))
        .order_by(stages.c.idx)
    )
    return [
        {"stage": r["stage"], "stays": _int(r["stays"]), "avg_days": _r2(r["avg_days"])} for r in _fetch(crm, query)
    ]


# -- 7. cohort retention -----------------------------------------------------------------------------


def _lost_stays(members: CTE) -> Subquery:
    """The members' stays in ``lost``, counted by cohort and by the months (``'YYYY-MM'``) they began and
    ended in; ``ended`` is NULL for a stay not over. A stay runs from a history row to ``lost`` up to the
    customer's next row (by ``at``, ``id``)."""
    h, n = _history, _history.alias("next_row")
    until = (
        select(func.min(n.c.at))
        .where(n.c.customer_id == h.c.customer_id, n.c.at >= h.c.at, or_(n.c.at > h.c.at, n.c.id > h.c.id))
        .scalar_subquery()
    )
    stays = (
        select(members.c.cohort, h.c.at, until.label("until"))
        .select_from(members.join(h, h.c.customer_id == members.c.customer_id))
        .where(h.c.to_lifecycle == "lost")
        .subquery("stays")
    )
    began, ended = year_month(stays.c.at), year_month(stays.c.until)
    return (
        select(stays.c.cohort, began.label("began"), ended.label("ended"), func.count().label("n"))
        .group_by(stays.c.cohort, began, ended)
        .subquery("lost")
    )


def cohort_retention(
    crm: CRM,
    *,
    since: dt.date,
    until: dt.date,
    months: int = 6,
    as_of: dt.datetime | None = None,
    actor: Actor | None = None,
) -> list[Row]:
    """Monthly cohort retention.

    A customer's cohort is the UTC calendar month of their first history row with ``to_lifecycle =
    'active'``; cohorts whose first-active time is in ``[since, until)`` are reported. For each cohort
    and month offset ``month = k`` (0 = the cohort's own month, up to ``months - 1``), the customer is
    retained when their lifecycle at the end of month ``k`` — the ``to_lifecycle`` of their latest history
    row dated before the first day of month ``k + 1`` — is not ``lost``; a customer who was lost and won
    back by then is retained. Only completed months are shown: an offset whose month ends after ``as_of``
    (now, by default) has no row, so a cohort younger than a month has none at all. ``size`` is the
    cohort's number of customers, ``retention_pct = retained * 100 / size`` and ``churn_pct = (size -
    retained) * 100 / size``. Rows are ordered by cohort, then offset.

    Row keys: ``cohort``, ``size``, ``month``, ``retained``, ``retention_pct``, ``churn_pct``.
    """
    start, end = _check_period(since, until)
    if months < 1:
        raise ValueError(f"months must be at least 1, got {months}")
    as_of = as_of or utcnow()
    if as_of.tzinfo is None:
        raise ValueError("as_of must be an aware datetime")
    # (cohort, offset, the month after the offset's month): the offset's month ends when that one begins
    grid = [
        (key, k, f"{after.year:04d}-{after.month:02d}")
        for key, first in _calendar(since, until)
        for k in range(months)
        if _midnight(after := _add_months(first, k + 1)) <= as_of
    ]
    if not grid:
        return []
    offsets = values_cte("offsets", [("cohort", String()), ("k", Integer()), ("after", String())], grid)
    h = _history
    first_at = func.min(h.c.at)
    members = (
        select(h.c.customer_id, year_month(first_at).label("cohort"))
        .where(h.c.to_lifecycle == "active", *_of_reached(h.c.customer_id, _reach(crm, actor)))
        .group_by(h.c.customer_id)
        .having(and_(first_at >= _at(start), first_at < _at(end)))
        .cte("members")
    )
    sizes = select(members.c.cohort, func.count().label("size")).group_by(members.c.cohort).subquery("sizes")
    # A member is lost at a month end when the history row in force then (the latest before it) is 'lost',
    # i.e. the month end falls in a stay in lost: after the stay began and no later than it ended. Month
    # ends are midnights starting a month, so that compares month keys: the stay began in a month before
    # ``after`` and ended in ``after`` or later. Matching the few lost stays, bucketed by month, to the
    # month ends is far cheaper than reading every member's stage at every month end.
    lost = _lost_stays(members)
    churned = (
        select(offsets.c.cohort, offsets.c.k, func.sum(lost.c.n).label("n"))
        .select_from(
            lost.join(
                offsets,
                and_(
                    offsets.c.cohort == lost.c.cohort,
                    lost.c.began < offsets.c.after,
                    or_(lost.c.ended.is_(None), lost.c.ended >= offsets.c.after),
                ),
            )
        )
        .group_by(offsets.c.cohort, offsets.c.k)
        .subquery("churned")
    )
    size = sizes.c.size
    retained = size - func.coalesce(churned.c.n, 0)
    query = select(
        offsets.c.cohort,
        offsets.c.k,
        size,
        retained.label("retained"),
        _pct(retained, size).label("retention_pct"),
        _pct(size - retained, size).label("churn_pct"),
    ).select_from(
        offsets.join(sizes, sizes.c.cohort == offsets.c.cohort).outerjoin(
            churned, and_(churned.c.cohort == offsets.c.cohort, churned.c.k == offsets.c.k)
        )
    )
    rows = [
        {
            "cohort": r["cohort"],
            "size": _int(r["size"]),
            "month": _int(r["k"]),
            "retained": _int(r["retained"]),
            "retention_pct": _r2(r["retention_pct"]),
            "churn_pct": _r2(r["churn_pct"]),
        }
        for r in _fetch(crm, query)
    ]
    # 'YYYY-MM' keys sort the same everywhere in Python; the databases' collations need not agree
    rows.sort(key=lambda r: (r["cohort"], r["month"]))
    return rows
