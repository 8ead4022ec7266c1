"""The dashboard: periods so far against the same span before, headline numbers counted by hand, the
pages of a written site linked to each other, every report described, grouped and defined."""

from __future__ import annotations

import datetime as dt
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from probe import Probe
from sqlalchemy import update
from test_kpis import activity, at, customer, moves

from crmkit import CRM
from crmkit.db.models import Activity
from crmkit.errors import PluginError
from crmkit.reports import Column, Report
from crmkit.reports.definitions import anchors
from crmkit.reports.site import Period


def test_a_period_so_far_compares_with_the_same_span_of_the_one_before() -> None:
    now = at("2026-03-04", "14:30")
    month = Period.to_now("month", now)
    assert (month.since, month.until) == (at("2026-03-01"), now)
    assert (month.previous_since, month.previous_until) == (at("2026-02-01"), at("2026-02-04", "14:30"))
    week = Period.to_now("week", now)  # 2026-03-04 is a Wednesday; weeks start on Monday
    assert (week.since, week.previous_since, week.previous_until) == (
        at("2026-03-02"),
        at("2026-02-23"),
        at("2026-02-25", "14:30"),
    )
    day = Period.to_now("day", now)
    assert (day.since, day.previous_since, day.previous_until) == (
        at("2026-03-04"),
        at("2026-03-03"),
        at("2026-03-03", "14:30"),
    )
    quarter = Period.to_now("quarter", at("2026-05-10", "08:00"))
    assert (quarter.since, quarter.previous_since) == (at("2026-04-01"), at("2026-01-01"))
    assert Period.to_now("year", now).previous_since == at("2025-01-01")
    # the 31st compares with the whole of a 30-day month, never with a span reaching into this month
    late = Period.to_now("month", at("2026-05-31", "12:00"))
    assert (late.previous_since, late.previous_until) == (at("2026-04-01"), at("2026-05-01"))
    with pytest.raises(ValueError, match="period must be one of"):
        Period.to_now("fortnight", now)  # type: ignore[arg-type]


def test_a_period_starts_at_midnight_in_the_crm_time_zone() -> None:
    from zoneinfo import ZoneInfo

    berlin = ZoneInfo("Europe/Berlin")
    # 23:30 UTC on 31 March is already 1 April in Berlin
    month = Period.to_now("month", at("2026-03-31", "23:30"), berlin)
    assert month.since == dt.datetime(2026, 4, 1, tzinfo=berlin)
    assert month.since.astimezone(dt.UTC) == at("2026-03-31", "22:00")


NOW = at("2026-03-10", "12:00")  # this month so far: Mar 1 to Mar 10 12:00; before: Feb 1 to Feb 10 12:00


def _club(crm: CRM) -> dict[str, Any]:
    """Customers, moves and purchases on both sides of each edge of both spans, and what a person counts."""
    ids = {}
    ids["feb_new"] = customer(crm, "Feb new", at("2026-02-05"))
    ids["feb_late"] = customer(crm, "Feb after the span", at("2026-02-10", "12:00"))  # at the previous until
    ids["mar_a"] = customer(crm, "March A", at("2026-03-01"), stage="active")
    ids["mar_b"] = customer(crm, "March B", at("2026-03-10", "11:59"))
    customer(crm, "March after now", at("2026-03-10", "12:00"))  # at until: outside
    old = customer(crm, "Old", at("2025-12-01"), stage="active")
    moves(crm, old, ("lost", at("2026-03-02")))
    loyal = customer(crm, "Loyal", at("2025-11-01"), stage="active")
    moves(crm, loyal, ("loyal", at("2026-01-15")))
    gone = customer(crm, "Gone in Feb", at("2025-10-01"), stage="active")
    moves(crm, gone, ("lost", at("2026-02-03")))
    activity(crm, loyal, "purchase", at("2026-03-03"), amount="120.50", currency="USD")
    activity(crm, loyal, "purchase", at("2026-03-04"), amount="99.00", currency="EUR")  # not the CRM's currency
    activity(crm, old, "purchase", at("2026-02-09"), amount="30.00", currency="USD")
    activity(crm, old, "purchase", at("2026-02-11"), amount="500.00", currency="USD")  # after the previous span
    return {
        # created in [Mar 1, Mar 10 12:00) and in [Feb 1, Feb 10 12:00)
        "crm.new_customers": (2, 1),
        # active or loyal at Mar 10 12:00: March A, Loyal (Old lost on Mar 2); at Feb 10 12:00: Old, Loyal
        "crm.active_customers": (2, 2),
        "crm.lost_customers": (1, 1),
        "crm.revenue": (120.5, 30.0),
        "probe.gold": (0, 0),
    }


