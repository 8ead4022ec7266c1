"""The outbox: messages leave the system only after the transaction that wrote them has committed.

Delivery goes through the ``crmkit_send_message`` hook, implemented by the app or a plugin for each
channel (crmkit ships no email or SMS gateway). :meth:`Outbox.deliver` works in three steps, so that no
transaction is open while a gateway is talking to the outside world:

1. **claim**, in a short transaction: pending messages that are due (never tried, or their backoff is
   over) and not claimed by a live deliverer get ``claimed_until = now + lease``. On PostgreSQL the rows
   are locked ``FOR UPDATE SKIP LOCKED``, on SQLite write transactions run one at a time, so two
   deliverers never claim the same message;
2. **send** each claimed message through the hook, outside any transaction;
3. **record** each outcome in a short transaction of its own: ``sent`` with ``sent_at``; or, when the
   gateway raised or none accepted the message, one more attempt, the error, and
   ``next_attempt_at = now + backoff(attempts)`` (or later, when the gateway raised a
   :class:`~crmkit.errors.DeliveryError` with a longer ``retry_after``); the message is ``failed`` once
   ``MAX_ATTEMPTS`` attempts are spent, or at once when the gateway raised
   :class:`~crmkit.errors.PermanentDeliveryError`.

The guarantee is **at least once**: a deliverer that dies between sending and recording leaves a claim
that lapses after the lease, and the message is sent again. Gateways should therefore be idempotent on
the message ``id`` (most SMS and email APIs take a client reference for this).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import attrs
from sqlalchemy import Table, insert, or_, select, update

from crmkit.db.models import Customer, OutboxMessage
from crmkit.db.types import utcnow
from crmkit.errors import DeliveryError, PermanentDeliveryError, ValidationError
from crmkit.fastrows import dumper
from crmkit.hooks import Hooks
from crmkit.limits import load_each
from crmkit.schemas import MessageIn, MessageOut, load
from crmkit.unit import Transaction, Units

#: After this many failed attempts (a gateway error, or no gateway accepting the message) a message is
#: marked failed and no longer retried.
MAX_ATTEMPTS = 5
#: The wait after the first failed attempt; it doubles with each further one, up to ``MAX_BACKOFF``.
BACKOFF = dt.timedelta(minutes=1)
MAX_BACKOFF = dt.timedelta(hours=1)
#: How long a claim keeps other deliverers away; past it, the claim has lapsed (its deliverer died).
LEASE = dt.timedelta(minutes=5)
#: Messages claimed at a time: small, so that a claim's lease covers the sending of all its messages.
CLAIM_SIZE = 50
#: What a row of :meth:`Outbox.enqueue_many` holds for each column its input may leave out.
_MESSAGE_DEFAULTS: dict[str, Any] = {
    "customer_id": None,
    "subject": None,
    "source": None,
    "source_id": None,
    "status": "pending",
    "attempts": 0,
    "next_attempt_at": None,
    "claimed_until": None,
    "error": None,
    "sent_at": None,
    "purpose": None,
}


def backoff(attempts: int) -> dt.timedelta:
    """The wait before the next try of a message that has failed ``attempts`` times (1 or more)."""
    return min(BACKOFF * 2 ** min(attempts - 1, 30), MAX_BACKOFF)


@attrs.frozen
class _Claimed:
    payload: dict[str, Any]
    attempts: int
    claimed_until: dt.datetime


class Outbox:
    """``crm.outbox``."""

    def __init__(self, *, hooks: Hooks, units: Units) -> None:
        self._hooks = hooks
        self._units = units

    def deliver(self, ids: Iterable[int] | None = None, *, limit: int = 500, now: dt.datetime | None = None) -> int:
        """Hand due pending messages to the channel hooks (at most ``limit``, oldest first, or only those of
        ``ids``); return how many were sent.

        ``now`` is the clock (the current time when ``None``): a message is due when its backoff is over by
        then, and sending, backoff and claims are dated by it. Messages are claimed ``CLAIM_SIZE`` at a time
        and sent outside any transaction; see the module's docstring for the steps and the guarantee.
        """
        sent = handled = 0
        for scope in self._scopes(ids):
            while handled < limit:
                claimed = self._claim(scope, min(CLAIM_SIZE, limit - handled), now)
                if not claimed:
                    break
                for message in claimed:
                    sent += self._send(message, now)
                handled += len(claimed)
        return sent

    def pending(self, *, tx: Transaction | None = None) -> list[dict[str, Any]]:
        """Messages not sent yet, oldest first: the payload with ``attempts``, the last ``error`` and
        ``next_attempt_at`` (ISO 8601, UTC; ``None`` when due at once)."""
        with self._units.read(tx) as s:
            rows = s.scalars(select(OutboxMessage).where(OutboxMessage.status == "pending").order_by(OutboxMessage.id))
            return [
                self.payload(m)
                | {
                    "attempts": m.attempts,
                    "error": m.error,
                    "next_attempt_at": None
                    if m.next_attempt_at is None
                    else m.next_attempt_at.astimezone(dt.UTC).isoformat(),
                }
                for m in rows
            ]

    @staticmethod
    def payload(message: OutboxMessage) -> dict[str, Any]:
        """What the ``crmkit_send_message`` hook gets: the message as a JSON-safe dict."""
        return {
            "id": message.id,
            "channel": message.channel,
            "customer_id": message.customer_id,
            "subject": message.subject,
            "body": message.body,
            "source": message.source,
            "source_id": message.source_id,
            "created_at": message.created_at.astimezone(dt.UTC).isoformat(),
        }

    # -- the steps -----------------------------------------------------------------------------------

    @staticmethod
    def _scopes(ids: Iterable[int] | None) -> Iterator[list[int] | None]:
        """What each claim may choose from: every message, or the ids asked for a slice at a time (an
        ``IN`` list far below SQLite's limit of bound parameters)."""
        if ids is None:
            yield None
            return
        wanted = sorted(set(ids))
        for start in range(0, len(wanted), CLAIM_SIZE):
            yield wanted[start : start + CLAIM_SIZE]

    def _claim(self, ids: list[int] | None, limit: int, now: dt.datetime | None) -> list[_Claimed]:
        """Claim up to ``limit`` due messages in a transaction of their own, committed on return."""
        at = now or utcnow()
        until = at + LEASE
        query = (
            select(OutboxMessage)
            .where(
                OutboxMessage.status == "pending",
                or_(OutboxMessage.next_attempt_at.is_(None), OutboxMessage.next_attempt_at <= at),
                or_(OutboxMessage.claimed_until.is_(None), OutboxMessage.claimed_until <= at),
            )
            .order_by(OutboxMessage.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        if ids is not None:
            query = query.where(OutboxMessage.id.in_(ids))
        with self._units.open() as tx:
            messages = list(tx.session.scalars(query))
            for message in messages:
                message.claimed_until = until
            return [_Claimed(self.payload(m), m.attempts, until) for m in messages]

    def _send(self, message: _Claimed, now: dt.datetime | None) -> int:
        """Send one claimed message through the hook (no transaction is open) and record the outcome."""
        payload = message.payload
        error: str | None
        give_up = False
        wait = dt.timedelta(0)  # at least this long before the next try, when the gateway asked for it
        try:
            delivered = self._hooks.send_message(dict(payload))
        except Exception as exc:  # the gateway's failure is the message's, not the deliverer's
            error = f"{type(exc).__name__}: {exc}"
            give_up = isinstance(exc, PermanentDeliveryError)
            if isinstance(exc, DeliveryError) and exc.retry_after is not None:
                wait = exc.retry_after
        else:
            error = None if delivered else f"no gateway delivered channel {payload['channel']!r}"
        at = now or utcnow()
        if error is None:
            values: dict[str, Any] = {"status": "sent", "sent_at": at, "error": None, "claimed_until": None}
        else:
            attempts = message.attempts + 1
            values = {
                "attempts": attempts,
                "error": error,
                "next_attempt_at": at + max(backoff(attempts), wait),
                "claimed_until": None,
                "status": "failed" if give_up or attempts >= MAX_ATTEMPTS else "pending",
            }
        with self._units.open() as tx:
            # only while the claim is still ours: one that lapsed may have been taken over by another
            # deliverer, whose outcome is then the one that counts
            tx.session.execute(
                update(OutboxMessage)
                .where(
                    OutboxMessage.id == payload["id"],
                    OutboxMessage.status == "pending",
                    OutboxMessage.claimed_until == message.claimed_until,
                )
                .values(**values)
            )
        return 1 if error is None else 0

    def enqueue(self, message: Mapping[str, Any], *, tx: Transaction | None = None) -> dict[str, Any]:
        """Write one message to the outbox; see :meth:`enqueue_many`."""
        return self.enqueue_many([message], tx=tx)[0]

    def enqueue_many(
        self,
        messages: Iterable[Mapping[str, Any]],
        *,
        due_at: Sequence[dt.datetime] | None = None,
        not_before: Sequence[dt.datetime | None] | None = None,
        tx: Transaction | None = None,
    ) -> list[dict[str, Any]]:
        """Validate and write messages to the outbox in the unit of work; return the stored records.

        Each message is ``{"channel", "body", "customer_id", "subject", "source", "source_id"}`` (the last
        four optional) and its ``purpose`` (``marketing``, ``service``, ``reminders``: what the contact policy
        counts it as), checked by :class:`crmkit.schemas.MessageIn`; the customer must exist. ``not_before``
        gives each message the time it may be sent from (a message held by the contact policy's quiet
        hours) and ``due_at`` the time it is meant for (the contact policy's caps count messages by it; the
        time of writing by default). This method does not judge messages by the policy:
        ``crm.messages.send`` does. All or
        nothing: ``ValidationError`` lists every problem as ``"[index].field"``. Once the unit of work
        commits, these messages (and only these: others belong to their own writers, or to a periodic
        :meth:`deliver`) are handed to the ``crmkit_send_message`` hook; if it rolls back, nothing is sent.
        """
        schema = MessageIn()
        loaded = load_each(
            messages, lambda data: load(schema, data, message="invalid message"), message="invalid messages"
        )
        if not loaded:
            return []
        with self._units.write(tx) as t:
            wanted = {m["customer_id"] for m in loaded if m.get("customer_id") is not None}
            known = set(t.session.scalars(select(Customer.id).where(Customer.id.in_(wanted)))) if wanted else set()
            errors: dict[str, Any] = {}
            for i, m in enumerate(loaded):
                if m.get("customer_id") is not None and m["customer_id"] not in known:
                    errors[f"[{i}].customer_id"] = [f"no customer with id {m['customer_id']}"]
            if errors:
                raise ValidationError(errors, "invalid messages")
            table: Table = OutboxMessage.__table__
            now = utcnow()
            rows = [{**_MESSAGE_DEFAULTS, "created_at": now, "due_at": now, **m} for m in loaded]
            if due_at is not None:
                for row, moment in zip(rows, due_at, strict=True):
                    row["due_at"] = moment
            if not_before is not None:
                for row, after in zip(rows, not_before, strict=True):
                    row["next_attempt_at"] = after
            stored = list(
                t.session.execute(insert(table).returning(*table.c, sort_by_parameter_order=True), rows).mappings()
            )
            ids = [row["id"] for row in stored]

            def deliver() -> None:
                self.deliver(ids, limit=len(ids))

            t.after_commit(deliver)
            dump = dumper(MessageOut())
            return [dump(row) for row in stored]
