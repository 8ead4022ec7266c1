"""The outbox: claimed in a short transaction, sent outside any, the outcome recorded; backoff and a limit on
attempts that counts refusals; triggers deliver their own messages only; concurrent deliverers send once."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from probe import Probe
from same_database import TIMEOUT, open_crm
from sqlalchemy import select

from crmkit import CRM, hookimpl
from crmkit.db.models import Activity, OutboxMessage
from crmkit.outbox import LEASE, MAX_ATTEMPTS
from crmkit.testing import run_in_processes
from crmkit.triggers import MessageAction, Trigger

T0 = dt.datetime(2026, 5, 4, 9, 0, tzinfo=dt.UTC)
MINUTE = dt.timedelta(minutes=1)


class Gateway:
    """An SMS gateway that fails its first ``failures`` calls, then sends; every call is recorded."""

    plugin_name = "gateway"

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.calls: list[int] = []

    @hookimpl
    def crmkit_send_message(self, message: Any) -> bool | None:
        if message["channel"] != "sms":
            return None
        self.calls.append(message["id"])
        if len(self.calls) <= self.failures:
            raise ConnectionError("sms gateway down")
        return True


def queue(crm: CRM, customer_id: int, body: str, channel: str = "sms", source: str = "app") -> int:
    """A message written by someone else than the trigger engine, as an app would."""
    with crm.transaction() as tx:
        message = OutboxMessage(channel=channel, customer_id=customer_id, body=body, source=source)
        tx.session.add(message)
        tx.session.flush()
        return message.id


def state(crm: CRM, message_id: int) -> dict[str, Any]:
    with crm.session() as s:
        m = s.get(OutboxMessage, message_id)
        assert m is not None
        return {
            "status": m.status,
            "attempts": m.attempts,
            "error": m.error,
            "next_attempt_at": m.next_attempt_at,
            "claimed_until": m.claimed_until,
            "sent_at": m.sent_at,
        }


@pytest.fixture
def anna(crm: CRM) -> int:
    return crm.customers.create({"name": "Anna"})["id"]


def test_a_failing_gateway_is_retried_with_backoff_then_given_up(crm_factory: Any) -> None:
    gateway = Gateway(failures=100)
    crm = crm_factory([gateway])
    message = queue(crm, crm.customers.create({"name": "Anna"})["id"], "Hi")
    # each failure doubles the wait: tried at 0, 1, 3, 7 and 15 minutes (1 + 2 + 4 + 8), then given up
    tries = [T0 + m * MINUTE for m in (0, 1, 3, 7, 15)]
    for attempt, at in enumerate(tries, start=1):
        if attempt > 1:  # a moment before the backoff is over, nothing is tried
            assert crm.outbox.deliver(now=at - dt.timedelta(seconds=1)) == 0
            assert len(gateway.calls) == attempt - 1
        assert crm.outbox.deliver(now=at) == 0
        assert len(gateway.calls) == attempt
        after = state(crm, message)
        assert after["attempts"] == attempt
        assert after["error"] == "ConnectionError: sms gateway down"
        assert after["claimed_until"] is None
        assert after["next_attempt_at"] == at + MINUTE * 2 ** (attempt - 1)
        assert after["status"] == ("failed" if attempt == MAX_ATTEMPTS else "pending")
    assert MAX_ATTEMPTS == 5
    assert crm.outbox.deliver(now=T0 + dt.timedelta(days=30)) == 0  # failed: never tried again
    assert gateway.calls == [message] * 5
    assert crm.outbox.pending() == []


def test_a_message_is_sent_once_the_gateway_recovers(crm_factory: Any) -> None:
    gateway = Gateway(failures=2)
    crm = crm_factory([gateway])
    message = queue(crm, crm.customers.create({"name": "Anna"})["id"], "Hi")
    assert crm.outbox.deliver(now=T0) == 0
    assert crm.outbox.deliver(now=T0 + MINUTE) == 0
    assert crm.outbox.deliver(now=T0 + 2 * MINUTE) == 0  # backoff: 2 minutes after the second failure
    assert crm.outbox.deliver(now=T0 + 3 * MINUTE) == 1
    assert state(crm, message) | {"next_attempt_at": None} == {
        "status": "sent",
        "attempts": 2,
        "error": None,
        "next_attempt_at": None,
        "claimed_until": None,
        "sent_at": T0 + 3 * MINUTE,
    }
    assert crm.outbox.deliver(now=T0 + dt.timedelta(days=1)) == 0
    assert gateway.calls == [message] * 3


def test_a_message_no_gateway_accepts_counts_its_attempts(crm: CRM, anna: int) -> None:
    message = queue(crm, anna, "Hi", channel="pigeon")  # no plugin delivers this channel
    at = T0
    for attempt in range(1, MAX_ATTEMPTS + 1):
        assert crm.outbox.deliver(now=at) == 0
        after = state(crm, message)
        assert (after["attempts"], after["error"]) == (attempt, "no gateway delivered channel 'pigeon'")
        at = after["next_attempt_at"]
    assert state(crm, message)["status"] == "failed"
    assert crm.outbox.pending() == []


def test_deliver_takes_only_the_messages_asked_for(crm_factory: Any) -> None:
    gateway = Gateway()
    crm = crm_factory([gateway])
    anna = crm.customers.create({"name": "Anna"})["id"]
    first, second, third = (queue(crm, anna, f"m{i}") for i in range(3))
    assert crm.outbox.deliver([second], now=T0) == 1
    assert gateway.calls == [second]
    assert crm.outbox.deliver([], now=T0) == 0
    assert crm.outbox.deliver(limit=1, now=T0) == 1  # the oldest
    assert gateway.calls == [second, first]
    assert [m["id"] for m in crm.outbox.pending()] == [third]


def test_a_claim_that_lapsed_is_delivered_by_another(crm_factory: Any) -> None:
    """At least once: a deliverer that died after claiming holds its messages only until the lease ends."""
    gateway = Gateway()
    crm = crm_factory([gateway])
    message = queue(crm, crm.customers.create({"name": "Anna"})["id"], "Hi")
    [claimed] = crm.outbox._claim(None, 10, T0)  # ...and the deliverer dies before sending
    assert state(crm, message)["claimed_until"] == T0 + LEASE
    assert crm.outbox.deliver(now=T0 + LEASE - dt.timedelta(seconds=1)) == 0
    assert gateway.calls == []
    assert crm.outbox.deliver(now=T0 + LEASE) == 1
    assert gateway.calls == [message]
    # had the first deliverer sent after all, its late outcome does not overwrite the one that counts
    assert crm.outbox._send(claimed, T0 + LEASE + MINUTE) == 1
    assert state(crm, message)["sent_at"] == T0 + LEASE


class WritingGateway:
    """A gateway that, while sending, writes to the database in a transaction of its own and locks the
    message's row without waiting: both fail if the deliverer is inside a write transaction or holds the row."""

    plugin_name = "writing_gateway"

    def __init__(self) -> None:
        self.crm: CRM | None = None
        self.sent: list[int] = []

    @hookimpl
    def crmkit_send_message(self, message: Any) -> bool | None:
        assert self.crm is not None
        with self.crm.transaction() as tx:
            query = select(OutboxMessage.id).where(OutboxMessage.id == message["id"]).with_for_update(nowait=True)
            assert tx.session.scalar(query) == message["id"]
            subject = f"sms {message['id']}"
            tx.session.add(Activity(customer_id=message["customer_id"], kind="note", subject=subject, occurred_at=T0))
        self.sent.append(message["id"])
        return True


