"""``python -m bench``: build (or reuse) the club, time every workload through crmkit and its baseline in
the same run, print the table, optionally write the figures as JSON.

Each workload runs ``--repeat`` times per side, the sides alternating so drift in the machine's speed
hits both; the table shows medians. A read-only workload first runs once per side untimed, so the side
that happens to go first does not pay for the cold caches alone. A workload whose crmkit and baseline
results differ fails the run (exit 1): the ratio of two different computations means nothing. A missed
target does not fail it: benchmarks measure, they do not assert.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import attrs

from bench import data, memory
from bench.common import AS_OF, Workload, empty_parts
from bench.rss import peak_mb, reset_peak


@attrs.frozen
class Goal:
    """A target from the issue: crmkit at most ``max_ratio`` times the baseline, or at least ``min_speedup``
    times faster than it."""

    text: str
    max_ratio: float | None = None
    min_speedup: float | None = None

    def met(self, ratio: float) -> bool:
        if self.max_ratio is not None:
            return ratio <= self.max_ratio
        assert self.min_speedup is not None
        return ratio > 0 and 1 / ratio >= self.min_speedup


INGEST = Goal("<= 1.3x", max_ratio=1.3)
TRIGGERS = Goal("<= 1.5x", max_ratio=1.5)
LOOP = Goal(">= 100x faster", min_speedup=100)
REPORTS = Goal("<= 1.5x", max_ratio=1.5)
MEMORY = Goal("<= 1.5x", max_ratio=1.5)
#: Not a figure from the issue: building full records (plugin and run-time fields) may cost this much more
#: than fetching bare rows.
LISTS = Goal("<= 3x", max_ratio=3.0)
APP_PATH = Goal("<= 4x", max_ratio=4)
CUSTOMER_IMPORT = Goal("<= 1.5x", max_ratio=1.5)
#: From the issue: the peak at 1M lines no more than at 100k plus 20%.
IMPORT_MEMORY = Goal("<= 1.2x", max_ratio=1.2)
#: From issue 14: the fitness triggers' run with the contact policy on, against the same run without it.
POLICY = Goal("<= 1.5x", max_ratio=1.5)


@attrs.frozen
class Timing:
    workload: str
    baseline_kind: str
    crmkit_s: float
    baseline_s: float
    ratio: float
    goal: str
    met: bool
    crmkit_peak_mb: float
    baseline_peak_mb: float
    same: bool
    runs: int
    #: What each side's result held, part by part (see ``bench.common.parts``), and the parts that were
    #: empty on either side: a comparison of nothing, which fails the run like a difference does.
    crmkit_rows: dict[str, int] = attrs.field(factory=dict)
    baseline_rows: dict[str, int] = attrs.field(factory=dict)
    empty: list[str] = attrs.field(factory=list)
    #: Calls per run (the app path), else 0.
    calls: int = 0


def _timed(call: Callable[[], Any], reset: Callable[[], None] | None) -> tuple[float, float, Any]:
    if reset is not None:
        reset()
    gc.collect()
    reset_peak()
    started = time.perf_counter()
    result = call()
    elapsed = time.perf_counter() - started
    return elapsed, peak_mb(), result


def measure(workload: Workload, goal: Goal, repeat: int) -> Timing:
    ours: list[float] = []
    theirs: list[float] = []
    peaks = [0.0, 0.0]
    results: list[Any] = [None, None]
    if workload.reset is None and workload.baseline_scale == 1:
        # read-only workloads: one untimed run per side, so neither pays for the cold caches alone
        workload.crmkit()
        workload.baseline()
    for i in range(repeat):
        sides = [(0, workload.crmkit), (1, workload.baseline)]
        for side, call in sides if i % 2 == 0 else reversed(sides):
            elapsed, peak, result = _timed(call, workload.reset)
            (ours if side == 0 else theirs).append(elapsed)
            peaks[side] = max(peaks[side], peak)
            if i == 0:
                results[side] = result
    if workload.reset is not None:
        workload.reset()
    crmkit_s = statistics.median(ours)
    baseline_s = statistics.median(theirs) * workload.baseline_scale
    ratio = crmkit_s / baseline_s if baseline_s else float("inf")
    ours_rows, theirs_rows = workload.parts(results[0]), workload.parts(results[1])
    return Timing(
        workload=workload.name,
        baseline_kind=workload.baseline_kind,
        crmkit_s=crmkit_s,
        baseline_s=baseline_s,
        ratio=ratio,
        goal=goal.text,
        met=goal.met(ratio),
        crmkit_peak_mb=round(peaks[0], 1),
        baseline_peak_mb=round(peaks[1], 1),
        same=bool(workload.same(results[0], results[1])),
        runs=repeat,
        crmkit_rows=ours_rows,
        baseline_rows=theirs_rows,
        empty=empty_parts(ours_rows, theirs_rows) if ours_rows or theirs_rows else ["everything"],
        calls=workload.calls,
    )


@attrs.frozen
class MemoryFigure:
    task: str
    small_customers: int
    large_customers: int
    small: dict[str, float]
    large: dict[str, float]
    ratio: float
    goal: str
    met: bool
    #: What the sizes count: the club's customers, or the imported file's lines.
    unit: str = "customers"


# -- the table ----------------------------------------------------------------------------------------


def _seconds(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f} s"
    if value >= 1:
        return f"{value:.2f} s"
    return f"{value * 1000:.1f} ms"


def _ratio(t: Timing) -> str:
    if t.goal.endswith("faster"):
        return f"{1 / t.ratio:,.0f}x faster" if t.ratio else "inf"
    return f"{t.ratio:.2f}x"


def format_timings(timings: list[Timing]) -> str:
    header = ("workload", "crmkit", "baseline", "ratio", "target", "", "peak RSS crmkit / baseline", "baseline is")
    rows = [
        (
            t.workload,
            _seconds(t.crmkit_s),
            _seconds(t.baseline_s),
            _ratio(t),
            t.goal,
            ("met" if t.met else "MISSED") + ("" if t.same else " RESULTS DIFFER") + (" EMPTY" if t.empty else ""),
            f"{t.crmkit_peak_mb:,.0f} / {t.baseline_peak_mb:,.0f} MB",
            t.baseline_kind,
        )
        for t in timings
    ]
    return _table(header, rows)


def format_app_path(timings: list[Timing]) -> str:
    """The app path's workloads: time per call on each side."""
    header = ("app path", "crmkit / call", "baseline / call", "ratio", "target", "", "baseline is")
    rows = [
        (
            t.workload,
            f"{t.crmkit_s / t.calls * 1e6:,.1f} µs",
            f"{t.baseline_s / t.calls * 1e6:,.1f} µs",
            _ratio(t),
            t.goal,
            ("met" if t.met else "MISSED") + ("" if t.same else " RESULTS DIFFER") + (" EMPTY" if t.empty else ""),
            t.baseline_kind,
        )
        for t in timings
    ]
    return _table(header, rows)


