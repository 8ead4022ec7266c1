"""Which contacts work: the uplift of a trigger over its control group with a 95% interval, "not enough data"
below a minimum sample, and the breakdown by what the contact policy made of each message.

Counts are made by plain Python over the firings and activities the test creates; the interval is
checked against the values Newcombe published for his method 10."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import select

from crmkit import CRM
from crmkit.db.models import TriggerFiring
from crmkit.triggers import Goal, MessageAction, Trigger
from crmkit.triggers.spec import Effectiveness, newcombe

AS_OF = dt.datetime(2026, 6, 15, 12, 0, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)


@pytest.mark.parametrize(
    ("counts", "published"),
    [  # Newcombe (1998), Statistics in Medicine 17:873-890, table II, method 10
        ((56, 70, 48, 80), (0.0524, 0.3339)),
        ((9, 10, 3, 10), (0.1705, 0.8090)),
        ((5, 56, 0, 29), (-0.0381, 0.1926)),
    ],
)
def test_the_uplift_interval_is_newcombes_method_10(
    counts: tuple[int, int, int, int], published: tuple[float, float]
) -> None:
    low, high = newcombe(*counts) or (None, None)
    assert (low, high) == pytest.approx(published, abs=5e-5)


def test_a_verdict_needs_enough_firings_in_both_groups() -> None:
    assert Effectiveness("t", 200, 80, 100, 20).verdict == "works"  # 40% against 20%: interval above 0
    assert Effectiveness("t", 200, 20, 100, 40).verdict == "backfires"
    assert Effectiveness("t", 200, 44, 100, 20).verdict == "no clear effect"  # 22% against 20%
    small = Effectiveness("t", 200, 80, 12, 2)
    assert small.verdict == "not enough data" and small.uplift_interval is not None
    assert Effectiveness("t", 12, 6, 200, 20, min_sample=10).verdict == "works"
    assert Effectiveness("t", 50, 10, 0, 0).uplift_interval is None


def _club(crm: CRM) -> list[int]:
    ids = [int(crm.customers.create({"name": f"C{i}"})["id"]) for i in range(120)]
    for cid in ids[::2]:  # half agreed to offers by SMS
        crm.consents.give(cid, "sms", "marketing", source="sign-up form", at=AS_OF - 30 * DAY)
    crm.triggers.register(
        Trigger(
            "t.winback",
            condition=lambda q: q.customer.c.name.like("C%"),
            message=MessageAction("sms", "Come back"),
            holdout=0.3,
            goal=Goal(("purchase",), window=14 * DAY),
        )
    )
    crm.triggers.run(AS_OF)
    return ids


def test_effectiveness_by_action_counts_what_plain_python_counts(crm: CRM) -> None:
    ids = _club(crm)
    with crm.session() as s:
        firings = {r.customer_id: r for r in s.execute(select(TriggerFiring)).scalars()}
    buyers = set(ids[::3])  # every third customer buys within the window
    for cid in sorted(buyers):
        crm.activities.log(
            {"customer_id": cid, "kind": "purchase", "amount": "30", "currency": "EUR",
             "occurred_at": (AS_OF + 2 * DAY).isoformat()}
        )  # fmt: skip
    rows = {e.action: e for e in crm.triggers.effectiveness(names=["t.winback"], by_action=True)}
    control = [c for c, f in firings.items() if f.held_out]
    expected: dict[str, tuple[int, int]] = {}
    for action, outcome in (("all", None), ("message sent", "sent"), ("message dropped", "dropped")):
        group = [c for c, f in firings.items() if not f.held_out and (outcome is None or f.contact == outcome)]
        expected[action] = (len(group), len(set(group) & buyers))
    assert sorted(rows) == ["all", "message dropped", "message sent"]
    for action, (n, k) in expected.items():
        e = rows[action]
        assert (e.fired, e.converted) == (n, k) and n > 0
        assert (e.held_out, e.held_out_converted) == (len(control), len(set(control) & buyers))
        assert e.uplift_interval == newcombe(k, n, e.held_out_converted, e.held_out)
    # the policy dropped the messages of those without consent: the odd ones
    assert {c for c, f in firings.items() if f.contact == "dropped"} == {
        c for c in ids[1::2] if not firings[c].held_out
    }


def test_the_report_shows_the_interval_and_says_when_there_is_not_enough_data(crm: CRM) -> None:
    _club(crm)
    params: dict[str, Any] = {"since": AS_OF.date() - 7 * DAY, "until": AS_OF.date() + 7 * DAY}
    [row] = crm.reports.run("crm.trigger_effectiveness", params).rows
    assert row["verdict"] in {"works", "backfires", "no clear effect"}  # 120 firings: both groups past 30
    assert row["uplift_low_pp"] <= row["uplift_pp"] <= row["uplift_high_pp"]
    strict = crm.reports.run("crm.trigger_effectiveness", {**params, "min_sample": 1000}).rows
    assert [r["verdict"] for r in strict] == ["not enough data"]
    broken_down = crm.reports.run("crm.trigger_effectiveness", {**params, "by_action": True}).rows
    assert [r["action"] for r in broken_down] == ["all", "message sent", "message dropped"]
    text = crm.reports.render("crm.trigger_effectiveness", {**params, "min_sample": 1000}, format="md")
    assert "not enough data" in text
