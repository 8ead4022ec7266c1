"""Peak memory of an ingest as the number of rows grows: each size in a fresh process.

``python -m bench.ingest_memory --rows 100000,1000000`` ingests that many check-ins (a generator, as a
turnstile file read line by line would give them) into an empty SQLite database, through the public
``crm.activities.ingest`` with its defaults, and prints the RSS each process had before the ingest, its
peak during it, and the ratio of the largest size's growth to the smallest's. Flat memory means the ratio
stays near 1: what an ingest holds is a batch and a piece's bookkeeping, never the whole input.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.rss import current_mb, in_fresh_process, peak_mb, reset_peak

T0 = dt.datetime(2024, 1, 1, 6, 0, tzinfo=dt.UTC)
CUSTOMERS = 1_000
#: the issue's bound: peak memory at the largest size no more than at the smallest plus 20%
MAX_GROWTH = 1.2


def checkins(customer_ids: list[int], rows: int) -> Iterator[dict[str, Any]]:
    for i in range(rows):
        yield {
            "customer_id": customer_ids[i % len(customer_ids)],
            "kind": "visit",
            "occurred_at": T0 + dt.timedelta(seconds=31 * i),
            "source": "gate",
            "external_id": str(i),
        }


def run_one(rows: int, work_dir: Path) -> dict[str, float]:
    """In this process: ingest ``rows`` check-ins into a new database; the RSS before and the peak."""
    from crmkit import CRM

    path = work_dir / f"ingest_memory_{rows}.db"
    crm = CRM(f"sqlite:///{path}", load_entry_points=False)
    crm.create_schema()
    with crm.transaction() as tx:
        ids = [crm.customers.create({"name": f"Member {n}"}, tx=tx)["id"] for n in range(CUSTOMERS)]
    start = current_mb()
    reset_peak()
    report = crm.activities.ingest(checkins(ids, rows))
    peak = peak_mb()
    crm.close()
    if report.inserted != rows:
        raise AssertionError(f"{rows} check-ins ingested, {report.inserted} stored")
    return {"rows": rows, "start_mb": round(start, 1), "peak_mb": round(max(peak, start), 1)}


def measure(rows: int, work_dir: Path) -> dict[str, Any]:
    args = ["--one", str(rows), "--work-dir", str(work_dir)]
    return in_fresh_process("bench.ingest_memory", args, f"ingest memory at {rows} rows")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ingest_memory", description=__doc__)
    parser.add_argument("--rows", default="100000,1000000", help="comma-separated sizes, smallest first")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # a child process: one size
    parser.add_argument("--work-dir", type=Path, help="where the databases go (default: a temporary directory)")
    args = parser.parse_args(argv)
    if args.one is not None:
        print(json.dumps(run_one(args.one, args.work_dir)))
        return 0
    sizes = [int(n) for n in args.rows.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        work_dir = args.work_dir or Path(tmp)
        figures = [measure(n, work_dir) for n in sizes]
    print(f"{'rows':>12}  {'RSS before':>10}  {'peak':>8}  {'growth':>8}")
    for f in figures:
        growth = f["peak_mb"] - f["start_mb"]
        print(f"{f['rows']:>12,}  {f['start_mb']:>7.1f} MB  {f['peak_mb']:>5.1f} MB  {growth:>5.1f} MB")
    ratio = figures[-1]["peak_mb"] / figures[0]["peak_mb"]
    verdict = "met" if ratio <= MAX_GROWTH else "MISSED"
    print(f"peak at {sizes[-1]:,} rows / peak at {sizes[0]:,} rows: {ratio:.3f}x (<= {MAX_GROWTH}x: {verdict})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