def format_compared(timings: list[Timing]) -> str:
    """What each comparison compared, on each side: per trigger its matches, per report its rows."""
    rows = []
    for t in timings:
        ours, theirs = t.crmkit_rows, t.baseline_rows
        if "rows" in ours or "rows" in theirs:
            rows.append((t.workload, _rows(ours), _rows(theirs), "EMPTY" if t.empty else ""))
            continue
        for part in {**ours, **theirs}:
            mark = "EMPTY" if part in t.empty else ""
            rows.append((f"{t.workload}: {part}", f"{ours.get(part, 0):,}", f"{theirs.get(part, 0):,}", mark))
    return _table(("compared (rows, or matches per trigger)", "crmkit", "baseline", ""), rows)


def _rows(parts: dict[str, int]) -> str:
    text = f"{parts.get('rows', 0):,}"
    if "non-zero numbers" in parts:
        text += f" ({parts['non-zero numbers']:,} non-zero)"
    return text


def format_memory(figures: list[MemoryFigure]) -> str:
    if not figures:
        return ""
    if any(f.unit != figures[0].unit for f in figures):  # a table per unit: club sizes, file lengths
        return "\n\n".join(
            format_memory([f for f in figures if f.unit == unit]) for unit in {f.unit: 0 for f in figures}
        )
    small, large, unit = figures[0].small_customers, figures[0].large_customers, figures[0].unit
    header = ("peak RSS, fresh process", f"{small:,} {unit}", f"{large:,} {unit}", "ratio", "target", "")
    rows = [
        (
            f.task,
            f"{f.small['peak_mb']:,.0f} MB (+{f.small['peak_mb'] - f.small['start_mb']:,.0f})",
            f"{f.large['peak_mb']:,.0f} MB (+{f.large['peak_mb'] - f.large['start_mb']:,.0f})",
            f"{f.ratio:.2f}x",
            f.goal,
            "met" if f.met else "MISSED",
        )
        for f in figures
    ]
    return _table(header, rows)


