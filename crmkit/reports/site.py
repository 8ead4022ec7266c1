"""The dashboard and the links between report pages, for a folder of HTML files or a web app.

A page never builds a URL itself: it asks its :class:`Links`. :class:`FileLinks` points at the files
``write_site`` writes (``index.html``, ``<report>.html``); the web app (:mod:`crmkit.web`) gives links to
its routes, with the parameters in the query string and downloads beside each report.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any, Literal, Protocol
from urllib.parse import urlencode

import attrs

from crmkit.reports.spec import GROUPS, Headline, Report

PeriodKind = Literal["day", "week", "month", "quarter", "year"]
PERIOD_KINDS: tuple[PeriodKind, ...] = ("day", "week", "month", "quarter", "year")


class Links(Protocol):
    """Where a page's links lead."""

    @property
    def live(self) -> bool:
        """Whether the pages are served live (a parameter form reruns the report) or are files."""
        ...

    def home(self) -> str: ...

    def report(self, name: str, params: Mapping[str, Any] | None = None) -> str: ...

    def download(self, name: str, format: str, params: Mapping[str, Any] | None = None) -> str | None: ...

    def definitions(self, anchor: str = "") -> str: ...


@attrs.frozen
class FileLinks:
    """Links between the files of a folder written by :meth:`crmkit.reports.Reports.write_site`."""

    live: bool = False

    def home(self) -> str:
        return "index.html"

    def report(self, name: str, params: Mapping[str, Any] | None = None) -> str:
        return f"{name}.html"

    def download(self, name: str, format: str, params: Mapping[str, Any] | None = None) -> str | None:
        return None

    def definitions(self, anchor: str = "") -> str:
        return f"kpis.html#{anchor}" if anchor else "kpis.html"


@attrs.frozen
class PathLinks:
    """Links to a web app's routes under ``prefix``: ``/``, ``/reports/<name>?...``,
    ``/reports/<name>.<format>?...``."""

    prefix: str = ""
    live: bool = True

    def home(self) -> str:
        return f"{self.prefix}/"

    def report(self, name: str, params: Mapping[str, Any] | None = None) -> str:
        return f"{self.prefix}/reports/{name}{_query(params)}"

    def download(self, name: str, format: str, params: Mapping[str, Any] | None = None) -> str | None:
        return f"{self.prefix}/reports/{name}.{format}{_query(params)}"

    def definitions(self, anchor: str = "") -> str:
        return f"{self.prefix}/definitions" + (f"#{anchor}" if anchor else "")


def _query(params: Mapping[str, Any] | None) -> str:
    pairs = {k: _text(v) for k, v in (params or {}).items() if v is not None}
    return f"?{urlencode(pairs)}" if pairs else ""


def _text(value: Any) -> str:
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# -- periods ---------------------------------------------------------------------------------------------


@attrs.frozen
class Period:
    """A period so far, ``[since, until)`` with ``until`` the moment the dashboard is computed, and the
    same span from the start of the period before it: this month to 2 p.m. on the 4th compares with last
    month to 2 p.m. on its 4th. The starts are midnights in the CRM's time zone (aware datetimes)."""

    kind: PeriodKind
    since: dt.datetime
    until: dt.datetime
    previous_since: dt.datetime
    previous_until: dt.datetime

    @classmethod
    def to_now(cls, kind: PeriodKind, now: dt.datetime, zone: dt.tzinfo = dt.UTC) -> Period:
        if kind not in PERIOD_KINDS:
            raise ValueError(f"period must be one of {', '.join(PERIOD_KINDS)}, got {kind!r}")
        local = now.astimezone(zone)
        start_day = _start(kind, local.date())
        previous_day = _start(kind, start_day - dt.timedelta(days=1))
        start = dt.datetime.combine(start_day, dt.time(), zone)
        previous = dt.datetime.combine(previous_day, dt.time(), zone)
        # a 31st compares with the end of a 30-day month, never with the current period
        previous_until = min(previous + (local - start), start)
        return cls(kind, start, now, previous, previous_until)

    @property
    def title(self) -> str:
        names = {"day": "Today", "week": "This week", "month": "This month", "quarter": "This quarter"}
        return names.get(self.kind, "This year")


def _start(kind: PeriodKind, day: dt.date) -> dt.date:
    if kind == "day":
        return day
    if kind == "week":
        return day - dt.timedelta(days=day.weekday())
    if kind == "month":
        return day.replace(day=1)
    if kind == "quarter":
        return day.replace(month=(day.month - 1) // 3 * 3 + 1, day=1)
    return day.replace(month=1, day=1)


# -- the dashboard ---------------------------------------------------------------------------------------


@attrs.frozen
class Figure:
    """A headline's value in the period, its value in the previous one, and whether the change is good."""

    headline: Headline
    value: float | None
    previous: float | None

    @property
    def good(self) -> bool | None:
        """``True`` when the number moved the way ``headline.better`` wants, ``None`` when it did not move
        or cannot be compared."""
        if self.value is None or self.previous is None or self.value == self.previous:
            return None
        return (self.value > self.previous) == (self.headline.better == "up")


@attrs.frozen
class Dashboard:
    period: Period
    figures: tuple[Figure, ...]
    groups: tuple[tuple[str, tuple[Report, ...]], ...]
    generated_at: dt.datetime


def grouped(reports: Sequence[Report]) -> tuple[tuple[str, tuple[Report, ...]], ...]:
    """The reports by section, in the order of :data:`GROUPS`, then any plugin's own sections, then "Other";
    by title inside a section."""
    sections: dict[str, list[Report]] = {}
    for report in reports:
        sections.setdefault(report.group or "", []).append(report)
    order = [*GROUPS, *sorted(k for k in sections if k and k not in GROUPS), ""]
    return tuple(
        (group_title(key), tuple(sorted(sections[key], key=lambda r: r.title.lower())))
        for key in order
        if key in sections
    )


def group_title(key: str) -> str:
    if not key:
        return "Other reports"
    return GROUPS.get(key) or key.replace("_", " ").capitalize()


def siblings(report: Report, reports: Sequence[Report]) -> tuple[Report, ...]:
    """The reports in ``report``'s section, itself included, by title."""
    return tuple(sorted((r for r in reports if r.group == report.group), key=lambda r: r.title.lower()))