def test_the_gateway_is_called_outside_any_transaction(crm_factory: Any) -> None:
    gateway = WritingGateway()
    crm = crm_factory([gateway])
    gateway.crm = crm
    anna = crm.customers.create({"name": "Anna"})["id"]
    ids = [queue(crm, anna, f"m{i}") for i in range(3)]
    assert crm.outbox.deliver(now=T0) == 3
    assert gateway.sent == ids
    assert [state(crm, i)["status"] for i in ids] == ["sent"] * 3
    with crm.session() as s:
        assert sorted(s.scalars(select(Activity.subject))) == [f"sms {i}" for i in ids]


def test_a_trigger_run_delivers_only_the_messages_it_wrote(crm_factory: Any) -> None:
    probe = Probe()
    crm = crm_factory([probe])
    anna = crm.customers.create({"name": "Anna"})["id"]
    ben = crm.customers.create({"name": "Ben"})["id"]
    other = queue(crm, ben, "Your invoice", source="billing")  # pending, someone else's
    crm.triggers.register(
        Trigger(
            "t.hello",
            condition=lambda q: q.customer.c.id == anna,
            message=MessageAction("sms", "Hi {{ customer.name }}", purpose="service"),  # a member's own matter
        )
    )
    report = crm.triggers.run(T0)
    assert report["t.hello"].fired == 1
    assert [m for m in probe.sent if m.startswith("sms")] == [f"sms to {anna}: Hi Anna"]
    assert state(crm, other) | {"claimed_until": None} == {
        "status": "pending",
        "attempts": 0,
        "error": None,
        "next_attempt_at": None,
        "claimed_until": None,
        "sent_at": None,
    }
    assert [m["id"] for m in crm.outbox.pending()] == [other]


