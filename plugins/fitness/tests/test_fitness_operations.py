"""The plugin's API records what a club does: renew, freeze and unfreeze, cancel, expire, personal-training
packages, trainers and classes; every wrong input is crmkit's ValidationError or NotFound on both databases."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from crmkit_fitness import fitness
from crmkit_fitness.models import GymClass, Membership, Plan, Trainer
from fitness_testkit import DAY, TODAY, member
from sqlalchemy import func, select

from crmkit import CRM
from crmkit.db import Activity
from crmkit.errors import NotFound, ValidationError


@pytest.fixture
def monthly(club: CRM) -> int:
    return fitness(club).create_plan(
        {"name": "Monthly 10", "duration_days": 30, "price": "45.50", "sessions": 10, "freeze_days": 14}
    )["id"]


def sell(crm: CRM, cid: int, plan: int, starts: dt.date) -> int:
    return fitness(crm).sell({"customer_id": cid, "plan_id": plan, "starts_on": starts.isoformat()})["id"]


def membership(crm: CRM, cid: int, mid: int) -> dict[str, Any]:
    return next(m for m in fitness(crm).memberships(cid) if m["id"] == mid)


def purchases(crm: CRM, cid: int) -> list[tuple[dt.datetime, Decimal, dict[str, Any]]]:
    with crm.session() as s:
        rows = s.execute(
            select(Activity.occurred_at, Activity.amount, Activity.data)
            .where(Activity.customer_id == cid, Activity.kind == "purchase")
            .order_by(Activity.occurred_at, Activity.id)
        )
        return [tuple(r) for r in rows]


# -- renew ------------------------------------------------------------------------------------------------


def test_renew_starts_the_day_after_the_latest_membership_ends(club: CRM, monthly: int) -> None:
    anna = member(club, "Anna")
    first = sell(club, anna, monthly, dt.date(2026, 6, 1))  # 06-01..06-30
    renewal = fitness(club).renew({"customer_id": anna})["id"]
    again = fitness(club).renew({"customer_id": anna, "starts_on": "2026-09-01"})["id"]
    assert [(m["id"], m["starts_on"], m["ends_on"], m["sessions_left"]) for m in fitness(club).memberships(anna)] == [
        (first, "2026-06-01", "2026-06-30", 10),
        (renewal, "2026-07-01", "2026-07-30", 10),
        (again, "2026-09-01", "2026-09-30", 10),
    ]
    # each renewal is a purchase of the plan's price (the triggers' renewal goal)
    assert [(at.date(), amount) for at, amount, _ in purchases(club, anna)] == [
        (dt.date(2026, 6, 1), Decimal("45.50")),
        (dt.date(2026, 7, 1), Decimal("45.50")),
        (dt.date(2026, 9, 1), Decimal("45.50")),
    ]


def test_renew_onto_another_plan_and_without_a_membership(club: CRM, monthly: int) -> None:
    f = fitness(club)
    year = f.create_plan({"name": "Year", "duration_days": 365, "price": "399.00"})["id"]
    anna = member(club, "Anna")
    sell(club, anna, monthly, dt.date(2026, 6, 1))
    renewal = f.renew({"customer_id": anna, "plan_id": year})["id"]
    assert membership(club, anna, renewal)["ends_on"] == "2027-06-30"
    nobody = member(club, "Nobody")
    with pytest.raises(ValidationError, match="no membership to renew"):
        f.renew({"customer_id": nobody})


# -- records ----------------------------------------------------------------------------------------------


def test_sales_and_reads_are_json_safe_records_that_see_the_unit_of_work(club: CRM, monthly: int) -> None:
    anna = member(club, "Anna")
    f = fitness(club)
    with club.transaction() as tx:
        sold = f.sell({"customer_id": anna, "plan_id": monthly, "starts_on": "2026-06-01"}, tx=tx)
        assert f.memberships(anna, tx=tx) == [sold]  # not committed yet: only the unit of work sees it
        assert f.memberships(anna) == []
    # by hand: the plan runs 30 days from 06-01, has 10 sessions and costs 45.50
    assert {k: sold[k] for k in ("customer_id", "starts_on", "ends_on", "status", "sessions_left", "price")} == {
        "customer_id": anna,
        "starts_on": "2026-06-01",
        "ends_on": "2026-06-30",
        "status": "active",
        "sessions_left": 10,
        "price": "45.50",
    }
    assert sold["frozen_from"] is None and sold["created_at"].endswith("+00:00")
    assert f.memberships(anna) == [sold]
    package = f.sell_pt_package({"customer_id": anna, "sessions": 3, "price": "90", "purchased_on": "2026-06-02"})
    assert f.pt_packages(anna) == [package]
    assert (package["purchased_on"], package["sessions_left"], package["expires_on"]) == ("2026-06-02", 3, None)
    plan = f.create_plan({"name": "Day pass", "duration_days": 1, "price": "5"})
    assert club.table("fitness_plans").get(plan["id"]) == plan
    assert (plan["price"], plan["currency"], plan["freeze_days"], plan["active"]) == ("5.00", "EUR", 0, True)


# -- freeze and unfreeze -------------------------------------------------------------------------------------


def test_unfreezing_early_gives_back_the_unused_days(club: CRM, monthly: int) -> None:
    f = fitness(club)
    anna = member(club, "Anna")
    mid = sell(club, anna, monthly, dt.date(2026, 6, 1))  # ends 06-30; 14 freeze days on the plan
    f.freeze(mid, start=dt.date(2026, 6, 10), days=10)  # 06-10..06-19, end moves to 07-10
    m = membership(club, anna, mid)
    assert (m["status"], m["frozen_until"], m["ends_on"], m["freeze_days_used"]) == (
        "frozen",
        "2026-06-19",
        "2026-07-10",
        10,
    )
    # back on 06-14: frozen 06-10..06-13 (4 days); 6 days go back to the allowance and off the end
    assert f.unfreeze(mid, on="2026-06-14") == 6
    m = membership(club, anna, mid)
    assert (m["status"], m["frozen_from"], m["frozen_until"], m["ends_on"], m["freeze_days_used"]) == (
        "active",
        "2026-06-10",
        "2026-06-13",
        "2026-07-04",
        4,
    )
    # the 10 days left of the allowance can be used again
    f.freeze(mid, start=dt.date(2026, 6, 20), days=10)
    assert membership(club, anna, mid)["ends_on"] == "2026-07-14"
    with pytest.raises(ValidationError, match="only 0 freeze days left"):
        f.freeze(mid, start=dt.date(2026, 7, 1), days=1)


def test_unfreezing_before_the_freeze_begins_calls_it_off(club: CRM, monthly: int) -> None:
    f = fitness(club)
    anna = member(club, "Anna")
    mid = sell(club, anna, monthly, dt.date(2026, 6, 1))
    f.freeze(mid, start=dt.date(2026, 6, 10), days=7)
    assert f.unfreeze(mid, on=dt.date(2026, 6, 5)) == 7
    m = membership(club, anna, mid)
    assert (m["status"], m["frozen_from"], m["ends_on"], m["freeze_days_used"]) == (
        "active",
        None,
        "2026-06-30",
        0,
    )
    with pytest.raises(ValidationError, match="not frozen"):
        f.unfreeze(mid, on=dt.date(2026, 6, 6))


def test_a_freeze_must_start_within_the_membership(club: CRM, monthly: int) -> None:
    mid = sell(club, member(club, "Anna"), monthly, dt.date(2026, 6, 1))
    with pytest.raises(ValidationError) as info:
        fitness(club).freeze(mid, start=dt.date(2026, 8, 1), days=3)
    assert set(info.value.errors) == {"start"}


# -- cancel and expire ----------------------------------------------------------------------------------------


def test_cancel_keeps_the_reason_and_the_day(club: CRM, monthly: int) -> None:
    f = fitness(club)
    anna = member(club, "Anna")
    mid = sell(club, anna, monthly, dt.date(2026, 6, 1))
    f.cancel(mid, reason="moved to another city", on=dt.date(2026, 6, 12))
    m = membership(club, anna, mid)
    assert (m["status"], m["cancel_reason"], m["cancelled_on"]) == (
        "cancelled",
        "moved to another city",
        "2026-06-12",
    )
    with pytest.raises(ValidationError, match="cancelled on 2026-06-12"):
        f.cancel(mid, reason="again")
    with pytest.raises(ValidationError, match="no membership to renew"):  # nothing left to renew
        f.renew({"customer_id": anna})


def test_expire_marks_every_membership_past_its_end_at_once(club: CRM, monthly: int) -> None:
    f = fitness(club)
    people = [member(club, f"M{i}") for i in range(5)]
    ended = sell(club, people[0], monthly, dt.date(2026, 5, 1))  # ended 05-30: expires
    last_day = sell(club, people[1], monthly, dt.date(2026, 5, 16))  # ends 06-14, the day before: expires
    today = sell(club, people[2], monthly, dt.date(2026, 5, 17))  # ends 06-15: still valid
    frozen = sell(club, people[3], monthly, dt.date(2026, 4, 1))  # frozen, and its end (05-10) passed: expires
    f.freeze(frozen, start=dt.date(2026, 4, 20), days=10)
    cancelled = sell(club, people[4], monthly, dt.date(2026, 4, 1))  # cancelled stays cancelled
    f.cancel(cancelled, reason="refund", on=dt.date(2026, 4, 2))

    assert f.expire(as_of=dt.date(2026, 6, 15)) == 3
    status = {
        mid: membership(club, cid, mid)["status"]
        for cid, mid in zip(people, (ended, last_day, today, frozen, cancelled), strict=True)
    }
    assert status == {ended: "expired", last_day: "expired", today: "active", frozen: "expired", cancelled: "cancelled"}
    assert f.expire(as_of=dt.date(2026, 6, 15)) == 0  # nothing more to do


# -- personal training ----------------------------------------------------------------------------------------


def test_a_pt_package_is_sold_and_its_sessions_used_by_pt_sessions(club: CRM) -> None:
    f = fitness(club)
    coach = club.users.create({"name": "Coach", "email": "coach@club.example", "role": "operator"})["id"]
    trainer = f.add_trainer({"name": "Coach", "user_id": coach, "speciality": "strength"})["id"]
    anna = member(club, "Anna")
    package = f.sell_pt_package(
        {
            "customer_id": anna,
            "trainer_id": trainer,
            "sessions": 5,
            "price": "250.00",
            "purchased_on": "2026-06-01",
            "expires_on": "2026-08-31",
        }
    )["id"]
    assert purchases(club, anna)[0][1:] == (Decimal("250.00"), {"pt_package_id": package})

    def session(day: str, **data: Any) -> dict[str, Any]:
        return {
            "customer_id": anna,
            "kind": "pt_session",
            "owner_id": coach,
            "occurred_at": f"{day}T10:00:00+00:00",
            "data": data,
        }

    club.activities.log(session("2026-06-02", package_id=package))  # named: 5 -> 4
    club.activities.log(session("2026-06-09"))  # the package valid that day: 4 -> 3
    report = club.activities.ingest([session("2026-06-16"), session("2026-06-23", package_id=package)])
    assert report.inserted == 2
    assert [p["sessions_left"] for p in f.pt_packages(anna)] == [1]  # 3 - 2
    club.activities.log(session("2026-09-01"))  # after it expired: a session on the spot, none used
    assert [p["sessions_left"] for p in f.pt_packages(anna)] == [1]
    with pytest.raises(ValidationError, match="not valid on 2026-09-02"):
        club.activities.log(session("2026-09-02", package_id=package))
    other = member(club, "Ben")
    with pytest.raises(ValidationError, match="has no package with id"):
        club.activities.log({**session("2026-06-30", package_id=package), "customer_id": other})


# -- trainers and classes ------------------------------------------------------------------------------------


def test_trainers_and_classes_are_added(club: CRM) -> None:
    f = fitness(club)
    tom = f.add_trainer({"name": "Tom"})["id"]
    yoga = f.add_class(
        {"name": "Yoga", "trainer_id": tom, "club": "riverside", "weekday": 6, "starts_at": "18:30", "capacity": 12}
    )["id"]
    with club.session() as s:
        row = s.get(GymClass, yoga)
        assert row is not None
        assert (row.name, row.trainer_id, row.club, row.weekday, row.starts_at, row.duration_min, row.capacity) == (
            "Yoga",
            tom,
            "riverside",
            6,
            dt.time(18, 30),
            60,
            12,
        )
        assert s.scalar(select(func.count()).select_from(Trainer)) == 1


def test_class_checkins_ingested_use_sessions_and_skipped_duplicates_use_none(club: CRM, monthly: int) -> None:
    f = fitness(club)
    yoga = f.add_class({"name": "Yoga", "club": "main", "weekday": 0, "starts_at": "07:00"})["id"]
    anna = member(club, "Anna")
    mid = sell(club, anna, monthly, TODAY - 5 * DAY)
    rows = [
        {
            "customer_id": anna,
            "kind": "checkin",
            "occurred_at": dt.datetime.combine(TODAY - d * DAY, dt.time(7), dt.UTC),
            "data": {"club": "main", "class_id": yoga},
            "source": "front-desk",
            "external_id": f"yoga-{d}",
        }
        for d in (3, 2, 1)
    ]
    assert club.activities.ingest(rows).inserted == 3
    assert membership(club, anna, mid)["sessions_left"] == 7  # 10 - 3
    again = club.activities.ingest(rows)
    assert (again.inserted, again.skipped) == (0, 3)
    assert membership(club, anna, mid)["sessions_left"] == 7  # nothing used twice


# -- wrong input: crmkit's errors, never a driver error ----------------------------------------------------

PLAN = {"name": "Plan", "duration_days": 30, "price": "10.00"}
BAD_PLANS = [
    ({**PLAN, "name": "x" * 101}, "name"),
    ({**PLAN, "name": "a\x00b"}, "name"),
    ({**PLAN, "name": ""}, "name"),
    ({**PLAN, "duration_days": 0}, "duration_days"),
    ({**PLAN, "duration_days": 2**31}, "duration_days"),
    ({**PLAN, "duration_days": 7.5}, "duration_days"),
    ({**PLAN, "price": "10.005"}, "price"),
    ({**PLAN, "price": "100000000.00"}, "price"),
    ({**PLAN, "price": "-1"}, "price"),
    ({**PLAN, "price": "NaN"}, "price"),
    ({**PLAN, "sessions": 2**31}, "sessions"),
    ({**PLAN, "sessions": 0}, "sessions"),
    ({**PLAN, "freeze_days": -1}, "freeze_days"),
    ({**PLAN, "currency": "euro"}, "currency"),
    ({**PLAN, "colour": "red"}, "colour"),
]


@pytest.mark.parametrize(("data", "field"), BAD_PLANS, ids=[f"{f}-{i}" for i, (_, f) in enumerate(BAD_PLANS)])
def test_bad_plans_are_refused_naming_the_field(club: CRM, data: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        fitness(club).create_plan(data)
    assert set(info.value.errors) == {field}
    with club.session() as s:
        assert s.scalar(select(func.count()).select_from(Plan)) == 0


def test_the_largest_price_the_column_holds_is_stored_exactly(club: CRM) -> None:
    plan = fitness(club).create_plan({**PLAN, "price": "99999999.99"})["id"]
    with club.session() as s:
        assert s.get(Plan, plan).price == Decimal("99999999.99")  # type: ignore[union-attr]
    with pytest.raises(ValidationError, match="exists"):
        fitness(club).create_plan({**PLAN, "price": "1.00"})


def _bad_calls(customer: int, plan: int, mid: int) -> list[tuple[str, Any, type[Exception], str]]:
    f = "2026-06-01"
    return [
        ("sell", {"customer_id": customer, "plan_id": plan, "starts_on": "2200-01-01"}, ValidationError, "starts_on"),
        ("sell", {"customer_id": customer, "plan_id": plan, "starts_on": "1899-12-31"}, ValidationError, "starts_on"),
        ("sell", {"customer_id": customer, "plan_id": plan, "starts_on": "2199-12-15"}, ValidationError, "starts_on"),
        ("sell", {"customer_id": 2**63, "plan_id": plan, "starts_on": f}, ValidationError, "customer_id"),
        ("sell", {"customer_id": customer + 999, "plan_id": plan, "starts_on": f}, ValidationError, "customer_id"),
        ("sell", {"customer_id": customer, "plan_id": 2**31, "starts_on": f}, ValidationError, "plan_id"),
        ("sell", {"customer_id": customer, "plan_id": plan + 9, "starts_on": f}, ValidationError, "plan_id"),
        (
            "sell",
            {"customer_id": customer, "plan_id": plan, "starts_on": f, "owner_id": 77},
            ValidationError,
            "owner_id",
        ),
        ("sell", {"customer_id": "x", "plan_id": plan, "starts_on": f}, ValidationError, "customer_id"),
        (
            "sell",
            {"customer_id": customer, "plan_id": plan, "starts_on": f, "sold_at": "9999-01-01T00:00:00Z"},
            ValidationError,
            "sold_at",
        ),
        ("renew", {"customer_id": customer, "starts_on": "2026-13-01"}, ValidationError, "starts_on"),
        ("freeze", (mid, {"start": dt.date(2026, 6, 5), "days": 0}), ValidationError, "days"),
        ("freeze", (mid, {"start": dt.date(2026, 6, 5), "days": 2**40}), ValidationError, "days"),
        ("freeze", (mid, {"start": dt.datetime(2026, 6, 5, tzinfo=dt.UTC), "days": 1}), ValidationError, "start"),
        ("freeze", (mid + 99, {"start": dt.date(2026, 6, 5), "days": 1}), NotFound, ""),
        ("freeze", (2**40, {"start": dt.date(2026, 6, 5), "days": 1}), NotFound, ""),
        ("freeze", ("x", {"start": dt.date(2026, 6, 5), "days": 1}), ValidationError, "membership_id"),
        ("unfreeze", (mid, {"on": dt.date(2300, 1, 1)}), ValidationError, "on"),
        ("cancel", (mid, {"reason": "r" * 201}), ValidationError, "reason"),
        ("cancel", (mid, {"reason": "\x00"}), ValidationError, "reason"),
        ("cancel", (mid, {"reason": "  "}), ValidationError, "reason"),
        ("expire", ((), {"as_of": "yesterday"}), ValidationError, "as_of"),
        (
            "sell_pt_package",
            {"customer_id": customer, "sessions": 5, "price": "1.001", "purchased_on": f},
            ValidationError,
            "price",
        ),
        (
            "sell_pt_package",
            {"customer_id": customer, "sessions": 1001, "price": "1", "purchased_on": f},
            ValidationError,
            "sessions",
        ),
        (
            "sell_pt_package",
            {"customer_id": customer, "sessions": 5, "price": "1", "purchased_on": f, "expires_on": "2026-05-01"},
            ValidationError,
            "expires_on",
        ),
        (
            "sell_pt_package",
            {"customer_id": customer, "sessions": 5, "price": "1", "purchased_on": f, "trainer_id": 5},
            ValidationError,
            "trainer_id",
        ),
        ("add_trainer", {"name": "T" * 201}, ValidationError, "name"),
        ("add_trainer", {"name": "Tom", "user_id": 2**31}, ValidationError, "user_id"),
        ("add_trainer", {"name": "Tom", "speciality": "\ud800"}, ValidationError, "speciality"),
        ("add_class", {"name": "Yoga", "club": "main", "weekday": 7, "starts_at": "07:00"}, ValidationError, "weekday"),
        (
            "add_class",
            {"name": "Yoga", "club": "main", "weekday": 1, "starts_at": "25:00"},
            ValidationError,
            "starts_at",
        ),
        ("add_class", {"name": "Yoga", "club": "c" * 101, "weekday": 1, "starts_at": "07:00"}, ValidationError, "club"),
        (
            "add_class",
            {"name": "Yoga", "club": "main", "weekday": 1, "starts_at": "07:00", "capacity": 0},
            ValidationError,
            "capacity",
        ),
        (
            "add_class",
            {"name": "Yoga", "club": "main", "weekday": 1, "starts_at": "07:00", "trainer_id": 3},
            ValidationError,
            "trainer_id",
        ),
        ("memberships", "x", ValidationError, "customer_id"),
    ]


def test_every_operation_refuses_wrong_input_with_crmkit_errors(club: CRM, monthly: int) -> None:
    customer = member(club, "Anna")
    mid = sell(club, customer, monthly, dt.date(2026, 6, 1))
    f = fitness(club)
    calls = _bad_calls(customer, monthly, mid)
    for operation, argument, error, field in calls:
        method = getattr(f, operation)
        with pytest.raises(error) as info:
            if isinstance(argument, tuple):
                positional, keywords = argument
                method(*((positional,) if positional != () else ()), **keywords)
            else:
                method(argument)
        if field:
            assert field in info.value.errors, (operation, argument, info.value)  # type: ignore[attr-defined]
    # nothing was written by any refused call: one membership, one purchase, as before
    with club.session() as s:
        assert s.scalar(select(func.count()).select_from(Membership)) == 1
        assert s.scalar(select(func.count()).select_from(Activity)) == 1
    assert membership(club, customer, mid)["status"] == "active"
