"""Activity statuses declared by plugins (issue 14, point 5): accepted on input, counted as happened (or
not) by triggers and KPIs as declared, freeing the calendar or not; clashes fail at load time."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import select

from crmkit import CalendarConflictError, PluginError, ValidationError, hookimpl
from crmkit.db import Activity
from crmkit.reports.kpis import average_check
from crmkit.specs import ActivityStatusSpec
from crmkit.triggers.query import cadence_table

AS_OF = dt.datetime(2026, 6, 15, 12, 0, tzinfo=dt.UTC)


class Salon:
    plugin_name = "salon"

    @hookimpl
    def crmkit_register_activity_statuses(self) -> list[ActivityStatusSpec]:
        return [
            ActivityStatusSpec("no_show", "No-show", frees_calendar=True),
            ActivityStatusSpec("late_cancel", "Late cancel", frees_calendar=True),
            # came late and was served anyway: it happened
            ActivityStatusSpec("served_late", "Served late", happened=True),
        ]


class Clash:
    plugin_name = "clash"

    @hookimpl
    def crmkit_register_activity_statuses(self) -> list[ActivityStatusSpec]:
        return [ActivityStatusSpec("no_show")]


class Shadow:
    plugin_name = "shadow"

    @hookimpl
    def crmkit_register_activity_statuses(self) -> list[ActivityStatusSpec]:
        return [ActivityStatusSpec("done", happened=False)]


def test_declared_statuses_join_the_cores(crm_factory: Any) -> None:
    crm = crm_factory([Salon()])
    assert list(crm.registry.activity_statuses) == [
        "planned",
        "in_progress",
        "done",
        "cancelled",
        "missed",
        "no_show",
        "late_cancel",
        "served_late",
    ]
    assert crm.registry.activity_statuses["no_show"].owner == "salon"
    assert crm.registry.happened == ("done", "served_late")
    assert crm.registry.busy == ("planned", "in_progress", "done", "served_late")


def test_a_status_declared_twice_fails_naming_both_plugins(crm_factory: Any) -> None:
    with pytest.raises(
        PluginError, match="plugin 'clash': activity status 'no_show' is already declared by plugin 'salon'"
    ):
        crm_factory([Salon(), Clash()])
    with pytest.raises(PluginError, match="activity status 'done' is already declared by plugin 'crmkit'"):
        crm_factory([Shadow()])
    with pytest.raises(ValueError, match="at most 20 characters"):
        ActivityStatusSpec("a_status_name_far_too_long")


def test_declared_statuses_are_accepted_and_unknown_ones_refused(crm_factory: Any) -> None:
    crm = crm_factory([Salon()])
    plain = crm_factory()
    for app in (crm, plain):
        cid = app.customers.create({"name": "Anna"})["id"]
        row = {"customer_id": cid, "kind": "visit", "status": "no_show", "occurred_at": AS_OF}
        if app is crm:
            assert app.activities.log(row)["status"] == "no_show"  # the fast path (typed row)
            assert app.activities.log({**row, "occurred_at": AS_OF.isoformat()})["status"] == "no_show"  # marshmallow
            assert app.activities.ingest([{**row, "status": "served_late"}]).ok
        else:  # a CRM without the plugin does not know it
            with pytest.raises(ValidationError, match="status"):
                app.activities.log(row)
        with pytest.raises(ValidationError, match="status"):
            app.activities.log({**row, "status": "vanished"})
    with crm.session() as s:
        assert sorted(s.scalars(select(Activity.status))) == ["no_show", "no_show", "served_late"]


def test_happened_statuses_count_for_triggers_cadence_and_kpis(crm_factory: Any) -> None:
    crm = crm_factory([Salon()])
    cid = crm.customers.create({"name": "Anna"})["id"]
    statuses = ["done", "served_late", "no_show", "late_cancel", "done"]
    rows = [
        {
            "customer_id": cid,
            "kind": "purchase",
            "status": status,
            "amount": "10.00",
            "currency": "EUR",
            "occurred_at": AS_OF - dt.timedelta(days=10 * (i + 1)),
        }
        for i, status in enumerate(statuses)
    ]
    assert crm.activities.ingest(rows).ok
    happened = [r for r in rows if r["status"] in ("done", "served_late")]
    assert len(happened) == 3
    q = crm.triggers.query(AS_OF)
    with crm.session() as s:
        count = s.scalar(select(q.count("purchase")).select_from(q.from_clause()))
        no_shows = s.scalar(select(q.count("purchase", statuses=("no_show",))).select_from(q.from_clause()))
        table = cadence_table("purchase", as_of=AS_OF, statuses=crm.registry.happened)
        cadence = s.execute(select(table.c.events, table.c.cadence_days)).one()
    assert (count, no_shows) == (3, 1)
    # event days 50, 20 and 10 days ago: gaps 30 and 10 -> 20
    assert tuple(cadence) == (3, 20.0)
    months = average_check(crm, since=dt.date(2026, 4, 1), until=dt.date(2026, 7, 1))
    assert sum(m["purchases"] for m in months) == len(happened)


def test_a_status_that_frees_the_calendar_does_not_conflict(crm_factory: Any) -> None:
    crm = crm_factory([Salon()])
    cid = crm.customers.create({"name": "Anna"})["id"]
    owner = crm.users.create({"name": "Stylist", "email": "s@example.com", "role": "operator"})["id"]

    def visit(status: str) -> dict[str, Any]:
        return {"customer_id": cid, "kind": "visit", "owner_id": owner, "status": status, "occurred_at": AS_OF}

    crm.activities.log(visit("no_show"))
    crm.activities.log(visit("served_late"))  # the no-show left the slot free
    with pytest.raises(CalendarConflictError):
        crm.activities.log(visit("planned"))  # the served one occupies it
