"""Fitness counts what a club counts: loyal members are members, a check-in uses one session of one
membership, an absent member is called whatever their membership's start, a one-day period has its month,
and a sale entered late is dated when it happened. Every expected number is counted by hand in the comments."""

from __future__ import annotations

import datetime as dt
import io
from typing import Any

import pytest
from crmkit_fitness.service import fitness
from crmkit_fitness.sessions import use_sessions
from crmkit_fitness.turnstile import import_turnstile
from fitness_testkit import AS_OF, DAY, TODAY, ago, member, plan
from sqlalchemy import select, update

from crmkit import CRM
from crmkit.db import Activity, Customer, StageHistory
from crmkit.db.models import TriggerFiring
from crmkit.errors import ValidationError
from crmkit.reports import kpis


def sell(crm: CRM, cid: int, starts_on: dt.date, *, days: int = 30, sessions: int | None = None, **kw: Any) -> int:
    plan_id = plan(crm, days=days, sessions=sessions, **kw)
    return fitness(crm).sell({"customer_id": cid, "plan_id": plan_id, "starts_on": starts_on.isoformat()})


def balances(crm: CRM, cid: int) -> list[int | None]:
    return [m["sessions_left"] for m in fitness(crm).memberships(cid)]


def fired(crm: CRM, name: str, as_of: dt.datetime = AS_OF) -> list[str]:
    report = crm.triggers.run(as_of, names=[name])
    assert report[name].failed == 0, report[name].errors
    with crm.session() as s:
        ids = s.scalars(select(TriggerFiring.customer_id).where(TriggerFiring.trigger == name))
        return sorted(crm.customers.get(i)["name"] for i in ids)


def log_checkin(crm: CRM, cid: int, moment: dt.datetime, **data: Any) -> dict[str, Any]:
    return crm.activities.log(
        {"customer_id": cid, "kind": "checkin", "occurred_at": moment.isoformat(), "data": {"club": "main", **data}}
    )


def loyal(crm: CRM, name: str) -> int:
    cid = member(crm, name)
    crm.lifecycle.move(cid, "loyal", cause="ten years with us")
    return cid


# -- loyal customers are members -----------------------------------------------------------------------


def test_loyal_members_get_the_retention_calls(club: CRM) -> None:
    # absent for 30 days, a member for 60: called like an active member
    gone = loyal(club, "LoyalGone")
    sell(club, gone, TODAY - 60 * DAY, days=365)
    log_checkin(club, gone, ago(30))
    # 2 sessions left on the membership in force: a renewal call
    low = loyal(club, "LoyalLow")
    sell(club, low, TODAY - 5 * DAY, sessions=2)
    # ends in 10 days, nothing bought after it
    ending = loyal(club, "LoyalEnding")
    sell(club, ending, TODAY - 19 * DAY)
    log_checkin(club, ending, ago(1))

    assert fired(club, "fitness.active_absent") == ["LoyalGone"]
    assert fired(club, "fitness.sessions_low") == ["LoyalLow"]
    assert fired(club, "fitness.membership_expiring") == ["LoyalEnding"]  # LoyalLow ends in 24 days
    assert club.triggers.get("fitness.birthday").stages == ("active", "loyal", "lead")


def test_a_loyal_member_who_stops_coming_is_put_at_risk_and_then_lapses(club: CRM) -> None:
    away = loyal(club, "Away")
    with club.engine.begin() as conn:  # loyal since long before the absence
        conn.execute(update(Customer).where(Customer.id == away).values(stage_changed_at=ago(100)))
    sell(club, away, TODAY - 60 * DAY, days=365)
    log_checkin(club, away, ago(21))

    report = club.triggers.run(AS_OF, names=["fitness.stage_at_risk"])
    assert report["fitness.stage_at_risk"].fired == 1
    assert club.customers.get(away)["stage"] == "at_risk"

    done = loyal(club, "Done")
    with club.engine.begin() as conn:
        conn.execute(update(Customer).where(Customer.id == done).values(stage_changed_at=ago(100)))
    sell(club, done, TODAY - 90 * DAY)  # ended 61 days ago; last visit 50 days ago
    log_checkin(club, done, ago(50))
    report = club.triggers.run(AS_OF, names=["fitness.stage_lapsed"])
    assert report["fitness.stage_lapsed"].fired == 1
    assert club.customers.get(done)["stage"] == "lapsed"


