"""Local time: hours and weekdays in the customer's zone (their branch's, else the CRM's), the same on SQLite
and PostgreSQL, checked against Python's zoneinfo."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from crmkit import CRM
from crmkit.db.models import Activity, Customer
from crmkit.sql import hour_of_day, iso_weekday
from crmkit.triggers import Trigger
from crmkit.zones import local_time, transitions, zone

SINCE = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
UNTIL = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)


def test_the_switches_of_a_zone_are_found_to_the_minute() -> None:
    assert transitions(zone("America/New_York"), SINCE, UNTIL) == [
        (SINCE, -300),
        (dt.datetime(2026, 3, 8, 7, 0, tzinfo=dt.UTC), -240),  # 02:00 EST
        (dt.datetime(2026, 11, 1, 6, 0, tzinfo=dt.UTC), -300),  # 02:00 EDT
    ]
    assert transitions(zone("Asia/Kolkata"), SINCE, UNTIL) == [(SINCE, 330)]


def test_hours_and_weekdays_are_the_customers_local_ones(crm_factory: Any) -> None:
    crm: CRM = crm_factory(time_zone="America/New_York", branch_time_zones={"goa": "Asia/Kolkata"})
    home = crm.customers.create({"name": "Nia"})["id"]
    away = crm.customers.create({"name": "Ravi", "branch": "goa"})["id"]
    moments = [  # around both of New York's switches, near midnight, and the half-hour zone
        dt.datetime(2026, 3, 8, 6, 59, tzinfo=dt.UTC),
        dt.datetime(2026, 3, 8, 7, 0, tzinfo=dt.UTC),
        dt.datetime(2026, 6, 15, 3, 30, tzinfo=dt.UTC),
        dt.datetime(2026, 10, 31, 23, 45, tzinfo=dt.UTC),
        dt.datetime(2026, 11, 1, 5, 59, tzinfo=dt.UTC),
        dt.datetime(2026, 11, 1, 6, 0, tzinfo=dt.UTC),
    ]
    rows = [
        {"customer_id": cid, "kind": "visit", "occurred_at": m.isoformat()} for cid in (home, away) for m in moments
    ]
    assert crm.activities.ingest(rows).ok
    a = Activity.__table__
    branch = select(Customer.branch).where(Customer.id == a.c.customer_id).scalar_subquery()
    local = local_time(a.c.occurred_at, crm.zones, SINCE, UNTIL, branch)
    query = select(a.c.customer_id, a.c.occurred_at, hour_of_day(local), iso_weekday(local))
    with crm.session() as s:
        got = {(cid, at.astimezone(dt.UTC)): (h, d) for cid, at, h, d in s.execute(query)}
    expected = {}
    for cid, name in ((home, "America/New_York"), (away, "Asia/Kolkata")):
        for m in moments:
            wall = m.astimezone(ZoneInfo(name))
            expected[(cid, m)] = (wall.hour, wall.weekday())
    assert len(got) == 12 and got == expected


def test_a_trigger_window_of_local_calendar_days(crm_factory: Any) -> None:
    crm: CRM = crm_factory(time_zone="America/New_York", branch_time_zones={"tokyo": "Asia/Tokyo"})
    as_of = dt.datetime(2026, 6, 15, 3, 0, tzinfo=dt.UTC)  # Sunday 14 June, 23:00 in New York; Monday 12:00 in Tokyo
    ny = crm.customers.create({"name": "NY"})["id"]
    late = crm.customers.create({"name": "Late"})["id"]
    tokyo = crm.customers.create({"name": "Tokyo", "branch": "tokyo"})["id"]
    visits = {
        ny: dt.datetime(2026, 6, 14, 5, 0, tzinfo=dt.UTC),  # 01:00 on the 14th in New York: today there
        late: dt.datetime(2026, 6, 14, 3, 30, tzinfo=dt.UTC),  # 23:30 on the 13th in New York: yesterday
        tokyo: dt.datetime(2026, 6, 14, 16, 0, tzinfo=dt.UTC),  # 01:00 on the 15th in Tokyo: today there
    }
    rows = [{"customer_id": c, "kind": "visit", "occurred_at": at.isoformat()} for c, at in visits.items()]
    assert crm.activities.ingest(rows).ok
    crm.triggers.register(Trigger("t.came_today", condition=lambda q: q.has("visit", within=q.local_days(1))))
    crm.triggers.register(Trigger("t.came_this_week", condition=lambda q: q.has("visit", within=q.local_days(2))))
    crm.triggers.register(Trigger("t.last_24h", condition=lambda q: q.has("visit", within=dt.timedelta(days=1))))

    def fired(name: str, at: dt.datetime = as_of) -> set[int]:
        with crm.session() as s:
            return set(s.scalars(crm.triggers.matching(name, at)))

    # worked out from the local dates above
    assert fired("t.came_today") == {ny, tokyo}
    assert fired("t.came_this_week") == {ny, late, tokyo}
    assert fired("t.last_24h") == {ny, late, tokyo}  # 24 hours is not a calendar day
    # built once: an hour later it is Monday in New York, and nobody visited on Monday there or in Tokyo
    assert fired("t.came_today", as_of + dt.timedelta(hours=1)) == {tokyo}
    assert crm.triggers._built["t.came_today"] is not None