def test_headline_numbers_are_the_counts_made_by_hand(crm_factory: Any) -> None:
    crm: CRM = crm_factory([Probe()])
    expected = _club(crm)
    dashboard = crm.reports.dashboard("month", now=NOW)
    figures = {f.headline.name: (f.value, f.previous) for f in dashboard.figures}
    assert figures == expected
    assert any(v for pair in figures.values() for v in pair)  # not a comparison of zeros
    # the order the declarations give: the probe's 5 first, then the core's 10, 20, 30, 40
    assert [f.headline.name for f in dashboard.figures][:2] == ["probe.gold", "crm.active_customers"]
    good = {f.headline.name: f.good for f in dashboard.figures}
    assert good["crm.new_customers"] is True and good["crm.active_customers"] is None
    assert good["crm.lost_customers"] is None  # 1 vs 1: no change; "down is good" is only read on a change


def test_headlines_count_only_the_customers_the_user_reaches(crm_factory: Any) -> None:
    crm: CRM = crm_factory([Probe()])
    north = [customer(crm, f"North {i}", at("2026-03-0" + str(i + 1)), branch="north") for i in range(3)]
    customer(crm, "South", at("2026-03-02"), branch="south")
    manager = crm.users.create({"name": "North manager", "role": "manager", "branch": "north"})
    with crm.as_user(manager["id"]):
        figures = {f.headline.name: f.value for f in crm.reports.dashboard("month", now=NOW).figures}
    assert figures["crm.new_customers"] == len(north) == 3


def test_revenue_is_summed_in_the_database_by_currency(crm_factory: Any) -> None:
    crm: CRM = crm_factory([], currency="EUR")
    cid = customer(crm, "Buyer", at("2026-03-01"))
    activity(crm, cid, "purchase", at("2026-03-02"), amount="10.25", currency="EUR")
    activity(crm, cid, "purchase", at("2026-03-03"), amount="7.00", currency="USD")
    activity(crm, cid, "purchase", at("2026-03-04"), amount="1.00", currency="EUR")
    with crm.engine.begin() as conn:  # a purchase that did not happen counts nothing
        conn.execute(update(Activity).where(Activity.amount == 1).values(status="cancelled"))
    figures = {f.headline.name: f.value for f in crm.reports.dashboard("month", now=NOW).figures}
    assert figures["crm.revenue"] == 10.25


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        href = dict(attrs).get("href")
        if tag == "a" and href:
            self.hrefs.append(href)


def _hrefs(path: Path) -> list[str]:
    parser = _Links()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser.hrefs


