"""Local time: the IANA time zone of each branch, and the CRM's own for customers of no branch.

A single-site club sets one zone (``CRM(time_zone="Europe/Berlin")``); a chain names its branches'
(``branch_time_zones={"north": "America/New_York"}``). Times are stored in UTC; quiet hours, and what a
person calls "today" or "10 a.m.", are read in the customer's zone.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import attrs


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