def test_loyal_members_are_on_the_members_at_risk_list(club: CRM) -> None:
    gone = loyal(club, "Loyal and gone")
    sell(club, gone, TODAY - 60 * DAY, days=365)
    log_checkin(club, gone, ago(20))
    here = loyal(club, "Loyal and here")
    log_checkin(club, here, ago(2))
    rows = club.reports.run("fitness.members_at_risk", {"as_of": TODAY.isoformat()}).rows
    assert [(r["name"], r["stage"], r["days_since"]) for r in rows] == [("Loyal and gone", "loyal", 20)]


# -- one session of one membership -------------------------------------------------------------------------


def _early_renewal(crm: CRM) -> tuple[int, int, int]:
    """8 sessions from TODAY-25 to TODAY+4; the renewal (5 sessions) bought to start TODAY-5, before the end."""
    cid = member(crm, "Renewer")
    first = sell(crm, cid, TODAY - 25 * DAY, sessions=8)
    second = sell(crm, cid, TODAY - 5 * DAY, sessions=5)
    return cid, first, second


def test_a_logged_checkin_uses_one_session_of_the_membership_that_ends_first(club: CRM) -> None:
    cid = _early_renewal(club)[0]
    for days in (20, 10, 4, 3, 2, 1):  # 2 before the renewal started, 4 while both are in force
        log_checkin(club, cid, ago(days))
    # every visit uses the first membership (it ends first and has sessions): 8 - 6 = 2; the renewal keeps 5
    assert balances(club, cid) == [2, 5]
    # the renewal is the current membership, and it has 5: no renewal call (today's code said 1 and called)
    assert fired(club, "fitness.sessions_low") == []


def test_a_turnstile_checkin_uses_one_session_of_one_membership(club: CRM) -> None:
    cid = _early_renewal(club)[0]
    club.customers.update(cid, {"card_number": "R-1"})
    days = (20, 10, 4, 3, 2, 1)
    export = "card,time\n" + "".join(f"R-1,{(AS_OF - d * DAY).isoformat()}\n" for d in days)
    assert import_turnstile(club, io.StringIO(export)).imported == 6
    assert balances(club, cid) == [2, 5]


def test_when_the_first_membership_runs_out_the_next_one_pays(club: CRM) -> None:
    cid = member(club, "Heavy")
    first = sell(club, cid, TODAY - 25 * DAY, sessions=2)  # ends TODAY+4
    sell(club, cid, TODAY - 5 * DAY, sessions=5)  # ends TODAY+24
    with club.transaction() as tx:  # one batch: four visits today, in one statement
        use_sessions(tx.session, [(cid, TODAY)] * 4)
    assert balances(club, cid) == [0, 3]  # 2 from the first, then 2 from the renewal
    with club.transaction() as tx:
        use_sessions(tx.session, [(cid, TODAY)] * 5)
    assert balances(club, cid) == [0, 0]  # 3 more, then nothing below zero
    assert first


