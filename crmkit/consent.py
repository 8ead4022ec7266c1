"""Consent: whether a customer agreed to be contacted on a channel for a purpose, kept as history.

Each change is a row of ``crm_consents``: given (with where it was given and until when) or withdrawn.
Nothing is updated in place, so the history answers "could we contact them then?" as well as now.

Purposes differ in what they need (:class:`crmkit.contact_policy.ContactPolicy`'s ``opt_in``): by default
``marketing`` needs a consent given and not expired or withdrawn (opt-in), while ``service`` and
``reminders`` (a member's own bookings and membership) may be sent unless the customer withdrew (opt-out).

:func:`consented` is the same rule as a SQL condition, so a trigger run judges every firing in one
statement; :meth:`Consents.can_contact` answers for one customer.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from marshmallow import validate
from sqlalchemy import ColumnElement, Select, and_, literal, literal_column, not_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import aliased

from crmkit.access import Access
from crmkit.audit import Audit
from crmkit.db.models import CONSENT_PURPOSES, Consent
from crmkit.db.types import UTCDateTime, utcnow
from crmkit.errors import ValidationError
from crmkit.limits import Moment, Text, check, require_id
from crmkit.listing import require_reached
from crmkit.unit import Transaction, Units

_INVALID = "invalid consent"
#: A channel's name, as the outbox and the gateways know it (``sms``, ``email``).
CHANNEL = Text(max_length=20, validate=validate.Regexp(r"^[a-z][a-z0-9_]*$", error="a lowercase channel name"))
_SOURCE = Text(max_length=100, validate=validate.Length(min=1, error="say where it was given or withdrawn"))
#: How far ahead of the clock a change may be dated (clocks of two machines differ a little).
_SKEW = dt.timedelta(minutes=5)


def consented(
    customer_id: ColumnElement[int], channel: str, purpose: str, at: ColumnElement[dt.datetime], *, opt_in: bool
) -> ColumnElement[bool]:
    """The SQL condition "the customer may be contacted on ``channel`` for ``purpose`` at ``at``", correlated
    to ``customer_id``: with ``opt_in``, a consent given by then, not expired then and not withdrawn since;
    otherwise, no withdrawal by then that a later consent did not undo."""
    change, later = aliased(Consent), aliased(Consent)
    same = and_(change.customer_id == customer_id, change.channel == channel, change.purpose == purpose)
    superseded = (
        select(literal_column("1"))
        .where(
            later.customer_id == change.customer_id,
            later.channel == change.channel,
            later.purpose == change.purpose,
            later.at > change.at,
            later.at <= at,
        )
        .exists()
    )
    if opt_in:
        given: Select[Any] = select(literal_column("1")).where(
            same,
            change.status == "given",
            change.at <= at,
            (change.expires_at.is_(None)) | (change.expires_at > at),
            not_(superseded),
        )
        return given.exists()
    withdrawn: Select[Any] = select(literal_column("1")).where(
        same, change.status == "withdrawn", change.at <= at, not_(superseded)
    )
    return not_(withdrawn.exists())


class Consents:
    """``crm.consents``: record consents given and withdrawn, read their history, and ask
    :meth:`can_contact`."""

    def __init__(self, *, units: Units, access: Access, audit: Audit, opt_in: Iterable[str]) -> None:
        self._units = units
        self._access = access
        self._audit = audit
        self._opt_in = frozenset(opt_in)

    def give(
        self,
        customer_id: int,
        channel: str,
        purpose: str,
        *,
        source: str,
        at: dt.datetime | None = None,
        expires_at: dt.datetime | None = None,
        tx: Transaction | None = None,
    ) -> dict[str, Any]:
        """Record that the customer agreed to be contacted on ``channel`` for ``purpose``, where
        (``source``: "web form", "front desk") and when (``at``, now by default), until ``expires_at``."""
        return self._change(customer_id, channel, purpose, "given", source, at, expires_at, tx)

    def withdraw(
        self,
        customer_id: int,
        channel: str,
        purpose: str,
        *,
        source: str,
        at: dt.datetime | None = None,
        tx: Transaction | None = None,
    ) -> dict[str, Any]:
        """Record that the customer withdrew their consent (an unsubscribe link, a call to the desk)."""
        return self._change(customer_id, channel, purpose, "withdrawn", source, at, None, tx)

    def history(self, customer_id: int, *, tx: Transaction | None = None) -> list[dict[str, Any]]:
        """Every change of the customer's consents, oldest first."""
        actor = self._access.require("customers:read", tx)
        customer_id = require_id(customer_id, "customer")
        with self._units.read(tx) as s:
            require_reached(s, actor, customer_id)
            rows = s.scalars(
                select(Consent).where(Consent.customer_id == customer_id).order_by(Consent.at, Consent.channel)
            )
            return [_record(r) for r in rows]

    def can_contact(
        self,
        customer_id: int,
        channel: str,
        purpose: str,
        at: dt.datetime | None = None,
        *,
        tx: Transaction | None = None,
    ) -> bool:
        """Whether the customer's consents allow contacting them on ``channel`` for ``purpose`` at ``at``
        (now by default). The contact policy (caps, quiet hours) is :meth:`crmkit.contacts.Contacts.check`."""
        actor = self._access.require("customers:read", tx)
        customer_id = require_id(customer_id, "customer")
        channel = check(CHANNEL, channel, "channel", _INVALID)
        purpose = _purpose(purpose)
        when = utcnow() if at is None else check(Moment(), at, "at", _INVALID)
        with self._units.read(tx) as s:
            require_reached(s, actor, customer_id)
            moment = literal(when, UTCDateTime())
            condition = consented(literal(customer_id), channel, purpose, moment, opt_in=purpose in self._opt_in)
            return bool(s.scalar(select(condition)))

    def opt_in(self, purpose: str) -> bool:
        return purpose in self._opt_in

    # -- helpers -------------------------------------------------------------------------------------

    def _change(
        self,
        customer_id: int,
        channel: str,
        purpose: str,
        status: str,
        source: str,
        at: dt.datetime | None,
        expires_at: dt.datetime | None,
        tx: Transaction | None,
    ) -> dict[str, Any]:
        actor = self._access.require("customers:write", tx)
        customer_id = require_id(customer_id, "customer")
        values = {
            "channel": check(CHANNEL, channel, "channel", _INVALID),
            "purpose": _purpose(purpose),
            "source": check(_SOURCE, source, "source", _INVALID),
            "at": utcnow() if at is None else check(Moment(), at, "at", _INVALID),
            "expires_at": None if expires_at is None else check(Moment(), expires_at, "expires_at", _INVALID),
        }
        if values["at"] > utcnow() + _SKEW:
            raise ValidationError({"at": ["is in the future"]}, _INVALID)
        if values["expires_at"] is not None and values["expires_at"] <= values["at"]:
            raise ValidationError({"expires_at": ["must be after the consent was given"]}, _INVALID)
        try:
            with self._units.write(tx) as t:
                require_reached(t.session, actor, customer_id)
                row = Consent(customer_id=customer_id, status=status, actor=actor.name[:100], **values)
                t.session.add(row)
                t.session.flush()
                record = _record(row)
                told = {k: record[k] for k in ("channel", "purpose", "source", "at", "expires_at")}
                self._audit.record(
                    t, f"consent.{status}", "consent", entity_id=f"{values['channel']}:{values['purpose']}",
                    customer_id=customer_id, changes=told,
                )  # fmt: skip
                return record
        except IntegrityError:
            # the primary key: a change of this consent at this very moment is recorded already
            at_text = values["at"].isoformat()
            raise ValidationError(
                {"at": [f"a change of this consent at {at_text} is recorded already"]}, _INVALID
            ) from None


def _purpose(purpose: object) -> str:
    if purpose not in CONSENT_PURPOSES:
        raise ValidationError({"purpose": [f"must be one of {', '.join(CONSENT_PURPOSES)}"]}, _INVALID)
    return str(purpose)


def _iso(value: dt.datetime | None) -> str | None:
    return None if value is None else value.astimezone(dt.UTC).isoformat()


def _record(row: Consent) -> dict[str, Any]:
    return {
        "customer_id": row.customer_id,
        "channel": row.channel,
        "purpose": row.purpose,
        "status": row.status,
        "at": _iso(row.at),
        "source": row.source,
        "expires_at": _iso(row.expires_at),
        "actor": row.actor,
    }
