"""Every core and fitness report's charts, measured in headless Chromium at a desktop and a phone width.

A small club from the fitness plugin's deterministic generator (a year of history ending today, so the
current month is incomplete and young cohorts are not observed yet) is rendered to HTML, report by report,
and each page is opened at 1280 and at 390 CSS px. In each chart the page measures, with the rendered
geometry (``getBBox`` and ``getScreenCTM`` for SVG text, so a turned label is its turned rectangle, not the
box around it; ``getBoundingClientRect`` for HTML):

* no two text labels of a drawing overlap, and none overlaps the legend or key;
* no text sticks out of its drawing's box;
* every bar or line chart has an x and a y axis title, and the y title names the unit when the values have
  one ("(%)", "($)", "(hours)");
* a chart of one series has no legend, one of several has a legend entry per series;
* every mark (bar, point, heatmap cell) has a tooltip naming its series (or value) and its value;
* no chart text is drawn smaller than 9 CSS px;
* at 390 px the page does not scroll sideways (a heatmap wider than the screen scrolls inside its box).

Chromium is Debian's, driven by Playwright with ``executable_path`` (see ``test_report_browser.py``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from test_report_browser import CHROMIUM_FLAGS, chromium

from crmkit import CRM
from crmkit.reports import Report

fitness = pytest.importorskip("crmkit_fitness")

WIDTHS = (1280, 390)
MIN_TEXT_PX = 9.0

#: Runs in the page: the measurements of every chart box, in document order.
MEASURE = """
() => {
  const visible = el => { const r = el.getBoundingClientRect(); return r.width > 0 && r.height > 0; };
  const corners = el => {
    const b = el.getBBox(), m = el.getScreenCTM();
    return [[b.x, b.y], [b.x + b.width, b.y], [b.x + b.width, b.y + b.height], [b.x, b.y + b.height]]
      .map(([x, y]) => [m.a * x + m.c * y + m.e + window.scrollX, m.b * x + m.d * y + m.f + window.scrollY]);
  };
  const rectCorners = r => [[r.left + scrollX, r.top + scrollY], [r.right + scrollX, r.top + scrollY],
                            [r.right + scrollX, r.bottom + scrollY], [r.left + scrollX, r.bottom + scrollY]];
  // separating axis test of two convex quadrilaterals, with a tolerance of half a pixel
  const overlap = (p, q) => {
    for (const poly of [p, q]) {
      for (let i = 0; i < 4; i++) {
        const [x1, y1] = poly[i], [x2, y2] = poly[(i + 1) % 4];
        const nx = y2 - y1, ny = x1 - x2, len = Math.hypot(nx, ny) || 1;
        const proj = pts => pts.map(([x, y]) => (x * nx + y * ny) / len);
        const a = proj(p), b = proj(q);
        if (Math.max(...a) <= Math.min(...b) + 0.5 || Math.max(...b) <= Math.min(...a) + 0.5) return false;
      }
    }
    return true;
  };
  const boxes = [];
  for (const box of document.querySelectorAll('.chart-box')) {
    const out = {label: box.getAttribute('aria-label'), drawings: 0, tables: 0, nothing: '', problems: [],
                 series: box.querySelectorAll('.chart-key li.series').length, x_titles: [], y_titles: [],
                 tooltips: [], smallest: 1e9};
    const nothing = box.querySelector('.chart-nothing');
    if (nothing) out.nothing = nothing.textContent;
    const key = box.querySelector('.chart-key');
    const keyQuad = key ? rectCorners(key.getBoundingClientRect()) : null;
    for (const svg of box.querySelectorAll('svg.chart')) {
      if (!visible(svg)) continue;
      out.drawings += 1;
      const frame = rectCorners(svg.getBoundingClientRect());
      const [left, top] = frame[0], [right, bottom] = frame[2];
      const texts = [...svg.querySelectorAll('text')].filter(t => t.textContent.trim());
      const quads = texts.map(corners);
      texts.forEach((t, i) => {
        const scale = Math.hypot(t.getScreenCTM().a, t.getScreenCTM().b);
        const px = parseFloat(getComputedStyle(t).fontSize) * scale;
        out.smallest = Math.min(out.smallest, px);
        if (quads[i].some(([x, y]) => x < left - 0.5 || x > right + 0.5 || y < top - 0.5 || y > bottom + 0.5))
          out.problems.push(`"${t.textContent}" sticks out of the drawing`);
        if (keyQuad && overlap(quads[i], keyQuad)) out.problems.push(`"${t.textContent}" overlaps the key`);
        for (let j = i + 1; j < texts.length; j++)
          if (overlap(quads[i], quads[j]))
            out.problems.push(`"${t.textContent}" overlaps "${texts[j].textContent}"`);
      });
      out.x_titles.push([...svg.querySelectorAll('text.axis-title.x')].map(t => t.textContent).join(' '));
      out.y_titles.push([...svg.querySelectorAll('text.axis-title.y')].map(t => t.textContent).join(' '));
      for (const mark of svg.querySelectorAll('.mark')) {
        const title = mark.querySelector('title');
        out.tooltips.push(title ? title.textContent : '');
      }
    }
    for (const table of box.querySelectorAll('table.chart')) {
      out.tables += 1;
      for (const el of table.querySelectorAll('th, td')) {
        if (el.textContent.trim()) out.smallest = Math.min(out.smallest, parseFloat(getComputedStyle(el).fontSize));
      }
      out.x_titles.push(table.querySelector('th.axis-title.x')?.textContent || '');
      out.y_titles.push(table.querySelector('th.axis-title.y')?.textContent || '');
      for (const cell of table.querySelectorAll('td.cell')) out.tooltips.push(cell.getAttribute('title') || '');
    }
    for (const el of box.querySelectorAll('.chart-title, .chart-key, .chart-nothing')) {
      out.smallest = Math.min(out.smallest, parseFloat(getComputedStyle(el).fontSize));
    }
    boxes.push(out);
  }
  return {boxes, scrollWidth: document.documentElement.scrollWidth};
}
"""


def _club(crm_factory: Callable[..., CRM]) -> CRM:
    from crmkit_fitness import FitnessConfig, FitnessPlugin
    from crmkit_fitness.generator import generate

    crm = crm_factory([FitnessPlugin(FitnessConfig())])
    # a year ending today: this month is not over, the youngest cohorts are not observed yet
    generate(crm, members=300, today=dt.datetime.now(dt.UTC).date(), seed=7)
    return crm


def _expected(crm: CRM, report: Report) -> list[dict[str, Any]]:
    """What each chart of ``report`` must show: its series' labels and the unit its value axis names."""
    columns = {c.name: c for c in report.columns}
    out = []
    for chart in report.charts:
        drawn = [columns[n] for n in chart.value_columns]
        unit = drawn[0].unit or crm.reports.formats.unit(drawn[0].type)
        out.append({"chart": chart, "series": [c.title for c in drawn], "unit": unit})
    return out


