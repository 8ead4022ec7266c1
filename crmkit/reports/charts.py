"""Charts a person can read: inline SVG bars and lines, heatmaps as tables of coloured cells.

No JavaScript, no external file, every label escaped. What makes them readable:

* the title, the legend (only for two series or more) and the key (hatched: a period not over yet; dashed:
  no value) are HTML above the drawing, so they wrap and no axis label can run into them;
* each axis has a title, the value axis's with its unit ("Growth (%)", "Revenue ($)"), tick labels in the
  CRM's formats, the left margin sized to the widest tick label;
* category labels are shortened, thinned or turned by 45° from their estimated width, and the margins
  grow so that a turned label stays inside the drawing;
* each bar and point has a tooltip "Series — category: value";
* an SVG scales with its box, so each chart is drawn twice, for a wide box and for a narrow one (a phone),
  and a container query shows the one that fits: text stays at least about 9 CSS px either way;
* a heatmap is an HTML table, legible at any width (it scrolls inside its box when wider than it), with a
  colour scale spanning the values shown and its key; a cell without a value is hatched and blank, not 0.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
from babel import dates as bdates
from babel import numbers as bnumbers
from markupsafe import Markup, escape

from crmkit.reports.formats import Formats
from crmkit.reports.spec import Chart, ChartPeriod, Column

PALETTE = ("#2563eb", "#ea580c", "#16a34a", "#9333ea", "#0891b2", "#be123c")
MISSING = "#9ca3af"
#: The drawing's width in SVG units for a wide box and for a narrow one (shown below 600 CSS px).
WIDE, NARROW = 760, 420
FONT = 12  # tick labels and axis titles, in SVG units
#: The font size of each drawing: the narrow one is shown from about 340 CSS px wide, where 13 units are
#: 10.5 px; the wide one from 600 px, where 12 units are 9.5 px.
FONT_SIZE = {WIDE: FONT, NARROW: 13}
PLOT_HEIGHT = {WIDE: 220, NARROW: 200}
MAX_LABEL = 22  # characters of a category label; the whole label is in its tooltip
SO_FAR = "so far"
NOTHING = "Nothing to show for these parameters."

#: The charts' styles, sent with each chart so that any template showing one gets them.
CSS = """
.chart-box { container-type: inline-size; margin: 0; }
.chart-box .chart-title { font-weight: 600; font-size: 15px; margin: 0 0 4px; }
.chart-box .chart-key { display: flex; flex-wrap: wrap; gap: 2px 14px; margin: 0 0 4px; padding: 0;
  list-style: none; font-size: 13px; color: #374151; }
.chart-box .chart-key li { display: flex; align-items: center; gap: 5px; }
.chart-box .swatch { display: inline-block; width: 12px; height: 12px; border-radius: 2px; flex: none; }
.chart-box .swatch.hatched { background: repeating-linear-gradient(135deg, #6b7280 0 2px, #fff 2px 5px);
  border: 1px solid #6b7280; }
.chart-box .swatch.missing { border: 1px dashed #6b7280; background: #fff; }
.chart-box .swatch.band { border: 1px solid #9ca3af; background: #f3f4f6; }
.chart-box .swatch.scale { width: 72px; }
.chart-box svg.chart { display: block; width: 100%; height: auto; overflow: visible; }
.chart-box svg.chart-wide { max-width: 880px; }
.chart-box .chart-nothing { margin: 4px 0; padding: 12px 16px; background: #f9fafb; color: #4b5563;
  border: 1px dashed #d1d5db; border-radius: 6px; }
@container (max-width: 599.98px) { .chart-box svg.chart-wide { display: none; } }
@container (min-width: 600px) { .chart-box svg.chart-narrow { display: none; } }
.chart-box .heat-scroll { overflow-x: auto; max-width: 100%; }
.chart-box table.chart-heatmap { border-collapse: separate; border-spacing: 2px; width: auto; margin: 0;
  font-size: 12px; font-variant-numeric: tabular-nums; }
.chart-box table.chart-heatmap th, .chart-box table.chart-heatmap td { border: 0; padding: 3px 6px;
  background: none; font-weight: normal; white-space: nowrap; }
.chart-box table.chart-heatmap th { color: #374151; text-align: right; }
.chart-box table.chart-heatmap thead th { text-align: center; }
.chart-box table.chart-heatmap th.axis-title { font-weight: 600; }
.chart-box table.chart-heatmap thead th.axis-title.x { text-align: left; }
.chart-box table.chart-heatmap td.cell { min-width: 34px; text-align: center; border-radius: 2px; }
.chart-box table.chart-heatmap td.cell.missing {
  background: repeating-linear-gradient(135deg, #e5e7eb 0 2px, #fff 2px 6px); color: #6b7280; }
.chart-box table.chart-heatmap td.cell.incomplete { outline: 2px dashed #374151; outline-offset: -2px; }
"""


def render_chart(
    chart: Chart,
    rows: Sequence[Mapping[str, Any]],
    columns: Mapping[str, Column],
    fmt: Formats,
    now: Any = None,
) -> Markup:
    """The chart as HTML: a heatmap as a table, a bar or line chart as inline SVG (twice: for a wide and a
    narrow box). ``columns`` gives each column's label, type and unit (axis titles and tick labels), ``fmt``
    the locale's formats, ``now`` (an aware datetime) the moment the rows were computed: a period not over
    by then is marked as incomplete."""
    moment = now if isinstance(now, dt.datetime) else None
    if moment is not None and moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    if chart.kind == "heatmap":
        return heatmap(chart, rows, columns, fmt, moment)
    return xy_chart(chart, rows, columns, fmt, moment)


# -- values, periods and labels ---------------------------------------------------------------------------


def _number(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _column(columns: Mapping[str, Column], name: str) -> Column:
    return columns.get(name) or Column(name)


def unit_of(column: Column, fmt: Formats) -> str:
    """The unit a value axis names for ``column``: its declared ``unit``, else the type's ("%", "$")."""
    return column.unit or fmt.unit(column.type)


def with_unit(title: str, unit: str) -> str:
    return f"{title} ({unit})" if unit else title


_YEAR = re.compile(r"^(\d{4})$")
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
_DAY = re.compile(r"^(\d{4})-(\d{2})-(\d{2})")


@attrs.frozen
class Period:
    """The days ``[start, end)`` a category stands for, and how long it is."""

    start: dt.date
    end: dt.date
    length: ChartPeriod

    def status(self, now: dt.datetime | None) -> str:
        """``over``, ``incomplete`` (``now`` falls in it) or ``future``; ``over`` without a ``now``."""
        if now is None:
            return "over"
        today = now.astimezone(dt.UTC).date()
        if today >= self.end:
            return "over"
        return "incomplete" if today >= self.start else "future"


def _add_months(day: dt.date, months: int) -> dt.date:
    index = day.year * 12 + day.month - 1 + months
    return dt.date(index // 12, index % 12 + 1, 1)


def period_of(value: Any, length: ChartPeriod | None) -> Period | None:
    """The period a category value names: ``"2026"`` a year, ``"2026-06"`` a month, an ISO date (or a
    date) the ``length`` starting that day; ``None`` for anything else."""
    if isinstance(value, dt.datetime):
        value = value.date()
    day: dt.date | None = None
    try:
        if isinstance(value, dt.date):
            day = value
        elif isinstance(value, str):
            if m := _YEAR.match(value):
                start = dt.date(int(m[1]), 1, 1)
                return Period(start, dt.date(start.year + 1, 1, 1), "year")
            if m := _MONTH.match(value):
                start = dt.date(int(m[1]), int(m[2]), 1)
                return Period(start, _add_months(start, 1), "month")
            if m := _DAY.match(value):
                day = dt.date(int(m[1]), int(m[2]), int(m[3]))
    except ValueError:
        return None
    if day is None:
        return None
    if length == "year":
        return Period(
            day, day.replace(year=day.year + 1) if (day.month, day.day) != (2, 29) else day + dt.timedelta(365), "year"
        )
    if length == "month":
        return Period(day, _add_months(day, 1) if day.day == 1 else day + dt.timedelta(days=30), "month")
    if length == "week":
        return Period(day, day + dt.timedelta(days=7), "week")
    return Period(day, day + dt.timedelta(days=1), "day")


def _period_label(period: Period, fmt: Formats, previous: Period | None) -> str:
    if period.length == "year":
        return str(period.start.year)
    if period.length == "month":
        same_year = previous is not None and previous.start.year == period.start.year
        skeleton = "MMM" if same_year else "yMMM"
        return bdates.format_skeleton(skeleton, period.start, locale=fmt.locale)
    return bdates.format_skeleton("MMMd", period.start, locale=fmt.locale)


def category_labels(
    values: Sequence[Any], column: Column, fmt: Formats, chart: Chart, now: dt.datetime | None
) -> tuple[list[str], list[str]]:
    """Each category's label, and its period's status (``over``, ``incomplete``, ``future``; ``over`` when
    the categories are not periods)."""
    periods = [period_of(v, chart.period) for v in values] if chart.period else []
    if periods and all(p is not None for p in periods):
        labels, statuses, previous = [], [], None
        for p in periods:
            assert p is not None
            labels.append(_period_label(p, fmt, previous))
            statuses.append(p.status(now))
            previous = p
        return labels, statuses
    labels = []
    for value in values:
        if value is None:
            labels.append("—")
        elif column.labels and isinstance(value, str):
            labels.append(fmt.label(column.labels, value))
        elif isinstance(value, (dt.date, dt.datetime)):
            labels.append(fmt.date(value if not isinstance(value, dt.datetime) else value.date()))
        else:
            labels.append(str(value))
    return labels, ["over"] * len(values)


def text_width(text: str, size: float = FONT) -> float:
    """A generous estimate of the width of ``text`` in a sans-serif font of ``size``: no font is measured
    here, so it errs wide, and the browser test checks the result."""
    total = 0.0
    for ch in text:
        if ch in "il.,:;!|'` ":
            total += 0.32
        elif ch in "fjrtI()[]-":
            total += 0.42
        elif ch in "mwMW@%":
            total += 0.9
        elif ch.isupper() or ch in "$€£¥&#":
            total += 0.7
        elif ch.isdigit():
            total += 0.58
        else:
            total += 0.58
    return total * size * 1.04


def _shorten(text: str, limit: int = MAX_LABEL) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _wrap(text: str, width: float, size: float = FONT) -> list[str]:
    lines: list[str] = []
    for word in text.split():
        if lines and text_width(f"{lines[-1]} {word}", size) <= width:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    return lines or [""]


def nice_ticks(low: float, high: float, whole: bool, count: int = 5) -> list[float]:
    """Round tick values covering ``[low, high]`` (``low <= 0``), about ``count`` of them; whole numbers
    only when ``whole``."""
    if high <= low:
        high = low + 1.0
    raw = (high - low) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    if whole:
        step = max(1.0, math.ceil(step))
    first = math.floor(low / step + 1e-9)
    last = math.ceil(high / step - 1e-9)
    return [round(i * step, 10) for i in range(first, last + 1)]


def axis_labels(ticks: Sequence[float], kind: str, fmt: Formats) -> list[str]:
    """Tick labels in the column's format (:meth:`Formats.axis`), alike along one axis: money in thousands
    on every tick once the top one is, and without cents when every tick is whole ("$2,500", not
    "$2,500.00")."""
    if kind == "money" and max(abs(t) for t in ticks) >= 10_000:
        return [bnumbers.format_compact_currency(t, fmt.currency, locale=fmt.locale, fraction_digits=1) for t in ticks]
    labels = [fmt.axis(t, kind) for t in ticks]
    if kind == "money" and all(t == int(t) for t in ticks):
        cents = re.compile(re.escape(bnumbers.get_decimal_symbol(fmt.locale)) + r"0+(?!\d)")
        labels = [cents.sub("", label) for label in labels]
    return labels


def _id(*parts: Any) -> str:
    return "c" + hashlib.sha1(repr(parts).encode()).hexdigest()[:10]


def _title(text: str) -> str:
    return f"<title>{escape(text)}</title>"


# -- the HTML around a chart ------------------------------------------------------------------------------


def _key(items: list[tuple[str, str]]) -> str:
    """A key of (swatch style or class, text) items; a style starts with ``background``."""
    if not items:
        return ""
    out = ['<ul class="chart-key">']
    for swatch, text in items:
        series = swatch.startswith("background")  # a series' colour; else a class: hatched, missing
        look = f' style="{swatch}"' if series else ""
        kind = "" if series else f" {swatch}"
        item = ' class="series"' if series else ""
        out.append(f'<li{item}><span class="swatch{kind}"{look}></span>{escape(text)}</li>')
    out.append("</ul>")
    return "".join(out)


def _box(chart: Chart, inner: str, key: str = "") -> Markup:
    title = f'<p class="chart-title">{escape(chart.title)}</p>' if chart.title else ""
    kind = escape(chart.kind)
    label = escape(chart.title or chart.kind)
    return Markup(
        f'<div class="chart-box chart-box-{kind}" role="group" aria-label="{label}">'
        f"<style>{CSS}</style>{title}{key}{inner}</div>"
    )


def _nothing(chart: Chart, text: str = "") -> Markup:
    return _box(chart, f'<p class="chart-nothing">{escape(text or chart.empty_text or NOTHING)}</p>')


# -- bars and lines ---------------------------------------------------------------------------------------


@attrs.frozen
class _Series:
    name: str
    label: str
    color: str
    values: list[float | None]


def xy_chart(
    chart: Chart,
    rows: Sequence[Mapping[str, Any]],
    columns: Mapping[str, Column],
    fmt: Formats,
    now: dt.datetime | None = None,
) -> Markup:
    """A bar or line chart: the HTML title and key, and the SVG drawn for a wide and a narrow box."""
    x_column = _column(columns, chart.x)
    y_columns = [_column(columns, name) for name in chart.y]
    series = [
        _Series(c.name, c.title, PALETTE[i % len(PALETTE)], [_number(row.get(c.name)) for row in rows])
        for i, c in enumerate(y_columns)
    ]
    values = [v for s in series for v in s.values if v is not None]
    if not rows or not values:
        return _nothing(chart)
    if all(v == 0 for v in values):
        return _nothing(chart, chart.empty_text or "Every value is 0 for these parameters: nothing to compare.")
    labels, statuses = category_labels([row.get(chart.x) for row in rows], x_column, fmt, chart, now)
    kind = y_columns[0].type
    unit = unit_of(y_columns[0], fmt)
    y_title = with_unit(chart.y_title or (y_columns[0].title if len(y_columns) == 1 else ""), unit)
    if not y_title:
        y_title = " and ".join(c.title for c in y_columns)
    x_title = chart.x_title or x_column.title
    key: list[tuple[str, str]] = []
    if len(series) > 1:
        key += [(f"background:{s.color}", s.label) for s in series]
    if any(st != "over" for st in statuses):
        length = next((p.length for p in (period_of(r.get(chart.x), chart.period) for r in rows) if p), "period")
        look = "hatched bars" if chart.kind == "bar" else "dashed line, hollow point"
        key.append(("band", f"shaded, {look}: the {length} is not over yet, its figures will still change"))
    if any(v is None for s in series for v in s.values):
        key.append(("missing", "dashed: no value (not observed yet, or nothing to count)"))
    drawings = "".join(
        _draw_xy(chart, series, labels, statuses, kind, fmt, x_title, y_title, width) for width in (WIDE, NARROW)
    )
    return _box(chart, drawings, _key(key))


def _draw_xy(
    chart: Chart,
    series: list[_Series],
    labels: list[str],
    statuses: list[str],
    kind: str,
    fmt: Formats,
    x_title: str,
    y_title: str,
    width: int,
) -> str:
    n = len(labels)
    fs = FONT_SIZE[width]
    whole = kind == "integer"
    if chart.stacked:
        tops = [sum(max(s.values[i] or 0.0, 0.0) for s in series) for i in range(n)]
        bottoms = [sum(min(s.values[i] or 0.0, 0.0) for s in series) for i in range(n)]
        high, low = max([0.0, *tops]), min([0.0, *bottoms])
    else:
        values = [v for s in series for v in s.values if v is not None]
        high, low = max(0.0, *values), min(0.0, *values)
    ticks = nice_ticks(low, high, whole)
    tick_labels = axis_labels(ticks, kind, fmt)
    lo, hi = ticks[0], ticks[-1]

    # vertical layout: the y title's lines, the plot, the category labels, the x title
    y_title_lines = _wrap(y_title, width - 8, fs)
    top = 8 + (fs + 4) * len(y_title_lines) + fs  # the top tick label stands half its height above
    plot_h = PLOT_HEIGHT[width]
    left = max(text_width(t, fs) for t in tick_labels) + 12
    right = 12.0
    shown = [_shorten(label) for label in labels]
    widths = [text_width(label, fs) for label in shown]
    ordered = chart.period is not None
    angle, every = 0, 1
    for _ in range(3):  # the left margin and the labels' room depend on each other; settles in two rounds
        slot = (width - left - right) / n
        angle, every = _label_layout(widths, slot, ordered, fs)
        needed = left
        for i in range(0, n, every):
            centre = slot * (i + 0.5)
            # how far left of the plot the label reaches: a turned one runs down to the left of its slot
            turned = widths[i] * math.cos(math.radians(angle)) + fs * 0.6
            reach = (turned if angle else widths[i] / 2) - centre
            needed = max(needed, reach + 4)
        if needed <= left + 0.5:
            break
        left = needed
    slot = (width - left - right) / n
    if angle:
        labels_h = max(widths[i] for i in range(0, n, every)) * math.sin(math.radians(angle)) + fs * 1.2
    else:
        labels_h = fs * 1.4
    bottom = 10 + labels_h + 10 + fs * 1.4 + 6
    height = math.ceil(top + plot_h + bottom)
    plot_bottom = top + plot_h

    def y(value: float) -> float:
        return plot_bottom - (value - lo) / (hi - lo) * plot_h

    def x0(i: int) -> float:
        return left + slot * i

    uid = _id(chart, width)
    body: list[str] = ["<defs>"]
    for s_index, s in enumerate(series):
        body.append(
            f'<pattern id="{uid}-{s_index}" width="6" height="6" patternUnits="userSpaceOnUse"'
            f' patternTransform="rotate(45)"><rect width="6" height="6" fill="#fff"/>'
            f'<rect width="3" height="6" fill="{s.color}"/></pattern>'
        )
    body.append("</defs>")
    # incomplete periods: a light band behind them
    for i, status in enumerate(statuses):
        if status != "over":
            body.append(
                f'<rect class="period-band" x="{x0(i):.1f}" y="{top}" width="{slot:.1f}" height="{plot_h}"'
                f' fill="#f3f4f6"/>'
            )
    for tick, text in zip(ticks, tick_labels, strict=True):
        stroke = "#9ca3af" if tick == 0 else "#e5e7eb"
        body.append(
            f'<line x1="{left:.1f}" x2="{width - right:.1f}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" stroke="{stroke}"/>'
            f'<text class="tick y" x="{left - 6:.1f}" y="{y(tick) + fs * 0.35:.1f}" font-size="{fs}"'
            f' text-anchor="end" fill="#4b5563">{escape(text)}</text>'
        )
    for line_no, line in enumerate(y_title_lines):
        body.append(
            f'<text class="axis-title y" x="4" y="{8 + fs + (fs + 4) * line_no}" font-size="{fs}" font-weight="600"'
            f' fill="#374151">{escape(line)}</text>'
        )
    label_y = plot_bottom + 10 + fs * (0.35 if angle else 0.9)
    for i in range(0, n, every):
        cx = x0(i) + slot / 2
        full = labels[i] + (f" ({SO_FAR})" if statuses[i] == "incomplete" else "")
        if angle:
            placement = (
                f'x="{cx + fs * 0.35:.1f}" y="{label_y:.1f}" text-anchor="end"'
                f' transform="rotate(-{angle} {cx + fs * 0.35:.1f} {label_y:.1f})"'
            )
        else:
            placement = f'x="{cx:.1f}" y="{label_y:.1f}" text-anchor="middle"'
        body.append(
            f'<text class="tick x" {placement} font-size="{fs}" fill="#374151">{_title(full)}{escape(shown[i])}</text>'
        )
    body.append(
        f'<text class="axis-title x" x="{left + (width - left - right) / 2:.1f}" y="{height - 8}"'
        f' font-size="{fs}" font-weight="600" text-anchor="middle" fill="#374151">{escape(x_title)}</text>'
    )
    if chart.kind == "bar":
        body += _bars(chart, series, labels, statuses, kind, fmt, uid, slot, x0, y, lo)
    else:
        body += _lines(series, labels, statuses, kind, fmt, slot, x0, y, lo)
    label = escape(chart.title or chart.kind)
    variant = "wide" if width == WIDE else "narrow"
    return (
        f'<svg class="chart chart-{chart.kind} chart-{variant}" role="img" aria-label="{label}"'
        f' xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" preserveAspectRatio="xMidYMid meet"'
        f" font-family=\"system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif\">"
        f"<title>{label}</title>{''.join(body)}</svg>"
    )


def _label_layout(widths: list[float], slot: float, ordered: bool, fs: float) -> tuple[int, int]:
    """How category labels fit their slots: (angle, every how many to show). Horizontal when they fit; for
    periods, thinned horizontally; else turned by 45° and, when even that is too tight, thinned."""
    gap = 8
    widest = max(widths)
    if widest + gap <= slot:
        return 0, 1
    if ordered:
        return 0, math.ceil((widest + gap) / slot)
    need = fs * 1.25 / math.sin(math.radians(45))
    return 45, max(1, math.ceil(need / slot))


def _tooltip(series: _Series, category: str, value: float | None, kind: str, fmt: Formats, status: str) -> str:
    text = "no value" if value is None else fmt.value(value, kind)
    note = f" ({SO_FAR})" if status == "incomplete" else (" (not over yet)" if status == "future" else "")
    return _title(f"{series.label} — {category}{note}: {text}")


def _bars(
    chart: Chart,
    series: list[_Series],
    labels: list[str],
    statuses: list[str],
    kind: str,
    fmt: Formats,
    uid: str,
    slot: float,
    x0: Any,
    y: Any,
    lo: float,
) -> list[str]:
    out = []
    base = y(max(lo, 0.0))
    groups = 1 if chart.stacked else len(series)
    bar_w = min(slot * 0.78 / groups, 56.0)  # a bar or two in the whole width stay bars, not walls
    pad = (slot - bar_w * groups) / 2
    for i in range(len(labels)):
        up = down = 0.0
        for s_index, s in enumerate(series):
            value = s.values[i]
            left = x0(i) + pad + (0 if chart.stacked else bar_w * s_index)
            tip = _tooltip(s, labels[i], value, kind, fmt, statuses[i])
            if value is None:
                if chart.stacked:
                    continue
                out.append(
                    f'<rect class="mark missing" x="{left + 1:.1f}" y="{base - 8:.1f}" width="{max(bar_w - 2, 1):.1f}"'
                    f' height="8" fill="#fff" stroke="{MISSING}" stroke-dasharray="2 2">{tip}</rect>'
                )
                continue
            if chart.stacked:
                start = up if value >= 0 else down
                end = start + value
                if value >= 0:
                    up = end
                else:
                    down = end
            else:
                start, end = 0.0, value
            y_a, y_b = sorted((y(start), y(end)))
            if y_b - y_a < 1.5:  # a zero still shows as a thin bar on the axis
                y_a = min(y_a, base - 1.5) if value >= 0 else y_a
                y_b = max(y_b, y_a + 1.5)
            fill = s.color if statuses[i] == "over" else f"url(#{uid}-{s_index})"
            status = "" if statuses[i] == "over" else " incomplete"
            out.append(
                f'<rect class="mark bar{status}" x="{left:.1f}" y="{y_a:.1f}" width="{bar_w:.1f}"'
                f' height="{y_b - y_a:.1f}" fill="{fill}" stroke="{s.color}" stroke-width="0.75">{tip}</rect>'
            )
    return out


def _lines(
    series: list[_Series],
    labels: list[str],
    statuses: list[str],
    kind: str,
    fmt: Formats,
    slot: float,
    x0: Any,
    y: Any,
    lo: float,
) -> list[str]:
    out = []
    base = y(max(lo, 0.0))
    for s in series:
        points = [(x0(i) + slot / 2, y(v)) if v is not None else None for i, v in enumerate(s.values)]
        # a run of observed points is one path; a None breaks it (a gap, not a drop to 0); the segment into
        # a period not over yet is dashed
        for i in range(1, len(points)):
            a, b = points[i - 1], points[i]
            if a is None or b is None:
                continue
            dash = ' stroke-dasharray="5 4"' if statuses[i] != "over" else ""
            out.append(
                f'<line class="line" x1="{a[0]:.1f}" y1="{a[1]:.1f}" x2="{b[0]:.1f}" y2="{b[1]:.1f}"'
                f' stroke="{s.color}" stroke-width="2.5"{dash}/>'
            )
        radius = 3.5 if len(points) <= 40 else 2.5
        for i, point in enumerate(points):
            tip = _tooltip(s, labels[i], s.values[i], kind, fmt, statuses[i])
            cx = x0(i) + slot / 2
            if point is None:
                out.append(
                    f'<rect class="mark missing" x="{cx - 3:.1f}" y="{base - 8:.1f}" width="6" height="8"'
                    f' fill="#fff" stroke="{MISSING}" stroke-dasharray="2 2">{tip}</rect>'
                )
                continue
            fill = s.color if statuses[i] == "over" else "#fff"
            status = "" if statuses[i] == "over" else " incomplete"
            out.append(
                f'<circle class="mark point{status}" cx="{point[0]:.1f}" cy="{point[1]:.1f}" r="{radius}"'
                f' fill="{fill}" stroke="{s.color}" stroke-width="2">{tip}</circle>'
            )
    return out


# -- heatmaps ---------------------------------------------------------------------------------------------

#: A sequential scale from pale yellow through green and blue to dark navy (ColorBrewer's YlGnBu): the
#: lightness falls all the way, so 78% and 100% of a range look different.
SCALE = ("#ffffd9", "#edf8b1", "#c7e9b4", "#7fcdbb", "#41b6c4", "#1d91c0", "#225ea8", "#253494", "#081d58")


def _rgb(color: str) -> tuple[int, int, int]:
    return int(color[1:3], 16), int(color[3:5], 16), int(color[5:7], 16)


def colour(share: float) -> str:
    """The scale's colour at ``share`` (0 to 1), interpolated between its stops."""
    share = min(max(share, 0.0), 1.0) * (len(SCALE) - 1)
    i = min(int(share), len(SCALE) - 2)
    t = share - i
    a, b = _rgb(SCALE[i]), _rgb(SCALE[i + 1])
    r, g, bl = (round(a[k] + (b[k] - a[k]) * t) for k in range(3))
    return f"#{r:02x}{g:02x}{bl:02x}"


def _ink(background: str) -> str:
    r, g, b = _rgb(background)
    return "#ffffff" if 0.2126 * r + 0.7152 * g + 0.0722 * b < 140 else "#111827"


def heatmap(
    chart: Chart,
    rows: Sequence[Mapping[str, Any]],
    columns: Mapping[str, Column],
    fmt: Formats,
    now: dt.datetime | None = None,
) -> Markup:
    """A table of coloured cells: ``x`` across, ``y`` down, ``value`` in the cells (its number written in
    each), with the colour scale's key. A missing cell is hatched and blank."""
    assert chart.value is not None
    value_column = _column(columns, chart.value)
    x_column = _column(columns, chart.x)
    y_columns = [_column(columns, name) for name in chart.y]
    xs = list(dict.fromkeys(row.get(chart.x) for row in rows))
    ys = list(dict.fromkeys(tuple(row.get(n) for n in chart.y) for row in rows))
    cells = {(row.get(chart.x), tuple(row.get(n) for n in chart.y)): _number(row.get(chart.value)) for row in rows}
    values = [v for v in cells.values() if v is not None]
    if not rows or not values:
        return _nothing(chart)
    x_labels, x_status = category_labels(xs, x_column, fmt, chart, now)
    parts = [category_labels([key[k] for key in ys], c, fmt, chart, now) for k, c in enumerate(y_columns)]
    y_labels = [" · ".join(p[0][j] for p in parts) for j in range(len(ys))]
    y_status = ["over" if all(p[1][j] == "over" for p in parts) else "incomplete" for j in range(len(ys))]
    kind = value_column.type
    low, high = min(values), max(values)
    span = high - low
    x_title = chart.x_title or x_column.title
    y_title = chart.y_title or " · ".join(c.title for c in y_columns)
    value_title = with_unit(value_column.title, unit_of(value_column, fmt))
    head = [
        f'<thead><tr><th class="axis-title y" scope="col" rowspan="2">{escape(y_title)}</th>'
        f'<th class="axis-title x" scope="colgroup" colspan="{len(xs)}">{escape(x_title)}</th></tr><tr>'
    ]
    for label, status in zip(x_labels, x_status, strict=True):
        note = f" ({SO_FAR})" if status == "incomplete" else ""
        head.append(f'<th scope="col">{escape(label)}{escape(note)}</th>')
    head.append("</tr></thead>")
    body = ["<tbody>"]
    missing = incomplete = False
    for j, key in enumerate(ys):
        note = f" ({SO_FAR})" if y_status[j] == "incomplete" else ""
        body.append(f'<tr><th scope="row">{escape(y_labels[j])}{escape(note)}</th>')
        for i, xv in enumerate(xs):
            value = cells.get((xv, key))
            where = f"{y_labels[j]}, {x_title.lower()} {x_labels[i]}" if x_title else f"{y_labels[j]}, {x_labels[i]}"
            over = x_status[i] == "over" and y_status[j] == "over"
            if value is None:
                missing = True
                body.append(
                    f'<td class="cell missing" title="{escape(value_column.title)} — {escape(where)}: not observed">'
                    "</td>"
                )
                continue
            background = colour((value - low) / span if span else 1.0)
            classes = "cell" if over else "cell incomplete"
            incomplete = incomplete or not over
            text = fmt.value(value, kind)
            body.append(
                f'<td class="{classes}" style="background:{background};color:{_ink(background)}"'
                f' title="{escape(value_column.title)} — {escape(where)}{"" if over else " (" + SO_FAR + ")"}:'
                f' {escape(text)}">{escape(fmt.axis(value, kind))}</td>'
            )
        body.append("</tr>")
    body.append("</tbody>")
    gradient = ", ".join(SCALE)
    key_html = [
        '<ul class="chart-key">',
        f"<li>{escape(value_title)}: {escape(fmt.axis(low, kind))}"
        f'<span class="swatch scale" style="background:linear-gradient(90deg, {gradient})"></span>'
        f"{escape(fmt.axis(high, kind))}</li>",
    ]
    if missing:
        key_html.append('<li><span class="swatch hatched"></span>hatched, blank: not observed (not 0)</li>')
    if incomplete:
        key_html.append(f'<li><span class="swatch missing"></span>dashed: {SO_FAR}, not over yet</li>')
    key_html.append("</ul>")
    label = escape(chart.title or value_column.title)
    table = (
        f'<div class="heat-scroll" tabindex="0"><table class="chart chart-heatmap" aria-label="{label}">'
        f"{''.join(head)}{''.join(body)}</table></div>"
    )
    return _box(chart, table, "".join(key_html))
