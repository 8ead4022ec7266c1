"""The club's checks-then-writes hold under real concurrent processes (spawned, started together by a
barrier, bounded): one plan per name, renewals that follow each other, each session used once."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from crmkit_fitness import FitnessConfig, FitnessPlugin, fitness
from fitness_testkit import member

from crmkit import CRM
from crmkit.errors import ValidationError
from crmkit.testing import run_in_processes

PROCESSES = 4
TIMEOUT = 120


def _worker(database: tuple[str, dict[str, Any]], start: Any, job: str, args: Any) -> str:
    crm = CRM(database[0], plugins=[FitnessPlugin(FitnessConfig(holdout=0.0))], engine_options=database[1])
    try:
        start()
        return _JOBS[job](crm, args)
    finally:
        crm.close()


def _create_plan(crm: CRM, name: str) -> str:
    try:
        fitness(crm).create_plan({"name": name, "duration_days": 30, "price": "10.00"})
        return "created"
    except ValidationError as exc:
        return "refused" if "exists" in str(exc) else repr(exc)


def _renew(crm: CRM, customer: int) -> str:
    fitness(crm).renew({"customer_id": customer})
    return "renewed"


def _checkins(crm: CRM, args: tuple[int, int, int]) -> str:
    customer, first, count = args
    for i in range(count):
        moment = dt.datetime(2026, 6, 10, 6, tzinfo=dt.UTC) + dt.timedelta(minutes=first + i)
        crm.activities.log(
            {"customer_id": customer, "kind": "checkin", "occurred_at": moment.isoformat(), "data": {"club": "main"}}
        )
    return "logged"


_JOBS: dict[str, Callable[[CRM, Any], str]] = {"plan": _create_plan, "renew": _renew, "checkins": _checkins}


def _run(crm: CRM, job: str, args: list[Any]) -> list[Any]:
    return run_in_processes(_worker, crm, [(job, a) for a in args], timeout=TIMEOUT)


def test_concurrent_plans_of_one_name_make_one_plan(club: CRM) -> None:
    results = _run(club, "plan", ["Monthly"] * PROCESSES)
    assert sorted(results) == ["created"] + ["refused"] * (PROCESSES - 1)


def test_concurrent_renewals_follow_each_other(club: CRM) -> None:
    f = fitness(club)
    plan = f.create_plan({"name": "Monthly", "duration_days": 30, "price": "10.00"})["id"]
    anna = member(club, "Anna")
    f.sell({"customer_id": anna, "plan_id": plan, "starts_on": "2026-06-01"})
    assert _run(club, "renew", [anna] * PROCESSES) == ["renewed"] * PROCESSES
    periods = [(m["starts_on"], m["ends_on"]) for m in f.memberships(anna)]
    # by hand: 06-01..06-30, then four back-to-back months, none overlapping another
    starts = [dt.date(2026, 6, 1) + dt.timedelta(days=30 * k) for k in range(PROCESSES + 1)]
    assert periods == [(s.isoformat(), (s + dt.timedelta(days=29)).isoformat()) for s in starts]


def test_concurrent_checkins_use_each_session_once(club: CRM) -> None:
    f = fitness(club)
    plan = f.create_plan({"name": "Ten", "duration_days": 30, "price": "10.00", "sessions": 10})["id"]
    anna = member(club, "Anna")
    f.sell({"customer_id": anna, "plan_id": plan, "starts_on": "2026-06-01"})
    f.sell({"customer_id": anna, "plan_id": plan, "starts_on": "2026-06-05"})  # an early renewal, ends later
    # 4 processes x 4 check-ins on 06-10: the first membership pays 10, the renewal the other 6
    results = _run(club, "checkins", [(anna, 100 * k, 4) for k in range(PROCESSES)])
    assert results == ["logged"] * PROCESSES
    assert [m["sessions_left"] for m in f.memberships(anna)] == [0, 4]
