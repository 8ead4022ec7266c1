"""The KPI reports of the core (``crm.*``) and of the fitness plugin (``fitness.*``): crmkit's data step
(``crm.reports.run(...).rows``: parameter validation, the report's SQLAlchemy statement, shaping the rows)
against the same report written by hand as plain SQL strings on the raw connection.

Every report looks at the twelve months before ``as_of``. The hand-written side is what a developer who
knows the schema would write directly: one statement per report, on SQLite and PostgreSQL (the queries
branch on the dialect only where the date and JSON functions differ), with Python filling the few
constant rows a ``GROUP BY`` cannot produce (empty months, stages nobody reached). It returns plain
tuples in the report's column order; :func:`_same` compares them with crmkit's dicts value by value, so
rounding, ``Decimal`` and dates as text are settled there and neither side skips work to match the other.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal
from functools import partial
from typing import TYPE_CHECKING, Any

import attrs
from sqlalchemy import Connection

from bench.common import Workload, empty_parts, parts
from crmkit.triggers.spec import MIN_SAMPLE, newcombe

if TYPE_CHECKING:
    from crmkit import CRM

Row = tuple[Any, ...]
HandReport = Callable[[Connection, "_Sql", "_Period"], list[Row]]

STAGES = ("lead", "active", "loyal", "lost")
CONTACT_KINDS = ("call", "email", "sms", "chat")
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
#: The reports' defaults, spelled out once for the hand-written side.
RENEWAL_DAYS = 14
AT_RISK_DAYS = 14
AT_RISK_LIMIT = 200
RETENTION_MONTHS = 6


# -- the period and the two dialects ------------------------------------------------------------------


@attrs.frozen
class _Period:
    """The last twelve months before ``as_of``: ``[since, until)`` as dates, as every report is asked."""

    since: dt.date
    until: dt.date

    @classmethod
    def before(cls, as_of: dt.datetime) -> _Period:
        until = as_of.date()
        day = min(until.day, 28) if until.month == 2 else until.day  # a year before 29 February
        return cls(until.replace(year=until.year - 1, day=day), until)

    def months(self) -> list[str]:
        """``'YYYY-MM'`` of every calendar month that intersects the period."""
        keys, index = [], self.since.year * 12 + self.since.month - 1
        while dt.date(index // 12, index % 12 + 1, 1) < self.until:
            keys.append(f"{index // 12:04d}-{index % 12 + 1:02d}")
            index += 1
        return keys


def _midnight(day: dt.date) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day)


_PLACEHOLDER = re.compile(r"(?<![:\w]):([a-z_]\w*)")


@attrs.frozen
class _Sql:
    """What the hand-written SQL spells differently on SQLite and PostgreSQL.

    The queries are written with ``:name`` placeholders, which sqlite3 takes as they are and which become
    psycopg's ``%(name)s``. Timestamps are stored as naive UTC: SQLite keeps SQLAlchemy's text form
    (``'YYYY-MM-DD HH:MM:SS.ffffff'``, which sorts like the moment), PostgreSQL a ``timestamp``.
    """

    postgres: bool

    @classmethod
    def of(cls, conn: Connection) -> _Sql:
        return cls(conn.dialect.name == "postgresql")

    def run(self, conn: Connection, sql: str, **params: Any) -> list[Row]:
        if self.postgres:
            sql = _PLACEHOLDER.sub(r"%(\1)s", sql.replace("%", "%%"))
        return [tuple(r) for r in conn.exec_driver_sql(sql, params).fetchall()]

    def moment(self, day: dt.date) -> Any:
        """A bound UTC midnight comparable with the timestamp columns."""
        return _midnight(day) if self.postgres else f"{day.isoformat()} 00:00:00.000000"

    def day(self, day: dt.date) -> Any:
        return day if self.postgres else day.isoformat()

    def month(self, column: str) -> str:
        return f"to_char({column}, 'YYYY-MM')" if self.postgres else f"strftime('%Y-%m', {column})"

    def days_between(self, start: str, end: str) -> str:
        """Fractional days from one timestamp to a later one."""
        if self.postgres:
            return f"(EXTRACT(EPOCH FROM ({end} - {start})) / 86400.0)"
        return f"(julianday({end}) - julianday({start}))"

    def date_of(self, column: str) -> str:
        return f"CAST({column} AS DATE)" if self.postgres else f"date({column})"

    def plus_days(self, date: str, days: str) -> str:
        return f"({date} + {days})" if self.postgres else f"date({date}, '+' || {days} || ' days')"

    def whole_days(self, start: str, end: str) -> str:
        """Whole days between two dates."""
        return f"({end} - {start})" if self.postgres else f"CAST(julianday({end}) - julianday({start}) AS INTEGER)"

    def weekday(self, column: str) -> str:
        """0 = Monday ... 6 = Sunday."""
        if self.postgres:
            return f"(CAST(EXTRACT(ISODOW FROM {column}) AS INTEGER) - 1)"
        return f"((CAST(strftime('%w', {column}) AS INTEGER) + 6) % 7)"

    def hour(self, column: str) -> str:
        if self.postgres:
            return f"CAST(EXTRACT(HOUR FROM {column}) AS INTEGER)"
        return f"CAST(strftime('%H', {column}) AS INTEGER)"

    def json_int(self, column: str, key: str) -> str:
        if self.postgres:
            return f"CAST({column} ->> '{key}' AS INTEGER)"
        return f"json_extract({column}, '$.{key}')"


def _ratio(part: Any, whole: Any, scale: float = 100.0) -> float | None:
    return None if not whole else float(part) * scale / float(whole)


# -- the core's reports -------------------------------------------------------------------------------


def hand_leads_to_deals(conn: Connection, sql: _Sql, p: _Period) -> list[Row]:
    # the per-source counts are taken once and summed for the total row, instead of scanning twice
    return sql.run(
        conn,
        """
        WITH grouped AS (
            SELECT c.source AS grp, COUNT(*) AS leads,
                   SUM(CASE WHEN EXISTS (
                           SELECT 1 FROM crm_stage_history h
                           WHERE h.customer_id = c.id AND h.to_lifecycle = 'active' AND h.at < :until
                       ) THEN 1 ELSE 0 END) AS deals
            FROM crm_customers c
            WHERE c.created_at >= :since AND c.created_at < :until
            GROUP BY c.source
        ), counted AS (
            SELECT 0 AS total, grp, leads, deals FROM grouped
            UNION ALL
            SELECT 1, NULL, COALESCE(SUM(leads), 0), COALESCE(SUM(deals), 0) FROM grouped
        )
        SELECT CASE WHEN total = 1 THEN '(all)' ELSE COALESCE(grp, '(none)') END,
               leads, deals, deals * 100.0 / NULLIF(leads, 0)
        FROM counted
        ORDER BY total, leads DESC, grp IS NULL, grp
        """,
        since=sql.moment(p.since),
        until=sql.moment(p.until),
    )


def hand_average_check(conn: Connection, sql: _Sql, p: _Period) -> list[Row]:
    found = {
        month: (revenue, purchases, paying)
        for month, revenue, purchases, paying in sql.run(
            conn,
            f"""
            SELECT {sql.month("occurred_at")}, SUM(amount), COUNT(*), COUNT(DISTINCT customer_id)
            FROM crm_activities
            WHERE kind = 'purchase' AND status = 'done' AND occurred_at >= :since AND occurred_at < :until
            GROUP BY 1
            """,
            since=sql.moment(p.since),
            until=sql.moment(p.until),
        )
    }
    rows = []
    for month in p.months():
        revenue, purchases, paying = found.get(month, (0, 0, 0))
        rows.append((month, revenue, purchases, paying, _ratio(revenue, paying, 1.0), _ratio(revenue, purchases, 1.0)))
    return rows


def hand_customer_growth(conn: Connection, sql: _Sql, p: _Period) -> list[Row]:
    # one pass: the customers from before the period under the key '', the period's by month
    counts: dict[str | None, int] = dict(
        sql.run(
            conn,
            f"""
            SELECT CASE WHEN created_at < :since THEN '' ELSE {sql.month("created_at")} END, COUNT(*)
            FROM crm_customers WHERE created_at < :until
            GROUP BY 1
            """,
            since=sql.moment(p.since),
            until=sql.moment(p.until),
        )
    )
    rows, total = [], counts.get("", 0)
    for month in p.months():
        new = counts.get(month, 0)
        rows.append((month, total, new, 0, total + new, _ratio(new, total)))  # on all records nobody leaves
        total += new
    return rows


def hand_lead_processing_time(conn: Connection, sql: _Sql, p: _Period) -> list[Row]:
    return sql.run(
        conn,
        f"""
        SELECT CASE WHEN l.owner_id IS NULL THEN '(unassigned)' ELSE u.name END,
               COUNT(*), COUNT(l.first_contact), AVG({sql.days_between("l.created_at", "l.first_contact")}) * 24
        FROM (
            SELECT c.owner_id, c.created_at,
                   (SELECT MIN(a.occurred_at) FROM crm_activities a
                    WHERE a.customer_id = c.id AND a.direction = 'outbound' AND a.status = 'done'
                      AND a.occurred_at >= c.created_at) AS first_contact
            FROM crm_customers c
            WHERE c.created_at >= :since AND c.created_at < :until
        ) l
        LEFT JOIN crm_users u ON u.id = l.owner_id
        GROUP BY l.owner_id, u.name
        ORDER BY l.owner_id IS NULL, l.owner_id
        """,
        since=sql.moment(p.since),
        until=sql.moment(p.until),
    )


def hand_plan_vs_fact(conn: Connection, sql: _Sql, p: _Period) -> list[Row]:
    kinds = ", ".join(f"'{k}'" for k in CONTACT_KINDS)
    in_target = f"a.occurred_at >= t.period_start AND a.occurred_at < {sql.plus_days('t.period_end', '1')}"
    # activities are counted per target through the (owner, time) index; deals need each customer's
    # previous stage, so they are one grouped join against the entries into active
    return sql.run(
        conn,
        f"""
        WITH chosen AS (
            SELECT id, user_id, metric, period_start, period_end, planned FROM crm_targets
            WHERE period_start < :until AND period_end >= :since
        ), entered AS (
            SELECT customer_id, at FROM (
                SELECT customer_id, at, to_lifecycle,
                       LAG(to_lifecycle) OVER (PARTITION BY customer_id ORDER BY at, id) AS previous
                FROM crm_stage_history
            ) h
            WHERE to_lifecycle = 'active' AND (previous IS NULL OR previous NOT IN ('active', 'loyal'))
        ), deals AS (
            SELECT t.id, COUNT(DISTINCT e.customer_id) AS n
            FROM chosen t
            JOIN crm_customers c ON c.owner_id = t.user_id
            JOIN entered e ON e.customer_id = c.id AND e.at >= t.period_start
                          AND e.at < {sql.plus_days("t.period_end", "1")}
            WHERE t.metric = 'deals'
            GROUP BY t.id
        ), facts AS (
            SELECT t.user_id, u.name, t.metric, t.period_start, t.period_end, t.planned,
                   CASE t.metric
                   WHEN 'contacts' THEN (
                       SELECT COUNT(*) FROM crm_activities a
                       WHERE a.owner_id = t.user_id AND a.status = 'done' AND a.direction = 'outbound'
                         AND a.kind IN ({kinds}) AND {in_target})
                   WHEN 'meetings' THEN (
                       SELECT COUNT(*) FROM crm_activities a
                       WHERE a.owner_id = t.user_id AND a.status = 'done' AND a.kind = 'meeting' AND {in_target})
                   ELSE COALESCE(d.n, 0)
                   END AS done
            FROM chosen t JOIN crm_users u ON u.id = t.user_id LEFT JOIN deals d ON d.id = t.id
        )
        SELECT name, metric, period_start, period_end, planned, done, done * 100.0 / NULLIF(planned, 0),
               name || ' · ' || metric || ' · ' || period_start
        FROM facts
        ORDER BY user_id, period_start, CASE metric WHEN 'contacts' THEN 0 WHEN 'meetings' THEN 1 ELSE 2 END
        """,
        since=sql.day(p.since),
        until=sql.day(p.until),
    )


def hand_lifecycle_funnel(conn: Connection, sql: _Sql, p: _Period) -> list[Row]:
    counts: dict[str | None, int] = dict(
        sql.run(
            conn,
            """
            SELECT NULL, COUNT(*) FROM crm_customers WHERE created_at >= :since AND created_at < :until
            UNION ALL
            SELECT h.to_lifecycle, COUNT(DISTINCT h.customer_id)
            FROM crm_customers c JOIN crm_stage_history h ON h.customer_id = c.id
            WHERE c.created_at >= :since AND c.created_at < :until
            GROUP BY h.to_lifecycle
            """,
            since=sql.moment(p.since),
            until=sql.moment(p.until),
        )
    )
    size = counts.get(None, 0)
    return [(stage, counts.get(stage, 0), _ratio(counts.get(stage, 0), size)) for stage in STAGES]


def hand_stage_durations(conn: Connection, sql: _Sql, p: _Period) -> list[Row]:
    found = {
        stage: (stays, avg_days)
        for stage, stays, avg_days in sql.run(
            conn,
            f"""
            WITH entries AS (
                SELECT customer_id, to_lifecycle, at, id FROM (
                    SELECT customer_id, to_lifecycle, at, id,
                           LAG(to_lifecycle) OVER (PARTITION BY customer_id ORDER BY at, id) AS previous
                    FROM crm_stage_history
                ) h
                WHERE previous IS NULL OR previous <> to_lifecycle
            ), stays AS (
                SELECT to_lifecycle, at, LEAD(at) OVER (PARTITION BY customer_id ORDER BY at, id) AS ended
                FROM entries
            )
            SELECT to_lifecycle, COUNT(*), AVG({sql.days_between("at", "ended")})
            FROM stays
            WHERE ended IS NOT NULL AND at >= :since AND at < :until
            GROUP BY to_lifecycle
            """,
            since=sql.moment(p.since),
            until=sql.moment(p.until),
        )
    }
    return [(stage, *found.get(stage, (0, None))) for stage in STAGES]


def _retention_grid(p: _Period, now: dt.datetime) -> list[tuple[str, int, str]]:
    """(cohort month, offset, the month after the offset's month) for every offset month that has ended.

    ``crm.cohort_retention`` passes no ``as_of`` to the KPI, which then looks from the wall clock, not from
    the ``now`` the report was run with; the hand-written side does the same so the two agree.
    """
    grid = []
    for key in p.months():
        year, month = int(key[:4]), int(key[5:])
        for k in range(RETENTION_MONTHS):
            index = year * 12 + month + k  # the month after offset k, counted from year 0
            if dt.datetime(index // 12, index % 12 + 1, 1) <= now:
                grid.append((key, k, f"{index // 12:04d}-{index % 12 + 1:02d}"))
    return grid


def hand_cohort_retention(conn: Connection, sql: _Sql, p: _Period) -> list[Row]:
    grid = _retention_grid(p, dt.datetime.now(dt.UTC).replace(tzinfo=None))
    if not grid:
        return []
    offsets = ", ".join(f"('{key}', {k}, '{after}')" for key, k, after in grid)
    # A member is churned at a month end that falls in one of their stays in 'lost' (from that row to the
    # next). Month ends start a month, so the stays are bucketed by the months they begin and end in and
    # only those buckets are matched against the month ends.
    rows = sql.run(
        conn,
        f"""
        WITH grid(cohort, k, after) AS (VALUES {offsets}),
        members AS (
            SELECT customer_id, {sql.month("MIN(at)")} AS cohort FROM crm_stage_history
            WHERE to_lifecycle = 'active'
            GROUP BY customer_id
            HAVING MIN(at) >= :since AND MIN(at) < :until
        ), sizes AS (
            SELECT cohort, COUNT(*) AS size FROM members GROUP BY cohort
        ), stays AS (
            SELECT m.cohort, h.at,
                   (SELECT MIN(n.at) FROM crm_stage_history n
                    WHERE n.customer_id = h.customer_id AND n.at >= h.at AND (n.at > h.at OR n.id > h.id)) AS next_at
            FROM members m JOIN crm_stage_history h ON h.customer_id = m.customer_id
            WHERE h.to_lifecycle = 'lost'
        ), lost AS (
            SELECT cohort, {sql.month("at")} AS began, {sql.month("next_at")} AS ended, COUNT(*) AS n
            FROM stays GROUP BY 1, 2, 3
        ), churned AS (
            SELECT g.cohort, g.k, SUM(l.n) AS n
            FROM lost l
            JOIN grid g ON g.cohort = l.cohort AND l.began < g.after AND (l.ended IS NULL OR l.ended >= g.after)
            GROUP BY g.cohort, g.k
        )
        SELECT g.cohort, s.size, g.k, s.size - COALESCE(c.n, 0)
        FROM grid g
        JOIN sizes s ON s.cohort = g.cohort
        LEFT JOIN churned c ON c.cohort = g.cohort AND c.k = g.k
        ORDER BY g.cohort, g.k
        """,
        since=sql.moment(p.since),
        until=sql.moment(p.until),
    )
    return [(cohort, size, k, kept, _ratio(kept, size), _ratio(size - kept, size)) for cohort, size, k, kept in rows]


def _goals(crm: CRM, prefix: str) -> list[tuple[str, tuple[str, ...]]]:
    """The triggers with a goal (their declared order) and the goal's activity kinds: configuration, which
    the hand-written SQL needs as much as crmkit does."""
    return [(t.name, t.goal.kinds) for t in crm.triggers.all() if t.name.startswith(prefix) and t.goal is not None]


def hand_trigger_effectiveness(
    conn: Connection, sql: _Sql, p: _Period, *, goals: Sequence[tuple[str, tuple[str, ...]]], only_fired: bool
) -> list[Row]:
    if not goals:
        return []
    pairs = ", ".join(f"('{name}', '{kind}')" for name, kinds in goals for kind in kinds)
    counts = {
        (name, bool(held)): (fired, converted)
        for name, held, fired, converted in sql.run(
            conn,
            f"""
            WITH goals(trigger, kind) AS (VALUES {pairs})
            SELECT f.trigger, f.held_out, COUNT(*),
                   SUM(CASE WHEN EXISTS (
                           SELECT 1 FROM goals g JOIN crm_activities a ON a.kind = g.kind
                           WHERE g.trigger = f.trigger AND a.customer_id = f.customer_id AND a.status = 'done'
                             AND a.occurred_at > f.as_of AND a.occurred_at <= f.goal_until
                       ) THEN 1 ELSE 0 END)
            FROM crm_trigger_firings f
            WHERE f.trigger IN (SELECT DISTINCT trigger FROM goals) AND f.as_of >= :since AND f.as_of < :until
            GROUP BY f.trigger, f.held_out
            """,
            since=sql.moment(p.since),
            until=sql.moment(p.until),
        )
    }
    rows = []
    for name, _kinds in goals:
        fired, converted = counts.get((name, False), (0, 0))
        held, held_converted = counts.get((name, True), (0, 0))
        if only_fired and not (fired or held):
            continue
        rate, held_rate = _ratio(converted, fired), _ratio(held_converted, held)
        uplift = None if rate is None or held_rate is None else rate - held_rate
        # the interval and the verdict are arithmetic on the counts, as in crmkit (Newcombe's method 10)
        interval = newcombe(converted, fired, held_converted, held)
        low, high = (round(v * 100, 2) for v in interval) if interval else (None, None)
        if fired < MIN_SAMPLE or held < MIN_SAMPLE or interval is None:
            verdict = "not enough data"
        else:
            verdict = "works" if interval[0] > 0 else "backfires" if interval[1] < 0 else "no clear effect"
        rows.append((name, fired, converted, rate, held, held_converted, held_rate, uplift, low, high, verdict, "all"))
    return rows


# -- the fitness plugin's reports ---------------------------------------------------------------------


def hand_renewal_rate(conn: Connection, sql: _Sql, p: _Period, *, as_of: dt.date) -> list[Row]:
    # grouped by outcome, so the renewal EXISTS runs once per membership
    found: dict[str, list[int]] = {}
    for month, renewed, still_open, n in sql.run(
        conn,
        f"""
        SELECT {sql.month("m.ends_on")},
               CASE WHEN EXISTS (
                   SELECT 1 FROM fitness_memberships n
                   WHERE n.customer_id = m.customer_id AND n.id <> m.id AND n.status <> 'cancelled'
                     AND n.starts_on > m.starts_on AND n.starts_on <= {sql.plus_days("m.ends_on", ":days")}
               ) THEN 1 ELSE 0 END,
               CASE WHEN {sql.plus_days("m.ends_on", ":days")} >= :as_of THEN 1 ELSE 0 END,
               COUNT(*)
        FROM fitness_memberships m
        WHERE m.status <> 'cancelled' AND m.ends_on >= :since AND m.ends_on < :until
        GROUP BY 1, 2, 3
        """,
        since=sql.day(p.since),
        until=sql.day(p.until),
        as_of=sql.day(as_of),
        days=RENEWAL_DAYS,
    ):
        counts = found.setdefault(month, [0, 0, 0])
        counts[0] += n
        counts[1] += n if renewed else 0
        counts[2] += n if still_open and not renewed else 0
    if not found:
        return []
    rows = []
    for month in p.months():
        ending, renewed, pending = found.get(month, (0, 0, 0))
        rows.append((month, ending, renewed, ending - renewed - pending, pending, _ratio(renewed, ending - pending)))
    return rows


def hand_attendance(conn: Connection, sql: _Sql, p: _Period) -> list[Row]:
    counts = {
        (day, hour): n
        for day, hour, n in sql.run(
            conn,
            f"""
            SELECT {sql.weekday("occurred_at")}, {sql.hour("occurred_at")}, COUNT(*)
            FROM crm_activities
            WHERE kind = 'checkin' AND status = 'done' AND occurred_at >= :since AND occurred_at < :until
            GROUP BY 1, 2
            """,
            since=sql.moment(p.since),
            until=sql.moment(p.until),
        )
    }
    if not counts:
        return []
    total = sum(counts.values())
    hours = range(min(h for _, h in counts), max(h for _, h in counts) + 1)
    return [
        (WEEKDAYS[day], f"{hour:02d}:00", counts.get((day, hour), 0), counts.get((day, hour), 0) * 100 / total)
        for day in range(7)
        for hour in hours
    ]


def hand_trainer_load(conn: Connection, sql: _Sql, p: _Period) -> list[Row]:
    rows = sql.run(
        conn,
        f"""
        WITH seen AS (
            SELECT k.trainer_id, a.customer_id, 1 AS cls, 0 AS pt
            FROM crm_activities a JOIN fitness_classes k ON k.id = {sql.json_int("a.data", "class_id")}
            WHERE a.kind = 'checkin' AND a.status = 'done' AND a.occurred_at >= :since AND a.occurred_at < :until
              AND k.trainer_id IS NOT NULL
            UNION ALL
            SELECT t.id, a.customer_id, 0, 1
            FROM crm_activities a JOIN fitness_trainers t ON t.user_id = a.owner_id
            WHERE a.kind = 'pt_session' AND a.status = 'done' AND a.occurred_at >= :since AND a.occurred_at < :until
        ), load AS (
            SELECT trainer_id, SUM(cls) AS cls, SUM(pt) AS pt, COUNT(DISTINCT customer_id) AS members
            FROM seen GROUP BY trainer_id
        )
        SELECT t.name, t.speciality, (SELECT COUNT(*) FROM fitness_classes k WHERE k.trainer_id = t.id),
               COALESCE(l.cls, 0), COALESCE(l.pt, 0), COALESCE(l.members, 0)
        FROM fitness_trainers t LEFT JOIN load l ON l.trainer_id = t.id
        ORDER BY COALESCE(l.cls, 0) + COALESCE(l.pt, 0) DESC, t.name, t.id
        """,
        since=sql.moment(p.since),
        until=sql.moment(p.until),
    )
    return rows if any(r[3] or r[4] for r in rows) else []


def hand_members_at_risk(conn: Connection, sql: _Sql, p: _Period, *, as_of: dt.date) -> list[Row]:
    # the membership columns are looked up for the chosen few only, after the sort and the limit
    days_since = sql.whole_days(sql.date_of("last_visit"), ":as_of")
    order = "last_visit IS NOT NULL, last_visit, name, id"
    return sql.run(
        conn,
        f"""
        WITH members AS (
            SELECT c.id, c.name, c.phone, c.stage, c.owner_id,
                   (SELECT MAX(a.occurred_at) FROM crm_activities a
                    WHERE a.customer_id = c.id AND a.kind = 'checkin' AND a.status = 'done'
                      AND a.occurred_at < :end_of_day) AS last_visit
            FROM crm_customers c
            WHERE c.lifecycle IN ('active', 'loyal')
        ), chosen AS (
            SELECT id, name, phone, stage, owner_id, last_visit, {days_since} AS days_since
            FROM members
            WHERE stage = 'at_risk' OR last_visit IS NULL OR {days_since} >= :days
            ORDER BY {order}
            LIMIT :limit
        )
        SELECT ch.name, ch.phone, ch.stage, {sql.date_of("ch.last_visit")}, ch.days_since,
               (SELECT m.sessions_left FROM fitness_memberships m
                WHERE m.customer_id = ch.id AND m.status <> 'cancelled' AND m.starts_on <= :as_of
                  AND m.ends_on >= :as_of
                ORDER BY m.ends_on DESC, m.id DESC LIMIT 1),
               (SELECT MAX(m.ends_on) FROM fitness_memberships m
                WHERE m.customer_id = ch.id AND m.status <> 'cancelled' AND m.starts_on <= :as_of),
               CASE WHEN ch.owner_id IS NULL THEN '(unassigned)' ELSE u.name END
        FROM chosen ch LEFT JOIN crm_users u ON u.id = ch.owner_id
        ORDER BY {", ".join(f"ch.{c}" for c in order.split(", "))}
        """,
        as_of=sql.day(as_of),
        end_of_day=sql.moment(as_of + dt.timedelta(days=1)),
        days=AT_RISK_DAYS,
        limit=AT_RISK_LIMIT,
    )


# -- comparing the two sides --------------------------------------------------------------------------


def _value(value: Any) -> Any:
    """One cell as comparable: dates as ISO text (SQLite returns them as text), numbers as float."""
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, (int, float, Decimal)) and not isinstance(value, bool):
        return float(value)
    return value


def _cell_same(ours: Any, theirs: Any) -> bool:
    a, b = _value(ours), _value(theirs)
    if isinstance(a, float) and isinstance(b, float):
        # crmkit rounds rates, money, hours and days to 2 decimals; the hand-written side does not round
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=0.0051)
    return a == b


def _first_difference(columns: Sequence[str], ours: Sequence[dict[str, Any]], theirs: Sequence[Row]) -> str | None:
    for i, (mine, hand) in enumerate(zip(ours, theirs, strict=False)):
        mine_cells = tuple(mine.get(c) for c in columns)
        if len(hand) != len(columns) or not all(map(_cell_same, mine_cells, hand)):
            return f"row {i}: crmkit {dict(zip(columns, mine_cells, strict=True))} != hand-written {hand}"
    if len(ours) != len(theirs):
        return f"crmkit has {len(ours)} rows, hand-written SQL {len(theirs)}"
    return None


def _same(columns: Sequence[str], ours: Sequence[dict[str, Any]], theirs: Sequence[Row]) -> bool:
    return _first_difference(columns, ours, theirs) is None


# -- the workloads ------------------------------------------------------------------------------------


def _hand(crm: CRM, report: HandReport, period: _Period) -> Callable[[], list[Row]]:
    def run() -> list[Row]:
        with crm.engine.connect() as conn:
            return report(conn, _Sql.of(conn), period)

    return run


def _cases(crm: CRM, as_of: dt.datetime) -> Iterable[tuple[str, dict[str, str], HandReport]]:
    """(report, parameters as a form would send them, the hand-written report) for every KPI report."""
    p = _Period.before(as_of)
    period = {"since": p.since.isoformat(), "until": p.until.isoformat()}
    day = as_of.date()
    yield "crm.leads_to_deals", period, hand_leads_to_deals
    yield "crm.average_check", period, hand_average_check
    yield "crm.customer_growth", period, hand_customer_growth
    yield "crm.lead_processing_time", period, hand_lead_processing_time
    yield "crm.plan_vs_fact", period, hand_plan_vs_fact
    yield "crm.lifecycle_funnel", period, hand_lifecycle_funnel
    yield "crm.stage_durations", period, hand_stage_durations
    yield "crm.cohort_retention", period, hand_cohort_retention
    # not a KPI of the customer base but of the CRM's own triggers; a report users read all the same
    yield (
        "crm.trigger_effectiveness",
        period,
        partial(hand_trigger_effectiveness, goals=_goals(crm, ""), only_fired=False),
    )
    yield "fitness.renewal_rate", {**period, "as_of": day.isoformat()}, partial(hand_renewal_rate, as_of=day)
    yield "fitness.attendance", period, hand_attendance
    yield "fitness.trainer_load", period, hand_trainer_load
    # an operational list (who to call today) rather than an aggregate, but a report of the same engine
    yield "fitness.members_at_risk", {"as_of": day.isoformat()}, partial(hand_members_at_risk, as_of=day)
    yield (
        "fitness.trigger_effectiveness",
        period,
        partial(hand_trigger_effectiveness, goals=_goals(crm, "fitness."), only_fired=True),
    )


def report_workloads(crm: CRM, as_of: dt.datetime) -> list[Workload]:
    """One workload per KPI report: ``crm.reports.run(name, params, now=as_of).rows`` against hand SQL."""
    period = _Period.before(as_of)
    workloads = []
    for name, params, hand in _cases(crm, as_of):
        columns = tuple(c.name for c in crm.reports.get(name).columns)
        workloads.append(
            Workload(
                name=f"report {name}",
                crmkit=partial(lambda n, ps: crm.reports.run(n, ps, now=as_of).rows, name, params),
                baseline=_hand(crm, hand, period),
                same=partial(_same, columns),
                parts=partial(_parts, columns),
            )
        )
    return workloads


def _parts(columns: Sequence[str], rows: Sequence[dict[str, Any] | Row]) -> dict[str, int]:
    """:func:`bench.common.parts` of the report's columns only, in the same order on both sides."""
    return parts([tuple(r.get(c) for c in columns) if isinstance(r, dict) else r for r in rows])


def check_reports_agree(crm: CRM, as_of: dt.datetime) -> dict[str, tuple[dict[str, int], dict[str, int]]]:
    """Run every report once both ways; raise ``AssertionError`` naming the report and the first difference,
    or the reports that gave no rows (or rows of nothing but zeros) on either side. Returns what each side
    gave per report (see ``bench.common.parts``), (crmkit, hand-written)."""
    compared = {}
    for name, params, hand in _cases(crm, as_of):
        columns = tuple(c.name for c in crm.reports.get(name).columns)
        ours = crm.reports.run(name, params, now=as_of).rows
        theirs = _hand(crm, hand, _Period.before(as_of))()
        difference = _first_difference(columns, ours, theirs)
        if difference is not None:
            raise AssertionError(f"{name}: {difference}")
        compared[name] = (_parts(columns, ours), _parts(columns, theirs))
    empty = [name for name, (ours, theirs) in compared.items() if empty_parts(ours, theirs)]
    if empty:
        raise AssertionError(
            f"no data on either side for {', '.join(empty)}: comparing empty reports proves nothing;"
            " the data must give every report rows (see bench/shapes.py)"
        )
    return compared
