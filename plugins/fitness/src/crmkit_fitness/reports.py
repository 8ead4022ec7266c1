"""The fitness reports: renewals, attendance, trainer load, members at risk, trigger effectiveness.

Every number is computed by the database in one statement per report (set-based, no loop over members);
Python only shapes the handful of aggregated rows. Each counts only the members the user running it
reaches (``ctx.reaches``, ``ctx.customer_scope``: a condition in the statement), and marks the columns that
show a member's personal data ``personal``, so a user without the right to read it sees them empty.
Conventions are the core KPI library's (``crmkit.reports``): a period is ``[since, until)`` of UTC dates,
the default is the last twelve months, rates are percentages rounded to 2 decimals once, a rate over
nothing is ``None``, and anything SQLite and PostgreSQL spell differently goes through ``crmkit.sql``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from sqlalchemy import (
    Date,
    Integer,
    String,
    Table,
    and_,
    case,
    exists,
    func,
    literal,
    or_,
    select,
    union_all,
)

from crmkit import ValidationError
from crmkit.db import Activity, Customer, User
from crmkit.reports import (
    EFFECTIVENESS_CHARTS,
    EFFECTIVENESS_COLUMNS,
    EFFECTIVENESS_PARAMS,
    PERIOD,
    Chart,
    Column,
    Param,
    Report,
    ReportContext,
    effectiveness_rows,
)
from crmkit.sql import day_number, hour_of_day, iso_weekday, percent, utc_midnight, values_cte, year_month
from crmkit_fitness.models import GymClass, Membership, Trainer

Row = dict[str, Any]

WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_UNASSIGNED = "(unassigned)"
#: The lifecycles of a member: ``active`` (adaptation, active, at risk) and ``loyal``.
MEMBER_LIFECYCLES = ("active", "loyal")
_EPOCH = dt.date(1970, 1, 1)

_activities: Table = Activity.__table__
_customers: Table = Customer.__table__
_users: Table = User.__table__
_memberships: Table = Membership.__table__
_trainers: Table = Trainer.__table__
_classes: Table = GymClass.__table__


# -- shared helpers -------------------------------------------------------------------------------------


def _day(value: dt.date) -> int:
    return (value - _EPOCH).days


def _r2(value: Any) -> float | None:
    return None if value is None else round(float(value), 2)


def _int(value: Any) -> int:
    return int(value or 0)  # PostgreSQL sums of counts are Decimal


def _check(report: str, params: Mapping[str, Any], *names: str) -> None:
    """Refuse a period that ends before it starts and negative counts, naming each problem."""
    errors: dict[str, list[str]] = {}
    if "since" in params and params["until"] < params["since"]:
        errors["until"] = [f"must not be before since ({params['since']})"]
    for name in names:
        if params[name] < 0:
            errors[name] = ["must be 0 or more"]
    if errors:
        raise ValidationError(errors, f"invalid parameters for report {report!r}")


def _months(since: dt.date, until: dt.date) -> list[str]:
    """``'YYYY-MM'`` of every calendar month that intersects ``[since, until)``: none for an empty period
    (``since == until``), whatever day of the month it is."""
    keys: list[str] = []
    if until <= since:
        return keys
    index = since.year * 12 + since.month - 1
    while dt.date(index // 12, index % 12 + 1, 1) < until:
        keys.append(f"{index // 12:04d}-{index % 12 + 1:02d}")
        index += 1
    return keys


def _today(now: dt.datetime) -> dt.date:
    """The default ``as_of``: the CRM's "now" (UTC), as a date."""
    return now.date()


# -- fitness.renewal_rate -----------------------------------------------------------------------------


