"""One contact policy for every message: consent, frequency caps, quiet hours, trigger priorities.

A marketing manager must not annoy members: three triggers messaging one member on one day, or an SMS at
3 a.m., or an offer to someone who never agreed to offers, are what this prevents. The policy judges every
message the same way, whether a trigger or a member of staff sends it:

1. **consent** (:mod:`crmkit.consent`): a message whose purpose needs consent (``opt_in``: ``marketing`` by
   default) goes only to a customer who gave it for that channel; any message stops once they withdrew;
2. **caps**: at most ``max`` messages of the cap's purposes (on its ``channel``, or on any) within ``per``
   of this one, counting what is already in the outbox (sent or waiting), manual messages included;
3. **quiet hours**, in the customer's local time (their branch's zone, see :mod:`crmkit.zones`): a message
   due in them is **held** until they end, not dropped.

A message refused by 1 or 2 is dropped, or given to staff as a task when its trigger says so; either way
the firing records why. In a trigger run the triggers act in priority order (highest first), so when caps
collide the more important trigger's message is the one sent. The decision is SQL over all of a trigger's
firings at once (:meth:`ContactRules.judge`), never a loop over customers.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

import attrs
from sqlalchemy import ColumnElement, case, func, literal, not_, select

from crmkit.consent import consented
from crmkit.db.models import CONSENT_PURPOSES, Customer, OutboxMessage
from crmkit.db.types import UTCDateTime
from crmkit.zones import TimeZones

#: What the policy makes of a message.
OUTCOMES = ("sent", "held", "task", "dropped")


def _purposes(value: Iterable[str]) -> tuple[str, ...]:
    names = tuple(value) if not isinstance(value, str) else (value,)
    unknown = [p for p in names if p not in CONSENT_PURPOSES]
    if unknown:
        raise ValueError(f"unknown purposes {unknown}: expected some of {list(CONSENT_PURPOSES)}")
    return names


def _positive(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value <= type(value)(0):
        raise ValueError(f"{attribute.name} must be positive, got {value!r}")


@attrs.frozen
class Cap:
    """At most ``max`` messages of ``purposes`` on ``channel`` (any channel when ``None``) within ``per``."""

    max: int = attrs.field(validator=_positive)
    per: dt.timedelta = attrs.field(validator=_positive)
    channel: str | None = None
    purposes: tuple[str, ...] = attrs.field(default=("marketing",), converter=_purposes)

    def describe(self) -> str:
        days = self.per / dt.timedelta(days=1)
        per = f"{days:g} day" + ("s" if days != 1 else "") if days >= 1 else f"{self.per}"
        on = f" by {self.channel}" if self.channel else ""
        return f"cap: at most {self.max} {'/'.join(self.purposes)} message{'s' if self.max != 1 else ''}{on} per {per}"


@attrs.frozen
class QuietHours:
    """No message between ``start`` and ``end`` in the customer's local time (``end`` may be the next
    morning): one due then waits until ``end``."""

    start: dt.time = dt.time(21, 0)
    end: dt.time = dt.time(9, 0)

    def __attrs_post_init__(self) -> None:
        if self.start == self.end:
            raise ValueError("quiet hours must start and end at different times")

    def inside(self, local: dt.time) -> bool:
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end

    def next_allowed(self, moment: dt.datetime, zone: dt.tzinfo) -> dt.datetime:
        """``moment`` (aware) if it is outside the quiet hours in ``zone``, else when they end (in UTC)."""
        local = moment.astimezone(zone)
        if not self.inside(local.time()):
            return moment
        day = local.date() if local.time() < self.end else local.date() + dt.timedelta(days=1)
        # the wall-clock end on that day; a zone's gap or fold at that hour is resolved by zoneinfo (fold=0)
        return dt.datetime.combine(day, self.end, tzinfo=zone).astimezone(dt.UTC)

    def describe(self) -> str:
        return f"quiet hours {self.start:%H:%M}-{self.end:%H:%M}"


@attrs.frozen
class ContactPolicy:
    """The rules every message is judged by. ``opt_in`` names the purposes that need a consent given
    (the others may be sent unless the customer withdrew). ``ContactPolicy.off()`` judges nothing."""

    caps: tuple[Cap, ...] = (Cap(1, dt.timedelta(days=1)), Cap(2, dt.timedelta(days=7)))
    quiet_hours: QuietHours | None = QuietHours()
    opt_in: tuple[str, ...] = attrs.field(default=("marketing",), converter=_purposes)
    enabled: bool = True

    @classmethod
    def off(cls) -> ContactPolicy:
        return cls(caps=(), quiet_hours=None, opt_in=(), enabled=False)


@attrs.frozen
class Judgement:
    """The SQL of a decision over rows with a customer: ``reason`` (why a message may not go: consent or a
    cap; ``NULL`` when it may) and ``send_at`` (when it may go: ``as_of``, or the end of the customer's
    quiet hours)."""

    reason: ColumnElement[Any]
    send_at: ColumnElement[Any]


class ContactRules:
    """The policy as SQL for one CRM: its zones decide the customers' quiet hours."""

    def __init__(self, policy: ContactPolicy, zones: TimeZones) -> None:
        self.policy = policy
        self.zones = zones

    def judge(
        self,
        customer_id: ColumnElement[int],
        channel: str,
        purpose: str,
        as_of: dt.datetime,
    ) -> Judgement:
        """The decision for a message on ``channel`` for ``purpose`` at ``as_of`` to each customer of
        ``customer_id`` (a column correlated to the rows judged)."""
        at = literal(as_of, UTCDateTime())
        policy = self.policy
        checks: list[tuple[ColumnElement[bool], str]] = []
        opt_in = purpose in policy.opt_in
        refused = f"no consent to {purpose} messages by {channel}" if opt_in else f"withdrew {purpose} by {channel}"
        checks.append((not_(consented(customer_id, channel, purpose, at, opt_in=opt_in)), refused))
        for cap in policy.caps:
            if purpose in cap.purposes and cap.channel in (None, channel):
                checks.append((self._over(customer_id, cap, as_of), cap.describe()))
        reason = case(*[(condition, literal(text)) for condition, text in checks], else_=literal(None))
        return Judgement(reason=reason, send_at=self._send_at(customer_id, as_of))

    def _over(self, customer_id: ColumnElement[int], cap: Cap, as_of: dt.datetime) -> ColumnElement[bool]:
        """Whether the customer has ``cap.max`` messages already within ``cap.per`` of ``as_of`` (before or
        after it: a message held until tomorrow morning counts too)."""
        o = OutboxMessage.__table__
        when = func.coalesce(o.c.due_at, o.c.created_at)
        conditions = [
            o.c.customer_id == customer_id,
            o.c.status != "failed",
            o.c.purpose.in_(cap.purposes),
            when > literal(as_of - cap.per, UTCDateTime()),
            when < literal(as_of + cap.per, UTCDateTime()),
        ]
        if cap.channel is not None:
            conditions.append(o.c.channel == cap.channel)
        counted = select(func.count()).select_from(o).where(*conditions).scalar_subquery()
        return counted >= cap.max

    def _send_at(self, customer_id: ColumnElement[int], as_of: dt.datetime) -> ColumnElement[Any]:
        quiet = self.policy.quiet_hours
        if quiet is None:
            return literal(as_of, UTCDateTime())
        moments = {branch: quiet.next_allowed(as_of, self.zones.of(branch)) for branch in self.zones.named()}
        default = moments.pop(None)
        if not moments or all(m == default for m in moments.values()):
            return literal(default, UTCDateTime())
        branch = select(Customer.branch).where(Customer.id == customer_id).scalar_subquery()
        whens = {b: literal(m, UTCDateTime()) for b, m in moments.items() if b is not None}
        return case(whens, value=branch, else_=literal(default, UTCDateTime()))

    def held_reason(self) -> str:
        quiet = self.policy.quiet_hours
        return f"{quiet.describe()} in the customer's local time" if quiet else ""


def outcome(reason: ColumnElement[Any], send_at: ColumnElement[Any], as_of: dt.datetime, task: bool) -> Any:
    """``sent``, ``held``, ``task`` or ``dropped`` from a stored ``reason`` and ``send_at``."""
    refused = literal("task" if task else "dropped")
    return case(
        (reason.is_not(None), refused),
        (send_at > literal(as_of, UTCDateTime()), literal("held")),
        else_=literal("sent"),
    )