def _table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    numeric = {1, 2, 3}

    def line(cells: tuple[str, ...]) -> str:
        pairs = enumerate(zip(cells, widths, strict=True))
        return "  ".join(c.rjust(w) if i in numeric else c.ljust(w) for i, (c, w) in pairs)

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(header).rstrip(), rule, *(line(r).rstrip() for r in rows)])


# -- the run ------------------------------------------------------------------------------------------

WORKLOADS = ("ingest", "triggers", "reports", "lists", "policy", "memory", "apppath", "import", "importmemory")
#: The workloads that run on the generated club (the app path and the customer import start from an empty
#: database of their own).
CLUB_WORKLOADS = frozenset(WORKLOADS) - {"apppath", "import", "importmemory"}


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description="crmkit against a hand-written baseline on the same database."
    )
    parser.add_argument("--url", help="a PostgreSQL URL (default: SQLite files in --work-dir)")
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--visits", type=int, default=2_000_000, help="check-ins (about: the generator decides)")
    parser.add_argument("--payments", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--sample", type=int, default=10_000, help="customers the per-customer ORM loop runs on")
    parser.add_argument("--memory-small", type=int, help="the smaller club for memory (default: customers / 10)")
    parser.add_argument("--app-customers", type=int, default=10_000, help="app path: customers created, updated")
    parser.add_argument("--app-activities", type=int, default=100_000, help="app path: activities logged")
    parser.add_argument("--import-rows", type=int, default=100_000, help="customer import: lines of the CSV")
    parser.add_argument(
        "--import-memory-rows",
        type=int,
        default=1_000_000,
        help="import memory: the larger file (the smaller: --import-rows)",
    )
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per side; the table shows medians")
    parser.add_argument("--only", default=",".join(WORKLOADS), help=f"comma-separated: {', '.join(WORKLOADS)}")
    parser.add_argument("--work-dir", type=Path, default=Path(".bench"), help="SQLite files and kept clubs")
    parser.add_argument("--prefix", default="crmkit_bench", help="PostgreSQL schema prefix")
    parser.add_argument("--json", type=Path, help="also write every figure to this file")
    args = parser.parse_args(argv)
    unknown = set(args.only.split(",")) - set(WORKLOADS)
    if unknown:
        parser.error(f"unknown workloads: {', '.join(sorted(unknown))}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    only = set(args.only.split(","))
    target = data.Target(args.url, args.work_dir, args.prefix)
    sizes = data.Sizes(args.customers, args.visits, args.payments, args.seed)
    echo = data.log
    timings: list[Timing] = []
    if only & CLUB_WORKLOADS:
        crm = data.club(target, sizes, echo)
        counts = _counts(crm)
        echo(
            f"club: {counts['customers']:,} customers, {counts['checkins']:,} check-ins,"
            f" {counts['payments']:,} payments on {target.dialect}; {args.repeat} runs per side"
        )
        _club_workloads(crm, target, args, only, timings, echo)
        crm.close()
    else:
        counts = {"customers": 0, "checkins": 0, "payments": 0}
    figures = _memory(target, sizes, args, echo) if "memory" in only else []
    if "importmemory" in only:
        figures.append(_import_memory(target, args, echo))
    app: list[Timing] = []
    if "apppath" in only:
        app = _app_path(target, args, echo)
        timings.extend(app)
    if "import" in only:
        timings.append(_customer_import(target, args, echo))
    club = [t for t in timings if not t.calls]

    if only & CLUB_WORKLOADS:
        print(f"\ncrmkit bench on {target.dialect}: {counts['customers']:,} customers, {counts['checkins']:,}"
              f" check-ins, {counts['payments']:,} payments; medians of {args.repeat} runs per side\n")  # fmt: skip
    elif club:
        print(f"\ncrmkit bench on {target.dialect}; medians of {args.repeat} runs per side\n")
    if club:
        print(format_timings(club))
        print()
        print(format_compared([t for t in club if t.crmkit_rows or t.baseline_rows]))
    if figures:
        print()
        print(format_memory(figures))
    if app:
        print(f"\ncrmkit app path on {target.dialect}: one validated call at a time; medians of {args.repeat} runs"
              " per side\n")  # fmt: skip
        print(format_app_path(app))
        print()
        print(format_compared(app))
    if args.json:
        payload = {
            "database": target.dialect,
            "sizes": attrs.asdict(sizes),
            "app_sizes": {"customers": args.app_customers, "activities": args.app_activities},
            "counts": counts,
            "repeat": args.repeat,
            "timings": [attrs.asdict(t) for t in timings],
            "memory": [attrs.asdict(f) for f in figures],
        }
        args.json.write_text(json.dumps(payload, indent=2))
    differ = [t.workload for t in timings if not t.same]
    if differ:
        print(f"\ncrmkit and the baseline disagree on: {', '.join(differ)}")
    empty = [f"{t.workload} ({', '.join(t.empty)})" for t in timings if t.empty]
    if empty:
        print(f"\nthese comparisons compared nothing, so they prove nothing: {'; '.join(empty)}")
    return 1 if differ or empty else 0


def _club_workloads(
    crm: Any, target: data.Target, args: argparse.Namespace, only: set[str], timings: list[Timing], echo: Any
) -> None:
    def run(workload: Workload, goal: Goal) -> None:
        echo(f"  {workload.name} ...")
        timings.append(measure(workload, goal, args.repeat))

    if "ingest" in only:
        from bench.ingest import ingest_workload

        visits = data.visits(crm, args.visits)
        ingest = data.ingest_database(target, crm)
        run(ingest_workload(ingest, visits), INGEST)
        del visits
        ingest.close()
        target.drop("ingest")
    if "triggers" in only:
        from bench.triggers import trigger_workloads

        sql, loop = trigger_workloads(crm, AS_OF, sample=min(args.sample, args.customers))
        run(sql, TRIGGERS)
        run(loop, LOOP)
    if "reports" in only:
        from bench.reports import report_workloads

        first = len(timings)
        for workload in report_workloads(crm, AS_OF):
            run(workload, REPORTS)
        if len(timings) - first > 1:
            timings.append(_total(timings[first:]))
    if "lists" in only:
        from bench.lists import list_workload

        run(list_workload(crm), LISTS)
    if "policy" in only:  # last: it registers triggers of its own on the club's CRM
        from bench.policy import policy_workload

        workload, state = policy_workload(crm, AS_OF)
        try:
            run(workload, POLICY)
        finally:
            state.close()


def _app_path(target: data.Target, args: argparse.Namespace, echo: Any) -> list[Timing]:
    from bench.apppath import AppPath, AppSizes

    app = AppPath(target, AppSizes(args.app_customers, args.app_activities))
    try:
        timings = []
        for workload in app.workloads():
            echo(f"  {workload.name} ...")
            timings.append(measure(workload, APP_PATH, args.repeat))
        return timings
    finally:
        app.close()


def _customer_import(target: data.Target, args: argparse.Namespace, echo: Any) -> Timing:
    from bench.customer_import import customer_import_workload, write_csv

    crm = target.fresh("custimport")
    target.work_dir.mkdir(parents=True, exist_ok=True)
    path = write_csv(target.work_dir / f"customers_{args.import_rows}.csv", args.import_rows)
    try:
        workload = customer_import_workload(crm, path, args.import_rows)
        echo(f"  {workload.name} ...")
        return measure(workload, CUSTOMER_IMPORT, args.repeat)
    finally:
        crm.close()
        target.drop("custimport")
        path.unlink()


def _import_memory(target: data.Target, args: argparse.Namespace, echo: Any) -> MemoryFigure:
    from bench import import_memory
    from bench.customer_import import write_csv

    target.work_dir.mkdir(parents=True, exist_ok=True)
    measured = []
    for rows in (args.import_rows, args.import_memory_rows):
        echo(f"  memory: customer import of {rows:,} lines ...")
        path = write_csv(target.work_dir / f"customers_{rows}.csv", rows)
        try:
            measured.append(import_memory.measure(target, path))
        finally:
            path.unlink()
    low, high = measured
    ratio = high["peak_mb"] / low["peak_mb"]
    return MemoryFigure(
        "customer import (CSV)",
        args.import_rows,
        args.import_memory_rows,
        low,
        high,
        ratio,
        IMPORT_MEMORY.text,
        IMPORT_MEMORY.met(ratio),
        unit="lines",
    )


def _total(reports: list[Timing]) -> Timing:
    crmkit_s = sum(t.crmkit_s for t in reports)
    baseline_s = sum(t.baseline_s for t in reports)
    ratio = crmkit_s / baseline_s
    return Timing(
        workload=f"all {len(reports)} reports",
        baseline_kind="hand-written SQL",
        crmkit_s=crmkit_s,
        baseline_s=baseline_s,
        ratio=ratio,
        goal=REPORTS.text,
        met=REPORTS.met(ratio),
        crmkit_peak_mb=max(t.crmkit_peak_mb for t in reports),
        baseline_peak_mb=max(t.baseline_peak_mb for t in reports),
        same=all(t.same for t in reports),
        runs=reports[0].runs,
    )


def _counts(crm: Any) -> dict[str, int]:
    from sqlalchemy import func, select

    from crmkit.db.models import Activity, Customer

    with crm.session() as s:
        kinds = dict(s.execute(select(Activity.kind, func.count()).group_by(Activity.kind)).all())
        customers = s.scalar(select(func.count()).select_from(Customer)) or 0
    return {"customers": customers, "checkins": kinds.get("checkin", 0), "payments": kinds.get("payment", 0)}


def _memory(target: data.Target, sizes: data.Sizes, args: argparse.Namespace, echo: Any) -> list[MemoryFigure]:
    small_customers = args.memory_small or max(1, sizes.customers // 10)
    factor = small_customers / sizes.customers
    small = attrs.evolve(
        sizes,
        customers=small_customers,
        visits=max(1, round(sizes.visits * factor)),
        payments=round(sizes.payments * factor),
    )
    data.club(target, small, echo).close()
    figures = []
    for task in memory.TASKS:
        echo(f"  memory: {task} ...")
        low = memory.measure(target, f"club_{small.key}", task)
        high = memory.measure(target, f"club_{sizes.key}", task)
        ratio = high["peak_mb"] / low["peak_mb"]
        label = {"triggers": "trigger evaluation", "reports": "report rendering (all, HTML)"}[task]
        figures.append(
            MemoryFigure(label, small.customers, sizes.customers, low, high, ratio, MEMORY.text, MEMORY.met(ratio))
        )
    return figures
