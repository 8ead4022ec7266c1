"""Peak memory of trigger evaluation and report rendering, each in a fresh process, at two club sizes.

A fresh process per measurement, so one workload's garbage or caches do not count against another. The
child prints one JSON line: its RSS once the CRM is open and connected (``start_mb``) and its peak RSS
after the workload (``peak_mb``). ``python -m bench.memory --help`` runs one measurement by hand.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from bench.common import AS_OF
from bench.data import Target
from bench.rss import current_mb, in_fresh_process, peak_mb, reset_peak, target_args

TASKS = ("triggers", "reports")


def run_task(target: Target, name: str, task: str) -> dict[str, float]:
    """Open the club ``name`` and run ``task``; return the RSS before and the peak during it."""
    crm = target.crm(name)
    with crm.engine.connect():
        pass  # the connection pool and the dialect are set up before the baseline is read
    start = current_mb()
    reset_peak()
    if task == "triggers":
        names = [t.name for t in crm.triggers.all() if t.name.startswith("fitness.")]
        crm.triggers.run(AS_OF, names=names, dry_run=True)
    elif task == "reports":
        for report in crm.reports.all():
            params = {p.name: AS_OF.date() for p in report.params if p.name == "as_of"}
            crm.reports.render(report.name, params, format="html", now=AS_OF)
    else:
        raise ValueError(f"unknown task {task!r}")
    peak = peak_mb()
    crm.close()
    return {"start_mb": round(start, 1), "peak_mb": round(max(peak, start), 1)}


def measure(target: Target, name: str, task: str) -> dict[str, Any]:
    """Run :func:`run_task` in a fresh interpreter."""
    args = ["--name", name, "--task", task, *target_args(target.work_dir, target.prefix, target.url)]
    return in_fresh_process("bench.memory", args, f"memory measurement {task} on {name}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.memory", description=__doc__)
    parser.add_argument("--name", required=True, help="the database (club_<sizes>) to open")
    parser.add_argument("--task", required=True, choices=TASKS)
    parser.add_argument("--url", help="PostgreSQL URL (default: SQLite files in --work-dir)")
    parser.add_argument("--work-dir", type=Path, default=Path(".bench"))
    parser.add_argument("--prefix", default="crmkit_bench")
    args = parser.parse_args(argv)
    print(json.dumps(run_task(Target(args.url, args.work_dir, args.prefix), args.name, args.task)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
