"""Contacts over the lifecycle and the sequences of contacts before a conversion, against a club whose
every contact is written out (and counted) by hand below."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from crmkit import CRM, ValidationError
from crmkit.triggers import Trigger

T0 = dt.datetime(2026, 3, 1, 10, 0, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)
PERIOD = {"since": "2026-03-01", "until": "2026-05-01"}


def _contact(crm: CRM, cid: int, kind: str, days: float, **extra: Any) -> None:
    crm.activities.log(
        {"customer_id": cid, "kind": kind, "direction": "outbound", "occurred_at": (T0 + days * DAY).isoformat(),
         **extra}
    )  # fmt: skip


def _buy(crm: CRM, cid: int, days: float) -> None:
    crm.activities.log({"customer_id": cid, "kind": "purchase", "amount": "40", "currency": "EUR",
                        "occurred_at": (T0 + days * DAY).isoformat()})  # fmt: skip


@pytest.fixture
def club(crm: CRM) -> dict[str, int]:
    ids = {}
    for key in "abcd":
        ids[key] = crm.customers.create_historical({"name": key.upper()}, created_at=T0)["id"]
    a, b, c, d = (ids[k] for k in "abcd")
    crm.lifecycle.move(a, "active", cause="joined", at=T0 + 10 * DAY)
    _contact(crm, a, "call", 2)  # lead
    _contact(crm, a, "call", 5)  # lead
    _contact(crm, a, "call", 12)  # active
    crm.triggers.register(Trigger("t.nudge", condition=lambda q: q.customer.c.id == a))
    crm.triggers.run(T0 + 15 * DAY)  # active: a trigger's contact
    _buy(crm, a, 20)
    _contact(crm, b, "call", 3)
    crm.activities.log(
        {"customer_id": b, "kind": "call", "direction": "inbound", "occurred_at": (T0 + 4 * DAY).isoformat()}
    )
    _contact(crm, b, "call", 4.5, status="cancelled")  # did not happen: not a contact
    _buy(crm, b, 6)
    _buy(crm, c, 8)  # nobody contacted c
    for days, kind in ((1, "email"), (2, "sms"), (3, "call"), (4, "chat")):
        _contact(crm, d, kind, days)
    _buy(crm, d, 9)
    _buy(crm, d, 30)  # a second purchase: only the first conversion counts
    return ids


def test_contacts_count_in_the_stage_the_customer_was_in(crm: CRM, club: dict[str, int]) -> None:
    rows = crm.reports.run("crm.contacts_by_lifecycle", PERIOD).rows
    # lead: a's two calls, b's one outbound call, d's four contacts; active: a's call and the trigger
    assert rows == [
        {"lifecycle": "lead", "customers": 3, "contacts": 7, "per_customer": 2.33},
        {"lifecycle": "active", "customers": 1, "contacts": 2, "per_customer": 2.0},
    ]


def test_the_last_three_contacts_before_each_first_conversion(crm: CRM, club: dict[str, int]) -> None:
    rows = crm.reports.run("crm.contact_sequences", PERIOD).rows
    assert rows == [
        {"sequence": "(no contact)", "conversions": 1, "share_pct": 25.0},
        {"sequence": "call", "conversions": 1, "share_pct": 25.0},
        {"sequence": "call → call → t.nudge", "conversions": 1, "share_pct": 25.0},
        {"sequence": "sms → call → chat", "conversions": 1, "share_pct": 25.0},
    ]
    short = crm.reports.run("crm.contact_sequences", {**PERIOD, "lookback_days": 6}).rows
    # within 6 days: a's t.nudge (day 15, before 20), b's call (day 3, before 6), c nothing, d's call and
    # chat (days 3 and 4, before 9)
    assert {r["sequence"] for r in short} == {"t.nudge", "call", "(no contact)", "call → chat"}
    for bad in ({"lookback_days": 0}, {"kinds": "teleport"}):
        with pytest.raises(ValidationError):
            crm.reports.run("crm.contact_sequences", {**PERIOD, **bad})
