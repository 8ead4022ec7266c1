"""KPIs: exact, hand-counted numbers on small datasets built through the public API, and empty data."""

from __future__ import annotations

import datetime as dt
import inspect
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypedDict

import pytest
from sqlalchemy import update

from crmkit import CRM, StageSpec, TransitionSpec, hookimpl
from crmkit.db import Customer, StageHistory
from crmkit.reports import kpis


class Period(TypedDict):
    since: dt.date
    until: dt.date


class Cohorts(Period):
    months: int


MARCH: Period = {"since": dt.date(2026, 3, 1), "until": dt.date(2026, 4, 1)}
DOCS = Path(__file__).resolve().parent.parent / "docs" / "kpis.md"


def at(day: str, time: str = "00:00") -> dt.datetime:
    return dt.datetime.fromisoformat(f"{day}T{time}").replace(tzinfo=dt.UTC)


class SubStages:
    """A vertical's sub-stage of active, to check that sub-stages roll up into their core stage."""

    plugin_name = "kpi_substages"

    @hookimpl
    def crmkit_register_stages(self) -> list[StageSpec]:
        return [StageSpec("at_risk", parent="active")]

    @hookimpl
    def crmkit_register_transitions(self) -> list[TransitionSpec]:
        return [TransitionSpec("active", "at_risk"), TransitionSpec("at_risk", "active")]


@pytest.fixture
def crm(crm_factory: Any) -> CRM:
    return crm_factory([SubStages()])


def customer(crm: CRM, name: str, created: dt.datetime, *, stage: str = "lead", **fields: Any) -> int:
    """A customer created at ``created``: the API stamps "now", so the row and its first history row are
    dated back, which also lets later moves be dated in the past."""
    cid: int = crm.customers.create({"name": name, "stage": stage, **fields}, allow_duplicate=True)["id"]
    with crm.engine.begin() as conn:
        conn.execute(update(Customer).where(Customer.id == cid).values(created_at=created, stage_changed_at=created))
        conn.execute(update(StageHistory).where(StageHistory.customer_id == cid).values(at=created))
    return cid


def moves(crm: CRM, cid: int, *steps: tuple[str, dt.datetime]) -> None:
    for stage, when in steps:
        crm.lifecycle.move(cid, stage, cause=f"test: to {stage}", at=when)


def activity(crm: CRM, cid: int, kind: str, when: dt.datetime, **values: Any) -> None:
    report = crm.activities.ingest([{"customer_id": cid, "kind": kind, "occurred_at": when.isoformat(), **values}])
    assert report.ok, report.rejected


def user(crm: CRM, name: str) -> int:
    uid: int = crm.users.create({"name": name})["id"]
    return uid


# -- 1. leads to deals -------------------------------------------------------------------------------


def test_leads_to_deals_per_source_with_total(crm: CRM) -> None:
    customer(crm, "Before", at("2026-02-28", "23:59"), source="web")  # created before the period
    b = customer(crm, "B", at("2026-03-01"), source="web")
    moves(crm, b, ("active", at("2026-03-10")))  # deal
    customer(crm, "C", at("2026-03-15"), source="web")  # lead only
    d = customer(crm, "D", at("2026-03-20"), source="ads")
    moves(crm, d, ("active", at("2026-04-01")))  # active exactly at `until`: not a deal of this period
    customer(crm, "E", at("2026-03-31", "23:59:59"), stage="active")  # created active: lead and deal
    customer(crm, "After", at("2026-04-01"), source="ads")  # created at `until`: outside
    g = customer(crm, "G", at("2026-03-05"), source="web")
    moves(crm, g, ("active", at("2026-03-06")), ("lost", at("2026-03-20")))  # reached active: a deal

    assert kpis.leads_to_deals(crm, **MARCH) == [
        {"source": "web", "leads": 3, "deals": 2, "per_100": 66.67},  # B, C, G; deals B, G
        {"source": "ads", "leads": 1, "deals": 0, "per_100": 0.0},  # D
        {"source": "(none)", "leads": 1, "deals": 1, "per_100": 100.0},  # E
        {"source": "(all)", "leads": 5, "deals": 3, "per_100": 60.0},
    ]
    assert kpis.leads_to_deals(crm, **MARCH, by="campaign") == [
        {"campaign": "(none)", "leads": 5, "deals": 3, "per_100": 60.0},
        {"campaign": "(all)", "leads": 5, "deals": 3, "per_100": 60.0},
    ]
    with pytest.raises(ValueError, match="by must be one of"):
        kpis.leads_to_deals(crm, **MARCH, by="name")  # type: ignore[arg-type]


