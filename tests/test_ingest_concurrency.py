"""Concurrent writers of the same keyed activities store each exactly once: real processes, started together."""

from __future__ import annotations

import datetime as dt
from typing import Any

from same_database import TIMEOUT, open_crm
from sqlalchemy import func, select

from crmkit import CRM
from crmkit.db import Activity
from crmkit.testing import run_in_processes

T0 = dt.datetime(2026, 5, 4, 6, 0, tzinfo=dt.UTC)
PROCESSES = 3


def _rows(customers: list[int], n: int) -> list[dict[str, Any]]:
    return [
        {
            "customer_id": customers[i % len(customers)],
            "kind": "visit",
            "occurred_at": T0 + dt.timedelta(minutes=i),
            "source": "turnstile",
            "external_id": f"gate-2:{i}",
        }
        for i in range(n)
    ]


def _ingest(database: Any, start: Any, rows: list[dict[str, Any]], reverse: bool = False) -> tuple[int, int, int]:
    crm = open_crm(database)
    try:
        start()
        report = crm.activities.ingest(rows[::-1] if reverse else rows, batch_size=400)
        return report.inserted, report.skipped, len(report.rejected)
    finally:
        crm.close()


def _log(database: Any, start: Any, rows: list[dict[str, Any]]) -> list[int]:
    crm = open_crm(database)
    try:
        start()
        return [crm.activities.log(row)["id"] for row in rows]
    finally:
        crm.close()


def _run(target: Any, crm: CRM, rows: list[dict[str, Any]], *extra: Any) -> list[Any]:
    """``target`` in ``PROCESSES`` processes at once, each given every row (and the ``n``-th of ``extra``);
    what each one reported."""
    jobs = [(rows, *extra[n : n + 1]) for n in range(PROCESSES)]
    return run_in_processes(target, crm, jobs, timeout=TIMEOUT)


def _stored(crm: CRM) -> tuple[int, int]:
    with crm.session() as s:
        total = s.scalar(select(func.count()).select_from(Activity)) or 0
        keys = s.scalar(
            select(func.count()).select_from(
                select(Activity.customer_id, Activity.source, Activity.external_id).distinct().subquery()
            )
        )
        return total, keys or 0


def test_concurrent_ingests_of_the_same_rows_store_each_once(crm: CRM) -> None:
    customers = [crm.customers.create({"name": f"Member {i}"})["id"] for i in range(7)]
    rows = _rows(customers, 2000)
    reports = _run(_ingest, crm, rows)
    assert all(isinstance(r, tuple) for r in reports), reports
    assert _stored(crm) == (2000, 2000)
    assert sum(r[0] for r in reports) == 2000
    assert sum(r[1] for r in reports) == 2000 * (PROCESSES - 1)
    assert all(r[2] == 0 for r in reports)


def test_concurrent_ingests_of_overlapping_rows_in_other_orders_store_each_once(crm: CRM) -> None:
    """Two imports meet in the middle of the same rows, one from each end (a re-export in another order):
    each would hold rows the other waits for, so they must not both be inserting keyed rows at once."""
    customers = [crm.customers.create({"name": f"Member {i}"})["id"] for i in range(7)]
    rows = _rows(customers, 2000)
    reports = _run(_ingest, crm, rows, False, True, False)
    assert all(isinstance(r, tuple) for r in reports), reports
    assert _stored(crm) == (2000, 2000)
    assert sum(r[0] for r in reports) == 2000
    assert sum(r[1] for r in reports) == 2000 * (PROCESSES - 1)


def test_concurrent_logs_of_the_same_event_store_it_once(crm: CRM) -> None:
    customer = crm.customers.create({"name": "Member"})["id"]
    rows = [
        {"customer_id": customer, "kind": "note", "source": "webhook", "external_id": f"evt-{i}", "subject": str(i)}
        for i in range(40)
    ]
    results = _run(_log, crm, rows)
    assert all(isinstance(r, list) for r in results), results  # no process met an IntegrityError
    assert results[0] == results[1] == results[2]  # each event is one activity, whoever stored it
    assert len(set(results[0])) == 40
    assert _stored(crm) == (40, 40)
