"""``crm.messages``: a message a member of staff (or the app) sends one customer, judged by the same contact
policy as every trigger's (:mod:`crmkit.contact_policy`), and written to the outbox.

``check`` says what the policy would do without writing anything; ``send`` does it: the message is queued
(at once, or held until the customer's quiet hours end) or refused with :class:`ContactRefused` naming why.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import attrs
from sqlalchemy import literal, select

from crmkit.access import Access, Actor
from crmkit.audit import Audit
from crmkit.consent import CHANNEL
from crmkit.contact_policy import ContactRules
from crmkit.db.models import CONSENT_PURPOSES
from crmkit.db.types import utcnow
from crmkit.errors import CRMError, ValidationError
from crmkit.limits import Moment, check, require_id
from crmkit.listing import require_reached
from crmkit.outbox import Outbox
from crmkit.unit import Transaction, Units


class ContactRefused(CRMError):
    """The contact policy refuses the message: no consent, or a cap reached. ``reason`` says which."""

    def __init__(self, customer_id: int, reason: str) -> None:
        self.customer_id = customer_id
        self.reason = reason
        super().__init__(f"customer {customer_id} may not be sent this message: {reason}")


@attrs.frozen
class Decision:
    """What the policy makes of a message: ``sent`` (may go now), ``held`` (may go at ``send_at``) or
    ``refused``, with the ``reason``."""

    outcome: str
    send_at: dt.datetime
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"outcome": self.outcome, "send_at": self.send_at.isoformat(), "reason": self.reason}


class Messages:
    """``crm.messages``: manual messages under the contact policy."""

    def __init__(self, *, rules: ContactRules, outbox: Outbox, units: Units, access: Access, audit: Audit) -> None:
        self._rules = rules
        self._outbox = outbox
        self._units = units
        self._access = access
        self._audit = audit

    def check(
        self,
        customer_id: int,
        channel: str,
        purpose: str = "marketing",
        *,
        at: dt.datetime | None = None,
        tx: Transaction | None = None,
    ) -> Decision:
        """What the policy would do with a message to the customer on ``channel`` for ``purpose`` at ``at``
        (now by default), writing nothing."""
        actor = self._access.require("customers:read", tx)
        customer_id, channel, when = self._args(customer_id, channel, purpose, at)
        with self._units.read(tx) as s:
            return self._decide(s, actor, customer_id, channel, purpose, when)

    def send(
        self,
        customer_id: int,
        channel: str,
        body: str,
        *,
        purpose: str = "marketing",
        subject: str | None = None,
        source: str | None = None,
        at: dt.datetime | None = None,
        tx: Transaction | None = None,
    ) -> dict[str, Any]:
        """Queue a message to the customer if the policy allows it: at once, or held until their quiet hours
        end. ``ContactRefused`` (nothing written) when consent or a cap forbids it. Returns the outbox
        record with the ``decision``."""
        actor = self._access.require("customers:write", tx)
        customer_id, channel, when = self._args(customer_id, channel, purpose, at)
        with self._units.write(tx) as t:
            decision = self._decide(t.session, actor, customer_id, channel, purpose, when, lock=True)
            if decision.outcome == "refused":
                raise ContactRefused(customer_id, decision.reason or "refused")
            message = {"channel": channel, "customer_id": customer_id, "body": body, "subject": subject,
                       "source": source, "purpose": purpose}  # fmt: skip
            held = decision.send_at if decision.outcome == "held" else None
            (record,) = self._outbox.enqueue_many([message], due_at=[decision.send_at], not_before=[held], tx=t)
            told = {"channel": channel, "purpose": purpose, "outcome": decision.outcome, "send_at": decision.send_at}
            self._audit.record(t, "message.queued", "message", entity_id=record["id"], customer_id=customer_id,
                               changes=told)  # fmt: skip
            return {**record, "decision": decision.to_dict()}

    def _args(
        self, customer_id: int, channel: str, purpose: str, at: dt.datetime | None
    ) -> tuple[int, str, dt.datetime]:
        if purpose not in CONSENT_PURPOSES:
            raise ValidationError({"purpose": [f"must be one of {', '.join(CONSENT_PURPOSES)}"]}, "invalid message")
        channel = check(CHANNEL, channel, "channel", "invalid message")
        when = utcnow() if at is None else check(Moment(), at, "at", "invalid message")
        return require_id(customer_id, "customer"), channel, when

    def _decide(
        self, s: Any, actor: Actor, customer_id: int, channel: str, purpose: str, at: dt.datetime, lock: bool = False
    ) -> Decision:
        # a send locks the customer's row first: two members of staff messaging one member at once take
        # turns, so the second sees the first's message when it counts the caps (SQLite's writers take
        # turns anyway)
        require_reached(s, actor, customer_id, lock=lock)
        if not self._rules.policy.enabled:
            return Decision("sent", at)
        judgement = self._rules.judge(literal(customer_id), channel, purpose, at)
        reason, send_at = s.execute(select(judgement.reason, judgement.send_at)).one()
        if reason is not None:
            return Decision("refused", at, reason)
        send_at = send_at if isinstance(send_at, dt.datetime) else at
        send_at = send_at.replace(tzinfo=dt.UTC) if send_at.tzinfo is None else send_at
        if send_at > at:
            return Decision("held", send_at, self._rules.held_reason())
        return Decision("sent", at)
