"""The outbox: messages leave the system only after the transaction that wrote them has committed.

Delivery goes through the ``crmkit_send_message`` hook, implemented by the app or a plugin for each
channel (crmkit ships no email or SMS gateway). A message nobody delivers stays pending, with the reason.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from crmkit.db.models import OutboxMessage
from crmkit.db.types import utcnow

if TYPE_CHECKING:
    from crmkit.app import CRM

#: After this many failed attempts a message is marked failed and no longer retried.
MAX_ATTEMPTS = 5


class Outbox:
    """``crm.outbox``."""

    def __init__(self, crm: CRM) -> None:
        self._crm = crm

    def deliver(self, limit: int = 500) -> int:
        """Hand pending messages to the channel hooks; return how many were sent.

        On PostgreSQL rows are locked with ``SKIP LOCKED`` so two deliverers never send one message twice.
        """
        crm = self._crm
        sent = 0
        with crm.transaction() as tx:
            query = (
                select(OutboxMessage)
                .where(OutboxMessage.status == "pending")
                .order_by(OutboxMessage.id)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
            for message in tx.session.scalars(query):
                payload = self.payload(message)
                message.attempts += 1
                try:
                    delivered = crm.hook.crmkit_send_message(message=payload)
                except Exception as exc:
                    message.error = f"{type(exc).__name__}: {exc}"
                    if message.attempts >= MAX_ATTEMPTS:
                        message.status = "failed"
                    continue
                if delivered:
                    message.status = "sent"
                    message.sent_at = utcnow()
                    message.error = None
                    sent += 1
                else:
                    message.error = f"no gateway delivered channel {message.channel!r}"
        return sent

    def pending(self) -> list[dict[str, Any]]:
        with self._crm.session() as s:
            rows = s.scalars(select(OutboxMessage).where(OutboxMessage.status == "pending").order_by(OutboxMessage.id))
            return [self.payload(m) | {"attempts": m.attempts, "error": m.error} for m in rows]

    @staticmethod
    def payload(message: OutboxMessage) -> dict[str, Any]:
        return {
            "id": message.id,
            "channel": message.channel,
            "customer_id": message.customer_id,
            "subject": message.subject,
            "body": message.body,
            "source": message.source,
            "source_id": message.source_id,
        }
