"""SQL helpers for a plugin's reports and triggers. **Public and stable** (see ``docs/plugin-api.md``).

Everything here compiles to the right SQL on SQLite and PostgreSQL alike, so a report written with these
helpers gives the same rows on both:

* :class:`day_number`, :class:`hour_of_day`, :class:`iso_weekday`, :class:`year_month`,
  :class:`month_day`, :class:`seconds_between`: date and time parts of a UTC timestamp column;
* :func:`values_cte`: a small constant table (months, stages) as ``WITH name(cols) AS (VALUES ...)``;
* :func:`utc_midnight`: a day as a bound UTC timestamp, comparable with crmkit's timestamp columns;
* :func:`percent`: ``part * 100 / whole``, ``NULL`` when ``whole`` is 0;
* :class:`among`: ``column IN (values)`` for many values (on PostgreSQL one array parameter);
* :func:`add_months`, :func:`add_days`, :func:`calendar_day`, :func:`days_between`,
  :func:`calendar_window`: calendar arithmetic on (UTC) dates, month ends clamped alike on both databases.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Date, Float, Integer, and_, bindparam, cast, column, func, literal, text
from sqlalchemy.sql.elements import BindParameter, ColumnElement
from sqlalchemy.sql.selectable import CTE, TextualSelect
from sqlalchemy.types import TypeEngine

from crmkit.db import functions as _f
from crmkit.db.functions import among, day_number, hour_of_day, iso_weekday, month_day, seconds_between, year_month
from crmkit.db.types import UTCDateTime

__all__ = [
    "add_days",
    "add_months",
    "among",
    "calendar_day",
    "calendar_window",
    "day_number",
    "days_between",
    "hour_of_day",
    "iso_weekday",
    "month_day",
    "percent",
    "seconds_between",
    "utc_midnight",
    "values_cte",
    "year_month",
]


class _BoundValues(TextualSelect):
    """``VALUES (...), ...`` of bound parameters, named like the columns of a ``WITH name(cols)``."""

    name_cte_columns = True
    inherit_cache = True


def values_cte(name: str, columns: Sequence[tuple[str, TypeEngine[Any]]], rows: Sequence[tuple[Any, ...]]) -> CTE:
    """A small constant table (months, stages) as ``WITH name(cols) AS (VALUES ...)``; ``rows`` must not be
    empty. ``columns`` are ``(name, type)`` pairs, each row a tuple in that order.

    Not SQLAlchemy's ``values()``: a statement holding one is never cached, so every run would compile the
    whole query again (milliseconds, as long as a small report's query). Written as text with a bound
    parameter per cell, the statement is compiled once per number of rows and the rows are only bound.
    """
    if not rows:
        raise ValueError(f"values_cte({name!r}) needs at least one row")
    binds: list[BindParameter[Any]] = []
    tuples = []
    for i, row in enumerate(rows):
        keys = [f"{name}_{i}_{j}" for j in range(len(columns))]
        binds += [bindparam(k, v, type_=t) for k, v, (_, t) in zip(keys, row, columns, strict=True)]
        tuples.append("(" + ", ".join(f":{k}" for k in keys) + ")")
    clause = text(f"VALUES {', '.join(tuples)}").bindparams(*binds)
    return _BoundValues(clause, [column(n, t) for n, t in columns]).cte(name)


def utc_midnight(day: dt.date) -> ColumnElement[dt.datetime]:
    """UTC midnight of ``day`` as a bound timestamp, comparable with crmkit's timestamp columns on both
    databases (the half-open periods ``[since, until)`` of the reports start and end there)."""
    if isinstance(day, dt.datetime):
        raise TypeError(f"utc_midnight takes a date, got the datetime {day!r}")
    return literal(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC), UTCDateTime())


def percent(part: ColumnElement[Any], whole: ColumnElement[Any]) -> ColumnElement[Any]:
    """``part * 100 / whole``, ``NULL`` when ``whole`` is 0. The cast keeps SQLite off integer division."""
    return cast(part, Float) * 100 / func.nullif(whole, 0)


# -- calendar arithmetic ----------------------------------------------------------------------------------
#
# Every helper works on UTC calendar days: a timestamp counts on its UTC date. They take the day as an SQL
# expression (a column, ``q.as_of``...) or a Python value (bound as a parameter), so that a later version
# can pass a branch's local day the same way.


def _day(value: dt.date | ColumnElement[Any]) -> ColumnElement[Any]:
    if isinstance(value, dt.datetime):
        return literal(value, UTCDateTime())
    if isinstance(value, dt.date):
        return literal(value, Date())
    return value


def _count(value: int | ColumnElement[Any]) -> ColumnElement[Any]:
    if isinstance(value, bool) or not isinstance(value, (int, ColumnElement)):
        raise TypeError(f"expected an int or an SQL integer expression, got {value!r}")
    return literal(value, Integer()) if isinstance(value, int) else value


def calendar_day(moment: dt.date | ColumnElement[Any]) -> ColumnElement[dt.date]:
    """The UTC calendar date of a timestamp (a date stays itself), as a ``DATE``."""
    return _f.calendar_day(_day(moment))


def add_months(day: dt.date | ColumnElement[Any], months: int | ColumnElement[Any]) -> ColumnElement[dt.date]:
    """The date ``months`` calendar months after ``day`` (its UTC date for a timestamp; ``months`` may be
    negative or an SQL integer expression, such as a plugin column), clamped to the end of a shorter
    month: Jan 31 + 1 month is Feb 28 (Feb 29 in a leap year), Mar 31 - 1 month is Feb 28/29, Aug 31 + 1
    is Sep 30. The same on SQLite and PostgreSQL (PostgreSQL's ``date + interval`` rule; SQLite's own
    ``'+1 month'`` would give Mar 3)."""
    return _f.add_months(_day(day), _count(months))


def add_days(day: dt.date | ColumnElement[Any], days: int | ColumnElement[Any]) -> ColumnElement[dt.date]:
    """The date ``days`` days after ``day`` (its UTC date for a timestamp)."""
    return _f.add_days(_day(day), _count(days))


def days_between(start: dt.date | ColumnElement[Any], end: dt.date | ColumnElement[Any]) -> ColumnElement[int]:
    """Whole calendar days from ``start``'s UTC date to ``end``'s (negative when ``end`` is earlier): 23:59
    to 00:01 the next day is 1, 00:01 to 23:59 the same day is 0. Dates from 1970 on."""
    return day_number(_day(end)) - day_number(_day(start))


def calendar_window(
    moment: ColumnElement[Any], start: dt.date | ColumnElement[Any], days: int | ColumnElement[Any] = 1
) -> ColumnElement[bool]:
    """``moment`` (a timestamp column) falls on one of the ``days`` calendar days from ``start``'s UTC date:
    ``start <= moment < start + days`` at UTC midnights, written so that an index on ``moment`` is used
    (the column is compared, never wrapped in a function)."""
    first = calendar_day(_day(start))
    return and_(moment >= first, moment < add_days(first, days))
