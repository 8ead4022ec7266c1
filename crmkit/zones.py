"""Local time: the IANA time zone of each branch, and the CRM's own for customers of no branch.

A single-site club sets one zone (``CRM(time_zone="Europe/Berlin")``); a chain names its branches'
(``branch_time_zones={"north": "America/New_York"}``). Times are stored in UTC; quiet hours, and what a
person calls "today" or "10 a.m.", are read in the customer's zone.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import attrs
from sqlalchemy import ColumnElement, case, literal

from crmkit.db.functions import shift_minutes
from crmkit.db.types import UTCDateTime


def zone(name: str) -> ZoneInfo:
    """The zone named ``name`` (``"Europe/Berlin"``); ``ValueError`` naming it when there is none."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"a time zone is an IANA name such as 'Europe/Berlin', got {name!r}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}: expected an IANA name such as 'Europe/Berlin'") from None


def _names(value: Mapping[str, str]) -> dict[str, str]:
    return dict(value)


@attrs.frozen
class TimeZones:
    """The CRM's zone and its branches' zones, checked when the CRM is built."""

    default: str = "UTC"
    branches: Mapping[str, str] = attrs.field(factory=dict, converter=_names)

    def __attrs_post_init__(self) -> None:
        zone(self.default)
        for name in self.branches.values():
            zone(name)

    def of(self, branch: str | None) -> ZoneInfo:
        """The zone of a customer of ``branch`` (the CRM's when the branch has none, or for no branch)."""
        return zone(self.branches.get(branch, self.default) if branch is not None else self.default)

    def named(self) -> dict[str | None, str]:
        """Each branch with a zone of its own, and ``None`` (every other customer) with the CRM's."""
        return {**{b: z for b, z in self.branches.items()}, None: self.default}

    def local(self, moment: dt.datetime, branch: str | None) -> dt.datetime:
        return moment.astimezone(self.of(branch))


def transitions(zone_info: dt.tzinfo, since: dt.datetime, until: dt.datetime) -> list[tuple[dt.datetime, int]]:
    """The UTC offset of ``zone_info`` in minutes over ``[since, until)`` (aware datetimes), as
    ``[(from, minutes), ...]``: the first entry from ``since``, one more at each change (a daylight-saving
    switch) found to the minute."""

    def offset(moment: dt.datetime) -> int:
        delta = moment.astimezone(zone_info).utcoffset() or dt.timedelta(0)
        return int(delta.total_seconds() // 60)

    out = [(since, offset(since))]
    day = dt.timedelta(days=1)
    moment = since
    while moment < until:
        step = min(moment + day, until)
        if offset(step) != out[-1][1]:
            low, high = moment, step  # the change is in (low, high]: halve it down to a minute
            while high - low > dt.timedelta(minutes=1):
                middle = low + (high - low) / 2
                low, high = (low, middle) if offset(middle) != out[-1][1] else (middle, high)
            out.append((high.replace(second=0, microsecond=0), offset(high)))
        moment = step
    return out


def local_time(
    column: ColumnElement[dt.datetime],
    zones: TimeZones,
    since: dt.datetime,
    until: dt.datetime,
    branch: ColumnElement[str | None] | None = None,
) -> ColumnElement[Any]:
    """The wall time in the customer's zone of a UTC timestamp ``column`` known to lie in ``[since, until)``,
    as SQL (for the hour and the weekday of a report). ``branch`` is the customer's branch, needed only
    when branches have zones of their own. A zone whose offset does not change over the period costs a
    constant shift; one that changes (daylight saving) a ``CASE`` over its few switches. UTC is the column
    itself."""

    def shifted(name: str) -> ColumnElement[Any]:
        steps = transitions(zone(name), since, until)
        if len(steps) == 1:
            minutes = steps[0][1]
            return column if minutes == 0 else shift_minutes(column, literal(minutes))
        # before the first switch the first offset, before the second the second...
        whens = [(column < literal(steps[i][0], UTCDateTime()), literal(steps[i - 1][1])) for i in range(1, len(steps))]
        offset = case(*whens, else_=literal(steps[-1][1]))
        return shift_minutes(column, offset)

    own = {b: z for b, z in zones.branches.items() if z != zones.default}
    if not own or branch is None:
        return shifted(zones.default)
    return case({b: shifted(z) for b, z in own.items()}, value=branch, else_=shifted(zones.default))