# -- 2. average check --------------------------------------------------------------------------------


def test_average_check_per_month_and_year(crm: CRM) -> None:
    x = customer(crm, "X", at("2025-12-01"))
    y = customer(crm, "Y", at("2025-12-01"))
    w = customer(crm, "W", at("2025-12-01"))

    def buy(cid: int, amount: str, when: dt.datetime, status: str = "done", currency: str = "EUR") -> None:
        activity(crm, cid, "purchase", when, amount=amount, currency=currency, status=status)

    # January: X 100 + 50, Y 30, W 20 -> 200 from 4 purchases by 3 customers
    buy(x, "100.00", at("2026-01-01"))
    buy(x, "50.00", at("2026-01-15"))
    buy(y, "30.00", at("2026-01-20"))
    buy(w, "20.00", at("2026-01-31", "23:59"))
    buy(y, "999.00", at("2026-01-21"), status="planned")  # not done: ignored
    buy(w, "500.00", at("2026-01-22"), status="cancelled")  # not done: ignored
    activity(crm, x, "payment", at("2026-01-23"), amount="70.00", currency="EUR")  # not a purchase
    buy(x, "1.00", at("2025-12-31", "23:59"))  # before the period
    # February: nothing. March: X 10 EUR, Y 5 USD; X 20 at `until` is outside
    buy(x, "10.00", at("2026-03-31", "23:59:59"))
    buy(y, "5.00", at("2026-03-10"), currency="USD")
    buy(x, "20.00", at("2026-04-01"))

    q1: Period = {"since": dt.date(2026, 1, 1), "until": dt.date(2026, 4, 1)}
    assert kpis.average_check(crm, **q1) == [
        {
            "period": "2026-01",
            "revenue": 200.0,
            "purchases": 4,
            "paying_customers": 3,
            "average_check": 66.67,  # 200 / 3
            "avg_ticket": 50.0,  # 200 / 4
        },
        {
            "period": "2026-02",
            "revenue": 0.0,
            "purchases": 0,
            "paying_customers": 0,
            "average_check": None,
            "avg_ticket": None,
        },
        {
            "period": "2026-03",
            "revenue": 15.0,  # currencies are added as they are unless filtered
            "purchases": 2,
            "paying_customers": 2,
            "average_check": 7.5,
            "avg_ticket": 7.5,
        },
    ]
    march_eur = kpis.average_check(crm, **q1, currency="EUR")[2]
    assert march_eur == {
        "period": "2026-03",
        "revenue": 10.0,
        "purchases": 1,
        "paying_customers": 1,
        "average_check": 10.0,
        "avg_ticket": 10.0,
    }
    # the quarter as one year row: 215 from 6 purchases by X, Y, W
    assert kpis.average_check(crm, **q1, period="year") == [
        {
            "period": "2026",
            "revenue": 215.0,
            "purchases": 6,
            "paying_customers": 3,
            "average_check": 71.67,
            "avg_ticket": 35.83,
        }
    ]


# -- 3. customer growth ------------------------------------------------------------------------------


def test_customer_growth_per_month_with_clipped_first_month(crm: CRM) -> None:
    customer(crm, "Dec 1", at("2025-12-05"))
    customer(crm, "Dec 2", at("2025-12-20"))
    customer(crm, "Jan 10", at("2026-01-10"))  # before `since` (Jan 15): part of January's start
    keep = customer(crm, "Jan 20", at("2026-01-20"), email="same@example.com")
    dupe = customer(crm, "Feb dup", at("2026-02-10"), email="same@example.com")
    crm.customers.merge(keep, dupe)  # the duplicate is deleted, so February adds nobody
    customer(crm, "Mar 1", at("2026-03-01"))
    customer(crm, "Mar 31", at("2026-03-31", "23:59"))
    customer(crm, "Apr 1", at("2026-04-01"))  # at `until`: outside

    assert kpis.customer_growth(crm, since=dt.date(2026, 1, 15), until=dt.date(2026, 4, 1)) == [
        {"month": "2026-01", "start": 3, "new": 1, "end": 4, "growth_pct": 33.33},  # Jan 15-31 only
        {"month": "2026-02", "start": 4, "new": 0, "end": 4, "growth_pct": 0.0},
        {"month": "2026-03", "start": 4, "new": 2, "end": 6, "growth_pct": 50.0},
    ]


