"""The fitness retention triggers at their boundaries, with the default configuration and a club's own.

Every test runs one trigger (``names=[...]``) at a fixed ``AS_OF`` and builds its data through the public
API: customers, plans, sales, freezes and check-ins relative to ``AS_OF``. The windows are exact (an
activity exactly ``within`` ago is outside, one at ``AS_OF`` is inside), so the tests can be too.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from crmkit_fitness import FitnessConfig, FitnessPlugin
from crmkit_fitness.service import fitness
from fitness_testkit import AS_OF, DAY, STAGE_MOVES, TODAY, ago, checkins, member, plan
from sqlalchemy import select, update

from crmkit import CRM
from crmkit.db import Customer, Task
from crmkit.db.models import TriggerFiring
from crmkit.triggers.query import holdout_bucket

HOUR = dt.timedelta(hours=1)

RETENTION = (
    "fitness.sessions_low",
    "fitness.membership_expiring",
    "fitness.frequency_drop",
    "fitness.adaptation_absent",
    "fitness.active_absent",
    "fitness.freeze_ending",
    "fitness.birthday",
    "fitness.trial_no_purchase",
)


# -- building a club's data through the public API ---------------------------------------------------


def sell(
    crm: CRM,
    cid: int,
    *,
    starts_on: dt.date | None = None,
    ends_on: dt.date | None = None,
    days: int = 30,
    sessions: int | None = None,
    freeze_days: int = 0,
) -> int:
    """Sell a ``days``-long membership starting on ``starts_on`` or ending on ``ends_on`` (inclusive)."""
    if starts_on is None:
        assert ends_on is not None
        starts_on = ends_on - dt.timedelta(days=days - 1)
    plan_id = plan(crm, days=days, sessions=sessions, freeze_days=freeze_days)
    return fitness(crm).sell({"customer_id": cid, "plan_id": plan_id, "starts_on": starts_on.isoformat()})["id"]


def run(crm: CRM, name: str, as_of: dt.datetime = AS_OF) -> list[str]:
    """Run one trigger; the names of the customers it acted on (the held-out ones excluded)."""
    report = crm.triggers.run(as_of, names=[name])
    assert report[name].failed == 0, report[name].errors
    with crm.session() as s:
        ids = s.scalars(
            select(TriggerFiring.customer_id).where(
                TriggerFiring.trigger == name, TriggerFiring.as_of == as_of, TriggerFiring.held_out.is_(False)
            )
        )
        return sorted(crm.customers.get(i)["name"] for i in ids)


def task_of(crm: CRM, cid: int) -> dict[str, Any]:
    (task,) = crm.tasks.open(customer_id=cid)
    return task


def reason(crm: CRM, cid: int) -> str:
    return str(task_of(crm, cid)["reason"])


# -- fitness.sessions_low --------------------------------------------------------------------------


def test_sessions_low_fires_at_two_sessions_left_not_three(club: CRM) -> None:
    anna = member(club, "Anna")  # 3 sessions; the visit 12 days ago used one (the one 30 days ago came before)
    sell(club, anna, starts_on=TODAY - 20 * DAY, sessions=3)
    checkins(club, anna, ago(30), ago(12))
    boris = member(club, "Boris")
    sell(club, boris, starts_on=TODAY - 20 * DAY, sessions=3)
    unlimited = member(club, "Unlimited")
    sell(club, unlimited, starts_on=TODAY - 20 * DAY)

    assert run(club, "fitness.sessions_low") == ["Anna"]
    task = task_of(club, anna)
    assert task["title"] == "Renewal call: Anna"
    assert task["reason"] == "Anna: 2 sessions left, last visit 12 days ago"
    assert task["priority"] == 80
    assert task["source"] == "trigger:fitness.sessions_low"
    assert dt.datetime.fromisoformat(task["due_at"]) == AS_OF + 24 * HOUR
    assert club.tasks.open(customer_id=boris) == []


def test_sessions_low_reads_naturally_for_one_session_and_no_visit(club: CRM) -> None:
    one = member(club, "Olga")
    sell(club, one, starts_on=TODAY - 5 * DAY, sessions=2)
    checkins(club, one, ago(1))  # uses one of the two
    never = member(club, "Nadia")
    sell(club, never, starts_on=TODAY, sessions=2)

    assert run(club, "fitness.sessions_low") == ["Nadia", "Olga"]
    assert reason(club, one) == "Olga: 1 session left, last visit yesterday"
    assert reason(club, never) == "Nadia: 2 sessions left, no visit yet"


def test_sessions_low_counts_only_the_current_active_membership(club: CRM) -> None:
    ended = member(club, "Ended")  # one session left on a membership that ended yesterday
    sell(club, ended, ends_on=TODAY - DAY, sessions=1)
    future = member(club, "NotStarted")  # starts tomorrow
    sell(club, future, starts_on=TODAY + DAY, sessions=1)
    frozen = member(club, "Frozen")
    membership = sell(club, frozen, starts_on=TODAY - 10 * DAY, sessions=1, freeze_days=14)
    fitness(club).freeze(membership, start=TODAY - DAY, days=7)
    last_day = member(club, "LastDay")  # ends today: still current
    sell(club, last_day, ends_on=TODAY, sessions=1)

    assert run(club, "fitness.sessions_low") == ["LastDay"]


def test_sessions_low_stops_once_the_renewal_is_bought(club: CRM) -> None:
    overlapping = member(club, "Overlapping")  # renewed today: the new membership is the current one
    sell(club, overlapping, starts_on=TODAY - 20 * DAY, sessions=2)
    sell(club, overlapping, starts_on=TODAY, sessions=8)
    ahead = member(club, "Ahead")  # renewal bought, it starts when the current one ends
    sell(club, ahead, ends_on=TODAY + 9 * DAY, sessions=2)
    sell(club, ahead, starts_on=TODAY + 10 * DAY, sessions=8)
    not_yet = member(club, "NotYet")
    sell(club, not_yet, ends_on=TODAY + 9 * DAY, sessions=2)

    assert run(club, "fitness.sessions_low") == ["NotYet"]


def test_sessions_low_threshold_is_the_clubs(club_factory: Callable[..., CRM]) -> None:
    crm = club_factory(holdout=0.0, low_balance_sessions=3)
    three = member(crm, "Three")
    sell(crm, three, starts_on=TODAY - DAY, sessions=3)
    four = member(crm, "Four")
    sell(crm, four, starts_on=TODAY - DAY, sessions=4)

    assert run(crm, "fitness.sessions_low") == ["Three"]
    assert crm.triggers.get("fitness.sessions_low").description == "3 or fewer sessions left on the membership"


def test_sessions_low_cooldown_is_two_weeks(club: CRM) -> None:
    anna = member(club, "Anna")
    sell(club, anna, starts_on=TODAY - 20 * DAY, days=60, sessions=2)

    assert run(club, "fitness.sessions_low") == ["Anna"]
    assert run(club, "fitness.sessions_low", AS_OF + 13 * DAY) == []
    assert run(club, "fitness.sessions_low", AS_OF + 14 * DAY) == ["Anna"]


# -- fitness.membership_expiring ---------------------------------------------------------------------


def test_membership_expiring_fires_at_exactly_fourteen_days_not_fifteen(club: CRM) -> None:
    fourteen = member(club, "Fourteen")
    sell(club, fourteen, ends_on=TODAY + 14 * DAY)
    checkins(club, fourteen, ago(3))
    fifteen = member(club, "Fifteen")
    sell(club, fifteen, ends_on=TODAY + 15 * DAY)
    last_day = member(club, "LastDay")
    sell(club, last_day, ends_on=TODAY)
    ended = member(club, "Ended")
    sell(club, ended, ends_on=TODAY - DAY)

    assert run(club, "fitness.membership_expiring") == ["Fourteen", "LastDay"]
    task = task_of(club, fourteen)
    assert task["title"] == "Offer renewal: Fourteen"
    assert task["reason"] == "Fourteen: membership ends 2026-06-29, no renewal yet, last visit 3 days ago"
    assert task["priority"] == 85


def test_membership_expiring_stops_once_a_renewal_is_bought(club: CRM) -> None:
    renewed = member(club, "Renewed")
    sell(club, renewed, ends_on=TODAY + 5 * DAY)
    sell(club, renewed, starts_on=TODAY + 6 * DAY)
    pending = member(club, "Pending")
    sell(club, pending, ends_on=TODAY + 5 * DAY)

    assert run(club, "fitness.membership_expiring") == ["Pending"]

    # buying after the task was made stops it for good; a later run finds nothing to do
    sell(club, pending, starts_on=TODAY + 6 * DAY)
    assert run(club, "fitness.membership_expiring", AS_OF + 15 * DAY) == []


def test_membership_expiring_window_is_the_clubs(club_factory: Callable[..., CRM]) -> None:
    crm = club_factory(holdout=0.0, expiring_days=21)
    inside = member(crm, "TwentyOne")
    sell(crm, inside, ends_on=TODAY + 21 * DAY)
    outside = member(crm, "TwentyTwo")
    sell(crm, outside, ends_on=TODAY + 22 * DAY)

    assert run(crm, "fitness.membership_expiring") == ["TwentyOne"]


# -- fitness.frequency_drop --------------------------------------------------------------------------


def _usual(crm: CRM, cid: int, per_fortnight: int) -> None:
    """``per_fortnight`` check-ins in each of the three fortnights before the last one (the baseline)."""
    moments = [ago(14 + 14 * f + 14 * (i + 0.5) / per_fortnight) for f in range(3) for i in range(per_fortnight)]
    checkins(crm, cid, *moments)


def _recent(crm: CRM, cid: int, count: int) -> None:
    checkins(crm, cid, *[ago(1 + i) for i in range(count)])


def test_frequency_drop_fires_at_exactly_half_not_above(club: CRM) -> None:
    half = member(club, "Half")
    sell(club, half, starts_on=TODAY - 90 * DAY, days=365)
    _usual(club, half, per_fortnight=14)
    _recent(club, half, 7)
    above = member(club, "Above")
    sell(club, above, starts_on=TODAY - 90 * DAY, days=365)
    _usual(club, above, per_fortnight=14)
    _recent(club, above, 8)

    assert run(club, "fitness.frequency_drop") == ["Half"]
    task = task_of(club, half)
    assert task["title"] == "Check in with Half"
    assert task["reason"] == "Half: 7 visits in the last 14 days, down from usual; last visit yesterday"


def test_frequency_drop_windows_are_exact(club: CRM) -> None:
    # usual 2 per fortnight (6 in the baseline) and 1 recent visit: exactly half, a drop
    edge_in = member(club, "FourteenDaysAgoIsBaseline")
    sell(club, edge_in, starts_on=TODAY - 90 * DAY, days=365)
    checkins(club, edge_in, ago(14), ago(20), ago(25), ago(30), ago(35), ago(40), ago(1))
    # the visit exactly 56 days ago is outside the baseline: 5 there, 1 recent is more than half
    edge_out = member(club, "FiftySixDaysAgoIsOutside")
    sell(club, edge_out, starts_on=TODAY - 90 * DAY, days=365)
    checkins(club, edge_out, ago(56), ago(20), ago(25), ago(30), ago(35), ago(40), ago(1))
    # a visit just inside the baseline's old end counts
    edge_old = member(club, "JustUnderFiftySixDays")
    sell(club, edge_old, starts_on=TODAY - 90 * DAY, days=365)
    checkins(club, edge_old, ago(55, 23), ago(20), ago(25), ago(30), ago(35), ago(40), ago(1))

    assert run(club, "fitness.frequency_drop") == ["FourteenDaysAgoIsBaseline", "JustUnderFiftySixDays"]


def test_frequency_drop_needs_a_baseline_and_a_valid_membership(club: CRM) -> None:
    newcomer = member(club, "Newcomer")  # nothing before the last two weeks: no baseline, no drop
    sell(club, newcomer, starts_on=TODAY - 10 * DAY)
    ended = member(club, "Ended")  # dropped, but the membership ended: the expiry and lapse flows own it
    sell(club, ended, ends_on=TODAY - DAY)
    _usual(club, ended, per_fortnight=4)
    stopped = member(club, "Stopped")  # no visit at all recently is the biggest drop
    sell(club, stopped, starts_on=TODAY - 90 * DAY, days=365)
    _usual(club, stopped, per_fortnight=4)

    assert run(club, "fitness.frequency_drop") == ["Stopped"]
    assert reason(club, stopped) == "Stopped: 0 visits in the last 14 days, down from usual; last visit 15 days ago"


def test_frequency_drop_share_is_the_clubs_and_exact(club_factory: Callable[..., CRM]) -> None:
    # 70% of the usual, over a 10-day window against a 45-day baseline: a daily regular (45 visits in the
    # baseline, 10 expected) who came 7 times is exactly at the share; 8 times is above it
    crm = club_factory(holdout=0.0, frequency_drop_share=0.7, frequency_recent_days=10, frequency_baseline_days=45)
    for name, recent in (("Seven", 7), ("Eight", 8)):
        cid = member(crm, name)
        sell(crm, cid, starts_on=TODAY - 90 * DAY, days=365)
        checkins(crm, cid, *[ago(10 + i) for i in range(45)], *[ago(0.5 + i) for i in range(recent)])

    assert run(crm, "fitness.frequency_drop") == ["Seven"]


# -- fitness.adaptation_absent -----------------------------------------------------------------------


def test_adaptation_absent_fires_after_exactly_ten_days_without_a_visit(club: CRM) -> None:
    ten = member(club, "Ten", stage="adaptation")
    sell(club, ten, starts_on=TODAY - 20 * DAY)
    checkins(club, ten, ago(15), ago(10))
    almost = member(club, "Almost", stage="adaptation")
    sell(club, almost, starts_on=TODAY - 20 * DAY)
    checkins(club, almost, ago(9, 23))
    never = member(club, "Never", stage="adaptation")
    sell(club, never, starts_on=TODAY - 20 * DAY)

    assert run(club, "fitness.adaptation_absent") == ["Never", "Ten"]
    task = task_of(club, ten)
    assert task["title"] == "New member missing: Ten"
    assert task["reason"] == "Ten: new member, last visit 10 days ago"
    assert dt.datetime.fromisoformat(task["due_at"]) == AS_OF + 8 * HOUR
    assert reason(club, never) == "Never: new member, no visit yet"


def test_adaptation_absent_leaves_new_joiners_and_other_stages_alone(club: CRM) -> None:
    joined_ten = member(club, "JoinedTenDaysAgo", stage="adaptation")
    sell(club, joined_ten, starts_on=TODAY - 10 * DAY)
    joined_nine = member(club, "JoinedNineDaysAgo", stage="adaptation")  # not a member long enough to be absent
    sell(club, joined_nine, starts_on=TODAY - 9 * DAY)
    active = member(club, "Active")  # not in adaptation: fitness.active_absent's business
    sell(club, active, starts_on=TODAY - 20 * DAY)
    from_active = member(club, "AtRiskFromActive")
    sell(club, from_active, starts_on=TODAY - 20 * DAY)
    club.lifecycle.move(from_active, "at_risk", cause="test setup")
    from_adaptation = member(club, "AtRiskFromAdaptation", stage="adaptation")  # still a new member
    sell(club, from_adaptation, starts_on=TODAY - 20 * DAY)
    club.lifecycle.move(from_adaptation, "at_risk", cause="test setup")

    assert run(club, "fitness.adaptation_absent") == ["AtRiskFromAdaptation", "JoinedTenDaysAgo"]


def test_adaptation_absent_limit_is_the_clubs(club_factory: Callable[..., CRM]) -> None:
    crm = club_factory(holdout=0.0, adaptation_absent_days=7)
    seven = member(crm, "Seven", stage="adaptation")
    sell(crm, seven, starts_on=TODAY - 20 * DAY)
    checkins(crm, seven, ago(7))
    six = member(crm, "Six", stage="adaptation")
    sell(crm, six, starts_on=TODAY - 20 * DAY)
    checkins(crm, six, ago(6, 23))

    assert run(crm, "fitness.adaptation_absent") == ["Seven"]


def test_adaptation_absent_still_calls_the_new_member_the_stage_trigger_moved_to_at_risk(club: CRM) -> None:
    # In a full run the stage moves go first (higher priority): fitness.stage_at_risk moves a new member
    # absent for 10 days to at_risk before fitness.adaptation_absent looks. The call must still happen.
    anna = member(club, "Anna", stage="adaptation")
    sell(club, anna, starts_on=TODAY - 20 * DAY, days=365)
    checkins(club, anna, ago(12))
    # customers.create stamps the real now; put her in adaptation since her membership started
    with club.engine.begin() as conn:
        conn.execute(update(Customer).where(Customer.id == anna).values(stage_changed_at=ago(20)))

    report = club.triggers.run(AS_OF)

    assert report["fitness.stage_at_risk"].fired == 1
    assert club.customers.get(anna)["stage"] == "at_risk"
    assert report["fitness.adaptation_absent"].fired == 1
    assert reason(club, anna) == "Anna: new member, last visit 12 days ago"
    # the 21-day call is for members past adaptation: not her, not now and not in 11 days
    assert report["fitness.active_absent"].fired == 0
    assert run(club, "fitness.active_absent", AS_OF + 11 * DAY) == []


# -- fitness.active_absent ---------------------------------------------------------------------------


def test_active_absent_fires_after_exactly_twenty_one_days_without_a_visit(club: CRM) -> None:
    gone = member(club, "Gone")
    sell(club, gone, starts_on=TODAY - 60 * DAY, days=365)
    checkins(club, gone, ago(40), ago(21))
    almost = member(club, "Almost")
    sell(club, almost, starts_on=TODAY - 60 * DAY, days=365)
    checkins(club, almost, ago(20, 23))
    at_risk = member(club, "AtRisk")  # at risk is still an active member
    sell(club, at_risk, starts_on=TODAY - 60 * DAY, days=365)
    club.lifecycle.move(at_risk, "at_risk", cause="test setup")
    adapting = member(club, "Adapting", stage="adaptation")  # adaptation has its own, earlier call
    sell(club, adapting, starts_on=TODAY - 60 * DAY, days=365)
    new = member(club, "JoinedTwentyDaysAgo")
    sell(club, new, starts_on=TODAY - 20 * DAY)

    assert run(club, "fitness.active_absent") == ["AtRisk", "Gone"]
    task = task_of(club, gone)
    assert task["title"] == "We miss Gone"
    assert task["reason"] == "Gone: last visit 21 days ago"
    assert reason(club, at_risk) == "AtRisk: no visit yet"


def test_active_absent_limit_is_the_clubs(club_factory: Callable[..., CRM]) -> None:
    crm = club_factory(holdout=0.0, active_absent_days=14)
    fourteen = member(crm, "Fourteen")
    sell(crm, fourteen, starts_on=TODAY - 60 * DAY, days=365)
    checkins(crm, fourteen, ago(14))
    thirteen = member(crm, "Thirteen")
    sell(crm, thirteen, starts_on=TODAY - 60 * DAY, days=365)
    checkins(crm, thirteen, ago(13, 23))

    assert run(crm, "fitness.active_absent") == ["Fourteen"]


# -- fitness.freeze_ending ---------------------------------------------------------------------------


def _frozen_until(crm: CRM, name: str, last_day: dt.date) -> int:
    cid = member(crm, name)
    membership = sell(crm, cid, starts_on=TODAY - 60 * DAY, days=365, freeze_days=30)
    start = TODAY - 10 * DAY
    fitness(crm).freeze(membership, start=start, days=(last_day - start).days + 1)
    return cid


def test_freeze_ending_fires_three_days_ahead_not_four(club: CRM) -> None:
    three = _frozen_until(club, "Three", TODAY + 3 * DAY)
    _frozen_until(club, "Four", TODAY + 4 * DAY)
    _frozen_until(club, "Today", TODAY)
    _frozen_until(club, "Yesterday", TODAY - DAY)

    assert run(club, "fitness.freeze_ending") == ["Three", "Today"]
    task = task_of(club, three)
    assert task["title"] == "Welcome back soon: Three"
    assert task["reason"] == "Three: freeze ends Thu 18 Jun; plan the first session back"


def test_freeze_ending_window_is_the_clubs(club_factory: Callable[..., CRM]) -> None:
    crm = club_factory(holdout=0.0, freeze_ending_days=5)
    _frozen_until(crm, "Five", TODAY + 5 * DAY)
    _frozen_until(crm, "Six", TODAY + 6 * DAY)

    assert run(crm, "fitness.freeze_ending") == ["Five"]


# -- fitness.birthday -------------------------------------------------------------------------------


def test_birthday_fires_seven_days_ahead_not_eight(club: CRM) -> None:
    anna = member(club, "Anna", birthday="1990-06-22")  # in 7 days
    member(club, "Boris", birthday="1985-06-23")  # in 8 days
    member(club, "Today", birthday="2000-06-15")
    member(club, "Yesterday", birthday="2000-06-14")
    member(club, "Lead", stage="lead", birthday="1999-06-20")
    member(club, "Trial", stage="trial", birthday="1999-06-20")
    member(club, "Unknown")

    assert run(club, "fitness.birthday") == ["Anna", "Lead", "Today", "Trial"]
    task = task_of(club, anna)
    assert task["title"] == "Congratulate Anna"
    assert task["reason"] == "Anna: birthday on 22 June, turns 36"


def test_birthday_crosses_the_year_end_and_skips_lost_members(club: CRM) -> None:
    member(club, "NewYear", birthday="1990-01-03")
    member(club, "Late", birthday="1990-01-04")
    lapsed = member(club, "Lapsed", birthday="1990-01-01")
    club.lifecycle.move(lapsed, "lapsed", cause="test setup")

    assert run(club, "fitness.birthday", dt.datetime(2026, 12, 27, 9, 0, tzinfo=dt.UTC)) == ["NewYear"]


def test_birthday_window_is_the_clubs(club_factory: Callable[..., CRM]) -> None:
    crm = club_factory(holdout=0.0, birthday_days=1)
    member(crm, "Tomorrow", birthday="1990-06-16")
    member(crm, "InTwoDays", birthday="1990-06-17")

    assert run(crm, "fitness.birthday") == ["Tomorrow"]


# -- fitness.trial_no_purchase -----------------------------------------------------------------------


def test_trial_no_purchase_fires_the_day_after_the_trial(club: CRM) -> None:
    ended = member(club, "Ended", stage="trial", trial_ends_on=(TODAY - DAY).isoformat())
    checkins(club, ended, ago(2), ago(4))
    member(club, "EndsToday", stage="trial", trial_ends_on=TODAY.isoformat())
    bought = member(club, "Bought", stage="trial", trial_ends_on=(TODAY - DAY).isoformat())
    sell(club, bought, starts_on=TODAY - DAY)
    lead = member(club, "Lead", stage="lead", trial_ends_on=(TODAY - 5 * DAY).isoformat())
    member(club, "NoTrial", stage="trial")

    assert run(club, "fitness.trial_no_purchase") == ["Ended", "Lead"]
    task = task_of(club, ended)
    assert task["title"] == "Trial follow-up: Ended"
    assert task["reason"] == "Ended: trial ended 2026-06-14 without a purchase, last visit 2 days ago"
    assert task["priority"] == 90
    assert reason(club, lead) == "Lead: trial ended 2026-06-10 without a purchase, no visit yet"


def test_trial_no_purchase_fires_once_a_month(club: CRM) -> None:
    member(club, "Ended", stage="trial", trial_ends_on=(TODAY - DAY).isoformat())

    assert run(club, "fitness.trial_no_purchase") == ["Ended"]
    assert run(club, "fitness.trial_no_purchase", AS_OF + 29 * DAY) == []
    assert run(club, "fitness.trial_no_purchase", AS_OF + 30 * DAY) == ["Ended"]


# -- goals and effectiveness --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kinds"),
    [
        ("fitness.sessions_low", ("purchase",)),
        ("fitness.membership_expiring", ("purchase",)),
        ("fitness.trial_no_purchase", ("purchase",)),
        ("fitness.frequency_drop", ("checkin",)),
        ("fitness.adaptation_absent", ("checkin",)),
        ("fitness.active_absent", ("checkin",)),
        ("fitness.freeze_ending", ("checkin",)),
        ("fitness.birthday", ("checkin",)),
    ],
)
def test_every_retention_trigger_has_a_goal(club: CRM, name: str, kinds: tuple[str, ...]) -> None:
    goal = club.triggers.get(name).goal
    assert goal is not None
    assert goal.kinds == kinds
    assert goal.window == 21 * DAY


def test_all_fitness_triggers_are_registered(club: CRM) -> None:
    assert {t.name for t in club.triggers.all() if t.name.startswith("fitness.")} == {*RETENTION, *STAGE_MOVES}


def test_renewal_after_a_firing_counts_as_success(club: CRM) -> None:
    renews = member(club, "Renews")
    sell(club, renews, ends_on=TODAY + 10 * DAY, sessions=2)
    late = member(club, "RenewsTooLate")
    sell(club, late, ends_on=TODAY + 29 * DAY, sessions=2)
    quiet = member(club, "Quiet")
    sell(club, quiet, ends_on=TODAY + 10 * DAY, sessions=2)

    assert run(club, "fitness.sessions_low") == ["Quiet", "Renews", "RenewsTooLate"]
    sell(club, renews, starts_on=TODAY + 11 * DAY, sessions=8)  # the purchase is dated its start: day 11
    sell(club, late, starts_on=TODAY + 31 * DAY, sessions=8)  # day 31: outside the 21-day window

    (eff,) = club.triggers.effectiveness(names=["fitness.sessions_low"])
    assert (eff.fired, eff.converted, eff.held_out) == (3, 1, 0)


def test_visit_after_a_firing_counts_as_success(club_factory: Callable[..., CRM]) -> None:
    crm = club_factory(holdout=0.0, goal_window_days=7)
    came = member(crm, "Came")
    late = member(crm, "CameTooLate")
    before = member(crm, "CameBefore")
    for cid in (came, late, before):
        sell(crm, cid, starts_on=TODAY - 60 * DAY, days=365)
    checkins(crm, before, ago(21))

    assert run(crm, "fitness.active_absent") == ["Came", "CameBefore", "CameTooLate"]
    checkins(crm, came, AS_OF + 7 * DAY)  # the window's last moment is inside
    checkins(crm, late, AS_OF + 7 * DAY + HOUR)

    (eff,) = crm.triggers.effectiveness(names=["fitness.active_absent"])
    assert (eff.fired, eff.converted) == (3, 1)
    assert crm.triggers.get("fitness.active_absent").goal.window == 7 * DAY  # type: ignore[union-attr]


# -- holdout ---------------------------------------------------------------------------------------


def test_default_holdout_is_a_tenth_of_every_retention_trigger_and_none_of_the_stage_moves(
    club_factory: Callable[..., CRM],
) -> None:
    assert FitnessPlugin().config == FitnessConfig()
    crm = club_factory()
    for name in RETENTION:
        assert crm.triggers.get(name).holdout == 0.1, name
    for name in STAGE_MOVES:
        assert crm.triggers.get(name).holdout == 0.0, name


def _birthdays(crm: CRM, n: int) -> dict[int, str]:
    return {member(crm, f"Member {i:02d}", birthday="1990-06-18"): f"Member {i:02d}" for i in range(n)}


def test_holdout_keeps_the_same_members_out_deterministically(club_factory: Callable[..., CRM]) -> None:
    name = "fitness.birthday"
    crm = club_factory(holdout=0.3)
    people = _birthdays(crm, 40)

    report = crm.triggers.run(AS_OF, names=[name])

    expected_out = {cid for cid in people if holdout_bucket(name, cid) < 3000}
    assert 0 < len(expected_out) < len(people)
    assert report[name].held_out == len(expected_out)
    assert report[name].fired == len(people) - len(expected_out)
    with crm.session() as s:
        held = set(s.scalars(select(TriggerFiring.customer_id).where(TriggerFiring.held_out.is_(True))))
        tasked = set(s.scalars(select(Task.customer_id).where(Task.source == f"trigger:{name}")))
    assert held == expected_out
    assert tasked == set(people) - expected_out  # the control group gets nothing

    # another club with the same members (same ids) holds out the same ones
    again = club_factory(holdout=0.3)
    assert _birthdays(again, 40) == people
    again.triggers.run(AS_OF, names=[name])
    with again.session() as s:
        assert set(s.scalars(select(TriggerFiring.customer_id).where(TriggerFiring.held_out.is_(True)))) == held


def test_held_out_members_count_as_the_control_group(club_factory: Callable[..., CRM]) -> None:
    name = "fitness.birthday"
    crm = club_factory(holdout=0.5)
    people = _birthdays(crm, 20)
    crm.triggers.run(AS_OF, names=[name])
    for cid in people:  # everybody comes in two days later
        checkins(crm, cid, AS_OF + 2 * DAY)

    (eff,) = crm.triggers.effectiveness(names=[name])
    out = sum(1 for cid in people if holdout_bucket(name, cid) < 5000)
    assert (eff.fired, eff.converted, eff.held_out, eff.held_out_converted) == (20 - out, 20 - out, out, out)
    assert eff.uplift == 0.0


def test_stage_moves_ignore_the_holdout(club_factory: Callable[..., CRM]) -> None:
    crm = club_factory(holdout=0.5)
    ids = []
    for i in range(10):
        cid = member(crm, f"Back {i}")
        crm.lifecycle.move(cid, "at_risk", cause="test setup")
        checkins(crm, cid, ago(1))
        ids.append(cid)

    report = crm.triggers.run(AS_OF, names=["fitness.stage_recovered"])

    assert (report["fitness.stage_recovered"].fired, report["fitness.stage_recovered"].held_out) == (10, 0)
    assert {crm.customers.get(cid)["stage"] for cid in ids} == {"active"}


def test_a_member_whose_freeze_ended_is_seen_again_without_a_status_change(club: CRM) -> None:
    back = member(club, "Back")
    membership = sell(club, back, starts_on=TODAY - 40 * DAY, days=60, sessions=2, freeze_days=30)
    fitness(club).freeze(membership, start=TODAY - 20 * DAY, days=10)  # ended 11 days ago, status still frozen
    still = member(club, "Still")
    frozen = sell(club, still, starts_on=TODAY - 40 * DAY, days=60, sessions=2, freeze_days=30)
    fitness(club).freeze(frozen, start=TODAY - 5 * DAY, days=10)  # frozen until after today

    assert run(club, "fitness.sessions_low") == ["Back"]