def renewal_rate(ctx: ReportContext, params: Mapping[str, Any]) -> list[Row]:
    """Renewals by the month memberships end in.

    For every UTC calendar month of ``[since, until)``, the memberships (not cancelled) whose ``ends_on``
    falls in the month. One is **renewed** when the same customer has another membership, not cancelled,
    that starts after it started and no later than ``days`` days after its end (an early renewal or an
    upgrade counts; a return after a longer gap does not). One not renewed is **pending** while a renewal
    could still come: its end plus ``days`` is on or after ``as_of``. ``renewal_pct = renewed * 100 /
    (ending - pending)``, the share of decided memberships that renewed (``None`` when none is decided),
    so a month in progress is not shown as a collapse. Every month of the period has a row.
    """
    _check("fitness.renewal_rate", params, "days")
    since, until, days = params["since"], params["until"], params["days"]
    keys = _months(since, until)
    if not keys:
        return []
    m, n = _memberships, _memberships.alias("later")
    renewed = exists().where(
        n.c.customer_id == m.c.customer_id,
        n.c.id != m.c.id,
        n.c.status != "cancelled",
        n.c.starts_on > m.c.starts_on,
        day_number(n.c.starts_on) <= day_number(m.c.ends_on) + days,
    )
    is_renewed = case((renewed, 1), else_=0).label("renewed")
    is_open = case((day_number(m.c.ends_on) + days >= _day(params["as_of"]), 1), else_=0).label("open")
    key = year_month(m.c.ends_on).label("key")
    # grouped by the outcome first, so the renewal EXISTS runs once per membership; summing "renewed" and
    # "not renewed but open" straight from it would repeat the subquery in both sums
    outcomes = (
        select(key, is_renewed, is_open, func.count().label("n"))
        .where(
            m.c.status != "cancelled",
            m.c.ends_on >= literal(since, Date()),
            m.c.ends_on < literal(until, Date()),
            ctx.reaches(m.c.customer_id),
        )
        .group_by(key, is_renewed, is_open)
        .subquery("outcomes")
    )
    o = outcomes.c
    ending = (
        select(
            o.key,
            func.sum(o.n).label("ending"),
            func.sum(case((o.renewed == 1, o.n), else_=0)).label("renewed"),
            func.sum(case((and_(o.renewed == 0, o.open == 1), o.n), else_=0)).label("pending"),
        )
        .group_by(o.key)
        .subquery("ending")
    )
    months_cte = values_cte("months", [("idx", Integer()), ("key", String())], list(enumerate(keys)))
    total = func.coalesce(ending.c.ending, 0)
    done = func.coalesce(ending.c.renewed, 0)
    pending = func.coalesce(ending.c.pending, 0)
    query = (
        select(
            months_cte.c.key,
            total.label("ending"),
            done.label("renewed"),
            pending.label("pending"),
            percent(done, total - pending).label("renewal_pct"),
        )
        .select_from(months_cte.outerjoin(ending, ending.c.key == months_cte.c.key))
        .order_by(months_cte.c.idx)
    )
    rows = []
    for r in ctx.fetch(query):
        ending_n, renewed_n, pending_n = _int(r["ending"]), _int(r["renewed"]), _int(r["pending"])
        rows.append(
            {
                "month": r["key"],
                "ending": ending_n,
                "renewed": renewed_n,
                "not_renewed": ending_n - renewed_n - pending_n,
                "pending": pending_n,
                "renewal_pct": _r2(r["renewal_pct"]),
            }
        )
    # a period in which no membership ends at all says nothing: "No data" rather than a row of zeros
    return rows if any(r["ending"] for r in rows) else []


# -- fitness.attendance -------------------------------------------------------------------------------


def attendance(ctx: ReportContext, params: Mapping[str, Any]) -> list[Row]:
    """Check-ins by weekday and hour of the day, in the member's local time (their branch's zone, else the
    CRM's; see ``crmkit.zones``).

    Counts ``checkin`` activities with status ``done`` whose ``occurred_at`` is in ``[since, until)`` (and
    whose ``data.club`` is ``club``, when given), grouped by weekday and hour in the database. The rows
    are a full grid: the seven weekdays by every hour from the earliest to the latest hour that has a
    check-in, zero where nobody came, so the heatmap has no holes. ``share_pct`` is the cell's share of
    all the check-ins counted.
    """
    _check("fitness.attendance", params)
    a = _activities
    local = ctx.local_time(a.c.occurred_at, params["since"], params["until"], a.c.customer_id)
    weekday, hour = iso_weekday(local), hour_of_day(local)
    conditions = [
        a.c.kind == "checkin",
        a.c.status == "done",
        a.c.occurred_at >= utc_midnight(params["since"]),
        a.c.occurred_at < utc_midnight(params["until"]),
        ctx.reaches(a.c.customer_id),
    ]
    if params.get("club"):
        conditions.append(a.c.data["club"].as_string() == params["club"])
    query = (
        select(weekday.label("weekday"), hour.label("hour"), func.count().label("n"))
        .where(*conditions)
        .group_by(weekday, hour)
    )
    counts = {(int(r["weekday"]), int(r["hour"])): int(r["n"]) for r in ctx.fetch(query)}
    if not counts:
        return []
    total = sum(counts.values())
    hours = range(min(h for _, h in counts), max(h for _, h in counts) + 1)
    # at most 7 x 24 aggregated cells: filling the grid here is cheaper than a grid join in SQL
    return [
        {
            "day": day,
            "weekday": WEEKDAYS[day],
            "hour": f"{h:02d}:00",
            "checkins": counts.get((day, h), 0),
            "share_pct": _r2(counts.get((day, h), 0) * 100 / total),
        }
        for day in range(7)
        for h in hours
    ]