def test_the_written_site_links_every_page_to_the_dashboard_its_siblings_and_its_definition(
    crm_factory: Any, tmp_path: Path
) -> None:
    crm: CRM = crm_factory([Probe()])
    _club(crm)
    written = crm.reports.write_site(tmp_path / "site", now=NOW)
    folder = tmp_path / "site"
    names = {r.name for r in crm.reports.visible()}
    assert {p.name for p in written} == {"index.html", "kpis.html"} | {f"{n}.html" for n in names}
    definitions = (folder / "kpis.html").read_text(encoding="utf-8")
    for page in written:
        for href in _hrefs(page):
            target, _, anchor = href.partition("#")
            target = target or page.name  # a link within the page
            assert (folder / target).is_file(), f"{page.name} links to {href}, which was not written"
            if anchor:
                assert f'id="{anchor}"' in (folder / target).read_text(encoding="utf-8"), f"{page.name}: {href}"
    index_links = set(_hrefs(folder / "index.html"))
    assert {f"{n}.html" for n in names} <= index_links  # the dashboard lists every report
    growth = _hrefs(folder / "crm.customer_growth.html")
    assert "index.html" in growth  # back to the dashboard
    siblings = {f"{r.name}.html" for r in crm.reports.visible() if r.group == "members"}
    assert len(siblings) > 2 and siblings <= set(growth)
    assert "kpis.html#customer-growth" in growth and 'id="customer-growth"' in definitions
    assert 'id="probe-summary"' in definitions  # a plugin's own definitions join the core's
    index = (folder / "index.html").read_text(encoding="utf-8")
    # the sections in the order a manager reads them: members first, the audit log last
    assert index.index("Members and growth") < index.index("Sales and revenue") < index.index("Data and audit")
    assert "Gold customers" in index and "New customers" in index


def test_the_field_history_is_left_out_of_the_navigation_of_a_user_who_cannot_run_it(crm_factory: Any) -> None:
    crm: CRM = crm_factory([])
    viewer = crm.users.create({"name": "Viewer", "role": "viewer"})
    with crm.as_user(viewer["id"]):
        names = {r.name for r in crm.reports.visible()}
        html = crm.reports.render_dashboard(crm.reports.dashboard(now=NOW))
    assert "crm.field_history" not in names and "crm.customer_growth" in names
    assert "Field history" not in html


def test_every_core_and_fitness_report_has_a_description_a_section_and_a_definition(crm_factory: Any) -> None:
    from crmkit_fitness import FitnessPlugin

    crm: CRM = crm_factory([FitnessPlugin()])
    known = anchors(tuple(path for _owner, path in crm.registry.definitions))
    reports = [r for r in crm.reports.all() if r.name.startswith(("crm.", "fitness."))]
    assert len(reports) >= 17
    for report in reports:
        assert report.description, report.name
        assert report.group, report.name
        if report.name != "crm.field_history":  # the audit log's changes: nothing is counted
            assert report.definition in known, report.name


def test_a_definition_or_template_that_does_not_exist_is_an_error_when_the_report_is_registered(
    crm_factory: Any,
) -> None:
    crm: CRM = crm_factory([])

    def rows(ctx: Any, params: Any) -> list[dict[str, Any]]:
        return []

    with pytest.raises(PluginError, match="definition 'no-such-kpi' is not an anchor"):
        crm.reports.register(Report("app.x", "X", data=rows, columns=[Column("a")], definition="no-such-kpi"))
    with pytest.raises(PluginError, match="template 'reports/typo.html' is not in any template folder"):
        crm.reports.register(Report("app.y", "Y", data=rows, columns=[Column("a")], template="reports/typo.html"))


def test_a_plugins_csv_and_markdown_templates_are_used(crm_factory: Any, tmp_path: Path) -> None:
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / "app.tiers.csv").write_text(
        "tier;count\n{% for row in rows %}{{ row.tier }};{{ row.n }}\n{% endfor %}", encoding="utf-8"
    )
    (tmp_path / "reports" / "app.tiers.md").write_text("# Tiers: {{ rows | length }}\n", encoding="utf-8")
    crm: CRM = crm_factory([], template_dirs=[tmp_path])
    crm.reports.register(
        Report(
            "app.tiers",
            "Tiers",
            data=lambda ctx, params: [{"tier": "gold", "n": 2}, {"tier": "silver", "n": 5}],
            columns=[Column("tier"), Column("n", type="integer")],
        )
    )
    assert crm.reports.render("app.tiers", format="csv") == "tier;count\ngold;2\nsilver;5\n"
    assert crm.reports.render("app.tiers", format="md") == "# Tiers: 2"
    # a report without its own CSV template gets the built-in writer
    assert crm.reports.render("crm.lifecycle_funnel", format="csv").startswith("stage,customers,pct")


