"""The fitness lifecycle moves by itself: the ``fitness.stage_*`` triggers and the sale, at their boundaries.

``crm.customers.create`` and ``crm.lifecycle.move`` stamp ``stage_changed_at`` with the real clock, while
the triggers run at a fixed ``AS_OF`` and ask how long a member has been in the stage. Where a test needs
a member to have been in a stage since a past moment, it sets ``stage_changed_at`` directly (see
:func:`in_stage_since`); everything else goes through the public API.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from crmkit_fitness.models import Membership, Plan
from crmkit_fitness.service import fitness
from fitness_testkit import AS_OF, DAY, STAGE_MOVES, TODAY, ago, checkins, member
from sqlalchemy import select, update

from crmkit import CRM
from crmkit.db import Customer, StageHistory
from crmkit.errors import TransitionError

# -- helpers --------------------------------------------------------------------------------------------


def plan(crm: CRM, days: int = 30) -> tuple[int, str]:
    name = f"{days} days"
    with crm.session() as s:
        existing = s.scalar(select(Plan.id).where(Plan.name == name))
    if existing is None:
        existing = fitness(crm).create_plan({"name": name, "duration_days": days, "price": "49.00"})["id"]
    return existing, name


def sell(
    crm: CRM, cid: int, *, starts_on: dt.date | None = None, ends_on: dt.date | None = None, days: int = 30
) -> int:
    if starts_on is None:
        assert ends_on is not None
        starts_on = ends_on - dt.timedelta(days=days - 1)
    plan_id, _ = plan(crm, days)
    return fitness(crm).sell({"customer_id": cid, "plan_id": plan_id, "starts_on": starts_on.isoformat()})["id"]


def add_membership(crm: CRM, cid: int, starts_on: dt.date, ends_on: dt.date, status: str = "active") -> None:
    """A membership row without a sale (as a data import would write it): ``sell`` moves the stage itself,
    so this is how a lead or trial ends up with a membership for ``fitness.stage_joined`` to notice."""
    plan_id, _ = plan(crm)
    with crm.engine.begin() as conn:
        conn.execute(
            Membership.__table__.insert().values(
                customer_id=cid, plan_id=plan_id, starts_on=starts_on, ends_on=ends_on, status=status, price=49
            )
        )


def in_stage_since(crm: CRM, cid: int, moment: dt.datetime) -> None:
    """Backdate the current stage: the public API stamps ``stage_changed_at`` with the real now."""
    with crm.engine.begin() as conn:
        conn.execute(update(Customer).where(Customer.id == cid).values(stage_changed_at=moment))


def moved(crm: CRM, cid: int, stage: str, since: dt.datetime, *, cause: str = "test setup") -> None:
    """Move a member to ``stage`` through the lifecycle, then backdate the move to ``since``."""
    crm.lifecycle.move(cid, stage, cause=cause)
    in_stage_since(crm, cid, since)


def stage(crm: CRM, cid: int) -> str:
    return str(crm.customers.get(cid)["stage"])


def moves(crm: CRM, cid: int) -> list[dict[str, Any]]:
    """The stage history in the order it was written. (``crm.lifecycle.history`` orders by time; with a
    backdated stage, a trigger's move dated ``AS_OF`` sorts before the creation, dated by the real clock.)"""
    h = StageHistory
    with crm.session() as s:
        rows = s.execute(
            select(h.from_stage, h.to_stage, h.to_lifecycle.label("lifecycle"), h.at, h.cause, h.actor_id)
            .where(h.customer_id == cid)
            .order_by(h.id)
        )
        return [dict(r._mapping) for r in rows]


def last_move(crm: CRM, cid: int) -> dict[str, Any]:
    return moves(crm, cid)[-1]


def run(crm: CRM, name: str | None = None, as_of: dt.datetime = AS_OF) -> Any:
    report = crm.triggers.run(as_of, names=None if name is None else [name])
    for result in report.results:
        assert result.failed == 0, result.errors
    return report


# -- fitness.stage_joined and the sale -------------------------------------------------------------------


def test_stage_joined_moves_a_lead_or_trial_with_a_membership_valid_today(club: CRM) -> None:
    starts_today = member(club, "StartsToday", stage="lead")
    add_membership(club, starts_today, TODAY, TODAY + 29 * DAY)
    ends_today = member(club, "EndsToday", stage="trial")
    add_membership(club, ends_today, TODAY - 29 * DAY, TODAY)
    tomorrow = member(club, "StartsTomorrow", stage="trial")
    add_membership(club, tomorrow, TODAY + DAY, TODAY + 30 * DAY)
    ended = member(club, "EndedYesterday", stage="lead")
    add_membership(club, ended, TODAY - 30 * DAY, TODAY - DAY)
    cancelled = member(club, "Cancelled", stage="trial")
    add_membership(club, cancelled, TODAY - DAY, TODAY + 28 * DAY, status="cancelled")
    nothing = member(club, "NoMembership", stage="trial")
    in_stage_since(club, starts_today, ago(3))

    report = run(club, "fitness.stage_joined")

    assert report["fitness.stage_joined"].fired == 2
    assert stage(club, starts_today) == "adaptation"
    assert stage(club, ends_today) == "adaptation"
    for cid, was in ((tomorrow, "trial"), (ended, "lead"), (cancelled, "trial"), (nothing, "trial")):
        assert stage(club, cid) == was
    assert last_move(club, starts_today) == {
        "from_stage": "lead",
        "to_stage": "adaptation",
        "lifecycle": "active",
        "at": AS_OF,
        "cause": "trigger fitness.stage_joined",
        "actor_id": None,
    }
    assert last_move(club, ends_today)["from_stage"] == "trial"
    assert last_move(club, ends_today)["cause"] == "trigger fitness.stage_joined"


def test_sale_moves_a_trial_or_lead_into_adaptation(club: CRM) -> None:
    trial = member(club, "Trial", stage="trial")
    lead = member(club, "Lead", stage="lead")
    active = member(club, "Active")
    at_risk = member(club, "AtRisk")
    club.lifecycle.move(at_risk, "at_risk", cause="test setup")
    future = member(club, "StartsNextWeek", stage="trial")

    for cid in (trial, lead, active, at_risk):
        sell(club, cid, starts_on=TODAY)
    sell(club, future, starts_on=TODAY + 7 * DAY)

    assert stage(club, trial) == "adaptation"
    assert last_move(club, trial)["cause"] == "bought 30 days"
    assert last_move(club, trial)["from_stage"] == "trial"
    assert stage(club, lead) == "adaptation"
    assert last_move(club, lead)["from_stage"] == "lead"
    assert stage(club, future) == "adaptation"  # joining is the sale, whenever the membership starts
    # a member is not moved by buying more
    assert stage(club, active) == "active"
    assert stage(club, at_risk) == "at_risk"
    assert len(moves(club, active)) == 1


@pytest.mark.parametrize("gone", ["lapsed", "lost"])
def test_sale_brings_a_lapsed_member_back_only_as_a_win_back(club: CRM, gone: str) -> None:
    back = member(club, "Back")
    club.lifecycle.move(back, gone, cause="test setup")

    sell(club, back, starts_on=TODAY)

    assert stage(club, back) == "adaptation"
    assert last_move(club, back)["from_stage"] == gone
    assert last_move(club, back)["cause"] == "bought 30 days (win-back)"


def test_lapsed_member_who_comes_in_without_buying_stays_lapsed(club: CRM) -> None:
    lapsed = member(club, "Lapsed")
    moved(club, lapsed, "lapsed", ago(60))
    checkins(club, lapsed, ago(1), ago(2))
    add_membership(club, lapsed, TODAY - DAY, TODAY + 28 * DAY)  # even with a membership, no trigger brings back

    run(club)

    assert stage(club, lapsed) == "lapsed"
    assert len(moves(club, lapsed)) == 2
    # only a move with a cause (the sale's win-back, or staff) does
    with pytest.raises(TransitionError):
        club.lifecycle.move(lapsed, "active", cause=" ")


# -- fitness.stage_adapted ----------------------------------------------------------------------------


def _adapting(crm: CRM, name: str, since: dt.datetime, *visits: dt.datetime) -> int:
    cid = member(crm, name, stage="adaptation")
    sell(crm, cid, starts_on=since.date(), days=365)
    in_stage_since(crm, cid, since)
    checkins(crm, cid, *visits)
    return cid


def test_stage_adapted_after_exactly_thirty_days_with_four_visits(club: CRM) -> None:
    four = [ago(2), ago(9), ago(16), ago(23)]
    adapted = _adapting(club, "Adapted", ago(30), *four)
    early = _adapting(club, "TooEarly", ago(29, 23), *four)
    three = _adapting(club, "ThreeVisits", ago(40), *four[:3])
    edge = _adapting(club, "FourthVisitThirtyDaysAgo", ago(40), *four[:3], ago(30))

    report = run(club, "fitness.stage_adapted")

    assert report["fitness.stage_adapted"].fired == 1
    assert stage(club, adapted) == "active"
    assert last_move(club, adapted)["cause"] == "trigger fitness.stage_adapted"
    assert last_move(club, adapted)["at"] == AS_OF
    for cid in (early, three, edge):
        assert stage(club, cid) == "adaptation"


def test_stage_adapted_terms_are_the_clubs(club_factory: Callable[..., CRM]) -> None:
    crm = club_factory(holdout=0.0, adaptation_days=14, adaptation_visits=2)
    two = _adapting(crm, "Two", ago(14), ago(1), ago(8))
    one = _adapting(crm, "One", ago(14), ago(1))

    run(crm, "fitness.stage_adapted")

    assert (stage(crm, two), stage(crm, one)) == ("active", "adaptation")


# -- fitness.stage_at_risk -----------------------------------------------------------------------------


def test_stage_at_risk_in_adaptation_after_exactly_ten_days_without_a_visit(club: CRM) -> None:
    ten = _adapting(club, "Ten", ago(20), ago(10))
    almost = _adapting(club, "Almost", ago(20), ago(9, 23))
    never = _adapting(club, "NeverCame", ago(10))
    fresh = _adapting(club, "JoinedJustUnderTenDaysAgo", ago(9, 23))

    run(club, "fitness.stage_at_risk")

    assert stage(club, ten) == "at_risk"
    assert stage(club, never) == "at_risk"
    assert last_move(club, ten)["from_stage"] == "adaptation"
    assert last_move(club, ten)["cause"] == "trigger fitness.stage_at_risk"
    assert (stage(club, almost), stage(club, fresh)) == ("adaptation", "adaptation")


def _active(crm: CRM, name: str, since: dt.datetime, *visits: dt.datetime, stage: str = "active") -> int:
    cid = member(crm, name, stage=stage)
    sell(crm, cid, starts_on=TODAY - 100 * DAY, days=365)
    in_stage_since(crm, cid, since)
    checkins(crm, cid, *visits)
    return cid


def test_stage_at_risk_when_active_after_exactly_twenty_one_days_without_a_visit(club: CRM) -> None:
    gone = _active(club, "Gone", ago(60), ago(30), ago(21))
    almost = _active(club, "Almost", ago(60), ago(20, 23))
    fresh = _active(club, "ActiveJustUnderTwentyOneDays", ago(20, 23))
    eleven = _active(club, "ElevenDaysAway", ago(60), ago(11))  # the adaptation limit does not apply

    run(club, "fitness.stage_at_risk")

    assert stage(club, gone) == "at_risk"
    assert last_move(club, gone) == {
        "from_stage": "active",
        "to_stage": "at_risk",
        "lifecycle": "active",
        "at": AS_OF,
        "cause": "trigger fitness.stage_at_risk",
        "actor_id": None,
    }
    for cid in (almost, fresh, eleven):
        assert stage(club, cid) == "active"


def test_stage_at_risk_limits_are_the_clubs(club_factory: Callable[..., CRM]) -> None:
    crm = club_factory(holdout=0.0, adaptation_absent_days=5, active_absent_days=14)
    new5 = _adapting(crm, "NewFive", ago(20), ago(5))
    new4 = _adapting(crm, "NewFour", ago(20), ago(4, 23))
    old14 = _active(crm, "OldFourteen", ago(60), ago(14))
    old13 = _active(crm, "OldThirteen", ago(60), ago(13, 23))

    run(crm, "fitness.stage_at_risk")

    assert [stage(crm, c) for c in (new5, new4, old14, old13)] == ["at_risk", "adaptation", "at_risk", "active"]


def test_trials_and_leads_are_never_put_at_risk(club: CRM) -> None:
    trial = member(club, "Trial", stage="trial", trial_ends_on=(TODAY - 60 * DAY).isoformat())
    lead = member(club, "Lead", stage="lead")
    for cid in (trial, lead):
        in_stage_since(club, cid, ago(200))
        checkins(club, cid, ago(100))

    report = run(club)

    assert report["fitness.stage_at_risk"].fired == 0
    assert report["fitness.stage_lapsed"].fired == 0
    assert (stage(club, trial), stage(club, lead)) == ("trial", "lead")
    assert [m["to_stage"] for m in moves(club, trial)] == ["trial"]
    # and the lifecycle itself refuses the move
    assert ("trial", "at_risk") not in club.lifecycle.transitions
    with pytest.raises(TransitionError):
        club.lifecycle.move(trial, "at_risk", cause="staff")


# -- fitness.stage_recovered --------------------------------------------------------------------------


def test_stage_recovered_by_a_visit_in_the_last_seven_days(club: CRM) -> None:
    back = _active(club, "Back", ago(30), ago(6, 23), stage="active")
    club.lifecycle.move(back, "at_risk", cause="test setup")
    edge = _active(club, "SevenDaysAgo", ago(30), ago(7))
    club.lifecycle.move(edge, "at_risk", cause="test setup")

    report = run(club, "fitness.stage_recovered")

    assert report["fitness.stage_recovered"].fired == 1
    assert stage(club, back) == "active"
    assert last_move(club, back)["from_stage"] == "at_risk"
    assert last_move(club, back)["cause"] == "trigger fitness.stage_recovered"
    assert stage(club, edge) == "at_risk"


# -- fitness.stage_lapsed ------------------------------------------------------------------------------


def _ex_member(crm: CRM, name: str, since: dt.datetime, ended: dt.date, *visits: dt.datetime) -> int:
    cid = member(crm, name)
    sell(crm, cid, ends_on=ended, days=90)
    in_stage_since(crm, cid, since)
    checkins(crm, cid, *visits)
    return cid


def test_stage_lapsed_after_exactly_forty_five_days_without_a_visit_or_membership(club: CRM) -> None:
    gone = _ex_member(club, "Gone", ago(60), TODAY - DAY, ago(45))
    valid = _ex_member(club, "ValidToday", ago(60), TODAY, ago(45))
    almost = _ex_member(club, "VisitedJustUnder45DaysAgo", ago(60), TODAY - DAY, ago(44, 23))
    fresh = _ex_member(club, "ActiveJustUnder45Days", ago(44, 23), TODAY - DAY, ago(50))

    report = run(club, "fitness.stage_lapsed")

    assert report["fitness.stage_lapsed"].fired == 1
    assert stage(club, gone) == "lapsed"
    assert last_move(club, gone) == {
        "from_stage": "active",
        "to_stage": "lapsed",
        "lifecycle": "lost",
        "at": AS_OF,
        "cause": "trigger fitness.stage_lapsed",
        "actor_id": None,
    }
    for cid in (valid, almost, fresh):
        assert stage(club, cid) == "active"


def test_stage_lapsed_takes_an_at_risk_member_once_forty_five_days_have_passed(club: CRM) -> None:
    # at risk since the 21-day limit (24 days ago); no visit for 45 days and the membership is over
    at_risk = _ex_member(club, "AtRisk", ago(60), TODAY - DAY, ago(45))
    moved(club, at_risk, "at_risk", ago(24), cause="trigger fitness.stage_at_risk")
    # the same, but a renewal is bought and starts next week: not lapsed
    renewing = _ex_member(club, "Renewing", ago(60), TODAY - DAY, ago(45))
    moved(club, renewing, "at_risk", ago(24), cause="trigger fitness.stage_at_risk")
    sell(club, renewing, starts_on=TODAY + 7 * DAY)

    run(club, "fitness.stage_lapsed")

    assert stage(club, at_risk) == "lapsed"
    assert last_move(club, at_risk)["from_stage"] == "at_risk"
    assert stage(club, renewing) == "at_risk"


def test_stage_lapsed_limit_is_the_clubs(club_factory: Callable[..., CRM]) -> None:
    crm = club_factory(holdout=0.0, lapsed_days=30)
    thirty = _ex_member(crm, "Thirty", ago(60), TODAY - DAY, ago(30))
    under = _ex_member(crm, "JustUnderThirty", ago(60), TODAY - DAY, ago(29, 23))

    run(crm, "fitness.stage_lapsed")

    assert (stage(crm, thirty), stage(crm, under)) == ("lapsed", "active")


# -- the whole lifecycle --------------------------------------------------------------------------------


def test_stage_triggers_only_move_and_create_no_tasks(club: CRM) -> None:
    for name in STAGE_MOVES:
        trigger = club.triggers.get(name)
        assert trigger.task is None and trigger.message is None, name
        assert trigger.move_to is not None, name


def test_a_member_walks_the_lifecycle(club: CRM) -> None:
    """trial -> adaptation (sale) -> active -> at_risk -> active -> at_risk -> lapsed -> adaptation (win-back),
    each automatic move made by its trigger in a full run and recorded with its cause."""
    anna = member(club, "Anna", stage="trial")
    sell(club, anna, starts_on=TODAY - 100 * DAY, days=60)  # a 60-day membership: over on day -41
    in_stage_since(club, anna, ago(100))
    checkins(club, anna, *[ago(d) for d in (98, 92, 85, 78, 72)], ago(40), ago(39))

    steps = [
        (ago(70), "active"),  # day -70: 30 days in adaptation, 4+ visits in them
        (ago(49), "at_risk"),  # day -49: no visit for 21 days, active since day -70
        (ago(38), "active"),  # day -38: came back on days -40 and -39
        (ago(17), "at_risk"),  # day -17: 21 days since the last visit
        (AS_OF + 30 * DAY, "lapsed"),  # no membership since day -41, no visit for 69 days
    ]
    for when, expected in steps:
        run(club, as_of=when)
        assert stage(club, anna) == expected, when

    sell(club, anna, starts_on=(AS_OF + 31 * DAY).date())
    causes = [(m["to_stage"], m["cause"]) for m in moves(club, anna)]
    assert causes == [
        ("trial", "created"),
        ("adaptation", "bought 60 days"),
        ("active", "trigger fitness.stage_adapted"),
        ("at_risk", "trigger fitness.stage_at_risk"),
        ("active", "trigger fitness.stage_recovered"),
        ("at_risk", "trigger fitness.stage_at_risk"),
        ("lapsed", "trigger fitness.stage_lapsed"),
        ("adaptation", "bought 30 days (win-back)"),
    ]