# -- fitness.trainer_load -----------------------------------------------------------------------------


def trainer_load(ctx: ReportContext, params: Mapping[str, Any]) -> list[Row]:
    """Per trainer: weekly class slots, check-ins to their classes, personal-training sessions, members seen.

    * ``classes``: the trainer's weekly slots in ``fitness_classes`` today.
    * ``class_checkins``: check-ins (status ``done``) in ``[since, until)`` whose ``data.class_id`` is one
      of the trainer's classes. A class is credited to its trainer as recorded today: a substitute is not
      recorded anywhere, so a class taught by a stand-in still counts for the regular trainer.
    * ``pt_sessions``: ``pt_session`` activities (status ``done``) in the period owned by the trainer's
      staff user (``fitness_trainers.user_id``). Exact: a PT session is owned by whoever held it. A trainer
      without a staff user has none.
    * ``members``: distinct customers seen in the trainer's classes or PT sessions in the period.

    Every trainer has a row, busiest (class check-ins plus PT sessions) first.
    """
    _check("fitness.trainer_load", params)
    a, t, k = _activities, _trainers, _classes
    in_period = and_(
        a.c.status == "done",
        a.c.occurred_at >= utc_midnight(params["since"]),
        a.c.occurred_at < utc_midnight(params["until"]),
        ctx.reaches(a.c.customer_id),
    )
    class_visits = (
        select(k.c.trainer_id.label("trainer_id"), a.c.customer_id, literal(1).label("cls"), literal(0).label("pt"))
        .select_from(a.join(k, k.c.id == a.c.data["class_id"].as_integer()))
        .where(a.c.kind == "checkin", in_period, k.c.trainer_id.is_not(None))
    )
    pt_sessions = (
        select(t.c.id.label("trainer_id"), a.c.customer_id, literal(0).label("cls"), literal(1).label("pt"))
        .select_from(a.join(t, t.c.user_id == a.c.owner_id))
        .where(a.c.kind == "pt_session", in_period)
    )
    seen = union_all(class_visits, pt_sessions).subquery("seen")
    load = (
        select(
            seen.c.trainer_id,
            func.sum(seen.c.cls).label("class_checkins"),
            func.sum(seen.c.pt).label("pt_sessions"),
            func.count(seen.c.customer_id.distinct()).label("members"),
        )
        .group_by(seen.c.trainer_id)
        .subquery("load")
    )
    slots = select(k.c.trainer_id, func.count().label("n")).group_by(k.c.trainer_id).subquery("slots")
    busy = func.coalesce(load.c.class_checkins, 0) + func.coalesce(load.c.pt_sessions, 0)
    query = (
        select(
            t.c.id,
            t.c.name,
            t.c.speciality,
            slots.c.n.label("classes"),
            load.c.class_checkins,
            load.c.pt_sessions,
            load.c.members,
        )
        .select_from(t.outerjoin(slots, slots.c.trainer_id == t.c.id).outerjoin(load, load.c.trainer_id == t.c.id))
        .order_by(busy.desc(), t.c.name, t.c.id)
    )
    rows = [
        {
            "trainer": r["name"],
            "speciality": r["speciality"],
            "classes": _int(r["classes"]),
            "class_checkins": _int(r["class_checkins"]),
            "pt_sessions": _int(r["pt_sessions"]),
            "members": _int(r["members"]),
        }
        for r in ctx.fetch(query)
    ]
    # trainers on the books but nothing in the period: "No data" says it more plainly than a table of zeros
    return rows if any(r["class_checkins"] or r["pt_sessions"] for r in rows) else []