def test_active_growth_counts_moves_into_and_out_of_the_active_base(crm: CRM) -> None:
    a = customer(crm, "Active since Dec", at("2025-12-01"), stage="active")  # in the base all along
    b = customer(crm, "Lead, joins Feb 3", at("2025-12-10"))
    moves(crm, b, ("active", at("2026-02-03")))
    c = customer(crm, "Joins Jan 5, lost Mar 2", at("2026-01-05"), stage="active")
    moves(crm, c, ("loyal", at("2026-02-01")), ("lost", at("2026-03-02")))  # active -> loyal: neither
    d = customer(crm, "Lost in Dec, back Mar 10", at("2025-11-01"), stage="active")
    moves(
        crm,
        d,
        ("lost", at("2025-12-20")),
        (
            "active",
            at("2026-03-10"),
        ),
    )
    e = customer(crm, "Sub-stage", at("2026-01-20"), stage="active")
    # at_risk is a sub-stage of active: still in the base until the move to lost on the 25th
    moves(crm, e, ("at_risk", at("2026-02-10")), ("active", at("2026-02-20")), ("lost", at("2026-02-25")))
    customer(crm, "Never active", at("2026-01-07"))
    f = customer(crm, "Joins at until", at("2026-02-01"))
    moves(crm, f, ("active", at("2026-04-01")))  # at `until`: outside
    del a
    # by hand, base at Jan 15 (since): a, c (d lost in Dec) = 2; Jan 15-31: e joins; Feb: b joins, e leaves;
    # March: c leaves, d joins
    assert kpis.active_growth(crm, since=dt.date(2026, 1, 15), until=dt.date(2026, 4, 1)) == [
        {"month": "2026-01", "start": 2, "joined": 1, "left": 0, "end": 3, "growth_pct": 50.0},
        {"month": "2026-02", "start": 3, "joined": 1, "left": 1, "end": 3, "growth_pct": 0.0},
        {"month": "2026-03", "start": 3, "joined": 1, "left": 1, "end": 3, "growth_pct": 0.0},
    ]
    # the report shows either base, with the definition of both on the page
    rows = crm.reports.run("crm.customer_growth", {"since": "2026-01-15", "until": "2026-04-01", "base": "active"})
    assert [(r["start"], r["new"], r["left"], r["end"]) for r in rows.rows] == [
        (2, 1, 0, 3),
        (3, 1, 1, 3),
        (3, 1, 1, 3),
    ]
    assert "active base" in crm.reports.get("crm.customer_growth").description


# -- 4. lead processing time -------------------------------------------------------------------------


def test_lead_processing_time_per_manager(crm: CRM) -> None:
    ann, bob = user(crm, "Ann"), user(crm, "Bob")
    l1 = customer(crm, "L1", at("2026-03-02", "10:00"), owner_id=ann)
    activity(crm, l1, "call", at("2026-03-02", "09:00"), direction="outbound")  # before creation: ignored
    activity(crm, l1, "call", at("2026-03-02", "10:30"), direction="inbound")  # inbound: ignored
    activity(crm, l1, "call", at("2026-03-02", "10:45"), direction="outbound", status="planned")  # not done
    activity(crm, l1, "call", at("2026-03-02", "12:00"), direction="outbound", owner_id=bob)  # 2 h
    l2 = customer(crm, "L2", at("2026-03-05"), owner_id=ann)
    activity(crm, l2, "email", at("2026-03-06", "06:00"), direction="outbound")  # 30 h
    activity(crm, l2, "email", at("2026-03-07"), direction="outbound")  # not the first
    customer(crm, "L3", at("2026-03-10"), owner_id=ann)  # never contacted
    l4 = customer(crm, "L4", at("2026-03-20", "08:00"), owner_id=bob)
    activity(crm, l4, "sms", at("2026-03-20", "08:20"), direction="outbound")  # 1/3 h
    l5 = customer(crm, "L5", at("2026-03-31", "23:00"))
    activity(crm, l5, "call", at("2026-04-01", "01:00"), direction="outbound")  # 2 h, after `until`: counts
    early = customer(crm, "Feb", at("2026-02-28"), owner_id=ann)  # created before the period
    activity(crm, early, "call", at("2026-03-01"), direction="outbound")

    assert kpis.lead_processing_time(crm, **MARCH) == [
        {"owner_id": ann, "owner": "Ann", "leads": 3, "contacted": 2, "avg_hours": 16.0},  # (2 + 30) / 2
        {"owner_id": bob, "owner": "Bob", "leads": 1, "contacted": 1, "avg_hours": 0.33},
        {"owner_id": None, "owner": "(unassigned)", "leads": 1, "contacted": 1, "avg_hours": 2.0},
    ]