# -- concurrent deliverers ------------------------------------------------------------------------------


class FileGateway:
    """Records every message it sends as a line in its own file: one file per process."""

    plugin_name = "file_gateway"

    def __init__(self, path: str) -> None:
        self.path = path

    @hookimpl
    def crmkit_send_message(self, message: Any) -> bool | None:
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(f"{message['id']}\n")
        return True


def _deliverer(database: Any, start: Any, path: str) -> int:
    crm = open_crm(database, [FileGateway(path)])
    try:
        start()
        return crm.outbox.deliver(limit=10_000)
    finally:
        crm.close()


def test_concurrent_deliverers_send_each_message_exactly_once(crm: CRM, tmp_path: Path) -> None:
    customers = [crm.customers.create({"name": f"C{i}"})["id"] for i in range(5)]
    with crm.transaction() as tx:
        tx.session.add_all(
            OutboxMessage(channel="sms", customer_id=customers[i % 5], body=f"m{i}", source="app") for i in range(300)
        )
    with crm.session() as s:
        ids = sorted(s.scalars(select(OutboxMessage.id)))
    assert len(ids) == 300
    files = [tmp_path / f"sent-{n}.txt" for n in range(3)]
    results = run_in_processes(_deliverer, crm, [(str(path),) for path in files], timeout=TIMEOUT)
    sent = [int(line) for path in files if path.exists() for line in path.read_text().split()]
    assert sorted(sent) == ids  # every message once, none twice
    assert sum(results) == 300
    with crm.session() as s:
        assert set(s.scalars(select(OutboxMessage.status))) == {"sent"}


def test_many_ids_are_delivered_a_slice_at_a_time(crm_factory: Any) -> None:
    gateway = Gateway()
    crm = crm_factory([gateway])
    anna = crm.customers.create({"name": "Anna"})["id"]
    with crm.transaction() as tx:
        tx.session.add_all(OutboxMessage(channel="sms", customer_id=anna, body=f"m{i}") for i in range(130))
    with crm.session() as s:
        ids = sorted(s.scalars(select(OutboxMessage.id)))
    wanted = ids[5:125]  # more than one claim's worth, not all
    assert crm.outbox.deliver(reversed(wanted), limit=1000, now=T0) == 120
    assert gateway.calls == wanted
    assert crm.outbox.deliver(ids, limit=7, now=T0) == 7  # the limit holds across slices
    assert gateway.calls[120:] == ids[:5] + ids[125:127]
    assert [m["id"] for m in crm.outbox.pending()] == ids[127:]