def test_only_a_membership_in_force_that_day_is_used(club: CRM) -> None:
    cid = member(club, "Picky")
    f = fitness(club)
    unlimited_first = sell(club, cid, TODAY - 10 * DAY, days=20)  # unlimited, ends TODAY+9
    counted = sell(club, cid, TODAY - 10 * DAY, days=40, sessions=10, freeze_days=30)  # ends TODAY+29
    cancelled = sell(club, cid, TODAY - 10 * DAY, days=10, sessions=10)  # ends TODAY-1, then cancelled
    f.cancel(cancelled, reason="refunded", on=TODAY - 10 * DAY)
    with club.transaction() as tx:
        # TODAY-5: the unlimited one ends first: the visit costs nothing
        # TODAY+15: only the counted one covers it: 10 -> 9
        # TODAY+60: nothing covers it: nothing is used
        use_sessions(tx.session, [(cid, TODAY - 5 * DAY), (cid, TODAY + 15 * DAY), (cid, TODAY + 60 * DAY)])
    assert balances(club, cid) == [None, 9, 10]
    f.freeze(counted, start=TODAY + 10 * DAY, days=10)  # frozen TODAY+10..TODAY+19, ends TODAY+39
    with club.transaction() as tx:
        use_sessions(tx.session, [(cid, TODAY + 12 * DAY), (cid, TODAY + 25 * DAY)])  # frozen, then not
    assert balances(club, cid) == [None, 8, 10]
    assert unlimited_first


# -- absent members whatever their membership's start ------------------------------------------------------


def test_a_member_who_renews_every_month_is_called_when_absent(club: CRM) -> None:
    monthly = member(club, "Monthly")
    for start in (80, 50, 20):  # 30-day memberships back to back; the current one started 20 days ago
        sell(club, monthly, TODAY - start * DAY)
    log_checkin(club, monthly, ago(30))
    # came back after a year away 10 days ago: not absent for 21 days as a member
    returned = member(club, "Returned")
    sell(club, returned, TODAY - 400 * DAY)
    sell(club, returned, TODAY - 10 * DAY)
    # joined exactly 21 days ago and never came: called; joined 20 days ago: not yet
    joined21 = member(club, "Joined21")
    sell(club, joined21, TODAY - 21 * DAY)
    joined20 = member(club, "Joined20")
    sell(club, joined20, TODAY - 20 * DAY)
    # a gap elsewhere in the window does not matter: ended 15 days ago, renewed 10 days ago
    gap = member(club, "Gap")
    sell(club, gap, TODAY - 44 * DAY)
    sell(club, gap, TODAY - 10 * DAY)

    assert fired(club, "fitness.active_absent") == ["Gap", "Joined21", "Monthly"]


# -- a one-day period -------------------------------------------------------------------------------------


def test_month_by_month_reports_of_an_empty_period_have_no_months_and_of_one_day_have_its_month(club: CRM) -> None:
    anna = member(club, "Anna")
    sell(club, anna, dt.date(2026, 5, 17))  # ends 2026-06-15, a mid-month day
    day = {"since": "2026-06-15", "until": "2026-06-15", "as_of": "2026-07-31"}
    assert club.reports.run("fitness.renewal_rate", day).rows == []
    one_day = {**day, "until": "2026-06-16"}
    assert club.reports.run("fitness.renewal_rate", one_day).rows == [
        {"month": "2026-06", "ending": 1, "renewed": 0, "not_renewed": 1, "pending": 0, "renewal_pct": 0.0}
    ]


@pytest.mark.parametrize("kpi", [kpis.average_check, kpis.customer_growth, kpis.cohort_retention])
def test_core_monthly_kpis_of_an_empty_mid_month_period_have_no_months(club: CRM, kpi: Any) -> None:
    member(club, "Anna")
    mid = dt.date(2026, 6, 15)
    assert kpi(club, since=mid, until=mid) == []


