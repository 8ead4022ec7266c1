"""The customer's own cadence (issue 14, point 4): ``cadence_table``, ``q.cadence`` and ``q.overdue`` against
intervals computed by plain Python from the same visits, on SQLite and PostgreSQL alike."""

from __future__ import annotations

import datetime as dt
import itertools
import random
import statistics
from typing import Any

import pytest
from sqlalchemy import select

from crmkit import CRM
from crmkit.db import Customer
from crmkit.triggers import Trigger
from crmkit.triggers.query import cadence_table

AS_OF = dt.datetime(2026, 6, 15, 12, 0, tzinfo=dt.UTC)
LAST, MIN_EVENTS, FALLBACK = 5, 3, 30.0

Plan = list[tuple[int, int, str, str | None]]


def _in(category: str, hour: int, days_ago: tuple[int, ...]) -> Plan:
    return [(d, hour, "done", category) for d in days_ago]


#: (days before AS_OF's date, hour, status, category) of each visit, by customer; the hand-made cases
HAND: dict[str, Plan] = {
    # 8 events: only the last 5 gaps count (10, 12, 7, 9, 11 -> 10), the old 60-day gaps do not
    "many": [(d, 10, "done", None) for d in (200, 140, 80, 60, 51, 40, 28, 21, 11)],
    # 4 events, 3 gaps (odd): 20, 5, 14 -> 14
    "odd": [(d, 9, "done", None) for d in (39, 19, 14, 0)],
    # 5 events, 4 gaps (even): 7, 9, 30, 8 -> 8.5
    "even": [(d, 18, "done", None) for d in (100, 93, 84, 54, 46)],
    # 2 events: fewer than MIN_EVENTS, the fallback (30) applies; last visit 31 days ago -> overdue
    "few": [(50, 12, "done", None), (31, 12, "done", None)],
    # cancelled and missed visits do not count, two visits on one day are one event: 10, 10, 10 -> 10
    "noisy": [
        (45, 8, "done", None),
        (40, 8, "cancelled", None),
        (35, 8, "done", None),
        (35, 20, "done", None),
        (30, 8, "missed", None),
        (25, 8, "done", None),
        (15, 23, "done", None),
    ],
    # a visit after AS_OF is not seen (the last event is 3 days ago: 3, 3, 3 -> not overdue)
    "future": [(d, 10, "done", None) for d in (12, 9, 6, 3, -2)],
    # two categories: colour every 42 days, cuts every 21 days
    "salon": _in("color", 11, (170, 128, 86, 44)) + _in("cut", 15, (85, 64, 43, 22)),
}


def _plain(
    visits: list[tuple[dt.datetime, str, str | None]], as_of: dt.datetime, category: str | None = None
) -> tuple[int, float, dt.date] | None:
    """Events, cadence and last event day by plain Python; None without any event."""
    days = sorted(
        {at.date() for at, status, cat in visits if status == "done" and at <= as_of and category in (None, cat)}
    )
    if not days:
        return None
    gaps = [(b - a).days for a, b in itertools.pairwise(days)][-LAST:]
    cadence = float(statistics.median(gaps)) if len(days) >= MIN_EVENTS else FALLBACK
    return len(days), cadence, days[-1]


def _overdue(expected: tuple[int, float, dt.date] | None, as_of: dt.datetime, by_days: float, by_pct: float) -> bool:
    if expected is None:
        return False
    _, cadence, last_day = expected
    late = (as_of.date() - last_day).days
    return late > cadence + by_days and late > cadence * (1 + by_pct / 100)


@pytest.fixture
def visits(crm: CRM) -> dict[int, list[tuple[dt.datetime, str, str | None]]]:
    """The hand-made customers and 40 random ones, each with their visits (and calls, which never count)."""
    rng = random.Random(14)
    plans = dict(HAND)
    for n in range(40):
        plans[f"random{n}"] = [
            (rng.randint(-5, 150), rng.randint(0, 23), rng.choice(["done"] * 5 + ["cancelled", "missed"]), None)
            for _ in range(rng.randint(0, 12))
        ]
    plans["nobody"] = []
    out: dict[int, list[tuple[dt.datetime, str, str | None]]] = {}
    rows: list[dict[str, Any]] = []
    for name, plan in plans.items():
        cid = crm.customers.create({"name": name}, allow_duplicate=True)["id"]
        out[cid] = []
        for days_ago, hour, status, category in plan:
            at = dt.datetime.combine(AS_OF.date() - dt.timedelta(days=days_ago), dt.time(hour), dt.UTC)
            data = {"category": category} if category else {}
            rows.append({"customer_id": cid, "kind": "visit", "status": status, "occurred_at": at, "data": data})
            out[cid].append((at, status, category))
        rows.append(
            {"customer_id": cid, "kind": "call", "direction": "inbound", "occurred_at": AS_OF - dt.timedelta(1)}
        )
    assert crm.activities.ingest(rows).ok
    return out