# -- 5. plan vs fact ---------------------------------------------------------------------------------


def test_plan_vs_fact_counts_each_target_over_its_own_period(crm: CRM) -> None:
    ann, bob = user(crm, "Ann"), user(crm, "Bob")

    def target(uid: int, metric: str, start: str, end: str, planned: int) -> None:
        crm.targets.set(
            {"user_id": uid, "metric": metric, "period_start": start, "period_end": end, "planned": planned}
        )

    target(ann, "contacts", "2026-03-01", "2026-03-31", 4)
    target(ann, "meetings", "2026-03-01", "2026-03-31", 2)
    target(ann, "deals", "2026-03-01", "2026-03-31", 0)
    target(bob, "deals", "2026-02-15", "2026-03-15", 2)  # overlaps the start of the report
    target(bob, "meetings", "2026-03-31", "2026-04-30", 1)  # overlaps its last day
    target(bob, "contacts", "2026-02-01", "2026-02-28", 5)  # ends before: not shown
    target(ann, "contacts", "2026-04-01", "2026-04-30", 5)  # starts at `until`: not shown

    somebody = customer(crm, "Somebody", at("2026-01-01"))
    contact = crm.customers.add_contact(somebody, {"name": "Sam"})["id"]

    def act(kind: str, when: dt.datetime, owner: int, **values: Any) -> None:
        activity(crm, somebody, kind, when, owner_id=owner, **values)

    # Ann's contacts: 3 of these count
    act("call", at("2026-03-01"), ann, direction="outbound")  # first instant of the target
    act("email", at("2026-03-31", "23:59"), ann, direction="outbound")  # its last day is included
    act("chat", at("2026-03-15"), ann, direction="outbound")
    act("sms", at("2026-04-01"), ann, direction="outbound")  # after period_end
    act("call", at("2026-03-05"), ann, direction="inbound")  # inbound
    act("call", at("2026-03-06"), ann, direction="outbound", status="planned")  # not done
    act("visit", at("2026-03-07"), ann, direction="outbound")  # not a contact kind
    act("call", at("2026-03-08"), bob, direction="outbound")  # Bob's
    # Ann's meetings: 1 done, 1 cancelled; Bob's meeting falls in his target's own period, after `until`
    meeting = {"contact_id": contact, "subject": "Offer", "result": "ok"}
    act("meeting", at("2026-03-10"), ann, **meeting)
    act("meeting", at("2026-03-11"), ann, status="cancelled", **meeting)
    act("meeting", at("2026-04-15"), bob, **meeting)

    # Ann's deals: a lead converted, a customer created active, a win-back = 3
    converted = customer(crm, "Converted", at("2026-02-01"), owner_id=ann)
    moves(crm, converted, ("active", at("2026-03-05")))
    customer(crm, "Walk-in", at("2026-03-20"), stage="active", owner_id=ann)
    won_back = customer(crm, "Won back", at("2026-01-05"), stage="active", owner_id=ann)
    moves(crm, won_back, ("lost", at("2026-02-01")), ("active", at("2026-03-25")))
    # not deals: a loyal customer downgraded to active, and moves between sub-stages of active
    downgraded = customer(crm, "Downgraded", at("2026-01-05"), stage="active", owner_id=ann)
    moves(crm, downgraded, ("loyal", at("2026-02-10")), ("active", at("2026-03-12")))
    wobbling = customer(crm, "Wobbling", at("2026-01-05"), stage="active", owner_id=ann)
    moves(crm, wobbling, ("at_risk", at("2026-03-02")), ("active", at("2026-03-09")))
    bobs = customer(crm, "Bob's", at("2026-02-01"), owner_id=bob)
    moves(crm, bobs, ("active", at("2026-03-20")))  # Bob's customer (after his target's period): not Ann's deal

    # Bob's deals over Feb 15 - Mar 15: p1 (twice, counted once) and p2 = 2
    p1 = customer(crm, "P1", at("2026-02-01"), owner_id=bob)
    moves(crm, p1, ("active", at("2026-02-15")), ("lost", at("2026-02-20")), ("active", at("2026-03-01")))
    p2 = customer(crm, "P2", at("2026-02-01"), owner_id=bob)
    moves(crm, p2, ("active", at("2026-03-15", "23:30")))
    p3 = customer(crm, "P3", at("2026-02-01"), owner_id=bob)
    moves(crm, p3, ("active", at("2026-03-16")))  # the day after period_end
    p4 = customer(crm, "P4", at("2026-02-01"), owner_id=bob)
    moves(crm, p4, ("active", at("2026-02-14", "23:59")))  # the day before period_start

    def row(uid: int, name: str, metric: str, start: str, end: str, planned: int, done: int, pct: Any) -> Any:
        return {
            "user_id": uid,
            "user": name,
            "metric": metric,
            "period_start": start,
            "period_end": end,
            "planned": planned,
            "done": done,
            "progress_pct": pct,
        }

    assert kpis.plan_vs_fact(crm, **MARCH) == [
        row(ann, "Ann", "contacts", "2026-03-01", "2026-03-31", 4, 3, 75.0),
        row(ann, "Ann", "meetings", "2026-03-01", "2026-03-31", 2, 1, 50.0),
        row(ann, "Ann", "deals", "2026-03-01", "2026-03-31", 0, 3, None),  # nothing planned: no rate
        row(bob, "Bob", "deals", "2026-02-15", "2026-03-15", 2, 2, 100.0),
        row(bob, "Bob", "meetings", "2026-03-31", "2026-04-30", 1, 1, 100.0),
    ]


