"""Peak memory of a customer import, each size in a fresh process: an import streams its file, so the peak
at a million lines should be the peak at a hundred thousand.

The parent writes the CSV (:func:`bench.customer_import.write_csv`); the child opens a fresh, empty
database, connects, then imports the file with ``crm.imports.customers(path, mode="create")`` and prints
one JSON line: its RSS before the import (``start_mb``) and its peak RSS during it (``peak_mb``).
``python -m bench.import_memory --help`` runs one measurement by hand.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from bench.data import Target
from bench.rss import current_mb, in_fresh_process, peak_mb, reset_peak, target_args


def run_import(target: Target, path: Path) -> dict[str, float]:
    """Import ``path`` into a fresh database; the RSS before and the peak during the import."""
    crm = target.fresh("importmemory")
    try:
        with crm.engine.connect():
            pass  # the connection pool and the dialect are set up before the baseline is read
        start = current_mb()
        reset_peak()
        report = crm.imports.customers(path, mode="create", chunk_size=5000)
        peak = peak_mb()
        if report.rejected or not report.counts.get("created"):
            raise AssertionError(f"the import did not create every customer: {report.counts}")
        return {"start_mb": round(start, 1), "peak_mb": round(max(peak, start), 1), "created": report.counts["created"]}
    finally:
        crm.close()
        target.drop("importmemory")


def measure(target: Target, path: Path) -> dict[str, Any]:
    """Run :func:`run_import` in a fresh interpreter."""
    args = ["--file", str(path), *target_args(target.work_dir, target.prefix, target.url)]
    return in_fresh_process("bench.import_memory", args, f"import memory measurement on {path.name}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.import_memory", description=__doc__)
    parser.add_argument("--file", type=Path, required=True, help="the CSV to import")
    parser.add_argument("--url", help="PostgreSQL URL (default: a SQLite file in --work-dir)")
    parser.add_argument("--work-dir", type=Path, default=Path(".bench"))
    parser.add_argument("--prefix", default="crmkit_bench")
    args = parser.parse_args(argv)
    print(json.dumps(run_import(Target(args.url, args.work_dir, args.prefix), args.file)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
