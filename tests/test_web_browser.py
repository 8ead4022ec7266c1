"""The reports in a browser: Debian's Chromium, driven by Playwright, against ``crmkit.web`` served on a
free port of 127.0.0.1. Open the dashboard, follow a report, change its period in the form, see the chart
and the table change, download the CSV of the new period.

Like ``test_report_browser.py``, no browser is downloaded and the test fails, never skips, without
Chromium.
"""

from __future__ import annotations

import csv
import io
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from test_report_browser import CHROMIUM_FLAGS, chromium
from test_web import GROWTH, grow, months_back, today

from crmkit import CRM
from crmkit.web import ReportsApp, make_server


@pytest.fixture
def served(crm_factory: Callable[..., CRM]) -> Iterator[tuple[CRM, str]]:
    """A CRM with six months of customers, its reports served on a free port; the CRM and the address."""
    crm = crm_factory()
    grow(crm)
    server = make_server(ReportsApp(crm), "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield crm, f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join()
        server.server_close()


def test_change_the_period_of_a_report_and_download_it(served: tuple[CRM, str], tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    crm, base = served
    since = months_back(today(), 3)
    problems: list[str] = []
    elsewhere: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=[*CHROMIUM_FLAGS, "--no-proxy-server"])
        try:
            context = browser.new_context(accept_downloads=True, viewport={"width": 1100, "height": 900})
            page = context.new_page()
            page.on("console", lambda m: problems.append(m.text) if m.type in ("error", "warning") else None)
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.on("request", lambda r: None if r.url.startswith(f"{base}/") else elsewhere.append(r.url))

            page.goto(f"{base}/")
            assert page.title() == "Dashboard"
            assert page.locator('[data-headline="crm.new_customers"] .value').count() == 1

            page.locator(".sections a", has_text="Customer base growth").click()
            page.wait_for_url(f"{base}/reports/{GROWTH}")
            assert page.locator("h1").inner_text() == "Customer base growth"
            chart = page.locator("svg.chart").first
            before_svg, before_points = chart.evaluate("e => e.outerHTML"), chart.locator("circle").count()
            before_table = page.locator("table").inner_text()
            assert before_points == 12  # the last twelve months by default

            page.fill('form.params input[name="since"]', since.isoformat())
            page.locator("form.params button[type=submit]").click()
            page.wait_for_url(f"{base}/reports/{GROWTH}?since={since.isoformat()}*")
            chart = page.locator("svg.chart").first
            assert chart.evaluate("e => e.outerHTML") != before_svg
            assert chart.locator("circle").count() == 4  # three months back and this one
            after_table = page.locator("table").inner_text()
            assert after_table != before_table
            assert page.locator("table tbody tr").count() == 4
            assert page.locator('input[name="since"]').input_value() == since.isoformat()

            with page.expect_download() as info:
                page.locator(".downloads a", has_text="CSV").click()
            download = info.value
            saved = tmp_path / download.suggested_filename
            download.save_as(saved)
            page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        finally:
            browser.close()

    assert problems == [], problems  # no console errors: nothing the page's policy refused either
    assert elsewhere == [], elsewhere  # no request left the app on 127.0.0.1
    assert saved.name.startswith(f"{GROWTH}-{since.isoformat()}-") and saved.suffix == ".csv"
    until = saved.stem.removeprefix(f"{GROWTH}-{since.isoformat()}-")
    expected = crm.reports.render(GROWTH, {"since": since.isoformat(), "until": until}, format="csv")
    assert saved.read_text(encoding="utf-8") == expected
    rows = list(csv.DictReader(io.StringIO(expected)))
    months = [months_back(today(), back) for back in (3, 2, 1, 0)]
    assert [r["month"] for r in rows] == [f"{m.year}-{m.month:02d}" for m in months]
    # the rows are the table's: the customers made three months back and since
    assert [r["new"] for r in rows] == ["4", "5", "6", "0"]
    assert all(r["new"] in after_table for r in rows)