def test_plan_vs_fact_without_facts_is_zero_progress(crm: CRM) -> None:
    ann = user(crm, "Ann")
    crm.targets.set(
        {"user_id": ann, "metric": "meetings", "period_start": "2026-03-01", "period_end": "2026-03-31", "planned": 10}
    )
    assert kpis.plan_vs_fact(crm, **MARCH) == [
        {
            "user_id": ann,
            "user": "Ann",
            "metric": "meetings",
            "period_start": "2026-03-01",
            "period_end": "2026-03-31",
            "planned": 10,
            "done": 0,
            "progress_pct": 0.0,
        }
    ]


# -- 6. lifecycle funnel and stage durations -----------------------------------------------------------


def test_lifecycle_funnel_counts_stages_ever_reached_by_the_cohort(crm: CRM) -> None:
    a = customer(crm, "A", at("2026-03-01"))
    moves(crm, a, ("active", at("2026-03-05")), ("loyal", at("2026-03-20")), ("lost", at("2026-04-10")))
    b = customer(crm, "B", at("2026-03-02"))
    moves(crm, b, ("lost", at("2026-03-03")))
    customer(crm, "C", at("2026-03-10"), stage="active")  # never a lead
    d = customer(crm, "D", at("2026-03-15"))
    moves(crm, d, ("active", at("2026-03-16")), ("at_risk", at("2026-03-18")))
    e = customer(crm, "E", at("2026-02-28"))  # not in the cohort
    moves(crm, e, ("active", at("2026-03-01")))

    # cohort A, B, C, D = 4
    assert kpis.lifecycle_funnel(crm, **MARCH) == [
        {"stage": "lead", "customers": 3, "pct": 75.0},  # A, B, D
        {"stage": "active", "customers": 3, "pct": 75.0},  # A, C, D (D's at_risk is active too)
        {"stage": "loyal", "customers": 1, "pct": 25.0},  # A
        {"stage": "lost", "customers": 2, "pct": 50.0},  # A (after the period), B
    ]