def test_every_report_chart_reads_well_in_a_browser(crm_factory: Callable[..., CRM], tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    crm = _club(crm_factory)
    reports = [r for r in crm.reports.all() if r.name.startswith(("crm.", "fitness."))]
    assert {"crm.cohort_retention", "crm.plan_vs_fact", "fitness.trainer_load", "fitness.attendance"} <= {
        r.name for r in reports
    }
    pages = {}
    for report in reports:
        page = tmp_path / f"{report.name}.html"
        page.write_text(crm.reports.render(report.name, format="html"), encoding="utf-8")
        pages[report.name] = page

    problems: list[str] = []
    drawn = 0
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=CHROMIUM_FLAGS)
        try:
            for width in WIDTHS:
                tab = browser.new_page(viewport={"width": width, "height": 900})
                for report in reports:
                    tab.goto(pages[report.name].as_uri())
                    measured = tab.evaluate(MEASURE)
                    tab.screenshot(path=str(tmp_path / f"{report.name}.{width}.png"), full_page=True)
                    where = f"{report.name} at {width} px"
                    if width == 390 and measured["scrollWidth"] > width:
                        problems.append(f"{where}: the page scrolls sideways ({measured['scrollWidth']} px)")
                    boxes = measured["boxes"]
                    expected = _expected(crm, report)
                    if not boxes:
                        continue  # no rows: the page says "No data for these parameters." and draws nothing
                    assert len(boxes) == len(expected), (where, boxes)
                    for box, want in zip(boxes, expected, strict=True):
                        problems += [f"{where}, {box['label']}: {text}" for text in box["problems"]]
                        problems += _judge(box, want, where)
                        drawn += box["drawings"] + box["tables"]
                tab.close()
        finally:
            browser.close()
    assert problems == [], "\n".join(problems)
    assert drawn >= 2 * 8, "too few charts were drawn to say anything"


def _judge(box: dict[str, Any], want: dict[str, Any], where: str) -> list[str]:
    chart = want["chart"]
    name = f"{where}, {box['label']}"
    if box["nothing"]:
        return [] if box["nothing"].strip().endswith(".") else [f"{name}: says nothing in a sentence"]
    problems = []
    if box["drawings"] + box["tables"] != 1:
        problems.append(f"{name}: {box['drawings']} drawings and {box['tables']} tables are visible, not one")
    if box["smallest"] < MIN_TEXT_PX:
        problems.append(f"{name}: text as small as {box['smallest']:.1f} px")
    if not all(t.strip() for t in box["x_titles"]) or not all(t.strip() for t in box["y_titles"]):
        problems.append(f"{name}: an axis without a title ({box['x_titles']}, {box['y_titles']})")
    unit = want["unit"]
    titled = [*box["y_titles"]] if chart.kind != "heatmap" else []
    if unit and any(f"({unit})" not in t for t in titled):
        problems.append(f"{name}: the y axis title {box['y_titles']} does not name the unit {unit!r}")
    series = want["series"]
    if chart.kind != "heatmap" and box["series"] != (len(series) if len(series) > 1 else 0):
        problems.append(f"{name}: {box['series']} legend entries for {len(series)} series")
    if not box["tooltips"]:
        problems.append(f"{name}: no marks")
    for tip in box["tooltips"]:
        if not any(tip.startswith(f"{s} — ") for s in series) or ": " not in tip:
            problems.append(f"{name}: the tooltip {tip!r} does not name the series and the value")
            break
    return problems
