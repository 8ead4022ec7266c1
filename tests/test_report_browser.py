"""A report is looked at as a person would: rendered HTML opened in headless Chromium.

Chromium comes from Debian's ``chromium`` package (``.ci/run`` installs it when missing) and is driven by
Playwright's Python client with ``executable_path``, so no browser is downloaded. The test fails, never
skips, when Chromium is missing: a report nobody can open is a broken report.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from probe import Probe

from crmkit import CRM
from crmkit.reports import Chart, Column, Report, ReportContext

CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium() -> str:
    path = os.environ.get("CRMKIT_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        pytest.fail("Chromium is not installed: apt-get install chromium (or set CRMKIT_CHROMIUM)")
    return path


def open_in_browser(html_file: Path, screenshot: Path) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    problems: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            page.on("console", lambda m: problems.append(m.text) if m.type in ("error", "warning") else None)
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.on(
                "request", lambda r: problems.append(f"request to {r.url}") if not r.url.startswith("file:") else None
            )
            page.goto(html_file.as_uri())
            # a bar or line chart is drawn for a wide and a narrow box, and shows the one that fits
            charts = page.locator(".chart-box")
            boxes = [charts.nth(i).bounding_box() for i in range(charts.count())]
            marks = page.locator("svg.chart:visible .mark, table.chart td.cell").count()
            title = page.title()
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    return {"problems": problems, "boxes": boxes, "marks": marks, "title": title}


def test_html_report_opens_cleanly_with_its_charts(crm_factory: Any, tmp_path: Path) -> None:
    crm: CRM = crm_factory([Probe()])
    for i, tier in enumerate(["gold", "silver", "bronze", "gold", "<b>bold</b>"]):
        crm.customers.create(
            {"name": f"<script>alert({i})</script>", "tier": tier if tier != "<b>bold</b>" else "gold"}
        )

    def visits(ctx: ReportContext, params: Any) -> list[dict[str, Any]]:
        return [
            {"day": d, "hour": f"{h:02d}", "visits": (i + h) % 5}
            for i, d in enumerate(["Mon", "Tue"])
            for h in (7, 8, 9)
        ]

    crm.reports.register(
        Report(
            "app.visits",
            'Visits by "hour" <& weekday>',
            data=visits,
            columns=[Column("day"), Column("hour"), Column("visits", type="integer")],
            charts=[
                Chart("heatmap", x="hour", y=("day",), value="visits", title="Visits"),
                Chart("line", x="hour", y=("visits",), title="Trend"),
            ],
        )
    )
    results = {}
    for name in ("probe.summary", "app.visits"):
        page = tmp_path / f"{name}.html"
        page.write_text(crm.reports.render(name, format="html"), encoding="utf-8")
        shot = tmp_path / f"{name}.png"
        results[name] = open_in_browser(page, shot)
        assert shot.stat().st_size > 5_000, "the screenshot is (nearly) empty"
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary, visits_page = results["probe.summary"], results["app.visits"]
    for result in results.values():
        assert result["problems"] == [], result["problems"]  # no console errors, no external requests
        assert all(box and box["width"] > 300 and box["height"] > 60 for box in result["boxes"]), result["boxes"]
    assert len(summary["boxes"]) == 1 and summary["marks"] == 3  # one bar per tier
    assert len(visits_page["boxes"]) == 2 and visits_page["marks"] == 6 + 6  # 6 heatmap cells, 6 points
    assert visits_page["title"] == 'Visits by "hour" <& weekday>'  # escaped in the page, intact for the reader


def test_the_example_report_in_docs_is_current_and_opens_cleanly(tmp_path: Path) -> None:
    import importlib.util

    docs = Path(__file__).resolve().parent.parent / "docs"
    spec = importlib.util.spec_from_file_location("gen_example_report", docs / "gen_example_report.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--check"]) == 0, "run python docs/gen_example_report.py"
    result = open_in_browser(docs / "example-report.html", tmp_path / "example.png")
    assert result["problems"] == [] and len(result["boxes"]) == 1 and result["marks"] == 12  # 6 months x 2
