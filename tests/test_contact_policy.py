"""Consent and the contact policy: one set of rules for every message, applied to a run's firings in SQL.

The expected outcomes are worked out by hand in each test from the customers it makes, not read from the
code."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import select

from crmkit import CRM, ValidationError
from crmkit.contact_policy import Cap, ContactPolicy, QuietHours
from crmkit.db.models import OutboxMessage, Task, TriggerFiring
from crmkit.messages import ContactRefused
from crmkit.testing import run_in_processes
from crmkit.triggers import MessageAction, TaskAction, Trigger

AS_OF = dt.datetime(2026, 6, 15, 12, 0, tzinfo=dt.UTC)  # noon in London, 08:00 in New York
DAY = dt.timedelta(days=1)
NEW_YORK_NINE = dt.datetime(2026, 6, 15, 13, 0, tzinfo=dt.UTC)  # 09:00 EDT: the end of New York's quiet hours
NO_CONSENT = "no consent to marketing messages by sms"
DAY_CAP = "cap: at most 1 marketing message per 1 day"
WEEK_CAP = "cap: at most 2 marketing messages per 7 days"
MARKETING = ("a", "b", "c", "d", "e", "h", "ny")


@pytest.fixture
def crm(crm_factory: Any) -> CRM:
    return crm_factory(time_zone="Europe/London", branch_time_zones={"ny": "America/New_York"})


def _customer(crm: CRM, name: str, branch: str | None = None) -> int:
    return int(crm.customers.create({"name": name, "branch": branch})["id"])


def _earlier_message(crm: CRM, customer_id: int, ago: dt.timedelta) -> None:
    message = {"channel": "sms", "customer_id": customer_id, "body": "earlier", "purpose": "marketing", "source": "old"}
    crm.outbox.enqueue_many([message], due_at=[AS_OF - ago])


def _club(crm: CRM) -> dict[str, int]:
    """Marketing candidates ("M ...") with every kind of consent and history, and reminder ones ("R ...")."""
    ids = {key: _customer(crm, f"M {key}", "ny" if key == "ny" else None) for key in MARKETING}
    ids |= {key: _customer(crm, f"R {key}") for key in ("bea", "gus")}
    give = crm.consents.give
    month_ago = AS_OF - 30 * DAY
    for key in ("a", "c", "d", "e", "h", "ny"):
        expires = AS_OF - DAY if key == "d" else None  # d's consent ran out yesterday
        give(ids[key], "sms", "marketing", source="sign-up form", at=month_ago, expires_at=expires)
    crm.consents.withdraw(ids["c"], "sms", "marketing", source="unsubscribe link", at=AS_OF - 2 * DAY)
    give(ids["a"], "email", "marketing", source="sign-up form", at=month_ago)  # another channel: no matter
    crm.consents.withdraw(ids["gus"], "sms", "reminders", source="front desk", at=month_ago)
    _earlier_message(crm, ids["e"], dt.timedelta(hours=2))  # today: the daily cap is reached
    _earlier_message(crm, ids["h"], 3 * DAY)  # two this week: the weekly cap is reached
    _earlier_message(crm, ids["h"], 5 * DAY)
    marketing = lambda q: q.customer.c.name.like("M %")  # noqa: E731
    crm.triggers.register(
        Trigger(
            "t.offer", condition=marketing, priority=80, message=MessageAction("sms", "Offer for {{ customer.name }}")
        )
    )
    crm.triggers.register(
        Trigger(
            "t.promo",
            condition=marketing,
            priority=20,
            message=MessageAction("sms", "Promo", refused_task=TaskAction("Call {{ customer.name }} about the promo")),
        )
    )
    crm.triggers.register(
        Trigger(
            "t.booking",
            condition=lambda q: q.customer.c.name.like("R %"),
            message=MessageAction("sms", "See you tomorrow", purpose="reminders"),
        )
    )
    return ids


def _firings(crm: CRM, trigger: str) -> dict[int, tuple[str | None, str | None, dt.datetime | None]]:
    with crm.session() as s:
        rows = s.execute(
            select(
                TriggerFiring.customer_id, TriggerFiring.contact, TriggerFiring.contact_reason, TriggerFiring.send_at
            ).where(TriggerFiring.trigger == trigger)
        ).all()
    return {r.customer_id: (r.contact, r.contact_reason, r.send_at) for r in rows}


def test_a_run_applies_consent_caps_quiet_hours_and_priorities(crm: CRM) -> None:
    ids = _club(crm)
    report = crm.triggers.run(AS_OF)
    offer = _firings(crm, "t.offer")
    assert {cid: o[0] for cid, o in offer.items()} == {
        ids["a"]: "sent",
        ids["ny"]: "held",  # 08:00 in New York: held until 09:00 there
        ids["b"]: "dropped",
        ids["c"]: "dropped",  # withdrew two days ago
        ids["d"]: "dropped",  # expired yesterday
        ids["e"]: "dropped",
        ids["h"]: "dropped",
    }
    assert [offer[ids[k]][1] for k in "bcdeh"] == [NO_CONSENT, NO_CONSENT, NO_CONSENT, DAY_CAP, WEEK_CAP]
    assert offer[ids["ny"]][2] == NEW_YORK_NINE and offer[ids["a"]][2] == AS_OF
    assert "quiet hours 21:00-09:00" in str(offer[ids["ny"]][1])
    # the low-priority promo comes after the offer: a and ny have their message for the day now
    promo = _firings(crm, "t.promo")
    assert {cid: o[0] for cid, o in promo.items()} == {ids[k]: "task" for k in MARKETING}
    assert [promo[ids[k]][1] for k in ("a", "ny", "e", "h", "b")] == [DAY_CAP, DAY_CAP, DAY_CAP, WEEK_CAP, NO_CONSENT]
    booking = _firings(crm, "t.booking")  # reminders need no consent, only no withdrawal, and no cap applies
    assert {cid: o[0] for cid, o in booking.items()} == {ids["bea"]: "sent", ids["gus"]: "dropped"}
    assert booking[ids["gus"]][1] == "withdrew reminders by sms"
    assert report["t.offer"].contacts == {"sent": 1, "held": 1, "dropped": 5}
    assert report["t.offer"].contact_reasons == {
        NO_CONSENT: 3, DAY_CAP: 1, WEEK_CAP: 1, "quiet hours 21:00-09:00 in the customer's local time": 1,
    }  # fmt: skip
    with crm.session() as s:
        sent = s.execute(select(OutboxMessage.customer_id, OutboxMessage.due_at, OutboxMessage.source)
                         .where(OutboxMessage.source.like("trigger:%"))).all()  # fmt: skip
        tasks = s.scalars(select(Task.title).where(Task.source == "trigger:t.promo")).all()
    assert sorted((r.customer_id, r.source) for r in sent) == sorted(
        [(ids["a"], "trigger:t.offer"), (ids["ny"], "trigger:t.offer"), (ids["bea"], "trigger:t.booking")]
    )
    assert {r.customer_id: r.due_at for r in sent if r.customer_id == ids["ny"]} == {ids["ny"]: NEW_YORK_NINE}
    assert sorted(tasks) == sorted(f"Call M {k} about the promo" for k in MARKETING)


def test_a_dry_run_shows_what_the_policy_would_hold_back_and_writes_nothing(crm: CRM) -> None:
    _club(crm)
    report = crm.triggers.run(AS_OF, dry_run=True)
    assert report["t.offer"].matched == 7
    assert report["t.offer"].contacts == {"sent": 1, "held": 1, "dropped": 5}
    assert report["t.offer"].contact_reasons[NO_CONSENT] == 3
    assert report["t.booking"].contacts == {"sent": 1, "dropped": 1}
    with crm.session() as s:
        assert s.scalars(select(TriggerFiring.id)).all() == []
        assert len(s.scalars(select(OutboxMessage.id)).all()) == 3  # the three earlier messages only


def test_a_manual_message_is_judged_by_the_same_policy(crm: CRM) -> None:
    ids = _club(crm)
    now = AS_OF
    assert crm.messages.check(ids["b"], "sms", at=now).reason == NO_CONSENT
    with pytest.raises(ContactRefused, match="cap: at most 1 marketing message per 1 day"):
        crm.messages.send(ids["e"], "sms", "Hello", at=now)
    first = crm.messages.send(ids["a"], "sms", "Hello", at=now)
    assert first["decision"]["outcome"] == "sent"
    with pytest.raises(ContactRefused, match="per 1 day"):  # the manual message counts too
        crm.messages.send(ids["a"], "sms", "Again", at=now)
    held = crm.messages.send(ids["ny"], "sms", "Hello", at=now)
    assert held["decision"] == {
        "outcome": "held",
        "send_at": NEW_YORK_NINE.isoformat(),
        "reason": held["decision"]["reason"],
    }
    assert held["next_attempt_at"].startswith("2026-06-15T13:00")
    service = crm.messages.send(ids["b"], "sms", "Your membership renews", purpose="service", at=now)
    assert service["decision"]["outcome"] == "sent"  # opt-out purpose, never withdrawn
    with crm.session() as s:  # the refused ones wrote nothing
        bodies = sorted(s.scalars(select(OutboxMessage.body).where(OutboxMessage.source.is_(None))))
    assert bodies == ["Hello", "Hello", "Your membership renews"]


def test_consent_history_answers_for_any_moment(crm: CRM) -> None:
    cid = _customer(crm, "Zoe")
    t = [AS_OF - n * DAY for n in (40, 30, 20, 10)]
    crm.consents.give(cid, "email", "marketing", source="web form", at=t[0])
    crm.consents.withdraw(cid, "email", "marketing", source="unsubscribe link", at=t[1])
    crm.consents.give(cid, "email", "marketing", source="front desk", at=t[2], expires_at=t[3])
    can = crm.consents.can_contact
    expected = [  # worked out from the four changes above
        (t[0] - DAY, False),  # before any consent
        (t[0], True),
        (t[1] - DAY, True),
        (t[1], False),  # withdrawn
        (t[2], True),  # given again
        (t[3] - DAY, True),
        (t[3], False),  # expired
        (AS_OF, False),
    ]
    assert [can(cid, "email", "marketing", at) for at, _ in expected] == [ok for _, ok in expected]
    assert can(cid, "sms", "marketing", AS_OF) is False  # another channel
    assert can(cid, "email", "service", AS_OF) is True  # opt-out purpose
    history = crm.consents.history(cid)
    assert [(h["status"], h["source"]) for h in history] == [
        ("given", "web form"),
        ("withdrawn", "unsubscribe link"),
        ("given", "front desk"),
    ]
    assert [e["action"] for e in crm.audit.for_customer(cid)][-3:] == [
        "consent.given",
        "consent.withdrawn",
        "consent.given",
    ]
    assert [c["status"] for c in crm.privacy.export(cid)["consents"]] == ["given", "withdrawn", "given"]


def test_bad_consent_input_gets_crmkits_error(crm: CRM) -> None:
    cid = _customer(crm, "Zoe")
    bad: list[dict[str, Any]] = [
        {"channel": "SMS!", "purpose": "marketing", "source": "x"},
        {"channel": "sms", "purpose": "spam", "source": "x"},
        {"channel": "sms", "purpose": "marketing", "source": ""},
        {"channel": "sms", "purpose": "marketing", "source": "x\x00"},
        {"channel": "sms", "purpose": "marketing", "source": "x", "at": AS_OF + 400 * DAY},
        {"channel": "sms", "purpose": "marketing", "source": "x", "at": AS_OF, "expires_at": AS_OF - DAY},
    ]
    for args in bad:
        with pytest.raises(ValidationError):
            crm.consents.give(cid, args.pop("channel"), args.pop("purpose"), **args)
    crm.consents.give(cid, "sms", "marketing", source="x", at=AS_OF)
    with pytest.raises(ValidationError, match="recorded already"):
        crm.consents.give(cid, "sms", "marketing", source="y", at=AS_OF)
    assert len(crm.consents.history(cid)) == 1


def test_policy_settings_are_checked_when_the_crm_is_built(crm_factory: Any) -> None:
    with pytest.raises(ValueError, match="unknown time zone"):
        crm_factory(time_zone="Mars/Olympus")
    with pytest.raises(ValueError, match="unknown purposes"):
        Cap(1, DAY, purposes=("spam",))
    with pytest.raises(ValueError, match="different times"):
        QuietHours(dt.time(9), dt.time(9))
    off = crm_factory(contact_policy=ContactPolicy.off())
    cid = _customer(off, "Anyone")
    assert off.messages.send(cid, "sms", "hi")["decision"]["outcome"] == "sent"


def _sender(database: tuple[str, dict[str, Any]], start: Any, worker: int, customer_id: int) -> bool:
    crm = CRM(database[0], engine_options=database[1], load_entry_points=False, time_zone="Europe/London")
    start()
    try:
        crm.messages.send(customer_id, "sms", f"from desk {worker}", at=AS_OF)
        return True
    except ContactRefused:
        return False
    finally:
        crm.close()


def test_staff_sending_at_once_to_one_member_respect_the_daily_cap(crm: CRM) -> None:
    cid = _customer(crm, "Popular")
    crm.consents.give(cid, "sms", "marketing", source="sign-up form", at=AS_OF - 30 * DAY)
    sent = run_in_processes(_sender, crm, [(w, cid) for w in range(4)], timeout=120)
    assert sorted(sent) == [False, False, False, True]  # one message a day: one desk wins, three are refused
    with crm.session() as s:
        assert len(s.scalars(select(OutboxMessage.id).where(OutboxMessage.customer_id == cid)).all()) == 1