def test_stage_durations_merge_sub_stages_and_count_completed_stays_begun_in_the_period(crm: CRM) -> None:
    a = customer(crm, "A", at("2026-03-01"))
    # lead 2 days; active 10 days across two sub-stage moves; lost not ended
    moves(
        crm,
        a,
        ("active", at("2026-03-03")),
        ("at_risk", at("2026-03-05")),
        ("active", at("2026-03-06")),
        ("lost", at("2026-03-13")),
    )
    b = customer(crm, "B", at("2026-02-25"))  # its lead stay begins before the period
    # active 2 days; loyal 32 days, ending after `until`; lost stay begins after the period
    moves(
        crm,
        b,
        ("active", at("2026-03-02", "12:00")),
        ("loyal", at("2026-03-04", "12:00")),
        ("lost", at("2026-04-05", "12:00")),
        ("active", at("2026-04-10", "12:00")),
    )
    c = customer(crm, "C", at("2026-03-31", "18:00"))
    moves(crm, c, ("active", at("2026-04-01", "06:00")))  # lead 12 hours
    d = customer(crm, "D", at("2026-04-01"))  # begins at `until`
    moves(crm, d, ("active", at("2026-04-02")))

    assert kpis.stage_durations(crm, **MARCH) == [
        {"stage": "lead", "stays": 2, "avg_days": 1.25},  # A 2, C 0.5
        {"stage": "active", "stays": 2, "avg_days": 6.0},  # A 10, B 2
        {"stage": "loyal", "stays": 1, "avg_days": 32.0},  # B
        {"stage": "lost", "stays": 0, "avg_days": None},
    ]


# -- 7. cohort retention -----------------------------------------------------------------------------


def build_cohorts(crm: CRM) -> None:
    j1 = customer(crm, "J1", at("2025-12-20"))
    moves(crm, j1, ("active", at("2026-01-05")))
    j2 = customer(crm, "J2", at("2026-01-10"), stage="active")
    moves(
        crm,
        j2,
        ("lost", at("2026-01-31", "23:59")),
        ("active", at("2026-02-10")),  # won back
        ("lost", at("2026-03-31", "23:59:59")),
    )
    j3 = customer(crm, "J3", at("2026-01-02"))
    moves(crm, j3, ("active", at("2026-01-20")), ("loyal", at("2026-02-05")), ("lost", at("2026-03-01")))
    j4 = customer(crm, "J4", at("2025-12-15"), stage="active")  # first active in December: not a cohort member
    moves(crm, j4, ("lost", at("2026-01-03")), ("active", at("2026-01-20")))
    f1 = customer(crm, "F1", at("2026-01-25"))
    moves(crm, f1, ("active", at("2026-02-01")), ("lost", at("2026-02-28")))
    customer(crm, "F2", at("2026-02-14"), stage="active")
    customer(crm, "M1", at("2026-03-01"), stage="active")  # first active at `until`


def test_cohort_retention_by_month_of_first_activation(crm: CRM) -> None:
    build_cohorts(crm)
    rows = kpis.cohort_retention(
        crm, since=dt.date(2026, 1, 1), until=dt.date(2026, 3, 1), months=3, as_of=at("2026-04-15")
    )

    def row(cohort: str, size: int, k: int, retained: int, kept: float, churned: float) -> dict[str, Any]:
        return {
            "cohort": cohort,
            "size": size,
            "month": k,
            "retained": retained,
            "retention_pct": kept,
            "churn_pct": churned,
        }

    assert rows == [
        row("2026-01", 3, 0, 2, 66.67, 33.33),  # end of Jan: J2 lost
        row("2026-01", 3, 1, 3, 100.0, 0.0),  # end of Feb: J2 won back; J3's loss at Mar 1 00:00 is later
        row("2026-01", 3, 2, 1, 33.33, 66.67),  # end of Mar: J2 and J3 lost
        row("2026-02", 2, 0, 1, 50.0, 50.0),  # F1 lost
        row("2026-02", 2, 1, 1, 50.0, 50.0),
        # February's third month ends May 1, after as_of: not shown
    ]


def test_cohort_retention_shows_only_months_ended_by_as_of(crm: CRM) -> None:
    build_cohorts(crm)
    period: Cohorts = {"since": dt.date(2026, 1, 1), "until": dt.date(2026, 3, 1), "months": 3}
    ended = kpis.cohort_retention(crm, **period, as_of=at("2026-04-01"))  # March has just ended
    assert [(r["cohort"], r["month"]) for r in ended] == [
        ("2026-01", 0),
        ("2026-01", 1),
        ("2026-01", 2),
        ("2026-02", 0),
        ("2026-02", 1),
    ]
    running = kpis.cohort_retention(crm, **period, as_of=at("2026-03-31", "23:59"))
    assert [(r["cohort"], r["month"]) for r in running] == [("2026-01", 0), ("2026-01", 1), ("2026-02", 0)]
    assert kpis.cohort_retention(crm, **period, as_of=at("2026-01-31")) == []


# -- empty data and bad input ------------------------------------------------------------------------