def test_core_monthly_kpis_of_one_mid_month_day_have_its_month(club: CRM) -> None:
    anna = member(club, "Anna")
    club.activities.log(
        {
            "customer_id": anna,
            "kind": "purchase",
            "amount": "30.00",
            "currency": "EUR",
            "occurred_at": "2026-06-15T09:00:00+00:00",
        }
    )
    club.activities.log(
        {
            "customer_id": anna,
            "kind": "purchase",
            "amount": "50.00",
            "currency": "EUR",
            "occurred_at": "2026-06-16T09:00:00+00:00",
        }
    )
    rows = kpis.average_check(club, since=dt.date(2026, 6, 15), until=dt.date(2026, 6, 16))
    # only the purchase of the 15th: 30.00 from one purchase of one customer
    assert rows == [
        {
            "period": "2026-06",
            "revenue": 30.0,
            "purchases": 1,
            "paying_customers": 1,
            "average_check": 30.0,
            "avg_ticket": 30.0,
        }
    ]


# -- a sale entered late ---------------------------------------------------------------------------------


def _since(crm: CRM, cid: int, moment: dt.datetime) -> None:
    """The customer has been in their stage since ``moment`` (customers.create stamps the real now)."""
    with crm.engine.begin() as conn:
        conn.execute(update(Customer).where(Customer.id == cid).values(stage_changed_at=moment))
        conn.execute(update(StageHistory).where(StageHistory.customer_id == cid).values(at=moment))


def test_a_sale_dated_in_the_past_moves_and_buys_at_its_date(club: CRM) -> None:
    lead = member(club, "Late entry", stage="trial")
    _since(club, lead, dt.datetime(2026, 1, 10, 9, tzinfo=dt.UTC))
    sell(club, lead, dt.date(2026, 3, 1))
    noon = dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC)
    history = club.lifecycle.history(lead)
    assert [(h["to_stage"], h["at"]) for h in history][-1] == ("adaptation", noon.isoformat())
    with club.session() as s:
        assert s.scalars(select(Activity.occurred_at).where(Activity.kind == "purchase")).all() == [noon]
    # the later history can still be entered: the move is not stamped with today's clock
    club.lifecycle.move(lead, "active", cause="settled in", at=dt.datetime(2026, 4, 2, tzinfo=dt.UTC))
    assert club.customers.get(lead)["stage"] == "active"


def test_a_sale_is_never_moved_before_the_previous_move_nor_into_the_future(club: CRM) -> None:
    late = member(club, "Lapsed in May", stage="active")
    _since(club, late, dt.datetime(2026, 1, 10, tzinfo=dt.UTC))
    may = dt.datetime(2026, 5, 1, 8, tzinfo=dt.UTC)
    club.lifecycle.move(late, "lapsed", cause="gone", at=may)
    sell(club, late, dt.date(2026, 3, 1))  # entered after the lapse, dated before it: clamped to the lapse
    assert club.lifecycle.history(late)[-1]["at"] == may.isoformat()
    future = member(club, "Starts next year", stage="trial")
    _since(club, future, dt.datetime(2026, 1, 10, tzinfo=dt.UTC))
    sold = fitness(club).sell(
        {"customer_id": future, "plan_id": plan(club), "starts_on": "2199-01-01", "sold_at": "2026-02-03T10:00:00Z"}
    )
    assert sold and club.lifecycle.history(future)[-1]["at"] == "2026-02-03T10:00:00+00:00"


# -- a class check-in through the activity API -----------------------------------------------------------


def test_a_class_checkin_logged_through_the_activity_api_uses_a_session(club: CRM) -> None:
    f = fitness(club)
    trainer = f.add_trainer({"name": "Tom", "speciality": "yoga"})
    yoga = f.add_class({"name": "Yoga", "trainer_id": trainer, "club": "main", "weekday": 0, "starts_at": "18:00"})
    cid = member(club, "Yogi")
    sell(club, cid, TODAY - 5 * DAY, sessions=8)
    log_checkin(club, cid, ago(1), class_id=yoga)
    assert balances(club, cid) == [7]
    with pytest.raises(ValidationError, match="no class with id"):
        log_checkin(club, cid, ago(1), class_id=yoga + 1000)
    assert balances(club, cid) == [7]  # the refused check-in used nothing
