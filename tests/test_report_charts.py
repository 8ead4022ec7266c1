"""The charts' markup: what a reader is told, checked on the SVG and HTML that ``render_chart`` returns.

Their layout (nothing overlaps, nothing is clipped, text is legible) is measured in a browser by
``test_report_charts_browser.py``.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest

from crmkit.reports import Chart, Column, Report
from crmkit.reports.charts import colour, nice_ticks, period_of, render_chart
from crmkit.reports.formats import Formats

FMT = Formats()
NOW = dt.datetime(2026, 6, 15, 12, tzinfo=dt.UTC)
COLUMNS = {
    c.name: c
    for c in (
        Column("month"),
        Column("trainer"),
        Column("visits", "Visits", "integer"),
        Column("calls", "Calls", "integer"),
        Column("rate", "Renewal rate", "percent"),
        Column("revenue", type="money"),
        Column("cohort"),
        Column("offset", "Month", "integer"),
        Column("retention", "Retention", "percent"),
    )
}


def wide(markup: str) -> str:
    """The drawing for a wide box (each bar or line chart is drawn for a wide and a narrow one)."""
    found = re.search(r'<svg class="chart [^"]*chart-wide".*?</svg>', markup, re.S)
    assert found, markup
    return found.group(0)


def tooltips(svg: str) -> list[str]:
    return re.findall(r'class="mark[^"]*"[^>]*><title>([^<]*)</title>', svg)


def draw(chart: Chart, rows: list[dict[str, Any]], now: dt.datetime | None = NOW) -> str:
    return str(render_chart(chart, rows, COLUMNS, FMT, now))


def test_a_single_series_has_no_legend_and_several_have_one_entry_each() -> None:
    rows = [{"trainer": t, "visits": v, "calls": c} for t, v, c in (("Ann", 5, 2), ("Bo", 3, 4))]
    one = draw(Chart("bar", x="trainer", y=("visits",)), rows)
    assert '<li class="series"' not in one and '<ul class="chart-key"' not in one
    two = draw(Chart("bar", x="trainer", y=("visits", "calls")), rows)
    assert re.findall(r'<li class="series">.*?</span>([^<]*)</li>', two) == ["Visits", "Calls"]


def test_every_mark_names_its_series_category_and_formatted_value() -> None:
    rows = [{"trainer": "Ann", "visits": 1234, "calls": 2}, {"trainer": "Bo", "visits": 3, "calls": 4}]
    svg = wide(draw(Chart("bar", x="trainer", y=("visits", "calls")), rows))
    assert tooltips(svg) == ["Visits — Ann: 1,234", "Calls — Ann: 2", "Visits — Bo: 3", "Calls — Bo: 4"]
    line = wide(draw(Chart("line", x="month", y=("rate",)), [{"month": "x", "rate": 7.5}]))
    assert tooltips(line) == ["Renewal rate — x: 7.5%"]


def test_axes_have_titles_and_the_value_axis_names_its_unit() -> None:
    rows = [{"trainer": "Ann", "rate": 40.0, "revenue": 12_000}]
    svg = wide(draw(Chart("bar", x="trainer", y=("rate",)), rows))
    assert '<text class="axis-title y"' in svg and ">Renewal rate (%)</text>" in svg
    assert re.search(r'class="axis-title x"[^>]*>Trainer</text>', svg)
    assert ">40%</text>" in svg  # the ticks in the column's format
    money = wide(draw(Chart("bar", x="trainer", y=("revenue",), y_title="Takings", x_title="Who"), rows))
    assert (
        ">Takings ($)</text>" in money
        and ">Who</text>" in money
        and ">$12.5K</text>" in money
        and ">$0</text>" in money
    )
    small = wide(draw(Chart("bar", x="trainer", y=("revenue",)), [{"trainer": "Ann", "revenue": 2000}]))
    assert ">$2,000</text>" in small  # no cents on whole ticks
    counted = wide(draw(Chart("bar", x="trainer", y=("visits",)), [{"trainer": "Ann", "visits": 3}]))
    assert ">Visits</text>" in counted  # a count has no unit


def test_no_value_is_drawn_differently_from_zero() -> None:
    rows: list[dict[str, Any]] = [
        {"trainer": "Ann", "visits": 0},
        {"trainer": "Bo", "visits": None},
        {"trainer": "Cy", "visits": 4},
    ]
    svg = wide(draw(Chart("bar", x="trainer", y=("visits",)), rows))
    zero, missing = re.findall(r'<rect class="mark ([a-z ]+)"[^>]*>', svg)[:2]
    assert zero == "bar" and missing == "missing"
    assert tooltips(svg)[:2] == ["Visits — Ann: 0", "Visits — Bo: no value"]
    assert "no value" in draw(Chart("bar", x="trainer", y=("visits",)), rows)  # the key says what dashed means
    line = wide(draw(Chart("line", x="trainer", y=("visits",)), [*rows, {"trainer": "Di", "visits": 2}]))
    # Ann-Bo and Bo-Cy are not joined: a gap, not a drop to 0; Cy-Di is
    assert line.count('<line class="line"') == 1 and line.count('class="mark missing"') == 1


def test_a_period_not_over_is_marked_incomplete() -> None:
    rows = [{"month": m, "visits": v} for m, v in (("2026-04", 10), ("2026-05", 12), ("2026-06", 3))]
    markup = draw(Chart("bar", x="month", y=("visits",), period="month"), rows)
    svg = wide(markup)
    classes = re.findall(r'<rect class="mark ([a-z ]+)"', svg)
    assert classes == ["bar", "bar", "bar incomplete"]
    assert tooltips(svg)[-1] == "Visits — Jun (so far): 3"
    assert "the month is not over yet" in markup and 'class="period-band"' in svg
    assert ">Apr 2026</text>" in svg and ">May</text>" in svg  # periods read as months
    before = draw(
        Chart("bar", x="month", y=("visits",), period="month"), rows, now=dt.datetime(2026, 7, 1, tzinfo=dt.UTC)
    )
    assert "incomplete" not in wide(before) and "not over yet" not in before
    points = wide(draw(Chart("line", x="month", y=("visits",), period="month"), rows))
    assert points.count('class="mark point incomplete"') == 1 and 'stroke-dasharray="5 4"' in points


def test_periods_are_read_from_the_values() -> None:
    assert period_of("2026", "month").length == "year"  # type: ignore[union-attr]
    june = period_of("2026-06", "month")
    assert june is not None and (june.start, june.end) == (dt.date(2026, 6, 1), dt.date(2026, 7, 1))
    week = period_of("2026-06-08", "week")
    assert week is not None and week.end == dt.date(2026, 6, 15) and week.status(NOW) == "over"
    assert period_of("Mon", "day") is None
    assert nice_ticks(0, 87, whole=True) == [0, 20, 40, 60, 80, 100]
    assert nice_ticks(-3, 7, whole=False)[0] < -2.9 and all(t == int(t) for t in nice_ticks(0, 2, whole=True))


def test_metrics_on_different_scales_cannot_share_an_axis() -> None:
    columns = list(COLUMNS.values())

    def report(*charts: Chart) -> Report:
        return Report("app.x", "X", data=lambda ctx, p: [], columns=columns, charts=charts)

    with pytest.raises(ValueError, match=r"different scales on one axis: visits \(integer\), rate \(percent\)"):
        report(Chart("bar", x="trainer", y=("visits", "rate")))
    with pytest.raises(ValueError, match="not numbers"):
        report(Chart("bar", x="trainer", y=("month",)))
    with pytest.raises(ValueError, match="different scales"):
        Report(
            "app.y",
            "Y",
            data=lambda ctx, p: [],
            columns=[Column("a"), Column("v", type="integer", unit="visits"), Column("d", type="integer", unit="days")],
            charts=[Chart("line", x="a", y=("v", "d"))],
        )
    report(Chart("bar", x="trainer", y=("visits", "calls")))  # two counts share an axis
    with pytest.raises(ValueError, match="value="):
        Chart("heatmap", x="a", y=("b",))
    with pytest.raises(ValueError, match="only bars stack"):
        Chart("line", x="a", y=("b",), stacked=True)


def test_a_chart_with_nothing_to_show_says_so_in_words() -> None:
    chart = Chart("bar", x="trainer", y=("visits",), title="Visits")
    assert "Nothing to show for these parameters." in draw(chart, [])
    nothing = draw(chart, [{"trainer": "Ann", "visits": None}])
    assert "Nothing to show for these parameters." in nothing and "<svg" not in nothing
    zeros = Chart("bar", x="trainer", y=("rate",), empty_text="No goal window has passed yet.")
    said = draw(zeros, [{"trainer": "Ann", "rate": 0}, {"trainer": "Bo", "rate": 0.0}])
    assert "No goal window has passed yet." in said and "<svg" not in said


def test_stacked_bars_add_up() -> None:
    rows = [{"trainer": "Ann", "visits": 30, "calls": 10}]
    svg = wide(draw(Chart("bar", x="trainer", y=("visits", "calls"), stacked=True), rows))
    (x1, y1, h1), (x2, y2, h2) = [
        tuple(float(v) for v in m)
        for m in re.findall(r'class="mark bar" x="([\d.]+)" y="([\d.]+)" width="[\d.]+" height="([\d.]+)"', svg)
    ]
    assert x1 == x2 and y2 + h2 == pytest.approx(y1, abs=0.15) and h1 == pytest.approx(3 * h2, rel=0.02)


def test_the_cohort_heatmap_is_a_triangle_of_percentages() -> None:
    # three cohorts, observed for 3, 2 and 1 months: the cells not observed yet have no row
    rows = [
        {"cohort": c, "offset": k, "retention": v}
        for c, values in (("2026-03", (100, 100, 78)), ("2026-04", (100, 90)), ("2026-05", (100,)))
        for k, v in enumerate(values)
    ]
    chart = Chart("heatmap", x="offset", y=("cohort",), value="retention", period="month", x_title="Months since")
    html = draw(chart, rows)
    assert '<table class="chart chart-heatmap"' in html and "<svg" not in html
    cells = re.findall(r'<td class="(cell[^"]*)"[^>]*>([^<]*)</td>', html)
    assert [text for _, text in cells] == ["100%", "100%", "78%", "100%", "90%", "", "100%", "", ""]
    assert [kind for kind, _ in cells].count("cell missing") == 3  # hatched and blank, not 0%
    assert "not observed (not 0)" in html and 'title="Retention — Mar 2026, months since 2: 78%"' in html
    found = re.findall(r'style="background:(#[0-9a-f]{6});color:#[0-9a-f]{6}"[^>]*>(\d+%)<', html)
    shades = {text: shade for shade, text in found}
    assert len({shades["78%"], shades["90%"], shades["100%"]}) == 3  # 78% and 100% look different
    assert "78%" in html and "Retention (%)" in html  # the scale's key: from the lowest to the highest value


def test_the_colour_scale_separates_near_values() -> None:
    def lightness(color: str) -> float:
        r, g, b = (int(color[i : i + 2], 16) for i in (1, 3, 5))
        return 0.2126 * r + 0.7152 * g + 0.0722 * b

    assert lightness(colour(0.0)) - lightness(colour(1.0)) > 200
    assert lightness(colour(0.78)) - lightness(colour(1.0)) > 25


def test_heatmap_rows_of_several_columns_and_labels_are_escaped() -> None:
    columns = {**COLUMNS, "who": Column("who"), "metric": Column("metric")}
    rows = [{"who": "<b>Ann</b>", "metric": "deals", "month": "2026-06-01", "rate": 25.0}]
    chart = Chart("heatmap", x="month", y=("who", "metric"), value="rate", period="month")
    html = str(render_chart(chart, rows, columns, FMT, NOW))
    assert "&lt;b&gt;Ann&lt;/b&gt; · deals" in html and "<b>Ann" not in html
    assert "Jun 2026 (so far)" in html and 'class="cell incomplete"' in html