def _names(crm: CRM) -> dict[str, int]:
    with crm.session() as s:
        return {name: cid for name, cid in s.execute(select(Customer.name, Customer.id))}


def test_cadence_table_gives_the_median_of_the_last_gaps(crm: CRM, visits: dict[int, Any]) -> None:
    expected = {cid: e for cid, v in visits.items() if (e := _plain(v, AS_OF)) is not None}
    names = _names(crm)
    # the hand-made cases, spelled out
    assert expected[names["many"]][:2] == (9, 10.0)
    assert expected[names["odd"]][:2] == (4, 14.0)
    assert expected[names["even"]][:2] == (5, 8.5)
    assert expected[names["few"]][:2] == (2, 30.0)
    assert expected[names["noisy"]][:2] == (4, 10.0)
    assert expected[names["future"]][:2] == (4, 3.0)
    assert names["nobody"] not in expected
    assert sum(e[0] >= MIN_EVENTS for e in expected.values()) >= 30  # most random ones have a median

    table = cadence_table("visit", as_of=AS_OF, last=LAST, min_events=MIN_EVENTS, fallback=dt.timedelta(30))
    with crm.session() as s:
        rows = s.execute(select(table)).mappings().all()
    got = {
        r["customer_id"]: (r["events"], r["cadence_days"], dt.date(1970, 1, 1) + dt.timedelta(r["last_day"]))
        for r in rows
    }
    assert len(got) == len(expected) > 30
    assert got == expected
    assert {r["customer_id"]: r["last_at"].date() for r in rows} == {c: e[2] for c, e in expected.items()}


def test_cadence_per_category(crm: CRM, visits: dict[int, Any]) -> None:
    salon = _names(crm)["salon"]
    assert _plain(visits[salon], AS_OF, "color")[:2] == (4, 42.0)  # type: ignore[index]
    assert _plain(visits[salon], AS_OF, "cut")[:2] == (4, 21.0)  # type: ignore[index]
    # both together (170, 128, 86, 85, 64, 44, 43, 22 days ago): gaps 42, 42, 1, 21, 20, 1, 21, the last
    # five 1, 21, 20, 1, 21 -> 20
    assert _plain(visits[salon], AS_OF)[:2] == (8, 20.0)  # type: ignore[index]
    by = cadence_table("visit", as_of=AS_OF, by_category=True)
    color = cadence_table("visit", as_of=AS_OF, category="color")
    with crm.session() as s:
        rows = {(r.customer_id, r.category): (r.events, r.cadence_days) for r in s.execute(select(by))}
        only = {r.customer_id: (r.events, r.cadence_days) for r in s.execute(select(color))}
    assert rows == {(salon, "color"): (4, 42.0), (salon, "cut"): (4, 21.0)}
    assert only == {salon: (4, 42.0)}


@pytest.mark.parametrize(("by_days", "by_pct"), [(0, 0), (5, 0), (0, 50), (3, 20)])
def test_overdue_against_own_cadence(crm: CRM, visits: dict[int, Any], by_days: float, by_pct: float) -> None:
    later = AS_OF + dt.timedelta(days=9, hours=-13)  # a statement built once, run for another day too
    crm.triggers.register(
        Trigger(
            "t.overdue",
            condition=lambda q: q.overdue("visit", by_days=by_days, by_pct=by_pct, last=LAST, min_events=MIN_EVENTS),
        )
    )
    for moment in (AS_OF, later):
        expected = {cid for cid, v in visits.items() if _overdue(_plain(v, moment), moment, by_days, by_pct)}
        with crm.session() as s:
            got = set(s.scalars(crm.triggers.matching("t.overdue", moment)))
        assert expected, "the comparison must compare something"
        assert len(expected) < len(visits)
        assert got == expected, (moment, sorted(got ^ expected))
    assert crm.triggers._built["t.overdue"] is not None  # as_of is a parameter of cadence and overdue


def test_overdue_hand_cases_and_the_cadence_expression(crm: CRM, visits: dict[int, Any]) -> None:
    names = _names(crm)
    q = crm.triggers.query(AS_OF)
    with crm.session() as s:
        query = select(q.customer.c.name, q.cadence("visit"), q.days_since(q.last("visit")), q.overdue("visit"))
        rows = {r[0]: r[1:] for r in s.execute(query)}
        color: dict[str, float] = dict(s.execute(select(q.customer.c.name, q.cadence("visit", category="color"))).all())
    # many: last visit 11 days ago, cadence 10 -> overdue; odd: today; even: 46 days against 8.5
    assert rows["many"] == (10.0, 11, True)
    assert rows["odd"] == (14.0, 0, False)
    assert rows["even"] == (8.5, 46, True)
    assert rows["few"] == (30.0, 31, True)  # the fallback, and one day past it
    assert rows["noisy"] == (10.0, 15, True)
    assert rows["future"] == (3.0, 3, False)
    assert rows["nobody"] == (30.0, None, False)  # the fallback; never overdue without a visit
    assert color["salon"] == 42.0 and color["many"] == 30.0
    assert len(rows) == len(visits) == len(names)