# -- fitness.members_at_risk ----------------------------------------------------------------------------


def members_at_risk(ctx: ReportContext, params: Mapping[str, Any]) -> list[Row]:
    """Members to call: in the ``at_risk`` stage, or without a check-in for ``days`` days.

    Members are customers whose lifecycle is ``active`` (adaptation, active, at risk) or ``loyal``. As of the
    end of ``as_of``: ``last_visit`` is the date of their latest ``checkin`` (status ``done``),
    ``days_since`` the days from it to ``as_of``; a member qualifies when in stage ``at_risk`` or when
    ``days_since >= days`` or they never checked in. ``membership_end`` is the latest end of their
    memberships (not cancelled) that started by ``as_of`` — in the past when it has run out;
    ``sessions_left`` is the balance of the membership covering ``as_of`` (``None``: unlimited, or none).
    Optionally only the members of one manager (``owner_id``). Never-seen members first, then the longest
    absent, at most ``limit`` rows.
    """
    _check("fitness.members_at_risk", params, "days", "limit")
    as_of: dt.date = params["as_of"]
    c, a, m, u = _customers, _activities, _memberships, _users
    end_of_day = utc_midnight(as_of + dt.timedelta(days=1))
    last_visit = (
        select(func.max(a.c.occurred_at))
        .where(a.c.customer_id == c.c.id, a.c.kind == "checkin", a.c.status == "done", a.c.occurred_at < end_of_day)
        .scalar_subquery()
    )
    today = literal(as_of, Date())
    sessions_left = (
        select(m.c.sessions_left)
        .where(m.c.customer_id == c.c.id, m.c.status != "cancelled", m.c.starts_on <= today, m.c.ends_on >= today)
        .order_by(m.c.ends_on.desc(), m.c.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    membership_end = (
        select(func.max(m.c.ends_on))
        .where(m.c.customer_id == c.c.id, m.c.status != "cancelled", m.c.starts_on <= today)
        .scalar_subquery()
    )
    members = select(
        c.c.id,
        c.c.name,
        c.c.phone,
        c.c.stage,
        c.c.owner_id,
        last_visit.label("last_visit"),
        sessions_left.label("sessions_left"),
        membership_end.label("membership_end"),
    ).where(c.c.lifecycle.in_(MEMBER_LIFECYCLES), ctx.customer_scope(c))
    if params.get("owner_id") is not None:
        members = members.where(c.c.owner_id == params["owner_id"])
    base = members.subquery("members")
    days_since = _day(as_of) - day_number(base.c.last_visit)
    by_name = [base.c.name] if ctx.actor.sees_personal else []
    query = (
        select(base, days_since.label("days_since"), u.c.name.label("owner"))
        .select_from(base.outerjoin(u, u.c.id == base.c.owner_id))
        .where(or_(base.c.stage == "at_risk", base.c.last_visit.is_(None), days_since >= params["days"]))
        # by name only for who may read names: the order of masked rows would tell them apart
        .order_by(base.c.last_visit.is_not(None), base.c.last_visit, *by_name, base.c.id)
        .limit(params["limit"])
    )
    return [
        {
            "name": r["name"],
            "phone": r["phone"],
            "stage": r["stage"],
            "last_visit": None if r["last_visit"] is None else r["last_visit"].date(),
            "days_since": None if r["days_since"] is None else int(r["days_since"]),
            "sessions_left": r["sessions_left"],
            "membership_end": r["membership_end"],
            "owner": _UNASSIGNED if r["owner_id"] is None else r["owner"],
        }
        for r in ctx.fetch(query)
    ]


# -- fitness.trigger_effectiveness ----------------------------------------------------------------------


def trigger_effectiveness(ctx: ReportContext, params: Mapping[str, Any]) -> list[Row]:
    """The core's trigger effectiveness (``ctx.triggers.effectiveness``, computed by the database) for the
    ``fitness.*`` triggers that fired in ``[since, until)``: contacted and held-out firings, how many
    reached the trigger's goal within its window, and the uplift of contacting over not contacting."""
    _check("fitness.trigger_effectiveness", params)
    return effectiveness_rows(ctx, params, prefix="fitness.", only_fired=True)


# -- the declarations -----------------------------------------------------------------------------------

AS_OF = Param("as_of", "date", default=_today, help="the day to look from (default today, UTC)")


def fitness_reports() -> list[Report]:
    """The reports the fitness plugin registers through ``crmkit_register_reports``."""
    return [
        Report(
            "fitness.renewal_rate",
            "Membership renewals",
            data=renewal_rate,
            params=[
                *PERIOD,
                Param("days", "integer", default=14, help="days after the end within which a renewal counts"),
                AS_OF,
            ],
            columns=[
                Column("month", "Month ending", labels="month"),
                Column("ending", "Memberships ending", "integer"),
                Column("renewed", type="integer"),
                Column("not_renewed", "Not renewed", "integer"),
                Column("pending", "Still open", "integer"),
                Column("renewal_pct", "Renewal rate", "percent"),
            ],
            charts=[
                Chart(
                    "line",
                    x="month",
                    y=("renewal_pct",),
                    title="Renewal rate by the month memberships end",
                    period="month",
                ),
                Chart(
                    "bar",
                    x="month",
                    y=("renewed", "not_renewed", "pending"),
                    title="Memberships ending",
                    y_title="Memberships",
                    period="month",
                    stacked=True,
                ),
            ],
            description="Memberships ending each month and how many the same member renewed within the given "
            "days of the end. The rate counts decided memberships only: those still within the renewal window "
            "are shown as still open.",
            group="retention",
            definition="fitness-renewal-rate",
        ),
        Report(
            "fitness.attendance",
            "Attendance by weekday and hour",
            data=attendance,
            params=[*PERIOD, Param("club", help="only check-ins at this club")],
            columns=[
                Column("weekday"),
                Column("hour", "Hour (local time)"),
                Column("checkins", "Check-ins", "integer"),
                Column("share_pct", "Share", "percent"),
            ],
            charts=[
                Chart("heatmap", x="hour", y=("weekday",), value="checkins", title="Check-ins by weekday and hour")
            ],
            description="Turnstile check-ins in the period, by weekday and the hour they started, in the club's "
            "local time.",
            group="visits",
            definition="fitness-attendance",
        ),
        Report(
            "fitness.trainer_load",
            "Trainer load",
            data=trainer_load,
            params=PERIOD,
            columns=[
                Column("trainer"),
                Column("speciality"),
                Column("classes", "Weekly classes", "integer"),
                Column("class_checkins", "Class check-ins", "integer"),
                Column("pt_sessions", "PT sessions", "integer"),
                Column("members", "Members seen", "integer"),
            ],
            # two charts: a year of class check-ins dwarfs a year of PT sessions on one scale
            charts=[
                Chart("bar", x="trainer", y=("class_checkins",), title="Check-ins to the trainer's classes"),
                Chart("bar", x="trainer", y=("pt_sessions",), title="Personal-training sessions held"),
            ],
            description="Check-ins to each trainer's classes (by the class recorded on the check-in) and the "
            "personal-training sessions they held in the period.",
            group="staff",
            definition="fitness-trainer-load",
        ),
        Report(
            "fitness.members_at_risk",
            "Members at risk: who to call",
            data=members_at_risk,
            params=[
                Param("days", "integer", default=14, help="no check-in for this many days"),
                AS_OF,
                Param("owner_id", "integer", help="only this manager's members"),
                Param("limit", "integer", default=200, help="at most this many members"),
            ],
            columns=[
                Column("name", "Member", personal=True),
                Column("phone", type="phone", personal=True),
                Column("stage", labels="stage"),
                Column("last_visit", "Last visit", "date"),
                Column("days_since", "Days since", "integer"),
                Column("sessions_left", "Sessions left", "integer"),
                Column("membership_end", "Membership ends", "date"),
                Column("owner", "Manager"),
            ],
            description="Members in the at-risk stage or without a check-in for the given days, never-seen and "
            "longest absent first.",
            group="retention",
            definition="fitness-members-at-risk",
        ),
        Report(
            "fitness.trigger_effectiveness",
            "Fitness trigger effectiveness",
            data=trigger_effectiveness,
            params=EFFECTIVENESS_PARAMS,
            columns=EFFECTIVENESS_COLUMNS,
            charts=EFFECTIVENESS_CHARTS,
            description="The club's retention triggers that fired in the period: how many members reached the "
            "trigger's goal (a visit or a purchase within its window), against the held-out control group.",
            group="retention",
            definition="trigger-effectiveness",
        ),
    ]
