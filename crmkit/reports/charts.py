"""Inline SVG charts: no JavaScript, no external files, every label escaped.

A chart a person would rather look at than read: grouped bars, lines, and a heatmap. Each returns an
``<svg class="chart ...">`` string marked safe for jinja2, built from values that were escaped here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from markupsafe import Markup, escape

from crmkit.reports.formats import Formats
from crmkit.reports.spec import Chart, Column

PALETTE = ("#2563eb", "#f97316", "#16a34a", "#dc2626", "#9333ea", "#0891b2")
WIDTH, HEIGHT = 720, 300
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 28, 64


def render_chart(
    chart: Chart,
    rows: Sequence[Mapping[str, Any]],
    columns: Mapping[str, Column],
    fmt: Formats,
    now: Any = None,
) -> Markup:
    """The chart as inline SVG. ``columns`` gives each column's label, type and unit (axis titles and tick
    labels), ``fmt`` the locale's formats, ``now`` the moment the rows were computed (periods not yet over
    are marked)."""
    labels = {name: c.title for name, c in columns.items()}
    if chart.kind == "heatmap":
        return heatmap(chart, rows, labels)
    return xy_chart(chart, rows, labels)


def _number(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _ticks(high: float, count: int = 5) -> list[float]:
    """Round tick values from 0 to at least ``high``."""
    if high <= 0:
        return [0.0, 1.0]
    raw = high / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    return [step * i for i in range(math.ceil(high / step) + 1)]


def _fmt(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 or value == int(value) else f"{value:,.2f}".rstrip("0").rstrip(".")


def _svg(kind: str, title: str, body: list[str], height: int = HEIGHT) -> Markup:
    label = escape(title or kind)
    return Markup(
        f'<svg class="chart chart-{kind}" role="img" aria-label="{label}" xmlns="http://www.w3.org/2000/svg"'
        f' viewBox="0 0 {WIDTH} {height}" width="100%" preserveAspectRatio="xMidYMid meet">'
        f"<title>{label}</title>{''.join(body)}</svg>"
    )


def xy_chart(chart: Chart, rows: Sequence[Mapping[str, Any]], labels: Mapping[str, str]) -> Markup:
    categories = [str(row.get(chart.x, "")) for row in rows]
    series = [[_number(row.get(name)) for row in rows] for name in chart.y]
    values = [v for s in series for v in s if v is not None]
    if not categories or not values:
        return _svg(chart.kind, chart.title, ['<text x="50%" y="50%" text-anchor="middle">no data</text>'], 80)
    low = min(0.0, min(values))
    ticks = _ticks(max(values) - low)
    ticks = [t + low for t in ticks]
    top_value = ticks[-1] if ticks[-1] > low else low + 1
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def y(value: float) -> float:
        return TOP + plot_h - (value - low) / (top_value - low) * plot_h

    body = [f'<text x="{LEFT}" y="16" font-size="13" font-weight="bold">{escape(chart.title)}</text>']
    for tick in ticks:
        body.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" stroke="#e5e7eb"/>'
            f'<text x="{LEFT - 6}" y="{y(tick) + 4:.1f}" font-size="11" text-anchor="end">{_fmt(tick)}</text>'
        )
    slot = plot_w / len(categories)
    label_every = max(1, math.ceil(len(categories) / 24))
    for i, category in enumerate(categories):
        if i % label_every == 0:
            cx = LEFT + slot * (i + 0.5)
            body.append(
                f'<text x="{cx:.1f}" y="{TOP + plot_h + 14}" font-size="11" text-anchor="end"'
                f' transform="rotate(-35 {cx:.1f} {TOP + plot_h + 14})">{escape(category)}</text>'
            )
    if chart.kind == "bar":
        width = slot * 0.8 / len(series)
        for s, points in enumerate(series):
            color = PALETTE[s % len(PALETTE)]
            for i, value in enumerate(points):
                if value is None:
                    continue
                x0 = LEFT + slot * i + slot * 0.1 + width * s
                y0, y1 = sorted((y(value), y(0.0 if low <= 0 else low)))
                body.append(
                    f'<rect class="bar" x="{x0:.1f}" y="{y0:.1f}" width="{width:.1f}" height="{max(y1 - y0, 0.5):.1f}"'
                    f' fill="{color}"><title>{escape(categories[i])}: {_fmt(value)}</title></rect>'
                )
    else:
        for s, points in enumerate(series):
            color = PALETTE[s % len(PALETTE)]
            coords = [f"{LEFT + slot * (i + 0.5):.1f},{y(v):.1f}" for i, v in enumerate(points) if v is not None]
            body.append(
                f'<polyline class="line" fill="none" stroke="{color}" stroke-width="2" points="{" ".join(coords)}"/>'
            )
            for i, v in enumerate(points):
                if v is not None:
                    body.append(
                        f'<circle cx="{LEFT + slot * (i + 0.5):.1f}" cy="{y(v):.1f}" r="3" fill="{color}">'
                        f"<title>{escape(categories[i])}: {_fmt(v)}</title></circle>"
                    )
    for s, name in enumerate(chart.y):
        lx = LEFT + 8 + s * 160
        body.append(
            f'<rect x="{lx}" y="{HEIGHT - 18}" width="10" height="10" fill="{PALETTE[s % len(PALETTE)]}"/>'
            f'<text x="{lx + 14}" y="{HEIGHT - 9}" font-size="11">{escape(labels.get(name, name))}</text>'
        )
    return _svg(chart.kind, chart.title, body)


def heatmap(chart: Chart, rows: Sequence[Mapping[str, Any]], labels: Mapping[str, str]) -> Markup:
    assert chart.value is not None and chart.y
    y_name = chart.y[0]
    xs = list(dict.fromkeys(str(r.get(chart.x)) for r in rows))
    ys = list(dict.fromkeys(str(r.get(y_name)) for r in rows))
    cells = {(str(r.get(chart.x)), str(r.get(y_name))): _number(r.get(chart.value)) for r in rows}
    values = [v for v in cells.values() if v is not None]
    if not xs or not ys or not values:
        return _svg("heatmap", chart.title, ['<text x="50%" y="50%" text-anchor="middle">no data</text>'], 80)
    high = max(values) or 1.0
    cell_w = (WIDTH - LEFT - RIGHT) / len(xs)
    cell_h = min(28.0, 220 / len(ys))
    height = int(TOP + cell_h * len(ys) + 40)
    body = [f'<text x="{LEFT}" y="16" font-size="13" font-weight="bold">{escape(chart.title)}</text>']
    for j, yv in enumerate(ys):
        row_y = TOP + cell_h * (j + 0.65)
        body.append(f'<text x="{LEFT - 6}" y="{row_y:.1f}" font-size="11" text-anchor="end">{escape(yv)}</text>')
        for i, xv in enumerate(xs):
            value = cells.get((xv, yv))
            share = (value or 0.0) / high
            body.append(
                f'<rect class="cell" x="{LEFT + cell_w * i:.1f}" y="{TOP + cell_h * j:.1f}" width="{cell_w - 1:.1f}"'
                f' height="{cell_h - 1:.1f}" fill="{PALETTE[0]}" fill-opacity="{0.06 + 0.94 * share:.2f}">'
                f"<title>{escape(yv)} {escape(xv)}: {_fmt(value or 0.0)}</title></rect>"
            )
    every = max(1, math.ceil(len(xs) / 24))
    for i, xv in enumerate(xs):
        if i % every == 0:
            body.append(
                f'<text x="{LEFT + cell_w * (i + 0.5):.1f}" y="{TOP + cell_h * len(ys) + 14:.1f}" font-size="11"'
                f' text-anchor="middle">{escape(xv)}</text>'
            )
    body.append(
        f'<text x="{LEFT}" y="{height - 6}" font-size="11">{escape(labels.get(chart.value, chart.value))}:'
        f" 0 (light) to {_fmt(high)} (dark)</text>"
    )
    return _svg("heatmap", chart.title, body, height)
