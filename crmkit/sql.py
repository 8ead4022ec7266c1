"""SQL helpers for a plugin's reports and triggers. **Public and stable** (see ``docs/plugin-api.md``).

Everything here compiles to the right SQL on SQLite and PostgreSQL alike, so a report written with these
helpers gives the same rows on both:

* :class:`day_number`, :class:`hour_of_day`, :class:`iso_weekday`, :class:`year_month`,
  :class:`month_day`, :class:`seconds_between`: date and time parts of a UTC timestamp column;
* :func:`values_cte`: a small constant table (months, stages) as ``WITH name(cols) AS (VALUES ...)``;
* :func:`utc_midnight`: a day as a bound UTC timestamp, comparable with crmkit's timestamp columns;
* :func:`percent`: ``part * 100 / whole``, ``NULL`` when ``whole`` is 0;
* :class:`among`: ``column IN (values)`` for many values (on PostgreSQL one array parameter).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Float, bindparam, cast, column, func, literal, text
from sqlalchemy.sql.elements import BindParameter, ColumnElement
from sqlalchemy.sql.selectable import CTE, TextualSelect
from sqlalchemy.types import TypeEngine

from crmkit.db.functions import among, day_number, hour_of_day, iso_weekday, month_day, seconds_between, year_month
from crmkit.db.types import UTCDateTime

__all__ = [
    "among",
    "day_number",
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