EMPTY: list[tuple[Callable[..., list[dict[str, Any]]], list[dict[str, Any]]]] = [
    (kpis.leads_to_deals, [{"source": "(all)", "leads": 0, "deals": 0, "per_100": None}]),
    (
        kpis.average_check,
        [
            {
                "period": "2026-03",
                "revenue": 0.0,
                "purchases": 0,
                "paying_customers": 0,
                "average_check": None,
                "avg_ticket": None,
            }
        ],
    ),
    (kpis.customer_growth, [{"month": "2026-03", "start": 0, "new": 0, "end": 0, "growth_pct": None}]),
    (
        kpis.active_growth,
        [{"month": "2026-03", "start": 0, "joined": 0, "left": 0, "end": 0, "growth_pct": None}],
    ),
    (kpis.lead_processing_time, []),
    (kpis.plan_vs_fact, []),
    (kpis.lifecycle_funnel, [{"stage": s, "customers": 0, "pct": None} for s in kpis.CORE_STAGES]),
    (kpis.stage_durations, [{"stage": s, "stays": 0, "avg_days": None} for s in kpis.CORE_STAGES]),
    (kpis.cohort_retention, []),
]


@pytest.mark.parametrize(("kpi", "expected"), EMPTY, ids=[f.__name__ for f, _ in EMPTY])
def test_empty_data_gives_zeros_and_no_rates(crm: CRM, kpi: Callable[..., Any], expected: Any) -> None:
    assert kpi(crm, **MARCH) == expected


def test_customers_without_activities_or_moves_give_zero_rates_not_errors(crm: CRM) -> None:
    customer(crm, "Quiet", at("2026-03-10"), source="web")
    assert kpis.leads_to_deals(crm, **MARCH)[-1] == {"source": "(all)", "leads": 1, "deals": 0, "per_100": 0.0}
    assert kpis.average_check(crm, **MARCH)[0]["average_check"] is None
    assert kpis.lead_processing_time(crm, **MARCH) == [
        {"owner_id": None, "owner": "(unassigned)", "leads": 1, "contacted": 0, "avg_hours": None}
    ]
    assert kpis.stage_durations(crm, **MARCH)[0] == {"stage": "lead", "stays": 0, "avg_days": None}


@pytest.mark.parametrize(("kpi", "expected"), EMPTY, ids=[f.__name__ for f, _ in EMPTY])
@pytest.mark.parametrize("day", [dt.date(2026, 3, 1), dt.date(2026, 3, 15)], ids=["first", "mid-month"])
def test_an_empty_period_has_no_months(crm: CRM, kpi: Callable[..., Any], expected: Any, day: dt.date) -> None:
    customer(crm, "On the day", at("2026-03-01"), stage="active")
    monthly = (kpis.average_check, kpis.customer_growth, kpis.active_growth, kpis.cohort_retention)
    assert kpi(crm, since=day, until=day) == ([] if kpi in monthly else expected)


@pytest.mark.parametrize("kpi", [f for f, _ in EMPTY], ids=[f.__name__ for f, _ in EMPTY])
def test_bad_periods_are_refused(crm: CRM, kpi: Callable[..., Any]) -> None:
    with pytest.raises(ValueError, match="is before since"):
        kpi(crm, since=dt.date(2026, 4, 1), until=dt.date(2026, 3, 1))
    with pytest.raises(TypeError, match="must be a datetime.date"):
        kpi(crm, since=at("2026-03-01"), until=dt.date(2026, 4, 1))


# -- the documentation shows the docstrings' definitions -----------------------------------------------


def _words(text: str) -> str:
    # the page uses Markdown's single backticks where the docstring has reST's double ones
    return re.sub(r"\s+", " ", text).replace("``", "`").strip()


@pytest.mark.parametrize("kpi", [f for f, _ in EMPTY], ids=[f.__name__ for f, _ in EMPTY])
def test_docs_give_each_kpi_its_docstring_definition(kpi: Callable[..., Any]) -> None:
    docs = _words(DOCS.read_text(encoding="utf-8"))
    definition = inspect.getdoc(kpi)
    assert definition
    assert f"`{kpi.__name__}(" in docs, f"docs/kpis.md has no section for {kpi.__name__}"
    for paragraph in definition.split("\n\n")[1:]:
        assert _words(paragraph) in docs, f"docs/kpis.md does not carry {kpi.__name__}'s definition: {paragraph!r}"