def test_a_report_downloads_as_a_typed_workbook(crm_factory: Any) -> None:
    import io

    from openpyxl import load_workbook

    crm: CRM = crm_factory([])
    crm.reports.register(
        Report(
            "app.typed",
            "Typed",
            data=lambda ctx, params: [
                {"day": dt.date(2026, 3, 1), "n": 3, "note": "=SUM(A1)", "phone": "+14155550101"}
            ],
            columns=[
                Column("day", type="date"),
                Column("n", type="integer"),
                Column("note"),
                Column("phone", type="phone"),
            ],
        )
    )
    sheet = load_workbook(io.BytesIO(crm.reports.xlsx(crm.reports.run("app.typed")))).active
    assert sheet is not None
    header, row = list(sheet.iter_rows(values_only=True))
    assert header == ("Day", "N", "Note", "Phone")
    assert row[0] == dt.datetime(2026, 3, 1) and row[1] == 3
    assert row[2] == "'=SUM(A1)"  # never a formula in a spreadsheet
    assert row[3] == "+14155550101"  # a phone number stays as it is


def test_the_dashboard_fits_a_phone_screen(crm_factory: Any, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright
    from test_report_browser import CHROMIUM_FLAGS, chromium

    crm: CRM = crm_factory([Probe()])
    _club(crm)
    crm.reports.write_site(tmp_path, now=NOW)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 390, "height": 800})
            page.goto((tmp_path / "index.html").as_uri())
            width = page.evaluate("document.documentElement.scrollWidth")
            figures = page.locator(".figure").count()
            smallest = page.evaluate(
                "Math.min(...[...document.querySelectorAll('body *')].filter(e => e.childElementCount === 0"
                " && e.textContent.trim()).map(e => parseFloat(getComputedStyle(e).fontSize)))"
            )
            page.screenshot(path=str(tmp_path / "dashboard-390.png"), full_page=True)
        finally:
            browser.close()
    assert width <= 390
    assert figures == 5  # the core's four and the probe's one
    assert smallest >= 11


def test_the_dashboard_states_its_period(crm_factory: Any) -> None:
    crm: CRM = crm_factory([])
    html = crm.reports.render_dashboard(crm.reports.dashboard("week", now=NOW))
    assert re.search(r"This week so far \(since Mar 9, 2026\)", html)


def test_a_page_states_its_period_with_the_last_day_it_includes(crm_factory: Any) -> None:
    crm: CRM = crm_factory([])
    html = crm.reports.render("crm.customer_growth", {"since": "2026-01-01", "until": "2026-03-01"})
    # until is the first day after the period: a person reads the last day in it
    assert "<strong>From</strong> Jan 1, 2026 <strong>to</strong> Feb 28, 2026" in html


def test_the_fitness_headlines_are_the_counts_made_by_hand(crm_factory: Any) -> None:
    from crmkit_fitness import FitnessPlugin

    crm: CRM = crm_factory([FitnessPlugin()])
    risky = customer(crm, "At risk since Feb", at("2026-01-10"), stage="active")
    moves(crm, risky, ("at_risk", at("2026-02-05")))
    back = customer(crm, "At risk in Feb, back in March", at("2026-01-10"), stage="active")
    moves(crm, back, ("at_risk", at("2026-02-06")), ("active", at("2026-03-03")))
    late = customer(crm, "At risk after the previous span", at("2026-01-10"), stage="active")
    moves(crm, late, ("at_risk", at("2026-02-20")))
    for when in (at("2026-03-02"), at("2026-03-09", "23:00"), at("2026-02-09"), at("2026-02-10", "12:00")):
        activity(crm, risky, "checkin", when, data={"club": "north"})
    figures = {f.headline.name: (f.value, f.previous) for f in crm.reports.dashboard("month", now=NOW).figures}
    # at Mar 10 12:00: risky and late (back came back); at Feb 10 12:00: risky and back (late not yet)
    assert figures["fitness.members_at_risk"] == (2, 2)
    # check-ins in [Mar 1, Mar 10 12:00) and [Feb 1, Feb 10 12:00): the one at Feb 10 12:00 is outside
    assert figures["fitness.checkins"] == (2, 1)
