"""The core's KPI reports: registered, rendered in every format, empty data handled, rows from the KPIs."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from crmkit import CRM
from crmkit.reports import FORMATS, kpis
from crmkit.reports.core import tomorrow, year_ago
from crmkit.triggers import Goal, Trigger

CORE = {
    "crm.leads_to_deals",
    "crm.average_check",
    "crm.customer_growth",
    "crm.lead_processing_time",
    "crm.plan_vs_fact",
    "crm.lifecycle_funnel",
    "crm.stage_durations",
    "crm.cohort_retention",
    "crm.trigger_effectiveness",
}


def test_core_reports_are_registered_by_the_core(crm: CRM) -> None:
    assert {r.name for r in crm.reports.all()} >= CORE
    assert all(crm.reports.get(name).owner == "crmkit" for name in CORE)


@pytest.mark.parametrize("name", sorted(CORE))
def test_every_core_report_renders_empty_data_in_every_format(crm: CRM, name: str) -> None:
    for fmt in FORMATS:
        text = crm.reports.render(name, format=fmt)
        if fmt in ("html", "md"):
            assert "No data for these parameters" in text or "—" in text  # a clear no-data, never a crash
        if fmt == "json":
            assert json.loads(text)["report"] == name


def test_default_period_is_the_last_twelve_months() -> None:
    now = dt.datetime(2026, 1, 20, tzinfo=dt.UTC)
    # twelve calendar months ending today, never after it: no chart draws days that have not happened
    assert (year_ago(now), tomorrow(now)) == (dt.date(2025, 2, 1), dt.date(2026, 1, 21))
    assert tomorrow(dt.datetime(2026, 12, 31, 23, 59, tzinfo=dt.UTC)) == dt.date(2027, 1, 1)


def test_report_rows_are_the_kpi_rows(crm: CRM) -> None:
    boss = crm.users.create({"name": "Boss"})
    for i in range(4):
        c = crm.customers.create({"name": f"C{i}", "source": "web" if i % 2 else "ads", "owner_id": boss["id"]})
        if i < 3:
            crm.lifecycle.move(c["id"], "active", cause="bought")
            crm.activities.log(
                {"customer_id": c["id"], "kind": "purchase", "amount": f"{10 * (i + 1)}", "currency": "EUR"}
            )
    now = dt.datetime.now(dt.UTC)
    leads = crm.reports.run("crm.leads_to_deals").rows
    assert [(r["group"], r["leads"], r["deals"]) for r in leads] == [("ads", 2, 2), ("web", 2, 1), ("(all)", 4, 3)]
    checks = crm.reports.run("crm.average_check").rows
    assert checks == kpis.average_check(crm, since=year_ago(now), until=tomorrow(now))
    assert sum(r["revenue"] for r in checks) == 60
    assert json.loads(crm.reports.render("crm.average_check", format="json"))["rows"] == checks


def test_trigger_effectiveness_report(crm: CRM) -> None:
    for i in range(6):
        crm.customers.create({"name": f"C{i}"})
    crm.triggers.register(
        Trigger("t.all", condition=lambda q: q.customer.c.id > 0, holdout=0.5, goal=Goal(("purchase",)))
    )
    crm.triggers.run()
    [row] = crm.reports.run("crm.trigger_effectiveness").rows
    assert row["trigger"] == "t.all" and row["fired"] + row["held_out"] == 6
    assert row["converted"] == 0 and row["uplift_pp"] in (0.0, None)
